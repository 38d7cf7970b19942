package intake

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event"
)

func fastRetry() Backoff { return Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond} }

// TestInProcessFixtures sends every captured notification through the
// in-process source and checks the events and the counters.
func TestInProcessFixtures(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t)})
	sink := newRecorder()
	all := allFixtures(t)
	var want []event.Event
	ignored := 0
	for _, f := range all {
		r := expected(t, f)
		want = append(want, r.Events...)
		if len(r.Events) == 0 {
			ignored++
		}
		if err := src.Publish(context.Background(), f.Body); err != nil {
			t.Fatal(err)
		}
	}
	if ignored == 0 || ignored == len(all) {
		t.Fatalf("%d of %d fixtures ignored: the check below would prove little", ignored, len(all))
	}
	run(t, src, sink)
	waitFor(t, "every fixture handled", func() bool { return src.Stats().Acked == uint64(len(all)) })
	if got := sink.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
	want1 := Stats{Received: uint64(len(all)), Acked: uint64(len(all)), Events: uint64(len(want)), Ignored: uint64(ignored)}
	if s := src.Stats(); s != want1 {
		t.Errorf("stats %+v, want %+v", s, want1)
	}
}

func TestInProcessBadInput(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t)})
	sink := newRecorder()
	good := fixture(t, "router.create.end").Body
	for _, body := range [][]byte{
		[]byte(`{"oslo.version": "2.0", "oslo.message": "{\"event_type\": "}`), // malformed
		[]byte(`garbage`),    // malformed
		routerUpdate(t, "*"), // a wildcard router id: unmappable
		[]byte(`{"event_type": "router.change.end", "payload": {}}`), // unmappable: never sent by Neutron
		good,
		good, // the same message again: a duplicate
	} {
		if err := src.Publish(context.Background(), body); err != nil {
			t.Fatal(err)
		}
	}
	run(t, src, sink)
	waitFor(t, "all handled", func() bool { return src.Stats().Acked == 6 })
	want := Stats{Received: 6, Acked: 6, Events: 1, Malformed: 2, Unmappable: 2, Duplicates: 1}
	if s := src.Stats(); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	if got := sink.got(); len(got) != 1 || got[0].Action != event.Create {
		t.Errorf("events %v, want one create", got)
	}
}

// TestInProcessRetry: a message whose events the sink refuses is retried
// until accepted, and counted done only then; nothing after it overtakes it.
func TestInProcessRetry(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t), Retry: fastRetry()})
	sink := newRecorder()
	sink.refuse = 3
	src.Publish(context.Background(), routerUpdate(t, routerID(1)))
	src.Publish(context.Background(), routerUpdate(t, routerID(2)))
	run(t, src, sink)
	waitFor(t, "both handled", func() bool { return src.Stats().Acked == 2 })
	want := Stats{Received: 5, Redelivered: 3, Acked: 2, Nacked: 3, Events: 2, SinkErrors: 3}
	if s := src.Stats(); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	if got := sink.got(); len(got) != 2 || got[0].Resource.ID != routerID(1) || got[1].Resource.ID != routerID(2) {
		t.Errorf("events %v", got)
	}
}

// TestInProcessPartialAcceptance: when the sink takes the first event of a
// message but refuses the second, the message is retried whole: the
// first event comes again (at least once), the message is done only when
// both are taken.
func TestInProcessPartialAcceptance(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t), Retry: fastRetry()})
	var calls int
	var got []event.Event
	sink := SinkFunc(func(_ context.Context, ev event.Event) error {
		calls++
		if calls == 2 {
			return errRefused
		}
		got = append(got, ev)
		return nil
	})
	body := []byte(`{"event_type": "port.create.end", "_unique_id": "u", "payload": {"ports": [
		{"device_owner": "network:router_interface", "device_id": "r1", "project_id": "t"},
		{"device_owner": "network:router_interface", "device_id": "r2", "project_id": "t"}]}}`)
	src.Publish(context.Background(), body)
	stop := run(t, src, sink)
	waitFor(t, "the message done", func() bool { return src.Stats().Acked == 1 })
	stop()
	var ids []string
	for _, e := range got {
		ids = append(ids, e.Resource.ID)
	}
	if !reflect.DeepEqual(ids, []string{"r1", "r1", "r2"}) {
		t.Errorf("events for %v, want r1, r1 again, r2", ids)
	}
	if s := src.Stats(); s.Nacked != 1 || s.Events != 3 {
		t.Errorf("stats %+v", s)
	}
}

// TestInProcessRejected: an event the sink rejects for good is dropped,
// the message's other events still go, and nothing is retried.
func TestInProcessRejected(t *testing.T) {
	errInvalid := errors.New("invalid")
	var got []string
	sink := Rejecting(SinkFunc(func(_ context.Context, ev event.Event) error {
		if ev.Resource.ID == "r1" {
			return fmt.Errorf("dispatch: %w", errInvalid)
		}
		got = append(got, ev.Resource.ID)
		return nil
	}), errInvalid)
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t)})
	src.Publish(context.Background(), []byte(`{"event_type": "port.create.end", "_unique_id": "u", "payload": {"ports": [
		{"device_owner": "network:router_interface", "device_id": "r1", "project_id": "t"},
		{"device_owner": "network:router_interface", "device_id": "r2", "project_id": "t"}]}}`))
	stop := run(t, src, sink)
	waitFor(t, "the message done", func() bool { return src.Stats().Acked == 1 })
	stop()
	want := Stats{Received: 1, Acked: 1, Events: 1, SinkErrors: 1, Rejected: 1}
	if s := src.Stats(); s != want || !reflect.DeepEqual(got, []string{"r2"}) {
		t.Errorf("stats %+v, events for %v; want %+v, r2", s, got, want)
	}
}

// TestInProcessMaxRetries: a message the sink always fails is given up
// after MaxRetries retries, and the next one goes through.
func TestInProcessMaxRetries(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t), Retry: fastRetry(), MaxRetries: 2})
	sink := newRecorder()
	sink.poison = routerID(1)
	src.Publish(context.Background(), routerUpdate(t, routerID(1)))
	src.Publish(context.Background(), routerUpdate(t, routerID(2)))
	run(t, src, sink)
	waitFor(t, "both done", func() bool { return src.Stats().Acked == 2 })
	want := Stats{Received: 4, Redelivered: 2, Acked: 2, Nacked: 2, Events: 1, SinkErrors: 3, Rejected: 1}
	if s := src.Stats(); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	if got := sink.got(); len(got) != 1 || got[0].Resource.ID != routerID(2) {
		t.Errorf("events %v, want router 2's", got)
	}
}

// TestInProcessStopMidMessage: a message in flight when Run stops is
// handled first by the next Run.
func TestInProcessStopMidMessage(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Logger: testLogger(t)})
	sink := newRecorder()
	sink.hold()
	src.Publish(context.Background(), routerUpdate(t, routerID(1)))
	src.Publish(context.Background(), routerUpdate(t, routerID(2)))
	stop := run(t, src, sink)
	<-sink.waiting
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := src.Stats(); s.Acked != 0 || s.Events != 0 {
		t.Fatalf("stats %+v after stopping mid-message", s)
	}
	sink.release()
	run(t, src, sink)
	waitFor(t, "both handled", func() bool { return src.Stats().Acked == 2 })
	if got := sink.got(); len(got) != 2 || got[0].Resource.ID != routerID(1) {
		t.Errorf("events %v: want router 1 first", got)
	}
}

func TestInProcessPublish(t *testing.T) {
	src := NewInProcessSource(InProcessConfig{Capacity: 1})
	n := event.Notification{EventType: "router.create.end", Priority: "INFO", UniqueID: "x",
		Payload: []byte(`{"router": {"id": "r", "project_id": "t"}}`)}
	if err := src.PublishNotification(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if src.Len() != 1 {
		t.Errorf("Len %d", src.Len())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.Publish(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish on a full queue: %v, want it to wait for the context", err)
	}
	sink := newRecorder()
	run(t, src, sink)
	waitFor(t, "the notification handled", func() bool { return src.Stats().Acked == 1 })
	want := event.Event{Resource: event.Resource{Driver: event.DriverRouter, ID: "r", TenantID: "t"}, Action: event.Create, Source: "router.create.end"}
	if got := sink.got(); len(got) != 1 || got[0] != want {
		t.Errorf("events %v", got)
	}
	if err := src.Run(context.Background(), sink); !errors.Is(err, ErrRunning) {
		t.Errorf("a second Run: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		attempt int
		ceiling time.Duration
	}{{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond}, {4, time.Second}, {60, time.Second}} {
		for range 100 {
			if d := b.Delay(tc.attempt); d < tc.ceiling/2 || d > tc.ceiling {
				t.Fatalf("attempt %d: %v, want within [%v, %v]", tc.attempt, d, tc.ceiling/2, tc.ceiling)
			}
		}
	}
}
