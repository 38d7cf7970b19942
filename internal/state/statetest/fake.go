// Package statetest provides a fake instance manager for tests and
// benchmarks of the state machines: a small model of one resource's cloud
// (the resource, its instance, the configuration it runs) with knobs to
// make boots, stops and replugs fail, and counters of what was called.
package statetest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/state"
)

// ErrBoot is the error of a boot the model makes fail.
var ErrBoot = errors.New("statetest: boot failed")

// Model is the fake's view of the cloud. Tests change it with Fake.With.
type Model struct {
	State      state.InstanceState
	Gone       bool      // the resource was deleted upstream
	Instance   bool      // an instance exists
	BootedAt   time.Time // when the instance was booted
	Configured bool      // the instance runs the current configuration
	Attempts   int       // boots since the last good configuration
	Image      string    // the image SetImage set
	BootImages []string  // the image of each boot, in order
	BootTimes  []time.Time

	// Knobs.
	Delay       time.Duration // how long each call to the cloud takes
	BootTime    time.Duration // how long an instance takes to answer
	HangBoot    bool          // instances never answer
	FailBoots   int           // the next FailBoots boots fail
	FailStops   int           // the next FailStops stops leave the instance running
	Mismatched  bool          // the NICs do not match: Configure says Replug
	ReplugFails bool          // Replug cannot fix the NICs: Restart
	ReplugNoop  bool          // Replug reports success but fixes nothing
	// StopGate, when not nil, makes Stop wait until it is closed (or the
	// context ends, leaving the instance running).
	StopGate chan struct{}
}

// Fake is a state.Instance backed by a Model. It is safe for concurrent
// use, and counts calls that overlap (a state machine must never make any).
type Fake struct {
	mu       sync.Mutex
	m        Model
	calls    map[string]int
	active   int
	overlaps int
}

var _ state.Instance = (*Fake)(nil)

// New returns a fake whose model is m.
func New(m Model) *Fake { return &Fake{m: m, calls: make(map[string]int)} }

// With changes the model.
func (f *Fake) With(fn func(m *Model)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.m)
}

// Model returns a copy of the model.
func (f *Fake) Model() Model {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.m
	m.BootImages = append([]string(nil), m.BootImages...)
	m.BootTimes = append([]time.Time(nil), m.BootTimes...)
	return m
}

// Calls returns how many times method was called.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Overlaps returns how many calls started while another was running.
func (f *Fake) Overlaps() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overlaps
}

// enter records a call, and takes the model's Delay for calls to the
// cloud (those with a context); the returned function ends it.
func (f *Fake) enter(ctx context.Context, method string) func() {
	f.mu.Lock()
	f.calls[method]++
	f.active++
	if f.active > 1 {
		f.overlaps++
	}
	if d := f.m.Delay; d > 0 && ctx != nil {
		f.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		f.mu.Lock()
	}
	return func() { f.active--; f.mu.Unlock() }
}

func (f *Fake) answering() bool {
	return f.m.Instance && !f.m.HangBoot && !time.Now().Before(f.m.BootedAt.Add(f.m.BootTime))
}

// State implements state.Instance.
func (f *Fake) State() state.InstanceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.State
}

// UpdateState implements state.Instance.
func (f *Fake) UpdateState(ctx context.Context) state.InstanceState {
	defer f.enter(ctx, "UpdateState")()
	switch {
	case f.m.Gone:
		f.m.State = state.Gone
	case !f.m.Instance:
		f.m.State = state.Down
	case !f.answering():
		f.m.State = state.Booting
	case f.m.Configured:
		f.m.State, f.m.Attempts = state.Configured, 0
	default:
		f.m.State = state.Up
	}
	return f.m.State
}

// Boot implements state.Instance.
func (f *Fake) Boot(ctx context.Context) error {
	defer f.enter(ctx, "Boot")()
	f.m.Attempts++
	f.m.BootImages = append(f.m.BootImages, f.m.Image)
	f.m.BootTimes = append(f.m.BootTimes, time.Now())
	if f.m.FailBoots > 0 {
		f.m.FailBoots--
		f.m.State = state.Down
		return ErrBoot
	}
	f.m.Instance, f.m.Configured, f.m.BootedAt = true, false, time.Now()
	f.m.State = state.Booting
	return nil
}

// Configure implements state.Instance.
func (f *Fake) Configure(ctx context.Context) state.InstanceState {
	defer f.enter(ctx, "Configure")()
	switch {
	case f.m.Gone:
		return state.Gone
	case !f.m.Instance || !f.answering():
		return state.Down
	case f.m.Mismatched:
		f.m.State = state.Replug
	default:
		f.m.Configured, f.m.State = true, state.Configured
	}
	return f.m.State
}

// Replug implements state.Instance.
func (f *Fake) Replug(ctx context.Context) state.InstanceState {
	defer f.enter(ctx, "Replug")()
	switch {
	case f.m.ReplugFails:
		f.m.State = state.Restart
	case f.m.ReplugNoop:
		f.m.State = state.Replug
	default:
		f.m.Mismatched, f.m.State = false, state.Replug
	}
	return f.m.State
}

// Stop implements state.Instance.
func (f *Fake) Stop(ctx context.Context) state.InstanceState {
	end := f.enter(ctx, "Stop")
	if gate := f.m.StopGate; gate != nil {
		f.mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
		}
		f.mu.Lock()
		if ctx.Err() != nil {
			defer end()
			return f.m.State
		}
	}
	defer end()
	if f.m.FailStops > 0 {
		f.m.FailStops--
		return f.m.State
	}
	f.m.Instance, f.m.Configured, f.m.BootedAt = false, false, time.Time{}
	f.m.State = state.Down
	if f.m.Gone {
		f.m.State = state.Gone
	}
	return f.m.State
}

// SetError implements state.Instance.
func (f *Fake) SetError(ctx context.Context) {
	defer f.enter(ctx, "SetError")()
	f.m.State = state.Error
}

// ClearError implements state.Instance.
func (f *Fake) ClearError(ctx context.Context) {
	defer f.enter(ctx, "ClearError")()
	f.m.Attempts, f.m.State = 0, state.Down
}

// BootAttempts implements state.Instance.
func (f *Fake) BootAttempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Attempts
}

// ResetBootCounter implements state.Instance.
func (f *Fake) ResetBootCounter() {
	defer f.enter(nil, "ResetBootCounter")()
	f.m.Attempts = 0
}

// BootStarted implements state.Instance.
func (f *Fake) BootStarted() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m.Instance && !f.answering() {
		return f.m.BootedAt
	}
	return time.Time{}
}

// SetImage implements state.Instance.
func (f *Fake) SetImage(image string) {
	defer f.enter(nil, "SetImage")()
	f.m.Image = image
}
