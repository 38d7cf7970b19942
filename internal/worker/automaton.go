package worker

import (
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
)

// Flags of an automaton.
const (
	inRunQ  uint8 = 1 << iota // on the run queue (at most once)
	running                   // a runner is executing it (single flight)
	deleted                   // it exited: it takes no more events
	woken                     // its timer fired: run it even with an empty queue
	warned                    // its queue length was logged
)

// automaton is one resource under management: its state machine, its
// instance manager and what the worker needs to schedule and show it. It
// is deliberately small (no goroutine, channel or timer of its own; the
// queue is inline; history is allocated on the first transition), because
// an orchestrator manages many of them. The worker's mutex guards it,
// except that while the running flag is set the runner owns m (but for the
// fields state.Machine documents as shared) and inst.
type automaton struct {
	id     string
	driver string  // interned
	tenant *tenant // shared by the tenant's resources
	inst   state.Instance
	m      state.Machine

	// shown is the machine as of its last step, for status while it runs.
	shownState  state.Name
	shownAction event.Action
	shownInst   state.InstanceState

	flags    uint8
	sleep    state.Wait // why it sleeps (NoWait: it does not)
	fails    uint8      // consecutive failures to create its instance manager
	wakeAt   int64      // when its sleep ends (Unix ns)
	lastSeen int64      // when it last received an event (Unix ns)
	ext      *extra
}

// extra is what only resources that did something need.
type extra struct {
	hist      []record // ring of the last transitions
	next      int      // where the next record goes once hist is full
	lastErr   string
	lastErrAt int64
}

// record is one step, compactly.
type record struct {
	at       int64
	from, to state.Name
	action   event.Action
	inst     state.InstanceState
	wait     state.Wait
}

// tenant is the worker's index of one tenant's resources.
type tenant struct {
	id        string
	resources []*automaton
	// resolved says when id-less events of a driver were last resolved
	// through the Resolver.
	resolved []resolution
}

type resolution struct {
	driver string
	at     int64
}

func (a *automaton) has(f uint8) bool { return a.flags&f != 0 }
func (a *automaton) set(f uint8)      { a.flags |= f }
func (a *automaton) clear(f uint8)    { a.flags &^= f }

func (a *automaton) resource() event.Resource {
	return event.Resource{Driver: a.driver, ID: a.id, TenantID: a.tenant.id}
}

// runnable reports whether the automaton should be on the run queue.
func (a *automaton) runnable() bool {
	return a.flags&(inRunQ|running|deleted) == 0 && a.sleep == state.NoWait && (a.m.Queue.Len() > 0 || a.has(woken))
}

// remember records a step in the history ring.
func (a *automaton) remember(r record, size int) {
	if size == 0 {
		return
	}
	if a.ext == nil {
		a.ext = &extra{}
	}
	e := a.ext
	if len(e.hist) < size {
		if len(e.hist) == cap(e.hist) { // grow by doubling, up to size
			grown := make([]record, len(e.hist), min(size, max(2, 2*cap(e.hist))))
			copy(grown, e.hist)
			e.hist = grown
		}
		e.hist = append(e.hist, r)
		return
	}
	e.hist[e.next] = r
	e.next = (e.next + 1) % len(e.hist)
}

func (a *automaton) fail(msg string, at int64) {
	if a.ext == nil {
		a.ext = &extra{}
	}
	a.ext.lastErr, a.ext.lastErrAt = msg, at
}

// Transition is one step of a resource's state machine.
type Transition struct {
	At       time.Time           `json:"at"`
	From     state.Name          `json:"from"`
	To       state.Name          `json:"to"`
	Action   event.Action        `json:"action"`
	Instance state.InstanceState `json:"instance_state"`
	// Wait is set when the machine then slept (boot, retry or hold).
	Wait state.Wait `json:"wait,omitempty"`
}

// ResourceStatus is what the orchestrator knows of one managed resource.
type ResourceStatus struct {
	Resource event.Resource `json:"resource"`
	// Worker is the shard managing the resource.
	Worker int `json:"worker"`
	// State is the state machine's state; Action the action it performs.
	State  state.Name   `json:"state"`
	Action event.Action `json:"action"`
	// Instance is the instance manager's last known state.
	Instance state.InstanceState `json:"instance_state"`
	// Queue holds the actions received and not yet coalesced.
	Queue    []event.Action `json:"queue"`
	QueueLen int            `json:"queue_len"`
	// Running is set while a worker goroutine executes the machine.
	Running bool `json:"running"`
	// Debug is set when a debug mode covers the resource: the orchestrator
	// leaves it alone (DELETEs are kept for when it is managed again).
	Debug bool `json:"debug"`
	// Sleep says why the machine waits (boot, retry or hold) until WakeAt.
	Sleep  state.Wait `json:"sleep,omitempty"`
	WakeAt time.Time  `json:"wake_at,omitzero"`
	// ErrorSince is when the resource entered ERROR, if it is in ERROR.
	ErrorSince  time.Time `json:"error_since,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastSeen is when the resource last received an event.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Transitions are the last steps, oldest first.
	Transitions []Transition `json:"transitions"`
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// status describes a (with the worker's lock held).
func (a *automaton) status(worker int, debug bool) ResourceStatus {
	s := ResourceStatus{
		Resource: a.resource(),
		Worker:   worker,
		State:    a.shownState,
		Action:   a.shownAction,
		Instance: a.shownInst,
		Queue:    a.m.Queue.Slice(),
		QueueLen: a.m.Queue.Len(),
		Running:  a.has(running),
		Debug:    debug,
		Sleep:    a.sleep,
		WakeAt:   unixTime(a.wakeAt),
		LastSeen: unixTime(a.lastSeen),
	}
	if !s.Running {
		s.ErrorSince = a.m.ErrorSince()
	}
	if e := a.ext; e != nil {
		s.LastError, s.LastErrorAt = e.lastErr, unixTime(e.lastErrAt)
		s.Transitions = make([]Transition, 0, len(e.hist))
		for i := range e.hist {
			r := e.hist[(e.next+i)%len(e.hist)]
			s.Transitions = append(s.Transitions, Transition{
				At: time.Unix(0, r.at), From: r.from, To: r.to, Action: r.action, Instance: r.inst, Wait: r.wait,
			})
		}
	}
	return s
}
