// Package ipam is the address arithmetic of the embedded network API:
// default allocation pools as Neutron computes them, pool validation, the
// choice of a free address, Neutron-style MAC addresses and the EUI-64
// addresses of SLAAC subnets. It is pure: the caller keeps the records.
package ipam

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Range is an inclusive range of addresses of one family.
type Range struct {
	Start netip.Addr `json:"start"`
	End   netip.Addr `json:"end"`
}

// Contains reports whether ip is within r.
func (r Range) Contains(ip netip.Addr) bool {
	return ip.BitLen() == r.Start.BitLen() && r.Start.Compare(ip) <= 0 && ip.Compare(r.End) <= 0
}

// String formats r as Neutron does in its messages: "start-end".
func (r Range) String() string { return r.Start.String() + "-" + r.End.String() }

// First returns the first address of prefix (the network address).
func First(p netip.Prefix) netip.Addr { return p.Masked().Addr() }

// Last returns the last address of prefix (the IPv4 broadcast address).
func Last(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// GeneratePools returns the default allocation pools of a subnet, as
// Neutron's ipam_utils.generate_pools: every address but the network
// address, the IPv4 broadcast address and the gateway.
func GeneratePools(cidr netip.Prefix, gateway netip.Addr) []Range {
	first, last := First(cidr), Last(cidr)
	if first == last {
		return []Range{{first, last}}
	}
	lo := first.Next()
	hi := last
	if cidr.Addr().Is4() {
		hi = last.Prev()
	}
	if lo.Compare(hi) >= 0 {
		return []Range{}
	}
	full := Range{lo, hi}
	if !gateway.IsValid() || !full.Contains(gateway) {
		return []Range{full}
	}
	var out []Range
	if gateway != lo {
		out = append(out, Range{lo, gateway.Prev()})
	}
	if gateway != hi {
		out = append(out, Range{gateway.Next(), hi})
	}
	return out
}

// PoolError is a problem with allocation pools. Kind is the Neutron
// exception it corresponds to.
type PoolError struct {
	Kind    PoolErrorKind
	Pool    Range
	Other   Range      // the other pool of an overlap
	Gateway netip.Addr // the gateway of a gateway conflict
}

// PoolErrorKind names the Neutron exception of a PoolError.
type PoolErrorKind string

// The pool errors, named as Neutron's exceptions.
const (
	InvalidAllocationPool              PoolErrorKind = "InvalidAllocationPool"
	OutOfBoundsAllocationPool          PoolErrorKind = "OutOfBoundsAllocationPool"
	OverlappingAllocationPools         PoolErrorKind = "OverlappingAllocationPools"
	GatewayConflictWithAllocationPools PoolErrorKind = "GatewayConflictWithAllocationPools"
)

func (e *PoolError) Error() string {
	switch e.Kind {
	case OutOfBoundsAllocationPool:
		return fmt.Sprintf("The allocation pool %s spans beyond the subnet cidr", e.Pool)
	case OverlappingAllocationPools:
		return fmt.Sprintf("Found overlapping allocation pools: %s %s", e.Pool, e.Other)
	case GatewayConflictWithAllocationPools:
		return fmt.Sprintf("Gateway ip %s conflicts with allocation pool %s.", e.Gateway, e.Pool)
	default:
		return fmt.Sprintf("The allocation pool %s is not valid.", e.Pool)
	}
}

// ValidatePools checks pools against the subnet cidr and its gateway (if
// valid) as Neutron's validate_allocation_pools and
// validate_gw_out_of_pools do, and returns them sorted. A pool may not
// hold the network address nor, in IPv4 subnets larger than /31, the
// broadcast address.
func ValidatePools(cidr netip.Prefix, pools []Range, gateway netip.Addr) ([]Range, error) {
	lo, hi := First(cidr), Last(cidr)
	if cidr.Addr().Is6() || cidr.Bits() <= 30 {
		lo = lo.Next()
	}
	if cidr.Addr().Is4() && cidr.Bits() <= 30 {
		hi = hi.Prev()
	}
	for _, p := range pools {
		if !p.Start.IsValid() || !p.End.IsValid() || p.Start.Is4() != cidr.Addr().Is4() || p.End.Is4() != cidr.Addr().Is4() || p.End.Less(p.Start) {
			return nil, &PoolError{Kind: InvalidAllocationPool, Pool: p}
		}
		if p.Start.Less(lo) || hi.Less(p.End) {
			return nil, &PoolError{Kind: OutOfBoundsAllocationPool, Pool: p}
		}
	}
	sorted := slices.Clone(pools)
	slices.SortFunc(sorted, func(a, b Range) int { return a.Start.Compare(b.Start) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Start.Compare(sorted[i-1].End) <= 0 {
			return nil, &PoolError{Kind: OverlappingAllocationPools, Pool: sorted[i-1], Other: sorted[i]}
		}
	}
	if gateway.IsValid() {
		for _, p := range sorted {
			if p.Contains(gateway) {
				return nil, &PoolError{Kind: GatewayConflictWithAllocationPools, Pool: p, Gateway: gateway}
			}
		}
	}
	return sorted, nil
}

// ValidSubnetIP reports whether ip may be given to a port on the subnet
// cidr, as Neutron's ipam_utils.check_subnet_ip: inside the subnet, not its
// network address nor, in IPv4, its broadcast address. In IPv6, router
// ports (and ports whose owner is unknown, anyNetworkAddr) may take the
// network address, the subnet-router anycast address.
func ValidSubnetIP(cidr netip.Prefix, ip netip.Addr, anyNetworkAddr bool) bool {
	if !cidr.Contains(ip) {
		return false
	}
	if ip.Is6() {
		return anyNetworkAddr || ip != First(cidr)
	}
	if ip == First(cidr) {
		return false
	}
	return cidr.Bits() >= 31 || ip != Last(cidr)
}

// FirstFree returns the lowest address of pools that used (sorted
// ascending) does not hold; false when the pools are exhausted.
func FirstFree(pools []Range, used []netip.Addr) (netip.Addr, bool) {
	sorted := slices.Clone(pools)
	slices.SortFunc(sorted, func(a, b Range) int { return a.Start.Compare(b.Start) })
	i := 0
	for _, p := range sorted {
		c := p.Start
		for {
			for i < len(used) && used[i].Less(c) {
				i++
			}
			if i < len(used) && used[i] == c {
				if c == p.End {
					break
				}
				c = c.Next()
				continue
			}
			return c, true
		}
	}
	return netip.Addr{}, false
}

// SortAddrs sorts addresses ascending.
func SortAddrs(a []netip.Addr) { slices.SortFunc(a, netip.Addr.Compare) }

// MACPrefix is the OUI Neutron gives its ports ([DEFAULT]base_mac).
const MACPrefix = "fa:16:3e"

// RandomMAC returns fa:16:3e:xx:xx:xx with random low bytes.
func RandomMAC() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random MAC: %w", err)
	}
	return fmt.Sprintf("%s:%02x:%02x:%02x", MACPrefix, b[0], b[1], b[2]), nil
}

// ErrInvalidMAC marks a string that is not a unicast Ethernet MAC address.
var ErrInvalidMAC = errors.New("not a valid MAC address")

// NormalizeMAC returns mac as Neutron stores it: six lower-case,
// colon-separated bytes. It accepts the notations net.ParseMAC accepts and
// refuses multicast and all-zero addresses, as Neutron's validate_mac_address.
func NormalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", ErrInvalidMAC
	}
	if hw[0]&1 == 1 || string(hw) == "\x00\x00\x00\x00\x00\x00" {
		return "", ErrInvalidMAC
	}
	return strings.ToLower(hw.String()), nil
}

// EUI64 returns the SLAAC address of mac in prefix (a /64), as Neutron's
// ipv6_utils.get_ipv6_addr_by_EUI64: the prefix, then the MAC with its
// universal/local bit flipped and ff:fe in the middle.
func EUI64(prefix netip.Prefix, mac string) (netip.Addr, error) {
	if !prefix.Addr().Is6() || prefix.Bits() > 64 {
		return netip.Addr{}, fmt.Errorf("EUI-64 needs an IPv6 prefix of at most 64 bits, not %s", prefix)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, fmt.Errorf("EUI-64 of %q: %w", mac, ErrInvalidMAC)
	}
	b := prefix.Masked().Addr().As16()
	b[8] = hw[0] ^ 0x02
	b[9], b[10] = hw[1], hw[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b), nil
}
