package netapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

var portAttrs = map[string]access{
	"id": never, "name": onBoth, "network_id": onPost, "tenant_id": onPost, "project_id": onPost,
	"admin_state_up": onBoth, "mac_address": onBoth, "fixed_ips": onBoth, "device_id": onBoth,
	"device_owner": onBoth, "status": never, "security_groups": onBoth,
	"port_security_enabled": onBoth, "allowed_address_pairs": onBoth,
	"binding:host_id": onBoth, "binding:profile": onBoth, "binding:vnic_type": onBoth,
	"binding:vif_type": never, "binding:vif_details": never, "extra_dhcp_opts": never,
	"description": onBoth, "tags": onPost,
	"created_at": never, "updated_at": never, "revision_number": never,
}

var portCollection = collection{
	name: "ports",
	filters: attrSet("id", "name", "network_id", "tenant_id", "project_id", "admin_state_up",
		"mac_address", "fixed_ips", "device_id", "device_owner", "status", "security_groups",
		"port_security_enabled", "binding:host_id", "binding:vnic_type", "description",
		"revision_number"),
	match: matchFixedIPs,
}

// matchFixedIPs filters on fixed_ips=ip_address=X, fixed_ips=subnet_id=Y
// and fixed_ips=ip_address_substr=Z: a port matches when one of its
// addresses satisfies every given key (each key: any of its values).
func matchFixedIPs(o object, key string, values []string) (bool, bool) {
	if key != "fixed_ips" {
		return false, false
	}
	want := map[string][]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			continue
		}
		want[k] = append(want[k], val)
	}
	v, _ := o.get("fixed_ips")
	ips, _ := v.([]object)
	for _, f := range ips {
		sid, _ := f.get("subnet_id")
		ip, _ := f.get("ip_address")
		ok := true
		for k, vals := range want {
			switch k {
			case "ip_address":
				ok = ok && slices.Contains(vals, ip.(string))
			case "subnet_id":
				ok = ok && slices.Contains(vals, sid.(string))
			case "ip_address_substr":
				ok = ok && slices.ContainsFunc(vals, func(s string) bool { return strings.Contains(ip.(string), s) })
			}
		}
		if ok {
			return true, true
		}
	}
	return false, true
}

// vnicTypes are the binding:vnic_type values Neutron accepts.
var vnicTypes = []string{"normal", "direct", "macvtap", "baremetal", "direct-physical",
	"virtio-forwarder", "smart-nic", "vdpa", "accelerator-direct", "accelerator-direct-physical", "remote-managed"}

const maxAddressPairs = 10 // [DEFAULT]max_allowed_address_pair

// portInput is what a port request gives.
type portInput struct {
	name, desc, deviceID, deviceOwner, mac, hostID, vnicType string
	up, portSec                                              bool
	groups, tags                                             []string
	profile                                                  json.RawMessage
	pairs                                                    []addressPair
	ips                                                      []ipRequest

	hasName, hasDesc, hasDeviceID, hasDeviceOwner, hasMAC, hasHost, hasVNIC bool
	hasUp, hasPortSec, hasGroups, hasProfile, hasPairs, hasIPs              bool
}

func readPortInput(b *body) portInput {
	in := portInput{up: true}
	in.hasName = b.str("name", maxNameLen, &in.name)
	in.hasDesc = b.str("description", maxDescLen, &in.desc)
	in.hasDeviceID = b.str("device_id", maxDeviceLen, &in.deviceID)
	in.hasDeviceOwner = b.str("device_owner", maxDeviceLen, &in.deviceOwner)
	in.hasMAC = b.mac("mac_address", &in.mac)
	in.hasHost = b.str("binding:host_id", maxNameLen, &in.hostID)
	if in.hasVNIC = b.str("binding:vnic_type", maxNameLen, &in.vnicType); in.hasVNIC && !slices.Contains(vnicTypes, in.vnicType) {
		b.fail("binding:vnic_type", fmt.Sprintf("%s is not in valid_values", in.vnicType))
	}
	in.hasUp = b.boolean("admin_state_up", &in.up)
	in.hasPortSec = b.boolean("port_security_enabled", &in.portSec)
	if in.hasGroups = b.strList("security_groups", 36, &in.groups); in.hasGroups {
		for _, g := range in.groups {
			if !isUUID(g) {
				b.fail("security_groups", fmt.Sprintf("'%s' is not a valid UUID", g))
			}
		}
	}
	b.strList("tags", maxTagLen, &in.tags)
	if v, ok := b.attrs["binding:profile"]; ok && b.err == nil {
		var m map[string]any
		if json.Unmarshal(v, &m) != nil {
			b.fail("binding:profile", fmt.Sprintf("'%s' is not a dictionary", shown(v)))
		} else {
			in.profile, in.hasProfile = compact(v), true
			if m == nil {
				in.profile = json.RawMessage("{}")
			}
		}
	}
	in.pairs, in.hasPairs = b.addressPairs("allowed_address_pairs")
	in.ips, in.hasIPs = b.fixedIPs("fixed_ips")
	return in
}

func (b *body) addressPairs(k string) ([]addressPair, bool) {
	var raw []map[string]json.RawMessage
	if !b.objects(k, "address pair", &raw) {
		return nil, false
	}
	if len(raw) > maxAddressPairs {
		b.err = newError(http.StatusBadRequest, "AllowedAddressPairExhausted", "The number of allowed address pair exceeds the maximum %d.", maxAddressPairs)
		return nil, false
	}
	out := make([]addressPair, 0, len(raw))
	for _, m := range raw {
		var p addressPair
		for key, v := range m {
			var s string
			if json.Unmarshal(v, &s) != nil {
				b.fail(k, fmt.Sprintf("'%s' is not a valid string", shown(v)))
				return nil, false
			}
			switch key {
			case "ip_address":
				if _, ok := parseIP(s); !ok {
					if _, err := netip.ParsePrefix(s); err != nil {
						b.fail(k, fmt.Sprintf("'%s' is not a valid IP address", s))
						return nil, false
					}
				}
				p.IPAddress = s
			case "mac_address":
				m, err := ipam.NormalizeMAC(s)
				if err != nil {
					b.fail(k, fmt.Sprintf("'%s' is not a valid MAC address", s))
					return nil, false
				}
				p.MACAddress = m
			default:
				b.err = errBadRequest("Unrecognized attribute(s) '%s'", key)
				return nil, false
			}
		}
		if p.IPAddress == "" {
			b.err = newError(http.StatusBadRequest, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
			return nil, false
		}
		if slices.Contains(out, p) {
			b.err = newError(http.StatusBadRequest, "DuplicateAddressPairInRequest",
				"Request contains duplicate address pair: mac_address %s ip_address %s.", p.MACAddress, p.IPAddress)
			return nil, false
		}
		out = append(out, p)
	}
	return out, true
}

// checkPortPolicy refuses what only admin or the network's owner may set.
func checkPortPolicy(c *caller, in *portInput, n *network, action string) error {
	if c.Admin {
		return nil
	}
	netOwner := c.ProjectID == n.TenantID
	switch {
	case in.hasHost:
		return errPolicyAttr(action, "binding:host_id")
	case in.hasProfile:
		return errPolicyAttr(action, "binding:profile")
	case in.hasDeviceOwner && strings.HasPrefix(in.deviceOwner, ownerPrefixNetworkRole) && !netOwner:
		return errPolicyAttr(action, "device_owner")
	case in.hasMAC && (!netOwner || action == "update_port"):
		return errPolicyAttr(action, "mac_address")
	case in.hasPortSec && !netOwner:
		return errPolicyAttr(action, "port_security_enabled")
	case in.hasPairs && !netOwner:
		return errPolicyAttr(action, "allowed_address_pairs")
	case in.hasIPs && !netOwner && !(n.Shared && action == "create_port" && !slices.ContainsFunc(in.ips, func(r ipRequest) bool { return r.IP.IsValid() })):
		return errPolicyAttr(action, "fixed_ips")
	}
	return nil
}

// trustedOwner reports whether a port is one of Neutron's own (its owner
// starts with "network:"), which get neither port security nor security
// groups.
func trustedOwner(owner string) bool { return strings.HasPrefix(owner, ownerPrefixNetworkRole) }

// checkPortSecurity applies the port-security rules to a port's final state.
func checkPortSecurity(p *port) error {
	if !p.PortSecurity && len(p.SecurityGroups) > 0 {
		return newError(http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups",
			"Port security must be enabled and port must have an IP address in order to use security groups.")
	}
	if !p.PortSecurity && len(p.AddressPairs) > 0 {
		return errConflict("AddressPairAndPortSecurityRequired",
			"Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	return nil
}

func (s *Server) listPorts(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.list(r, portCollection, func(t *txn) ([]object, error) {
		ports, err := t.ports()
		if err != nil {
			return nil, err
		}
		nets := networkCache{t: t}
		var objs []object
		for _, p := range ports {
			n, err := nets.get(p.NetworkID)
			if err != nil {
				return nil, err
			}
			if canSeePort(c, p, n) {
				objs = append(objs, renderPort(p, c, viewShow))
			}
		}
		return objs, nil
	})
}

// visiblePort reads a port the caller can see; 404 otherwise.
func (t *txn) visiblePort(c *caller, id string) (*port, *network, error) {
	p, err := t.port(id)
	if err != nil {
		return nil, nil, err
	}
	if p == nil {
		return nil, nil, errPortNotFound(id)
	}
	n, err := t.network(p.NetworkID)
	if err != nil {
		return nil, nil, err
	}
	if !canSeePort(c, p, n) {
		return nil, nil, errPortNotFound(id)
	}
	return p, n, nil
}

func (s *Server) showPort(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.show(r, "port", func(t *txn) (object, error) {
		p, _, err := t.visiblePort(c, pathID(r))
		if err != nil {
			return nil, err
		}
		return renderPort(p, c, viewShow), nil
	})
}

func (s *Server) preparePort(c *caller, b *body) (applyFunc, error) {
	var networkID string
	b.require("network_id")
	b.uuid("network_id", &networkID)
	in := readPortInput(b)
	if b.err != nil {
		return nil, b.err
	}
	tenant, err := b.project(c)
	if err != nil {
		return nil, err
	}
	if err := s.checkNetworkOwnership(c, "port", networkID, tenant); err != nil {
		return nil, err
	}
	return func(t *txn) (object, error) {
		n, err := t.network(networkID)
		if err != nil {
			return nil, err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return nil, errNetworkNotFound(networkID)
		}
		if err := checkPortPolicy(c, &in, n, "create_port"); err != nil {
			return nil, err
		}
		if err := t.checkRouterDevice(c, in.deviceOwner, in.deviceID); err != nil {
			return nil, err
		}
		p := &port{
			ID: newUUID(), Name: in.name, NetworkID: n.ID, TenantID: tenant,
			AdminStateUp: in.up, DeviceID: in.deviceID, DeviceOwner: in.deviceOwner,
			PortSecurity: n.PortSecurity, SecurityGroups: orEmpty(in.groups),
			VNICType: "normal", Profile: orObject(in.profile), HostID: in.hostID, AddressPairs: orEmpty(in.pairs),
		}
		set(in.hasPortSec, &p.PortSecurity, in.portSec)
		set(in.hasVNIC, &p.VNICType, in.vnicType)
		if err := t.pickMAC(p, in.mac); err != nil {
			return nil, err
		}
		fillPairMACs(p)
		if trustedOwner(p.DeviceOwner) {
			// Neutron applies no port security, and no security
			// groups, to its own (network:*) ports.
			p.PortSecurity, p.SecurityGroups = false, []string{}
		} else if err := checkPortSecurity(p); err != nil {
			return nil, err
		}
		a, err := t.allocator(n, p.ID)
		if err != nil {
			return nil, err
		}
		if p.FixedIPs, err = a.forNewPort(in.ips, in.hasIPs, p.DeviceOwner, p.MAC); err != nil {
			return nil, err
		}
		if p.standard, err = t.newStandard(in.desc, in.tags, 1); err != nil {
			return nil, err
		}
		if err := t.savePort(nil, p); err != nil {
			return nil, err
		}
		return renderPort(p, c, viewCreated), nil
	}, nil
}

// pickMAC gives p the requested MAC (unique on its network) or a random one.
func (t *txn) pickMAC(p *port, mac string) error {
	if mac != "" {
		if h := t.macHolder(p.NetworkID, mac); h != "" && h != p.ID {
			return errConflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, mac)
		}
		p.MAC = mac
		return nil
	}
	for range 16 { // [DEFAULT]mac_generation_retries
		m, err := ipam.RandomMAC()
		if err != nil {
			return err
		}
		if t.macHolder(p.NetworkID, m) == "" {
			p.MAC = m
			return nil
		}
	}
	return newError(http.StatusServiceUnavailable, "MacAddressGenerationFailure", "Unable to generate unique mac on network %s.", p.NetworkID)
}

// fillPairMACs gives allowed address pairs without a MAC the port's.
func fillPairMACs(p *port) {
	for i := range p.AddressPairs {
		if p.AddressPairs[i].MACAddress == "" {
			p.AddressPairs[i].MACAddress = p.MAC
		}
	}
}

// checkRouterDevice refuses a project's router-interface port for a
// router it does not own (Neutron's DeviceIDNotOwnedByTenant).
func (t *txn) checkRouterDevice(c *caller, owner, deviceID string) error {
	if c.Admin || deviceID == "" || !routerInterfaceOwner(owner) {
		return nil
	}
	r, err := t.router(deviceID)
	if err != nil {
		return err
	}
	if r == nil || r.TenantID != c.ProjectID {
		return errConflict("DeviceIDNotOwnedByTenant", "The following device_id %s is not owned by your tenant or matches another tenants router.", deviceID)
	}
	return nil
}

func clonePort(p *port) *port {
	c := *p
	c.FixedIPs = slices.Clone(p.FixedIPs)
	c.SecurityGroups = slices.Clone(p.SecurityGroups)
	c.AddressPairs = slices.Clone(p.AddressPairs)
	c.Tags = slices.Clone(p.Tags)
	return &c
}

func (s *Server) updatePort(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	b, err := readBody(r, c, "port", portAttrs)
	if err != nil {
		return 0, nil, err
	}
	in := readPortInput(b)
	if b.err != nil {
		return 0, nil, b.err
	}
	id := pathID(r)
	s.notifyStart(c, "port.update.start", startPayload("port", b.raw, id))
	var out object
	err = s.write(c, func(t *txn) error {
		old, n, err := t.visiblePort(c, id)
		if err != nil {
			return err
		}
		if !c.owns(old.TenantID) {
			return errPolicy("update_port")
		}
		if err := checkPortPolicy(c, &in, n, "update_port"); err != nil {
			return err
		}
		if err := checkIfMatch(r, &old.standard); err != nil {
			return err
		}
		if in.hasDeviceOwner || in.hasDeviceID {
			if err := t.checkRouterDevice(c, cmpOr(in.deviceOwner, old.DeviceOwner), cmpOr(in.deviceID, old.DeviceID)); err != nil {
				return err
			}
		}
		p := clonePort(old)
		set(in.hasName, &p.Name, in.name)
		set(in.hasDesc, &p.Description, in.desc)
		set(in.hasUp, &p.AdminStateUp, in.up)
		set(in.hasDeviceID, &p.DeviceID, in.deviceID)
		set(in.hasDeviceOwner, &p.DeviceOwner, in.deviceOwner)
		set(in.hasHost, &p.HostID, in.hostID)
		set(in.hasVNIC, &p.VNICType, in.vnicType)
		set(in.hasProfile, &p.Profile, in.profile)
		set(in.hasPortSec, &p.PortSecurity, in.portSec)
		set(in.hasGroups, &p.SecurityGroups, in.groups)
		set(in.hasPairs, &p.AddressPairs, in.pairs)
		macChanged := in.hasMAC && in.mac != old.MAC
		if macChanged {
			if old.HostID != "" {
				return errConflict("PortBound", "Unable to complete operation on port %s, port is already bound, port type: %s, old_mac %s, new_mac %s.",
					old.ID, vifType(old), old.MAC, in.mac)
			}
			if err := t.pickMAC(p, in.mac); err != nil {
				return err
			}
		}
		fillPairMACs(p)
		if err := checkPortSecurity(p); err != nil {
			return err
		}
		if in.hasIPs || macChanged || in.hasDeviceOwner {
			a, err := t.allocator(n, p.ID)
			if err != nil {
				return err
			}
			reqs := in.ips
			if !in.hasIPs {
				for _, f := range old.FixedIPs {
					if !a.isAuto(f.SubnetID) {
						reqs = append(reqs, ipRequest(f))
					}
				}
			}
			if macChanged {
				p.FixedIPs = slices.DeleteFunc(p.FixedIPs, func(f fixedIP) bool { return a.isAuto(f.SubnetID) })
			}
			if p.FixedIPs, err = a.forUpdate(p, reqs, p.MAC); err != nil {
				return err
			}
		}
		p.touch(t.now)
		if err := t.savePort(old, p); err != nil {
			return err
		}
		if err := t.refreshFloatingIPs(p); err != nil {
			return err
		}
		out = renderPort(p, c, viewUpdated)
		t.emit("port.update.end", object{{"port", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"port", out}}, nil
}

// protectedOwners are the ports only the L3 API may delete.
var protectedOwners = []string{ownerRouterInterface, ownerHAInterface, ownerDVRInterface, ownerRouterGateway,
	ownerFloatingIP, "network:router_ha_interface", "network:router_centralized_snat"}

func (s *Server) deletePort(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	s.notifyStart(c, "port.delete.start", deletePayload("port", id, nil))
	err := s.write(c, func(t *txn) error {
		p, n, err := t.visiblePort(c, id)
		if err != nil {
			return err
		}
		if !c.owns(p.TenantID) && !c.owns(n.TenantID) {
			return errPolicy("delete_port")
		}
		if err := t.preventL3PortDeletion(p); err != nil {
			return err
		}
		deleted := renderPort(p, c, viewDeleted)
		if err := t.disassociateFloatingIPs(p.ID); err != nil {
			return err
		}
		if err := t.savePort(p, nil); err != nil {
			return err
		}
		t.emit("port.delete.end", object{{"port", deleted}, {"port_id", id}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// preventL3PortDeletion refuses to delete, through the port API, a port a
// router or floating IP still uses (Neutron's prevent_l3_port_deletion).
func (t *txn) preventL3PortDeletion(p *port) error {
	if !slices.Contains(protectedOwners, p.DeviceOwner) || len(p.FixedIPs) == 0 {
		return nil
	}
	var exists bool
	if p.DeviceOwner == ownerFloatingIP {
		f, err := t.floatingIP(p.DeviceID)
		if err != nil {
			return err
		}
		exists = f != nil
	} else {
		r, err := t.router(p.DeviceID)
		if err != nil {
			return err
		}
		exists = r != nil
	}
	if !exists {
		return nil
	}
	return errConflict("ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %s.", p.ID, p.DeviceOwner)
}

// orObject returns raw, or {} when it is empty or null.
func orObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}")
	}
	return raw
}
