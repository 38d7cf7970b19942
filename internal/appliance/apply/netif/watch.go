package netif

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher listens to the kernel's link, address and route notifications in
// this network namespace, so that an Apply can tell whether the state it
// verified last time still holds without reading the whole kernel back
// (10,000 floating IPs are 10,000 routes to dump).
//
// The kernel queues a notification before it acknowledges the request that
// caused it, so draining the socket until it is empty sees every change
// committed so far. An overflowing socket (ENOBUFS) means events were lost:
// the state is then treated as unknown.
type watcher struct {
	fd  int
	buf []byte
}

func newWatcher() (*watcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink watch socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
		unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink watch bind: %w", err)
	}
	// Room for the notifications of a large apply (about 150 bytes each).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
	}
	return &watcher{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (w *watcher) close() error { return unix.Close(w.fd) }

// drain reads every pending notification and reports whether all of them
// agree with verified (nil: nothing to agree with; events are discarded).
func (w *watcher) drain(verified *state) (consistent bool, err error) {
	consistent = true
	var idx map[int]*linkState
	if verified != nil {
		idx = make(map[int]*linkState, len(verified.links))
		for _, l := range verified.links {
			idx[l.index] = l
		}
	}
	for {
		n, _, err := unix.Recvfrom(w.fd, w.buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return consistent, nil
		case errors.Is(err, unix.ENOBUFS):
			consistent = false // events lost
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false, fmt.Errorf("reading netlink notifications: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(w.buf[:n])
		if err != nil {
			consistent = false
			continue
		}
		if verified == nil {
			continue
		}
		for _, m := range msgs {
			if !agrees(verified, idx, m) {
				consistent = false
			}
		}
	}
}

// agrees reports whether one notification is compatible with s: it concerns
// nothing s manages, or it reports a state s expects.
func agrees(s *state, idx map[int]*linkState, m syscall.NetlinkMessage) bool {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(m.Data) < unix.SizeofIfInfomsg {
			return false
		}
		info := (*unix.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		l, ok := idx[int(info.Index)]
		if !ok {
			return true
		}
		if m.Header.Type == unix.RTM_DELLINK || info.Flags&unix.IFF_UP == 0 {
			return false
		}
		attrs, err := parseAttrs(m.Data[unix.SizeofIfInfomsg:])
		if err != nil {
			return false
		}
		if v, ok := attrs[unix.IFLA_MTU]; ok && len(v) >= 4 && int(binary.NativeEndian.Uint32(v)) != l.mtu {
			return false
		}
		if v, ok := attrs[unix.IFLA_IFNAME]; ok && cString(v) != l.name {
			return false
		}
		return true

	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return false
		}
		am := (*unix.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
		l, ok := idx[int(am.Index)]
		if !ok {
			return true
		}
		attrs, err := parseAttrs(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			return false
		}
		raw := attrs[unix.IFA_LOCAL]
		if raw == nil {
			raw = attrs[unix.IFA_ADDRESS]
		}
		a, ok := netip.AddrFromSlice(raw)
		if !ok {
			return false
		}
		if a.Is6() && a.IsLinkLocalUnicast() {
			return true
		}
		p := netip.PrefixFrom(a, int(am.Prefixlen))
		return l.addrs[p] == (m.Header.Type == unix.RTM_NEWADDR)

	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(m.Data) < unix.SizeofRtMsg {
			return false
		}
		rt := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := parseAttrs(m.Data[unix.SizeofRtMsg:])
		if err != nil {
			return false
		}
		table := uint32(rt.Table)
		if v, ok := attrs[unix.RTA_TABLE]; ok && len(v) >= 4 {
			table = binary.NativeEndian.Uint32(v)
		}
		isNew := m.Header.Type == unix.RTM_NEWROUTE
		var dst netip.Addr
		if v, ok := attrs[unix.RTA_DST]; ok {
			dst, _ = netip.AddrFromSlice(v)
		} else if rt.Family == unix.AF_INET6 {
			dst = netip.IPv6Unspecified()
		} else {
			dst = netip.IPv4Unspecified()
		}
		prefix := netip.PrefixFrom(dst, int(rt.Dst_len))
		var oif int
		if v, ok := attrs[unix.RTA_OIF]; ok && len(v) >= 4 {
			oif = int(binary.NativeEndian.Uint32(v))
		}
		if rt.Protocol != Protocol {
			// Someone else's default route in the main table would override ours.
			if isNew && table == unix.RT_TABLE_MAIN && rt.Dst_len == 0 && rt.Type == unix.RTN_UNICAST {
				_, want := s.routes[prefix]
				return !want
			}
			return true
		}
		switch {
		case table == unix.RT_TABLE_LOCAL && rt.Type == unix.RTN_LOCAL:
			want, ok := s.locals[keyOf(dst)]
			return (ok && int(want) == oif) == isNew
		case table == unix.RT_TABLE_MAIN:
			want, ok := s.routes[prefix]
			if !isNew {
				return !ok || want.ifindex != oif
			}
			gw, _ := netip.AddrFromSlice(attrs[unix.RTA_GATEWAY])
			return ok && want.ifindex == oif && want.gw == gw
		}
		return false
	}
	return true
}

// parseAttrs indexes the rtnetlink attributes following a fixed header.
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	out := map[uint16][]byte{}
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) &^ unix.NLA_F_NESTED
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, errors.New("malformed netlink attribute")
		}
		out[t] = b[unix.SizeofRtAttr:l]
		l = (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
