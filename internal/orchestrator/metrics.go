package orchestrator

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/health"
	"github.com/astara-go/astara/internal/instance"
	"github.com/astara-go/astara/internal/intake"
)

// metrics are the orchestrator's own metrics (the management API adds the
// scheduler's).
type metrics struct {
	events    *prometheus.CounterVec
	appliance *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astara_events_total",
			Help: "Events handed to the scheduler, by origin (intake, health, populate), action and result " +
				"(accepted; rejected: invalid or for an unmanaged resource; failed: to be retried).",
		}, []string{"origin", "action", "result"}),
		appliance: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "astara_appliance_request_seconds",
			Help:    "Duration of the calls to appliances, by call (put_config applies a configuration) and result.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"call", "result"}),
	}
}

// countingSink counts the events it passes on.
type countingSink struct {
	next   intake.Sink
	origin string
	m      *metrics
}

// Dispatch implements intake.Sink (and health.Dispatcher).
func (s countingSink) Dispatch(ctx context.Context, ev event.Event) error {
	err := s.next.Dispatch(ctx, ev)
	result := "accepted"
	switch {
	case errors.Is(err, intake.ErrRejected):
		result = "rejected"
	case err != nil:
		result = "failed"
	}
	s.m.events.WithLabelValues(s.origin, ev.Action.String(), result).Inc()
	return err
}

// timedAppliance measures the calls to appliances.
type timedAppliance struct {
	instance.Appliance
	h *prometheus.HistogramVec
}

func (t timedAppliance) observe(call string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	t.h.WithLabelValues(call, result).Observe(time.Since(start).Seconds())
}

func (t timedAppliance) Alive(ctx context.Context, addr netip.Addr) (err error) {
	defer func(start time.Time) { t.observe("alive", start, err) }(time.Now())
	return t.Appliance.Alive(ctx, addr)
}

func (t timedAppliance) Interfaces(ctx context.Context, addr netip.Addr) (ifs []client.Interface, err error) {
	defer func(start time.Time) { t.observe("interfaces", start, err) }(time.Now())
	return t.Appliance.Interfaces(ctx, addr)
}

func (t timedAppliance) PutConfig(ctx context.Context, addr netip.Addr, doc *model.Document) (d *model.Document, err error) {
	defer func(start time.Time) { t.observe("put_config", start, err) }(time.Now())
	return t.Appliance.PutConfig(ctx, addr, doc)
}

func (t timedAppliance) GetConfig(ctx context.Context, addr netip.Addr) (d *model.Document, err error) {
	defer func(start time.Time) { t.observe("get_config", start, err) }(time.Now())
	return t.Appliance.GetConfig(ctx, addr)
}

func (t timedAppliance) Info(ctx context.Context, addr netip.Addr) (i *client.Info, err error) {
	defer func(start time.Time) { t.observe("info", start, err) }(time.Now())
	return t.Appliance.Info(ctx, addr)
}

// intakeCollector exposes the intake's counters.
type intakeCollector struct {
	src      intake.Source
	messages *prometheus.Desc
	sessions *prometheus.Desc
}

func newIntakeCollector(src intake.Source) *intakeCollector {
	return &intakeCollector{
		src: src,
		messages: prometheus.NewDesc("astara_intake_messages_total",
			"Notifications received by the intake, by outcome (received counts each delivery; events counts the events accepted).",
			[]string{"outcome"}, nil),
		sessions: prometheus.NewDesc("astara_intake_broker_sessions_total",
			"Broker sessions: connects, disconnects and failed connection attempts.", []string{"event"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *intakeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.messages; ch <- c.sessions }

// Collect implements prometheus.Collector.
func (c *intakeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	for outcome, v := range map[string]uint64{
		"received": s.Received, "redelivered": s.Redelivered, "acked": s.Acked, "nacked": s.Nacked,
		"ack_errors": s.AckErrors, "events": s.Events, "ignored": s.Ignored, "unmappable": s.Unmappable,
		"malformed": s.Malformed, "duplicates": s.Duplicates, "sink_errors": s.SinkErrors, "rejected": s.Rejected,
	} {
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(v), outcome)
	}
	for ev, v := range map[string]uint64{"connect": s.Connects, "disconnect": s.Disconnects, "error": s.ConnectErrors} {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.CounterValue, float64(v), ev)
	}
}

// healthCollector exposes the health inspector's counters.
type healthCollector struct {
	i                   *health.Inspector
	polls, last, period *prometheus.Desc
}

func newHealthCollector(i *health.Inspector) *healthCollector {
	return &healthCollector{
		i:      i,
		polls:  prometheus.NewDesc("astara_health_polls_total", "Health polls of every resource, by result.", []string{"result"}, nil),
		last:   prometheus.NewDesc("astara_health_last_poll_timestamp_seconds", "When the last health poll was dispatched.", nil, nil),
		period: prometheus.NewDesc("astara_health_check_period_seconds", "The health check period.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.polls
	ch <- c.last
	ch <- c.period
}

// Collect implements prometheus.Collector.
func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.i.Stats()
	ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(s.Polls), "ok")
	ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(s.Failures), "failed")
	last := 0.0
	if !s.LastPoll.IsZero() {
		last = float64(s.LastPoll.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(c.period, prometheus.GaugeValue, c.i.Period().Seconds())
}
