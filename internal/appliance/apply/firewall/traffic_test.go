package firewall

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// TestTraffic moves real packets through the firewall. The test's own
// namespace is the router; around it:
//
//	ext  (172.16.0.100)      --veth-- ext0 172.16.0.1/24 (+ floating IPs)
//	mgmt (192.168.255.2)     --veth-- mgt0 192.168.255.1/24
//	vm1 (10.0.0.4), vm2 (10.0.0.5) -- bridge in lanA --veth-- tA 10.0.0.1/24
//	vm3 (10.1.0.6)           --veth-- tB 10.1.0.1/24
//
// vm1 has floating IP 172.16.0.10. Every VM and the ext and mgmt hosts run a
// UDP echo server that answers with the source address it saw.
func TestTraffic(t *testing.T) {
	m := newManager(t, DefaultTable)
	n := newNet(t)
	for _, ns := range []string{"ext", "mgmt", "lanA", "vm1", "vm2", "vm3"} {
		n.addNS(ns)
	}
	n.ip("link", "add", "ext0", "type", "veth", "peer", "name", "e0", "netns", n.ns("ext"))
	n.ip("link", "add", "mgt0", "type", "veth", "peer", "name", "e0", "netns", n.ns("mgmt"))
	n.ip("link", "add", "tA", "type", "veth", "peer", "name", "uplink", "netns", n.ns("lanA"))
	n.ip("link", "add", "tB", "type", "veth", "peer", "name", "e0", "netns", n.ns("vm3"))
	n.ipIn("lanA", "link", "add", "br0", "type", "bridge")
	for _, vm := range []string{"vm1", "vm2"} {
		n.ipIn("lanA", "link", "add", vm, "type", "veth", "peer", "name", "e0", "netns", n.ns(vm))
		n.ipIn("lanA", "link", "set", vm, "master", "br0", "up")
	}
	n.ipIn("lanA", "link", "set", "uplink", "master", "br0", "up")
	n.ipIn("lanA", "link", "set", "br0", "up")
	for _, c := range [][]string{
		{"ext0", "172.16.0.1/24"}, {"ext0", "172.16.0.10/32"}, {"ext0", "172.16.0.11/32"},
		{"mgt0", "192.168.255.1/24"}, {"tA", "10.0.0.1/24"}, {"tB", "10.1.0.1/24"},
	} {
		n.ip("addr", "add", c[1], "dev", c[0])
	}
	for _, l := range []string{"ext0", "mgt0", "tA", "tB"} {
		n.ip("link", "set", l, "up")
	}
	for ns, c := range map[string][2]string{
		"ext": {"172.16.0.100/24", ""}, "mgmt": {"192.168.255.2/24", ""},
		"vm1": {"10.0.0.4/24", "10.0.0.1"}, "vm2": {"10.0.0.5/24", "10.0.0.1"}, "vm3": {"10.1.0.6/24", "10.1.0.1"},
	} {
		n.ipIn(ns, "addr", "add", c[0], "dev", "e0")
		n.ipIn(ns, "link", "set", "e0", "up")
		if c[1] != "" {
			n.ipIn(ns, "route", "add", "default", "via", c[1])
		}
	}
	n.ipIn("mgmt", "route", "add", "10.0.0.0/8", "via", "192.168.255.1")
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter"} {
		v := map[bool]string{true: "1", false: "0"}[k == "net/ipv4/ip_forward"]
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	echo := map[string]string{"ext": "172.16.0.100", "mgmt": "192.168.255.2", "vm1": "10.0.0.4", "vm2": "10.0.0.5", "vm3": "10.1.0.6"}
	for ns, addr := range echo {
		n.udpEcho(ns, addr+":7777")
	}
	// The router's own services: the agent API (management only) and the
	// metadata proxy of tenant A.
	for _, addr := range []string{":5000", "10.0.0.1:9601"} {
		tcpServe(t, addr)
	}

	spec := Spec{
		Management:         []string{"mgt0"},
		ManagementTCPPorts: []uint16{5000},
		External:           &External{IfName: "ext0", SNATAddr: ap("172.16.0.1")},
		Tenants: []Tenant{
			{IfName: "tA", Internal: true, V4Subnets: []netip.Prefix{pp("10.0.0.0/24")}, Metadata: netip.MustParseAddrPort("10.0.0.1:9601")},
			{IfName: "tB", Internal: true, V4Subnets: []netip.Prefix{pp("10.1.0.0/24")}},
		},
		FloatingIPs: []FloatingIP{{Floating: ap("172.16.0.10"), Fixed: ap("10.0.0.4")}},
	}
	apply(t, m, spec)

	udp := func(from, to, wantSeen string) {
		t.Helper()
		got, err := n.udpAsk(from, to)
		if err != nil {
			t.Errorf("%s -> %s: %v", from, to, err)
			return
		}
		if got != wantSeen {
			t.Errorf("%s -> %s: the server saw %s, want %s", from, to, got, wantSeen)
		}
	}
	noUDP := func(from, to string) {
		t.Helper()
		if got, err := n.udpAskOnce(from, to, 400*time.Millisecond); err == nil {
			t.Errorf("%s -> %s: answered (server saw %s), want no answer", from, to, got)
		}
	}
	tcp := func(from, to string, want bool) {
		t.Helper()
		got, err := n.tcpAsk(from, to, 400*time.Millisecond)
		switch {
		case want && err != nil:
			t.Errorf("%s -> tcp %s: %v", from, to, err)
		case !want && err == nil:
			t.Errorf("%s -> tcp %s: connected (server saw %s), want it dropped", from, to, got)
		}
	}

	t.Run("floating IP inbound: DNAT, source kept", func(t *testing.T) { udp("ext", "172.16.0.10:7777", "172.16.0.100") })
	t.Run("floating IP outbound: SNAT to the floating IP", func(t *testing.T) { udp("vm1", "172.16.0.100:7777", "172.16.0.10") })
	t.Run("no floating IP: SNAT to the router", func(t *testing.T) { udp("vm3", "172.16.0.100:7777", "172.16.0.1") })
	t.Run("hairpin: VM to a floating IP on its own network", func(t *testing.T) { udp("vm2", "172.16.0.10:7777", "172.16.0.1") })
	t.Run("hairpin from another internal network", func(t *testing.T) { udp("vm3", "172.16.0.10:7777", "172.16.0.1") })
	t.Run("between internal networks: no NAT", func(t *testing.T) { udp("vm3", "10.0.0.4:7777", "10.1.0.6") })
	t.Run("to the management network: no NAT", func(t *testing.T) { udp("vm1", "192.168.255.2:7777", "10.0.0.4") })
	t.Run("no DNAT for what is not a floating IP", func(t *testing.T) { noUDP("ext", "172.16.0.11:7777") })
	t.Run("metadata DNAT", func(t *testing.T) {
		got, err := n.tcpAsk("vm1", "169.254.169.254:80", 5*time.Second)
		if err != nil || got != "10.0.0.4" {
			t.Errorf("vm1 -> metadata: proxy saw %q, %v", got, err)
		}
	})
	t.Run("agent API only from management", func(t *testing.T) {
		tcp("mgmt", "192.168.255.1:5000", true)
		tcp("vm1", "10.0.0.1:9601", true)  // the path works...
		tcp("vm1", "10.0.0.1:5000", false) // ...but not to the API
		tcp("vm1", "192.168.255.1:5000", false)
		tcp("vm1", "172.16.0.1:5000", false)
		tcp("ext", "172.16.0.1:5000", false)
	})

	// Second floating IP for vm2, first one moved away from vm1.
	spec.FloatingIPs = []FloatingIP{{Floating: ap("172.16.0.11"), Fixed: ap("10.0.0.5")}}
	if res := apply(t, m, spec); res.ElementsAdded != 2 || res.ElementsRemoved != 2 || res.ChainsRewritten != 0 {
		t.Errorf("moving floating IPs = %+v", res)
	}
	t.Run("new floating IP inbound", func(t *testing.T) { udp("ext", "172.16.0.11:7777", "172.16.0.100") })
	t.Run("same network, by fixed IP: no NAT", func(t *testing.T) { udp("vm2", "10.0.0.4:7777", "10.0.0.5") })
	t.Run("hairpin from a VM without floating IP: SNAT to the router", func(t *testing.T) { udp("vm1", "172.16.0.11:7777", "172.16.0.1") })
	t.Run("removed floating IP no longer forwarded", func(t *testing.T) { noUDP("ext", "172.16.0.10:7777") })
	t.Run("removed floating IP no longer used for SNAT", func(t *testing.T) { udp("vm1", "172.16.0.100:7777", "172.16.0.1") })
	t.Run("floating IP SNAT for the new owner", func(t *testing.T) { udp("vm2", "172.16.0.100:7777", "172.16.0.11") })

	// vm1 -> vm2's floating IP: DNAT to vm2, SNAT to the router as vm1 has
	// none; with one again, SNAT to it.
	spec.FloatingIPs = append(spec.FloatingIPs, FloatingIP{Floating: ap("172.16.0.10"), Fixed: ap("10.0.0.4")})
	apply(t, m, spec)
	t.Run("hairpin between two floating IPs", func(t *testing.T) { udp("vm1", "172.16.0.11:7777", "172.16.0.10") })
}

// ---------------------------------------------------------------- helpers

type testNet struct {
	t     *testing.T
	names map[string]string
}

func newNet(t *testing.T) *testNet {
	return &testNet{t: t, names: map[string]string{}}
}

func (n *testNet) ns(short string) string { return n.names[short] }

// addNS creates a named namespace, deleted when the test ends (even if it
// fails), with loopback up.
func (n *testNet) addNS(short string) {
	n.t.Helper()
	n.names[short] = nstest.NewNamespace(n.t, "fwt-"+short)
}

func (n *testNet) ip(args ...string) {
	n.t.Helper()
	nstest.Run(n.t, append([]string{"ip"}, args...)...)
}

func (n *testNet) ipIn(short string, args ...string) {
	n.t.Helper()
	nstest.Run(n.t, append([]string{"ip", "-n", n.ns(short)}, args...)...)
}

// inNS runs f on a thread switched to the named namespace: sockets created
// there stay in it.
func (n *testNet) inNS(short string, f func() error) error { return lab.InNetns(n.ns(short), f) }

// udpEcho serves UDP on addr in namespace ns, answering each datagram with
// the source address it came from.
func (n *testNet) udpEcho(ns, addr string) {
	var c net.PacketConn
	if err := n.inNS(ns, func() (err error) { c, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo([]byte(from.(*net.UDPAddr).IP.String()), from)
		}
	}()
}

// udpAsk sends a datagram from namespace ns to addr until an answer comes
// (ARP may take a moment), within 5 seconds.
func (n *testNet) udpAsk(ns, addr string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	var c net.Conn
	if err := n.inNS(ns, func() (err error) { c, err = net.Dial("udp4", addr); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 64)
	for {
		if _, err := c.Write([]byte("?")); err != nil && time.Now().After(deadline) {
			return "", err
		}
		_ = c.SetReadDeadline(earliest(deadline, time.Now().Add(200*time.Millisecond)))
		k, err := c.Read(buf)
		if err == nil {
			return string(buf[:k]), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no answer: %w", err)
		}
	}
}

// udpAskOnce expects no answer: it asks for a while and reports one if any.
func (n *testNet) udpAskOnce(ns, addr string, wait time.Duration) (string, error) {
	var c net.Conn
	if err := n.inNS(ns, func() (err error) { c, err = net.Dial("udp4", addr); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		_, _ = c.Write([]byte("?"))
		_ = c.SetReadDeadline(earliest(deadline, time.Now().Add(100*time.Millisecond)))
		if k, err := c.Read(buf); err == nil {
			return string(buf[:k]), nil
		}
	}
	return "", errors.New("no answer")
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// tcpServe listens on addr in the router's namespace and tells each client
// the source address it connected from.
func tcpServe(t *testing.T, addr string) {
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(c.RemoteAddr().(*net.TCPAddr).IP.String()))
			c.Close()
		}
	}()
}

// tcpAsk connects from namespace ns and returns what the server said.
func (n *testNet) tcpAsk(ns, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	d := net.Dialer{Timeout: timeout}
	if err := n.inNS(ns, func() (err error) { c, err = d.Dial("tcp4", addr); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	k, err := c.Read(buf)
	return string(buf[:k]), err
}
