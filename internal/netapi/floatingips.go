package netapi

import (
	"net/http"
	"net/netip"
	"slices"
)

var floatingIPAttrs = map[string]access{
	"id": never, "tenant_id": onPost, "project_id": onPost, "floating_ip_address": onPost,
	"floating_network_id": onPost, "subnet_id": onPost, "router_id": never, "port_id": onBoth,
	"fixed_ip_address": onBoth, "status": never, "description": onBoth, "port_details": never,
	"tags": never, "created_at": never, "updated_at": never, "revision_number": never,
}

var floatingIPCollection = collection{
	name: "floatingips",
	filters: attrSet("id", "tenant_id", "project_id", "floating_ip_address", "floating_network_id",
		"router_id", "port_id", "fixed_ip_address", "status", "description", "revision_number"),
}

// fipInput is what a floating IP request gives.
type fipInput struct {
	networkID, subnetID, portID, desc string
	address, fixedIP                  netip.Addr
	hasPort, hasFixed, hasDesc        bool
}

func readFIPInput(b *body) fipInput {
	var in fipInput
	if b.isNull("port_id") {
		in.hasPort = true
	} else {
		in.hasPort = b.uuid("port_id", &in.portID)
	}
	if b.isNull("fixed_ip_address") {
		in.hasFixed = true
	} else {
		in.hasFixed = b.ip("fixed_ip_address", &in.fixedIP)
	}
	in.hasDesc = b.str("description", maxDescLen, &in.desc)
	return in
}

func (t *txn) renderFloatingIP(f *floatingIP) (object, error) {
	var assoc *port
	if f.PortID != "" {
		var err error
		if assoc, err = t.port(f.PortID); err != nil {
			return nil, err
		}
	}
	return renderFloatingIP(f, assoc), nil
}

func (s *Server) listFloatingIPs(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.list(r, floatingIPCollection, func(t *txn) ([]object, error) {
		fips, err := t.floatingIPs()
		if err != nil {
			return nil, err
		}
		var objs []object
		for _, f := range fips {
			if c.owns(f.TenantID) {
				o, err := t.renderFloatingIP(f)
				if err != nil {
					return nil, err
				}
				objs = append(objs, o)
			}
		}
		return objs, nil
	})
}

func (t *txn) visibleFloatingIP(c *caller, id string) (*floatingIP, error) {
	f, err := t.floatingIP(id)
	if err != nil {
		return nil, err
	}
	if f == nil || !c.owns(f.TenantID) {
		return nil, errFloatingIPNotFound(id)
	}
	return f, nil
}

func (s *Server) showFloatingIP(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.show(r, "floatingip", func(t *txn) (object, error) {
		f, err := t.visibleFloatingIP(c, pathID(r))
		if err != nil {
			return nil, err
		}
		return t.renderFloatingIP(f)
	})
}

func (s *Server) prepareFloatingIP(c *caller, b *body) (applyFunc, error) {
	var in fipInput
	b.require("floating_network_id")
	b.uuid("floating_network_id", &in.networkID)
	if !b.isNull("subnet_id") {
		b.uuid("subnet_id", &in.subnetID)
	}
	hasAddress := !b.isNull("floating_ip_address") && b.ip("floating_ip_address", &in.address)
	more := readFIPInput(b)
	in.portID, in.fixedIP, in.desc, in.hasPort, in.hasFixed = more.portID, more.fixedIP, more.desc, more.hasPort, more.hasFixed
	if b.err != nil {
		return nil, b.err
	}
	tenant, err := b.project(c)
	if err != nil {
		return nil, err
	}
	return func(t *txn) (object, error) {
		if hasAddress && !c.Admin {
			return nil, errPolicyAttr("create_floatingip", "floating_ip_address")
		}
		n, err := t.network(in.networkID)
		if err != nil {
			return nil, err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return nil, errNetworkNotFound(in.networkID)
		}
		if !n.External {
			return nil, errBadResourceRequest("floatingip", "Network %s is not a valid external network", n.ID)
		}
		subs, err := t.subnetsOf(n)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(subs, func(s *subnet) bool { return s.IPVersion == 4 }) {
			return nil, errBadResourceRequest("floatingip", "Network %s does not contain any IPv4 subnet", n.ID)
		}
		f := &floatingIP{ID: newUUID(), TenantID: tenant, NetworkID: n.ID}
		own := &port{ID: newUUID(), NetworkID: n.ID, TenantID: "", AdminStateUp: true,
			DeviceID: f.ID, DeviceOwner: ownerFloatingIP, PortSecurity: false,
			SecurityGroups: []string{}, VNICType: "normal", AddressPairs: []addressPair{}}
		if err := t.pickMAC(own, ""); err != nil {
			return nil, err
		}
		a, err := t.allocator(n, own.ID)
		if err != nil {
			return nil, err
		}
		var reqs []ipRequest
		if in.subnetID != "" || hasAddress {
			reqs = []ipRequest{{SubnetID: in.subnetID, IP: in.address}}
		}
		if own.FixedIPs, err = a.forNewPort(reqs, reqs != nil, own.DeviceOwner, own.MAC); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(own.FixedIPs, func(f fixedIP) bool { return f.IP.Is4() })
		if i < 0 {
			return nil, newError(http.StatusBadRequest, "ExternalIpAddressExhausted", "Unable to find any IP address on external network %s.", n.ID)
		}
		f.Address, f.OwnPortID = own.FixedIPs[i].IP, own.ID
		// Created, then updated with the floating IP's id: revision 2.
		if own.standard, err = t.newStandard("", nil, 2); err != nil {
			return nil, err
		}
		if err := t.savePort(nil, own); err != nil {
			return nil, err
		}
		if err := t.associate(c, f, in.portID, in.fixedIP, in.hasFixed && in.fixedIP.IsValid()); err != nil {
			return nil, err
		}
		if f.standard, err = t.newStandard(in.desc, nil, 0); err != nil {
			return nil, err
		}
		if err := put(t, bucketFloatingIPs, f); err != nil {
			return nil, err
		}
		o, err := t.renderFloatingIP(f)
		if err != nil {
			return nil, err
		}
		return o, nil
	}, nil
}

// associate associates f with a port's fixed IP (portID "" disassociates)
// and derives the router, as Neutron's _update_fip_assoc.
func (t *txn) associate(c *caller, f *floatingIP, portID string, fixed netip.Addr, hasFixed bool) error {
	if hasFixed && portID == "" {
		return errBadResourceRequest("floatingip", "fixed_ip_address cannot be specified without a port_id")
	}
	if portID == "" {
		f.PortID, f.FixedIP, f.RouterID = "", netip.Addr{}, ""
		return nil
	}
	p, _, err := t.visiblePort(c, portID)
	if err != nil {
		return err
	}
	if p.TenantID != f.TenantID && !c.Admin {
		return errBadResourceRequest("floatingip", "Cannot process floating IP association with Port %s, since that port is owned by a different tenant", p.ID)
	}
	if p.DeviceOwner == ownerDHCP { // Neutron's is_fip_serviced
		return errBadResourceRequest("floatingip", "Port %s is unable to be assigned a floating IP", p.ID)
	}
	var subnetID string
	if hasFixed {
		if !fixed.Is4() {
			return errBadResourceRequest("floatingip", "Cannot process floating IP association with %s, since that is not an IPv4 address", fixed)
		}
		for _, ip := range p.FixedIPs {
			if ip.IP == fixed {
				subnetID = ip.SubnetID
			}
		}
		if subnetID == "" {
			return errBadResourceRequest("floatingip", "Port %s does not have fixed ip %s", p.ID, fixed)
		}
	} else {
		var v4 []fixedIP
		for _, ip := range p.FixedIPs {
			if ip.IP.Is4() {
				v4 = append(v4, ip)
			}
		}
		switch len(v4) {
		case 0:
			return errBadResourceRequest("floatingip", "Cannot add floating IP to port %s that has no fixed IPv4 addresses", p.ID)
		case 1:
			fixed, subnetID = v4[0].IP, v4[0].SubnetID
		default:
			return errBadResourceRequest("floatingip", "Port %s has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP", p.ID)
		}
	}
	routerID, err := t.routerForFloatingIP(p, subnetID, f.NetworkID)
	if err != nil {
		return err
	}
	if p.ID != f.PortID {
		fips, err := t.floatingIPs()
		if err != nil {
			return err
		}
		for _, o := range fips {
			if o.ID != f.ID && o.PortID == p.ID && o.NetworkID == f.NetworkID && o.FixedIP == fixed {
				return errConflict("FloatingIPPortAlreadyAssociated",
					"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
					f.Address, f.ID, p.ID, fixed, f.NetworkID)
			}
		}
	}
	f.PortID, f.FixedIP, f.RouterID = p.ID, fixed, routerID
	return nil
}

// routerForFloatingIP finds the router that connects the internal port's
// subnet to the floating IP's network, as Neutron's
// get_router_for_floatingip: among the routers with a gateway on the
// external network and an interface on the subnet, the one whose interface
// holds the subnet's gateway IP, else the first.
func (t *txn) routerForFloatingIP(internal *port, subnetID, externalID string) (string, error) {
	sn, err := t.subnet(subnetID)
	if err != nil {
		return "", err
	}
	ports, err := t.ports()
	if err != nil {
		return "", err
	}
	gateways := map[string]bool{}
	for _, p := range ports {
		if p.DeviceOwner == ownerRouterGateway && p.NetworkID == externalID {
			gateways[p.DeviceID] = true
		}
	}
	first := ""
	for _, p := range ports {
		if p.NetworkID != internal.NetworkID || !routerInterfaceOwner(p.DeviceOwner) || !gateways[p.DeviceID] {
			continue
		}
		for _, f := range p.FixedIPs {
			if f.SubnetID != subnetID {
				continue
			}
			if sn != nil && f.IP == sn.GatewayIP {
				return p.DeviceID, nil
			}
			if first == "" {
				first = p.DeviceID
			}
		}
	}
	if first != "" {
		return first, nil
	}
	return "", errNotFound("ExternalGatewayForFloatingIPNotFound",
		"External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.", externalID, subnetID, internal.ID)
}

func (s *Server) updateFloatingIP(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	b, err := readBody(r, c, "floatingip", floatingIPAttrs)
	if err != nil {
		return 0, nil, err
	}
	in := readFIPInput(b)
	if b.err != nil {
		return 0, nil, b.err
	}
	id := pathID(r)
	s.notifyStart(c, "floatingip.update.start", startPayload("floatingip", b.raw, id))
	var out object
	err = s.write(c, func(t *txn) error {
		f, err := t.visibleFloatingIP(c, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, &f.standard); err != nil {
			return err
		}
		portID, fixed, hasFixed := in.portID, in.fixedIP, in.hasFixed && in.fixedIP.IsValid()
		if !in.hasPort {
			// Without port_id, the association stays (its router is
			// derived again), as in Neutron.
			portID = f.PortID
			if !in.hasFixed && f.FixedIP.IsValid() {
				fixed, hasFixed = f.FixedIP, true
			}
		}
		if portID != "" || hasFixed || in.hasPort {
			if err := t.associate(c, f, portID, fixed, hasFixed); err != nil {
				return err
			}
		}
		set(in.hasDesc, &f.Description, in.desc)
		f.touch(t.now)
		if err := put(t, bucketFloatingIPs, f); err != nil {
			return err
		}
		if out, err = t.renderFloatingIP(f); err != nil {
			return err
		}
		t.emit("floatingip.update.end", object{{"floatingip", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"floatingip", out}}, nil
}

func (s *Server) deleteFloatingIP(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	s.notifyStart(c, "floatingip.delete.start", deletePayload("floatingip", id, nil))
	err := s.write(c, func(t *txn) error {
		f, err := t.visibleFloatingIP(c, id)
		if err != nil {
			return err
		}
		deleted, err := t.renderFloatingIP(f)
		if err != nil {
			return err
		}
		own, err := t.port(f.OwnPortID)
		if err != nil {
			return err
		}
		if own != nil {
			if err := t.savePort(own, nil); err != nil {
				return err
			}
		}
		if err := del(t, bucketFloatingIPs, id); err != nil {
			return err
		}
		t.emit("floatingip.delete.end", deletePayload("floatingip", id, deleted))
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// disassociateFloatingIPs disassociates the floating IPs of a port being
// deleted (no notification, as in Neutron).
func (t *txn) disassociateFloatingIPs(portID string) error {
	fips, err := t.floatingIPs()
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.PortID != portID {
			continue
		}
		f.PortID, f.FixedIP, f.RouterID = "", netip.Addr{}, ""
		f.touch(t.now)
		if err := put(t, bucketFloatingIPs, f); err != nil {
			return err
		}
	}
	return nil
}

// refreshFloatingIPs disassociates the floating IPs whose fixed IP a port
// no longer has.
func (t *txn) refreshFloatingIPs(p *port) error {
	fips, err := t.floatingIPs()
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.PortID != p.ID || slices.ContainsFunc(p.FixedIPs, func(ip fixedIP) bool { return ip.IP == f.FixedIP }) {
			continue
		}
		f.PortID, f.FixedIP, f.RouterID = "", netip.Addr{}, ""
		f.touch(t.now)
		if err := put(t, bucketFloatingIPs, f); err != nil {
			return err
		}
	}
	return nil
}
