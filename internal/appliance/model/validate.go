package model

import (
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

var (
	// identifier is what the appliance accepts for ids that end up in HTTP
	// headers and file contents: no spaces, quotes or control characters.
	identifier = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,255}$`)
	// hostLabel is one RFC 1123 DNS label.
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

const (
	minMTU   = 68
	minMTUv6 = 1280
	maxMTU   = 65535
)

// Validate checks the semantic rules of a document: required fields, value
// ranges, uniqueness, and that addresses fit the networks they belong to.
// It returns a *ValidationError listing every problem, or nil.
func (d *Document) Validate() error {
	var e errs
	if d.TenantID == "" {
		e.add("tenant_id", "required")
	} else if !identifier.MatchString(d.TenantID) {
		e.add("tenant_id", "%q must be 1-255 characters from [A-Za-z0-9._:@-]", d.TenantID)
	}
	if d.Hostname == "" {
		e.add("hostname", "required")
	} else if !validHostname(d.Hostname) {
		e.add("hostname", "%q is not a valid host name (RFC 1123 labels separated by dots)", d.Hostname)
	}
	if d.ASN == 0 {
		e.add("asn", "must be between 1 and 4294967295")
	}
	if d.NeighborASN == 0 {
		e.add("neighbor_asn", "must be between 1 and 4294967295")
	}
	if d.HAResource {
		e.add("ha_resource", "HA routers are not supported by this appliance")
	}
	if !d.Orchestrator.Address.IsValid() {
		e.add("orchestrator.address", "required")
	}
	if d.Orchestrator.MetadataPort == 0 {
		e.add("orchestrator.metadata_port", "must be between 1 and 65535")
	}

	d.validateNetworks(&e)
	d.validateGateway(&e)
	d.validateFloatingIPs(&e)
	return e.err()
}

func (d *Document) validateNetworks(e *errs) {
	ids := map[string]int{}
	ifnames := map[string]int{}
	subnetIDs := map[string]string{}
	addrs := map[netip.Addr]string{}
	counts := map[NetworkType]int{}
	for i := range d.Networks {
		n := &d.Networks[i]
		path := idx("networks", i)
		switch {
		case n.ID == "":
			e.add(path+".network_id", "required")
		case !identifier.MatchString(n.ID):
			e.add(path+".network_id", "%q must be 1-255 characters from [A-Za-z0-9._:@-]", n.ID)
		default:
			if j, dup := ids[n.ID]; dup {
				e.add(path+".network_id", "%q is also the id of networks[%d]", n.ID, j)
			}
			ids[n.ID] = i
		}
		switch n.Type {
		case NetworkExternal, NetworkInternal, NetworkIsolated, NetworkManagement:
		case NetworkLoadBalancer:
			e.add(path+".network_type", "loadbalancer networks belong to load-balancer appliances, not routers")
		default:
			e.add(path+".network_type", "must be one of external|internal|isolated|management, not %q", n.Type)
		}
		counts[n.Type]++
		if counts[n.Type] == 2 && (n.Type == NetworkExternal || n.Type == NetworkManagement) {
			e.add(path+".network_type", "a router has at most one %s network", n.Type)
		}
		if n.V4ConfService != "dhcp" && n.V4ConfService != "static" {
			e.add(path+".v4_conf_service", "must be one of dhcp|static, not %q", n.V4ConfService)
		}
		if !slices.Contains([]string{"dhcp", "ra", "static"}, n.V6ConfService) {
			e.add(path+".v6_conf_service", "must be one of dhcp|ra|static, not %q", n.V6ConfService)
		}
		n.validateInterface(e, path+".interface", ifnames, i, addrs)
		for j := range n.Subnets {
			validateSubnet(e, idx(path+".subnets", j), &n.Subnets[j], subnetIDs)
		}
		for j := range n.Allocations {
			n.validateAllocation(e, idx(path+".allocations", j), &n.Allocations[j])
		}
	}
}

func (n *Network) validateInterface(e *errs, path string, ifnames map[string]int, i int, addrs map[netip.Addr]string) {
	ifc := &n.Interface
	if ifc.IfName == "" {
		e.add(path+".ifname", "required")
	} else if _, ok := GenericIndex(ifc.IfName); !ok {
		e.add(path+".ifname", "%q must be a generic interface name geN (N = 0..9999)", ifc.IfName)
	} else {
		if j, dup := ifnames[ifc.IfName]; dup {
			e.add(path+".ifname", "%q is also the interface of networks[%d]", ifc.IfName, j)
		}
		ifnames[ifc.IfName] = i
	}
	if ifc.LLAddr != "" {
		if _, err := net.ParseMAC(ifc.LLAddr); err != nil || len(ifc.LLAddr) != 17 {
			e.add(path+".lladdr", "%q is not a MAC address (aa:bb:cc:dd:ee:ff)", ifc.LLAddr)
		}
	}
	hasV6 := false
	for j, p := range ifc.Addresses {
		if !p.IsValid() {
			continue // already reported while decoding
		}
		ap := idx(path+".addresses", j)
		a := p.Addr()
		hasV6 = hasV6 || a.Is6()
		switch {
		case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
			e.add(ap, "%s is not a unicast address", p)
		case p.Bits() == 0:
			e.add(ap, "%s: prefix length 0 is not an interface address", p)
		case a.Is4() && p.Bits() < 31 && (a == p.Masked().Addr() || a == lastAddr(p)):
			e.add(ap, "%s is the network or broadcast address of its subnet", p)
		}
		if other, dup := addrs[a]; dup {
			e.add(ap, "%s is also assigned at %s", a, other)
		}
		addrs[a] = ap
	}
	if ifc.MTU != 0 {
		lo := minMTU
		if hasV6 {
			lo = minMTUv6
		}
		if ifc.MTU < lo || ifc.MTU > maxMTU {
			e.add(path+".mtu", "must be between %d and %d, not %d", lo, maxMTU, ifc.MTU)
		}
	}
}

func validateSubnet(e *errs, path string, s *Subnet, ids map[string]string) {
	switch {
	case s.ID == "":
		e.add(path+".id", "required")
	case !identifier.MatchString(s.ID):
		e.add(path+".id", "%q must be 1-255 characters from [A-Za-z0-9._:@-]", s.ID)
	default:
		if other, dup := ids[s.ID]; dup {
			e.add(path+".id", "%q is also the id of %s", s.ID, other)
		}
		ids[s.ID] = path
	}
	if !s.CIDR.IsValid() {
		return // reported while decoding
	}
	if s.GatewayIP.IsValid() && !s.CIDR.Contains(s.GatewayIP) {
		e.add(path+".gateway_ip", "%s is not inside the subnet %s", s.GatewayIP, s.CIDR)
	}
	for j, ns := range s.DNSNameservers {
		if ns.IsValid() && (ns.IsUnspecified() || ns.IsMulticast()) {
			e.add(idx(path+".dns_nameservers", j), "%s is not a unicast address", ns)
		}
	}
	for j, r := range s.HostRoutes {
		rp := idx(path+".host_routes", j)
		if !r.Destination.IsValid() || !r.NextHop.IsValid() {
			continue
		}
		if r.Destination.Addr().Is4() != r.NextHop.Is4() {
			e.add(rp+".nexthop", "%s and destination %s are of different IP versions", r.NextHop, r.Destination)
		} else if !s.CIDR.Contains(r.NextHop) {
			e.add(rp+".nexthop", "%s is not on the subnet %s", r.NextHop, s.CIDR)
		}
	}
}

func (n *Network) validateAllocation(e *errs, path string, a *Allocation) {
	// An empty MAC would become a "dhcp-host=,<ip>,<name>" line dnsmasq rejects.
	if a.MACAddress == "" {
		e.add(path+".mac_address", "required")
	} else if hw, err := net.ParseMAC(a.MACAddress); err != nil || len(hw) != 6 || len(a.MACAddress) != 17 {
		e.add(path+".mac_address", "%q is not a MAC address (aa:bb:cc:dd:ee:ff)", a.MACAddress)
	}
	if a.Hostname == "" {
		e.add(path+".hostname", "required")
	} else if !validHostname(a.Hostname) {
		e.add(path+".hostname", "%q is not a valid host name", a.Hostname)
	} else if dhcpAmbiguous(a.Hostname) {
		e.add(path+".hostname", "%q cannot be a DHCP host name: dnsmasq would read it as a lease time or keyword", a.Hostname)
	}
	if a.DeviceID != "" && !identifier.MatchString(a.DeviceID) {
		e.add(path+".device_id", "%q must be 1-255 characters from [A-Za-z0-9._:@-]", a.DeviceID)
	}
	for _, ip := range a.SortedIPs() {
		if !slices.ContainsFunc(n.Subnets, func(s Subnet) bool { return s.CIDR.Contains(ip) }) {
			e.add(path+".ip_addresses["+ip.String()+"]", "%s is not inside any subnet of network %q", ip, n.ID)
		}
	}
}

func (d *Document) validateGateway(e *errs) {
	if !d.DefaultV4Gateway.IsValid() {
		return
	}
	gw := d.DefaultV4Gateway
	if !gw.Is4() {
		e.add("default_v4_gateway", "%s is not an IPv4 address", gw)
		return
	}
	ext := d.External()
	if ext == nil {
		e.add("default_v4_gateway", "set but the router has no external network")
		return
	}
	if !slices.ContainsFunc(ext.Subnets, func(s Subnet) bool { return s.CIDR.Contains(gw) }) &&
		!slices.ContainsFunc(ext.Interface.Addresses, func(p netip.Prefix) bool { return p.Masked().Contains(gw) }) {
		e.add("default_v4_gateway", "%s is not on the external network", gw)
	}
}

func (d *Document) validateFloatingIPs(e *errs) {
	if len(d.FloatingIPs) == 0 {
		return
	}
	ext := d.External()
	floating := make(map[netip.Addr]int, len(d.FloatingIPs))
	fixed := make(map[netip.Addr]int, len(d.FloatingIPs))
	extAddrs := map[netip.Addr]bool{}
	if ext != nil {
		for _, p := range ext.Interface.Addresses {
			extAddrs[p.Addr()] = true
		}
		for _, s := range ext.Subnets {
			if s.GatewayIP.IsValid() {
				extAddrs[s.GatewayIP] = true
			}
		}
	}
	for i, f := range d.FloatingIPs {
		path := idx("floating_ips", i)
		if !f.FloatingIP.IsValid() || !f.FixedIP.IsValid() {
			continue // reported while decoding
		}
		if !f.FloatingIP.Is4() {
			e.add(path+".floating_ip", "%s: only IPv4 floating IPs are supported", f.FloatingIP)
		} else if ext == nil {
			e.add(path+".floating_ip", "the router has no external network")
		} else if !slices.ContainsFunc(ext.Subnets, func(s Subnet) bool { return s.CIDR.Contains(f.FloatingIP) }) {
			e.add(path+".floating_ip", "%s is not inside an external subnet", f.FloatingIP)
		} else if extAddrs[f.FloatingIP] {
			e.add(path+".floating_ip", "%s is the router's own or its gateway's address", f.FloatingIP)
		}
		if j, dup := floating[f.FloatingIP]; dup {
			e.add(path+".floating_ip", "%s is also floating_ips[%d]", f.FloatingIP, j)
		}
		floating[f.FloatingIP] = i
		if !f.FixedIP.Is4() {
			e.add(path+".fixed_ip", "%s: the fixed address of a floating IP must be IPv4", f.FixedIP)
		} else if !d.insideInternal(f.FixedIP) {
			e.add(path+".fixed_ip", "%s is not inside an internal subnet", f.FixedIP)
		}
		if j, dup := fixed[f.FixedIP]; dup {
			e.add(path+".fixed_ip", "%s already has floating_ips[%d]", f.FixedIP, j)
		}
		fixed[f.FixedIP] = i
	}
}

func (d *Document) insideInternal(a netip.Addr) bool {
	for i := range d.Networks {
		n := &d.Networks[i]
		if n.Type != NetworkInternal {
			continue
		}
		for _, s := range n.Subnets {
			if s.CIDR.Contains(a) {
				return true
			}
		}
	}
	return false
}

// SortedIPs returns the allocation's addresses, IPv4 first, in numeric order.
func (a *Allocation) SortedIPs() []netip.Addr {
	out := make([]netip.Addr, 0, len(a.IPAddresses))
	for ip := range a.IPAddresses {
		out = append(out, ip)
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if !hostLabel.MatchString(label) {
			return false
		}
	}
	return true
}

// leaseTime is what dnsmasq reads as a lease time in a dhcp-host entry.
var leaseTime = regexp.MustCompile(`^[0-9]+[smhdwSMHDW]?$`)

// dhcpAmbiguous reports host names dnsmasq would not read as names: a first
// label that is a lease time (digits, optional unit), "infinite", "ignore".
func dhcpAmbiguous(h string) bool {
	first, _, _ := strings.Cut(h, ".")
	return leaseTime.MatchString(first) || strings.EqualFold(h, "infinite") || strings.EqualFold(h, "ignore")
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
