// Package worker runs the orchestrator's state machines: one per managed
// resource, executed by a pool of goroutines.
//
// A Worker is one shard (the scheduler gives it whole tenants). Events come
// in through a bounded queue, in order, and are delivered to the resources'
// machines, whose queues coalesce them (state.Coalesce). A machine with
// work is on the run queue at most once, and a runner goroutine executes it
// one traversal at a time: a resource is never processed by two goroutines
// at once, and goes back to the tail of the run queue when more work
// arrived meanwhile. Machines that wait (a booting instance re-checked
// later, a retry after a backoff, events held during an error cooldown)
// sleep on a timer instead of occupying a goroutine or spinning.
//
// A resource with no machine yet gets one on its first event; the Factory
// creates its instance manager on the first run. Events that name only a
// tenant reach every resource of that tenant (through the Resolver).
// Debug modes (DebugFilter) make the worker leave resources alone; operator
// commands bypass them. Stop finishes what can run, then records what is
// left (Journal) so that nothing accepted, above all no DELETE, is lost.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/store"
)

// ErrStopped is returned by Enqueue and Command once Stop has begun.
var ErrStopped = errors.New("worker stopped")

// request is one item of the input queue.
type request struct {
	ev event.Event
	// cmd marks an operator command: it bypasses debug modes and the
	// error cooldown, and wakes a machine waiting to retry.
	cmd bool
	// reply, if not nil, receives how many resources the event reached.
	reply chan int
}

// busy is what one runner goroutine is doing.
type busy struct {
	id    string
	since int64
}

// Worker is one shard of the orchestrator: its resources' state machines
// and the goroutines that run them.
type Worker struct {
	id      int
	deps    Deps
	log     *slog.Logger
	cfg     atomic.Pointer[Config]
	threads int
	history int

	// Input. inMu orders Enqueue (read-locked while sending) before Stop
	// closes in, so that nothing is sent on a closed channel or lost.
	in         chan request
	queued     atomic.Int64 // accepted and not yet delivered
	inMu       sync.RWMutex
	inClosed   bool
	stopping   chan struct{}
	stopCalled atomic.Bool
	loopDone   chan struct{}

	runCtx    context.Context
	cancelRun context.CancelFunc
	runners   sync.WaitGroup

	mu       sync.Mutex
	cond     *sync.Cond // signalled when the run queue grows or the worker stops
	machines map[string]*automaton
	tenants  map[string]*tenant
	drivers  map[string]string // interned driver names
	deleted  recent
	runq     fifo
	busy     []busy // per runner
	sleeping int
	draining bool // Stop: run what is runnable, then exit; timers no longer wake
	quitting bool // Stop's deadline passed: exit after the current step
	started  bool
}

// Deps are a worker's collaborators.
type Deps struct {
	// Factory creates instance managers; required.
	Factory Factory
	// Resolver resolves id-less events; nil delivers them to the tenant's
	// known resources only.
	Resolver Resolver
	// Debug says which resources are in debug mode; nil: none are.
	Debug DebugFilter
	// Journal records pending work at Stop and forgets it when a machine
	// exits; nil: nothing is recorded.
	Journal Journal
	// Logger receives the worker's logs; nil: slog.Default().
	Logger *slog.Logger
}

// New returns worker number id, not yet started.
func New(id int, cfg Config, deps Deps) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker %d: config: %w", id, err)
	}
	if deps.Factory == nil {
		return nil, fmt.Errorf("worker %d: no instance factory", id)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{
		id:       id,
		deps:     deps,
		log:      log.With("worker", id),
		threads:  cfg.Threads,
		history:  cfg.History,
		in:       make(chan request, cfg.QueueSize),
		stopping: make(chan struct{}),
		loopDone: make(chan struct{}),
		machines: make(map[string]*automaton),
		tenants:  make(map[string]*tenant),
		drivers:  make(map[string]string),
		deleted:  newRecent(cfg.Deleted),
		busy:     make([]busy, cfg.Threads),
	}
	w.cfg.Store(&cfg)
	w.cond = sync.NewCond(&w.mu)
	w.runCtx, w.cancelRun = context.WithCancel(context.Background())
	return w, nil
}

// ID returns the worker's number.
func (w *Worker) ID() int { return w.id }

// Start starts the worker's goroutines: one delivering events and Threads
// running machines. They run until Stop.
func (w *Worker) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	go w.loop()
	for i := range w.threads {
		w.runners.Add(1)
		go w.runner(i)
	}
}

// SetConfig applies a new configuration (config-reload). Threads, QueueSize
// and History keep the values the worker was created with.
func (w *Worker) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("worker %d: config: %w", w.id, err)
	}
	old := w.cfg.Load()
	cfg.Threads, cfg.QueueSize, cfg.History = old.Threads, old.QueueSize, old.History
	w.cfg.Store(&cfg)
	return nil
}

// Config returns the worker's configuration.
func (w *Worker) Config() Config { return *w.cfg.Load() }

// Enqueue queues an event, blocking while the input queue is full; it
// returns nil once the event is accepted (it will be delivered, or recorded
// by Stop). An event for resource "*" reaches every resource of the worker
// (of its tenant, if that is not a wildcard), "error" those in ERROR, and ""
// every resource of its tenant.
func (w *Worker) Enqueue(ctx context.Context, ev event.Event) error {
	return w.send(ctx, request{ev: ev})
}

// Deliver is Enqueue, then waits until the event is delivered and returns
// how many resources took it. A resource it names that has no machine gets
// one only if the event names a real driver (not "*") and a tenant.
func (w *Worker) Deliver(ctx context.Context, ev event.Event) (int, error) {
	return w.deliverWait(ctx, request{ev: ev})
}

// Command is Deliver for an operator command's event (an UPDATE, REBUILD or
// POLL): it bypasses debug modes and error cooldowns, and wakes a machine
// waiting to retry.
func (w *Worker) Command(ctx context.Context, ev event.Event) (int, error) {
	return w.deliverWait(ctx, request{ev: ev, cmd: true})
}

func (w *Worker) deliverWait(ctx context.Context, req request) (int, error) {
	reply := make(chan int, 1)
	req.reply = reply
	if err := w.send(ctx, req); err != nil {
		return 0, err
	}
	select {
	case n := <-reply:
		return n, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("worker %d: %s accepted, not yet delivered: %w", w.id, req.ev, ctx.Err())
	}
}

func (w *Worker) send(ctx context.Context, req request) error {
	w.inMu.RLock()
	defer w.inMu.RUnlock()
	if w.inClosed {
		return ErrStopped
	}
	w.queued.Add(1)
	select {
	case w.in <- req:
		return nil
	case <-w.stopping:
		w.queued.Add(-1)
		return ErrStopped
	case <-ctx.Done():
		w.queued.Add(-1)
		return fmt.Errorf("worker %d: queue full: %w", w.id, ctx.Err())
	}
}

// loop delivers the input queue's events in order.
func (w *Worker) loop() {
	defer close(w.loopDone)
	for req := range w.in {
		n := w.deliver(req)
		w.queued.Add(-1)
		if req.reply != nil {
			req.reply <- n
		}
	}
}

// Stop stops the worker. It refuses new events, delivers those already
// accepted, and lets the runners finish every machine that can run now;
// machines that sleep (booting, retrying, held in ERROR) are not waited
// for. If ctx ends first, the runners' calls are cancelled and they stop
// after their current step. Then the work left in every machine (queued
// actions, and the action of a traversal cut short) is recorded in the
// Journal, to be replayed at the next start. DELETEs were recorded when
// accepted (see the scheduler) and stay recorded until carried out.
func (w *Worker) Stop(ctx context.Context) error {
	if !w.stopCalled.CompareAndSwap(false, true) {
		return nil
	}
	close(w.stopping) // frees senders blocked on a full queue...
	w.inMu.Lock()     // ...so that this waits only for sends under way
	w.inClosed = true
	close(w.in)
	w.inMu.Unlock()

	w.mu.Lock()
	started := w.started
	w.started = true
	w.mu.Unlock()
	if !started { // deliver what was queued before Start
		go w.loop()
	}
	select {
	case <-w.loopDone:
	case <-ctx.Done(): // a resolution may be under way: cut it short
		w.cancelRun()
		<-w.loopDone
	}

	w.mu.Lock()
	w.draining = true
	w.cond.Broadcast()
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.runners.Wait(); close(done) }()
	var cut error
	select {
	case <-done:
	case <-ctx.Done():
		cut = ctx.Err()
		w.mu.Lock()
		w.quitting = true
		w.cond.Broadcast()
		w.mu.Unlock()
		w.cancelRun()
		<-done
	}
	w.cancelRun()

	pending, managed := w.leftovers()
	w.log.Info("worker stopped", "resources", managed, "pending", len(pending), "cut_short", cut != nil)
	if len(pending) > 0 && w.deps.Journal != nil {
		if err := w.deps.Journal.PutPending(pending...); err != nil {
			return fmt.Errorf("worker %d: record %d pending resources: %w", w.id, len(pending), err)
		}
	}
	return nil
}

// leftovers returns the work left in the machines, once the runners are
// gone, and how many resources the worker manages.
func (w *Worker) leftovers() ([]store.Pending, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var pending []store.Pending
	for _, a := range w.machines {
		var actions []event.Action
		image := ""
		switch {
		case a.m.State == state.RebuildInstance: // a rebuild cut short
			actions, image = append(actions, event.Rebuild), a.m.RebuildImage()
		case (a.m.State != state.CalcAction || a.sleep == state.WaitBoot || a.has(woken)) &&
			a.m.Action != event.Poll && a.m.Action != event.None: // a traversal cut short
			actions = append(actions, a.m.Action)
		}
		for _, act := range a.m.Queue.Slice() {
			if act == event.Rebuild {
				image = a.m.Image
			}
			if act != event.Poll && (len(actions) == 0 || actions[len(actions)-1] != act) {
				actions = append(actions, act)
			}
		}
		if len(actions) == 0 {
			continue
		}
		pending = append(pending, store.Pending{Resource: a.resource(), Actions: actions, Image: image})
	}
	return pending, len(w.machines)
}

// WorkerStatus is what a worker is doing.
type WorkerStatus struct {
	ID int `json:"id"`
	// Goroutines is how many goroutines run machines.
	Goroutines int `json:"goroutines"`
	// InputQueue is how many events were accepted and not yet delivered
	// (including senders waiting for room); InputCapacity bounds
	// the queue.
	InputQueue    int `json:"input_queue"`
	InputCapacity int `json:"input_capacity"`
	// RunQueue is how many machines wait for a goroutine.
	RunQueue int `json:"run_queue"`
	// Resources is how many resources the worker manages; Sleeping how
	// many of them wait on a timer.
	Resources int `json:"resources"`
	Sleeping  int `json:"sleeping"`
	// Busy lists the resources being run now.
	Busy     []BusyResource `json:"busy"`
	Stopping bool           `json:"stopping"`
}

// BusyResource is a resource a goroutine is running.
type BusyResource struct {
	Goroutine int       `json:"goroutine"`
	ID        string    `json:"id"`
	Since     time.Time `json:"since"`
}

// Status reports what the worker is doing.
func (w *Worker) Status() WorkerStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := WorkerStatus{
		ID:            w.id,
		Goroutines:    w.threads,
		InputQueue:    int(w.queued.Load()),
		InputCapacity: cap(w.in),
		RunQueue:      w.runq.len(),
		Resources:     len(w.machines),
		Sleeping:      w.sleeping,
		Stopping:      w.draining,
	}
	for i, b := range w.busy {
		if b.id != "" {
			s.Busy = append(s.Busy, BusyResource{Goroutine: i, ID: b.id, Since: time.Unix(0, b.since)})
		}
	}
	return s
}

// Resources describes every resource the worker manages, by id.
func (w *Worker) Resources() []ResourceStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := make([]ResourceStatus, 0, len(w.machines))
	for _, a := range w.machines {
		all = append(all, a.status(w.id, w.inDebug(a)))
	}
	slices.SortFunc(all, func(x, y ResourceStatus) int { return strings.Compare(x.Resource.ID, y.Resource.ID) })
	return all
}

// Resource describes one resource, if the worker manages it.
func (w *Worker) Resource(id string) (ResourceStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.machines[id]
	if !ok {
		return ResourceStatus{}, false
	}
	return a.status(w.id, w.inDebug(a)), true
}

func (w *Worker) inDebug(a *automaton) bool {
	return w.deps.Debug != nil && w.deps.Debug.InDebug(a.tenant.id, a.id)
}
