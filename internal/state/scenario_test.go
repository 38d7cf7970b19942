package state_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/state/statetest"
)

// drive runs m like a worker does, on fake time: it steps until the machine
// rests with nothing queued, exits, or maxSteps is reached, sleeping out
// every wait. It returns the outcomes.
func drive(t *testing.T, m *state.Machine, inst state.Instance, cfg state.Config, maxSteps int) []state.Outcome {
	t.Helper()
	var outs []state.Outcome
	woken := false
	for range maxSteps {
		if m.State == state.CalcAction && m.Queue.Len() == 0 && !woken {
			return outs
		}
		woken = false
		out := m.Step(context.Background(), inst, state.Env{Now: time.Now(), Config: cfg})
		outs = append(outs, out)
		if out.To == state.Exit {
			return outs
		}
		if out.Wait != state.NoWait {
			time.Sleep(out.Delay)
			woken = true
		}
	}
	t.Fatalf("no rest after %d steps: %v", maxSteps, path(outs))
	return nil
}

func path(outs []state.Outcome) []string {
	var p []string
	for _, o := range outs {
		s := o.From.String() + "→" + o.To.String()
		if o.Wait != state.NoWait {
			s += "(" + o.Wait.String() + " " + o.Delay.String() + ")"
		}
		p = append(p, s)
	}
	return p
}

func count(outs []state.Outcome, to state.Name) int {
	n := 0
	for _, o := range outs {
		if o.To == to {
			n++
		}
	}
	return n
}

func enqueue(m *state.Machine, actions ...event.Action) {
	for _, a := range actions {
		m.Queue.Add(a)
	}
}

// A new resource boots once, is polled on a timer while it boots, and is
// configured exactly once (the original pushed twice, and re-checked the
// boot by re-queueing itself).
func TestBootConfiguresOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := state.DefaultConfig()
		inst := statetest.New(statetest.Model{BootTime: 42 * time.Second})
		var m state.Machine
		enqueue(&m, event.Create, event.Update)
		start := time.Now()
		outs := drive(t, &m, inst, cfg, 100)
		if got := inst.Model().State; got != state.Configured {
			t.Fatalf("instance %s, want configured; path %v", got, path(outs))
		}
		if n := inst.Calls("Boot"); n != 1 {
			t.Errorf("%d boots, want 1", n)
		}
		if n := inst.Calls("Configure"); n != 1 {
			t.Errorf("%d configurations, want 1; path %v", n, path(outs))
		}
		// One UpdateState right after the boot, then one per interval.
		elapsed := time.Since(start)
		if max := int(elapsed/cfg.BootCheckInterval) + 2; inst.Calls("UpdateState") > max {
			t.Errorf("%d boot checks in %s, want at most %d", inst.Calls("UpdateState"), elapsed, max)
		}
		if elapsed < 42*time.Second {
			t.Errorf("configured after %s, before the instance answered", elapsed)
		}
		for _, o := range outs {
			if o.From == state.CheckBoot && o.To == state.CalcAction && o.Wait != state.WaitBoot {
				t.Errorf("boot re-checked without a timer: %v", path(outs))
			}
		}
	})
}

// After an orchestrator restart, a POLL adopts a healthy instance that runs
// the current configuration: nothing is booted or pushed.
func TestRestartAdoptsConfiguredInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inst := statetest.New(statetest.Model{Instance: true, Configured: true})
		inst.UpdateState(context.Background()) // what the worker does for a new machine
		var m state.Machine
		enqueue(&m, event.Poll)
		drive(t, &m, inst, state.DefaultConfig(), 10)
		if inst.Calls("Configure")+inst.Calls("Boot")+inst.Calls("Stop") != 0 {
			t.Errorf("adoption pushed, booted or stopped: configure %d boot %d stop %d",
				inst.Calls("Configure"), inst.Calls("Boot"), inst.Calls("Stop"))
		}
		// A later poll does not push either; an update does, once.
		enqueue(&m, event.Poll)
		drive(t, &m, inst, state.DefaultConfig(), 10)
		enqueue(&m, event.Update, event.Poll)
		drive(t, &m, inst, state.DefaultConfig(), 10)
		if n := inst.Calls("Configure"); n != 1 {
			t.Errorf("%d pushes, want 1 (for the update)", n)
		}
	})
}

// Boots that fail are retried after growing delays, and after
// reboot_error_threshold attempts the resource goes to ERROR.
func TestFailedBootsGoToError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := state.DefaultConfig()
		inst := statetest.New(statetest.Model{FailBoots: 1000})
		var m state.Machine
		enqueue(&m, event.Create)
		outs := drive(t, &m, inst, cfg, 100)
		if got := inst.State(); got != state.Error {
			t.Fatalf("instance %s, want error; path %v", got, path(outs))
		}
		if n := inst.Calls("Boot"); n != cfg.RebootErrorThreshold {
			t.Errorf("%d boots, want %d", n, cfg.RebootErrorThreshold)
		}
		var delays []time.Duration
		for _, o := range outs {
			if o.Wait == state.WaitRetry {
				delays = append(delays, o.Delay)
			}
		}
		for i := 1; i < len(delays); i++ {
			if delays[i] <= delays[i-1] {
				t.Errorf("retry delays do not grow: %v", delays)
			}
		}
		if len(delays) != cfg.RebootErrorThreshold {
			t.Errorf("%d retry waits, want %d: %v", len(delays), cfg.RebootErrorThreshold, path(outs))
		}
	})
}

// In ERROR, polls are ignored and other events are held until the cooldown
// ends, then ClearError re-enters management and boots again.
func TestErrorHoldsEventsUntilCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := state.DefaultConfig()
		inst := statetest.New(statetest.Model{FailBoots: cfg.RebootErrorThreshold})
		var m state.Machine
		enqueue(&m, event.Create)
		drive(t, &m, inst, cfg, 100)
		if inst.State() != state.Error {
			t.Fatalf("instance %s, want error", inst.State())
		}
		erroredAt := time.Now()

		enqueue(&m, event.Poll)
		outs := drive(t, &m, inst, cfg, 5)
		if inst.Calls("ClearError") != 0 || m.Queue.Len() != 0 || len(outs) != 1 {
			t.Fatalf("a poll in ERROR did something: %v", path(outs))
		}

		time.Sleep(cfg.ErrorStateCooldown / 3)
		enqueue(&m, event.Update)
		out := m.Step(context.Background(), inst, state.Env{Now: time.Now(), Config: cfg})
		if out.Wait != state.WaitHold || m.Queue.Len() != 1 || inst.Calls("ClearError") != 0 {
			t.Fatalf("update within the cooldown: %v, queue %v", path([]state.Outcome{out}), m.Queue.Slice())
		}
		if end := erroredAt.Add(cfg.ErrorStateCooldown); !time.Now().Add(out.Delay).Equal(end) {
			t.Errorf("held until %s, want the end of the cooldown %s", time.Now().Add(out.Delay), end)
		}
		time.Sleep(out.Delay)
		outs = drive(t, &m, inst, cfg, 100)
		if inst.Calls("ClearError") != 1 || inst.State() != state.Configured {
			t.Fatalf("after the cooldown: clear %d, instance %s; path %v", inst.Calls("ClearError"), inst.State(), path(outs))
		}
	})
}

// An instance that never answers is replaced after boot_timeout, and the
// replacements count toward ERROR (the original waited forever).
func TestBootTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := state.DefaultConfig()
		cfg.RebootErrorThreshold = 3
		inst := statetest.New(statetest.Model{HangBoot: true})
		var m state.Machine
		enqueue(&m, event.Create)
		start := time.Now()
		outs := drive(t, &m, inst, cfg, 10000)
		if inst.State() != state.Error || inst.Calls("Boot") != 3 || inst.Calls("Stop") != 3 {
			t.Fatalf("instance %s after %d boots, %d stops; want error, 3, 3", inst.State(), inst.Calls("Boot"), inst.Calls("Stop"))
		}
		if elapsed := time.Since(start); elapsed != 3*cfg.BootTimeout {
			t.Errorf("error after %s, want 3×boot_timeout = %s", elapsed, 3*cfg.BootTimeout)
		}
		timeouts := 0
		for _, o := range outs {
			if o.Err != nil && o.From == state.CheckBoot {
				timeouts++
			}
		}
		if timeouts != 3 {
			t.Errorf("%d boot timeouts reported, want 3", timeouts)
		}
	})
}

// Replugs that leave the NICs mismatched are retried after a backoff, then
// the instance is replaced (the original could loop without yielding).
func TestReplugLoopIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := state.DefaultConfig()
		inst := statetest.New(statetest.Model{Instance: true, Configured: true, Mismatched: true, ReplugNoop: true})
		inst.UpdateState(context.Background())
		var m state.Machine
		enqueue(&m, event.Update)
		var outs []state.Outcome
		for inst.Calls("Stop") == 0 {
			out := m.Step(context.Background(), inst, state.Env{Now: time.Now(), Config: cfg})
			outs = append(outs, out)
			if out.Wait != state.NoWait {
				time.Sleep(out.Delay)
			}
		}
		if n := inst.Calls("Replug"); n != cfg.MaxReplugs {
			t.Errorf("%d replugs before replacing, want %d", n, cfg.MaxReplugs)
		}
		waits := 0
		for _, o := range outs {
			if o.Wait == state.WaitRetry && o.To == state.ReplugInstance {
				waits++
			}
		}
		if waits != cfg.MaxReplugs-1 {
			t.Errorf("%d waits between replugs, want %d: %v", waits, cfg.MaxReplugs-1, path(outs))
		}
	})
}

// A failing stop of a DELETE is retried with backoff until it works, then
// the machine exits.
func TestDeleteRetriesStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inst := statetest.New(statetest.Model{Instance: true, Configured: true, FailStops: 4})
		inst.UpdateState(context.Background())
		var m state.Machine
		enqueue(&m, event.Update, event.Delete)
		outs := drive(t, &m, inst, state.DefaultConfig(), 100)
		if last := outs[len(outs)-1]; last.To != state.Exit {
			t.Fatalf("did not exit: %v", path(outs))
		}
		if n := inst.Calls("Stop"); n != 5 {
			t.Errorf("%d stops, want 5", n)
		}
		if n := count(outs, state.StopInstance); n != 5 {
			t.Errorf("%d transitions to StopInstance, want 5: %v", n, path(outs))
		}
	})
}
