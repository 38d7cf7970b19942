package amqpnotify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/event/eventtest"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/netapi"
	"github.com/astara-go/astara/internal/testutil/rabbit"
)

// patience bounds the waits on the broker (never a fixed sleep).
const patience = 2 * time.Minute

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Body is the envelope Neutron sends: for every captured notification,
// the body of its decoded form decodes to the same message.
func TestBodyKeepsTheMessage(t *testing.T) {
	all, err := eventtest.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		n, err := event.Decode(f.Body)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		body, err := Body(n)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		var env map[string]any
		if err := json.Unmarshal(body, &env); err != nil || env["oslo.version"] != "2.0" {
			t.Fatalf("%s: envelope %s: %v", f.Name, body, err)
		}
		var got, want map[string]any
		if err := json.Unmarshal([]byte(env["oslo.message"].(string)), &got); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(n.Raw, &want)
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Errorf("%s: message %s, want %s", f.Name, g, w)
		}
	}
	// A notification built field by field gets event.Encode's envelope.
	body, err := Body(event.Notification{EventType: "router.update.end", Priority: "INFO", Payload: json.RawMessage(`{"router": {"id": "r"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := event.Decode(body); err != nil || n.EventType != "router.update.end" {
		t.Errorf("Body of a built notification: %s, %v", body, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewChecksTheURL(t *testing.T) {
	for _, u := range []string{"", "http://x", "amqp://[::1"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}

// sink records the events of the intake.
type sink struct {
	mu     sync.Mutex
	events []event.Event
}

func (s *sink) Dispatch(_ context.Context, ev event.Event) error {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	return nil
}

func (s *sink) has(action event.Action, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.Action == action && e.Resource.ID == id {
			return true
		}
	}
	return false
}

// The embedded API's notifications reach RabbitMQ as Neutron's do
// (exchange, routing key, properties, envelope), and the orchestrator's
// AMQP source turns them into router events; the publisher survives a
// broker restart.
func TestPublishToRabbitMQ(t *testing.T) {
	b := rabbit.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	// A raw consumer of Neutron's exchange, declared as Neutron's.
	conn, err := amqp.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("neutron", "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, "notifications.info", "neutron", false, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The orchestrator's AMQP source.
	src, err := intake.NewAMQPSource(intake.AMQPConfig{URLs: []string{b.URL()}, Host: "amqpnotify-test"})
	if err != nil {
		t.Fatal(err)
	}
	events := &sink{}
	srcDone := make(chan error, 1)
	srcCtx, stopSrc := context.WithCancel(ctx)
	go func() { srcDone <- src.Run(srcCtx, events) }()
	defer func() {
		stopSrc()
		if err := <-srcDone; err != nil {
			t.Errorf("AMQP source: %v", err)
		}
	}()
	waitFor(t, "the AMQP source", func() bool { return src.Stats().Connects >= 1 })

	pub, err := New(Config{URL: b.URL(), Mandatory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s, err := netapi.Open(netapi.Config{StateDir: t.TempDir(), Notifiers: []netapi.Notifier{pub}, Host: "neutron-ci", RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer func() {
		ts.Close()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	post := func(path, body string) map[string]any {
		t.Helper()
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, err)
		}
		for _, v := range out {
			return v.(map[string]any)
		}
		return nil
	}

	router := post("/v2.0/routers", `{"router": {"name": "r"}}`)["id"].(string)
	want := []string{"router.create.start", "router.create.end"}
	for _, et := range want {
		select {
		case d := <-deliveries:
			if d.Exchange != "neutron" || d.RoutingKey != "notifications.info" || d.ContentType != "application/json" ||
				d.ContentEncoding != "utf-8" || d.DeliveryMode != amqp.Persistent {
				t.Errorf("%s delivered with exchange %q, key %q, properties %q %q %d", et, d.Exchange, d.RoutingKey, d.ContentType, d.ContentEncoding, d.DeliveryMode)
			}
			n, err := event.Decode(d.Body)
			if err != nil || n.EventType != et || n.Envelope != "2.0" || n.PublisherID != "network.neutron-ci" {
				t.Errorf("delivered %s: %+v, %v; want %s", d.Body, n, err, et)
			}
		case <-time.After(patience):
			t.Fatalf("no %s delivered", et)
		}
	}
	waitFor(t, "the router's create event", func() bool { return events.has(event.Create, router) })

	// Broker down: the API goes on, the notifications wait; back up: they
	// are delivered (mandatory: retried until the source's queue is bound
	// again to the exchange, which a restart deletes).
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	router2 := post("/v2.0/routers", `{"router": {"name": "r2"}}`)["id"].(string)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event of the router created while the broker was down", func() bool { return events.has(event.Create, router2) })
}

// With Mandatory, a notification no queue takes fails (to be retried);
// without, the broker drops it, as Neutron's.
func TestMandatory(t *testing.T) {
	b := rabbit.Start(t)
	n, err := event.Decode([]byte(`{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"router.update.end\", \"payload\": {}}"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, mandatory := range []bool{true, false} {
		pub, err := New(Config{URL: b.URL(), Exchange: "nobody-listens", Mandatory: mandatory})
		if err != nil {
			t.Fatal(err)
		}
		err = pub.Notify(t.Context(), n)
		if (err != nil) != mandatory {
			t.Errorf("mandatory %v: Notify = %v", mandatory, err)
		}
		// The connection survives a returned message.
		if err := pub.Notify(t.Context(), n); (err != nil) != mandatory {
			t.Errorf("mandatory %v: second Notify = %v", mandatory, err)
		}
		if err := pub.Close(); err != nil {
			t.Error(err)
		}
		if err := pub.Notify(t.Context(), n); err == nil {
			t.Errorf("Notify after Close succeeded")
		}
	}
}
