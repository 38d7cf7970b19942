package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/state/statetest"
)

// A new resource is booted once, its boot is re-checked on a timer (no
// goroutine stays busy), and it is configured once.
func TestCreateBootsOnTimerAndConfiguresOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		f := newFleet(statetest.Model{BootTime: time.Minute})
		w := start(t, cfg, Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Create), ev(router("r1"), event.Update))
		settle()

		s := status(t, w, "r1")
		if s.Sleep != state.WaitBoot || s.Running || s.Instance != state.Booting {
			t.Fatalf("while booting: %+v", s)
		}
		if ws := w.Status(); len(ws.Busy) != 0 || ws.Sleeping != 1 {
			t.Fatalf("while booting, worker %+v: want no busy goroutine, one sleeper", ws)
		}
		checks := f.fake(t, "r1").Calls("UpdateState")
		after(time.Minute + cfg.State.BootCheckInterval)

		fk := f.fake(t, "r1")
		s = status(t, w, "r1")
		if s.Instance != state.Configured || s.State != state.CalcAction || s.Sleep != state.NoWait {
			t.Fatalf("after the boot: %+v", s)
		}
		if fk.Calls("Boot") != 1 || fk.Calls("Configure") != 1 {
			t.Errorf("boots %d, configurations %d: want 1 and 1", fk.Calls("Boot"), fk.Calls("Configure"))
		}
		polls := fk.Calls("UpdateState") - checks
		if max := int((time.Minute+cfg.State.BootCheckInterval)/cfg.State.BootCheckInterval) + 1; polls > max {
			t.Errorf("%d boot checks in %s, want at most %d (one per %s)", polls, time.Minute, max, cfg.State.BootCheckInterval)
		}
		if len(s.Transitions) == 0 || s.Transitions[len(s.Transitions)-1].To != state.CalcAction || s.LastSeen.IsZero() {
			t.Errorf("status lacks history: %+v", s)
		}
		for i := 1; i < len(s.Transitions); i++ {
			if s.Transitions[i].At.Before(s.Transitions[i-1].At) {
				t.Errorf("transitions out of order: %+v", s.Transitions)
			}
		}
	})
}

// After a restart, resources whose instances run the current configuration
// are adopted by the first POLL without a push.
func TestPollAdoptsRunningInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		w := start(t, testConfig(), Deps{Factory: f})
		for i := range 20 {
			send(t, w, ev(router(fmt.Sprint("r", i)), event.Poll))
		}
		settle()
		for i := range 20 {
			fk := f.fake(t, fmt.Sprint("r", i))
			if fk.Calls("Configure")+fk.Calls("Boot")+fk.Calls("Stop") != 0 {
				t.Errorf("r%d: configure %d, boot %d, stop %d: want an adoption without changes",
					i, fk.Calls("Configure"), fk.Calls("Boot"), fk.Calls("Stop"))
			}
			if s := status(t, w, fmt.Sprint("r", i)); s.Instance != state.Configured {
				t.Errorf("r%d: %s", i, s.Instance)
			}
		}
	})
}

// A resource is never run by two goroutines at once, and events that arrive
// while it runs are run after, in the same order.
func TestSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Threads = 4
		f := newFleet(statetest.Model{Instance: true, Configured: true, Delay: time.Second})
		w := start(t, cfg, Deps{Factory: f})
		ids := []string{"r1", "r2", "r3"}
		for round := range 10 {
			for _, id := range ids {
				send(t, w, ev(router(id), event.Update))
			}
			time.Sleep(time.Duration(round) * 700 * time.Millisecond) // land mid-run
		}
		after(time.Hour)
		for _, id := range ids {
			fk := f.fake(t, id)
			if n := fk.Overlaps(); n != 0 {
				t.Errorf("%s: %d overlapping calls", id, n)
			}
			if fk.Calls("Configure") < 2 {
				t.Errorf("%s: %d pushes for 10 updates spread over runs, want at least 2", id, fk.Calls("Configure"))
			}
			if s := status(t, w, id); s.QueueLen != 0 || s.Running {
				t.Errorf("%s: work left: %+v", id, s)
			}
		}
	})
}

// An update that arrives while the resource runs is not lost: the machine
// goes back on the run queue when its run ends.
func TestRequeuedWhenWorkArrivesDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Threads = 1
		f := newFleet(statetest.Model{Instance: true, Configured: true, Delay: time.Second})
		w := start(t, cfg, Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Update))
		time.Sleep(1500 * time.Millisecond) // inside the first push
		settle()
		if s := status(t, w, "r1"); !s.Running {
			t.Fatalf("not running: %+v", s)
		}
		send(t, w, ev(router("r1"), event.Update))
		settle()
		if s := status(t, w, "r1"); s.QueueLen != 1 {
			t.Fatalf("update during the run not queued: %+v", s)
		}
		after(time.Minute)
		if n := f.fake(t, "r1").Calls("Configure"); n != 2 {
			t.Errorf("%d pushes, want 2", n)
		}
	})
}

// Events for one resource are applied in order; a deleted resource stays
// deleted when late events arrive.
func TestOrderAndDeletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(statetest.Model{})
		j := newJournal()
		w := start(t, testConfig(), Deps{Factory: f, Journal: j})
		send(t, w, ev(router("r1"), event.Create), ev(router("r1"), event.Delete), ev(router("r1"), event.Update))
		settle()
		if _, ok := w.Resource("r1"); ok {
			t.Fatal("r1 still managed after its DELETE")
		}
		if f.fake(t, "r1").Calls("Boot") != 0 {
			t.Error("a resource deleted before its first run was booted")
		}
		send(t, w, ev(router("r1"), event.Update), ev(router("r1"), event.Poll), ev(router("r1"), event.Delete))
		settle()
		if _, ok := w.Resource("r1"); ok {
			t.Fatal("late events brought r1 back")
		}
		if !slices.Contains(j.deleted, "r1") {
			t.Error("the carried-out DELETE was not forgotten by the journal")
		}
	})
}

// Failing boots are retried after growing, jittered delays, then the
// resource goes to ERROR; polls are ignored in ERROR; other events are held
// until the cooldown ends, then ClearError re-enters management.
func TestErrorBackoffAndCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.State.RebootErrorThreshold = 3
		f := newFleet(statetest.Model{FailBoots: 3})
		w := start(t, cfg, Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Create))
		after(10 * time.Second) // the retries take at most 1+2+4 s; the cooldown is 30 s
		fk := f.fake(t, "r1")
		s := status(t, w, "r1")
		if s.Instance != state.Error || fk.Calls("Boot") != 3 {
			t.Fatalf("after 3 failed boots: instance %s, %d boots", s.Instance, fk.Calls("Boot"))
		}
		if !strings.Contains(s.LastError, "boots failed") || s.ErrorSince.IsZero() {
			t.Errorf("last error %q, error since %s", s.LastError, s.ErrorSince)
		}
		times := fk.Model().BootTimes
		for i := 1; i < len(times); i++ {
			gap, d := times[i].Sub(times[i-1]), cfg.State.Backoff(i-1, nil)
			if gap < d/2 || gap > d {
				t.Errorf("boot %d came %s after the previous one, want within [%s, %s]", i+1, gap, d/2, d)
			}
		}

		// Polls are ignored.
		send(t, w, ev(router("r1"), event.Poll))
		settle()
		if s := status(t, w, "r1"); s.QueueLen != 0 || fk.Calls("ClearError") != 0 {
			t.Fatalf("poll in ERROR: %+v", s)
		}
		// An update within the cooldown is held, not dropped.
		send(t, w, ev(router("r1"), event.Update))
		settle()
		s = status(t, w, "r1")
		if s.Sleep != state.WaitHold || s.QueueLen != 1 || fk.Calls("ClearError") != 0 {
			t.Fatalf("update within the cooldown: %+v", s)
		}
		if want := s.ErrorSince.Add(cfg.State.ErrorStateCooldown); !s.WakeAt.Equal(want) {
			t.Errorf("held until %s, want %s", s.WakeAt, want)
		}
		after(cfg.State.ErrorStateCooldown)
		if fk.Calls("ClearError") != 1 || fk.Calls("Boot") != 4 {
			t.Fatalf("after the cooldown: clear %d, boots %d; want 1, 4", fk.Calls("ClearError"), fk.Calls("Boot"))
		}
		after(time.Minute)
		if s := status(t, w, "r1"); s.Instance != state.Configured {
			t.Errorf("after ClearError: %s, want configured", s.Instance)
		}
	})
}

// A DELETE is not held by the error cooldown.
func TestDeleteInErrorIsNotHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.State.RebootErrorThreshold = 1
		f := newFleet(statetest.Model{FailBoots: 1})
		w := start(t, cfg, Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Create))
		after(10 * time.Second)
		if s := status(t, w, "r1"); s.Instance != state.Error {
			t.Fatalf("not in error: %+v", s)
		}
		send(t, w, ev(router("r1"), event.Update))
		settle()
		send(t, w, ev(router("r1"), event.Delete))
		settle()
		if _, ok := w.Resource("r1"); ok {
			t.Fatal("DELETE held by the cooldown")
		}
	})
}

// An instance that never answers is replaced after boot_timeout; the
// replacements count toward ERROR.
func TestBootTimeoutEnforced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.State.RebootErrorThreshold = 2
		f := newFleet(statetest.Model{HangBoot: true})
		w := start(t, cfg, Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Create))
		after(cfg.State.BootTimeout - time.Second)
		if fk := f.fake(t, "r1"); fk.Calls("Boot") != 1 || fk.Calls("Stop") != 0 {
			t.Fatalf("before the timeout: %d boots, %d stops", fk.Calls("Boot"), fk.Calls("Stop"))
		}
		after(cfg.State.BootTimeout + time.Minute)
		fk := f.fake(t, "r1")
		s := status(t, w, "r1")
		if s.Instance != state.Error || fk.Calls("Boot") != 2 || fk.Calls("Stop") != 2 {
			t.Fatalf("after two timeouts: %s, %d boots, %d stops", s.Instance, fk.Calls("Boot"), fk.Calls("Stop"))
		}
	})
}

// Id-less events reach every resource of the tenant, resolved once per TTL.
func TestIDLessEventReachesEveryRouterOfTheTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		res := &resolver{tenants: map[string][]string{tenantA: {"r1", "r2", "r3"}, "tenant-b": {"b1"}}}
		w := start(t, cfg, Deps{Factory: f, Resolver: res})
		send(t, w, ev(event.Resource{Driver: event.DriverRouter, ID: "b1", TenantID: "tenant-b"}, event.Poll))
		idless := event.Event{Resource: event.Resource{Driver: event.DriverRouter, TenantID: tenantA}, Action: event.Update}
		send(t, w, idless)
		settle()
		for _, id := range []string{"r1", "r2", "r3"} {
			if n := f.fake(t, id).Calls("Configure"); n != 1 {
				t.Errorf("%s: %d pushes, want 1", id, n)
			}
		}
		if f.fake(t, "b1").Calls("Configure") != 0 {
			t.Error("another tenant's router got the event")
		}
		n, err := w.Command(context.Background(), idless)
		if err != nil || n != 3 || res.count() != 1 {
			t.Errorf("second id-less event: reached %d (%v), %d resolutions; want 3, 1", n, err, res.count())
		}
		after(cfg.ResolveTTL)
		send(t, w, idless)
		settle()
		if res.count() != 2 {
			t.Errorf("%d resolutions after the TTL, want 2", res.count())
		}

		// When the resolver fails, the tenant's known routers get it.
		res.mu.Lock()
		res.err = errors.New("neutron down")
		res.mu.Unlock()
		after(cfg.ResolveTTL)
		if n, err := w.Command(context.Background(), idless); n != 3 || err != nil {
			t.Errorf("with the resolver down: reached %d (%v), want 3", n, err)
		}
		// A tenant nobody knows: nothing to reach.
		if n, _ := w.Command(context.Background(), event.Event{Resource: event.Resource{Driver: event.DriverRouter, TenantID: "nobody"}, Action: event.Update}); n != 0 {
			t.Errorf("unknown tenant reached %d", n)
		}
	})
}

// "*" reaches every resource (of a tenant, if named), "error" those in
// ERROR; resource commands without a driver reach only existing machines.
func TestWildcardsAndCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.State.RebootErrorThreshold = 1
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		f.set("bad", statetest.Model{FailBoots: 1})
		w := start(t, cfg, Deps{Factory: f})
		other := event.Resource{Driver: event.DriverRouter, ID: "o1", TenantID: "tenant-b"}
		send(t, w, ev(router("r1"), event.Poll), ev(router("r2"), event.Poll), ev(other, event.Poll), ev(router("bad"), event.Create))
		after(10 * time.Second)
		if s := status(t, w, "bad"); s.Instance != state.Error {
			t.Fatalf("bad: %s", s.Instance)
		}
		ctx := context.Background()
		tests := []struct {
			name string
			r    event.Resource
			want int
		}{
			// First: the command takes bad out of ERROR.
			{"in error", event.Resource{Driver: event.All, ID: event.Errored, TenantID: event.All}, 1},
			{"all", event.Resource{Driver: event.All, ID: event.All, TenantID: event.All}, 4},
			{"all of a tenant", event.Resource{Driver: event.All, ID: event.All, TenantID: tenantA}, 3},
			{"all routers", event.Resource{Driver: event.DriverRouter, ID: event.All, TenantID: event.All}, 4},
			{"other driver", event.Resource{Driver: "loadbalancer", ID: event.All, TenantID: event.All}, 0},
			{"one, any driver", event.Resource{Driver: event.All, ID: "r2", TenantID: event.All}, 1},
			{"unknown, any driver", event.Resource{Driver: event.All, ID: "nope", TenantID: event.All}, 0},
		}
		for _, tt := range tests {
			n, err := w.Command(ctx, event.Event{Resource: tt.r, Action: event.Update})
			if err != nil || n != tt.want {
				t.Errorf("%s: reached %d (%v), want %d", tt.name, n, err, tt.want)
			}
		}
		settle()
		if _, ok := w.Resource("nope"); ok || f.has("nope") {
			t.Error("a command without a driver created a machine")
		}
		// The command to "error" bypassed the cooldown: bad was rebooted.
		if fk := f.fake(t, "bad"); fk.Calls("ClearError") == 0 {
			t.Error("a command to a resource in ERROR was held by the cooldown")
		}
	})
}

// A rebuild uses the image it names, and a later plain rebuild the default.
func TestRebuildUsesImage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		w := start(t, testConfig(), Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Poll))
		settle()
		rb := event.Event{Resource: router("r1"), Action: event.Rebuild, Command: &event.CommandArgs{Name: event.CmdRouterRebuild, ImageID: "custom-image"}}
		if n, err := w.Command(context.Background(), rb); n != 1 || err != nil {
			t.Fatalf("rebuild: %d, %v", n, err)
		}
		after(time.Minute)
		send(t, w, ev(router("r1"), event.Rebuild))
		after(time.Minute)
		m := f.fake(t, "r1").Model()
		if !slices.Equal(m.BootImages, []string{"custom-image", ""}) {
			t.Errorf("boot images %q, want the custom image, then the default", m.BootImages)
		}
		if m.State != state.Configured {
			t.Errorf("after rebuilds: %s", m.State)
		}
	})
}

// Resources in debug mode are left alone: no machine for new ones, events
// dropped, DELETEs kept. A resource put in debug mode while on the run
// queue is skipped without keeping its single-flight slot (the original
// leaked it), and runs again once managed. Commands bypass debug modes.
func TestDebugModes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Threads = 1
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		dbg := newDebugSet()
		w := start(t, cfg, Deps{Factory: f, Debug: dbg})

		dbg.resource("new", true)
		send(t, w, ev(router("new"), event.Create))
		settle()
		if _, ok := w.Resource("new"); ok {
			t.Error("a resource in debug mode got a machine")
		}

		// Occupy the only runner, queue r1, then put r1 in debug mode.
		f.set("slow", statetest.Model{Instance: true, Configured: true, Delay: time.Minute})
		send(t, w, ev(router("r1"), event.Poll))
		settle()
		send(t, w, ev(router("slow"), event.Update))
		settle()
		send(t, w, ev(router("r1"), event.Update))
		settle()
		dbg.resource("r1", true)
		after(5 * time.Minute) // slow's three calls
		s := status(t, w, "r1")
		if !s.Debug || s.QueueLen != 1 || s.Running || f.fake(t, "r1").Calls("Configure") != 0 {
			t.Fatalf("r1 in debug mode: %+v", s)
		}
		send(t, w, ev(router("r1"), event.Update), ev(router("r1"), event.Delete))
		settle()
		if s := status(t, w, "r1"); s.QueueLen != 2 {
			t.Fatalf("in debug mode, want the update dropped and the DELETE kept: queue %v", s.Queue)
		}

		// A command bypasses debug mode... but DELETE wins the coalescing.
		dbg.resource("r2", true)
		send(t, w, ev(router("r2"), event.Delete)) // creates r2's machine, kept
		settle()
		dbg.resource("r3", false)
		send(t, w, ev(router("r3"), event.Poll))
		settle()
		dbg.resource("r3", true)
		if n, err := w.Command(context.Background(), ev(router("r3"), event.Update)); n != 1 || err != nil {
			t.Fatalf("command to r3 in debug mode: %d, %v", n, err)
		}
		settle()
		if n := f.fake(t, "r3").Calls("Configure"); n != 1 {
			t.Errorf("command in debug mode: %d pushes, want 1", n)
		}

		// Managed again: the next event runs r1, whose DELETE is carried out.
		dbg.resource("r1", false)
		send(t, w, ev(router("r1"), event.Poll))
		settle()
		if _, ok := w.Resource("r1"); ok {
			t.Error("r1 still managed: its DELETE was not carried out after resource-manage")
		}
		if _, ok := w.Resource("r2"); !ok {
			t.Error("r2's DELETE in debug mode was lost")
		}
	})
}

// The factory is retried with backoff; the error is shown meanwhile.
func TestFactoryErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		f.FailFirst(2)
		w := start(t, testConfig(), Deps{Factory: f})
		send(t, w, ev(router("r1"), event.Update))
		settle()
		s := status(t, w, "r1")
		if s.Sleep != state.WaitRetry || !strings.Contains(s.LastError, "compute API unreachable") {
			t.Fatalf("after a factory error: %+v", s)
		}
		after(time.Minute)
		if n := f.fake(t, "r1").Calls("Configure"); n != 1 {
			t.Errorf("%d pushes after the factory recovered, want 1", n)
		}
	})
}

// Enqueue blocks while the input queue is full, honours its context, and
// refuses events once the worker stops.
func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QueueSize = 1
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		w, err := New(0, cfg, Deps{Factory: f, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		send(t, w, ev(router("r1"), event.Poll)) // fills the queue: not started
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := w.Enqueue(ctx, ev(router("r2"), event.Poll)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Enqueue on a full queue: %v, want the context's deadline", err)
		}
		blocked := make(chan error)
		go func() { blocked <- w.Enqueue(context.Background(), ev(router("r3"), event.Poll)) }()
		settle()
		if ws := w.Status(); ws.InputQueue != 2 || ws.InputCapacity != 1 { // one queued, one waiting for room
			t.Errorf("status %+v", ws)
		}
		w.Start()
		if err := <-blocked; err != nil {
			t.Fatalf("blocked Enqueue: %v", err)
		}
		settle()
		if _, ok := w.Resource("r3"); !ok {
			t.Error("r3 not delivered")
		}
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := w.Enqueue(context.Background(), ev(router("r4"), event.Poll)); !errors.Is(err, ErrStopped) {
			t.Errorf("Enqueue after Stop: %v", err)
		}
		if _, err := w.Command(context.Background(), ev(router("r4"), event.Poll)); !errors.Is(err, ErrStopped) {
			t.Errorf("Command after Stop: %v", err)
		}
	})
}

// Stop frees senders blocked on a full queue of a worker that never
// started, and records what was queued.
func TestStopBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QueueSize = 1
		j := newJournal()
		w, err := New(0, cfg, Deps{Factory: newFleet(statetest.Model{}), Journal: j, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		send(t, w, ev(router("r1"), event.Delete))
		blocked := make(chan error)
		go func() { blocked <- w.Enqueue(context.Background(), ev(router("r2"), event.Update)) }()
		settle()
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-blocked; !errors.Is(err, ErrStopped) {
			t.Errorf("blocked sender: %v, want ErrStopped", err)
		}
		if p, ok := j.get("r1"); !ok || !slices.Equal(p.Actions, []event.Action{event.Delete}) {
			t.Errorf("queued DELETE not recorded: %+v", p)
		}
		if err := w.Stop(context.Background()); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		w.Start() // no effect once stopped
		if err := w.Enqueue(context.Background(), ev(router("r3"), event.Poll)); !errors.Is(err, ErrStopped) {
			t.Errorf("Enqueue after Stop: %v", err)
		}
	})
}

// Stop finishes the work that can run, and records the rest: a DELETE cut
// short, the queue of a sleeping machine.
func TestStopRecordsPendingWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(statetest.Model{Instance: true, Configured: true})
		gate := make(chan struct{})
		f.set("deleting", statetest.Model{Instance: true, Configured: true, StopGate: gate})
		f.set("booting", statetest.Model{BootTime: time.Hour})
		f.set("quick", statetest.Model{Instance: true, Configured: true, Delay: time.Second})
		j := newJournal()
		w, err := New(0, testConfig(), Deps{Factory: f, Journal: j, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		w.Start()
		send(t, w, ev(router("deleting"), event.Poll), ev(router("booting"), event.Create), ev(router("idle"), event.Poll))
		settle()
		send(t, w, ev(router("deleting"), event.Delete), ev(router("booting"), event.Update), ev(router("quick"), event.Update))
		settle()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := f.fake(t, "quick").Calls("Configure"); n != 1 {
			t.Errorf("runnable work not finished at Stop: %d pushes", n)
		}
		if p, ok := j.get("deleting"); !ok || !slices.Contains(p.Actions, event.Delete) {
			t.Errorf("the DELETE cut short was not recorded: %+v", p)
		}
		if p, ok := j.get("booting"); !ok || !slices.Contains(p.Actions, event.Create) {
			t.Errorf("the sleeping boot was not recorded: %+v", p)
		}
		for _, id := range []string{"idle", "quick"} {
			if p, ok := j.get(id); ok {
				t.Errorf("%s recorded with nothing to do: %+v", id, p)
			}
		}
		close(gate)
	})
}

// A journal that fails at Stop is reported.
func TestStopReportsJournalErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(statetest.Model{BootTime: time.Hour})
		j := newJournal()
		j.fail = errors.New("disk full")
		w, err := New(0, testConfig(), Deps{Factory: f, Journal: j, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		w.Start()
		send(t, w, ev(router("r1"), event.Create))
		settle()
		if err := w.Stop(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("Stop: %v, want the journal's error", err)
		}
	})
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Threads, c.QueueSize, c.State.RetryDelay = 0, 0, 0
	err := c.Validate()
	for _, field := range []string{"num_worker_threads", "worker_queue_size", "retry_delay"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v, want it to name %s", err, field)
		}
	}
	if _, err := New(0, c, Deps{Factory: newFleet(statetest.Model{})}); err == nil {
		t.Error("New accepted an invalid config")
	}
	if _, err := New(0, DefaultConfig(), Deps{}); err == nil {
		t.Error("New accepted no factory")
	}
	w, err := New(0, DefaultConfig(), Deps{Factory: newFleet(statetest.Model{})})
	if err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	c.State.ErrorStateCooldown, c.Threads = time.Hour, 99
	if err := w.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	if got := w.cfg.Load(); got.State.ErrorStateCooldown != time.Hour || got.Threads != DefaultConfig().Threads {
		t.Errorf("after SetConfig: %+v", got)
	}
}

// routers is a provider.NetworkAPI answering RoutersOfTenant only.
type routers struct {
	provider.NetworkAPI
	refs []provider.RouterRef
}

func (r routers) RoutersOfTenant(_ context.Context, tenantID string) ([]provider.RouterRef, error) {
	var out []provider.RouterRef
	for _, ref := range r.refs {
		if ref.TenantID == tenantID {
			out = append(out, ref)
		}
	}
	return out, nil
}

func TestNetworkResolver(t *testing.T) {
	r := NetworkResolver{API: routers{refs: []provider.RouterRef{{ID: "a", TenantID: "t"}, {ID: "b", TenantID: "t"}, {ID: "c", TenantID: "u"}}}}
	ids, err := r.ResourcesOfTenant(context.Background(), event.DriverRouter, "t")
	if err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("routers of t: %v, %v; want every router of the tenant", ids, err)
	}
	if _, err := r.ResourcesOfTenant(context.Background(), "loadbalancer", "t"); err == nil {
		t.Error("resolved a driver it does not know")
	}
}
