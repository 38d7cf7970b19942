// Package nova implements provider.ComputeAPI over Nova's compute v2.1 API
// with gophercloud v2: servers boot with their ports and a config drive,
// are found by id or by name prefix, deleted, and have ports attached and
// detached (os-interface).
//
// Idempotent requests (GET, DELETE) are retried on transient failures (5xx
// but 501, 429, refused or reset connections, timeouts) with exponential
// backoff and jitter, bounded by the caller's context. Creating a server or
// attaching a port is retried only when the request surely was not sent
// (refused connection, 429): repeating one that Nova may have executed
// would boot a second server. A 404 is an error wrapping
// provider.ErrNotFound (see APIError); every error names the operation and
// ids, and carries Nova's own message when it sent one.
package nova

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/retry"
)

// DefaultMicroversion is the compute API microversion requested unless
// Options say otherwise: 2.1, the base of the v2.1 API that every Nova
// since Kilo serves. The provider reads only fields that have not changed
// since (server id, name, status, created, image; port_id of os-interface),
// so later microversions work as well.
const DefaultMicroversion = "2.1"

// Options tune a Provider; the zero value is usable.
type Options struct {
	// Microversion is the compute API microversion sent with every request
	// (X-OpenStack-Nova-API-Version and OpenStack-API-Version), "2.<n>"
	// with n >= 1 (default DefaultMicroversion).
	Microversion string
	// RequestTimeout bounds each HTTP attempt (default 60s); a timed-out
	// attempt is retried like any transient failure when that is safe.
	RequestTimeout time.Duration
	// Retry bounds the retries of transient failures.
	Retry retry.Policy
	// BuildWait is how long Boot tries to read the server it booted, to
	// report its status and creation time (default 4.5s: the original
	// waited up to 9 × 0.5s for the server's status).
	BuildWait time.Duration
	// InterfaceWait bounds how long AttachPort and DetachPort wait for the
	// port to appear in, or leave, the server's interfaces (default 60s).
	InterfaceWait time.Duration
	// PollInterval is the pause between two reads while Boot, AttachPort
	// and DetachPort wait (default 500ms).
	PollInterval time.Duration
	// Logger receives retries and instance events (default slog.Default()).
	Logger *slog.Logger
}

// Provider is a provider.ComputeAPI over Nova. It is safe for concurrent
// use.
type Provider struct {
	client *gophercloud.ServiceClient
	opts   Options
	log    *slog.Logger
}

var _ provider.ComputeAPI = (*Provider)(nil)

var microversionRE = regexp.MustCompile(`^2\.([1-9][0-9]*)$`)

// New returns a Provider using client, a compute v2 service client (as
// openstack.NewComputeV2 returns). The provider works on a copy of client
// whose Microversion is set from opts; client itself is left as it is.
func New(client *gophercloud.ServiceClient, opts Options) (*Provider, error) {
	if client == nil || client.ProviderClient == nil {
		return nil, errors.New("nova provider: a service client is required")
	}
	if !strings.HasSuffix(client.ResourceBaseURL(), "/") {
		return nil, fmt.Errorf("nova provider: the service client's base URL %q must end with /", client.ResourceBaseURL())
	}
	if client.Type != "" && client.Type != "compute" {
		return nil, fmt.Errorf("nova provider: the service client is for %q, not compute", client.Type)
	}
	if opts.Microversion == "" {
		opts.Microversion = DefaultMicroversion
	}
	if !microversionRE.MatchString(opts.Microversion) {
		return nil, fmt.Errorf("nova provider: microversion %q: want 2.<n>, n >= 1", opts.Microversion)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"request timeout", &opts.RequestTimeout, 60 * time.Second},
		{"build wait", &opts.BuildWait, 4500 * time.Millisecond},
		{"interface wait", &opts.InterfaceWait, 60 * time.Second},
		{"poll interval", &opts.PollInterval, 500 * time.Millisecond},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("nova provider: negative %s %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	r, err := opts.Retry.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("nova provider: %w", err)
	}
	opts.Retry = r
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := *client
	c.Type = "compute"
	c.Microversion = opts.Microversion
	return &Provider{client: &c, opts: opts, log: opts.Logger.With("component", "nova")}, nil
}

// do runs one request with retries (see retry.Runner), turning Nova's
// error answers into errors that carry its message.
func (p *Provider) do(ctx context.Context, op string, retryIf retry.Predicate, f func(context.Context) error) error {
	r := retry.Runner{Policy: p.opts.Retry, Timeout: p.opts.RequestTimeout, Logger: p.log, API: "compute API", Classify: classify}
	return r.Do(ctx, op, retryIf, func(ctx context.Context) error { return describe(f(ctx)) })
}

// classify is retry.Classify but for a 501, which Nova answers for what
// the cloud does not implement: retrying cannot help.
func classify(ctx context.Context, err error) retry.Kind {
	if gophercloud.ResponseCodeIs(err, http.StatusNotImplemented) {
		return retry.Permanent
	}
	return retry.Classify(ctx, err)
}

// APIError is an error answer of the compute API: its status and Nova's
// message (from its fault body, {"itemNotFound": {"code": 404, "message":
// "..."}}; empty without one). It wraps gophercloud's
// ErrUnexpectedResponseCode, and a 404 matches provider.ErrNotFound.
type APIError struct {
	Status  int
	Message string
	err     error
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return e.err.Error()
	}
	return "compute API answered " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Message
}

// Unwrap returns gophercloud's error.
func (e *APIError) Unwrap() error { return e.err }

// Is makes a 404 an error wrapping provider.ErrNotFound.
func (e *APIError) Is(target error) bool {
	return target == provider.ErrNotFound && e.Status == http.StatusNotFound
}

// describe turns an unexpected answer into an APIError; other errors are
// returned as they are.
func describe(err error) error {
	var code gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &code) {
		return err
	}
	e := &APIError{Status: code.Actual, err: err}
	var fault map[string]struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(code.Body, &fault) == nil && len(fault) == 1 {
		for _, f := range fault {
			e.Message = f.Message
		}
	}
	return e
}

func is404(err error) bool { return gophercloud.ResponseCodeIs(err, http.StatusNotFound) }

// checkID rejects an empty id, or one that would change a request's path.
func checkID(kind, id string) error {
	if id == "" || url.PathEscape(id) != id || id == "." || id == ".." {
		return fmt.Errorf("bad %s id %q", kind, id)
	}
	return nil
}

// poll calls check every interval until it reports done or fails, or ctx
// ends (then the error is ctx's cause).
func poll(ctx context.Context, interval time.Duration, check func(context.Context) (done bool, err error)) error {
	for {
		if done, err := check(ctx); done || err != nil {
			return err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}
