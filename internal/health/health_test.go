package health

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// recorder is a Dispatcher recording when it was called.
type recorder struct {
	mu     sync.Mutex
	at     []time.Time
	events []event.Event
	err    error
	block  bool // wait for ctx instead of taking the event
}

func (r *recorder) Dispatch(ctx context.Context, ev event.Event) error {
	r.mu.Lock()
	r.at = append(r.at, time.Now())
	r.events = append(r.events, ev)
	block, err := r.block, r.err
	r.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (r *recorder) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

func TestDelay(t *testing.T) {
	p := 60 * time.Second
	if d := Delay(p, nil); d != p {
		t.Errorf("no jitter: %s", d)
	}
	if d := Delay(p, func(n int64) int64 { return 0 }); d != 54*time.Second {
		t.Errorf("lowest: %s", d)
	}
	if d := Delay(p, func(n int64) int64 { return n - 1 }); d != 66*time.Second {
		t.Errorf("highest: %s", d)
	}
	if StaleAfter(p) != 132*time.Second {
		t.Errorf("StaleAfter(60s) = %s", StaleAfter(p))
	}
	now := time.Now()
	for _, tc := range []struct {
		seen  time.Time
		stale bool
	}{{time.Time{}, false}, {now.Add(-time.Minute), false}, {now.Add(-132 * time.Second), false}, {now.Add(-133 * time.Second), true}} {
		if got := Stale(tc.seen, now, p); got != tc.stale {
			t.Errorf("Stale(seen %s ago) = %v", now.Sub(tc.seen), got)
		}
	}
}

// start runs an inspector until the test ends.
func start(t *testing.T, i *Inspector) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { i.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestInspectorPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		p := 10 * time.Second
		i := NewInspector(r, p, nil)
		t0 := time.Now()
		start(t, i)

		time.Sleep(p - p/10 - time.Millisecond)
		synctest.Wait()
		if n := len(r.times()); n != 0 {
			t.Fatalf("%d polls before 0.9 periods", n)
		}
		time.Sleep(10*p + time.Second)
		synctest.Wait()
		at := r.times()
		if len(at) < 9 || len(at) > 12 {
			t.Fatalf("%d polls in 11 periods", len(at))
		}
		prev := t0
		for _, a := range at {
			if d := a.Sub(prev); d < p-p/10 || d > p+p/10 {
				t.Errorf("poll %s after the previous one, want %s ± 10%%", d, p)
			}
			prev = a
		}
		for _, ev := range r.events {
			if ev.Action != event.Poll || ev.Resource != (event.Resource{Driver: "*", ID: "*", TenantID: "*"}) || ev.Source != Source {
				t.Errorf("event %+v, want a wildcard POLL", ev)
			}
		}
		if s := i.Stats(); s.Polls != uint64(len(at)) || s.Failures != 0 || !s.LastPoll.Equal(at[len(at)-1]) {
			t.Errorf("stats %+v, polls at %v", s, at)
		}
	})
}

func TestInspectorSetPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		i := NewInspector(r, time.Hour, nil)
		start(t, i)
		time.Sleep(time.Minute)
		i.SetPeriod(time.Second)
		if i.Period() != time.Second {
			t.Errorf("period %s", i.Period())
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := len(r.times()); n < 4 || n > 6 {
			t.Errorf("%d polls in 5 s with a period of 1 s", n)
		}
	})
}

func TestInspectorFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{err: errors.New("queue refused")}
		i := NewInspector(r, time.Second, slog.New(slog.DiscardHandler))
		start(t, i)
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if s := i.Stats(); s.Failures < 2 || s.Polls != 0 || !s.LastPoll.IsZero() {
			t.Errorf("stats %+v after failing polls", s)
		}
		// A dispatcher that does not take the poll is given up on after a
		// period, and the inspector goes on.
		r.mu.Lock()
		r.err, r.block = nil, true
		r.mu.Unlock()
		before := len(r.times())
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(r.times()) - before; n < 4 {
			t.Errorf("%d polls in 10 s while the dispatcher blocks: the inspector is stuck", n)
		}
	})
}

func TestInspectorStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{block: true}
		i := NewInspector(r, time.Second, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { i.Run(ctx); close(done) }()
		time.Sleep(1500 * time.Millisecond) // a poll in progress, blocked
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return when its context ended")
		}
		if s := i.Stats(); s.Failures != 0 {
			t.Errorf("a poll cut by the shutdown counted as a failure: %+v", s)
		}
	})
}

// TestStaleResources polls a real scheduler: healthy resources are seen at
// every poll; one in ERROR drops the polls and becomes stale.
func TestStaleResources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		fleet := statetest.NewFleet(statetest.Model{Instance: true, Configured: true})
		fleet.Set("broken", statetest.Model{FailBoots: 1 << 20})
		cfg := worker.DefaultConfig()
		cfg.State.RebootErrorThreshold = 2
		cfg.State.ErrorStateCooldown = time.Hour
		s, err := scheduler.New(scheduler.Options{Workers: 2, Worker: cfg, Factory: fleet, Store: db, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer s.Stop(ctx)
		for _, r := range []event.Resource{{Driver: "router", ID: "ok", TenantID: "t1"}, {Driver: "router", ID: "broken", TenantID: "t2"}} {
			if err := s.Dispatch(ctx, event.Event{Resource: r, Action: event.Create}); err != nil {
				t.Fatal(err)
			}
		}
		period := time.Minute
		i := NewInspector(s, period, nil)
		start(t, i)
		time.Sleep(10 * period)
		synctest.Wait()
		now := time.Now()
		for _, rs := range s.Resources() {
			stale := Stale(rs.LastSeen, now, period)
			switch rs.Resource.ID {
			case "ok":
				if stale || now.Sub(rs.LastSeen) > period+period/10 {
					t.Errorf("healthy resource last seen %s ago (stale %v)", now.Sub(rs.LastSeen), stale)
				}
			case "broken":
				if rs.Instance != state.Error || !stale {
					t.Errorf("broken resource: %s, last seen %s ago, stale %v; want error and stale", rs.Instance, now.Sub(rs.LastSeen), stale)
				}
			}
		}
		if st := i.Stats(); st.Polls < 9 {
			t.Errorf("stats %+v", st)
		}
	})
}
