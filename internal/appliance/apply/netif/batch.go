package netif

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// routeBatcher adds and removes many local routes over one netlink socket,
// pipelining requests (hundreds per sendmsg) instead of waiting for each
// acknowledgement: for 10,000 floating IPs the kernel's own work is then
// most of the cost.
type routeBatcher struct {
	fd  int
	seq uint32
	buf []byte
}

// batchSize is how many requests go out before their acknowledgements are
// read; 1,000 acknowledgements (36 bytes each) fit the default receive buffer.
const batchSize = 1000

func newRouteBatcher() (*routeBatcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	return &routeBatcher{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (b *routeBatcher) close() error { return unix.Close(b.fd) }

// localRoutes adds (add) or deletes local routes, one per address, on the
// link ifindexes[i]. It returns, per address, the kernel's error (nil on
// success).
func (b *routeBatcher) localRoutes(add bool, addrs []netip.Addr, ifindexes []int) ([]error, error) {
	errs := make([]error, len(addrs))
	for start := 0; start < len(addrs); start += batchSize {
		end := min(start+batchSize, len(addrs))
		first := b.seq + 1
		var msg []byte
		for i := start; i < end; i++ {
			b.seq++
			msg = appendLocalRoute(msg, b.seq, add, addrs[i], ifindexes[i])
		}
		if err := unix.Sendto(b.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("sending route requests: %w", err)
		}
		if err := b.acks(first, b.seq, errs[start:end]); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

// acks reads the acknowledgements of requests first..last into errs.
func (b *routeBatcher) acks(first, last uint32, errs []error) error {
	pending := int(last - first + 1)
	for pending > 0 {
		n, _, err := unix.Recvfrom(b.fd, b.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading route acknowledgements: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(b.buf[:n])
		if err != nil {
			return fmt.Errorf("parsing route acknowledgements: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq < first || m.Header.Seq > last || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				errs[m.Header.Seq-first] = syscall.Errno(-code)
			}
			pending--
		}
	}
	return nil
}

// appendLocalRoute appends one RTM_NEWROUTE (create or replace) or
// RTM_DELROUTE request for "local <addr> dev <ifindex> table local proto
// Protocol scope host".
func appendLocalRoute(buf []byte, seq uint32, add bool, a netip.Addr, ifindex int) []byte {
	raw := a.AsSlice()
	family := byte(unix.AF_INET)
	if a.Is6() {
		family = unix.AF_INET6
	}
	dstLen := unix.SizeofRtAttr + len(raw)
	length := unix.SizeofNlMsghdr + unix.SizeofRtMsg + align4(dstLen) + unix.SizeofRtAttr + 4
	typ, flags := uint16(unix.RTM_DELROUTE), uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	if add {
		typ, flags = unix.RTM_NEWROUTE, flags|unix.NLM_F_CREATE|unix.NLM_F_REPLACE
	}
	buf = binary.NativeEndian.AppendUint32(buf, uint32(length))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, flags)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // pid: the kernel
	// struct rtmsg
	buf = append(buf, family, byte(len(raw)*8), 0, 0,
		unix.RT_TABLE_LOCAL, Protocol, unix.RT_SCOPE_HOST, unix.RTN_LOCAL)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // rtm_flags
	// RTA_DST
	buf = binary.NativeEndian.AppendUint16(buf, uint16(dstLen))
	buf = binary.NativeEndian.AppendUint16(buf, unix.RTA_DST)
	buf = append(buf, raw...)
	for i := dstLen; i < align4(dstLen); i++ {
		buf = append(buf, 0)
	}
	// RTA_OIF
	buf = binary.NativeEndian.AppendUint16(buf, unix.SizeofRtAttr+4)
	buf = binary.NativeEndian.AppendUint16(buf, unix.RTA_OIF)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(ifindex))
	return buf
}

func align4(n int) int { return (n + 3) &^ 3 }
