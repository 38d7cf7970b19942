// Package retry retries the requests of the OpenStack providers: a policy
// of exponential backoff with jitter, a classification of failures (was
// the request sent at all? may it have been processed?) and the loop that
// runs a request until it succeeds or fails for good.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// Policy bounds the retries of one operation. Delays grow exponentially
// from BaseDelay up to MaxDelay, each drawn at random in [d/2, d] (equal
// jitter); the caller's context bounds the whole.
type Policy struct {
	// Attempts is the number of tries, the first included (default 5; 1
	// disables retries).
	Attempts int
	// BaseDelay is the delay before the first retry (default 200ms).
	BaseDelay time.Duration
	// MaxDelay caps a delay (default 5s).
	MaxDelay time.Duration
}

// WithDefaults returns the policy with its zero fields set to the
// defaults; negative values are an error.
func (r Policy) WithDefaults() (Policy, error) {
	if r.Attempts < 0 || r.BaseDelay < 0 || r.MaxDelay < 0 {
		return r, fmt.Errorf("retry policy %+v: negative values", r)
	}
	if r.Attempts == 0 {
		r.Attempts = 5
	}
	if r.BaseDelay == 0 {
		r.BaseDelay = 200 * time.Millisecond
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = 5 * time.Second
	}
	if r.MaxDelay < r.BaseDelay {
		r.MaxDelay = r.BaseDelay
	}
	return r, nil
}

// Delay returns the wait before retry number n (0 for the first retry).
func (r Policy) Delay(n int) time.Duration {
	d := r.BaseDelay
	for i := 0; i < n && d < r.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, r.MaxDelay)
	if half := d / 2; half > 0 {
		return half + rand.N(d-half+1)
	}
	return d
}

// Kind classifies a failed request.
type Kind int

const (
	// Permanent: retrying cannot help (4xx, malformed answers, the
	// caller's own cancellation).
	Permanent Kind = iota
	// Unsent: the request surely did not reach the API (connection
	// refused, rate-limited): retrying cannot repeat its effect.
	Unsent
	// Transient: the request may have been processed (5xx, reset
	// connection, timeout): retry it if it is idempotent.
	Transient
	// Conflict: a 409, which retrying fixes for concurrent updates only.
	Conflict
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case Unsent:
		return "unsent"
	case Transient:
		return "transient"
	case Conflict:
		return "conflict"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Classify tells how err came about. ctx is the caller's context: its own
// cancellation is permanent, while an attempt's timeout is transient.
func Classify(ctx context.Context, err error) Kind {
	if err == nil || ctx.Err() != nil {
		return Permanent
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		switch c := code.Actual; {
		case c == http.StatusTooManyRequests:
			return Unsent
		case c == http.StatusConflict:
			return Conflict
		case c >= 500:
			return Transient
		}
		return Permanent
	}
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial") {
		return Unsent
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Transient
	}
	return Permanent
}

// Predicate decides whether a failure of the given kind is worth a retry.
type Predicate func(Kind) bool

// Idempotent is the predicate of idempotent requests (GET, DELETE): every
// failure that may be transient is retried.
func Idempotent(k Kind) bool { return k == Unsent || k == Transient }

// Update is the predicate of concurrent updates: a conflict is retried
// too.
func Update(k Kind) bool { return k != Permanent }

// NotSent is the predicate of requests that must not run twice (creates):
// only a request that surely was not sent is retried.
func NotSent(k Kind) bool { return k == Unsent }

// Runner runs requests with retries. The zero Policy is not usable: give
// it one returned by Policy.WithDefaults.
type Runner struct {
	Policy Policy
	// Timeout bounds each attempt; zero: only the caller's context does.
	Timeout time.Duration
	// Logger receives the retries (nil: slog.Default()).
	Logger *slog.Logger
	// API names the API in the log ("network API").
	API string
	// Classify classifies failures (nil: the package's Classify).
	Classify func(context.Context, error) Kind
}

// Do runs f until it succeeds, fails for good (retryIf says no), runs out
// of attempts or ctx is done. op names the request in the log.
func (r Runner) Do(ctx context.Context, op string, retryIf Predicate, f func(context.Context) error) error {
	classify, log := r.Classify, r.Logger
	if classify == nil {
		classify = Classify
	}
	if log == nil {
		log = slog.Default()
	}
	for n := 0; ; n++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if r.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, r.Timeout)
		}
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !retryIf(classify(ctx, err)) || n+1 >= r.Policy.Attempts {
			if n > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, n+1)
			}
			return err
		}
		d := r.Policy.Delay(n)
		log.InfoContext(ctx, r.API+" request failed, retrying", "op", op, "attempt", n+1, "delay", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (giving up on retries: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}
