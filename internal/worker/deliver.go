package worker

import (
	"context"
	"slices"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
)

// deliver hands an event to the machines it targets and returns how many
// took it. It runs on the loop goroutine, in input order.
func (w *Worker) deliver(req request) int {
	ev := req.ev
	r := ev.Resource
	if r.ID == "" {
		return w.deliverToTenant(req)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	switch {
	case event.IsWildcard(r.ID):
		for _, a := range w.wildcardTargets(r) {
			if w.receive(a, req) {
				n++
			}
		}
	default:
		a := w.machines[r.ID]
		if a == nil {
			a = w.create(req)
		}
		if a != nil && w.receive(a, req) {
			n++
		}
	}
	return n
}

// wildcardTargets returns the machines an event for "*" or "error" reaches:
// those of its tenant (all, if the tenant is a wildcard or empty) and of its
// driver (all, if the driver is "*" or empty).
func (w *Worker) wildcardTargets(r event.Resource) []*automaton {
	var from []*automaton
	if r.TenantID == "" || event.IsWildcard(r.TenantID) {
		from = make([]*automaton, 0, len(w.machines))
		for _, a := range w.machines {
			from = append(from, a)
		}
	} else if t := w.tenants[r.TenantID]; t != nil {
		from = t.resources
	}
	targets := make([]*automaton, 0, len(from))
	for _, a := range from {
		if (r.Driver == "" || r.Driver == event.All || r.Driver == a.driver) &&
			(r.ID == event.All || a.shownInst == state.Error) {
			targets = append(targets, a)
		}
	}
	return targets
}

// deliverToTenant delivers an id-less event to every resource of its
// tenant and driver, resolving them through the Resolver when the tenant
// was not resolved within ResolveTTL.
func (w *Worker) deliverToTenant(req request) int {
	r := req.ev.Resource
	cfg := w.cfg.Load()
	if r.TenantID == "" || event.IsWildcard(r.TenantID) || r.Driver == "" || r.Driver == event.All {
		w.log.Warn("event names no resource, no tenant or no driver: dropped", "event", req.ev.String(),
			"tenant", r.TenantID, "driver", r.Driver)
		return 0
	}
	now := time.Now().UnixNano()
	w.mu.Lock()
	fresh := false // resolved within the TTL
	if t := w.tenants[r.TenantID]; t != nil {
		for _, res := range t.resolved {
			if res.driver == r.Driver && now-res.at < int64(cfg.ResolveTTL) {
				fresh = true
			}
		}
	}
	w.mu.Unlock()

	var ids []string
	resolved := false
	if !fresh && w.deps.Resolver != nil {
		ctx, cancel := context.WithTimeout(w.runCtx, cfg.ResolveTimeout)
		var err error
		ids, err = w.deps.Resolver.ResourcesOfTenant(ctx, r.Driver, r.TenantID)
		cancel()
		if err != nil {
			w.log.Error("cannot resolve an id-less event: delivered to the tenant's known resources",
				"event", req.ev.String(), "tenant", r.TenantID, "driver", r.Driver, "err", err)
		}
		resolved = err == nil
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if w.machines[id] == nil {
			one := req
			one.ev.Resource.ID = id
			w.create(one)
		}
	}
	t := w.tenants[r.TenantID]
	if t == nil {
		w.log.Info("id-less event for a tenant without resources: dropped", "event", req.ev.String(), "tenant", r.TenantID)
		return 0
	}
	if resolved {
		t.markResolved(r.Driver, now)
	}
	n := 0
	for _, a := range t.resources {
		if a.driver == r.Driver && w.receive(a, req) {
			n++
		}
	}
	return n
}

func (t *tenant) markResolved(driver string, at int64) {
	for i := range t.resolved {
		if t.resolved[i].driver == driver {
			t.resolved[i].at = at
			return
		}
	}
	t.resolved = append(t.resolved, resolution{driver: driver, at: at})
}

// create makes a machine for the resource an event names, if it may have
// one: a real driver, not recently deleted, and not in debug mode (unless
// the event is a DELETE, kept for when the resource is managed again, or a
// command). It returns nil otherwise.
func (w *Worker) create(req request) *automaton {
	r := req.ev.Resource
	switch {
	case r.Driver == "" || r.Driver == event.All:
		return nil // only existing machines (resource commands)
	case w.deleted.has(r.ID):
		if req.ev.Action == event.Delete {
			w.forgetPending(r.ID) // done already
		}
		w.log.Debug("event for a deleted resource: dropped", "resource", r.ID, "action", req.ev.Action.String())
		return nil
	case r.TenantID == "" || event.IsWildcard(r.TenantID):
		w.log.Warn("event for an unknown resource names no tenant: dropped", "resource", r.ID, "action", req.ev.Action.String())
		return nil
	case !req.cmd && req.ev.Action != event.Delete && w.deps.Debug != nil && w.deps.Debug.InDebug(r.TenantID, r.ID):
		return nil
	}
	t := w.tenants[r.TenantID]
	if t == nil {
		t = &tenant{id: r.TenantID}
		w.tenants[t.id] = t
	}
	driver, ok := w.drivers[r.Driver]
	if !ok {
		driver = r.Driver
		w.drivers[driver] = driver
	}
	a := &automaton{id: r.ID, driver: driver, tenant: t}
	w.machines[a.id] = a
	t.resources = append(t.resources, a)
	w.log.Debug("managing resource", "resource", a.id, "tenant", t.id, "driver", driver)
	return a
}

// forget removes an exited machine from the worker's indexes.
func (w *Worker) forget(a *automaton) {
	delete(w.machines, a.id)
	t := a.tenant
	if i := slices.Index(t.resources, a); i >= 0 {
		last := len(t.resources) - 1
		t.resources[i] = t.resources[last]
		t.resources[last] = nil
		t.resources = t.resources[:last]
	}
	if len(t.resources) == 0 && w.tenants[t.id] == t {
		delete(w.tenants, t.id)
	}
	w.deleted.add(a.id)
	w.log.Info("resource deleted: no longer managed", "resource", a.id, "tenant", t.id)
}

// forgetPending forgets a resource's recorded DELETE, carried out.
func (w *Worker) forgetPending(id string) {
	if w.deps.Journal == nil {
		return
	}
	if err := w.deps.Journal.DeletePending(id); err != nil {
		w.log.Error("cannot forget a carried-out delete: it will be replayed at the next start", "resource", id, "err", err)
	}
}

// receive queues an event's action on a machine, as the original's
// Automaton.send_message, and schedules the machine. It reports whether
// the machine took the event.
func (w *Worker) receive(a *automaton, req request) bool {
	ev := req.ev
	act := ev.Action
	switch {
	case a.has(deleted):
		return false
	case !req.cmd && act != event.Delete && w.inDebug(a):
		w.log.Debug("resource in debug mode: event dropped", "resource", a.id, "action", act.String())
		return false
	case act == event.Poll && a.shownInst == state.Error:
		return false // polls are ignored in ERROR
	case act == event.None || act == event.Command || act == event.Rebalance:
		w.log.Warn("event action is not for a state machine: dropped", "resource", a.id, "action", act.String())
		return false
	}
	if act == event.Rebuild {
		a.m.Image = ""
		if ev.Command != nil {
			a.m.Image = ev.Command.ImageID
		}
	}
	if req.cmd {
		a.m.Forced = true
	}
	a.m.Queue.Add(act)
	a.lastSeen = time.Now().UnixNano()
	if n, limit := a.m.Queue.Len(), w.cfg.Load().QueueWarning; n > limit && !a.has(warned) {
		a.set(warned)
		w.log.Warn("resource queue is long", "resource", a.id, "queue_len", n, "queue_warning_threshold", limit)
	} else if n <= limit {
		a.clear(warned)
	}
	// Wake a sleeping machine if the event may cut its sleep short.
	if a.sleep != state.NoWait && (a.sleep == state.WaitBoot || act == event.Delete || req.cmd) {
		w.wakeUp(a)
		a.m.State = state.CalcAction
	}
	w.schedule(a)
	return true
}

// schedule puts a on the run queue if it has work and is not there, not
// running and not sleeping.
func (w *Worker) schedule(a *automaton) {
	if !a.runnable() {
		return
	}
	a.set(inRunQ)
	w.runq.push(a)
	w.cond.Signal()
}

// recent remembers the last deleted resource ids.
type recent struct {
	ids  []string
	next int
	set  map[string]int // id → how many times it is in ids
}

func newRecent(n int) recent {
	return recent{ids: make([]string, 0, n), set: make(map[string]int, n)}
}

func (r *recent) has(id string) bool { return r.set[id] > 0 }

func (r *recent) add(id string) {
	if cap(r.ids) == 0 {
		return
	}
	if len(r.ids) < cap(r.ids) {
		r.ids = append(r.ids, id)
	} else {
		old := r.ids[r.next]
		if r.set[old]--; r.set[old] <= 0 {
			delete(r.set, old)
		}
		r.ids[r.next] = id
		r.next = (r.next + 1) % len(r.ids)
	}
	r.set[id]++
}

// fifo is the run queue.
type fifo struct {
	items []*automaton
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(a *automaton) { q.items = append(q.items, a) }

func (q *fifo) pop() *automaton {
	a := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		q.items = append([]*automaton(nil), q.items[q.head:]...)
		q.head = 0
	}
	return a
}
