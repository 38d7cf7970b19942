package bird

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// birds lists the BIRD processes using this state directory's config.
func birds(dir string) []int {
	return nstest.PidsMatching("\x00" + filepath.Join(dir, confName) + "\x00")
}

// An identical Apply, repeated, starts, stops and reconfigures nothing and
// rewrites nothing, with BIRD running and with BIRD not needed; a
// configuration edited behind the Daemon's back is still put right by the
// next Apply.
func TestNoopApplyIsQuiet(t *testing.T) {
	nstest.Require(t)
	nstest.Veth(t, "tq0", "tq0p", "", "")
	dir := t.TempDir()
	d := newDaemon(t, dir)
	spec := Spec{RouterID: addr("192.0.2.1"), Tenants: []Tenant{{Interface: "tq0", Subnets: []model.Subnet{
		{CIDR: pfx("2001:db8:30::/64"), GatewayIP: addr("2001:db8:30::1")},
	}}}}
	pid := apply(t, d, spec, ActionStarted).PID
	conf, err := os.ReadFile(d.conf)
	if err != nil {
		t.Fatal(err)
	}
	ino, mtime := stat(t, d.conf)
	nstest.WaitFor(t, 30*time.Second, "BIRD to log its start", func() bool { return countIn(t, d.log, "Started") == 1 })
	starts, reconfigs := countIn(t, d.log, "Started"), countIn(t, d.log, "Reconfiguring")
	quiet := func(step string, n int) {
		t.Helper()
		for range n {
			if res := apply(t, d, spec, ActionNone); res.PID != pid || res.Changed {
				t.Fatalf("%s: identical Apply: pid %d -> %d, changed %v", step, pid, res.PID, res.Changed)
			}
		}
		if pids := birds(dir); len(pids) != 1 || pids[0] != pid {
			t.Fatalf("%s: BIRD processes %v; want only %d", step, pids, pid)
		}
		if ino2, mtime2 := stat(t, d.conf); ino2 != ino || !mtime2.Equal(mtime) {
			t.Errorf("%s: identical Applies rewrote bird.conf", step)
		}
		if _, err := os.Stat(d.pending); !os.IsNotExist(err) {
			t.Errorf("%s: pending marker: %v", step, err)
		}
		if n := countIn(t, d.log, "Started"); n != starts {
			t.Errorf("%s: BIRD started %d times; want %d", step, n, starts)
		}
		if n := countIn(t, d.log, "Reconfiguring"); n != reconfigs {
			t.Errorf("%s: identical Applies reconfigured BIRD (%d, was %d)", step, n, reconfigs)
		}
	}
	quiet("running", 50)

	// Edited behind our back: the next Apply puts it right and reconfigures.
	if err := os.WriteFile(d.conf, append(conf, "# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := apply(t, d, spec, ActionReconfigured); res.PID != pid || !res.Changed {
		t.Errorf("after an edit: pid %d -> %d, changed %v; want bird.conf rewritten, same process", pid, res.PID, res.Changed)
	}
	if b, _ := os.ReadFile(d.conf); string(b) != string(conf) {
		t.Errorf("bird.conf not put right:\n%s", b)
	}
	nstest.WaitFor(t, 30*time.Second, "BIRD to log the reconfiguration", func() bool { return countIn(t, d.log, "Reconfiguring") == reconfigs+1 })
	ino, mtime = stat(t, d.conf)
	reconfigs = countIn(t, d.log, "Reconfiguring")
	quiet("running, after the repair", 20)

	// Not needed: stopped once, then left alone.
	none := Spec{Tenants: []Tenant{{Interface: "tq0", Subnets: []model.Subnet{{CIDR: pfx("10.30.0.0/24")}}}}}
	if res := apply(t, d, none, ActionStopped); res.PID != 0 || nstest.Alive(pid) {
		t.Fatalf("BIRD %d not stopped: %+v", pid, res)
	}
	for range 50 {
		if res := apply(t, d, none, ActionNone); res.PID != 0 {
			t.Fatalf("Apply of a spec without IPv6 or BGP: %+v", res)
		}
	}
	if pids := birds(dir); len(pids) != 0 {
		t.Errorf("BIRD processes %v after Applies that do not need it", pids)
	}
	if n := countIn(t, d.log, "Started"); n != starts {
		t.Errorf("BIRD started %d times; want %d", n, starts)
	}
}
