package netapi

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/astara-go/astara/internal/event"
)

// flaky fails the first n notifications it is handed, then records.
type flaky struct {
	*recorder
	mu       sync.Mutex
	failures int
	attempts []event.Notification
}

func (f *flaky) Notify(ctx context.Context, n event.Notification) error {
	f.mu.Lock()
	f.attempts = append(f.attempts, n)
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("broker unavailable")
	}
	return f.recorder.Notify(ctx, n)
}

func eventTypes(ns []event.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.EventType
	}
	return out
}

// A notifier that fails is retried with the same notification until it
// takes it; the API answered meanwhile, and the order is kept.
func TestDeliveryRetriesInOrder(t *testing.T) {
	f := &flaky{recorder: newRecorder(), failures: 3}
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{f}, RetryBackoff: time.Millisecond})
	a := admin(t, ts)
	for _, name := range []string{"one", "two", "three"} {
		a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": name}}, "network")
	}
	got := f.waitCount(t, 6)
	want := []string{"network.create.start", "network.create.end", "network.create.start", "network.create.end", "network.create.start", "network.create.end"}
	if !slices.Equal(eventTypes(got), want) {
		t.Fatalf("delivered %v, want %v", eventTypes(got), want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.attempts) != 9 {
		t.Fatalf("%d attempts, want 9 (3 failed)", len(f.attempts))
	}
	for i := 1; i <= 3; i++ {
		if f.attempts[i].UniqueID != f.attempts[0].UniqueID {
			t.Errorf("retry %d is another notification (%s, not %s)", i, f.attempts[i].UniqueID, f.attempts[0].UniqueID)
		}
	}
	if got[0].UniqueID != f.attempts[0].UniqueID {
		t.Errorf("the retried notification was not the one delivered first")
	}
}

// failing always fails, recording what it was handed.
type failing struct {
	mu   sync.Mutex
	seen map[string]event.Notification
	hit  chan struct{}
}

func (f *failing) Notify(_ context.Context, n event.Notification) error {
	f.mu.Lock()
	f.seen[n.MessageID] = n
	f.mu.Unlock()
	select {
	case f.hit <- struct{}{}:
	default:
	}
	return errors.New("no broker")
}

// Notifications of committed changes survive a shutdown with a notifier
// down: the next Open delivers them (the .end ones, stored with the
// change), once.
func TestUndeliveredNotificationsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	down := &failing{seen: map[string]event.Notification{}, hit: make(chan struct{}, 1)}
	s, err := Open(Config{StateDir: dir, Notifiers: []Notifier{down}, Host: "h", RetryBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptestServe(t, s)
	a := admin(t, rec)
	id := str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "kept"}}, "network"), "id")
	a.must(204, "DELETE", "/v2.0/networks/"+id, nil, "")
	<-down.hit
	rec.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Errorf("Shutdown with notifications undelivered returned nil")
	}

	r := newRecorder()
	s2, err := Open(Config{StateDir: dir, Notifiers: []Notifier{r}, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	got := r.waitCount(t, 2)
	if want := []string{"network.create.end", "network.delete.end"}; !slices.Equal(eventTypes(got), want) {
		t.Errorf("replayed %v, want %v", eventTypes(got), want)
	}
	if p := message(t, got[0])["payload"].(map[string]any)["network"].(map[string]any); p["id"] != id {
		t.Errorf("replayed network.create.end is about %v, want %s", p["id"], id)
	}
	if err := s2.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// Delivered: the outbox is empty, nothing is replayed again.
	db, err := bbolt.Open(filepath.Join(dir, DBFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bucketOutbox).Stats().KeyN; n != 0 {
			t.Errorf("%d notifications left in the outbox after delivery", n)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// blocking blocks every Notify until released or its context ends.
type blocking struct{ release chan struct{} }

func (b blocking) Notify(ctx context.Context, _ event.Notification) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A notifier that blocks holds up neither the API nor the other notifiers.
func TestStuckNotifierBlocksNothing(t *testing.T) {
	stuck := blocking{release: make(chan struct{})}
	r := newRecorder()
	s, err := Open(Config{StateDir: t.TempDir(), Notifiers: []Notifier{stuck, r}, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptestServe(t, s)
	a := admin(t, ts)
	for range 3 {
		a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}}, "network")
	}
	r.waitCount(t, 6)
	close(stuck.release)
	ts.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown once released: %v", err)
	}
}

// Without notifiers, nothing is stored for later.
func TestNoNotifierStoresNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{StateDir: dir, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptestServe(t, s)
	admin(t, ts).must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}}, "network")
	ts.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(dir, DBFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bucketOutbox).Stats().KeyN; n != 0 {
			t.Errorf("%d notifications stored without a notifier", n)
		}
		return nil
	})
}
