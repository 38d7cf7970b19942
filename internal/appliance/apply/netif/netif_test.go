package netif

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// veth creates a veth pair in the test namespace and removes it at cleanup.
func veth(t *testing.T, name, peer string) netlink.Link {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("creating veth %s: %v", name, err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := netlink.LinkByName(peer); err == nil {
		_ = netlink.LinkSetUp(p)
	}
	return l
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func kernelAddrs(t *testing.T, name string) []netip.Prefix {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range as {
		p, _ := prefixOf(a.IPNet)
		if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// eventCounter counts rtnetlink notifications, to prove an apply changed nothing.
func eventCounter(t *testing.T) func() int {
	t.Helper()
	w, err := newWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close() })
	return func() int {
		n := 0
		for {
			k, _, err := unix.Recvfrom(w.fd, w.buf, 0)
			if errors.Is(err, unix.EAGAIN) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			msgs, _ := syscall.ParseNetlinkMessage(w.buf[:k])
			n += len(msgs)
		}
	}
}

func TestListLinksNaturalOrder(t *testing.T) {
	nstest.Require(t)
	for _, n := range []string{"eth10", "eth2", "eth0"} {
		veth(t, n, "x"+n)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := ListLinks(h)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range links {
		got = append(got, l.Generic+"="+l.Name)
		if l.Name == "lo" {
			t.Errorf("loopback listed")
		}
	}
	want := []string{"ge0=eth0", "ge1=eth2", "ge2=eth10", "ge3=xeth0", "ge4=xeth2", "ge5=xeth10"}
	if !slices.Equal(got, want) {
		t.Errorf("links = %v, want %v", got, want)
	}
}

func TestNaturalCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"eth2", "eth10", -1}, {"eth10", "eth2", 1}, {"eth1", "eth1", 0}, {"eth", "eth0", -1},
		{"em1", "eth0", -1}, {"eth02", "eth1", 1}, {"ens3", "ens10", -1}, {"enp0s3", "enp0s10", -1},
	} {
		if got := naturalCompare(c.a, c.b); got != c.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestApplyAddressesMTUAndIdempotence(t *testing.T) {
	nstest.Require(t)
	veth(t, "eth1", "peer1")
	m := newManager(t)
	ctx := context.Background()
	spec := Spec{Interfaces: []Interface{{
		Name:       "eth1",
		Addresses:  []netip.Prefix{pfx("192.168.0.1/24"), pfx("192.168.0.9/24"), pfx("fdd6::1/64")},
		MTU:        1450,
		DisableDAD: true,
	}}}
	res, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes == 0 || !res.KernelRead {
		t.Errorf("first apply: %+v, want changes and a kernel read", res)
	}
	want := []netip.Prefix{pfx("192.168.0.1/24"), pfx("192.168.0.9/24"), pfx("fdd6::1/64")}
	if got := kernelAddrs(t, "eth1"); !slices.Equal(got, want) {
		t.Errorf("addresses = %v, want %v", got, want)
	}
	l, _ := netlink.LinkByName("eth1")
	if l.Attrs().MTU != 1450 || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("mtu %d flags %v, want 1450 and up", l.Attrs().MTU, l.Attrs().Flags)
	}
	for key, want := range map[string]string{"ipv6/accept_dad": "0", "ipv6/accept_ra": "0", "ipv4/promote_secondaries": "1"} {
		if got, _ := (procSysctls{}).get("eth1", key); got != want {
			t.Errorf("sysctl %s = %q, want %q", key, got, want)
		}
	}

	// The kernel finishes bringing the link up on its own time (operstate via
	// linkwatch, the IPv6 link-local address and its routes): let it settle,
	// so that the count below sees only what the re-apply does.
	nstest.WaitFor(t, 10*time.Second, "eth1 to settle", func() bool {
		l, err := netlink.LinkByName("eth1")
		return err == nil && l.Attrs().OperState == netlink.OperUp && hasLinkLocal(t, "eth1")
	})
	settled := eventCounter(t)
	nstest.WaitFor(t, 10*time.Second, "quiet netlink", func() bool {
		time.Sleep(100 * time.Millisecond) // a quiet interval, not a wait for a condition
		return settled() == 0
	})

	// An identical re-apply changes nothing in the kernel and reads nothing back.
	events := eventCounter(t)
	res, err = m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes != 0 || res.KernelRead {
		t.Errorf("identical re-apply: %+v, want no change and no kernel read", res)
	}
	if n := events(); n != 0 {
		t.Errorf("identical re-apply caused %d netlink notifications", n)
	}

	// Remove the primary: the secondary stays (promote_secondaries), link-local
	// is untouched, the removed IPv4 address is reported for conntrack cleanup.
	spec.Interfaces[0].Addresses = []netip.Prefix{pfx("192.168.0.9/24"), pfx("fdd6::1/64")}
	res, err = m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RemovedV4, []netip.Addr{addr("192.168.0.1")}) {
		t.Errorf("RemovedV4 = %v", res.RemovedV4)
	}
	if got := kernelAddrs(t, "eth1"); !slices.Equal(got, spec.Interfaces[0].Addresses) {
		t.Errorf("addresses = %v, want %v", got, spec.Interfaces[0].Addresses)
	}
	if !hasLinkLocal(t, "eth1") {
		t.Errorf("link-local address removed")
	}

	// An IPv6 prefix length change replaces the address.
	spec.Interfaces[0].Addresses = []netip.Prefix{pfx("192.168.0.9/24"), pfx("fdd6::1/48")}
	if _, err := m.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := kernelAddrs(t, "eth1"); !slices.Equal(got, spec.Interfaces[0].Addresses) {
		t.Errorf("addresses = %v, want %v", got, spec.Interfaces[0].Addresses)
	}
}

func hasLinkLocal(t *testing.T, name string) bool {
	l, _ := netlink.LinkByName(name)
	as, _ := netlink.AddrList(l, netlink.FAMILY_V6)
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() {
			return true
		}
	}
	return false
}

func TestApplyRepairsExternalChanges(t *testing.T) {
	nstest.Require(t)
	veth(t, "eth1", "peer1")
	veth(t, "eth2", "peer2")
	m := newManager(t)
	ctx := context.Background()
	spec := Spec{
		Interfaces: []Interface{
			{Name: "eth1", Addresses: []netip.Prefix{pfx("172.16.77.2/24")}},
			{Name: "eth2", Addresses: []netip.Prefix{pfx("10.1.0.1/24")}, MTU: 1400},
		},
		Routes: []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: addr("172.16.77.1"), Dev: "eth1"},
			{Dst: pfx("10.10.0.0/16"), Gateway: addr("10.1.0.254"), Dev: "eth2"},
		},
		LocalAddrs: []LocalAddr{{Addr: addr("172.16.77.50"), Dev: "eth1"}, {Addr: addr("172.16.77.51"), Dev: "eth1"}},
	}
	if _, err := m.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	routes := nstest.Run(t, "ip", "-4", "route", "show", "proto", "172")
	for _, want := range []string{"default via 172.16.77.1 dev eth1", "10.10.0.0/16 via 10.1.0.254 dev eth2"} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes %q lack %q", routes, want)
		}
	}
	locals := nstest.Run(t, "ip", "-4", "route", "show", "table", "local", "proto", "172")
	for _, want := range []string{"local 172.16.77.50 dev eth1", "local 172.16.77.51 dev eth1"} {
		if !strings.Contains(locals, want) {
			t.Errorf("local routes %q lack %q", locals, want)
		}
	}

	// Unrelated changes do not force a kernel read.
	nstest.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", "172.16.77.3")
	if res, err := m.Apply(ctx, spec); err != nil || res.KernelRead || res.Changes != 0 {
		t.Errorf("after an unrelated route: %+v %v, want no read and no change", res, err)
	}

	// Changes to managed state behind the manager's back are seen and repaired.
	for _, tc := range []struct{ name, cmd string }{
		{"address removed", "ip addr del 10.1.0.1/24 dev eth2"},
		{"address added", "ip addr add 10.1.0.7/24 dev eth2"},
		{"mtu changed", "ip link set eth2 mtu 1300"},
		{"link down", "ip link set eth2 down"},
		{"default route replaced", "ip route replace default via 172.16.77.9 dev eth1"},
		{"host route removed", "ip route del 10.10.0.0/16"},
		{"floating IP removed", "ip route del local 172.16.77.51 dev eth1 table local"},
		{"foreign route with our protocol", "ip route add 198.51.100.0/24 via 10.1.0.254 proto 172"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nstest.Run(t, strings.Fields(tc.cmd)...)
			res, err := m.Apply(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if !res.KernelRead || res.Changes == 0 {
				t.Errorf("result %+v, want a kernel read and a repair", res)
			}
			// Verified against a fresh read: nothing left to do.
			m.Invalidate()
			if res, err := m.Apply(ctx, spec); err != nil || res.Changes != 0 {
				t.Errorf("after repair: %+v %v, want no change", res, err)
			}
		})
	}

	// Dropping the routes and local addresses removes exactly ours.
	spec.Routes, spec.LocalAddrs = nil, spec.LocalAddrs[:1]
	res, err := m.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.RemovedV4, []netip.Addr{addr("172.16.77.51")}) {
		t.Errorf("RemovedV4 = %v", res.RemovedV4)
	}
	if got := nstest.Run(t, "ip", "-4", "route", "show", "proto", "172"); got != "" {
		t.Errorf("routes left: %q", got)
	}
	if got := nstest.Run(t, "ip", "route", "show", "192.0.2.0/24"); !strings.Contains(got, "192.0.2.0/24") {
		t.Errorf("a route that is not ours was removed")
	}
}

func TestApplyMissingInterface(t *testing.T) {
	nstest.Require(t)
	m := newManager(t)
	_, err := m.Apply(context.Background(), Spec{Interfaces: []Interface{{Name: "eth9"}}})
	if err == nil || !strings.Contains(err.Error(), "eth9 does not exist") {
		t.Errorf("err = %v, want a missing interface error", err)
	}
}

func TestSpecValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"empty name", Spec{Interfaces: []Interface{{}}}, "must be 1-15 characters"},
		{"duplicate", Spec{Interfaces: []Interface{{Name: "a"}, {Name: "a"}}}, "listed twice"},
		{"route device", Spec{Routes: []Route{{Dst: pfx("0.0.0.0/0"), Gateway: addr("1.1.1.1"), Dev: "x"}}}, "not a managed interface"},
		{"route family", Spec{Interfaces: []Interface{{Name: "a"}}, Routes: []Route{{Dst: pfx("::/0"), Gateway: addr("1.1.1.1"), Dev: "a"}}}, "mixed IP versions"},
		{"local device", Spec{LocalAddrs: []LocalAddr{{Addr: addr("1.1.1.1"), Dev: "b"}}}, "unmanaged device"},
		{"mtu", Spec{Interfaces: []Interface{{Name: "a", MTU: 70000}}}, "out of range"},
	} {
		if err := c.spec.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestGratuitousARP(t *testing.T) {
	nstest.Require(t)
	veth(t, "eth1", "peer1")
	nstest.Run(t, "ip", "link", "set", "eth1", "up")
	peer, _ := netlink.LinkByName("peer1")
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: peer.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := SendGratuitousARP(context.Background(), "eth1", []netip.Addr{addr("172.16.77.50"), addr("fd00::1")}); err != nil {
		t.Fatal(err)
	}
	l, _ := netlink.LinkByName("eth1")
	mac := l.Attrs().HardwareAddr
	buf := make([]byte, 128)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("no gratuitous ARP received: %v", err)
		}
		f := buf[:n]
		if n < 42 || net.IP(f[28:32]).String() != "172.16.77.50" {
			continue // e.g. the kernel's own IPv6 traffic is not ARP; skip others
		}
		if f[21] != 2 || net.HardwareAddr(f[22:28]).String() != mac.String() || net.IP(f[38:42]).String() != "172.16.77.50" {
			t.Errorf("frame % x: want an ARP reply from %s for 172.16.77.50", f, mac)
		}
		return
	}
}

func TestFlushConntrack(t *testing.T) {
	nstest.Require(t)
	m := newManager(t)
	nstest.Run(t, "conntrack", "-I", "-p", "tcp", "-s", "203.0.113.9", "-d", "172.16.77.50", "--sport", "1234", "--dport", "80",
		"--state", "ESTABLISHED", "-t", "300", "-u", "SEEN_REPLY")
	nstest.Run(t, "conntrack", "-I", "-p", "tcp", "-s", "203.0.113.9", "-d", "172.16.77.60", "--sport", "1234", "--dport", "80",
		"--state", "ESTABLISHED", "-t", "300", "-u", "SEEN_REPLY")
	n, err := m.FlushConntrack(context.Background(), []netip.Addr{addr("172.16.77.50")})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("flushed %d entries, want 1", n)
	}
	out := nstest.Run(t, "conntrack", "-L")
	if strings.Contains(out, "dst=172.16.77.50 ") || !strings.Contains(out, "dst=172.16.77.60 ") {
		t.Errorf("conntrack table after flush:\n%s", out)
	}
}
