package netapi

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

// ipRequest is one entry of a port's requested fixed_ips.
type ipRequest struct {
	SubnetID string
	IP       netip.Addr
}

// parseFixedIPs reads a fixed_ips attribute as Neutron's validate_fixed_ips.
func (b *body) fixedIPs(k string) ([]ipRequest, bool) {
	var raw []map[string]json.RawMessage
	if !b.objects(k, "fixed IP", &raw) {
		return nil, false
	}
	out := make([]ipRequest, 0, len(raw))
	seen := map[netip.Addr]bool{}
	for _, m := range raw {
		var req ipRequest
		for key, v := range m {
			var s string
			if json.Unmarshal(v, &s) != nil {
				b.fail(k, fmt.Sprintf("Invalid data format for fixed IP: '%s'", shown(v)))
				return nil, false
			}
			switch key {
			case "subnet_id":
				if !isUUID(s) {
					b.fail(k, fmt.Sprintf("'%s' is not a valid UUID", s))
					return nil, false
				}
				req.SubnetID = s
			case "ip_address":
				a, ok := parseIP(s)
				if !ok {
					b.fail(k, fmt.Sprintf("'%s' is not a valid IP address", s))
					return nil, false
				}
				if seen[a] {
					b.fail(k, fmt.Sprintf("Duplicate IP address '%s'", s))
					return nil, false
				}
				seen[a] = true
				req.IP = a
			default:
				b.fail(k, fmt.Sprintf("Invalid data format for fixed IP: '%s'", key))
				return nil, false
			}
		}
		out = append(out, req)
	}
	return out, true
}

// allocator allocates the addresses of one port, within a transaction.
type allocator struct {
	t       *txn
	net     *network
	subnets []*subnet
	portID  string
	taken   map[string]bool // "<subnet>/<ip>" taken by this allocation
}

func (t *txn) allocator(n *network, portID string) (*allocator, error) {
	subs, err := t.subnetsOf(n)
	if err != nil {
		return nil, err
	}
	return &allocator{t: t, net: n, subnets: subs, portID: portID, taken: map[string]bool{}}, nil
}

// candidates are the subnets a port of owner may get addresses from
// (subnet-service-types): those whose service types include the owner
// first, then those without service types.
func (a *allocator) candidates(owner string) []*subnet {
	var typed, plain []*subnet
	for _, s := range a.subnets {
		switch {
		case len(s.ServiceTypes) == 0:
			plain = append(plain, s)
		case slices.Contains(s.ServiceTypes, owner) || (owner == ownerDHCP && s.EnableDHCP):
			typed = append(typed, s)
		}
	}
	return append(typed, plain...)
}

// free reports whether ip on subnet is free for this port.
func (a *allocator) free(subnetID string, ip netip.Addr) bool {
	if a.taken[subnetID+"/"+ip.String()] {
		return false
	}
	h := a.t.ipHolder(subnetID, ip)
	return h == "" || h == a.portID
}

func (a *allocator) take(s *subnet, ip netip.Addr) fixedIP {
	a.taken[s.ID+"/"+ip.String()] = true
	return fixedIP{SubnetID: s.ID, IP: ip}
}

// next returns the lowest free address of a subnet's pools.
func (a *allocator) next(s *subnet) (netip.Addr, bool, error) {
	used, err := a.t.usedIPs(s.ID)
	if err != nil {
		return netip.Addr{}, false, err
	}
	for k := range a.taken {
		if sid, ip, ok := cutIPKey(k); ok && sid == s.ID {
			used = append(used, ip)
		}
	}
	used = slices.DeleteFunc(used, func(ip netip.Addr) bool { return a.t.ipHolder(s.ID, ip) == a.portID && !a.taken[s.ID+"/"+ip.String()] })
	slices.SortFunc(used, netip.Addr.Compare)
	ip, ok := ipam.FirstFree(s.Pools, used)
	return ip, ok, nil
}

func cutIPKey(k string) (string, netip.Addr, bool) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '/' {
			ip, err := netip.ParseAddr(k[i+1:])
			return k[:i], ip, err == nil
		}
	}
	return "", netip.Addr{}, false
}

// fromAny allocates one address from the first of subnets with room.
func (a *allocator) fromAny(subnets []*subnet) (fixedIP, error) {
	for _, s := range subnets {
		ip, ok, err := a.next(s)
		if err != nil {
			return fixedIP{}, err
		}
		if ok {
			return a.take(s, ip), nil
		}
	}
	return fixedIP{}, errIPGenerationFailure(a.net.ID)
}

// resolve finds the subnet of a requested fixed IP (Neutron's
// _get_subnet_for_fixed_ip).
func (a *allocator) resolve(cands []*subnet, r ipRequest, owner string) (*subnet, error) {
	if len(a.subnets) == 0 {
		return nil, errInvalidInput("IP allocation requires subnets for network")
	}
	anyNet := routerPortOwner(owner) || owner == ""
	if r.SubnetID != "" {
		i := slices.IndexFunc(cands, func(s *subnet) bool { return s.ID == r.SubnetID })
		if i < 0 {
			s, err := a.t.subnet(r.SubnetID)
			if err != nil {
				return nil, err
			}
			if s == nil {
				return nil, errSubnetNotFound(r.SubnetID)
			}
			return nil, errInvalidInput("Failed to create port on network %s, because fixed_ips included invalid subnet %s", a.net.ID, r.SubnetID)
		}
		if r.IP.IsValid() && !ipam.ValidSubnetIP(cands[i].CIDR, r.IP, anyNet) {
			return nil, newError(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", r.IP)
		}
		return cands[i], nil
	}
	if !r.IP.IsValid() {
		return nil, errInvalidInput("IP allocation requires subnet_id or ip_address")
	}
	for _, s := range cands {
		if ipam.ValidSubnetIP(s.CIDR, r.IP, anyNet) {
			return s, nil
		}
	}
	return nil, newError(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", r.IP)
}

// routerPortOwner reports whether owner is one of Neutron's ROUTER_PORT_OWNERS.
func routerPortOwner(owner string) bool {
	return routerOwner(owner) || owner == "network:router_centralized_snat"
}

func classify(subnets []*subnet) (v4, v6Stateful, v6Auto []*subnet) {
	for _, s := range subnets {
		switch {
		case s.IPVersion == 4:
			v4 = append(v4, s)
		case s.autoAddress():
			v6Auto = append(v6Auto, s)
		default:
			v6Stateful = append(v6Stateful, s)
		}
	}
	return v4, v6Stateful, v6Auto
}

// requested allocates the explicitly requested fixed IPs (addresses
// first, as Neutron does), skipping subnet-only requests on SLAAC subnets,
// which autoAddresses covers.
func (a *allocator) requested(cands []*subnet, reqs []ipRequest, owner string) ([]fixedIP, error) {
	var out []fixedIP
	for pass := 0; pass < 2; pass++ {
		for _, r := range reqs {
			if r.IP.IsValid() != (pass == 0) {
				continue
			}
			s, err := a.resolve(cands, r, owner)
			if err != nil {
				return nil, err
			}
			switch {
			case r.IP.IsValid():
				if s.autoAddress() && !routerInterfaceOwner(owner) {
					return nil, newError(400, "AllocationOnAutoAddressSubnet",
						"IPv6 address %s cannot be directly assigned to a port on subnet %s as the subnet is configured for automatic addresses", r.IP, s.ID)
				}
				if !a.free(s.ID, r.IP) {
					return nil, errIPAlreadyAllocated(r.IP.String(), s.ID)
				}
				out = append(out, a.take(s, r.IP))
			case routerInterfaceOwner(owner) || !s.autoAddress():
				ip, ok, err := a.next(s)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, errConflict("IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", s.ID)
				}
				out = append(out, a.take(s, ip))
			}
		}
	}
	return out, nil
}

// autoAddresses returns the EUI-64 addresses of mac on the SLAAC subnets
// not in have; router interfaces get none.
func (a *allocator) autoAddresses(auto []*subnet, have []fixedIP, owner, mac string) ([]fixedIP, error) {
	if routerInterfaceOwner(owner) {
		return nil, nil
	}
	var out []fixedIP
	for _, s := range auto {
		if slices.ContainsFunc(have, func(f fixedIP) bool { return f.SubnetID == s.ID }) {
			continue
		}
		ip, err := ipam.EUI64(s.CIDR, mac)
		if err != nil {
			return nil, fmt.Errorf("subnet %s: %w", s.ID, err)
		}
		if !a.free(s.ID, ip) {
			return nil, errIPAlreadyAllocated(ip.String(), s.ID)
		}
		out = append(out, a.take(s, ip))
	}
	return out, nil
}

// forNewPort allocates a new port's addresses: reqs when specified, else
// one IPv4 and one stateful IPv6 address, plus its SLAAC addresses.
func (a *allocator) forNewPort(reqs []ipRequest, specified bool, owner, mac string) ([]fixedIP, error) {
	cands := a.candidates(owner)
	v4, v6s, v6auto := classify(cands)
	var out []fixedIP
	if specified {
		if len(reqs) > maxFixedIPs {
			return nil, errInvalidInput("Exceeded maximum amount of fixed ips per port.")
		}
		got, err := a.requested(cands, reqs, owner)
		if err != nil {
			return nil, err
		}
		out = got
	} else {
		for _, group := range [][]*subnet{v4, v6s} {
			if len(group) > 0 {
				f, err := a.fromAny(group)
				if err != nil {
					return nil, err
				}
				out = append(out, f)
			}
		}
	}
	auto, err := a.autoAddresses(v6auto, out, owner, mac)
	if err != nil {
		return nil, err
	}
	return append(out, auto...), nil
}

// forUpdate computes a port's addresses after an update of its fixed_ips
// (Neutron's _get_changed_ips_for_port): requested addresses it has are
// kept, subnet-only requests reuse an address it has on that subnet, and
// its SLAAC addresses stay unless the port is a router interface.
func (a *allocator) forUpdate(p *port, reqs []ipRequest, mac string) ([]fixedIP, error) {
	if len(reqs) > maxFixedIPs {
		return nil, errInvalidInput("Exceeded maximum amount of fixed ips per port.")
	}
	owner := p.DeviceOwner
	orig := slices.Clone(p.FixedIPs)
	var keep []fixedIP
	var add []ipRequest
	for _, r := range reqs {
		if !r.IP.IsValid() {
			continue
		}
		if i := slices.IndexFunc(orig, func(f fixedIP) bool { return f.IP == r.IP }); i >= 0 {
			keep = append(keep, orig[i])
			orig = slices.Delete(orig, i, i+1)
		} else {
			add = append(add, r)
		}
	}
	for _, r := range reqs {
		if r.IP.IsValid() {
			continue
		}
		i := slices.IndexFunc(orig, func(f fixedIP) bool { return f.SubnetID == r.SubnetID })
		if i < 0 || a.isAuto(orig[i].SubnetID) {
			add = append(add, r)
			if i >= 0 {
				orig = slices.Delete(orig, i, i+1)
			}
			continue
		}
		keep = append(keep, orig[i])
		orig = slices.Delete(orig, i, i+1)
	}
	// Unclaimed addresses go, but SLAAC addresses of ports other than
	// router interfaces stay.
	for _, f := range orig {
		if a.isAuto(f.SubnetID) && !routerInterfaceOwner(owner) {
			keep = append(keep, f)
		}
	}
	for _, f := range keep {
		a.taken[f.SubnetID+"/"+f.IP.String()] = true
	}
	cands := a.candidates(owner)
	added, err := a.requested(cands, add, owner)
	if err != nil {
		return nil, err
	}
	out := append(keep, added...)
	_, _, v6auto := classify(cands)
	auto, err := a.autoAddresses(v6auto, out, owner, mac)
	if err != nil {
		return nil, err
	}
	return append(out, auto...), nil
}

func (a *allocator) isAuto(subnetID string) bool {
	i := slices.IndexFunc(a.subnets, func(s *subnet) bool { return s.ID == subnetID })
	return i >= 0 && a.subnets[i].autoAddress()
}
