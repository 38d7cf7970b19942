package bird

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/appliance/model"
)

// Spec is what BIRD does for one appliance: IPv6 router advertisements on
// the tenant interfaces, and BGP with the upstream routers on the external
// network announcing the tenant IPv6 prefixes.
type Spec struct {
	// RouterID is BIRD's router id (an IPv4 address). FromDocument uses the
	// external IPv4 address, or DeriveRouterID when there is none.
	RouterID netip.Addr
	// LocalASN and NeighborASN are the BGP autonomous systems (equal: iBGP).
	LocalASN, NeighborASN uint32
	// External is the uplink; nil means no BGP.
	External *Uplink
	// Tenants are the tenant networks' interfaces.
	Tenants []Tenant
}

// Uplink is the external interface: the gateway of each of its IPv6 subnets
// is a BGP neighbor.
type Uplink struct {
	// Interface is the real (kernel) interface name.
	Interface string
	Subnets   []model.Subnet
}

// Tenant is one tenant network's interface.
type Tenant struct {
	// Interface is the real (kernel) interface name.
	Interface string
	// MTU is advertised in router advertisements when set.
	MTU int
	// Isolated networks get router advertisements but are not announced
	// over BGP (they are not routed to the outside).
	Isolated bool
	// Subnets of the network; IPv4 ones are ignored.
	Subnets []model.Subnet
}

// ErrInvalidSpec is wrapped by every validation error.
var ErrInvalidSpec = errors.New("invalid BIRD spec")

// FromDocument builds the Spec for a router document. realName maps a
// generic interface name (ge1) to the kernel's.
func FromDocument(doc *model.Document, realName func(generic string) (string, bool)) (Spec, error) {
	s := Spec{LocalASN: doc.ASN, NeighborASN: doc.NeighborASN}
	if s.LocalASN == 0 {
		s.LocalASN = model.DefaultASN
	}
	if s.NeighborASN == 0 {
		s.NeighborASN = s.LocalASN
	}
	for i, n := range doc.Networks {
		if n.Type != model.NetworkExternal && !n.IsTenant() {
			continue
		}
		real, ok := realName(n.Interface.IfName)
		if !ok {
			return Spec{}, fmt.Errorf("%w: networks[%d].interface.ifname: no interface named %q", ErrInvalidSpec, i, n.Interface.IfName)
		}
		if n.Type == model.NetworkExternal {
			if s.External != nil {
				continue // the first external network is the uplink
			}
			s.External = &Uplink{Interface: real, Subnets: n.Subnets}
			if a, ok := n.Interface.FirstV4(); ok {
				s.RouterID = a.Addr()
			}
			continue
		}
		mtu := n.Interface.MTU
		if mtu == 0 {
			mtu = n.MTU
		}
		s.Tenants = append(s.Tenants, Tenant{Interface: real, MTU: mtu, Isolated: n.Type == model.NetworkIsolated, Subnets: n.Subnets})
	}
	if !s.RouterID.IsValid() {
		s.RouterID = DeriveRouterID(doc.TenantID + "/" + doc.Hostname)
	}
	return s, nil
}

// DeriveRouterID returns a router id for an appliance without an external
// IPv4 address: a hash of seed (tenant and hostname), so it is stable across
// restarts and re-applies, unlike the original's random one. It is never
// 0.0.0.0 (RFC 6286 only asks for a non-zero, unique 32-bit value).
func DeriveRouterID(seed string) netip.Addr {
	sum := sha256.Sum256([]byte("astara-router-id:" + seed))
	id := binary.BigEndian.Uint32(sum[:4])
	if id == 0 {
		id = 1
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	return netip.AddrFrom4(b)
}

var ifnameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

func validIfname(s string) error {
	if !ifnameRe.MatchString(s) || s == "." || s == ".." {
		return fmt.Errorf("%q is not a valid interface name (1-15 of [A-Za-z0-9_.-])", s)
	}
	return nil
}

// ula is fc00::/7: never announced over BGP.
var ula = netip.MustParsePrefix("fc00::/7")

// plan is a validated, normalized Spec.
type plan struct {
	routerID netip.Addr
	localAS  uint32
	peerAS   uint32
	uplink   string
	peers    []netip.Addr   // BGP neighbors, sorted
	announce []netip.Prefix // tenant prefixes exported over BGP, sorted
	direct   []string       // interfaces whose prefixes are announced, sorted
	radv     []radvIf       // sorted by interface
}

type radvIf struct {
	ifname   string
	mtu      int
	managed  bool // some subnet is served by DHCPv6
	prefixes []radvPrefix
	rdnss    []netip.Addr
}

type radvPrefix struct {
	prefix     netip.Prefix
	autonomous bool         // SLAAC; off for DHCPv6 subnets
	dns        []netip.Addr // the subnet's IPv6 DNS servers
}

// needed reports whether BIRD has anything to do.
func (p *plan) needed() bool { return len(p.radv) > 0 || len(p.peers) > 0 }

func (s *Spec) validate() (*plan, error) {
	var errs []error
	errf := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	p := &plan{localAS: s.LocalASN, peerAS: s.NeighborASN}
	seenIf := map[string]string{}
	useIf := func(name, path string) bool {
		if err := validIfname(name); err != nil {
			errf("%s: %w", path, err)
			return false
		}
		if prev, dup := seenIf[name]; dup {
			errf("%s: %q is also %s", path, name, prev)
			return false
		}
		seenIf[name] = path
		return true
	}

	if s.External != nil {
		useIf(s.External.Interface, "external.interface")
		p.uplink = s.External.Interface
		for i, sn := range s.External.Subnets {
			gw := sn.GatewayIP
			if !sn.CIDR.IsValid() || !sn.CIDR.Addr().Is6() || !gw.IsValid() {
				continue // only IPv6 subnets with a gateway have a BGP neighbor
			}
			if !gw.Is6() || gw.Is4In6() || gw.IsUnspecified() || gw.IsMulticast() || gw.Zone() != "" {
				errf("external.subnets[%d].gateway_ip: %s cannot be a BGP neighbor", i, gw)
				continue
			}
			if !slices.Contains(p.peers, gw) {
				p.peers = append(p.peers, gw)
			}
		}
		slices.SortFunc(p.peers, netip.Addr.Compare)
	}

	seenPrefix := map[netip.Prefix]string{}
	for i, t := range s.Tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		okIf := useIf(t.Interface, path+".interface")
		if t.MTU != 0 && (t.MTU < 1280 || t.MTU > 65535) {
			errf("%s.mtu: %d is not between 1280 and 65535 (IPv6 minimum)", path, t.MTU)
		}
		r := radvIf{ifname: t.Interface, mtu: t.MTU}
		announced := false
		for j, sn := range t.Subnets {
			spath := fmt.Sprintf("%s.subnets[%d]", path, j)
			if !sn.CIDR.IsValid() {
				errf("%s.cidr: missing or invalid", spath)
				continue
			}
			if !sn.CIDR.Addr().Is6() {
				continue
			}
			prefix := sn.CIDR.Masked()
			if prev, dup := seenPrefix[prefix]; dup {
				errf("%s.cidr: %s is also %s", spath, prefix, prev)
				continue
			}
			seenPrefix[prefix] = spath
			rp := radvPrefix{prefix: prefix, autonomous: !sn.DHCPEnabled}
			r.managed = r.managed || sn.DHCPEnabled
			for k, ns := range sn.DNSNameservers {
				if !ns.Is6() || ns.Is4In6() || ns.IsUnspecified() || ns.IsMulticast() || ns.Zone() != "" {
					errf("%s.dns_nameservers[%d]: %s is not an IPv6 server address", spath, k, ns)
					continue
				}
				rp.dns = append(rp.dns, ns)
			}
			r.prefixes = append(r.prefixes, rp)
			// Announced: routed (internal, with a gateway), not ULA.
			if !t.Isolated && sn.GatewayIP.IsValid() && !ula.Overlaps(prefix) {
				p.announce = append(p.announce, prefix)
				announced = true
			}
		}
		slices.SortFunc(r.prefixes, func(a, b radvPrefix) int { return comparePrefix(a.prefix, b.prefix) })
		// The interface's RDNSS: every subnet's servers, in subnet order.
		for _, rp := range r.prefixes {
			for _, ns := range rp.dns {
				if !slices.Contains(r.rdnss, ns) {
					r.rdnss = append(r.rdnss, ns)
				}
			}
		}
		if len(r.prefixes) > 0 && okIf {
			p.radv = append(p.radv, r)
		}
		if announced && okIf {
			p.direct = append(p.direct, t.Interface)
		}
	}
	slices.SortFunc(p.announce, comparePrefix)
	slices.SortFunc(p.radv, func(a, b radvIf) int { return strings.Compare(a.ifname, b.ifname) })
	slices.Sort(p.direct)

	if len(p.peers) > 0 {
		if s.LocalASN == 0 {
			errf("local_asn: required for BGP")
		}
		if s.NeighborASN == 0 {
			errf("neighbor_asn: required for BGP")
		}
	}
	if p.needed() {
		if !s.RouterID.Is4() || s.RouterID.IsUnspecified() {
			errf("router_id: %q is not a non-zero IPv4 address", s.RouterID)
		}
		p.routerID = s.RouterID
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSpec, errors.Join(errs...))
	}
	return p, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// specEqual reports whether a and b are the same Spec, field by field (nil
// and empty are the same). It must compare every field of Spec, Uplink,
// Tenant and model.Subnet: TestSpecEqualSeesEveryField fails when one is
// added and not compared here.
func specEqual(a, b *Spec) bool {
	return a.RouterID == b.RouterID && a.LocalASN == b.LocalASN && a.NeighborASN == b.NeighborASN &&
		uplinkEqual(a.External, b.External) && slices.EqualFunc(a.Tenants, b.Tenants, tenantEqual)
}

func uplinkEqual(a, b *Uplink) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Interface == b.Interface && slices.EqualFunc(a.Subnets, b.Subnets, subnetEqual)
}

func tenantEqual(a, b Tenant) bool {
	return a.Interface == b.Interface && a.MTU == b.MTU && a.Isolated == b.Isolated &&
		slices.EqualFunc(a.Subnets, b.Subnets, subnetEqual)
}

func subnetEqual(a, b model.Subnet) bool {
	return a.ID == b.ID && a.CIDR == b.CIDR && a.GatewayIP == b.GatewayIP && a.DHCPEnabled == b.DHCPEnabled &&
		slices.Equal(a.DNSNameservers, b.DNSNameservers) && slices.Equal(a.HostRoutes, b.HostRoutes)
}

// cloneSpec returns a deep copy of s, sharing nothing the caller could
// change afterwards.
func cloneSpec(s *Spec) Spec {
	c := *s
	if s.External != nil {
		c.External = &Uplink{Interface: s.External.Interface, Subnets: cloneSubnets(s.External.Subnets)}
	}
	c.Tenants = slices.Clone(s.Tenants)
	for i, t := range c.Tenants {
		c.Tenants[i].Subnets = cloneSubnets(t.Subnets)
	}
	return c
}

func cloneSubnets(subnets []model.Subnet) []model.Subnet {
	c := slices.Clone(subnets)
	for i, sn := range c {
		c[i].DNSNameservers = slices.Clone(sn.DNSNameservers)
		c[i].HostRoutes = slices.Clone(sn.HostRoutes)
	}
	return c
}
