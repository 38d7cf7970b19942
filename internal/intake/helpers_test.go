package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/event/eventtest"
)

// patience bounds every wait in these tests: generous, for a loaded CI
// machine; the tests poll conditions and never sleep a fixed time.
const patience = 2 * time.Minute

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// recorder is a sink that records events; it can hold them at a gate, or
// refuse them.
type recorder struct {
	mu      sync.Mutex
	events  []event.Event
	gate    chan struct{} // non-nil: Dispatch waits for it to close
	waiting chan struct{} // gets a value each time Dispatch starts waiting
	refuse  int           // fail this many more events
	poison  string        // always fail the events of this resource id
}

func newRecorder() *recorder { return &recorder{waiting: make(chan struct{}, 1000)} }

var errRefused = errors.New("refused by the test")

func (r *recorder) Dispatch(ctx context.Context, ev event.Event) error {
	r.mu.Lock()
	gate := r.gate
	if r.refuse > 0 || (r.poison != "" && ev.Resource.ID == r.poison) {
		if r.refuse > 0 {
			r.refuse--
		}
		r.mu.Unlock()
		return errRefused
	}
	r.mu.Unlock()
	if gate != nil {
		r.waiting <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}

// hold makes Dispatch wait until release.
func (r *recorder) hold() {
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) release() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

func (r *recorder) got() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// run runs src in the background until the test ends; the returned
// function stops it and returns Run's error.
func run(t testing.TB, src Source, sink Sink) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, sink) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(patience):
				err = errors.New("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return stop
}

// expected returns what the intake must make of a fixture.
func expected(t testing.TB, f eventtest.Fixture) event.Result {
	t.Helper()
	n, err := event.Decode(f.Body)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	r, err := event.Normalize(&n)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return r
}

func allFixtures(t testing.TB) []eventtest.Fixture {
	t.Helper()
	all, err := eventtest.All()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func fixture(t testing.TB, name string) eventtest.Fixture {
	t.Helper()
	f, err := eventtest.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// routerUpdate makes a router.update.end notification for router id, as
// Neutron would send it, with its own _unique_id.
func routerUpdate(t testing.TB, id string) []byte {
	t.Helper()
	b, err := event.Encode(event.Notification{
		MessageID: "m-" + id, UniqueID: "u" + id, EventType: "router.update.end", Priority: "INFO",
		PublisherID: "network.test", Timestamp: time.Now(),
		Payload: []byte(fmt.Sprintf(`{"router": {"id": %q, "project_id": "tenant"}}`, id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func routerID(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }
