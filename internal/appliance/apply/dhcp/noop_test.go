package dhcp

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// An identical Apply, repeated, starts, stops and signals nothing and
// rewrites no file, with dnsmasq running and with dnsmasq not needed; a
// file edited behind the Server's back is still put right by the next
// Apply.
func TestNoopApplyIsQuiet(t *testing.T) {
	nstest.Require(t)
	nstest.Veth(t, "tq1", "tq1p", "", "")
	dir := searchableTempDir(t)
	s := newServer(t, dir)
	ps := pathsIn(dir)
	spec := Spec{Networks: []Network{{
		Interface: "tq1",
		Subnets: []model.Subnet{
			{ID: "v4", CIDR: pfx("10.30.1.0/24"), GatewayIP: addr("10.30.1.1"), DHCPEnabled: true},
			{ID: "v6", CIDR: pfx("fd00:30:1::/64"), GatewayIP: addr("fd00:30:1::1"), DHCPEnabled: true},
		},
		Allocations: []model.Allocation{alloc(macA, "vm-a", "10.30.1.10", "fd00:30:1::10"), alloc(macB, "vm-b", "10.30.1.11")},
	}}}
	pid := apply(t, s, spec, ActionStarted).PID

	files := []string{ps.conf, ps.hosts, ps.opts}
	contents := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		contents[f] = string(b)
	}
	before := statFiles(t, files...)
	nstest.WaitFor(t, 30*time.Second, "dnsmasq to log its start", func() bool { return countLines(t, ps.log, "started, version") == 1 })
	starts := countLines(t, ps.log, "started, version")
	reads := countLines(t, ps.log, "read "+ps.hosts)
	quiet := func(step string, n int) {
		t.Helper()
		for range n {
			if res := apply(t, s, spec, ActionNone); res.PID != pid || len(res.Changed) != 0 {
				t.Fatalf("%s: identical Apply: pid %d -> %d, changed %v", step, pid, res.PID, res.Changed)
			}
		}
		if pids := dnsmasqs(dir); !slices.Equal(pids, []int{pid}) {
			t.Fatalf("%s: dnsmasq processes %v; want only %d", step, pids, pid)
		}
		if after := statFiles(t, files...); !mapsEqual(after, before) {
			t.Errorf("%s: identical Applies rewrote files: %v -> %v", step, before, after)
		}
		if _, err := os.Stat(ps.pending); !os.IsNotExist(err) {
			t.Errorf("%s: pending marker: %v", step, err)
		}
		// dnsmasq logs each start, and re-reads its hosts file on SIGHUP.
		if n := countLines(t, ps.log, "started, version"); n != starts {
			t.Errorf("%s: dnsmasq started %d times; want %d", step, n, starts)
		}
		if n := countLines(t, ps.log, "read "+ps.hosts); n != reads {
			t.Errorf("%s: identical Applies signalled dnsmasq (%d re-reads of its hosts file, was %d)", step, n, reads)
		}
	}
	quiet("running", 50)

	// Edited behind our back: the next Apply puts it right and tells dnsmasq.
	edit := func(path, extra string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(extra); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	edit(ps.hosts, "02:00:00:00:0c:01,10.30.1.99\n")
	res := apply(t, s, spec, ActionReloaded)
	if res.PID != pid || !slices.Equal(res.Changed, []string{ps.hosts}) {
		t.Errorf("after an edit of the hosts file: pid %d -> %d, changed %v; want only %s", pid, res.PID, res.Changed, ps.hosts)
	}
	edit(ps.conf, "port=5353\n")
	res = apply(t, s, spec, ActionRestarted)
	if !slices.Equal(res.Changed, []string{ps.conf}) || res.PID == pid {
		t.Errorf("after an edit of the main configuration: pid %d -> %d, changed %v; want a restart", pid, res.PID, res.Changed)
	}
	pid = res.PID
	for _, f := range files {
		if b, _ := os.ReadFile(f); string(b) != contents[f] {
			t.Errorf("%s not put right:\n%s", f, b)
		}
	}
	nstest.WaitFor(t, 30*time.Second, "dnsmasq to log its restart and the re-read", func() bool {
		return countLines(t, ps.log, "started, version") == starts+1 && countLines(t, ps.log, "read "+ps.hosts) > reads
	})
	before = statFiles(t, files...)
	starts = countLines(t, ps.log, "started, version")
	reads = countLines(t, ps.log, "read "+ps.hosts)
	quiet("running, after the repairs", 20)

	// Not needed: stopped once, then left alone.
	none := spec
	none.Networks = []Network{{Interface: "tq1", Subnets: []model.Subnet{{CIDR: pfx("10.30.1.0/24")}}}}
	if res := apply(t, s, none, ActionStopped); res.PID != 0 || nstest.Alive(pid) {
		t.Fatalf("dnsmasq %d not stopped: %+v", pid, res)
	}
	stops := countLines(t, ps.log, "exiting on receipt of SIGTERM")
	for range 50 {
		if res := apply(t, s, none, ActionNone); res.PID != 0 {
			t.Fatalf("Apply of a spec without DHCP: %+v", res)
		}
	}
	if pids := dnsmasqs(dir); len(pids) != 0 {
		t.Errorf("dnsmasq processes %v after Applies without DHCP", pids)
	}
	if n := countLines(t, ps.log, "started, version"); n != starts {
		t.Errorf("dnsmasq started %d times; want %d", n, starts)
	}
	if n := countLines(t, ps.log, "exiting on receipt of SIGTERM"); n != stops {
		t.Errorf("dnsmasq stopped %d times; want %d", n, stops)
	}
}
