package dhcp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply/daemon"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

const (
	macA = "02:00:00:00:0a:01"
	macB = "02:00:00:00:0b:01"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newServer(t *testing.T, dir string) *Server {
	s := New(dir, WithLogger(testLogger(t)), WithRestartBackoff(100*time.Millisecond, time.Second))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		s.Close()
	})
	return s
}

func apply(t *testing.T, s *Server, spec Spec, want Action) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.Apply(ctx, spec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Action != want {
		t.Fatalf("Apply did %q (changed %v); want %q", res.Action, res.Changed, want)
	}
	return res
}

// tenantSpec serves tn1: 10.10.1.0/24 with a host route, DNS and MTU, a
// DHCP-disabled 10.10.9.0/24, and DHCPv6 on fd00:10:1::/64.
func tenantSpec(allocs ...model.Allocation) Spec {
	return Spec{
		Networks: []Network{{
			Interface: "tn1",
			MTU:       1400,
			Subnets: []model.Subnet{
				{ID: "v4", CIDR: pfx("10.10.1.0/24"), GatewayIP: addr("10.10.1.1"), DHCPEnabled: true,
					DNSNameservers: addrs("10.10.1.53"),
					HostRoutes:     []model.HostRoute{{Destination: pfx("10.20.0.0/16"), NextHop: addr("10.10.1.254")}}},
				{ID: "off", CIDR: pfx("10.10.9.0/24"), GatewayIP: addr("10.10.9.1")},
				{ID: "v6", CIDR: pfx("fd00:10:1::/64"), GatewayIP: addr("fd00:10:1::1"), DHCPEnabled: true,
					DNSNameservers: addrs("fd00::53")},
			},
			Allocations: allocs,
		}},
		ExceptInterfaces: []string{"ex1"},
	}
}

func alloc(mac, hostname string, ips ...string) model.Allocation {
	m := map[netip.Addr]bool{}
	for _, ip := range ips {
		m[addr(ip)] = true
	}
	return model.Allocation{MACAddress: mac, Hostname: hostname, IPAddresses: m, DeviceID: hostname}
}

type fileID struct {
	ino   uint64
	mtime time.Time
}

func statFiles(t *testing.T, paths ...string) map[string]fileID {
	t.Helper()
	m := map[string]fileID{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		m[p] = fileID{st.Sys().(*syscall.Stat_t).Ino, st.ModTime()}
	}
	return m
}

func countLines(t *testing.T, path, substr string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), substr)
}

// dnsmasqs lists the dnsmasq processes reading this state directory's config.
func dnsmasqs(dir string) []int {
	return nstest.PidsMatching("--conf-file=" + filepath.Join(dir, confName))
}

func TestDnsmasqServesStaticLeases(t *testing.T) {
	nstest.Require(t)
	vm := nstest.NewNamespace(t, "astara-vm")
	nstest.Veth(t, "tn1", "vm1", vm, macA)
	nstest.Run(t, "ip", "addr", "add", "10.10.1.1/24", "dev", "tn1")
	nstest.Run(t, "ip", "addr", "add", "fd00:10:1::1/64", "dev", "tn1", "nodad")
	// ex1 is the appliance's "external" interface, on the same subnet: only
	// the except-interface keeps dnsmasq off it.
	nstest.Veth(t, "ex1", "vmx", vm, macA)
	nstest.Run(t, "ip", "addr", "add", "10.10.1.2/24", "dev", "ex1")

	dir := searchableTempDir(t)
	s := newServer(t, dir)
	ps := pathsIn(dir)

	// 1. Start: VM A gets its static address, router, classless routes
	//    (with the default route), DNS, MTU and host name.
	spec1 := tenantSpec(alloc(macA, "vm-a", "10.10.1.10", "fd00:10:1::10"))
	res := apply(t, s, spec1, ActionStarted)
	pid := res.PID
	if !nstest.Alive(pid) || s.PID() != pid {
		t.Fatalf("dnsmasq pid %d (server says %d) not running", pid, s.PID())
	}
	env := lease(t, vm, "vm1", false)
	for k, want := range map[string]string{
		"new_ip_address":                      "10.10.1.10",
		"new_subnet_mask":                     "255.255.255.0",
		"new_routers":                         "10.10.1.1",
		"new_rfc3442_classless_static_routes": "16 10 20 10 10 1 254 0 10 10 1 1",
		"new_domain_name_servers":             "10.10.1.53",
		"new_interface_mtu":                   "1400",
		"new_host_name":                       "vm-a",
	} {
		if env[k] != want {
			t.Errorf("DHCPv4 %s = %q; want %q", k, env[k], want)
		}
	}
	env6 := lease(t, vm, "vm1", true)
	if env6["new_ip6_address"] != "fd00:10:1::10" || env6["new_dhcp6_name_servers"] != "fd00::53" {
		t.Errorf("DHCPv6 lease: address %q, DNS %q; want fd00:10:1::10, fd00::53", env6["new_ip6_address"], env6["new_dhcp6_name_servers"])
	}
	// The excluded interface is not served, though its subnet is.
	noLease(t, vm, "vmx")
	if leases, err := os.ReadFile(ps.leases); err != nil || !strings.Contains(string(leases), "10.10.1.10") {
		t.Errorf("lease file %s: %v\n%s", ps.leases, err, leases)
	}

	// 2. Only the allocations change: same process, SIGHUP, new host served.
	before := statFiles(t, ps.conf)
	reads := countLines(t, ps.log, "read "+ps.hosts)
	spec2 := tenantSpec(alloc(macA, "vm-a", "10.10.1.10", "fd00:10:1::10"), alloc(macB, "vm-b", "10.10.1.11"))
	res = apply(t, s, spec2, ActionReloaded)
	if res.PID != pid || !nstest.Alive(pid) {
		t.Fatalf("reload changed the process: pid %d -> %d", pid, res.PID)
	}
	if len(res.Changed) != 1 || res.Changed[0] != ps.hosts {
		t.Errorf("changed files = %v; want only %s", res.Changed, ps.hosts)
	}
	if after := statFiles(t, ps.conf); after[ps.conf] != before[ps.conf] {
		t.Errorf("main config rewritten by a lease-only change")
	}
	nstest.WaitFor(t, 30*time.Second, "dnsmasq to re-read its hosts file", func() bool {
		return countLines(t, ps.log, "read "+ps.hosts) > reads
	})
	setMAC(t, vm, "vm1", macB)
	if env := lease(t, vm, "vm1", false); env["new_ip_address"] != "10.10.1.11" || env["new_host_name"] != "vm-b" {
		t.Errorf("after reload, host B got %q (%q); want 10.10.1.11 (vm-b)", env["new_ip_address"], env["new_host_name"])
	}

	// 3. The same spec again: nothing at all.
	all := []string{ps.conf, ps.hosts, ps.opts}
	before = statFiles(t, all...)
	reads = countLines(t, ps.log, "read "+ps.hosts)
	res = apply(t, s, spec2, ActionNone)
	if res.PID != pid || len(res.Changed) != 0 {
		t.Errorf("identical Apply: pid %d -> %d, changed %v", pid, res.PID, res.Changed)
	}
	if after := statFiles(t, all...); !mapsEqual(after, before) {
		t.Errorf("identical Apply touched files: %v -> %v", before, after)
	}
	if _, err := os.Stat(ps.pending); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending marker left: %v", err)
	}
	// The hosts file is re-read only on SIGHUP: a re-read now would be a signal.
	if got := countLines(t, ps.log, "read "+ps.hosts); got != reads {
		t.Errorf("identical Apply signalled dnsmasq (%d re-reads, was %d)", got, reads)
	}

	// 4. A new range changes the main config: restart.
	spec3 := spec2
	spec3.Networks = []Network{spec2.Networks[0]}
	spec3.Networks[0].Subnets = append([]model.Subnet{{CIDR: pfx("10.10.2.0/24"), GatewayIP: addr("10.10.2.1"), DHCPEnabled: true}}, spec2.Networks[0].Subnets...)
	res = apply(t, s, spec3, ActionRestarted)
	if res.PID == pid || nstest.Alive(pid) || !nstest.Alive(res.PID) {
		t.Fatalf("restart: old pid %d alive=%v, new pid %d alive=%v", pid, nstest.Alive(pid), res.PID, nstest.Alive(res.PID))
	}
	pid = res.PID
	if b, _ := os.ReadFile(ps.conf); !strings.Contains(string(b), "set:tn1_10-10-2-0_24,10.10.2.0,static") {
		t.Errorf("new range missing from %s", ps.conf)
	}

	// 5. dnsmasq dies: the supervisor restarts it, and it still serves.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 60*time.Second, "the supervisor to restart dnsmasq", func() bool {
		n := s.PID()
		return n != 0 && n != pid && nstest.Alive(n)
	})
	pid = s.PID()
	setMAC(t, vm, "vm1", macA)
	if env := lease(t, vm, "vm1", false); env["new_ip_address"] != "10.10.1.10" {
		t.Errorf("after the supervisor's restart, host A got %q", env["new_ip_address"])
	}

	// 6. A new agent (Server) adopts the running dnsmasq instead of starting one.
	s.Close()
	s2 := newServer(t, dir)
	res = apply(t, s2, spec3, ActionNone)
	if res.PID != pid || s2.PID() != pid {
		t.Fatalf("second server: pid %d; want adoption of %d", res.PID, pid)
	}
	if pids := dnsmasqs(dir); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("dnsmasq processes for %s: %v; want only %d", dir, pids, pid)
	}
	// ... and supervises it.
	res = apply(t, s2, tenantSpec(alloc(macA, "vm-a", "10.10.1.10")), ActionRestarted)
	pid = res.PID

	// 7. An invalid spec changes nothing.
	all = append(all, ps.conf)
	before = statFiles(t, all...)
	bad := spec3
	bad.Networks = []Network{spec3.Networks[0]}
	bad.Networks[0].Allocations = []model.Allocation{alloc(macA, "evil\ndhcp-range=x", "10.10.1.10")}
	if _, err := s2.Apply(context.Background(), bad); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("invalid spec: %v", err)
	}
	if after := statFiles(t, all...); !mapsEqual(after, before) || s2.PID() != pid || !nstest.Alive(pid) {
		t.Errorf("invalid spec changed something")
	}

	// 8. No DHCP-enabled subnet: dnsmasq stops.
	none := tenantSpec()
	for i := range none.Networks[0].Subnets {
		none.Networks[0].Subnets[i].DHCPEnabled = false
	}
	res = apply(t, s2, none, ActionStopped)
	if res.PID != 0 || nstest.Alive(pid) || len(dnsmasqs(dir)) != 0 {
		t.Fatalf("dnsmasq still running after Stop: %v", dnsmasqs(dir))
	}
	apply(t, s2, none, ActionNone)
}

func mapsEqual(a, b map[string]fileID) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.mtime.Equal(v.mtime) || w.ino != v.ino {
			return false
		}
	}
	return true
}

// A dnsmasq that fails at startup is reported with its own message; and a
// dnsmasq left by a previous agent is stopped when DHCP is no longer needed.
func TestDnsmasqStartFailureAndStopOfAdopted(t *testing.T) {
	nstest.Require(t)
	nstest.Veth(t, "tn1", "vm1", nstest.NewNamespace(t, "astara-vm"), macA) // dnsmasq derives its DHCPv6 DUID from a MAC
	dir := searchableTempDir(t)
	spec := tenantSpec(alloc(macA, "vm-a", "10.10.1.10"))

	// Someone holds the DHCP port: dnsmasq --test cannot know, dnsmasq
	// exits at startup.
	busy, err := net.ListenPacket("udp4", ":67")
	if err != nil {
		t.Fatal(err)
	}
	s := New(dir, WithLogger(testLogger(t)), WithRestartBackoff(time.Hour, time.Hour))
	_, err = s.Apply(context.Background(), spec)
	var se *daemon.StartError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("Apply with the DHCP port taken = %v; want a StartError with dnsmasq's message", err)
	}
	_ = s.Stop(context.Background())
	s.Close()
	busy.Close()

	s2 := newServer(t, dir)
	res := apply(t, s2, spec, ActionStarted)
	s2.Close() // the agent goes away, dnsmasq stays
	s3 := newServer(t, dir)
	none := Spec{Networks: []Network{{Interface: "tn1"}}}
	if r := apply(t, s3, none, ActionStopped); r.PID != 0 || nstest.Alive(res.PID) {
		t.Fatalf("adopted dnsmasq %d not stopped", res.PID)
	}
}
