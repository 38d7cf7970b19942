// Package lab builds a small network of Linux network namespaces around one
// router appliance, for the end-to-end tests, the demo and the benchmarks:
//
//	root ns (orchestrator side) ── mgmt ── appliance ── ext ── upstream (gateway + "internet" host)
//	                                          ├── int1 ── vm1
//	                                          └── int2 ── vm2
//
// The appliance namespace gets eth0 (management), eth1 (external), eth2 and
// eth3 (tenant networks), so their generic names are ge0..ge3. Everything is
// named with a random prefix, so that several labs can coexist, and Close
// removes every namespace, link and process it created.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fixed addresses of the lab's networks.
var (
	ExtCIDR       = netip.MustParsePrefix("172.16.77.0/24")
	ExtGateway    = netip.MustParseAddr("172.16.77.1")
	RouterExt     = netip.MustParsePrefix("172.16.77.2/24")
	ExtV6CIDR     = netip.MustParsePrefix("2001:db8:77::/64")
	ExtV6Gateway  = netip.MustParseAddr("2001:db8:77::1")
	RouterExtV6   = netip.MustParsePrefix("2001:db8:77::2/64")
	Internet      = netip.MustParseAddr("198.51.100.1") // a host beyond the gateway
	Int1CIDR      = netip.MustParsePrefix("192.168.0.0/24")
	RouterInt1    = netip.MustParsePrefix("192.168.0.1/24")
	Int1V6CIDR    = netip.MustParsePrefix("2001:db8:100::/64")
	RouterInt1V6  = netip.MustParsePrefix("2001:db8:100::1/64")
	VM1IP         = netip.MustParseAddr("192.168.0.5")
	VM1MAC        = "fa:16:3e:00:00:05"
	Int2CIDR      = netip.MustParsePrefix("10.1.0.0/24")
	RouterInt2    = netip.MustParsePrefix("10.1.0.1/24")
	VM2IP         = netip.MustParseAddr("10.1.0.5")
	VM2MAC        = "fa:16:3e:00:01:05"
	FloatingIP    = netip.MustParseAddr("172.16.77.50")
	MgmtMAC       = "fa:16:3e:aa:00:00"
	ApplianceMACs = []string{MgmtMAC, "fa:16:3e:aa:00:01", "fa:16:3e:aa:00:02", "fa:16:3e:aa:00:03"}
)

// Lab is one built topology.
type Lab struct {
	ID        string
	Appliance string // namespace names
	Upstream  string
	VM1, VM2  string
	// RootMgmt is the root namespace's end of the management link.
	RootMgmt string
	// MgmtPrefix is the management network (a random ULA /64).
	MgmtPrefix netip.Prefix
	// Orchestrator is the root namespace's management address.
	Orchestrator netip.Addr
	// ApplianceMgmt is the appliance's management address.
	ApplianceMgmt netip.Prefix
}

// New builds a lab. On error, everything already built is removed.
func New(ctx context.Context) (l *Lab, err error) {
	id := randomHex(3)
	l = &Lab{
		ID:        id,
		Appliance: "astara-" + id + "-rtr",
		Upstream:  "astara-" + id + "-up",
		VM1:       "astara-" + id + "-vm1",
		VM2:       "astara-" + id + "-vm2",
		RootMgmt:  "am-" + id,
	}
	ula := netip.AddrFrom16([16]byte{0xfd, 0xca, randomByte(), randomByte(), randomByte(), randomByte()})
	l.MgmtPrefix = netip.PrefixFrom(ula, 64)
	l.Orchestrator = addrPlus(ula, 1)
	l.ApplianceMgmt = netip.PrefixFrom(addrPlus(ula, 2), 64)
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, ns := range l.Namespaces() {
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return nil, err
		}
		if err := ip(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		// Management: root ns ↔ appliance eth0.
		{"link", "add", l.RootMgmt, "type", "veth", "peer", "name", "eth0", "netns", l.Appliance, "address", MgmtMAC},
		{"addr", "add", netip.PrefixFrom(l.Orchestrator, 64).String(), "dev", l.RootMgmt, "nodad"},
		{"link", "set", l.RootMgmt, "up"},
		// External: appliance eth1 ↔ upstream up0.
		{"-n", l.Appliance, "link", "add", "eth1", "address", ApplianceMACs[1], "type", "veth", "peer", "name", "up0", "netns", l.Upstream},
		{"-n", l.Upstream, "addr", "add", netip.PrefixFrom(ExtGateway, 24).String(), "dev", "up0"},
		{"-n", l.Upstream, "addr", "add", netip.PrefixFrom(ExtV6Gateway, 64).String(), "dev", "up0", "nodad"},
		{"-n", l.Upstream, "addr", "add", netip.PrefixFrom(Internet, 32).String(), "dev", "lo"},
		{"-n", l.Upstream, "link", "set", "up0", "up"},
		// Tenant networks: appliance eth2 ↔ vm1 eth0, appliance eth3 ↔ vm2 eth0.
		{"-n", l.Appliance, "link", "add", "eth2", "address", ApplianceMACs[2], "type", "veth", "peer", "name", "eth0", "netns", l.VM1, "address", VM1MAC},
		{"-n", l.Appliance, "link", "add", "eth3", "address", ApplianceMACs[3], "type", "veth", "peer", "name", "eth0", "netns", l.VM2, "address", VM2MAC},
		{"-n", l.VM1, "link", "set", "eth0", "up"},
		{"-n", l.VM2, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, err
		}
	}
	// The upstream host routes the floating IP range back to the router (it
	// is on-link anyway) and answers as the "internet"; VMs accept router
	// advertisements even though nothing else configures them.
	for _, ns := range []string{l.VM1, l.VM2} {
		if _, err := l.Exec(ctx, ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=2", "net.ipv6.conf.eth0.accept_dad=0"); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Namespaces lists the lab's namespaces.
func (l *Lab) Namespaces() []string { return []string{l.Appliance, l.Upstream, l.VM1, l.VM2} }

// Close kills every process in the lab's namespaces and deletes them and the
// root namespace's management link. It is safe to call more than once.
func (l *Lab) Close() {
	for _, ns := range l.Namespaces() {
		KillNamespace(ns)
		_ = exec.Command("ip", "netns", "delete", ns).Run()
	}
	_ = exec.Command("ip", "link", "delete", l.RootMgmt).Run()
}

// KillNamespace kills every process in a namespace and waits (up to ten
// seconds) until they are gone.
func KillNamespace(ns string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exec runs a command in a namespace and returns its combined output.
func (l *Lab) Exec(ctx context.Context, ns string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Command prepares a command to run in a namespace.
func Command(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// APIURL is the appliance API's base URL as seen from the root namespace.
func (l *Lab) APIURL(port int) string {
	return "http://" + netip.AddrPortFrom(l.ApplianceMgmt.Addr(), uint16(port)).String()
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func addrPlus(a netip.Addr, n byte) netip.Addr {
	b := a.As16()
	b[15] += n
	return netip.AddrFrom16(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return hex.EncodeToString(b)
}

func randomByte() byte {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return b[0]
}
