package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

func TestDelay(t *testing.T) {
	r, err := Policy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for n, ceiling := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		ceiling *= time.Millisecond
		for range 50 {
			if d := r.Delay(n); d < ceiling/2 || d > ceiling {
				t.Fatalf("Delay(%d) = %s, want in [%s, %s]", n, d, ceiling/2, ceiling)
			}
		}
	}
	if d := r.Delay(1000); d > time.Second {
		t.Errorf("Delay(1000) = %s", d)
	}
	if _, err := (Policy{Attempts: -1}).WithDefaults(); err == nil {
		t.Error("a negative policy was accepted")
	}
	if d, _ := (Policy{}).WithDefaults(); d != (Policy{Attempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}) {
		t.Errorf("defaults %+v", d)
	}
}

func code(c int) error { return gophercloud.ErrUnexpectedResponseCode{Actual: c} }

func TestClassify(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{code(500), Transient}, {code(503), Transient}, {code(429), Unsent}, {code(409), Conflict},
		{code(404), Permanent}, {code(400), Permanent}, {code(401), Permanent},
		{fmt.Errorf("wrapped: %w", syscall.ECONNREFUSED), Unsent},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, Transient},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), Transient},
		{errors.New("json: cannot unmarshal"), Permanent},
	} {
		if got := Classify(ctx, tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if got := Classify(done, code(503)); got != Permanent {
		t.Errorf("a failure after the caller gave up: %s", got)
	}
}

func TestPredicates(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Predicate
		want [4]bool // Permanent, Unsent, Transient, Conflict
	}{
		{"Idempotent", Idempotent, [4]bool{false, true, true, false}},
		{"Update", Update, [4]bool{false, true, true, true}},
		{"NotSent", NotSent, [4]bool{false, true, false, false}},
	} {
		for k, want := range tc.want {
			if got := tc.p(Kind(k)); got != want {
				t.Errorf("%s(%s) = %t", tc.name, Kind(k), got)
			}
		}
	}
}

// failing returns a request that fails with errs in turn, then succeeds,
// and counts its calls.
func failing(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func TestRunner(t *testing.T) {
	quick := Runner{Policy: Policy{Attempts: 3, BaseDelay: 1, MaxDelay: 1}, API: "test API"}
	t.Run("transient then success", func(t *testing.T) {
		calls := 0
		if err := quick.Do(t.Context(), "op", Idempotent, failing(&calls, code(503), code(500))); err != nil || calls != 3 {
			t.Errorf("Do = %v after %d calls", err, calls)
		}
	})
	t.Run("attempts exhausted", func(t *testing.T) {
		calls := 0
		err := quick.Do(t.Context(), "op", Idempotent, failing(&calls, code(503), code(503), code(502), code(503)))
		if !gophercloud.ResponseCodeIs(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "3 attempts") || calls != 3 {
			t.Errorf("Do = %v after %d calls", err, calls)
		}
	})
	t.Run("not retried", func(t *testing.T) {
		calls := 0
		err := quick.Do(t.Context(), "op", NotSent, failing(&calls, code(500)))
		if !gophercloud.ResponseCodeIs(err, 500) || strings.Contains(err.Error(), "attempts") || calls != 1 {
			t.Errorf("Do = %v after %d calls", err, calls)
		}
	})
	t.Run("own classifier", func(t *testing.T) {
		r := quick
		r.Classify = func(ctx context.Context, err error) Kind {
			if gophercloud.ResponseCodeIs(err, http.StatusNotImplemented) {
				return Permanent
			}
			return Classify(ctx, err)
		}
		calls := 0
		if err := r.Do(t.Context(), "op", Idempotent, failing(&calls, code(501))); err == nil || calls != 1 {
			t.Errorf("Do = %v after %d calls", err, calls)
		}
	})
	t.Run("attempt timeout", func(t *testing.T) {
		r := quick
		r.Timeout = time.Nanosecond
		calls := 0
		err := r.Do(t.Context(), "op", Idempotent, func(ctx context.Context) error {
			calls++
			<-ctx.Done()
			if calls < 2 {
				return ctx.Err()
			}
			return nil
		})
		if err != nil || calls != 2 {
			t.Errorf("Do = %v after %d calls", err, calls)
		}
	})
}

// cancelOnRetry is a slog handler that cancels a context when the runner
// logs that it will retry: the cancellation lands during the backoff.
type cancelOnRetry struct {
	slog.Handler
	cancel context.CancelFunc
}

func (h cancelOnRetry) Enabled(context.Context, slog.Level) bool { return true }

func (h cancelOnRetry) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "test API request failed, retrying" {
		h.cancel()
	}
	return nil
}

func (h cancelOnRetry) WithAttrs([]slog.Attr) slog.Handler { return h }

func TestRunnerHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := Runner{Policy: Policy{Attempts: 100, BaseDelay: time.Hour, MaxDelay: time.Hour}, API: "test API",
		Logger: slog.New(cancelOnRetry{cancel: cancel})}
	calls := 0
	err := r.Do(ctx, "op", Idempotent, failing(&calls, code(503), code(503)))
	if !errors.Is(err, context.Canceled) || !gophercloud.ResponseCodeIs(err, http.StatusServiceUnavailable) || calls != 1 {
		t.Errorf("Do = %v after %d calls, want the 503 and the cancellation after 1", err, calls)
	}
}
