package dhcp

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/appliance/model"
)

// Spec is everything dnsmasq needs to serve one appliance.
type Spec struct {
	// Networks are the tenant networks to serve, one per interface.
	Networks []Network
	// ExceptInterfaces are the appliance's other interfaces (external,
	// management, ...): dnsmasq never answers on them. "lo" is ignored.
	ExceptInterfaces []string
	// Upstreams are the DNS servers dnsmasq forwards to. Empty: DNS is off
	// (port=0) and dnsmasq only does DHCP. Otherwise it serves DNS on the
	// tenant interfaces and forwards to these (never to /etc/resolv.conf).
	Upstreams []netip.Addr
}

// Network is one tenant network served on one interface.
type Network struct {
	// Interface is the real (kernel) name of the appliance's interface on
	// the network, not the generic geN name.
	Interface string
	// MTU is the interface MTU announced to DHCPv4 clients (option 26);
	// 0 announces none.
	MTU int
	// Subnets of the network; only DHCP-enabled ones are served.
	Subnets []model.Subnet
	// Allocations are the ports of the network: each gets a static lease
	// of its lowest DHCP-enabled IPv4 and IPv6 address.
	Allocations []model.Allocation
}

// ErrInvalidSpec is wrapped by every validation error.
var ErrInvalidSpec = errors.New("invalid DHCP spec")

// FromDocument builds the Spec for a router document: its tenant (internal
// and isolated) networks are served, every other network's interface is
// excluded. realName maps a generic interface name (ge1) to the kernel's;
// a tenant network whose interface has no real name is an error.
func FromDocument(doc *model.Document, realName func(generic string) (string, bool), upstreams []netip.Addr) (Spec, error) {
	spec := Spec{Upstreams: slices.Clone(upstreams)}
	for i, n := range doc.Networks {
		real, ok := realName(n.Interface.IfName)
		if !n.IsTenant() {
			if ok {
				spec.ExceptInterfaces = append(spec.ExceptInterfaces, real)
			}
			continue
		}
		if !ok {
			return Spec{}, fmt.Errorf("%w: networks[%d].interface.ifname: no interface named %q", ErrInvalidSpec, i, n.Interface.IfName)
		}
		mtu := n.Interface.MTU
		if mtu == 0 {
			mtu = n.MTU
		}
		spec.Networks = append(spec.Networks, Network{
			Interface:   real,
			MTU:         mtu,
			Subnets:     n.Subnets,
			Allocations: n.Allocations,
		})
	}
	return spec, nil
}

// NeedsDHCP reports whether any network has a DHCP-enabled subnet. When
// none has, dnsmasq does not run.
func (s *Spec) NeedsDHCP() bool {
	for _, n := range s.Networks {
		for _, sn := range n.Subnets {
			if sn.DHCPEnabled {
				return true
			}
		}
	}
	return false
}

var (
	ifnameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	labelRe  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	// dnsmasq reads a dhcp-host field made of digits and an optional unit
	// as a lease time, not as a host name.
	leaseTimeRe = regexp.MustCompile(`^[0-9]+[smhdwSMHDW]?$`)
)

func validIfname(s string) error {
	if !ifnameRe.MatchString(s) || s == "." || s == ".." {
		return fmt.Errorf("%q is not a valid interface name (1-15 of [A-Za-z0-9_.-])", s)
	}
	return nil
}

// validHostname accepts RFC 1123 host names that dnsmasq cannot mistake for
// another dhcp-host field (lease time, address, MAC, keyword).
func validHostname(s string) error {
	bad := func(why string) error { return fmt.Errorf("%q is not a valid host name: %s", s, why) }
	if len(s) > 253 {
		return bad("longer than 253 characters")
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !labelRe.MatchString(l) {
			return bad("labels are 1-63 of [A-Za-z0-9-], not starting or ending with '-'")
		}
	}
	first, _, _ := strings.Cut(s, ".")
	if leaseTimeRe.MatchString(first) || strings.EqualFold(s, "infinite") || strings.EqualFold(s, "ignore") {
		return bad("dnsmasq would read it as a lease time or keyword")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return bad("it is an address")
	}
	if _, err := net.ParseMAC(s); err == nil {
		return bad("it is a MAC address")
	}
	return nil
}

// plan is a validated, normalized Spec, ready to render.
type plan struct {
	networks  []planNetwork // sorted by interface
	except    []string      // sorted, without lo and served interfaces
	upstreams []netip.Addr
}

type planNetwork struct {
	ifname  string
	mtu     int
	subnets []planSubnet // DHCP-enabled only, sorted by prefix
	hosts   []planHost   // sorted by MAC, then addresses
}

type planSubnet struct {
	tag     string
	prefix  netip.Prefix // masked
	gateway netip.Addr   // may be invalid (no gateway)
	dns     []netip.Addr
	routes  []model.HostRoute // IPv4 only, sorted, deduplicated
}

type planHost struct {
	mac      string // normalized, lower case
	v4, v6   netip.Addr
	hostname string
}

// Tag returns the dnsmasq tag of a subnet served on an interface. It depends
// only on the interface and the subnet's prefix, so it is stable across
// reorderings of networks, subnets and allocations.
func Tag(ifname string, cidr netip.Prefix) string {
	r := strings.NewReplacer(".", "-", ":", "-", "/", "_")
	return ifname + "_" + r.Replace(cidr.Masked().String())
}

// validate checks the spec and normalizes it. Every value that reaches a
// dnsmasq file is checked here, so that nothing can inject configuration.
func (s *Spec) validate() (*plan, error) {
	var errs []error
	errf := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	p := &plan{}
	served := map[string]bool{}
	addrOwner := map[netip.Addr]string{}
	var allPrefixes []struct {
		p     netip.Prefix
		where string
	}
	for i, n := range s.Networks {
		path := fmt.Sprintf("networks[%d]", i)
		if err := validIfname(n.Interface); err != nil {
			errf("%s.interface: %w", path, err)
		} else if n.Interface == "lo" {
			errf("%s.interface: dnsmasq never serves lo", path)
		} else if served[n.Interface] {
			errf("%s.interface: %q is served twice", path, n.Interface)
		}
		served[n.Interface] = true
		if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
			errf("%s.mtu: %d is not between 68 and 65535", path, n.MTU)
		}
		pn := planNetwork{ifname: n.Interface, mtu: n.MTU}
		var dhcpPrefixes []netip.Prefix
		for j, sn := range n.Subnets {
			spath := fmt.Sprintf("%s.subnets[%d]", path, j)
			if !sn.CIDR.IsValid() {
				errf("%s.cidr: missing or invalid", spath)
				continue
			}
			if !sn.DHCPEnabled {
				continue
			}
			v4 := sn.CIDR.Addr().Is4()
			prefix := sn.CIDR.Masked()
			if !v4 && prefix.Bits() < 64 {
				errf("%s.cidr: %s: DHCPv6 needs a prefix of /64 or longer", spath, prefix)
			}
			for _, other := range allPrefixes {
				if other.p.Overlaps(prefix) {
					errf("%s.cidr: %s overlaps %s (%s)", spath, prefix, other.p, other.where)
				}
			}
			allPrefixes = append(allPrefixes, struct {
				p     netip.Prefix
				where string
			}{prefix, spath})
			ps := planSubnet{tag: Tag(n.Interface, prefix), prefix: prefix}
			if sn.GatewayIP.IsValid() {
				if sn.GatewayIP.Is4() != v4 || sn.GatewayIP.Zone() != "" {
					errf("%s.gateway_ip: %s is not an address of the subnet's family", spath, sn.GatewayIP)
				}
				ps.gateway = sn.GatewayIP
			}
			for k, ns := range sn.DNSNameservers {
				if !ns.IsValid() || ns.Is4() != v4 || ns.Zone() != "" || ns.IsUnspecified() {
					errf("%s.dns_nameservers[%d]: %s is not a usable address of the subnet's family", spath, k, ns)
					continue
				}
				if !slices.Contains(ps.dns, ns) {
					ps.dns = append(ps.dns, ns)
				}
			}
			for k, r := range sn.HostRoutes {
				rpath := fmt.Sprintf("%s.host_routes[%d]", spath, k)
				if !r.Destination.IsValid() || !r.NextHop.IsValid() {
					errf("%s: destination and nexthop are required", rpath)
					continue
				}
				if r.Destination.Addr().Is4() != v4 || r.NextHop.Is4() != v4 || r.NextHop.Zone() != "" {
					errf("%s: %s via %s is not a route of the subnet's family", rpath, r.Destination, r.NextHop)
					continue
				}
				if !v4 {
					continue // DHCPv6 has no route option; IPv6 routes come from RAs
				}
				hr := model.HostRoute{Destination: r.Destination.Masked(), NextHop: r.NextHop}
				if !slices.Contains(ps.routes, hr) {
					ps.routes = append(ps.routes, hr)
				}
			}
			slices.SortFunc(ps.routes, func(a, b model.HostRoute) int {
				if c := a.Destination.Addr().Compare(b.Destination.Addr()); c != 0 {
					return c
				}
				if c := a.Destination.Bits() - b.Destination.Bits(); c != 0 {
					return c
				}
				return a.NextHop.Compare(b.NextHop)
			})
			pn.subnets = append(pn.subnets, ps)
			dhcpPrefixes = append(dhcpPrefixes, prefix)
		}
		slices.SortFunc(pn.subnets, func(a, b planSubnet) int { return comparePrefix(a.prefix, b.prefix) })

		macs := map[string]string{}
		for j, a := range n.Allocations {
			apath := fmt.Sprintf("%s.allocations[%d]", path, j)
			hw, err := net.ParseMAC(a.MACAddress)
			if err != nil || len(hw) != 6 {
				errf("%s.mac_address: %q is not an Ethernet MAC address", apath, a.MACAddress)
				continue
			}
			mac := hw.String()
			if prev, dup := macs[mac]; dup {
				errf("%s.mac_address: %s is also used by %s", apath, mac, prev)
			}
			macs[mac] = apath
			if a.Hostname != "" {
				if err := validHostname(a.Hostname); err != nil {
					errf("%s.hostname: %w", apath, err)
				}
			}
			h := planHost{mac: mac, hostname: a.Hostname}
			for ip, dhcp := range a.IPAddresses {
				if !ip.IsValid() || ip.Zone() != "" {
					errf("%s.ip_addresses: %q is not a valid address", apath, ip)
					continue
				}
				ip = ip.Unmap()
				if !dhcp || !slices.ContainsFunc(dhcpPrefixes, func(p netip.Prefix) bool { return p.Contains(ip) }) {
					continue // not served by DHCP
				}
				if ip.Is4() && (!h.v4.IsValid() || ip.Less(h.v4)) {
					h.v4 = ip
				}
				if ip.Is6() && (!h.v6.IsValid() || ip.Less(h.v6)) {
					h.v6 = ip
				}
			}
			for _, ip := range []netip.Addr{h.v4, h.v6} {
				if !ip.IsValid() {
					continue
				}
				if prev, dup := addrOwner[ip]; dup {
					errf("%s.ip_addresses: %s is also leased to %s", apath, ip, prev)
				}
				addrOwner[ip] = apath
			}
			if h.v4.IsValid() || h.v6.IsValid() {
				pn.hosts = append(pn.hosts, h)
			}
		}
		slices.SortFunc(pn.hosts, func(a, b planHost) int { return strings.Compare(a.mac, b.mac) })
		p.networks = append(p.networks, pn)
	}
	slices.SortFunc(p.networks, func(a, b planNetwork) int { return strings.Compare(a.ifname, b.ifname) })

	for i, name := range s.ExceptInterfaces {
		if name == "lo" {
			continue
		}
		if err := validIfname(name); err != nil {
			errf("except_interfaces[%d]: %w", i, err)
			continue
		}
		if served[name] {
			errf("except_interfaces[%d]: %q is also a served interface", i, name)
			continue
		}
		if !slices.Contains(p.except, name) {
			p.except = append(p.except, name)
		}
	}
	slices.Sort(p.except)

	for i, u := range s.Upstreams {
		if !u.IsValid() || u.IsUnspecified() || u.IsMulticast() || u.Zone() != "" {
			errf("upstreams[%d]: %q is not a usable DNS server address", i, u)
			continue
		}
		if !slices.Contains(p.upstreams, u.Unmap()) {
			p.upstreams = append(p.upstreams, u.Unmap())
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSpec, errors.Join(errs...))
	}
	return p, nil
}

// comparePrefix orders IPv4 before IPv6, then by address, then by length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// specMemo is our own deep copy of a Spec, made to be compared with the
// next one cheaply: each allocation's addresses are also listed, so that
// comparing them takes a lookup per address rather than a walk of two maps
// (with thousands of ports, that is most of an identical Apply).
type specMemo struct {
	spec Spec
	ips  [][]ipDHCP // each allocation's IPAddresses, network by network
}

type ipDHCP struct {
	ip   netip.Addr
	dhcp bool
}

func memoOf(s *Spec) specMemo {
	m := specMemo{spec: Spec{
		ExceptInterfaces: slices.Clone(s.ExceptInterfaces),
		Upstreams:        slices.Clone(s.Upstreams),
		Networks:         slices.Clone(s.Networks),
	}}
	for i, n := range m.spec.Networks {
		m.spec.Networks[i].Subnets = slices.Clone(n.Subnets)
		for j, sn := range n.Subnets {
			m.spec.Networks[i].Subnets[j].DNSNameservers = slices.Clone(sn.DNSNameservers)
			m.spec.Networks[i].Subnets[j].HostRoutes = slices.Clone(sn.HostRoutes)
		}
		m.spec.Networks[i].Allocations = slices.Clone(n.Allocations)
		for j, a := range n.Allocations {
			m.spec.Networks[i].Allocations[j].IPAddresses = maps.Clone(a.IPAddresses)
			ips := make([]ipDHCP, 0, len(a.IPAddresses))
			for ip, dhcp := range a.IPAddresses {
				ips = append(ips, ipDHCP{ip, dhcp})
			}
			m.ips = append(m.ips, ips)
		}
	}
	return m
}

// matches reports whether s is the same Spec as the one m copies, field by
// field (nil and empty are the same). It must compare every field of Spec,
// Network, model.Subnet and model.Allocation: TestSpecMemoSeesEveryField
// fails when one is added and not compared here.
func (m *specMemo) matches(s *Spec) bool {
	if len(s.Networks) != len(m.spec.Networks) ||
		!slices.Equal(s.ExceptInterfaces, m.spec.ExceptInterfaces) ||
		!slices.Equal(s.Upstreams, m.spec.Upstreams) {
		return false
	}
	k := 0
	for i := range s.Networks {
		a, b := &s.Networks[i], &m.spec.Networks[i]
		if a.Interface != b.Interface || a.MTU != b.MTU ||
			!slices.EqualFunc(a.Subnets, b.Subnets, subnetEqual) ||
			len(a.Allocations) != len(b.Allocations) {
			return false
		}
		for j := range a.Allocations {
			x, y := &a.Allocations[j], &b.Allocations[j]
			if x.MACAddress != y.MACAddress || x.Hostname != y.Hostname || x.DeviceID != y.DeviceID ||
				len(x.IPAddresses) != len(m.ips[k]) {
				return false
			}
			// As many addresses, each of ours with the same flag: the same.
			for _, e := range m.ips[k] {
				if dhcp, ok := x.IPAddresses[e.ip]; !ok || dhcp != e.dhcp {
					return false
				}
			}
			k++
		}
	}
	return true
}

func subnetEqual(a, b model.Subnet) bool {
	return a.ID == b.ID && a.CIDR == b.CIDR && a.GatewayIP == b.GatewayIP && a.DHCPEnabled == b.DHCPEnabled &&
		slices.Equal(a.DNSNameservers, b.DNSNameservers) && slices.Equal(a.HostRoutes, b.HostRoutes)
}
