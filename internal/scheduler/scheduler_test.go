package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

type env struct {
	s     *Scheduler
	fleet *statetest.Fleet
	db    *store.DB
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newEnv returns a started scheduler of n workers over a fleet of fakes,
// with its store in dir; it is stopped when the test ends.
func newEnv(t *testing.T, dir string, n int, def statetest.Model, tweak func(*Options)) *env {
	t.Helper()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fleet: statetest.NewFleet(def), db: db, logs: &syncBuffer{}}
	cfg := worker.DefaultConfig()
	cfg.Threads = 2
	opts := Options{Workers: n, Worker: cfg, Factory: e.fleet, Store: db, Logger: slog.New(slog.NewTextHandler(e.logs, nil))}
	if tweak != nil {
		tweak(&opts)
	}
	e.s, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.s.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
		db.Close()
	})
	return e
}

func (e *env) fake(t *testing.T, id string) *statetest.Fake {
	t.Helper()
	fk, ok := e.fleet.Fake(id)
	if !ok {
		t.Fatalf("no instance manager for %s", id)
	}
	return fk
}

func (e *env) dispatch(t *testing.T, events ...event.Event) {
	t.Helper()
	for _, ev := range events {
		if err := e.s.Dispatch(context.Background(), ev); err != nil {
			t.Fatalf("Dispatch(%s): %v", ev, err)
		}
	}
}

func (e *env) command(c event.CommandArgs) error { return e.s.Command(context.Background(), c) }

func rtr(id, tenant string) event.Resource {
	return event.Resource{Driver: event.DriverRouter, ID: id, TenantID: tenant}
}

func ev(r event.Resource, a event.Action) event.Event { return event.Event{Resource: r, Action: a} }

func TestShard(t *testing.T) {
	// Pinned: a tenant must not move between releases.
	pinned := map[string]int{"tenant-a": 11, "3f4e2c1a9b8d4e7f8a6b5c4d3e2f1a0b": 8, "admin": 4}
	for tenant, want := range pinned {
		if got := Shard(tenant, 16); got != want {
			t.Errorf("Shard(%q, 16) = %d, want %d", tenant, got, want)
		}
	}
	// UUIDs are normalised as the original did; other strings are kept.
	same := []string{"3f4e2c1a9b8d4e7f8a6b5c4d3e2f1a0b", "3F4E2C1A9B8D4E7F8A6B5C4D3E2F1A0B",
		"3f4e2c1a-9b8d-4e7f-8a6b-5c4d3e2f1a0b", " 3f4e2c1a-9b8d-4e7f-8a6b-5c4d3e2f1a0b "}
	for _, s := range same {
		if got := Shard(s, 16); got != 8 {
			t.Errorf("Shard(%q) = %d, want 8 like its canonical form", s, got)
		}
	}
	for _, s := range []string{"3f4e2c1a9b8d4e7f8a6b5c4d3e2f1a0g", "3f4e2c1a_9b8d-4e7f-8a6b-5c4d3e2f1a0b", "Admin"} {
		if normalizeTenant(s) != s {
			t.Errorf("normalizeTenant(%q) = %q, want it unchanged", s, normalizeTenant(s))
		}
	}
	// Spread: 16000 tenants over 16 workers, none starved or swamped.
	counts := make([]int, 16)
	for i := range 16000 {
		counts[Shard(fmt.Sprintf("project-%d", i), 16)]++
	}
	for i, n := range counts {
		if n < 500 || n > 1500 {
			t.Errorf("worker %d owns %d of 16000 tenants", i, n)
		}
	}
}

// Events go to the worker owning their tenant; wildcards reach every worker.
func TestDispatchShardsByTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 4, statetest.Model{Instance: true, Configured: true}, nil)
		tenants := []string{"t1", "t2", "t3", "t4", "t5", "t6", "not-a-uuid at all"}
		for i, tn := range tenants {
			e.dispatch(t, ev(rtr(fmt.Sprint("r", i), tn), event.Create))
		}
		synctest.Wait()
		all := e.s.Resources()
		if len(all) != len(tenants) {
			t.Fatalf("%d resources managed, want %d", len(all), len(tenants))
		}
		used := map[int]bool{}
		for _, rs := range all {
			if want := Shard(rs.Resource.TenantID, 4); rs.Worker != want {
				t.Errorf("%s of %s on worker %d, want %d", rs.Resource.ID, rs.Resource.TenantID, rs.Worker, want)
			}
			used[rs.Worker] = true
		}
		if len(used) < 2 {
			t.Errorf("all tenants on one worker: %v", used)
		}
		before := map[string]int{}
		for i := range tenants {
			before[fmt.Sprint("r", i)] = e.fake(t, fmt.Sprint("r", i)).Calls("UpdateState")
		}
		e.dispatch(t, ev(event.Resource{Driver: event.All, ID: event.All, TenantID: event.All}, event.Poll))
		synctest.Wait()
		for id, n := range before {
			if e.fake(t, id).Calls("UpdateState") == n {
				t.Errorf("the wildcard POLL did not reach %s", id)
			}
		}
		if st, ok := e.s.Resource("r0"); !ok || st.Resource.TenantID != "t1" {
			t.Errorf("Resource(r0) = %+v, %v", st, ok)
		}
		if ws := e.s.Workers(); len(ws) != 4 || ws[2].ID != 2 || ws[0].Goroutines != 2 {
			t.Errorf("Workers() = %+v", ws)
		}
	})
}

func TestDispatchRefusesInvalidEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 2, statetest.Model{}, nil)
		tests := []struct {
			name  string
			ev    event.Event
			field string
		}{
			{"no action", ev(rtr("r1", "t"), event.None), "action"},
			{"rebalance", ev(rtr("r1", "t"), event.Rebalance), "rebalance"},
			{"id-less without tenant", ev(rtr("", ""), event.Update), "tenant_id"},
			{"id-less with wildcard tenant", ev(rtr("", event.All), event.Update), "tenant_id"},
			{"id-less without driver", ev(event.Resource{TenantID: "t"}, event.Update), "driver"},
			{"delete of everything", ev(rtr(event.All, event.All), event.Delete), "resource.id"},
			{"delete of errors", ev(rtr(event.Errored, "t"), event.Delete), "resource.id"},
			{"delete without id", ev(rtr("", "t"), event.Delete), "resource.id"},
			{"long id", ev(rtr(strings.Repeat("x", 300), "t"), event.Update), "too long"},
			{"command without args", event.Event{Action: event.Command}, "command"},
		}
		for _, tt := range tests {
			err := e.s.Dispatch(context.Background(), tt.ev)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("%s: %v, want ErrInvalid naming %s", tt.name, err, tt.field)
			}
		}
		synctest.Wait()
		if n := len(e.s.Resources()); n != 0 {
			t.Errorf("invalid events created %d resources", n)
		}
		if p, _ := e.db.Pending(); len(p) != 0 {
			t.Errorf("invalid events recorded pending work: %+v", p)
		}
	})
}

// Dispatch blocks while the owner's queue is full and returns the
// context's error; a DELETE that was not accepted is not left recorded.
func TestDispatchBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		cfg := worker.DefaultConfig()
		cfg.QueueSize = 1
		s, err := New(Options{Workers: 1, Worker: cfg, Factory: statetest.NewFleet(statetest.Model{}), Store: db,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		// Not started: the first event fills the queue.
		if err := s.Dispatch(context.Background(), ev(rtr("r1", "t"), event.Poll)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.Dispatch(ctx, ev(rtr("r2", "t"), event.Delete)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dispatch on a full queue: %v", err)
		}
		if p, _ := db.Pending(); len(p) != 0 {
			t.Errorf("a refused DELETE stayed recorded: %+v", p)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err == nil {
			t.Error("a second Start succeeded")
		}
		if err := s.Dispatch(context.Background(), ev(rtr("r2", "t"), event.Poll)); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Dispatch(context.Background(), ev(rtr("r3", "t"), event.Poll)); !errors.Is(err, ErrStopped) {
			t.Errorf("Dispatch after Stop: %v", err)
		}
	})
}

// An accepted DELETE is in the store before Dispatch returns; if the
// orchestrator stops before carrying it out, the next start does.
func TestDeleteSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		gate := make(chan struct{}) // never opened: the stop hangs
		db, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		fleet := statetest.NewFleet(statetest.Model{Instance: true, Configured: true, StopGate: gate})
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		s1, err := New(Options{Workers: 2, Worker: worker.DefaultConfig(), Factory: fleet, Store: db, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := s1.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s1.Dispatch(context.Background(), ev(rtr("r1", "t"), event.Delete)); err != nil {
			t.Fatal(err)
		}
		if p, err := db.Pending(); err != nil || len(p) != 1 || p[0].Resource != rtr("r1", "t") {
			t.Fatalf("accepted DELETE not recorded at once: %+v, %v", p, err)
		}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s1.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		db.Close()

		// The next run replays it: the instance is deleted and the record
		// goes away.
		db, err = store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		fk, _ := fleet.Fake("r1")
		fk.With(func(m *statetest.Model) { m.StopGate = nil })
		s2, err := New(Options{Workers: 3, Worker: worker.DefaultConfig(), Factory: fleet, Store: db, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if m := fk.Model(); m.Instance || m.State != state.Down {
			t.Errorf("after the replay the instance is %s (exists: %v), want deleted", m.State, m.Instance)
		}
		if _, ok := s2.Resource("r1"); ok {
			t.Error("r1 still managed after its replayed DELETE")
		}
		if p, _ := db.Pending(); len(p) != 0 {
			t.Errorf("pending work left after the replay: %+v", p)
		}
		if err := s2.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// A DELETE that names no tenant reaches the worker managing the resource;
// if none does, it leaves nothing recorded.
func TestDeleteWithoutTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 4, statetest.Model{Instance: true, Configured: true}, nil)
		e.dispatch(t, ev(rtr("r1", "t1"), event.Poll))
		synctest.Wait()
		e.dispatch(t, ev(rtr("r1", ""), event.Delete), ev(rtr("unknown", event.All), event.Delete))
		synctest.Wait()
		if _, ok := e.s.Resource("r1"); ok || e.fake(t, "r1").Calls("Stop") != 1 {
			t.Error("r1 not deleted")
		}
		if p, _ := e.db.Pending(); len(p) != 0 {
			t.Errorf("pending left: %+v", p)
		}
	})
}

// Work left at Stop other than DELETEs (a REBUILD queued behind a boot that
// waits to be retried) is replayed once, then forgotten.
func TestPendingWorkReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := newEnv(t, dir, 2, statetest.Model{FailBoots: 100}, nil)
		e.dispatch(t, ev(rtr("r1", "t"), event.Create))
		synctest.Wait()
		rebuild := ev(rtr("r1", "t"), event.Rebuild)
		rebuild.Command = &event.CommandArgs{ImageID: "img-9"}
		e.dispatch(t, rebuild)
		synctest.Wait()
		if err := e.s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		p, err := e.db.Pending()
		if err != nil || len(p) != 1 || !slices.Equal(p[0].Actions, []event.Action{event.Create, event.Rebuild}) || p[0].Image != "img-9" {
			t.Fatalf("pending after Stop: %+v, %v", p, err)
		}
		e.db.Close()

		e2 := newEnv(t, dir, 2, statetest.Model{Instance: true, Configured: true}, nil)
		synctest.Wait()
		if p, _ := e2.db.Pending(); len(p) != 0 {
			t.Errorf("replayed work still recorded: %+v", p)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if imgs := e2.fake(t, "r1").Model().BootImages; !slices.Equal(imgs, []string{"img-9"}) {
			t.Errorf("replayed rebuild booted %q, want the image img-9", imgs)
		}
	})
}
