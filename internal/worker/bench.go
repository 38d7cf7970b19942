package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
)

// MemoryReport is what MeasureMemory found.
type MemoryReport struct {
	Resources int
	Workers   int
	Threads   int
	// Transitions is how many transitions each resource keeps in its
	// history (full, as in a steady state).
	Transitions int
	// PerResource is the orchestrator's own heap bytes per managed
	// resource: the fake instance managers excluded.
	PerResource float64
	// Fake is the heap bytes of one fake instance manager, measured apart
	// and subtracted from both numbers.
	Fake float64
	// Baseline is the same, for a naive design measured in the same run:
	// a map of structs, each with a mutex, a buffered channel of events,
	// string states and a slice of transitions.
	Baseline float64
	// Elapsed is how long bringing the resources under management took.
	Elapsed time.Duration
}

// TargetBytes is the memory budget per managed resource.
const TargetBytes = 2048

// MeasureMemory brings n resources under management on the given number of
// workers (each resource gets a POLL, boots a trivial fake instance, and is
// configured; then health polls fill every history, as in a steady state)
// and measures the live heap per resource after a garbage collection. It measures the fake instance managers apart
// and subtracts them, so the number is the orchestrator's own, and measures
// a naive baseline the same way.
func MeasureMemory(ctx context.Context, n, workers int) (MemoryReport, error) {
	if n < 1 || workers < 1 {
		return MemoryReport{}, fmt.Errorf("resources and workers must be at least 1, got %d and %d", n, workers)
	}
	cfg := DefaultConfig()
	cfg.QueueSize = 4096
	rep := MemoryReport{Resources: n, Workers: workers, Threads: cfg.Threads}

	fakeCost := measure(func() any {
		fakes := make([]*benchInstance, n)
		base := heap()
		for i := range fakes {
			fakes[i] = &benchInstance{}
		}
		return keep{base, fakes}
	})
	rep.Fake = fakeCost / float64(n)

	ids, tenants := benchIDs(n)
	var ws []*Worker
	base := heap()
	start := time.Now()
	for i := range workers {
		w, err := New(i, cfg, Deps{
			Factory: FactoryFunc(func(context.Context, event.Resource) (state.Instance, error) { return &benchInstance{}, nil }),
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			return rep, err
		}
		w.Start()
		ws = append(ws, w)
	}
	defer func() {
		for _, w := range ws {
			w.Stop(context.WithoutCancel(ctx))
		}
	}()
	for i := range n {
		r := event.Resource{Driver: event.DriverRouter, ID: ids[i], TenantID: tenants[i]}
		if err := ws[i%workers].Enqueue(ctx, event.Event{Resource: r, Action: event.Poll}); err != nil {
			return rep, err
		}
	}
	ids, tenants = nil, nil
	if err := waitIdle(ctx, ws, n); err != nil {
		return rep, err
	}
	// Health polls until every history is full, as in a steady state:
	// each poll of a configured resource is two transitions.
	all := event.Resource{Driver: event.All, ID: event.All, TenantID: event.All}
	for range (cfg.History + 1) / 2 {
		for _, w := range ws {
			if err := w.Enqueue(ctx, event.Event{Resource: all, Action: event.Poll}); err != nil {
				return rep, err
			}
		}
		if err := waitIdle(ctx, ws, n); err != nil {
			return rep, err
		}
	}
	rep.Elapsed = time.Since(start)
	total := float64(heap()) - float64(base)
	rep.PerResource = total/float64(n) - rep.Fake
	for _, rs := range ws[0].Resources()[:1] {
		rep.Transitions = len(rs.Transitions)
	}
	runtime.KeepAlive(ws)
	for _, w := range ws {
		if err := w.Stop(ctx); err != nil {
			return rep, err
		}
	}
	ws = nil

	baseline := measure(func() any { return naive(n, rep.Transitions) })
	rep.Baseline = baseline/float64(n) - rep.Fake
	return rep, nil
}

// Print writes the report with the machine it ran on.
func (r MemoryReport) Print(w io.Writer, machine string) {
	verdict := "met"
	if r.PerResource > TargetBytes {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "orchestrator-memory: %d resources under management (%d workers × %d goroutines), %d transitions each, in %s\n",
		r.Resources, r.Workers, r.Threads, r.Transitions, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "machine: %s\n\n", machine)
	fmt.Fprintf(w, "%-52s %10s\n", "", "bytes/resource")
	fmt.Fprintf(w, "%-52s %10.0f\n", "astara worker (the orchestrator's own)", r.PerResource)
	fmt.Fprintf(w, "%-52s %10.0f\n", "fake instance manager (measured apart, excluded)", r.Fake)
	fmt.Fprintf(w, "%-52s %10.0f\n", "naive baseline (map, mutex + chan per resource)", r.Baseline)
	fmt.Fprintf(w, "%-52s %9.2fx\n", "baseline / astara", r.Baseline/r.PerResource)
	fmt.Fprintf(w, "target <= %d bytes/resource: %s\n", TargetBytes, verdict)
}

// keep holds what a measurement must keep alive.
type keep struct {
	base uint64
	v    any
}

// measure returns the live heap that build's result holds. build may
// return keep{heap() taken after its own setup, value} to exclude the
// setup.
func measure(build func() any) float64 {
	base := heap()
	v := build()
	if k, ok := v.(keep); ok {
		base = k.base
	}
	after := heap()
	runtime.KeepAlive(v)
	return float64(after) - float64(base)
}

// heap returns the live heap after a full collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchIDs returns Neutron-like ids: 36-character resource UUIDs and
// 32-character tenant ids, two resources per tenant, each string allocated
// apart as if decoded from its own notification.
func benchIDs(n int) (ids, tenants []string) {
	ids, tenants = make([]string, n), make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i&0xffff, i&0xfff, (i*7)&0xfff, i*2654435761)
		tenants[i] = fmt.Sprintf("%032x", i/2)
	}
	return ids, tenants
}

// waitIdle waits until the workers manage n resources and have nothing
// queued, running or sleeping.
func waitIdle(ctx context.Context, ws []*Worker, n int) error {
	for {
		total, busy := 0, 0
		for _, w := range ws {
			s := w.Status()
			total += s.Resources
			busy += s.InputQueue + s.RunQueue + len(s.Busy) + s.Sleeping
		}
		if total == n && busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d resources managed, %d still busy: %w", total, n, busy, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// benchInstance is a trivial instance manager: boots at once, answers at
// once, configures at once.
type benchInstance struct {
	st       state.InstanceState
	attempts uint8
}

func (b *benchInstance) State() state.InstanceState { return b.st }
func (b *benchInstance) UpdateState(context.Context) state.InstanceState {
	if b.st == state.Booting {
		b.st = state.Up
	}
	return b.st
}
func (b *benchInstance) Boot(context.Context) error {
	b.attempts++
	b.st = state.Booting
	return nil
}
func (b *benchInstance) Configure(context.Context) state.InstanceState {
	b.st = state.Configured
	return b.st
}
func (b *benchInstance) Replug(context.Context) state.InstanceState { return b.st }
func (b *benchInstance) Stop(context.Context) state.InstanceState {
	b.st = state.Down
	return b.st
}
func (b *benchInstance) SetError(context.Context)   { b.st = state.Error }
func (b *benchInstance) ClearError(context.Context) { b.st, b.attempts = state.Down, 0 }
func (b *benchInstance) BootAttempts() int          { return int(b.attempts) }
func (b *benchInstance) ResetBootCounter()          { b.attempts = 0 }
func (b *benchInstance) BootStarted() time.Time     { return time.Time{} }
func (b *benchInstance) SetImage(string)            {}

// naiveResource is how one might write a managed resource without care
// for memory: a mutex, a mailbox channel, states as strings, an error,
// and a slice of transitions.
type naiveResource struct {
	mu        sync.Mutex
	resource  event.Resource
	inst      state.Instance
	events    chan event.Event
	state     string
	action    string
	instState string
	lastErr   error
	lastSeen  time.Time
	history   []naiveTransition
}

type naiveTransition struct {
	At                   time.Time
	From, To, Action, IS string
}

// naive builds the baseline: n resources with transitions each.
func naive(n, transitions int) any {
	ids, tenants := benchIDs(n)
	m := make(map[string]*naiveResource)
	now := time.Now()
	for i := range n {
		r := &naiveResource{
			resource: event.Resource{Driver: event.DriverRouter, ID: ids[i], TenantID: tenants[i]},
			inst:     &benchInstance{},
			events:   make(chan event.Event, 8),
			state:    state.CalcAction.String(),
			action:   event.Poll.String(),
		}
		for range transitions {
			r.history = append(r.history, naiveTransition{At: now, From: "CalcAction", To: "Alive", Action: "poll", IS: "configured"})
		}
		r.instState = state.Configured.String()
		r.lastSeen = now
		m[r.resource.ID] = r
	}
	return m
}
