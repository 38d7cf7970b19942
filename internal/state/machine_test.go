package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event"
)

// script is an Instance whose calls return scripted states, one after
// another, and which records every call.
type script struct {
	t        *testing.T
	st       InstanceState
	results  map[string][]InstanceState
	calls    []string
	attempts int
	bootErr  error
	started  time.Time
	image    string
	statsErr error
	stats    bool // implements StatsReader (see statsScript)
}

func (s *script) next(method string) InstanceState {
	s.calls = append(s.calls, method)
	r := s.results[method]
	if len(r) == 0 {
		s.t.Fatalf("unexpected call %s (calls so far %v)", method, s.calls)
	}
	s.results[method] = r[1:]
	s.st = r[0]
	return s.st
}

func (s *script) State() InstanceState                      { return s.st }
func (s *script) UpdateState(context.Context) InstanceState { return s.next("UpdateState") }
func (s *script) Configure(context.Context) InstanceState   { return s.next("Configure") }
func (s *script) Replug(context.Context) InstanceState      { return s.next("Replug") }
func (s *script) Stop(context.Context) InstanceState        { return s.next("Stop") }
func (s *script) Boot(context.Context) error {
	s.next("Boot")
	s.attempts++
	return s.bootErr
}
func (s *script) SetError(context.Context) {
	s.calls = append(s.calls, "SetError")
	s.st = Error
}
func (s *script) ClearError(context.Context) {
	s.calls = append(s.calls, "ClearError")
	s.st, s.attempts = Down, 0
}
func (s *script) BootAttempts() int      { return s.attempts }
func (s *script) BootStarted() time.Time { return s.started }
func (s *script) ResetBootCounter() {
	s.calls = append(s.calls, "ResetBootCounter")
	s.attempts = 0
}
func (s *script) SetImage(image string) {
	s.calls = append(s.calls, "SetImage("+image+")")
	s.image = image
}

type statsScript struct{ *script }

func (s statsScript) ReadStats(context.Context) error {
	s.calls = append(s.calls, "ReadStats")
	return s.statsErr
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testEnv(now time.Time) Env {
	return Env{Now: now, Config: DefaultConfig()}
}

// TestTransitions covers every transition of every state (§4.3) and the
// fixes of the original's bugs, one step each.
func TestTransitions(t *testing.T) {
	cfg := DefaultConfig()
	type res = map[string][]InstanceState
	tests := []struct {
		name      string
		m         Machine
		inst      InstanceState
		results   res
		attempts  int
		bootErr   error
		started   time.Time // BootStarted
		stats     bool
		now       time.Time // default t0
		wantTo    Name
		wantAct   event.Action
		wantWait  Wait
		wantDelay time.Duration
		wantCalls []string
		wantQueue []event.Action
		wantErr   string
	}{
		// CalcAction.
		{name: "calc: gone stops", m: mach(CalcAction, P, U), inst: Gone, wantTo: StopInstance, wantAct: U},
		{name: "calc: delete stops, queue kept", m: mach(CalcAction, P, U, D), inst: Configured, wantTo: StopInstance, wantAct: D, wantQueue: []event.Action{U, D}},
		{name: "calc: rebuild", m: mach(CalcAction, P, RB), inst: Configured, wantTo: RebuildInstance, wantAct: RB},
		{name: "calc: cluster rebuild degraded", m: mach(CalcAction, P), inst: Degraded, wantTo: CreateInstance, wantAct: CR},
		{name: "calc: cluster rebuild down", m: mach(CalcAction, P, CR), inst: Down, wantTo: CreateInstance, wantAct: CR},
		{name: "calc: booting checks boot", m: mach(CalcAction, P, U), inst: Booting, wantTo: CheckBoot, wantAct: U},
		{name: "calc: down creates", m: mach(CalcAction, P, U), inst: Down, wantTo: CreateInstance, wantAct: U},
		{name: "calc: degraded update creates", m: mach(CalcAction, P, U), inst: Degraded, wantTo: CreateInstance, wantAct: U, wantQueue: []event.Action{CR}},
		{name: "calc: configured goes alive", m: mach(CalcAction, P, U), inst: Configured, wantTo: Alive, wantAct: U},
		{name: "calc: up goes alive", m: mach(CalcAction, P, P), inst: Up, wantTo: Alive, wantAct: P},
		{name: "calc: zero machine polls", m: mach(CalcAction, N, P), inst: Configured, wantTo: Alive, wantAct: P},
		{name: "calc: boot wake keeps sticky create", m: mach(CalcAction, C), inst: Booting, wantTo: CheckBoot, wantAct: C},
		{name: "calc: error ignores polls", m: mach(CalcAction, P, P), inst: Error, wantTo: CalcAction, wantAct: P},
		{name: "calc: error holds within cooldown", m: errMach(t0.Add(-10*time.Second), U, P), inst: Error,
			wantTo: CalcAction, wantAct: C, wantWait: WaitHold, wantDelay: 20 * time.Second, wantQueue: []event.Action{U}},
		{name: "calc: error clears after cooldown", m: errMach(t0.Add(-cfg.ErrorStateCooldown), U), inst: Error, wantTo: ClearError, wantAct: C},
		{name: "calc: error delete is not held", m: errMach(t0, D), inst: Error, wantTo: ClearError, wantAct: D, wantQueue: []event.Action{D}},
		{name: "calc: error command is not held", m: forced(errMach(t0, RB)), inst: Error, wantTo: ClearError, wantAct: RB},

		// ClearError.
		{name: "clear error goes where calc went", m: Machine{State: ClearError, Action: U, next: Alive, errorAt: 1}, inst: Error,
			wantTo: Alive, wantAct: U, wantCalls: []string{"ClearError"}},
		{name: "clear error without next rests", m: Machine{State: ClearError, Action: U}, inst: Error,
			wantTo: CalcAction, wantAct: U, wantCalls: []string{"ClearError"}},

		// Alive.
		{name: "alive: gone", m: mach(Alive, P), results: res{"UpdateState": {Gone}}, wantTo: StopInstance, wantAct: P, wantCalls: []string{"UpdateState"}},
		{name: "alive: down", m: mach(Alive, P), results: res{"UpdateState": {Down}}, wantTo: CreateInstance, wantAct: P, wantCalls: []string{"UpdateState"}},
		{name: "alive: degraded", m: mach(Alive, P), results: res{"UpdateState": {Degraded}}, wantTo: CreateInstance, wantAct: P, wantCalls: []string{"UpdateState"}},
		{name: "alive: booting checks boot", m: mach(Alive, U), results: res{"UpdateState": {Booting}}, wantTo: CheckBoot, wantAct: U, wantCalls: []string{"UpdateState"}},
		{name: "alive: poll configured rests", m: mach(Alive, P), results: res{"UpdateState": {Configured}}, wantTo: CalcAction, wantAct: P, wantCalls: []string{"UpdateState"}},
		{name: "alive: read configured", m: mach(Alive, R), results: res{"UpdateState": {Configured}}, wantTo: ReadStats, wantAct: R, wantCalls: []string{"UpdateState"}},
		{name: "alive: update configured pushes", m: mach(Alive, U), results: res{"UpdateState": {Configured}}, wantTo: ConfigureInstance, wantAct: U, wantCalls: []string{"UpdateState"}},
		{name: "alive: poll up pushes", m: mach(Alive, P), results: res{"UpdateState": {Up}}, wantTo: ConfigureInstance, wantAct: P, wantCalls: []string{"UpdateState"}},

		// CreateInstance.
		{name: "create: boots", m: mach(CreateInstance, U), inst: Down, results: res{"Boot": {Booting}}, wantTo: CheckBoot, wantAct: U, wantCalls: []string{"Boot"}},
		{name: "create: boot failed retries later", m: mach(CreateInstance, U), inst: Down, results: res{"Boot": {Down}}, bootErr: errors.New("nova said no"),
			wantTo: CreateInstance, wantAct: U, wantWait: WaitRetry, wantDelay: cfg.RetryDelay, wantCalls: []string{"Boot"}, wantErr: "boot: nova said no"},
		{name: "create: gone stops", m: mach(CreateInstance, U), inst: Down, results: res{"Boot": {Gone}}, wantTo: StopInstance, wantAct: U, wantCalls: []string{"Boot"}},
		{name: "create: threshold sets error", m: mach(CreateInstance, U), inst: Down, attempts: cfg.RebootErrorThreshold,
			wantTo: CalcAction, wantAct: U, wantCalls: []string{"SetError"}, wantErr: "5 boots failed"},
		{name: "create: degraded ignores threshold", m: mach(CreateInstance, CR), inst: Degraded, attempts: cfg.RebootErrorThreshold, results: res{"Boot": {Booting}},
			wantTo: CheckBoot, wantAct: CR, wantCalls: []string{"Boot"}},

		// CheckBoot.
		{name: "check boot: replug", m: mach(CheckBoot, C), results: res{"UpdateState": {Replug}}, wantTo: ReplugInstance, wantAct: C, wantCalls: []string{"UpdateState"}},
		{name: "check boot: down stops", m: mach(CheckBoot, C), results: res{"UpdateState": {Down}}, wantTo: StopInstance, wantAct: C, wantCalls: []string{"UpdateState"}},
		{name: "check boot: gone stops", m: mach(CheckBoot, C), results: res{"UpdateState": {Gone}}, wantTo: StopInstance, wantAct: C, wantCalls: []string{"UpdateState"}},
		{name: "check boot: up configures", m: mach(CheckBoot, C), results: res{"UpdateState": {Up}}, wantTo: ConfigureInstance, wantAct: C, wantCalls: []string{"UpdateState"}},
		{name: "check boot: configured rests", m: mach(CheckBoot, C), results: res{"UpdateState": {Configured}}, wantTo: CalcAction, wantAct: C, wantCalls: []string{"UpdateState"}},
		{name: "check boot: booting waits on a timer", m: mach(CheckBoot, C), results: res{"UpdateState": {Booting}}, started: t0.Add(-time.Minute),
			wantTo: CalcAction, wantAct: C, wantWait: WaitBoot, wantDelay: cfg.BootCheckInterval, wantCalls: []string{"UpdateState"}},
		{name: "check boot: last wait ends at the timeout", m: mach(CheckBoot, C), results: res{"UpdateState": {Booting}}, started: t0.Add(-cfg.BootTimeout + time.Second),
			wantTo: CalcAction, wantAct: C, wantWait: WaitBoot, wantDelay: time.Second, wantCalls: []string{"UpdateState"}},
		{name: "check boot: timeout replaces the instance", m: mach(CheckBoot, C), results: res{"UpdateState": {Booting}}, started: t0.Add(-cfg.BootTimeout),
			wantTo: StopInstance, wantAct: C, wantCalls: []string{"UpdateState"}, wantErr: "boot timed out"},
		{name: "check boot: unknown start counts from first sight", m: Machine{State: CheckBoot, Action: C, bootSeen: t0.Add(-cfg.BootTimeout).UnixNano()},
			results: res{"UpdateState": {Booting}}, wantTo: StopInstance, wantAct: C, wantCalls: []string{"UpdateState"}, wantErr: "boot timed out"},

		// ConfigureInstance.
		{name: "configure: configured rests with poll", m: mach(ConfigureInstance, C), results: res{"Configure": {Configured}}, wantTo: CalcAction, wantAct: P, wantCalls: []string{"Configure"}},
		{name: "configure: read goes to stats", m: mach(ConfigureInstance, R), results: res{"Configure": {Configured}}, wantTo: ReadStats, wantAct: R, wantCalls: []string{"Configure"}},
		{name: "configure: degraded rests", m: mach(ConfigureInstance, U), results: res{"Configure": {Degraded}}, wantTo: CalcAction, wantAct: U, wantCalls: []string{"Configure"}},
		{name: "configure: replug", m: mach(ConfigureInstance, U), results: res{"Configure": {Replug}}, wantTo: ReplugInstance, wantAct: U, wantCalls: []string{"Configure"}},
		{name: "configure: replug again waits", m: Machine{State: ConfigureInstance, Action: U, replugs: 1}, results: res{"Configure": {Replug}},
			wantTo: ReplugInstance, wantAct: U, wantWait: WaitRetry, wantDelay: cfg.RetryDelay, wantCalls: []string{"Configure"}},
		{name: "configure: replugs exhausted replace", m: Machine{State: ConfigureInstance, Action: U, replugs: uint8(cfg.MaxReplugs)}, results: res{"Configure": {Replug}},
			wantTo: StopInstance, wantAct: U, wantCalls: []string{"Configure"}, wantErr: "after 3 replugs"},
		{name: "configure: restart stops", m: mach(ConfigureInstance, U), results: res{"Configure": {Restart}}, wantTo: StopInstance, wantAct: U, wantCalls: []string{"Configure"}, wantErr: "restart"},
		{name: "configure: down stops", m: mach(ConfigureInstance, U), results: res{"Configure": {Down}}, wantTo: StopInstance, wantAct: U, wantCalls: []string{"Configure"}, wantErr: "down"},
		{name: "configure: gone stops", m: mach(ConfigureInstance, U), results: res{"Configure": {Gone}}, wantTo: StopInstance, wantAct: U, wantCalls: []string{"Configure"}},
		{name: "configure: up pushes again", m: mach(ConfigureInstance, U), results: res{"Configure": {Up}}, wantTo: PushUpdate, wantAct: U, wantCalls: []string{"Configure"}, wantErr: "did not take"},

		// PushUpdate.
		{name: "push update: queued first, after a backoff", m: mach(PushUpdate, U, P), inst: Up,
			wantTo: CalcAction, wantAct: U, wantWait: WaitRetry, wantDelay: cfg.RetryDelay, wantQueue: []event.Action{U, P}},

		// ReplugInstance.
		{name: "replug: configure next", m: mach(ReplugInstance, U), results: res{"Replug": {Replug}}, wantTo: ConfigureInstance, wantAct: U, wantCalls: []string{"Replug"}},
		{name: "replug: restart stops", m: mach(ReplugInstance, U), results: res{"Replug": {Restart}}, wantTo: StopInstance, wantAct: U, wantCalls: []string{"Replug"}},

		// StopInstance.
		{name: "stop: gone exits", m: mach(StopInstance, U), results: res{"Stop": {Gone}}, wantTo: Exit, wantAct: D, wantCalls: []string{"Stop"}},
		{name: "stop: delete exits", m: mach(StopInstance, D, D), results: res{"Stop": {Down}}, wantTo: Exit, wantAct: D, wantCalls: []string{"Stop"}, wantQueue: []event.Action{D}},
		{name: "stop: down recreates", m: mach(StopInstance, C), results: res{"Stop": {Down}}, wantTo: CreateInstance, wantAct: C, wantCalls: []string{"Stop"}},
		{name: "stop: failed retries later", m: mach(StopInstance, D), results: res{"Stop": {Up}},
			wantTo: StopInstance, wantAct: D, wantWait: WaitRetry, wantDelay: cfg.RetryDelay, wantCalls: []string{"Stop"}, wantErr: "still up"},

		// RebuildInstance.
		{name: "rebuild: with the image", m: Machine{State: RebuildInstance, Action: RB, rebuildImage: "img-2"}, results: res{"Stop": {Down}},
			wantTo: CreateInstance, wantAct: C, wantCalls: []string{"SetImage(img-2)", "Stop", "ResetBootCounter"}},
		{name: "rebuild: default image", m: mach(RebuildInstance, RB), results: res{"Stop": {Down}},
			wantTo: CreateInstance, wantAct: C, wantCalls: []string{"SetImage()", "Stop", "ResetBootCounter"}},
		{name: "rebuild: gone exits", m: mach(RebuildInstance, RB), results: res{"Stop": {Gone}},
			wantTo: Exit, wantAct: D, wantCalls: []string{"SetImage()", "Stop"}},
		{name: "rebuild: failed stop retries later", m: mach(RebuildInstance, RB), results: res{"Stop": {Configured}},
			wantTo: RebuildInstance, wantAct: C, wantWait: WaitRetry, wantDelay: cfg.RetryDelay, wantCalls: []string{"SetImage()", "Stop", "ResetBootCounter"}, wantErr: "still configured"},

		// ReadStats.
		{name: "read stats: polls next", m: mach(ReadStats, R), stats: true, wantTo: CalcAction, wantAct: P, wantCalls: []string{"ReadStats"}},
		{name: "read stats: optional", m: mach(ReadStats, R), wantTo: CalcAction, wantAct: P},

		// Exit.
		{name: "exit is final", m: mach(Exit, D), wantTo: Exit, wantAct: D},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{t: t, st: tt.inst, results: tt.results, attempts: tt.attempts, bootErr: tt.bootErr, started: tt.started}
			if s.results == nil {
				s.results = res{}
			}
			var inst Instance = s
			if tt.stats {
				inst = statsScript{s}
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			m := tt.m
			out := m.Step(context.Background(), inst, testEnv(now))
			if out.From != tt.m.State || out.To != tt.wantTo || m.State != tt.wantTo {
				t.Errorf("%s → %s (machine in %s), want → %s", out.From, out.To, m.State, tt.wantTo)
			}
			if out.Action != tt.wantAct || m.Action != tt.wantAct {
				t.Errorf("action %s, want %s", out.Action, tt.wantAct)
			}
			if out.Wait != tt.wantWait || out.Delay != tt.wantDelay {
				t.Errorf("wait %q %s, want %q %s", out.Wait, out.Delay, tt.wantWait, tt.wantDelay)
			}
			if out.Instance != s.st {
				t.Errorf("outcome instance %s, instance is %s", out.Instance, s.st)
			}
			if !slices.Equal(s.calls, tt.wantCalls) {
				t.Errorf("calls %v, want %v", s.calls, tt.wantCalls)
			}
			if q := m.Queue.Slice(); !slices.Equal(q, tt.wantQueue) && len(q)+len(tt.wantQueue) > 0 {
				t.Errorf("queue %v, want %v", q, tt.wantQueue)
			}
			switch {
			case tt.wantErr == "" && out.Err != nil:
				t.Errorf("error %v, want none", out.Err)
			case tt.wantErr != "" && (out.Err == nil || !strings.Contains(out.Err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", out.Err, tt.wantErr)
			}
		})
	}
}

func mach(st Name, action event.Action, queue ...event.Action) Machine {
	m := Machine{State: st, Action: action}
	for _, a := range queue {
		m.Queue.PushBack(a)
	}
	return m
}

// errMach is a machine that put its resource in ERROR at since (with the
// sticky CREATE of CreateInstance).
func errMach(since time.Time, queue ...event.Action) Machine {
	m := mach(CalcAction, C, queue...)
	m.errorAt = since.UnixNano()
	return m
}

func forced(m Machine) Machine { m.Forced = true; return m }

func TestRebuildTakesTheQueuedImage(t *testing.T) {
	m := mach(CalcAction, P, RB)
	m.Image = "custom"
	s := &script{t: t, st: Configured, results: map[string][]InstanceState{"Stop": {Down}, "Boot": {Booting}}}
	env := testEnv(t0)
	for _, want := range []Name{RebuildInstance, CreateInstance, CheckBoot} {
		if out := m.Step(context.Background(), s, env); out.To != want {
			t.Fatalf("%s → %s, want %s", out.From, out.To, want)
		}
	}
	if s.image != "custom" || m.Image != "" {
		t.Fatalf("instance image %q, queued image %q: want custom, none", s.image, m.Image)
	}
}

func TestBackoff(t *testing.T) {
	c := DefaultConfig()
	c.RetryDelay, c.MaxRetryDelay = time.Second, 10*time.Second
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for n, w := range want {
		if got := c.Backoff(n, nil); got != w*time.Second {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, w*time.Second)
		}
		// Equal jitter: half fixed, half random.
		lo := c.Backoff(n, func(int64) int64 { return 0 })
		hi := c.Backoff(n, func(k int64) int64 { return k - 1 })
		if lo != w*time.Second/2 || hi != w*time.Second-1 {
			t.Errorf("Backoff(%d) jittered spans [%s, %s], want [%s, %s)", n, lo, hi, w*time.Second/2, w*time.Second)
		}
	}
	if got := c.Backoff(1000, nil); got != 10*time.Second {
		t.Errorf("Backoff(1000) = %s", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := DefaultConfig()
	c.RebootErrorThreshold, c.BootTimeout, c.MaxRetryDelay = 0, 0, time.Millisecond
	err := c.Validate()
	for _, field := range []string{"reboot_error_threshold", "boot_timeout", "max_retry_delay"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v, want it to name %s", err, field)
		}
	}
}

func TestNames(t *testing.T) {
	for n := CalcAction; n <= Exit; n++ {
		if strings.HasPrefix(n.String(), "Name(") {
			t.Errorf("state %d has no name", n)
		}
	}
	if got := fmt.Sprint(Exit + 1); got != "Name(12)" {
		t.Errorf("unknown state prints %q", got)
	}
	if !CalcAction.UsesQueue() || !PushUpdate.UsesQueue() || Alive.UsesQueue() {
		t.Error("UsesQueue: only CalcAction and PushUpdate use the queue")
	}
}
