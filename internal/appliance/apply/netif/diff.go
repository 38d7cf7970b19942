package netif

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type opKind int

// The operations, in the order they run: settings before addresses,
// addresses added before removed ("update the primary before the aliases"),
// routes after the addresses that make their gateways reachable.
const (
	opSysctl opKind = iota
	opMTU
	opUp
	opAddrDelFirst // an IPv6 address whose prefix length changes: the kernel keys v6 by address
	opAddrAdd
	opAddrDel
	opRouteSet
	opRouteDel
	opLocalAdd
	opLocalDel
)

type op struct {
	kind   opKind
	link   *linkState // for link operations
	prefix netip.Prefix
	addr   netip.Addr
	hop    hop
	key    string
	value  string
}

func (o op) String() string {
	switch o.kind {
	case opSysctl:
		return fmt.Sprintf("sysctl %s/%s=%s", o.link.name, o.key, o.value)
	case opMTU:
		return fmt.Sprintf("mtu %s %s", o.link.name, o.value)
	case opUp:
		return fmt.Sprintf("up %s", o.link.name)
	case opAddrAdd:
		return fmt.Sprintf("add %s to %s", o.prefix, o.link.name)
	case opAddrDel, opAddrDelFirst:
		return fmt.Sprintf("remove %s from %s", o.prefix, o.link.name)
	case opRouteSet:
		return fmt.Sprintf("route %s via %s", o.prefix, o.hop.gw)
	case opRouteDel:
		return fmt.Sprintf("remove route %s", o.prefix)
	case opLocalAdd:
		return fmt.Sprintf("local %s", o.addr)
	case opLocalDel:
		return fmt.Sprintf("remove local %s", o.addr)
	}
	return "unknown"
}

// diff returns the operations that turn cur into want, in execution order.
// Only the links in want are managed; addresses of other links are left alone.
func diff(cur, want *state) []op {
	var ops []op
	names := slices.Sorted(maps.Keys(want.links))
	for _, name := range names {
		w, c := want.links[name], cur.links[name]
		for _, key := range slices.Sorted(maps.Keys(w.sysctls)) {
			if c.sysctls[key] != w.sysctls[key] {
				ops = append(ops, op{kind: opSysctl, link: w, key: key, value: w.sysctls[key]})
			}
		}
		if w.mtu != c.mtu {
			ops = append(ops, op{kind: opMTU, link: w, value: fmt.Sprint(w.mtu)})
		}
		if !c.up {
			ops = append(ops, op{kind: opUp, link: w})
		}
		curByAddr := map[netip.Addr]netip.Prefix{}
		for p := range c.addrs {
			curByAddr[p.Addr()] = p
		}
		for _, p := range sortedPrefixes(w.addrs) {
			if c.addrs[p] {
				continue
			}
			if old, ok := curByAddr[p.Addr()]; ok && p.Addr().Is6() {
				ops = append(ops, op{kind: opAddrDelFirst, link: w, prefix: old})
			}
			ops = append(ops, op{kind: opAddrAdd, link: w, prefix: p})
		}
		for _, p := range sortedPrefixes(c.addrs) {
			if w.addrs[p] {
				continue
			}
			if wp, ok := findByAddr(w.addrs, p.Addr()); ok && wp != p && p.Addr().Is6() {
				continue // removed by opAddrDelFirst
			}
			ops = append(ops, op{kind: opAddrDel, link: w, prefix: p})
		}
	}
	for _, dst := range sortedPrefixes(want.routes) {
		if h, ok := cur.routes[dst]; !ok || h != want.routes[dst] {
			ops = append(ops, op{kind: opRouteSet, prefix: dst, hop: want.routes[dst]})
		}
	}
	for _, dst := range sortedPrefixes(cur.routes) {
		if _, ok := want.routes[dst]; !ok {
			ops = append(ops, op{kind: opRouteDel, prefix: dst, hop: cur.routes[dst]})
		}
	}
	nameOf := map[int]string{}
	for _, l := range want.links {
		nameOf[l.index] = l.name
	}
	for k, idx := range want.locals {
		if ci, ok := cur.locals[k]; !ok || ci != idx {
			ops = append(ops, op{kind: opLocalAdd, addr: k.addr(), hop: hop{ifindex: int(idx)}, value: nameOf[int(idx)]})
		}
	}
	for k, idx := range cur.locals {
		if wi, ok := want.locals[k]; !ok || wi != idx {
			ops = append(ops, op{kind: opLocalDel, addr: k.addr(), hop: hop{ifindex: int(idx)}})
		}
	}
	slices.SortStableFunc(ops, func(a, b op) int { return cmp.Compare(a.kind, b.kind) })
	return ops
}

func findByAddr(set map[netip.Prefix]bool, a netip.Addr) (netip.Prefix, bool) {
	for p := range set {
		if p.Addr() == a {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// execute runs ops. Removing something already gone is not an error.
func (m *Manager) execute(ctx context.Context, ops []op) (Result, error) {
	var res Result
	for i := 0; i < len(ops); i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if k := ops[i].kind; k == opLocalAdd || k == opLocalDel {
			j := i
			for j < len(ops) && ops[j].kind == k {
				j++
			}
			if err := m.runLocal(ops[i:j], &res); err != nil {
				return res, err
			}
			i = j - 1
			continue
		}
		if err := m.run(ops[i], &res); err != nil {
			return res, fmt.Errorf("%s: %w", ops[i], err)
		}
		res.Changes++
	}
	return res, nil
}

// runLocal adds or removes local addresses in pipelined batches.
func (m *Manager) runLocal(ops []op, res *Result) error {
	add := ops[0].kind == opLocalAdd
	addrs := make([]netip.Addr, len(ops))
	idx := make([]int, len(ops))
	for i, o := range ops {
		addrs[i], idx[i] = o.addr, o.hop.ifindex
	}
	errs, err := m.batch.localRoutes(add, addrs, idx)
	if err != nil {
		return err
	}
	for i, o := range ops {
		if errs[i] != nil && (add || !gone(errs[i])) {
			return fmt.Errorf("%s: %w", o, errs[i])
		}
		res.Changes++
		if add {
			res.AddedLocal = append(res.AddedLocal, LocalAddr{Addr: o.addr, Dev: o.value})
		} else if o.addr.Is4() {
			res.RemovedV4 = append(res.RemovedV4, o.addr)
		}
	}
	return nil
}

func (m *Manager) run(o op, res *Result) error {
	var link netlink.Link
	if o.link != nil {
		link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: o.link.index, Name: o.link.name}}
	}
	switch o.kind {
	case opSysctl:
		return m.sys.set(o.link.name, o.key, o.value)
	case opMTU:
		return m.h.LinkSetMTU(link, o.link.mtu)
	case opUp:
		return m.h.LinkSetUp(link)
	case opAddrAdd:
		a := &netlink.Addr{IPNet: ipNet(o.prefix)}
		if o.prefix.Addr().Is6() && o.link.sysctls["ipv6/accept_dad"] == "0" {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := m.h.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		if o.prefix.Addr().Is4() {
			res.AddedV4 = append(res.AddedV4, LocalAddr{Addr: o.prefix.Addr(), Dev: o.link.name})
		}
	case opAddrDel, opAddrDelFirst:
		if err := m.h.AddrDel(link, &netlink.Addr{IPNet: ipNet(o.prefix)}); err != nil && !gone(err) {
			return err
		}
		if o.prefix.Addr().Is4() {
			res.RemovedV4 = append(res.RemovedV4, o.prefix.Addr())
		}
	case opRouteSet:
		return m.h.RouteReplace(&netlink.Route{
			Dst: ipNet(o.prefix), Gw: o.hop.gw.AsSlice(), LinkIndex: o.hop.ifindex,
			Protocol: Protocol, Table: unix.RT_TABLE_MAIN,
		})
	case opRouteDel:
		if err := m.h.RouteDel(&netlink.Route{
			Dst: ipNet(o.prefix), LinkIndex: o.hop.ifindex, Protocol: Protocol, Table: unix.RT_TABLE_MAIN,
		}); err != nil && !gone(err) {
			return err
		}
	}
	return nil
}

// gone reports a "no such address/route" error: removing it is already done.
func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV)
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	return out
}
