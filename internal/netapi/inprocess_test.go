package netapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/intake"
)

// events is an intake sink that records events.
type events struct {
	mu  sync.Mutex
	got []event.Event
}

func (e *events) Dispatch(_ context.Context, ev event.Event) error {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
	return nil
}

func (e *events) has(a event.Action, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.got {
		if ev.Action == a && ev.Resource.ID == id {
			return true
		}
	}
	return false
}

// Standalone mode's wiring: the API notifies the orchestrator's in-process
// event source, which turns the notifications into router events.
func TestInProcessSource(t *testing.T) {
	src := intake.NewInProcessSource(intake.InProcessConfig{})
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{NotifierFunc(src.PublishNotification)}})
	sink := &events{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	a := admin(t, ts)
	router := str(a.must(201, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r"}}, "router"), "id")
	a.must(200, "PUT", "/v2.0/routers/"+router, map[string]any{"router": map[string]any{"name": "s"}}, "router")
	a.must(204, "DELETE", "/v2.0/routers/"+router, nil, "")
	deadline := time.Now().Add(30 * time.Second)
	for _, want := range []event.Action{event.Create, event.Update, event.Delete} {
		for !sink.has(want, router) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s event of router %s: %v (intake %+v)", want, router, sink.got, src.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
}
