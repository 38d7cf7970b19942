// Package neutron implements provider.NetworkAPI over the Neutron v2.0 REST
// API with gophercloud v2. It serves a real Neutron (given a
// keystone-authenticated service client) as well as the embedded network
// API or a Neutron in noauth/headers mode (NewNoAuth).
//
// Reads follow pagination links; transient failures (5xx, 429, refused or
// reset connections) are retried with exponential backoff and jitter,
// bounded by the caller's context; a 404 on the object asked for is an
// error wrapping provider.ErrNotFound. Every error names the operation and
// the ids involved.
package neutron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/astara-go/astara/internal/provider"
)

// NoAuthUserID is the user NewNoAuth's requests claim (X-User-Id).
const NoAuthUserID = "astara-orchestrator"

// Options tune a Provider; the zero value is usable.
type Options struct {
	// ManagementSubnetID is the subnet management ports (label MGT) get
	// their address on. Empty: the network's IPv6 SLAAC subnet if it has
	// one, else its first IPv4 subnet, else its first subnet.
	ManagementSubnetID string
	// PageSize, when positive, asks for lists in pages of that many items
	// (limit and marker); zero leaves paging to the server.
	PageSize int
	// RequestTimeout bounds each HTTP attempt (default 60s); a timed-out
	// attempt is retried like any transient failure.
	RequestTimeout time.Duration
	// Retry bounds the retries of transient failures.
	Retry RetryPolicy
	// Logger receives retries and skipped malformed data (default slog.Default()).
	Logger *slog.Logger
}

// Provider is a provider.NetworkAPI over a Neutron v2.0 API. It is safe for
// concurrent use.
type Provider struct {
	client *gophercloud.ServiceClient
	opts   Options
	log    *slog.Logger

	// ext caches the API's extensions once listed (nil until then).
	ext atomic.Pointer[extensionSet]
	// noPortSecurity is set once the API refused port_security_enabled.
	noPortSecurity atomic.Bool
	// extSem serialises the first listing of extensions.
	extSem chan struct{}
}

var (
	_ provider.NetworkAPI = (*Provider)(nil)
	_ interface {
		DeletePort(ctx context.Context, id string) error
	} = (*Provider)(nil)
)

// New returns a Provider using client, a networking v2 service client (as
// openstack.NewNetworkV2 returns, or NoAuthClient).
func New(client *gophercloud.ServiceClient, opts Options) (*Provider, error) {
	if client == nil || client.ProviderClient == nil {
		return nil, errors.New("neutron provider: a service client is required")
	}
	if !strings.HasSuffix(client.ResourceBaseURL(), "/") {
		return nil, fmt.Errorf("neutron provider: the service client's base URL %q must end with /", client.ResourceBaseURL())
	}
	if opts.PageSize < 0 {
		return nil, fmt.Errorf("neutron provider: negative page size %d", opts.PageSize)
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("neutron provider: negative request timeout %s", opts.RequestTimeout)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	r, err := opts.Retry.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("neutron provider: %w", err)
	}
	opts.Retry = r
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Provider{client: client, opts: opts, log: opts.Logger.With("component", "neutron"), extSem: make(chan struct{}, 1)}, nil
}

// NewNoAuth returns a Provider for a network API that trusts identity
// headers (the embedded network API, Neutron with auth_strategy noauth or
// the headers middleware): see NoAuthClient.
func NewNoAuth(endpoint, project string, opts Options) (*Provider, error) {
	c, err := NoAuthClient(endpoint, project, nil)
	if err != nil {
		return nil, err
	}
	return New(c, opts)
}

// NoAuthClient returns a networking v2 service client for endpoint (the API
// root, with or without its /v2.0 suffix) whose requests carry X-Project-Id
// project, X-User-Id NoAuthUserID and X-Roles admin instead of a token.
// A nil httpClient means a default one.
func NoAuthClient(endpoint, project string, httpClient *http.Client) (*gophercloud.ServiceClient, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("neutron provider: endpoint %q: want an http(s) URL", endpoint)
	}
	if project == "" {
		return nil, errors.New("neutron provider: the noauth project id is required")
	}
	base := strings.TrimSuffix(u.String(), "/")
	base = strings.TrimSuffix(base, "/v2.0") + "/"
	pc := &gophercloud.ProviderClient{}
	if httpClient != nil {
		pc.HTTPClient = *httpClient
	}
	pc.UseTokenLock()
	pc.UserAgent.Prepend("astara-orchestrator")
	return &gophercloud.ServiceClient{
		ProviderClient: pc,
		Endpoint:       base,
		ResourceBase:   base + "v2.0/",
		MoreHeaders: map[string]string{
			"X-Project-Id": project,
			"X-Tenant-Id":  project,
			"X-User-Id":    NoAuthUserID,
			"X-Roles":      "admin",
		},
	}, nil
}

// notFound turns a 404 into an error wrapping provider.ErrNotFound (and the
// original error); other errors are returned as they are.
func notFound(err error) error {
	if is404(err) {
		return fmt.Errorf("%w: %w", provider.ErrNotFound, err)
	}
	return err
}

func is404(err error) bool { return gophercloud.ResponseCodeIs(err, http.StatusNotFound) }

// sanitize rejects ids that would change a request's path.
func sanitize(kind, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s id", kind)
	}
	if strings.ContainsAny(id, "/?#%") {
		return fmt.Errorf("bad %s id %q", kind, id)
	}
	return nil
}
