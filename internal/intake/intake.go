// Package intake turns notifications into events for the scheduler: from
// Neutron's notification exchange on RabbitMQ (AMQPSource), or from inside
// the process (InProcessSource, used by standalone mode and tests).
//
// Delivery is at least once, and every event is a trigger, not a payload
// to trust. A message is acknowledged only after the sink has taken every
// event it maps to (Dispatch returned nil, or rejected the event for good
// with ErrRejected). When the sink fails otherwise, the message is retried
// after a backoff (an AMQP message is nacked back to its queue), up to
// MaxRetries times. A message that cannot be decoded or mapped, or needs
// no event, is counted, logged and acknowledged: it changes nothing and
// never blocks the queue. A message seen again (same _unique_id, e.g. a
// redelivery after a lost ack) is acknowledged without new events.
package intake

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astara-go/astara/internal/event"
)

// Sink takes the events of the intake: the scheduler, whose Dispatch
// method has this signature.
type Sink interface {
	// Dispatch takes one event. It may block to push back, until ctx is
	// done. An error wrapping ErrRejected drops the event for good; any
	// other error means "not now": the message is retried.
	Dispatch(ctx context.Context, ev event.Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ev event.Event) error

// Dispatch calls f.
func (f SinkFunc) Dispatch(ctx context.Context, ev event.Event) error { return f(ctx, ev) }

// ErrRejected marks a sink error that no retry fixes (an event the
// scheduler finds invalid, a command for a resource nobody manages): the
// event is dropped, counted as Rejected, and the message acknowledged.
var ErrRejected = errors.New("rejected")

// Rejecting wraps sink so that its errors matching any of permanent
// (errors.Is) reject the event instead of retrying the message, e.g.
// Rejecting(sched, scheduler.ErrInvalid, scheduler.ErrNotManaged).
func Rejecting(sink Sink, permanent ...error) Sink {
	return SinkFunc(func(ctx context.Context, ev event.Event) error {
		err := sink.Dispatch(ctx, ev)
		for _, p := range permanent {
			if err != nil && errors.Is(err, p) {
				return fmt.Errorf("%w: %w", ErrRejected, err)
			}
		}
		return err
	})
}

// DefaultMaxRetries is how many times a message is retried by default
// before it is given up: with the default backoff (at most 5 s), several
// minutes, enough for the scheduler to come back; not forever, since a
// message that always fails would hold up every message behind it.
const DefaultMaxRetries = 100

// Source delivers events to a sink.
type Source interface {
	// Run delivers events until ctx is done, then returns nil. It returns
	// an error only when it cannot go on (a configuration the broker
	// refuses). One Run at a time.
	Run(ctx context.Context, sink Sink) error
	// Stats returns the counters so far.
	Stats() Stats
}

// ErrRunning is returned by Run when the source is already running.
var ErrRunning = errors.New("intake: source already running")

// Stats counts what a source did. Every received message ends up in
// exactly one of Acked, Nacked, AckErrors, or is still in flight; and in
// at most one of Ignored, Unmappable, Malformed, Duplicates (or it gave
// events).
type Stats struct {
	Received      uint64 // messages received, redeliveries included
	Redelivered   uint64 // of which the broker flagged as redelivered
	Acked         uint64 // acknowledged: done with
	Nacked        uint64 // returned for a retry after the sink failed an event
	AckErrors     uint64 // acks or nacks lost with the connection: the broker redelivers
	Events        uint64 // events the sink accepted
	Ignored       uint64 // decided to need no event (.start, security groups, ...)
	Unmappable    uint64 // well-formed, but no event can be made of them
	Malformed     uint64 // not an oslo.messaging message
	Duplicates    uint64 // already handled (same _unique_id or message_id)
	SinkErrors    uint64 // sink failures (a retry follows unless the event is dropped)
	Rejected      uint64 // events dropped: rejected by the sink, or given up after MaxRetries
	Connects      uint64 // broker sessions that reached consuming
	Disconnects   uint64 // broker sessions lost (not counting shutdown)
	ConnectErrors uint64 // attempts to connect, declare and consume that failed
}

type counters struct {
	received, redelivered, acked, nacked, ackErrors, events atomic.Uint64
	ignored, unmappable, malformed, duplicates, sinkErrors  atomic.Uint64
	rejected                                                atomic.Uint64
	connects, disconnects, connectErrors                    atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Received: c.received.Load(), Redelivered: c.redelivered.Load(), Acked: c.acked.Load(),
		Nacked: c.nacked.Load(), AckErrors: c.ackErrors.Load(), Events: c.events.Load(),
		Ignored: c.ignored.Load(), Unmappable: c.unmappable.Load(), Malformed: c.malformed.Load(),
		Duplicates: c.duplicates.Load(), SinkErrors: c.sinkErrors.Load(), Rejected: c.rejected.Load(),
		Connects: c.connects.Load(), Disconnects: c.disconnects.Load(), ConnectErrors: c.connectErrors.Load(),
	}
}

// Backoff is an exponential backoff with jitter.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before retry number attempt (0 first): Min
// doubled attempt times, at most Max, then a random half of it taken off,
// so that many clients do not retry in step.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// verdict is what to do with a message once handled.
type verdict uint8

const (
	done    verdict = iota // acknowledge it
	retry                  // the sink refused an event: retry it later
	abandon                // ctx is done: leave it unacknowledged
)

// processor is the part every source shares: decode, de-duplicate,
// normalize, hand the events to the sink, count and log.
type processor struct {
	norm       *event.Normalizer
	dedup      *event.Dedup
	log        *slog.Logger
	c          counters
	retry      Backoff
	maxRetries int // < 0: no limit

	mu sync.Mutex
	// attempts counts the failed attempts of the messages being retried,
	// by retryKey; an entry goes when its message is done. retrying is
	// its size, read without the lock on the hot path.
	attempts map[string]int
	retrying atomic.Int64
}

func newProcessor(norm *event.Normalizer, dedupSize int, log *slog.Logger, retry Backoff, maxRetries int) *processor {
	if norm == nil {
		norm = event.NewNormalizer(event.RouterDriver{})
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if retry.Min <= 0 {
		retry.Min = 50 * time.Millisecond
	}
	if retry.Max < retry.Min {
		retry.Max = max(5*time.Second, retry.Min)
	}
	if maxRetries == 0 {
		maxRetries = DefaultMaxRetries
	}
	return &processor{norm: norm, dedup: event.NewDedup(dedupSize), log: log, retry: retry,
		maxRetries: maxRetries, attempts: map[string]int{}}
}

// handle processes one message: a raw body, or an already decoded n. For
// a retry, it also returns how long to wait first.
func (p *processor) handle(ctx context.Context, sink Sink, body []byte, n *event.Notification) (verdict, time.Duration) {
	p.c.received.Add(1)
	if n == nil {
		dec, err := event.Decode(body)
		if err != nil {
			p.c.malformed.Add(1)
			p.log.LogAttrs(ctx, slog.LevelWarn, "dropping a malformed message", slog.Any("error", err), slog.Int("bytes", len(body)))
			return done, 0
		}
		n = &dec
	}
	key := n.DedupKey()
	if p.dedup.Seen(key) {
		p.c.duplicates.Add(1)
		p.debug(ctx, "dropping a message already handled", n)
		return done, 0
	}
	res, err := p.norm.Normalize(n)
	switch {
	case err != nil:
		p.c.unmappable.Add(1)
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.LogAttrs(ctx, slog.LevelDebug, "dropping an unmappable notification", append(attrs(n), slog.Any("error", err))...)
		}
		return done, 0
	case len(res.Events) == 0:
		p.c.ignored.Add(1)
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.LogAttrs(ctx, slog.LevelDebug, "notification needs no event", append(attrs(n), slog.String("reason", res.Reason))...)
		}
		return done, 0
	}
	for _, ev := range res.Events {
		err := sink.Dispatch(ctx, ev)
		switch {
		case err == nil:
			p.c.events.Add(1)
			if p.log.Enabled(ctx, slog.LevelDebug) {
				p.log.LogAttrs(ctx, slog.LevelDebug, "event", append(attrs(n), eventAttrs(ev)...)...)
			}
			continue
		case ctx.Err() != nil:
			return abandon, 0
		}
		p.c.sinkErrors.Add(1)
		if errors.Is(err, ErrRejected) {
			p.c.rejected.Add(1)
			p.log.LogAttrs(ctx, slog.LevelWarn, "the sink rejected an event; dropping it",
				append(append(attrs(n), eventAttrs(ev)...), slog.Any("error", err))...)
			continue
		}
		rk := retryKey(n, key, body)
		attempts := p.failed(rk)
		if p.maxRetries >= 0 && attempts > p.maxRetries {
			p.forget(rk)
			p.c.rejected.Add(1)
			p.log.LogAttrs(ctx, slog.LevelError, "the sink keeps failing an event; giving up on it",
				append(append(attrs(n), eventAttrs(ev)...), slog.Int("attempts", attempts), slog.Any("error", err))...)
			continue
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "the sink failed an event; the message will be retried",
			append(append(attrs(n), eventAttrs(ev)...), slog.Int("attempts", attempts), slog.Any("error", err))...)
		return retry, p.retry.Delay(attempts - 1)
	}
	if p.retrying.Load() > 0 {
		p.forget(retryKey(n, key, body))
	}
	p.dedup.Add(key)
	return done, 0
}

// retryKey identifies a message across retries: its dedup key, else a
// hash of its body.
func retryKey(n *event.Notification, key string, body []byte) string {
	if key != "" {
		return key
	}
	if body == nil {
		body = n.Raw
	}
	h := fnv.New64a()
	h.Write(body)
	h.Write([]byte(n.EventType + "\x00" + n.Method + "\x00"))
	h.Write(n.Payload)
	return fmt.Sprintf("hash:%x", h.Sum64())
}

// failed records a failed attempt of the message rk; it returns how many.
func (p *processor) failed(rk string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.attempts[rk] + 1
	if n == 1 {
		p.retrying.Add(1)
	}
	p.attempts[rk] = n
	return n
}

// forget drops the attempts of a message that is done.
func (p *processor) forget(rk string) {
	p.mu.Lock()
	if _, ok := p.attempts[rk]; ok {
		delete(p.attempts, rk)
		p.retrying.Add(-1)
	}
	p.mu.Unlock()
}

func (p *processor) debug(ctx context.Context, msg string, n *event.Notification) {
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.LogAttrs(ctx, slog.LevelDebug, msg, attrs(n)...)
	}
}

func attrs(n *event.Notification) []slog.Attr {
	a := make([]slog.Attr, 0, 8)
	if n.IsRPC() {
		a = append(a, slog.String("rpc_method", n.Method))
	} else {
		a = append(a, slog.String("event_type", n.EventType))
	}
	if n.MessageID != "" {
		a = append(a, slog.String("message_id", n.MessageID))
	}
	if n.UniqueID != "" {
		a = append(a, slog.String("unique_id", n.UniqueID))
	}
	if n.Context.RequestID != "" {
		a = append(a, slog.String("request_id", n.Context.RequestID))
	}
	return a
}

func eventAttrs(ev event.Event) []slog.Attr {
	return []slog.Attr{
		slog.String("action", ev.Action.String()),
		slog.String("driver", ev.Resource.Driver),
		slog.String("resource_id", ev.Resource.ID),
		slog.String("tenant_id", ev.Resource.TenantID),
	}
}
