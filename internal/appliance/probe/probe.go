// Package probe tells whether the appliance reaches the outside world, by
// sending one ICMP echo request to a configurable target per IP version.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Default targets, as the original probed (Google's public DNS).
var (
	DefaultV4 = netip.MustParseAddr("8.8.8.8")
	DefaultV6 = netip.MustParseAddr("2001:4860:4860::8888")
)

// Ping sends echo requests to target, one every 500 ms (the first may be
// lost while the neighbour is resolved), until a reply comes back or ctx
// ends (or one second, when ctx has no deadline).
func Ping(ctx context.Context, target netip.Addr) error {
	if !target.IsValid() {
		return fmt.Errorf("ping: no target")
	}
	network, proto, reqType, replyType := "ip4:icmp", 1, icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply)
	if target.Is6() {
		network, proto, reqType, replyType = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	conn, err := icmp.ListenPacket(network, "")
	if err != nil {
		return fmt.Errorf("ping %s: %w", target, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	var idb [4]byte
	_, _ = rand.Read(idb[:])
	id, seq := int(binary.BigEndian.Uint16(idb[:2])), int(binary.BigEndian.Uint16(idb[2:]))
	payload := []byte("astara-appliance-probe")
	msg, err := (&icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}).Marshal(nil)
	if err != nil {
		return fmt.Errorf("ping %s: %w", target, err)
	}
	dst := &net.IPAddr{IP: target.AsSlice()}
	buf := make([]byte, 1500)
	for {
		if _, err := conn.WriteTo(msg, dst); err != nil {
			return fmt.Errorf("ping %s: %w", target, err)
		}
		resend := time.Now().Add(500 * time.Millisecond)
		if resend.After(deadline) {
			resend = deadline
		}
		if err := readReply(conn, buf, resend, dst, proto, replyType, id, seq); err == nil {
			return nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("ping %s: no reply: %w", target, err)
		}
	}
}

// readReply waits until the given time for the echo reply (id, seq) from dst.
func readReply(conn *icmp.PacketConn, buf []byte, until time.Time, dst *net.IPAddr, proto int, replyType icmp.Type, id, seq int) error {
	_ = conn.SetReadDeadline(until)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(dst.IP) {
			continue
		}
		reply, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || reply.Type != replyType {
			continue
		}
		if echo, ok := reply.Body.(*icmp.Echo); ok && echo.ID == id && echo.Seq == seq {
			return nil
		}
	}
}
