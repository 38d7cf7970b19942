package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/store"
)

// fleet is the instance factory of the tests.
type fleet struct{ *statetest.Fleet }

func newFleet(def statetest.Model) *fleet { return &fleet{statetest.NewFleet(def)} }

func (f *fleet) set(id string, m statetest.Model) { f.Set(id, m) }

func (f *fleet) has(id string) bool { _, ok := f.Fake(id); return ok }

// fake returns the resource's fake, failing the test if there is none.
func (f *fleet) fake(t *testing.T, id string) *statetest.Fake {
	t.Helper()
	fk, ok := f.Fake(id)
	if !ok {
		t.Fatalf("no instance manager was created for %s", id)
	}
	return fk
}

// debugSet is a DebugFilter.
type debugSet struct {
	mu        sync.Mutex
	global    bool
	tenants   map[string]bool
	resources map[string]bool
}

func newDebugSet() *debugSet {
	return &debugSet{tenants: map[string]bool{}, resources: map[string]bool{}}
}

func (d *debugSet) InDebug(tenant, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.global || d.tenants[tenant] || d.resources[id]
}

func (d *debugSet) resource(id string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resources[id] = on
}

// journal is an in-memory Journal.
type journal struct {
	mu      sync.Mutex
	pending map[string]store.Pending
	deleted []string
	fail    error
}

func newJournal() *journal { return &journal{pending: map[string]store.Pending{}} }

func (j *journal) PutPending(p ...store.Pending) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	for _, one := range p {
		j.pending[one.Resource.ID] = one
	}
	return nil
}

func (j *journal) DeletePending(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.pending, id)
	j.deleted = append(j.deleted, id)
	return nil
}

func (j *journal) get(id string) (store.Pending, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p, ok := j.pending[id]
	return p, ok
}

// resolver is a Resolver with fixed answers.
type resolver struct {
	mu      sync.Mutex
	tenants map[string][]string
	err     error
	calls   int
}

func (r *resolver) ResourcesOfTenant(_ context.Context, driver, tenantID string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return nil, r.err
	}
	if driver != event.DriverRouter {
		return nil, fmt.Errorf("driver %s", driver)
	}
	return slices.Clone(r.tenants[tenantID]), nil
}

func (r *resolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() Config {
	c := DefaultConfig()
	c.Threads = 2
	return c
}

// start returns a started worker that is stopped when the test ends.
func start(t *testing.T, cfg Config, deps Deps) *Worker {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = quiet()
	}
	w, err := New(0, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return w
}

const tenantA = "tenant-a"

func router(id string) event.Resource {
	return event.Resource{Driver: event.DriverRouter, ID: id, TenantID: tenantA}
}

func ev(r event.Resource, a event.Action) event.Event { return event.Event{Resource: r, Action: a} }

func send(t *testing.T, w *Worker, events ...event.Event) {
	t.Helper()
	for _, e := range events {
		if err := w.Enqueue(context.Background(), e); err != nil {
			t.Fatalf("Enqueue(%s): %v", e, err)
		}
	}
}

// settle lets every goroutine of the bubble finish what it can without
// time passing.
func settle() { synctest.Wait() }

// after lets d pass on the bubble's clock, then settles.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func status(t *testing.T, w *Worker, id string) ResourceStatus {
	t.Helper()
	s, ok := w.Resource(id)
	if !ok {
		t.Fatalf("%s is not managed", id)
	}
	return s
}
