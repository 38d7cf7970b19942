package orchestrator

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
	"github.com/astara-go/astara/internal/testutil/rabbit"
)

// TestAMQPFromConfig consumes Neutron's notification exchange on a real
// RabbitMQ, as the configuration describes it (transport_url, the
// exchange, the topic): a router.create.end published as Neutron does
// brings the router under management.
func TestAMQPFromConfig(t *testing.T) {
	b := rabbit.Start(t)
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{"DEFAULT": "host = amqp-test\ntransport_url = " +
		strings.Replace(b.URL(), "amqp://", "rabbit://", 1)})
	cfg := loadConfig(t, filepath.Join(dir, "orchestrator.ini"))
	src, err := NewAMQPSource(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	world := memory.NewNetwork("mgt-net")
	if err := world.AddRouter(provider.Router{ID: routerN, TenantID: tenantA}); err != nil {
		t.Fatal(err)
	}
	o, err := New(cfg, Deps{Network: world, Compute: memory.NewCompute(nil, world), Source: src,
		Factory: statetest.NewFleet(statetest.Model{Instance: true, Configured: true}), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Stop(context.Background())
	a := newAPI(t, o)
	nstest.WaitFor(t, time.Minute, "the intake consuming", func() bool { return src.Stats().Connects >= 1 })
	// The start-up poll brings the existing router; the notification
	// brings a new one.
	nstest.WaitFor(t, time.Minute, "the start-up poll", func() bool { _, ok := a.resource(routerN); return ok })

	conn, err := amqp.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const other = "dddddddd-0000-0000-0000-00000000000d"
	if err := world.AddRouter(provider.Router{ID: other, TenantID: tenantB}); err != nil {
		t.Fatal(err)
	}
	body := notification(t, "router.create.end", other, tenantB)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "neutron", "notifications.info", false, false,
		amqp.Publishing{ContentType: "application/json", Body: body}); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, time.Minute, "the router of the notification managed", func() bool {
		r, ok := a.resource(other)
		return ok && r.Resource.TenantID == tenantB
	})
	nstest.WaitFor(t, time.Minute, "the notification acknowledged", func() bool { return src.Stats().Acked == 1 })
	if got := a.metric(`astara_intake_messages_total{outcome="acked"}`); got != "1" {
		t.Errorf("acked messages: %q", got)
	}
}
