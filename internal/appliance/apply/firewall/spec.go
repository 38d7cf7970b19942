package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Spec is the desired firewall and NAT state of the appliance. Interface
// names are real kernel names (eth0, ...), not the generic geN names.
type Spec struct {
	// Management lists the management interfaces. ManagementTCPPorts are
	// opened on them only, and traffic leaving by them is never NATed.
	Management []string
	// ManagementTCPPorts are the TCP ports opened on management interfaces
	// (22, the agent API port 5000, ...).
	ManagementTCPPorts []uint16
	// External is the external (gateway) network; nil means none, and then
	// no NAT except metadata DNAT is set up.
	External *External
	// Tenants are the tenant networks attached to the router.
	Tenants []Tenant
	// FloatingIPs map public addresses on the external network to fixed
	// addresses of tenant VMs. They require External.
	FloatingIPs []FloatingIP
	// MaxFloatingIPs bounds len(FloatingIPs): the kernel's floating IP maps
	// are fixed-size hash tables with room for exactly this many elements
	// (nft list shows it as their "size"). 0 means DefaultMaxFloatingIPs;
	// more than MaxFloatingIPsLimit is refused, and so are more floating IPs
	// than this.
	//
	// Set it from the external network: the number of addresses in its IPv4
	// subnets, capped at MaxFloatingIPsLimit. It should rarely change: a
	// change recreates both maps, and so refills them and rewrites every
	// chain (in the one transaction of that Apply, atomically). Its cost
	// grows with it, whatever the number of floating IPs: each map's bucket
	// array takes 11 to 21 bytes of kernel memory per unit (512 KiB in all
	// for the default), allocated when the maps are created, and a kernel
	// read walks the arrays.
	MaxFloatingIPs int
}

const (
	// DefaultMaxFloatingIPs is the capacity of the floating IP maps when
	// Spec.MaxFloatingIPs is 0.
	DefaultMaxFloatingIPs = 1 << 14
	// MaxFloatingIPsLimit is the largest Spec.MaxFloatingIPs (a /14).
	MaxFloatingIPsLimit = 1 << 18
)

// fipCapacity is the capacity of the floating IP maps of a valid Spec.
func fipCapacity(s *Spec) uint32 {
	if s.MaxFloatingIPs == 0 {
		return DefaultMaxFloatingIPs
	}
	return uint32(s.MaxFloatingIPs)
}

// External describes the router's external network.
type External struct {
	// IfName is the real name of the external interface.
	IfName string
	// SNATAddr is the router's IPv4 address on the external network, used to
	// SNAT traffic of internal networks. The zero Addr means no default SNAT.
	SNATAddr netip.Addr
	// BGPPeers may open TCP 179 to the router on the external interface.
	BGPPeers []netip.Addr
}

// Tenant describes one tenant network attached to the router.
type Tenant struct {
	// IfName is the real name of the tenant interface.
	IfName string
	// Internal networks get SNAT, floating IPs, hairpin NAT and metadata
	// DNAT; isolated ones (false) only get input rules.
	Internal bool
	// V4Subnets are the network's IPv4 subnets (host bits are ignored).
	V4Subnets []netip.Prefix
	// DHCPv4 opens udp 67 on this interface.
	DHCPv4 bool
	// DHCPv6 opens udp 547 on this interface.
	DHCPv6 bool
	// DNS opens udp and tcp 53 on this interface.
	DNS bool
	// Metadata is the DNAT target of 169.254.169.254:80 for traffic arriving
	// on this interface (the metadata proxy); TCP to it is accepted. The zero
	// AddrPort means none. Only allowed on internal networks.
	Metadata netip.AddrPort
}

// FloatingIP maps a floating (public) IPv4 address to a fixed (tenant) one.
type FloatingIP struct{ Floating, Fixed netip.Addr }

// ErrInvalidSpec is wrapped by every validation error returned by Apply.
var ErrInvalidSpec = errors.New("invalid firewall spec")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// checkIfName applies the kernel's rules for interface names (dev_valid_name).
func checkIfName(field, name string) error {
	switch {
	case name == "":
		return invalid("%s: empty interface name", field)
	case len(name) > 15:
		return invalid("%s: interface name %q longer than 15 bytes", field, name)
	case name == "." || name == "..":
		return invalid("%s: invalid interface name %q", field, name)
	case strings.ContainsAny(name, "/:\"\\\x00") || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		return invalid("%s: invalid character in interface name %q", field, name)
	}
	return nil
}

func checkV4(field string, a netip.Addr) error {
	if p := v4Problem(a); p != "" {
		return invalid("%s: %s", field, p)
	}
	return nil
}

// v4Problem says what is wrong with a unicast IPv4 address ("" if nothing);
// it does not allocate when the address is fine.
func v4Problem(a netip.Addr) string {
	if !a.Is4() {
		if !a.IsValid() {
			return "missing address"
		}
		return a.String() + " is not an IPv4 address"
	}
	if !unicast4(v4(a)) {
		return a.String() + " is not a unicast address"
	}
	return ""
}

// unicast4 is false for 0.0.0.0, multicast and the broadcast address.
func unicast4(u uint32) bool { return u != 0 && u>>28 != 0xe && u != 0xffffffff }

// fipPair is a validated floating IP in compact form (addresses as
// big-endian uint32).
type fipPair struct{ f, x uint32 }

// validate checks everything that does not need a map over the floating IPs
// (duplicate floating or fixed addresses are detected while diffing, before
// anything is sent to the kernel) and returns the floating IPs in compact
// form.
func validate(s *Spec) ([]fipPair, error) {
	if err := validateNetworks(s); err != nil {
		return nil, err
	}
	var snat uint32 // 0 is never a valid floating IP
	if s.External != nil && s.External.SNATAddr.Is4() {
		snat = v4(s.External.SNATAddr)
	}
	pairs := make([]fipPair, len(s.FloatingIPs))
	for i := range s.FloatingIPs {
		f := &s.FloatingIPs[i]
		var fu, xu uint32
		if f.Floating.Is4() && f.Fixed.Is4() {
			fu, xu = v4(f.Floating), v4(f.Fixed)
		}
		if !unicast4(fu) || !unicast4(xu) || fu == snat {
			if p := v4Problem(f.Floating); p != "" {
				return nil, invalid("FloatingIPs[%d].Floating: %s", i, p)
			}
			if p := v4Problem(f.Fixed); p != "" {
				return nil, invalid("FloatingIPs[%d].Fixed: %s", i, p)
			}
			return nil, invalid("FloatingIPs[%d].Floating: %s is the router's SNAT address", i, f.Floating)
		}
		pairs[i] = fipPair{fu, xu}
	}
	return pairs, nil
}

func validateNetworks(s *Spec) error {
	seen := make(map[string]string)
	useIf := func(field, name string) error {
		if err := checkIfName(field, name); err != nil {
			return err
		}
		if prev, ok := seen[name]; ok {
			return invalid("%s: interface %q already used by %s", field, name, prev)
		}
		seen[name] = field
		return nil
	}
	for i, name := range s.Management {
		if err := useIf(fmt.Sprintf("Management[%d]", i), name); err != nil {
			return err
		}
	}
	ports := make(map[uint16]bool, len(s.ManagementTCPPorts))
	for i, p := range s.ManagementTCPPorts {
		if p == 0 {
			return invalid("ManagementTCPPorts[%d]: port 0", i)
		}
		if ports[p] {
			return invalid("ManagementTCPPorts[%d]: duplicate port %d", i, p)
		}
		ports[p] = true
	}
	if e := s.External; e != nil {
		if err := useIf("External.IfName", e.IfName); err != nil {
			return err
		}
		if e.SNATAddr.IsValid() {
			if err := checkV4("External.SNATAddr", e.SNATAddr); err != nil {
				return err
			}
		}
		peers := make(map[netip.Addr]bool, len(e.BGPPeers))
		for i, p := range e.BGPPeers {
			field := fmt.Sprintf("External.BGPPeers[%d]", i)
			switch {
			case !p.IsValid():
				return invalid("%s: missing address", field)
			case p.Is4In6():
				return invalid("%s: %s is an IPv4-mapped IPv6 address, use the IPv4 form", field, p)
			case p.Zone() != "":
				return invalid("%s: %s has a zone", field, p)
			case p.IsUnspecified() || p.IsMulticast():
				return invalid("%s: %s is not a unicast address", field, p)
			case peers[p]:
				return invalid("%s: duplicate peer %s", field, p)
			}
			peers[p] = true
		}
	}
	for i, t := range s.Tenants {
		field := fmt.Sprintf("Tenants[%d]", i)
		if err := useIf(field+".IfName", t.IfName); err != nil {
			return err
		}
		for j, p := range t.V4Subnets {
			f := fmt.Sprintf("%s.V4Subnets[%d]", field, j)
			switch {
			case !p.IsValid():
				return invalid("%s: invalid prefix", f)
			case !p.Addr().Is4():
				return invalid("%s: %s is not an IPv4 prefix", f, p)
			case p.Bits() == 0:
				return invalid("%s: %s would cover every address", f, p)
			}
		}
		if t.Metadata.IsValid() {
			f := field + ".Metadata"
			if !t.Internal {
				return invalid("%s: metadata DNAT is only set up on internal networks", f)
			}
			if err := checkV4(f, t.Metadata.Addr()); err != nil {
				return err
			}
			if t.Metadata.Port() == 0 {
				return invalid("%s: port 0", f)
			}
		}
	}
	if len(s.FloatingIPs) > 0 && s.External == nil {
		return invalid("FloatingIPs: %d floating IPs but no external network", len(s.FloatingIPs))
	}
	if s.MaxFloatingIPs < 0 || s.MaxFloatingIPs > MaxFloatingIPsLimit {
		return invalid("MaxFloatingIPs: %d is not between 0 (the default, %d) and %d", s.MaxFloatingIPs, DefaultMaxFloatingIPs, MaxFloatingIPsLimit)
	}
	if n, c := len(s.FloatingIPs), fipCapacity(s); n > int(c) {
		return invalid("FloatingIPs: %d floating IPs, more than MaxFloatingIPs (%d) allows", n, c)
	}
	return nil
}
