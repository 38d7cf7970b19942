package intake

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/event/eventtest"
	"github.com/astara-go/astara/internal/testutil/rabbit"
)

// The broker most tests share, started on first use and closed by TestMain;
// the broker-restart test has its own.
var shared struct {
	once   sync.Once
	broker *rabbit.Broker
	err    error
}

func sharedBroker(t *testing.T) *rabbit.Broker {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*rabbit.DefaultStartTimeout)
		defer cancel()
		shared.broker, shared.err = rabbit.Launch(ctx, rabbit.Options{})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.broker
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperConsumer())
	}
	code := m.Run()
	if shared.broker != nil {
		if err := shared.broker.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func uniqueHost(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// neutron publishes the way Neutron's oslo.messaging notifier does: it
// declares the exchange with Neutron's default flags (topic, neither
// durable nor auto-deleted), publishes persistent JSON with the captured
// properties, and waits for the broker's confirms.
type neutron struct {
	t    testing.TB
	url  string
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newNeutron(t testing.TB, url string) *neutron {
	n := &neutron{t: t, url: url}
	n.connect()
	t.Cleanup(func() { n.conn.Close() })
	return n
}

func (n *neutron) connect() {
	n.t.Helper()
	var err error
	if n.conn, err = amqp.Dial(n.url); err != nil {
		n.t.Fatal(err)
	}
	if n.ch, err = n.conn.Channel(); err != nil {
		n.t.Fatal(err)
	}
	if err := n.ch.Confirm(false); err != nil {
		n.t.Fatal(err)
	}
}

func (n *neutron) declare(exchange, kind string, durable, autoDelete bool) {
	n.t.Helper()
	if err := n.ch.ExchangeDeclare(exchange, kind, durable, autoDelete, false, false, nil); err != nil {
		n.t.Fatalf("declare %s: %v", exchange, err)
	}
}

// publish sends one message and waits for its confirm; after a broker
// restart it reconnects first, as oslo.messaging does.
func (n *neutron) publish(exchange, key string, body []byte, props eventtest.Properties) {
	n.t.Helper()
	if n.conn.IsClosed() {
		n.connect()
	}
	if exchange == "neutron" {
		n.declare("neutron", "topic", false, false)
	}
	p := amqp.Publishing{
		ContentType: props.ContentType, ContentEncoding: props.ContentEncoding,
		DeliveryMode: props.DeliveryMode, Priority: props.Priority, Body: body,
	}
	if p.ContentType == "" {
		p.ContentType, p.ContentEncoding, p.DeliveryMode = "application/json", "utf-8", amqp.Persistent
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	dc, err := n.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, p)
	if err != nil {
		n.t.Fatalf("publish: %v", err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		n.t.Fatalf("publish: not confirmed (%v)", err)
	}
}

func (n *neutron) notify(body []byte) {
	n.t.Helper()
	n.publish("neutron", "notifications.info", body, eventtest.Properties{})
}

// queueDepth returns the messages ready in a queue and its consumers.
func queueDepth(t testing.TB, url, queue string) (messages, consumers int) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

func fastReconnect() Backoff { return Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond} }

// TestAMQPFixtures publishes every captured message as Neutron sent it
// (notifications on neutron/notifications.info, the l3_agent casts on
// their fanout exchange) and checks the events the consumer makes of them.
func TestAMQPFixtures(t *testing.T) {
	b := sharedBroker(t)
	host := uniqueHost("fixtures")
	src, err := NewAMQPSource(AMQPConfig{
		URLs: []string{b.URL()}, Host: host, Logger: testLogger(t), Reconnect: fastReconnect(),
		Bindings: []Binding{NotificationBinding(host), L3AgentFanoutBinding(host)},
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecorder()
	run(t, src, sink)
	waitFor(t, "the consumer", func() bool { return src.Stats().Connects == 1 })

	neutron := newNeutron(t, b.URL())
	// oslo.messaging declares the fanout exchange with these flags.
	neutron.declare("l3_agent_fanout", "fanout", false, true)
	var want, wantRPC []event.Event
	ignored := 0
	all := allFixtures(t)
	for _, f := range all {
		r := expected(t, f)
		if len(r.Events) == 0 {
			ignored++
		}
		if f.IsRPC() {
			wantRPC = append(wantRPC, r.Events...)
		} else {
			want = append(want, r.Events...)
		}
		neutron.publish(f.Exchange, f.RoutingKey, f.Body, f.Properties)
	}
	waitFor(t, "every message acked", func() bool { return src.Stats().Acked == uint64(len(all)) })

	// The two queues interleave: compare each stream in order.
	var got, gotRPC []event.Event
	for _, e := range sink.got() {
		if strings.HasPrefix(e.Source, "l3_agent.") {
			gotRPC = append(gotRPC, e)
		} else {
			got = append(got, e)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
	if !reflect.DeepEqual(gotRPC, wantRPC) || len(wantRPC) != 1 || wantRPC[0].Action != event.Delete {
		t.Errorf("RPC events %v, want %v (one delete)", gotRPC, wantRPC)
	}
	wantStats := Stats{Received: uint64(len(all)), Acked: uint64(len(all)), Events: uint64(len(want) + len(wantRPC)),
		Ignored: uint64(ignored), Connects: 1}
	if s := src.Stats(); s != wantStats {
		t.Errorf("stats %+v, want %+v", s, wantStats)
	}
	if m, c := queueDepth(t, b.URL(), "astara.notifications."+host); m != 0 || c != 1 {
		t.Errorf("queue: %d messages, %d consumers; want 0, 1", m, c)
	}
}

// TestAMQPBadMessages: malformed, unmappable and duplicate messages are
// counted and acked; they block nothing.
func TestAMQPBadMessages(t *testing.T) {
	b := sharedBroker(t)
	host := uniqueHost("bad")
	src, err := NewAMQPSource(AMQPConfig{URLs: []string{b.URL()}, Host: host, Logger: testLogger(t), Reconnect: fastReconnect()})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecorder()
	run(t, src, sink)
	waitFor(t, "the consumer", func() bool { return src.Stats().Connects == 1 })
	neutron := newNeutron(t, b.URL())
	good := fixture(t, "router.create.end").Body
	for _, body := range [][]byte{[]byte("\x00\xff not JSON"), []byte(`{"oslo.version": "3.0", "oslo.message": "{}"}`),
		routerUpdate(t, "*"), good, good} {
		neutron.notify(body)
	}
	waitFor(t, "all acked", func() bool { return src.Stats().Acked == 5 })
	want := Stats{Received: 5, Acked: 5, Events: 1, Malformed: 2, Unmappable: 1, Duplicates: 1, Connects: 1}
	if s := src.Stats(); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	if got := sink.got(); len(got) != 1 {
		t.Errorf("events %v, want one", got)
	}
}

// TestAMQPSinkFailures: a message whose event the sink fails is nacked
// back to the queue, redelivered, and acked once the sink takes it; one
// the sink always fails is given up after MaxRetries, and does not hold
// up the messages behind it.
func TestAMQPSinkFailures(t *testing.T) {
	b := sharedBroker(t)
	for _, tc := range []struct {
		name   string
		refuse int
		poison bool
		want   Stats
	}{
		{"transient", 2, false, Stats{Received: 4, Redelivered: 2, Acked: 2, Nacked: 2, Events: 2, SinkErrors: 2, Connects: 1}},
		{"poison", 0, true, Stats{Received: 5, Redelivered: 3, Acked: 2, Nacked: 3, Events: 1, SinkErrors: 4, Rejected: 1, Connects: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := uniqueHost("failures")
			src, err := NewAMQPSource(AMQPConfig{URLs: []string{b.URL()}, Host: host, Logger: testLogger(t),
				Reconnect: fastReconnect(), Retry: fastRetry(), MaxRetries: 3})
			if err != nil {
				t.Fatal(err)
			}
			sink := newRecorder()
			sink.refuse = tc.refuse
			if tc.poison {
				sink.poison = routerID(7)
			}
			run(t, src, sink)
			waitFor(t, "the consumer", func() bool { return src.Stats().Connects == 1 })
			neutron := newNeutron(t, b.URL())
			neutron.notify(routerUpdate(t, routerID(7)))
			neutron.notify(routerUpdate(t, routerID(8)))
			waitFor(t, "both messages acked", func() bool { return src.Stats().Acked == 2 })
			if s := src.Stats(); s != tc.want {
				t.Errorf("stats %+v, want %+v", s, tc.want)
			}
			var ids []string
			for _, e := range sink.got() {
				ids = append(ids, e.Resource.ID)
			}
			// The retries and the second message interleave as timing has it.
			slices.Sort(ids)
			want := []string{routerID(7), routerID(8)}
			if tc.poison {
				want = want[1:]
			}
			if !slices.Equal(ids, want) {
				t.Errorf("events for %v, want %v", ids, want)
			}
			if m, _ := queueDepth(t, b.URL(), "astara.notifications."+host); m != 0 {
				t.Errorf("%d messages left in the queue", m)
			}
		})
	}
}

// TestAMQPExchangeFlags: declaring Neutron's exchange with other flags
// than it has is refused by the broker (406 PRECONDITION_FAILED); Run
// stops with an error that says so instead of retrying forever. With the
// right flags, it consumes.
func TestAMQPExchangeFlags(t *testing.T) {
	b := sharedBroker(t)
	exchange := uniqueHost("neutron-durable")
	newNeutron(t, b.URL()).declare(exchange, "topic", true, false) // Neutron with amqp_durable_queues = true
	for _, tc := range []struct {
		name    string
		durable bool
		passive bool
		fails   bool
	}{{"mismatch", false, false, true}, {"match", true, false, false}, {"passive", false, true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			host := uniqueHost("flags")
			bind := NotificationBinding(host)
			bind.Exchange, bind.ExchangeDurable, bind.ExchangePassive = exchange, tc.durable, tc.passive
			src, err := NewAMQPSource(AMQPConfig{URLs: []string{b.URL()}, Host: host, Bindings: []Binding{bind},
				Logger: testLogger(t), Reconnect: fastReconnect()})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.fails {
				run(t, src, newRecorder())
				waitFor(t, "the consumer", func() bool { return src.Stats().Connects == 1 })
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			err = src.Run(ctx, newRecorder())
			var aerr *amqp.Error
			if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed || !strings.Contains(err.Error(), "must match the publisher's") {
				t.Fatalf("Run: %v, want a PRECONDITION_FAILED error explaining the flags", err)
			}
			if ctx.Err() != nil {
				t.Fatal("Run retried until the deadline instead of stopping")
			}
		})
	}
}

// TestAMQPBrokerRestart restarts the broker in the middle of a stream:
// once while the consumer is idle and stays down long enough for the
// consumer to fail reconnecting a few times; then with messages in flight
// (delivered, not acked) and messages queued, gracefully and by a crash
// (SIGKILL). The consumer reconnects and re-declares by itself; every
// message the broker confirmed ends up as exactly one event.
func TestAMQPBrokerRestart(t *testing.T) {
	b := rabbit.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	host := uniqueHost("restart")
	src, err := NewAMQPSource(AMQPConfig{URLs: []string{b.URL()}, Host: host, Prefetch: 5,
		Logger: testLogger(t), Reconnect: fastReconnect()})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecorder()
	run(t, src, sink)
	waitFor(t, "the consumer", func() bool { return src.Stats().Connects == 1 })
	neutron := newNeutron(t, b.URL())

	const batch = 40
	next := 0
	publishBatch := func() {
		for range batch {
			neutron.notify(routerUpdate(t, routerID(next)))
			next++
		}
	}
	publishBatch()
	waitFor(t, "the first batch", func() bool { return sink.count() == next })
	for i, restart := range []struct {
		name     string
		inFlight bool
		stop     func() error
	}{
		{"idle", false, func() error { return b.Stop(ctx) }},
		{"graceful, messages in flight", true, func() error { return b.Stop(ctx) }},
		{"crash, messages in flight", true, func() error { b.Kill(); return nil }},
	} {
		t.Logf("restart: %s", restart.name)
		if restart.inFlight {
			sink.hold()
			publishBatch()
			<-sink.waiting // the consumer holds a delivery, unacked; the rest are queued
		}
		failures := src.Stats().ConnectErrors
		if err := restart.stop(); err != nil {
			t.Fatal(err)
		}
		if !restart.inFlight {
			waitFor(t, "failed reconnections", func() bool { return src.Stats().ConnectErrors >= failures+2 })
		}
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// A held event is accepted now, but its ack goes nowhere: the
		// broker redelivers the message, and the de-duplication drops it.
		sink.release()
		waitFor(t, "the consumer back", func() bool { return src.Stats().Connects >= uint64(i+2) })
		publishBatch() // Neutron goes on after the restart
		waitFor(t, "every router updated", func() bool { return sink.count() >= next })
	}
	waitFor(t, "the queue drained", func() bool {
		m, _ := queueDepth(t, b.URL(), "astara.notifications."+host)
		s := src.Stats()
		return m == 0 && s.Received == s.Acked+s.AckErrors+s.Nacked
	})
	seen := map[string]int{}
	for _, e := range sink.got() {
		seen[e.Resource.ID]++
	}
	for i := range next {
		if seen[routerID(i)] != 1 {
			t.Errorf("router %d: %d events, want exactly 1", i, seen[routerID(i)])
		}
	}
	s := src.Stats()
	t.Logf("stats %+v", s)
	if s.Connects < 4 || s.Disconnects != s.Connects-1 || s.AckErrors < 2 || s.Duplicates < 2 || s.Events != uint64(next) {
		t.Errorf("stats %+v: want 4 connects or more, one disconnect less, at least 2 lost acks and 2 duplicates, %d events", s, next)
	}
}

// TestAMQPConsumerKilledBeforeAck kills a consumer process (SIGKILL)
// after its sink accepted an event and before the ack: the broker
// redelivers the message to the next consumer, flagged as redelivered.
func TestAMQPConsumerKilledBeforeAck(t *testing.T) {
	b := sharedBroker(t)
	host := uniqueHost("killed")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+b.URL()+" "+host)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	expect := func(prefix string) string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the consumer process ended (%v) before printing %s", lines.Err(), prefix)
		}
		if !strings.HasPrefix(lines.Text(), prefix) {
			t.Fatalf("the consumer process printed %q, want %s", lines.Text(), prefix)
		}
		return lines.Text()
	}
	expect("CONSUMING")
	f := fixture(t, "router.create.end")
	newNeutron(t, b.URL()).publish(f.Exchange, f.RoutingKey, f.Body, f.Properties)
	want := expected(t, f).Events[0]
	if got := expect("ACCEPTED"); got != "ACCEPTED "+want.String() {
		t.Fatalf("the consumer process accepted %q, want %v", got, want)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the consumer process ended with %v, want killed", err)
	}

	src, err := NewAMQPSource(AMQPConfig{URLs: []string{b.URL()}, Host: host, Logger: testLogger(t), Reconnect: fastReconnect()})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecorder()
	run(t, src, sink)
	waitFor(t, "the redelivery", func() bool { return src.Stats().Acked == 1 })
	if got := sink.got(); !slices.Equal(got, []event.Event{want}) {
		t.Errorf("events %v, want %v", got, want)
	}
	if s := src.Stats(); s.Redelivered != 1 || s.Received != 1 {
		t.Errorf("stats %+v: want the one message, flagged redelivered", s)
	}
}

const helperEnv = "ASTARA_INTAKE_TEST_CONSUMER"

// helperConsumer is the consumer process TestAMQPConsumerKilledBeforeAck
// kills: it prints CONSUMING once it consumes, then ACCEPTED <event> for
// the first event, and holds that event's message, unacked, until killed.
func helperConsumer() int {
	url, host, _ := strings.Cut(os.Getenv(helperEnv), " ")
	src, err := NewAMQPSource(AMQPConfig{URLs: []string{url}, Host: host})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	go func() {
		for src.Stats().Connects == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		fmt.Println("CONSUMING")
	}()
	err = src.Run(ctx, SinkFunc(func(ctx context.Context, ev event.Event) error {
		fmt.Println("ACCEPTED " + ev.String())
		<-ctx.Done() // never returns: the ack never goes out
		return ctx.Err()
	}))
	fmt.Fprintln(os.Stderr, "Run returned:", err)
	return 2
}
