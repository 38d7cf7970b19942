package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultWait bounds how long Configure waits for the address when ctx has no
// deadline.
const DefaultWait = 30 * time.Second

// pollInterval is how often Configure looks at the address while waiting.
const pollInterval = 10 * time.Millisecond

// Configure gives the management interface its address in the current
// network namespace: it finds the link whose MAC is m.MAC, sets its MTU (if
// m.MTU is set), disables IPv6 duplicate address detection on it before
// adding an IPv6 address, adds the address unless present, brings the link
// up, and waits until the address can be bound (not tentative). Running it
// again changes nothing. It returns the interface's name.
//
// The work happens on the calling goroutine's thread, so a caller that
// switched a locked OS thread into another namespace may call it from there.
func Configure(ctx context.Context, m Management) (string, error) {
	if err := m.Validate(); err != nil {
		return "", fmt.Errorf("configure management: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWait)
		defer cancel()
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return "", fmt.Errorf("configure management: netlink: %w", err)
	}
	defer h.Close()

	link, err := findLink(h, m.MAC)
	if err != nil {
		return "", fmt.Errorf("configure management: %w", err)
	}
	name := link.Attrs().Name
	fail := func(format string, args ...any) (string, error) {
		return name, fmt.Errorf("configure management %s (%s): %w", name, m.MAC, fmt.Errorf(format, args...))
	}

	if m.MTU != 0 && link.Attrs().MTU != m.MTU {
		if err := h.LinkSetMTU(link, m.MTU); err != nil {
			return fail("set MTU %d: %w", m.MTU, err)
		}
	}
	v6 := m.Address.Addr().Is6()
	if v6 {
		if err := disableDAD(name); err != nil {
			return fail("%w", err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return fail("set link up: %w", err)
		}
	}
	if err := ensureAddress(h, link, m.Address); err != nil {
		return fail("%w", err)
	}
	if err := waitUsable(ctx, h, link, m.Address); err != nil {
		return fail("%w", err)
	}
	return name, nil
}

// findLink returns the link whose MAC is mac. VLANs and macvlans share the
// MAC of the device they sit on, bonds and bridges that of a port; the
// device, or the bond or bridge, is the one meant.
func findLink(h *netlink.Handle, mac net.HardwareAddr) (netlink.Link, error) {
	var links []netlink.Link
	var err error
	for range 5 {
		if links, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var matches []netlink.Link
	var present []string
	for _, l := range links {
		a := l.Attrs()
		if len(a.HardwareAddr) > 0 {
			present = append(present, a.Name+"="+a.HardwareAddr.String())
		}
		if bytes.Equal(a.HardwareAddr, mac) {
			matches = append(matches, l)
		}
	}
	if len(matches) > 1 {
		// Drop the links stacked on another match (a VLAN or macvlan on
		// it) or enslaved to one (a bond or bridge port).
		idx := map[int]bool{}
		for _, l := range matches {
			idx[l.Attrs().Index] = true
		}
		matches = slices.DeleteFunc(matches, func(l netlink.Link) bool {
			return idx[l.Attrs().ParentIndex] || idx[l.Attrs().MasterIndex]
		})
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("no interface has MAC %s (present: %s)", mac, strings.Join(present, ", "))
	default:
		names := make([]string, len(matches))
		for i, l := range matches {
			names[i] = l.Attrs().Name
		}
		return nil, fmt.Errorf("MAC %s is on several interfaces: %s", mac, strings.Join(names, ", "))
	}
}

// disableDAD sets net.ipv6.conf.<ifname>.accept_dad to 0 unless it is already.
func disableDAD(ifname string) error {
	path := filepath.Join("/proc/sys/net/ipv6/conf", ifname, "accept_dad")
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("disable IPv6 DAD: %w", err)
	}
	if strings.TrimSpace(string(cur)) == "0" {
		return nil
	}
	if err := os.WriteFile(path, []byte("0"), 0o644); err != nil {
		return fmt.Errorf("disable IPv6 DAD: %w", err)
	}
	return nil
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// addrList lists the link's addresses of p's family, retrying interrupted dumps.
func addrList(h *netlink.Handle, link netlink.Link, p netip.Prefix) ([]netlink.Addr, error) {
	var addrs []netlink.Addr
	var err error
	for range 5 {
		if addrs, err = h.AddrList(link, family(p)); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return addrs, nil
}

// lookup returns the link's address entry for p's IP, if any.
func lookup(addrs []netlink.Addr, p netip.Prefix) (netlink.Addr, bool) {
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() {
			return a, true
		}
	}
	return netlink.Addr{}, false
}

func prefixLen(a netlink.Addr) int {
	ones, _ := a.Mask.Size()
	return ones
}

// ensureAddress adds p to the link unless it is there already. The same IP
// with another prefix length, or an IPv6 address stuck in duplicate address
// detection (added before DAD was disabled), is replaced.
func ensureAddress(h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	addrs, err := addrList(h, link, p)
	if err != nil {
		return err
	}
	if cur, ok := lookup(addrs, p); ok {
		if prefixLen(cur) == p.Bits() && cur.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			return nil
		}
		if err := h.AddrDel(link, &cur); err != nil {
			return fmt.Errorf("remove %s to re-add it as %s: %w", cur.IPNet, p, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		// Belt and braces: the per-interface sysctl is ignored while
		// net.ipv6.conf.all.accept_dad is set.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	return nil
}

// waitUsable waits until p is on the link and not tentative, so that a
// socket can bind to it.
func waitUsable(ctx context.Context, h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		addrs, err := addrList(h, link, p)
		if err != nil {
			return err
		}
		cur, ok := lookup(addrs, p)
		switch {
		case !ok:
			return fmt.Errorf("address %s disappeared from the link", p)
		case cur.Flags&unix.IFA_F_DADFAILED != 0:
			return fmt.Errorf("address %s failed duplicate address detection", p)
		case cur.Flags&unix.IFA_F_TENTATIVE == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for address %s to leave the tentative state: %w", p, context.Cause(ctx))
		case <-t.C:
		}
	}
}
