package firewall

// A lean nf_tables netlink layer: messages are encoded straight into one
// buffer and replies are parsed in place, without per-attribute allocations.
// google/nftables is only used to encode rule expressions (see rules.go).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	nlmsgHdrLen   = 16
	nlaHdrLen     = 4
	nfgenLen      = 4
	nlaFNested    = unix.NLA_F_NESTED
	nlaTypeMask   = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	nfprotoInet   = unix.NFPROTO_INET
	recvBufSize   = 256 << 10
	defaultIOWait = 30 * time.Second
)

// nftType returns the netlink message type of an nf_tables message.
func nftType(msg int) uint16 { return uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | msg) }

func align4(n int) int { return (n + 3) &^ 3 }

// ---------------------------------------------------------------- encoding

// msgBuf appends netlink messages and attributes to one buffer.
type msgBuf struct {
	b   []byte
	err error
}

// begin starts a message with an nfgenmsg header and returns its offset.
func (w *msgBuf) begin(typ, flags uint16, seq uint32, family uint8, resID uint16) int {
	off := len(w.b)
	var h [nlmsgHdrLen + nfgenLen]byte
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], seq)
	h[16] = family
	h[17] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(h[18:], resID)
	w.b = append(w.b, h[:]...)
	return off
}

// end finishes the message started at off.
func (w *msgBuf) end(off int) {
	binary.NativeEndian.PutUint32(w.b[off:], uint32(len(w.b)-off))
}

func (w *msgBuf) pad() {
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *msgBuf) attr(typ uint16, data []byte) {
	n := nlaHdrLen + len(data)
	if n > 0xffff {
		w.setErr(fmt.Errorf("netlink attribute %d too long (%d bytes)", typ, n))
		return
	}
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(n))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, data...)
	w.pad()
}

func (w *msgBuf) str(typ uint16, s string) {
	n := nlaHdrLen + len(s) + 1
	if n > 0xffff {
		w.setErr(fmt.Errorf("netlink attribute %d too long (%d bytes)", typ, n))
		return
	}
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(n))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.pad()
}

func (w *msgBuf) u32(typ uint16, v uint32) {
	w.b = binary.NativeEndian.AppendUint16(w.b, 8)
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = binary.BigEndian.AppendUint32(w.b, v)
}

// nest starts a nested attribute; close it with endNest.
func (w *msgBuf) nest(typ uint16) int {
	off := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0)
	binary.NativeEndian.PutUint16(w.b[off+2:], typ|nlaFNested)
	return off
}

func (w *msgBuf) endNest(off int) {
	n := len(w.b) - off
	if n > 0xffff {
		w.setErr(fmt.Errorf("nested netlink attribute too long (%d bytes)", n))
		return
	}
	binary.NativeEndian.PutUint16(w.b[off:], uint16(n))
}

func (w *msgBuf) setErr(err error) {
	if w.err == nil {
		w.err = err
	}
}

// ---------------------------------------------------------------- parsing

// nlMsg is one received netlink message; data is the payload after the
// netlink header and aliases the receive buffer.
type nlMsg struct {
	typ, flags uint16
	seq        uint32
	data       []byte
}

// splitMsgs calls fn for every message in a datagram.
func splitMsgs(b []byte, fn func(nlMsg) (bool, error)) (bool, error) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("malformed netlink message (length %d of %d)", l, len(b))
		}
		m := nlMsg{
			typ:   binary.NativeEndian.Uint16(b[4:]),
			flags: binary.NativeEndian.Uint16(b[6:]),
			seq:   binary.NativeEndian.Uint32(b[8:]),
			data:  b[nlmsgHdrLen:l],
		}
		done, err := fn(m)
		if done || err != nil {
			return done, err
		}
		b = b[min(align4(l), len(b)):]
	}
	return false, nil
}

// attrIter walks netlink attributes without allocating.
type attrIter struct {
	b   []byte
	typ uint16
	val []byte
}

func newAttrIter(b []byte) attrIter { return attrIter{b: b} }

func (it *attrIter) next() bool {
	if len(it.b) < nlaHdrLen {
		return false
	}
	l := int(binary.NativeEndian.Uint16(it.b))
	if l < nlaHdrLen || l > len(it.b) {
		it.b = nil
		return false
	}
	it.typ = binary.NativeEndian.Uint16(it.b[2:]) & nlaTypeMask
	it.val = it.b[nlaHdrLen:l]
	it.b = it.b[min(align4(l), len(it.b)):]
	return true
}

func (it *attrIter) u32() uint32 {
	if len(it.val) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(it.val)
}

func (it *attrIter) str() string {
	v := it.val
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	return string(v)
}

// strEq compares a NUL-terminated attribute with s without allocating.
func (it *attrIter) strEq(s string) bool {
	v := it.val
	if len(v) > 0 && v[len(v)-1] == 0 {
		v = v[:len(v)-1]
	}
	return string(v) == s
}

// errnoError is an error reported by the kernel in an NLMSG_ERROR message.
type errnoError struct {
	errno unix.Errno
	msg   string // extended ack message, if any
}

func (e *errnoError) Error() string {
	if e.msg != "" {
		return e.errno.Error() + " (" + e.msg + ")"
	}
	return e.errno.Error()
}

func (e *errnoError) Unwrap() error { return e.errno }

// parseError decodes an NLMSG_ERROR payload; nil means an ACK.
func parseError(m nlMsg) error {
	if len(m.data) < 4 {
		return errors.New("short netlink error message")
	}
	code := int32(binary.NativeEndian.Uint32(m.data))
	if code == 0 {
		return nil
	}
	e := &errnoError{errno: unix.Errno(-code)}
	if m.flags&unix.NLM_F_ACK_TLVS != 0 && len(m.data) >= 4+nlmsgHdrLen {
		// struct nlmsgerr (error + header of the request), the request's
		// payload unless capped, then the extended-ack attributes.
		off := 4 + nlmsgHdrLen
		if m.flags&unix.NLM_F_CAPPED == 0 {
			off = 4 + int(binary.NativeEndian.Uint32(m.data[4:]))
		}
		if off = align4(off); off <= len(m.data) {
			it := newAttrIter(m.data[off:])
			for it.next() {
				if it.typ == unix.NLMSGERR_ATTR_MSG {
					e.msg = it.str()
				}
			}
		}
	}
	return e
}

// ---------------------------------------------------------------- socket

// nlSock is a NETLINK_NETFILTER socket in the process's network namespace.
type nlSock struct {
	conn    *netlink.Conn
	raw     syscall.RawConn
	seq     uint32
	rbuf    []byte
	sndbuf  int
	scratch msgBuf
}

func dialNetfilter() (*nlSock, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{})
	if err != nil {
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	s := &nlSock{conn: c, rbuf: make([]byte, recvBufSize), seq: uint32(time.Now().UnixNano())}
	fail := func(what string, err error) (*nlSock, error) {
		_ = c.Close()
		return nil, fmt.Errorf("netfilter netlink socket: %s: %w", what, err)
	}
	if s.raw, err = c.SyscallConn(); err != nil {
		return fail("raw conn", err)
	}
	// Short error messages (no echo of the failed request) with the
	// kernel's explanation attached.
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return fail("NETLINK_CAP_ACK", err)
	}
	if err := c.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
		return fail("NETLINK_EXT_ACK", err)
	}
	if err := s.setSockBuf(unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, 4<<20); err != nil {
		return fail("receive buffer", err)
	}
	return s, nil
}

func (s *nlSock) close() error { return s.conn.Close() }

// nextSeq returns the next sequence number; a batch's messages must have
// consecutive ones (they may wrap around through 0).
func (s *nlSock) nextSeq() uint32 {
	s.seq++
	return s.seq
}

// setSockBuf sets a socket buffer size, with the FORCE variant (needs
// CAP_NET_ADMIN) to exceed net.core.[rw]mem_max, else the plain one.
func (s *nlSock) setSockBuf(force, plain, size int) error {
	var serr error
	err := s.raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, size); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, plain, size)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// ensureSndbuf makes the socket's send buffer big enough for one sendmsg of
// n bytes: an nfnetlink batch must arrive in a single datagram.
func (s *nlSock) ensureSndbuf(n int) error {
	want := n + 64<<10
	if want <= s.sndbuf {
		return nil
	}
	want = max(want, 1<<20)
	if err := s.setSockBuf(unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, want); err != nil {
		return fmt.Errorf("set send buffer to %d bytes: %w", want, err)
	}
	// Without CAP_NET_ADMIN the plain option is capped by net.core.wmem_max.
	var got int
	var gerr error
	if err := s.raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) }); err != nil {
		return err
	}
	if gerr != nil {
		return fmt.Errorf("read send buffer size: %w", gerr)
	}
	if got < n+32 {
		return fmt.Errorf("transaction of %d bytes exceeds the socket send buffer (%d bytes): raise net.core.wmem_max or grant CAP_NET_ADMIN", n, got)
	}
	s.sndbuf = want
	return nil
}

// deadline bounds blocking socket I/O by ctx (and a default timeout); the
// returned function must be called when the operation is over.
func (s *nlSock) deadline(ctx context.Context) func() {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(defaultIOWait)
	}
	_ = s.conn.SetDeadline(d)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

func (s *nlSock) send(b []byte) error {
	if err := s.ensureSndbuf(len(b)); err != nil {
		return err
	}
	var n int
	var serr error
	err := s.raw.Write(func(fd uintptr) bool {
		n, serr = unix.SendmsgN(int(fd), b, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("netlink sendmsg (%d bytes): %w", len(b), err)
	}
	if n != len(b) {
		return fmt.Errorf("netlink sendmsg: short write %d of %d bytes", n, len(b))
	}
	return nil
}

// recv reads one datagram into the socket's buffer.
func (s *nlSock) recv() ([]byte, error) {
	var n int
	var rerr error
	err := s.raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), s.rbuf, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("netlink recv: %w", err)
	}
	if n > len(s.rbuf) {
		return nil, fmt.Errorf("netlink recv: datagram of %d bytes truncated", n)
	}
	return s.rbuf[:n], nil
}

var errDumpInterrupted = errors.New("netlink dump interrupted by a concurrent ruleset change")

// request sends one request and hands every reply message to fn, until the
// reply is complete: the first message for a plain request, NLMSG_DONE for a
// dump. Messages of other (stale) sequence numbers are skipped. When fn
// fails during a dump, the rest of the dump is read (and dropped) before
// its error is returned: the socket can then run another dump (the kernel
// refuses a new dump with EBUSY while one is unfinished).
func (s *nlSock) request(ctx context.Context, typ uint16, flags uint16, family uint8, attrs func(*msgBuf), fn func(nlMsg) error) error {
	seq := s.nextSeq()
	w := &s.scratch
	w.b, w.err = w.b[:0], nil
	off := w.begin(typ, unix.NLM_F_REQUEST|flags, seq, family, 0)
	if attrs != nil {
		attrs(w)
	}
	w.end(off)
	if w.err != nil {
		return w.err
	}
	defer s.deadline(ctx)()
	if err := s.send(w.b); err != nil {
		return err
	}
	dump := flags&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	var intr bool
	var fnErr error
	for {
		b, err := s.recv()
		if err != nil {
			return err
		}
		done, err := splitMsgs(b, func(m nlMsg) (bool, error) {
			if m.seq != seq {
				return false, nil
			}
			if m.flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch m.typ {
			case unix.NLMSG_ERROR:
				return true, parseError(m)
			case unix.NLMSG_DONE:
				return true, nil
			case unix.NLMSG_NOOP:
				return false, nil
			}
			if len(m.data) < nfgenLen {
				return true, fmt.Errorf("short netlink message of type %#x", m.typ)
			}
			if fnErr != nil {
				return false, nil
			}
			if err := fn(m); err != nil {
				if !dump {
					return true, err
				}
				fnErr = err
			}
			return !dump, nil
		})
		if err != nil {
			return err
		}
		if done {
			if fnErr != nil {
				return fnErr
			}
			if intr {
				return errDumpInterrupted
			}
			return nil
		}
	}
}

// generation returns the nf_tables ruleset generation id: the kernel bumps
// it on every committed transaction, in this network namespace.
func (s *nlSock) generation(ctx context.Context) (uint32, error) {
	var id uint32
	var found bool
	err := s.request(ctx, nftType(unix.NFT_MSG_GETGEN), 0, unix.AF_UNSPEC, nil, func(m nlMsg) error {
		if m.typ != nftType(unix.NFT_MSG_NEWGEN) || len(m.data) < nfgenLen {
			return fmt.Errorf("unexpected reply type %#x to GETGEN", m.typ)
		}
		it := newAttrIter(m.data[nfgenLen:])
		for it.next() {
			if it.typ == unix.NFTA_GEN_ID {
				id, found = it.u32(), true
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("query nftables generation: %w", err)
	}
	if !found {
		return 0, errors.New("query nftables generation: no generation id in reply")
	}
	return id, nil
}

// ---------------------------------------------------------------- batches

// batch is one nf_tables transaction: BATCH_BEGIN, messages, BATCH_END, sent
// with a single sendmsg. The kernel applies all of it or nothing.
type batch struct {
	w        msgBuf
	beginSeq uint32
	descs    []string // description of message i (sequence beginSeq+1+i)
	cur      int      // offset of the message being written
}

// newBatch starts a transaction. A non-zero genid makes the kernel reject
// the whole batch with ERESTART unless the ruleset is still at generation
// genid (NFNL_BATCH_GENID): a compare-and-swap against concurrent writers.
func (s *nlSock) newBatch(genid uint32) *batch {
	b := &batch{beginSeq: s.nextSeq()}
	off := b.w.begin(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, b.beginSeq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	if genid != 0 {
		b.w.u32(unix.NFNL_BATCH_GENID, genid)
	}
	b.w.end(off)
	return b
}

// add starts a message of the batch; finish it with done. Every message asks
// for an acknowledgement so the outcome of each is known.
func (b *batch) add(s *nlSock, msg int, flags uint16, desc string) *msgBuf {
	seq := s.nextSeq()
	if want := b.beginSeq + 1 + uint32(len(b.descs)); seq != want {
		b.w.setErr(fmt.Errorf("batch sequence numbers out of order (%d, want %d)", seq, want))
	}
	b.descs = append(b.descs, desc)
	b.cur = b.w.begin(nftType(msg), unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags, seq, nfprotoInet, 0)
	return &b.w
}

func (b *batch) done() { b.w.end(b.cur) }

func (b *batch) len() int { return len(b.descs) }

// commit sends the batch and waits for the acknowledgement of every message.
func (s *nlSock) commit(ctx context.Context, b *batch) error {
	endSeq := s.nextSeq()
	off := b.w.begin(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, endSeq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	b.w.end(off)
	if b.w.err != nil {
		return fmt.Errorf("encode transaction: %w", b.w.err)
	}
	defer s.deadline(ctx)()
	if err := s.send(b.w.b); err != nil {
		return err
	}
	first, n := b.beginSeq+1, uint32(len(b.descs))
	acked := 0
	var firstErr error
	for acked < len(b.descs) {
		buf, err := s.recv()
		if err != nil {
			return err
		}
		done, err := splitMsgs(buf, func(m nlMsg) (bool, error) {
			if m.typ != unix.NLMSG_ERROR {
				return false, nil
			}
			switch {
			case m.seq == b.beginSeq:
				// Whole batch refused (generation mismatch) or commit failed.
				err := parseError(m)
				if err == nil {
					return false, nil
				}
				return true, fmt.Errorf("nftables transaction: %w", err)
			case m.seq-first < n: // wrap-around safe
				acked++
				if err := parseError(m); err != nil && firstErr == nil {
					firstErr = fmt.Errorf("nftables transaction: %s: %w", b.descs[m.seq-first], err)
				}
			}
			return false, nil
		})
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	return firstErr
}
