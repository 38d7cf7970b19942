package dhcp

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// fakeUpstream is a DNS server answering every A query with one address.
func fakeUpstream(t *testing.T, listen string, answer netip.Addr) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			r := dnsmessage.Message{
				Header:    dnsmessage.Header{ID: q.ID, Response: true, RecursionAvailable: true},
				Questions: q.Questions,
				Answers: []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1},
					Body:   &dnsmessage.AResource{A: answer.As4()},
				}},
			}
			if b, err := r.Pack(); err == nil {
				_, _ = conn.WriteTo(b, from)
			}
		}
	}()
}

// udpIn opens a UDP socket inside a namespace (a socket stays in the
// namespace it was created in).
func udpIn(t *testing.T, ns string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	if err := lab.InNetns(ns, func() (err error) { c, err = net.ListenPacket("udp4", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// resolve asks server for name's A record from the VM.
func resolve(c net.PacketConn, server netip.AddrPort, name string) (netip.Addr, error) {
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: uint16(time.Now().UnixNano()), RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	b, err := q.Pack()
	if err != nil {
		return netip.Addr{}, err
	}
	if _, err := c.WriteTo(b, net.UDPAddrFromAddrPort(server)); err != nil {
		return netip.Addr{}, err
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return netip.Addr{}, err
		}
		var r dnsmessage.Message
		if r.Unpack(buf[:n]) != nil || r.ID != q.ID {
			continue
		}
		for _, a := range r.Answers {
			if ar, ok := a.Body.(*dnsmessage.AResource); ok {
				return netip.AddrFrom4(ar.A), nil
			}
		}
		return netip.Addr{}, errors.New("no A record in the answer")
	}
}

// With upstream servers, dnsmasq serves DNS on the tenant interface (and
// offers itself as the DNS server), forwarding to them; a change of
// upstreams is a reload.
func TestDnsmasqForwardsDNS(t *testing.T) {
	nstest.Require(t)
	vm := nstest.NewNamespace(t, "astara-vm")
	nstest.Veth(t, "tn1", "vm1", vm, macA)
	nstest.Run(t, "ip", "addr", "add", "10.10.1.1/24", "dev", "tn1")
	nstest.Exec(t, vm, "ip", "addr", "add", "10.10.1.10/24", "dev", "vm1")
	fakeUpstream(t, "127.0.0.2:53", addr("192.0.2.7"))
	fakeUpstream(t, "127.0.0.3:53", addr("192.0.2.8"))

	spec := Spec{Networks: []Network{{
		Interface:   "tn1",
		Subnets:     []model.Subnet{{CIDR: pfx("10.10.1.0/24"), GatewayIP: addr("10.10.1.1"), DHCPEnabled: true}},
		Allocations: []model.Allocation{alloc(macA, "vm-a", "10.10.1.10")},
	}}, Upstreams: addrs("127.0.0.2")}
	s := newServer(t, searchableTempDir(t))
	pid := apply(t, s, spec, ActionStarted).PID

	if env := lease(t, vm, "vm1", false); env["new_domain_name_servers"] != "10.10.1.1" {
		t.Errorf("DNS server offered = %q; want dnsmasq itself (10.10.1.1)", env["new_domain_name_servers"])
	}
	c := udpIn(t, vm)
	server := netip.MustParseAddrPort("10.10.1.1:53")
	var got netip.Addr
	nstest.WaitFor(t, 30*time.Second, "an answer through dnsmasq", func() bool {
		got, _ = resolve(c, server, "www.example.test.")
		return got.IsValid()
	})
	if got != addr("192.0.2.7") {
		t.Fatalf("answer %v; want 192.0.2.7 from the upstream", got)
	}

	spec.Upstreams = addrs("127.0.0.3")
	if res := apply(t, s, spec, ActionReloaded); res.PID != pid {
		t.Fatalf("changing upstreams restarted dnsmasq (%d -> %d)", pid, res.PID)
	}
	nstest.WaitFor(t, 30*time.Second, "answers from the new upstream", func() bool {
		got, _ = resolve(c, server, "www2.example.test.")
		return got == addr("192.0.2.8")
	})
}
