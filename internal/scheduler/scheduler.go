// Package scheduler is the orchestrator core's front door: it shards events
// by tenant over N workers (package worker), handles operator commands and
// debug modes, and keeps pending DELETEs in the store so that none is lost
// across a shutdown or a crash.
//
// The event intake calls Dispatch and acknowledges a message upstream only
// once Dispatch returned nil; the management API calls Command, Resources,
// Resource, Workers and DebugModes; the process calls New, Start and Stop.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// DefaultWorkers is the default number of workers (the original's
// num_worker_processes).
const DefaultWorkers = 16

// Errors callers can tell apart (with errors.Is).
var (
	// ErrInvalid: the event or command is malformed; nothing changed.
	ErrInvalid = errors.New("invalid")
	// ErrNotManaged: a command names a resource no worker manages.
	ErrNotManaged = errors.New("resource not managed")
	// ErrStopped: the scheduler is stopping; the event was not accepted.
	ErrStopped = worker.ErrStopped
)

// Options configure a Scheduler.
type Options struct {
	// Workers is how many shards the tenants are spread over.
	Workers int
	// Worker configures each worker.
	Worker worker.Config
	// Factory creates the instance manager of each resource; required.
	Factory worker.Factory
	// Resolver resolves id-less events to the tenant's resources; nil
	// delivers them to the resources the workers know.
	Resolver worker.Resolver
	// Store persists debug modes and pending work; required. The caller
	// closes it after Stop.
	Store *store.DB
	// Reload re-reads the configuration for the config-reload command;
	// nil makes the command fail.
	Reload func(ctx context.Context) (worker.Config, error)
	// Logger receives the logs; nil: slog.Default().
	Logger *slog.Logger
}

// Scheduler dispatches events and commands to the workers.
type Scheduler struct {
	workers []*worker.Worker
	store   *store.DB
	debug   *debugModes
	reload  func(ctx context.Context) (worker.Config, error)
	log     *slog.Logger

	mu      sync.Mutex
	started bool
}

// New returns a scheduler, with its workers created but not started. It
// loads the debug modes from the store.
func New(opts Options) (*Scheduler, error) {
	if opts.Workers < 1 {
		return nil, fmt.Errorf("scheduler: num_worker_processes: must be at least 1, got %d", opts.Workers)
	}
	if opts.Store == nil {
		return nil, errors.New("scheduler: no store")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dm, err := opts.Store.DebugModes()
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s := &Scheduler{store: opts.Store, debug: &debugModes{}, reload: opts.Reload, log: log}
	s.debug.set(dm)
	for i := range opts.Workers {
		w, err := worker.New(i, opts.Worker, worker.Deps{
			Factory:  opts.Factory,
			Resolver: opts.Resolver,
			Debug:    s.debug,
			Journal:  opts.Store,
			Logger:   log,
		})
		if err != nil {
			return nil, fmt.Errorf("scheduler: %w", err)
		}
		s.workers = append(s.workers, w)
	}
	return s, nil
}

// Start starts the workers and replays the work pending from the last run
// (DELETEs first recorded by Dispatch, work left by Stop). ctx bounds the
// replay only.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("scheduler: already started")
	}
	s.started = true
	s.mu.Unlock()
	for _, w := range s.workers {
		w.Start()
	}
	pending, err := s.store.Pending()
	if err != nil {
		return fmt.Errorf("scheduler: replay: %w", err)
	}
	for _, p := range pending {
		if err := s.replay(ctx, p); err != nil {
			return fmt.Errorf("scheduler: replay pending work of %s: %w", p.Resource, err)
		}
	}
	if len(pending) > 0 {
		s.log.Info("pending work replayed", "resources", len(pending))
	}
	return nil
}

// replay re-dispatches one pending record. A DELETE stays recorded until
// its machine exits; anything else is forgotten once accepted.
func (s *Scheduler) replay(ctx context.Context, p store.Pending) error {
	if slices.Contains(p.Actions, event.Delete) {
		return s.Dispatch(ctx, event.Event{Resource: p.Resource, Action: event.Delete, Source: "replay"})
	}
	for _, a := range p.Actions {
		ev := event.Event{Resource: p.Resource, Action: a, Source: "replay"}
		if a == event.Rebuild {
			ev.Command = &event.CommandArgs{Name: event.CmdResourceRebuild, ResourceID: p.Resource.ID, ImageID: p.Image}
		}
		if err := s.Dispatch(ctx, ev); err != nil {
			return err
		}
	}
	return s.store.DeletePending(p.Resource.ID)
}

// Dispatch hands an event to the worker owning its tenant (every worker for
// a wildcard tenant or resource), blocking while that worker's queue is
// full. It returns nil once the event is accepted: the intake may then
// acknowledge it. A DELETE is recorded in the store first, and stays
// recorded until carried out, so an accepted DELETE survives a crash. A
// Command event is handed to Command.
func (s *Scheduler) Dispatch(ctx context.Context, ev event.Event) error {
	if ev.Action == event.Command {
		if ev.Command == nil {
			return fmt.Errorf("%w event %s: command: missing", ErrInvalid, ev)
		}
		return s.Command(ctx, *ev.Command)
	}
	if err := validate(ev); err != nil {
		return err
	}
	if ev.Action == event.Delete {
		if err := s.store.PutPending(store.Pending{Resource: ev.Resource, Actions: []event.Action{event.Delete}}); err != nil {
			return fmt.Errorf("dispatch %s: %w", ev, err)
		}
	}
	if ev.Action == event.Delete && (ev.Resource.TenantID == "" || event.IsWildcard(ev.Resource.TenantID)) {
		return s.deleteUnknownTenant(ctx, ev)
	}
	err := s.enqueue(ctx, ev)
	if err != nil && ev.Action == event.Delete {
		s.forgetDelete(ev.Resource.ID, "not accepted")
	}
	return err
}

// deleteUnknownTenant delivers a DELETE that names no tenant to every
// worker. Without a tenant no worker can start managing the resource, so if
// none manages it there is nothing to delete and the record goes.
func (s *Scheduler) deleteUnknownTenant(ctx context.Context, ev event.Event) error {
	n := 0
	for _, w := range s.workers {
		reached, err := w.Deliver(ctx, ev)
		if err != nil {
			if n == 0 {
				s.forgetDelete(ev.Resource.ID, "not accepted")
			}
			return fmt.Errorf("dispatch %s: %w", ev, err)
		}
		n += reached
	}
	if n == 0 {
		s.log.Warn("DELETE of a resource no worker manages, without a tenant: nothing to do", "resource", ev.Resource.ID)
		s.forgetDelete(ev.Resource.ID, "nothing to do")
	}
	return nil
}

// forgetDelete forgets a recorded DELETE that will not be carried out.
func (s *Scheduler) forgetDelete(id, why string) {
	if err := s.store.DeletePending(id); err != nil {
		s.log.Error("cannot forget a DELETE that will not be carried out: it will be replayed at the next start",
			"resource", id, "why", why, "err", err)
	}
}

// validate checks what Dispatch needs of an event.
func validate(ev event.Event) error {
	r := ev.Resource
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w event %s: %s", ErrInvalid, ev, fmt.Sprintf(format, args...))
	}
	switch ev.Action {
	case event.Create, event.Read, event.Update, event.Delete, event.Poll, event.Rebuild, event.ClusterRebuild:
	case event.Rebalance:
		return bad("action: rebalance is handled by the cluster layer")
	default:
		return bad("action: %s is not an action of a state machine", ev.Action)
	}
	switch {
	case len(r.ID) > 255 || len(r.TenantID) > 255 || len(r.Driver) > 64:
		return bad("resource: id, tenant_id or driver too long")
	case r.ID == "" && (r.TenantID == "" || event.IsWildcard(r.TenantID)):
		return bad("resource.tenant_id: an event without a resource id needs a tenant")
	case r.ID == "" && (r.Driver == "" || r.Driver == event.All):
		return bad("resource.driver: an event without a resource id needs a driver")
	case ev.Action == event.Delete && (r.ID == "" || event.IsWildcard(r.ID)):
		return bad("resource.id: a delete names one resource")
	}
	return nil
}

// enqueue hands ev to its worker(s).
func (s *Scheduler) enqueue(ctx context.Context, ev event.Event) error {
	for _, w := range s.targets(ev.Resource) {
		if err := w.Enqueue(ctx, ev); err != nil {
			return fmt.Errorf("dispatch %s: %w", ev, err)
		}
	}
	return nil
}

// targets returns the workers an event for r goes to: the owner of its
// tenant, or every worker when the tenant is a wildcard or unknown.
func (s *Scheduler) targets(r event.Resource) []*worker.Worker {
	if r.TenantID == "" || event.IsWildcard(r.TenantID) {
		return s.workers
	}
	i := Shard(r.TenantID, len(s.workers))
	return s.workers[i : i+1]
}

// Shard returns the worker (0 to n-1) owning a tenant: a stable hash
// (FNV-1a) of the tenant id, in which UUIDs are normalised (case, dashes)
// as the original did. Any tenant string is accepted (the original dropped
// tenants that were not UUIDs).
func Shard(tenantID string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(normalizeTenant(tenantID)))
	return int(h.Sum64() % uint64(n))
}

// normalizeTenant returns a UUID as 32 lower-case hex digits, and any other
// tenant id trimmed of spaces.
func normalizeTenant(id string) string {
	id = strings.TrimSpace(id)
	if len(id) != 32 && len(id) != 36 {
		return id
	}
	var b [32]byte
	n := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case len(id) == 36 && (i == 8 || i == 13 || i == 18 || i == 23):
			if c != '-' {
				return id
			}
			continue
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			c += 'a' - 'A'
		default:
			return id
		}
		b[n] = c
		n++
	}
	return string(b[:n])
}

// Resources describes every managed resource, by id.
func (s *Scheduler) Resources() []worker.ResourceStatus {
	var all []worker.ResourceStatus
	for _, w := range s.workers {
		all = append(all, w.Resources()...)
	}
	slices.SortFunc(all, func(a, b worker.ResourceStatus) int { return strings.Compare(a.Resource.ID, b.Resource.ID) })
	return all
}

// Resource describes one managed resource.
func (s *Scheduler) Resource(id string) (worker.ResourceStatus, bool) {
	for _, w := range s.workers {
		if st, ok := w.Resource(id); ok {
			return st, true
		}
	}
	return worker.ResourceStatus{}, false
}

// Workers reports what each worker is doing.
func (s *Scheduler) Workers() []worker.WorkerStatus {
	all := make([]worker.WorkerStatus, 0, len(s.workers))
	for _, w := range s.workers {
		all = append(all, w.Status())
	}
	return all
}

// DebugModes returns the debug modes in effect.
func (s *Scheduler) DebugModes() store.DebugModes { return s.debug.snapshot() }

// Stop stops every worker (see worker.Worker.Stop): events are refused from
// now on; what was accepted is delivered; runnable work is finished until
// ctx ends; what is left is recorded in the store for the next start.
func (s *Scheduler) Stop(ctx context.Context) error {
	errs := make([]error, len(s.workers))
	var wg sync.WaitGroup
	for i, w := range s.workers {
		wg.Go(func() { errs[i] = w.Stop(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scheduler: stop: %w", err)
	}
	return nil
}

// debugModes is the in-memory view of the store's debug modes, which the
// workers consult for every event.
type debugModes struct {
	mu    sync.RWMutex
	modes store.DebugModes
	// tenants is keyed by normalised tenant id.
	tenants map[string]bool
}

func (d *debugModes) set(m store.DebugModes) {
	tenants := make(map[string]bool, len(m.Tenants))
	for id := range m.Tenants {
		tenants[normalizeTenant(id)] = true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.modes, d.tenants = m, tenants
}

// InDebug implements worker.DebugFilter.
func (d *debugModes) InDebug(tenantID, resourceID string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.modes.Global != nil {
		return true
	}
	if _, ok := d.modes.Resources[resourceID]; ok {
		return true
	}
	return len(d.tenants) > 0 && d.tenants[normalizeTenant(tenantID)]
}

func (d *debugModes) snapshot() store.DebugModes {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m := store.DebugModes{Tenants: make(map[string]store.Debug, len(d.modes.Tenants)), Resources: make(map[string]store.Debug, len(d.modes.Resources))}
	if g := d.modes.Global; g != nil {
		copied := *g
		m.Global = &copied
	}
	for k, v := range d.modes.Tenants {
		m.Tenants[k] = v
	}
	for k, v := range d.modes.Resources {
		m.Resources[k] = v
	}
	return m
}
