package intake

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/astara-go/astara/internal/event"
)

// DefaultCapacity is how many messages an InProcessSource queues by default.
const DefaultCapacity = 1024

// InProcessConfig configures an InProcessSource. Zero fields take defaults.
type InProcessConfig struct {
	// Capacity bounds the queue; Publish blocks while it is full
	// (default DefaultCapacity).
	Capacity int
	// Retry paces the retries of a message the sink failed (default
	// 50 ms doubling to 5 s).
	Retry Backoff
	// MaxRetries is how many times a message is retried before its event
	// is given up (DefaultMaxRetries if zero, no limit if negative).
	MaxRetries int
	// DedupSize is how many message ids are remembered (default
	// event.DefaultDedupSize).
	DedupSize int
	// Normalizer maps notifications (default: the router driver alone).
	Normalizer *event.Normalizer
	// Logger receives the logs (default: none).
	Logger *slog.Logger
}

// InProcessSource is a Source fed from inside the process, by the embedded
// network API of standalone mode or by tests: a bounded queue of message
// bodies or decoded notifications, handled exactly as the AMQP source
// handles deliveries. A message the sink fails is retried in place
// (after a backoff) before the next one; a message in flight when Run
// stops is handled first by the next Run.
type InProcessSource struct {
	queue   chan message
	p       *processor
	running atomic.Bool
	mu      sync.Mutex
	held    *message // in flight when the last Run stopped
}

type message struct {
	body []byte
	n    *event.Notification
}

var _ Source = (*InProcessSource)(nil)

// NewInProcessSource returns an empty source.
func NewInProcessSource(cfg InProcessConfig) *InProcessSource {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	return &InProcessSource{
		queue: make(chan message, cfg.Capacity),
		p:     newProcessor(cfg.Normalizer, cfg.DedupSize, cfg.Logger, cfg.Retry, cfg.MaxRetries),
	}
}

// Publish queues a raw message body, as a broker would deliver it (a copy
// is kept). It blocks while the queue is full, until ctx is done.
func (s *InProcessSource) Publish(ctx context.Context, body []byte) error {
	return s.put(ctx, message{body: bytes.Clone(body)})
}

// PublishNotification queues a decoded notification, sparing the encoding
// and decoding. It blocks while the queue is full, until ctx is done.
func (s *InProcessSource) PublishNotification(ctx context.Context, n event.Notification) error {
	return s.put(ctx, message{n: &n})
}

func (s *InProcessSource) put(ctx context.Context, m message) error {
	select {
	case s.queue <- m:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("intake: publish: %w", ctx.Err())
	}
}

// Len returns how many messages wait in the queue.
func (s *InProcessSource) Len() int { return len(s.queue) }

// Stats implements Source.
func (s *InProcessSource) Stats() Stats { return s.p.c.snapshot() }

// Run implements Source.
func (s *InProcessSource) Run(ctx context.Context, sink Sink) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	for {
		s.mu.Lock()
		m := s.held
		s.held = nil
		s.mu.Unlock()
		if m != nil {
			s.p.c.redelivered.Add(1)
		} else {
			select {
			case <-ctx.Done():
				return nil
			case next := <-s.queue:
				m = &next
			}
		}
		for {
			v, wait := s.p.handle(ctx, sink, m.body, m.n)
			if v == done {
				s.p.c.acked.Add(1)
				break
			}
			if v == retry {
				s.p.c.nacked.Add(1)
				if sleep(ctx, wait) {
					s.p.c.redelivered.Add(1)
					continue
				}
			}
			s.mu.Lock()
			s.held = m
			s.mu.Unlock()
			return nil
		}
	}
}
