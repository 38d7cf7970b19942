package netif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// state is a set of kernel facts this package manages, either read from the
// kernel or desired. Diffing two states gives the operations to run.
type state struct {
	links  map[string]*linkState // by kernel name
	routes map[netip.Prefix]hop  // our routes in the main table, by destination
	locals map[addrKey]int32     // our local routes: address → ifindex
}

// addrKey is an address as a map key: 16 bytes without pointers, so that
// maps of 10,000 floating IPs hash fast and cost the collector nothing.
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return a.As16() }

func (k addrKey) addr() netip.Addr { return netip.AddrFrom16(k).Unmap() }

type linkState struct {
	name    string
	index   int
	mtu     int
	up      bool
	addrs   map[netip.Prefix]bool // all but IPv6 link-local
	sysctls map[string]string     // key (e.g. "ipv6/accept_dad") → value; "" = absent
}

type hop struct {
	gw      netip.Addr
	ifindex int
}

// withSysctls returns s with the per-link sysctls of spec's interfaces
// read afresh: they raise no netlink event, so the watcher cannot vouch for
// them. The routes and local addresses are shared with s, not copied.
func (s *state) withSysctls(sys sysctls, spec Spec) (*state, error) {
	c := &state{links: make(map[string]*linkState, len(s.links)), routes: s.routes, locals: s.locals}
	for name, l := range s.links {
		c.links[name] = l
	}
	for _, ifc := range spec.Interfaces {
		l, ok := c.links[ifc.Name]
		if !ok {
			continue
		}
		v, err := readLinkSysctls(sys, ifc)
		if err != nil {
			return nil, err
		}
		cl := *l
		cl.sysctls = v
		c.links[ifc.Name] = &cl
	}
	return c, nil
}

// covers reports whether s knows every interface spec refers to.
func (s *state) covers(spec Spec) bool {
	for _, ifc := range spec.Interfaces {
		if _, ok := s.links[ifc.Name]; !ok {
			return false
		}
	}
	return true
}

func readLinkSysctls(sys sysctls, ifc Interface) (map[string]string, error) {
	want := linkSysctls(ifc)
	got := make(map[string]string, len(want))
	for key := range want {
		v, err := sys.get(ifc.Name, key)
		if err != nil {
			return nil, err
		}
		got[key] = v
	}
	return got, nil
}

// linkSysctls are the per-interface settings of a router port: IPv6
// autoconfiguration off (the orchestrator supplies every address), and IPv4
// secondaries promoted so that removing a primary address keeps the others.
func linkSysctls(ifc Interface) map[string]string {
	m := map[string]string{
		"ipv6/accept_ra":           "0",
		"ipv6/autoconf":            "0",
		"ipv4/promote_secondaries": "1",
	}
	if ifc.DisableDAD {
		m["ipv6/accept_dad"] = "0"
	}
	return m
}

// readState reads from the kernel the facts spec refers to.
func readState(h *netlink.Handle, sys sysctls, spec Spec) (*state, error) {
	s := &state{links: map[string]*linkState{}, routes: map[netip.Prefix]hop{}, locals: map[addrKey]int32{}}
	byIndex := map[int]*linkState{}
	for _, ifc := range spec.Interfaces {
		l, err := h.LinkByName(ifc.Name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("interface %s does not exist", ifc.Name)
			}
			return nil, fmt.Errorf("reading link %s: %w", ifc.Name, err)
		}
		a := l.Attrs()
		ls := &linkState{
			name:  ifc.Name,
			index: a.Index,
			mtu:   a.MTU,
			up:    a.Flags&net.FlagUp != 0,
			addrs: map[netip.Prefix]bool{},
		}
		if ls.sysctls, err = readLinkSysctls(sys, ifc); err != nil {
			return nil, err
		}
		s.links[ifc.Name] = ls
		byIndex[a.Index] = ls
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		ls := byIndex[a.LinkIndex]
		p, ok := prefixOf(a.IPNet)
		if ls == nil || !ok || p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
			continue
		}
		ls.addrs[p] = true
	}
	err = h.RouteListFilteredIter(netlink.FAMILY_ALL, &netlink.Route{Protocol: Protocol, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			dst := routeDst(r)
			switch {
			case r.Table == unix.RT_TABLE_LOCAL && r.Type == unix.RTN_LOCAL:
				s.locals[keyOf(dst.Addr())] = int32(r.LinkIndex)
			case r.Table == unix.RT_TABLE_MAIN:
				gw, _ := netip.AddrFromSlice(r.Gw)
				s.routes[dst] = hop{gw: gw.Unmap(), ifindex: r.LinkIndex}
			}
			return true
		})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return s, nil
}

func routeDst(r netlink.Route) netip.Prefix {
	if p, ok := prefixOf(r.Dst); ok {
		return p
	}
	if r.Family == unix.AF_INET6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// desiredState is spec resolved against the kernel's link indexes in cur.
func desiredState(spec Spec, cur *state) (*state, error) {
	s := &state{
		links:  make(map[string]*linkState, len(spec.Interfaces)),
		routes: make(map[netip.Prefix]hop, len(spec.Routes)),
		locals: make(map[addrKey]int32, len(spec.LocalAddrs)),
	}
	for _, ifc := range spec.Interfaces {
		c, ok := cur.links[ifc.Name]
		if !ok {
			return nil, fmt.Errorf("interface %s does not exist", ifc.Name)
		}
		ls := &linkState{
			name:    ifc.Name,
			index:   c.index,
			mtu:     c.mtu,
			up:      true,
			addrs:   make(map[netip.Prefix]bool, len(ifc.Addresses)),
			sysctls: map[string]string{},
		}
		if ifc.MTU != 0 {
			ls.mtu = ifc.MTU
		}
		for _, p := range ifc.Addresses {
			if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
				continue // link-local addresses belong to the kernel
			}
			ls.addrs[p] = true
		}
		for key, v := range linkSysctls(ifc) {
			if c.sysctls[key] == "" {
				continue // e.g. IPv6 disabled on this link
			}
			ls.sysctls[key] = v
		}
		s.links[ifc.Name] = ls
	}
	for _, r := range spec.Routes {
		if _, dup := s.routes[r.Dst.Masked()]; dup {
			continue // first wins, as two next hops for one destination cannot both be installed
		}
		s.routes[r.Dst.Masked()] = hop{gw: r.Gateway, ifindex: s.links[r.Dev].index}
	}
	for _, l := range spec.LocalAddrs {
		s.locals[keyOf(l.Addr)] = int32(s.links[l.Dev].index)
	}
	return s, nil
}
