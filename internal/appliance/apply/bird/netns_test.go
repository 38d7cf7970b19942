package bird

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// ra is a router advertisement as a host sees it.
type ra struct {
	ifindex        int // where it arrived (in the listener's namespace)
	managed, other bool
	mtu            int
	prefixes       map[netip.Prefix]bool // prefix -> autonomous (SLAAC) flag
	rdnss          []netip.Addr
}

// raListener captures router advertisements in a namespace, on a raw
// ICMPv6 socket opened inside it.
type raListener struct {
	conn *icmp.PacketConn
	p    *ipv6.PacketConn
	ras  chan ra
}

func listenRA(t *testing.T, ns string) *raListener {
	t.Helper()
	var conn *icmp.PacketConn
	listen := func() (err error) { conn, err = icmp.ListenPacket("ip6:ipv6-icmp", "::"); return err }
	if err := lab.InNetns(ns, listen); err != nil {
		t.Fatalf("raw ICMPv6 socket in %s: %v", ns, err)
	}
	l := &raListener{conn: conn, p: conn.IPv6PacketConn(), ras: make(chan ra, 64)}
	t.Cleanup(func() { conn.Close() })
	// Interface indexes, not names: names would be resolved in the test's
	// namespace, not the listener's.
	if err := l.p.SetControlMessage(ipv6.FlagInterface, true); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, cm, _, err := l.p.ReadFrom(buf)
			if err != nil {
				close(l.ras)
				return
			}
			if got, ok := parseRA(buf[:n]); ok && cm != nil {
				got.ifindex = cm.IfIndex
				select {
				case l.ras <- got:
				default:
				}
			}
		}
	}()
	return l
}

// solicit sends a router solicitation on an interface, as a host coming up does.
func (l *raListener) solicit(t *testing.T, ifindex int) {
	t.Helper()
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0} // the kernel fills the checksum
	cm := &ipv6.ControlMessage{IfIndex: ifindex, HopLimit: 255}
	if _, err := l.p.WriteTo(rs, cm, &net.IPAddr{IP: net.ParseIP("ff02::2")}); err != nil {
		t.Fatalf("router solicitation on interface %d: %v", ifindex, err)
	}
}

// next solicits on an interface until an RA arriving there satisfies ok.
func (l *raListener) next(t *testing.T, ifindex int, ok func(ra) bool) ra {
	t.Helper()
	deadline := time.After(60 * time.Second)
	l.solicit(t, ifindex)
	tick := time.NewTicker(4 * time.Second) // BIRD rate-limits solicited RAs (3 s)
	defer tick.Stop()
	var last *ra
	for {
		select {
		case got, open := <-l.ras:
			if !open {
				t.Fatal("RA listener closed")
			}
			if got.ifindex == ifindex {
				if ok(got) {
					return got
				}
				last = &got
			}
		case <-tick.C:
			l.solicit(t, ifindex)
		case <-deadline:
			t.Fatalf("no matching router advertisement on interface %d; last one: %v", ifindex, last)
		}
	}
}

func parseRA(b []byte) (ra, bool) {
	if len(b) < 16 || b[0] != 134 {
		return ra{}, false
	}
	r := ra{managed: b[5]&0x80 != 0, other: b[5]&0x40 != 0, prefixes: map[netip.Prefix]bool{}}
	for opts := b[16:]; len(opts) >= 8; {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			break
		}
		o := opts[:l]
		switch o[0] {
		case 3: // prefix information
			if l >= 32 {
				a, _ := netip.AddrFromSlice(o[16:32])
				r.prefixes[netip.PrefixFrom(a, int(o[2]))] = o[3]&0x40 != 0
			}
		case 5: // MTU
			r.mtu = int(binary.BigEndian.Uint32(o[4:8]))
		case 25: // RDNSS
			for i := 8; i+16 <= l; i += 16 {
				a, _ := netip.AddrFromSlice(o[i : i+16])
				r.rdnss = append(r.rdnss, a)
			}
		}
		opts = opts[l:]
	}
	return r, true
}

func (r ra) String() string {
	return fmt.Sprintf("RA on #%d M=%v O=%v mtu=%d prefixes=%v rdnss=%v", r.ifindex, r.managed, r.other, r.mtu, r.prefixes, r.rdnss)
}

// globalAddrs lists the global IPv6 addresses of ifname in ns.
func globalAddrs(t *testing.T, ns, ifname string) []netip.Prefix {
	t.Helper()
	out := nstest.Exec(t, ns, "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "global")
	var addrs []netip.Prefix
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					addrs = append(addrs, p)
				}
			}
		}
	}
	return addrs
}

func hasAddrIn(addrs []netip.Prefix, p netip.Prefix) bool {
	for _, a := range addrs {
		if p.Contains(a.Addr()) {
			return true
		}
	}
	return false
}

// ifindex returns the index of ifname in ns.
func ifindex(t *testing.T, ns, ifname string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(nstest.Exec(t, ns, "cat", "/sys/class/net/"+ifname+"/ifindex")))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
