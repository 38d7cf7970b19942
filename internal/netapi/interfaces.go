package netapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

// interfaceInfo is the body of add_router_interface and
// remove_router_interface: {"subnet_id": ...} and/or {"port_id": ...}.
type interfaceInfo struct {
	subnetID, portID string
	bySubnet, byPort bool
}

func readInterfaceInfo(r *http.Request, removal bool) (interfaceInfo, error) {
	var info interfaceInfo
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return info, errBadRequest("Malformed request body: %v", err)
	}
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(data)) > 0 && json.Unmarshal(data, &m) != nil {
		return info, errBadRequest("Malformed request body")
	}
	for _, k := range []struct {
		key string
		dst *string
		has *bool
	}{{"port_id", &info.portID, &info.byPort}, {"subnet_id", &info.subnetID, &info.bySubnet}} {
		v, ok := m[k.key]
		if !ok {
			continue
		}
		*k.has = true
		if json.Unmarshal(v, k.dst) != nil || !isUUID(*k.dst) {
			return info, errBadResourceRequest("router", "'%s' is not a valid UUID", shown(v))
		}
	}
	switch {
	case !info.byPort && !info.bySubnet:
		return info, errBadResourceRequest("router", "Either subnet_id or port_id must be specified")
	case !removal && info.byPort && info.bySubnet:
		return info, errBadResourceRequest("router", "Cannot specify both subnet-id and port-id")
	}
	return info, nil
}

// interfaceResult is Neutron's router interface info: the response of
// add/remove_router_interface and the router.interface.* payload.
func interfaceResult(routerID string, p *port, subnets []*subnet, last bool) object {
	ids := make([]string, 0, len(subnets))
	for _, s := range subnets {
		ids = append(ids, s.ID)
	}
	sid := ids[0]
	if last {
		sid = ids[len(ids)-1]
	}
	return object{
		{"id", routerID},
		{"tenant_id", p.TenantID},
		{"port_id", p.ID},
		{"network_id", p.NetworkID},
		{"subnet_id", sid},
		{"subnet_ids", ids},
	}
}

// checkAddressMode refuses IPv6 subnets whose RAs come from another router.
func checkAddressMode(s *subnet) error {
	if s.IPVersion == 6 && s.RAMode == "" && s.AddressMode != "" {
		return errBadResourceRequest("router", "IPv6 subnet %s configured to receive RAs from an external router cannot be added to Neutron Router.", s.ID)
	}
	return nil
}

func hasIPv6(p *port) bool {
	return slices.ContainsFunc(p.FixedIPs, func(f fixedIP) bool { return f.IP.Is6() })
}

func (s *Server) addRouterInterface(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	info, infoErr := readInterfaceInfo(r, false)
	var out object
	err := s.write(c, func(t *txn) error {
		rt, err := t.visibleRouter(c, id)
		if err != nil {
			return err
		}
		if infoErr != nil {
			return infoErr
		}
		var p *port
		var subnets []*subnet
		last := true
		if info.byPort {
			p, subnets, err = t.addInterfaceByPort(c, rt, info.portID)
		} else {
			p, subnets, last, err = t.addInterfaceBySubnet(c, rt, info.subnetID)
		}
		if err != nil {
			return err
		}
		rt.touch(t.now)
		if err := put(t, bucketRouters, rt); err != nil {
			return err
		}
		out = interfaceResult(rt.ID, p, subnets, last)
		t.emit("router.interface.create", object{{"router_interface", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

func (t *txn) addInterfaceByPort(c *caller, rt *router, portID string) (*port, []*subnet, error) {
	old, _, err := t.visiblePort(c, portID)
	if err != nil {
		return nil, nil, err
	}
	if old.DeviceID != "" {
		return nil, nil, errConflict("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", old.ID, old.NetworkID, old.DeviceID)
	}
	if len(old.FixedIPs) == 0 {
		return nil, nil, errBadResourceRequest("router", "Router port must have at least one fixed IP")
	}
	var subnets []*subnet
	for _, f := range old.FixedIPs {
		sn, err := t.subnet(f.SubnetID)
		if err != nil {
			return nil, nil, err
		}
		if err := checkAddressMode(sn); err != nil {
			return nil, nil, err
		}
		subnets = append(subnets, sn)
	}
	if hasIPv6(old) {
		ports, err := t.routerPorts(rt)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range ports {
			if e.NetworkID == old.NetworkID && hasIPv6(e) {
				return nil, nil, errBadResourceRequest("router", "Cannot have multiple router ports with the same network id if both contain IPv6 subnets. Existing port %s has IPv6 subnet(s) and network id %s", e.ID, e.NetworkID)
			}
		}
	}
	if err := t.checkDuplicateRouterSubnets(rt, subnets); err != nil {
		return nil, nil, err
	}
	v4 := 0
	for _, sn := range subnets {
		if sn.IPVersion == 4 {
			v4++
		}
	}
	if v4 > 1 {
		return nil, nil, errBadResourceRequest("router", "Cannot have multiple IPv4 subnets on router port")
	}
	if !c.Admin {
		for i, f := range old.FixedIPs {
			sn := subnets[i]
			inPool := slices.ContainsFunc(sn.Pools, func(p ipam.Range) bool { return p.Contains(f.IP) })
			if !inPool && sn.TenantID != c.ProjectID {
				return nil, nil, errBadResourceRequest("router", "Cannot add interface to router because specified port %s has an IP address out of the allocation pool of subnet %s, which is not owned by the project making the request", old.ID, sn.ID)
			}
		}
	}
	p := clonePort(old)
	p.DeviceID, p.DeviceOwner = rt.ID, ownerRouterInterface
	// Neutron updates the port twice (owner, then the router's port).
	p.touch(t.now)
	p.touch(t.now)
	if err := t.savePort(old, p); err != nil {
		return nil, nil, err
	}
	return p, subnets, nil
}

// addInterfaceBySubnet plugs the router into a subnet on its gateway IP:
// a new router interface port, or, for an IPv6 subnet on a network where
// the router has an IPv6 port, that port (last false: the subnet is added).
func (t *txn) addInterfaceBySubnet(c *caller, rt *router, subnetID string) (*port, []*subnet, bool, error) {
	sn, n, err := t.visibleSubnet(c, subnetID)
	if err != nil {
		return nil, nil, false, err
	}
	if !sn.GatewayIP.IsValid() {
		return nil, nil, false, errBadResourceRequest("router", "Subnet for router interface must have a gateway IP")
	}
	if sn.TenantID != c.ProjectID && !c.Admin {
		return nil, nil, false, errBadResourceRequest("router", "Cannot add interface to router because subnet %s is not owned by project making the request", sn.ID)
	}
	if err := checkAddressMode(sn); err != nil {
		return nil, nil, false, err
	}
	if err := t.checkDuplicateRouterSubnets(rt, []*subnet{sn}); err != nil {
		return nil, nil, false, err
	}
	a, err := t.allocator(n, "")
	if err != nil {
		return nil, nil, false, err
	}
	req := ipRequest{SubnetID: sn.ID, IP: sn.GatewayIP}
	if sn.IPVersion == 6 {
		ports, err := t.routerPorts(rt)
		if err != nil {
			return nil, nil, false, err
		}
		for _, old := range ports {
			if old.DeviceOwner != ownerRouterInterface || old.NetworkID != n.ID || !hasIPv6(old) {
				continue
			}
			p := clonePort(old)
			a.portID = p.ID
			reqs := []ipRequest{req}
			for _, f := range p.FixedIPs {
				reqs = append(reqs, ipRequest(f))
			}
			if p.FixedIPs, err = a.forUpdate(p, reqs, p.MAC); err != nil {
				return nil, nil, false, err
			}
			p.touch(t.now)
			if err := t.savePort(old, p); err != nil {
				return nil, nil, false, err
			}
			return p, []*subnet{sn}, true, nil
		}
	}
	p := &port{ID: newUUID(), NetworkID: n.ID, TenantID: rt.TenantID, AdminStateUp: true,
		DeviceID: rt.ID, DeviceOwner: ownerRouterInterface, PortSecurity: false,
		SecurityGroups: []string{}, VNICType: "normal", AddressPairs: []addressPair{}}
	a.portID = p.ID
	if err := t.pickMAC(p, ""); err != nil {
		return nil, nil, false, err
	}
	if p.FixedIPs, err = a.forNewPort([]ipRequest{req}, true, p.DeviceOwner, p.MAC); err != nil {
		return nil, nil, false, err
	}
	// Created, then updated once as the router's port: revision 2.
	if p.standard, err = t.newStandard("", nil, 2); err != nil {
		return nil, nil, false, err
	}
	if err := t.savePort(nil, p); err != nil {
		return nil, nil, false, err
	}
	return p, []*subnet{sn}, true, nil
}

func (s *Server) removeRouterInterface(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	info, infoErr := readInterfaceInfo(r, true)
	var out object
	err := s.write(c, func(t *txn) error {
		rt, err := t.visibleRouter(c, id)
		if err != nil {
			return err
		}
		if infoErr != nil {
			return infoErr
		}
		var p *port
		var subnets []*subnet
		if info.byPort {
			p, subnets, err = t.removeInterfaceByPort(rt, info.portID, info.subnetID)
		} else {
			p, subnets, err = t.removeInterfaceBySubnet(c, rt, info.subnetID)
		}
		if err != nil {
			return err
		}
		rt.touch(t.now)
		if err := put(t, bucketRouters, rt); err != nil {
			return err
		}
		out = interfaceResult(rt.ID, p, subnets, false)
		t.emit("router.interface.delete", object{{"router_interface", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// checkInterfaceNotInUse refuses to unplug a router from a subnet that
// floating IPs or extra routes of the router depend on.
func (t *txn) checkInterfaceNotInUse(rt *router, sn *subnet) error {
	fips, err := t.floatingIPs()
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.RouterID != rt.ID || !f.FixedIP.IsValid() || !sn.CIDR.Contains(f.FixedIP) {
			continue
		}
		if t.ipHolder(sn.ID, f.FixedIP) == f.PortID {
			return errConflict("RouterInterfaceInUseByFloatingIP",
				"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", sn.ID, rt.ID)
		}
	}
	for _, route := range rt.Routes {
		if sn.CIDR.Contains(route.NextHop) {
			return errConflict("RouterInterfaceInUseByRoute",
				"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", sn.ID, rt.ID)
		}
	}
	return nil
}

func (t *txn) removeInterfaceByPort(rt *router, portID, subnetID string) (*port, []*subnet, error) {
	p, err := t.port(portID)
	if err != nil {
		return nil, nil, err
	}
	if p == nil || p.DeviceID != rt.ID || p.DeviceOwner != ownerRouterInterface {
		return nil, nil, errNotFound("RouterInterfaceNotFound", "Router %s does not have an interface with id %s", rt.ID, portID)
	}
	if subnetID != "" && !slices.ContainsFunc(p.FixedIPs, func(f fixedIP) bool { return f.SubnetID == subnetID }) {
		return nil, nil, newError(http.StatusBadRequest, "SubnetMismatchForPort", "Subnet on port %s does not match the requested subnet %s.", portID, subnetID)
	}
	var subnets []*subnet
	for _, f := range p.FixedIPs {
		sn, err := t.subnet(f.SubnetID)
		if err != nil {
			return nil, nil, err
		}
		if err := t.checkInterfaceNotInUse(rt, sn); err != nil {
			return nil, nil, err
		}
		subnets = append(subnets, sn)
	}
	if len(subnets) == 0 {
		return nil, nil, errNotFound("RouterInterfaceNotFound", "Router %s does not have an interface with id %s", rt.ID, portID)
	}
	if err := t.savePort(p, nil); err != nil {
		return nil, nil, err
	}
	return p, subnets, nil
}

func (t *txn) removeInterfaceBySubnet(c *caller, rt *router, subnetID string) (*port, []*subnet, error) {
	sn, _, err := t.visibleSubnet(c, subnetID)
	if err != nil {
		return nil, nil, err
	}
	ports, err := t.portsWhere(func(p *port) bool {
		return p.DeviceID == rt.ID && p.DeviceOwner == ownerRouterInterface && p.NetworkID == sn.NetworkID
	})
	if err != nil {
		return nil, nil, err
	}
	if len(ports) > 0 {
		if err := t.checkInterfaceNotInUse(rt, sn); err != nil {
			return nil, nil, err
		}
	}
	for _, old := range ports {
		if !slices.ContainsFunc(old.FixedIPs, func(f fixedIP) bool { return f.SubnetID == subnetID }) {
			continue
		}
		if len(old.FixedIPs) > 1 {
			p := clonePort(old)
			p.FixedIPs = slices.DeleteFunc(p.FixedIPs, func(f fixedIP) bool { return f.SubnetID == subnetID })
			p.touch(t.now)
			if err := t.savePort(old, p); err != nil {
				return nil, nil, err
			}
			return old, []*subnet{sn}, nil
		}
		if err := t.savePort(old, nil); err != nil {
			return nil, nil, err
		}
		return old, []*subnet{sn}, nil
	}
	return nil, nil, errNotFound("RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", rt.ID, subnetID)
}
