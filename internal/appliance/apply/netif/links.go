// Package netif makes the kernel's interfaces, addresses and routes match the
// router's configuration: addresses (diffed, added before removed, link-local
// untouched), MTU, link state, default and host routes, floating IPs as local
// addresses, conntrack cleanup and gratuitous ARP. It works on the network
// namespace of the calling process, through netlink.
package netif

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"unicode"

	"github.com/vishvananda/netlink"
)

// Link is a data interface of the appliance, with its generic name.
type Link struct {
	Generic   string           // ge0, ge1, ... in natural order of the kernel names
	Name      string           // the kernel's name
	Index     int              // the kernel's ifindex
	MAC       net.HardwareAddr // lladdr
	MTU       int
	Up        bool // administratively up
	Running   bool // operationally up (carrier)
	Addresses []netip.Prefix
}

// managedKinds are the link types an appliance treats as its network ports;
// everything else (loopback, tunnels' fallback devices, bridges) is ignored.
var managedKinds = []string{"device", "veth", "macvlan", "ipvlan", "virtio"}

// ListLinks returns the appliance's data interfaces, named ge0, ge1, ... in
// the natural order of their kernel names (eth2 before eth10), with their
// addresses in kernel order.
func ListLinks(h *netlink.Handle) ([]Link, error) {
	kernel, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	byIndex := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], p)
		}
	}
	var links []Link
	for _, l := range kernel {
		attrs := l.Attrs()
		if attrs.Flags&net.FlagLoopback != 0 || !slices.Contains(managedKinds, l.Type()) || len(attrs.HardwareAddr) != 6 {
			continue
		}
		links = append(links, Link{
			Name:      attrs.Name,
			Index:     attrs.Index,
			MAC:       attrs.HardwareAddr,
			MTU:       attrs.MTU,
			Up:        attrs.Flags&net.FlagUp != 0,
			Running:   attrs.OperState == netlink.OperUp || attrs.RawFlags&0x10000 != 0, // IFF_LOWER_UP
			Addresses: byIndex[attrs.Index],
		})
	}
	slices.SortFunc(links, func(a, b Link) int { return naturalCompare(a.Name, b.Name) })
	for i := range links {
		links[i].Generic = "ge" + strconv.Itoa(i)
	}
	return links, nil
}

// naturalCompare orders names by their non-digit prefix, then numerically by
// their digit runs: eth2 < eth10 (the original sorted as strings: eth10 < eth2).
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ra, rb := rune(a[0]), rune(b[0])
		if unicode.IsDigit(ra) && unicode.IsDigit(rb) {
			na, restA := digitRun(a)
			nb, restB := digitRun(b)
			if c := cmp.Compare(len(trimZeros(na)), len(trimZeros(nb))); c != 0 {
				return c
			}
			if c := cmp.Compare(trimZeros(na), trimZeros(nb)); c != 0 {
				return c
			}
			a, b = restA, restB
			continue
		}
		if c := cmp.Compare(ra, rb); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// prefixOf converts a kernel address to a netip.Prefix (host bits kept).
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
