package neutron

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// RetryPolicy bounds the retries of one operation. Delays grow
// exponentially from BaseDelay up to MaxDelay, each drawn at random in
// [d/2, d] (equal jitter); the caller's context bounds the whole.
type RetryPolicy struct {
	// Attempts is the number of tries, the first included (default 5; 1
	// disables retries).
	Attempts int
	// BaseDelay is the delay before the first retry (default 200ms).
	BaseDelay time.Duration
	// MaxDelay caps a delay (default 5s).
	MaxDelay time.Duration
}

func (r RetryPolicy) withDefaults() (RetryPolicy, error) {
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

// delay returns the wait before retry number n (0 for the first retry).
func (r RetryPolicy) delay(n int) time.Duration {
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

// errKind classifies a failed request.
type errKind int

const (
	permanent errKind = iota
	// unsent: the request surely did not reach the API (connection
	// refused, rate-limited): retrying cannot repeat its effect.
	unsent
	// transient: the request may have been processed (5xx, reset
	// connection, timeout): retry it if it is idempotent.
	transient
	// conflict: a 409, which retrying fixes for concurrent updates only.
	conflict
)

// classify tells how err came about. ctx is the caller's context: its own
// cancellation is permanent, while an attempt's timeout is transient.
func classify(ctx context.Context, err error) errKind {
	if err == nil || ctx.Err() != nil {
		return permanent
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		switch c := code.Actual; {
		case c == http.StatusTooManyRequests:
			return unsent
		case c == http.StatusConflict:
			return conflict
		case c >= 500:
			return transient
		}
		return permanent
	}
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial") {
		return unsent
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return transient
	}
	return permanent
}

// retryIf decides whether a failure of the given kind is worth a retry.
type retryIf func(errKind) bool

// Retry predicates: idempotent requests retry every transient failure,
// concurrent updates also a conflict, non-idempotent ones only a request
// that was not sent.
var (
	idempotent retryIf = func(k errKind) bool { return k == unsent || k == transient }
	update     retryIf = func(k errKind) bool { return k != permanent }
)

// do runs f until it succeeds, fails for good, runs out of attempts or ctx
// is done. Each attempt gets a context bounded by the request timeout.
func (p *Provider) do(ctx context.Context, op string, retry retryIf, f func(context.Context) error) error {
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		kind := classify(ctx, err)
		if !retry(kind) || n+1 >= p.opts.Retry.Attempts {
			if n > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, n+1)
			}
			return err
		}
		d := p.opts.Retry.delay(n)
		p.log.InfoContext(ctx, "network API request failed, retrying", "op", op, "attempt", n+1, "delay", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (giving up on retries: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}
