// Package health keeps the orchestrator's view of its resources fresh. An
// Inspector POLLs every managed resource each health_check_period, with
// jitter (the original's HealthInspector): a poll re-reads the resource and
// its instance, so a dead appliance is found and replaced. Stale tells
// which resources have missed polls: the worker's ResourceStatus.LastSeen
// stops advancing for a resource in ERROR (which drops polls), in debug
// mode, or stuck behind a full queue, and that is what operators need to
// see.
package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/astara-go/astara/internal/event"
)

// Dispatcher takes events; *scheduler.Scheduler implements it.
type Dispatcher interface {
	Dispatch(ctx context.Context, ev event.Event) error
}

// Source is the Source of the events an Inspector sends.
const Source = "health"

// Jitter is the fraction of the period by which each wait varies, up or
// down, so that orchestrators started together do not poll in step.
const Jitter = 0.1

// Delay returns the wait before the next poll: period ± Jitter·period.
// rnd(n) returns a random number in [0, n); nil means no jitter.
func Delay(period time.Duration, rnd func(int64) int64) time.Duration {
	spread := int64(float64(period) * Jitter)
	if rnd == nil || spread <= 0 {
		return period
	}
	return period - time.Duration(spread) + time.Duration(rnd(2*spread+1))
}

// StaleAfter returns how long a resource may go without an event before it
// is stale: two polls at the longest jittered interval.
func StaleAfter(period time.Duration) time.Duration {
	return 2 * (period + time.Duration(float64(period)*Jitter))
}

// Stale reports whether a resource last seen at lastSeen is stale at now,
// with polls every period.
func Stale(lastSeen, now time.Time, period time.Duration) bool {
	return !lastSeen.IsZero() && now.Sub(lastSeen) > StaleAfter(period)
}

// Stats counts what an Inspector did.
type Stats struct {
	// Polls is how many polls were dispatched; Failures how many the
	// dispatcher refused or did not take within a period.
	Polls, Failures uint64
	// LastPoll is when the last poll was dispatched (zero before).
	LastPoll time.Time
}

// Inspector polls every resource periodically.
type Inspector struct {
	d      Dispatcher
	log    *slog.Logger
	rnd    func(int64) int64
	period atomic.Int64
	reset  chan struct{}

	polls, failures atomic.Uint64
	last            atomic.Int64 // Unix ns
}

// NewInspector returns an inspector polling through d every period; log
// nil discards the logs.
func NewInspector(d Dispatcher, period time.Duration, log *slog.Logger) *Inspector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	i := &Inspector{d: d, log: log, rnd: rand.Int64N, reset: make(chan struct{}, 1)}
	i.period.Store(int64(max(period, time.Millisecond)))
	return i
}

// Period returns the polling period.
func (i *Inspector) Period() time.Duration { return time.Duration(i.period.Load()) }

// SetPeriod changes the polling period (config-reload); the next poll is
// one new period away.
func (i *Inspector) SetPeriod(d time.Duration) {
	p := int64(max(d, time.Millisecond))
	if old := i.period.Swap(p); old == p {
		return
	}
	select {
	case i.reset <- struct{}{}:
	default:
	}
}

// Stats returns the counters so far.
func (i *Inspector) Stats() Stats {
	s := Stats{Polls: i.polls.Load(), Failures: i.failures.Load()}
	if ns := i.last.Load(); ns != 0 {
		s.LastPoll = time.Unix(0, ns)
	}
	return s
}

// Run polls until ctx is done: the first poll one period after the start,
// as the original did (the start-up listing polls every resource already).
func (i *Inspector) Run(ctx context.Context) {
	for {
		t := time.NewTimer(Delay(i.Period(), i.rnd))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-i.reset:
			t.Stop()
			continue
		case <-t.C:
		}
		i.poll(ctx)
	}
}

// poll dispatches one wildcard POLL. It waits at most a period for the
// dispatcher to take it (the workers' queues may be full): the next poll
// would do the same work.
func (i *Inspector) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, i.Period())
	defer cancel()
	ev := event.Event{Resource: event.Resource{Driver: event.All, ID: event.All, TenantID: event.All},
		Action: event.Poll, Source: Source}
	if err := i.d.Dispatch(pctx, ev); err != nil {
		if ctx.Err() != nil {
			return
		}
		i.failures.Add(1)
		i.log.Warn("health poll not dispatched", "err", err)
		return
	}
	i.polls.Add(1)
	i.last.Store(time.Now().UnixNano())
	i.log.Debug("health poll dispatched")
}
