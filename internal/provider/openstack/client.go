package openstack

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/astara-go/astara/internal/provider/neutron"
)

// userAgent prefixes the User-Agent of every request.
const userAgent = "astara-orchestrator"

// Client is an authenticated session with a cloud: its gophercloud provider
// client and the catalog region and interface its service clients use.
type Client struct {
	// Provider holds the Keystone token (none with NoAuth) and, as
	// gophercloud does with AllowReauth, fetches a new one when a service
	// answers 401.
	Provider *gophercloud.ProviderClient
	// Region and Interface select the catalog's endpoints.
	Region    string
	Interface gophercloud.Availability

	// noAuthProject is the project of a NoAuth client, else "".
	noAuthProject string
}

// Connect checks a, merged with its clouds.yaml entry, and authenticates to
// Keystone for a project-scoped token (nothing with NoAuth). A nil
// httpClient means a default one; CA file and insecure apply to a copy.
func Connect(ctx context.Context, a Auth, httpClient *http.Client) (*Client, error) {
	r, err := a.resolve()
	if err != nil {
		return nil, err
	}
	hc, err := withTLS(httpClient, r.tls)
	if err != nil {
		return nil, fmt.Errorf("openstack: %w", err)
	}
	iface, _ := availability(r.Interface) // checked by resolve
	if r.NoAuth {
		pc := &gophercloud.ProviderClient{HTTPClient: hc}
		pc.UseTokenLock()
		pc.UserAgent.Prepend(userAgent)
		return &Client{Provider: pc, Region: r.RegionName, Interface: iface, noAuthProject: r.ProjectID}, nil
	}
	endpoint, _ := identityEndpoint(r.AuthURL) // checked by resolve
	pc, err := openstack.NewClient(endpoint)
	if err != nil {
		return nil, fmt.Errorf("openstack: auth_url %s: %w", redactURL(endpoint), err)
	}
	pc.HTTPClient = hc
	pc.UserAgent.Prepend(userAgent)
	opts := r.authOptions(endpoint)
	if err := openstack.AuthenticateV3(ctx, pc, &opts, gophercloud.EndpointOpts{}); err != nil {
		var status gophercloud.ErrUnexpectedResponseCode
		if errors.As(err, &status) && status.Actual == http.StatusUnauthorized {
			return nil, &keystoneError{
				msg: fmt.Sprintf("openstack: authentication failed for %s at %s: %s", r.who(), redactURL(endpoint), keystoneMessage(status)),
				err: err,
			}
		}
		return nil, fmt.Errorf("openstack: authenticating %s at %s: %w", r.who(), redactURL(endpoint), err)
	}
	return &Client{Provider: pc, Region: r.RegionName, Interface: iface}, nil
}

// keystoneError is a Keystone error response, said in one line.
type keystoneError struct {
	msg string
	err error // gophercloud's
}

func (e *keystoneError) Error() string { return e.msg }
func (e *keystoneError) Unwrap() error { return e.err }

// keystoneMessage returns the status and message of Keystone's error
// response e ({"error": {"code", "title", "message"}}), or its body.
func keystoneMessage(e gophercloud.ErrUnexpectedResponseCode) string {
	var body struct {
		Error struct {
			Title   string `json:"title"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(e.Body, &body) == nil && body.Error.Message != "" {
		return fmt.Sprintf("%d %s: %s", e.Actual, body.Error.Title, body.Error.Message)
	}
	return fmt.Sprintf("%d %s", e.Actual, strings.Join(strings.Fields(string(e.Body)), " "))
}

// withTLS returns a copy of hc (or a default client) whose transport uses
// tc; hc itself if tc is nil.
func withTLS(hc *http.Client, tc *tls.Config) (http.Client, error) {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	if tc == nil {
		return c, nil
	}
	var t *http.Transport
	switch rt := c.Transport.(type) {
	case nil:
		d, ok := http.DefaultTransport.(*http.Transport)
		if !ok {
			return c, fmt.Errorf("cafile/insecure: http.DefaultTransport is a %T, not an *http.Transport", http.DefaultTransport)
		}
		t = d.Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return c, fmt.Errorf("cafile/insecure: the HTTP client's transport is a %T, not an *http.Transport", rt)
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = tc.Clone()
	} else {
		if tc.RootCAs != nil {
			t.TLSClientConfig.RootCAs = tc.RootCAs
		}
		if len(tc.Certificates) > 0 {
			t.TLSClientConfig.Certificates = tc.Certificates
		}
		t.TLSClientConfig.InsecureSkipVerify = t.TLSClientConfig.InsecureSkipVerify || tc.InsecureSkipVerify
	}
	c.Transport = t
	return c, nil
}

// Network returns a networking v2 service client (as openstack.NewNetworkV2
// does, honouring ctx): the catalog's network endpoint of c's region and
// interface, whose version gophercloud checks, unless endpointOverride (the
// API root, with or without /v2.0) replaces it. A NoAuth client needs the
// override and sends identity headers instead of a token.
func (c *Client) Network(ctx context.Context, endpointOverride string) (*gophercloud.ServiceClient, error) {
	if c.noAuthProject != "" {
		if endpointOverride == "" {
			return nil, errors.New("openstack: network: noauth needs an endpoint override (there is no catalog)")
		}
		sc, err := neutron.NoAuthClient(endpointOverride, c.noAuthProject, &c.Provider.HTTPClient)
		if err != nil {
			return nil, fmt.Errorf("openstack: network: %w", err)
		}
		sc.ProviderClient = c.Provider
		return sc, nil
	}
	var sc *gophercloud.ServiceClient
	if endpointOverride != "" {
		base, err := overrideURL("network", endpointOverride)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(base, "/v2.0/") {
			base = strings.TrimSuffix(base, "v2.0/")
		}
		sc = &gophercloud.ServiceClient{ProviderClient: c.Provider, Endpoint: base, Type: "network"}
	} else {
		var err error
		if sc, err = c.fromCatalog(ctx, "network", 2); err != nil {
			return nil, err
		}
	}
	sc.ResourceBase = sc.Endpoint + "v2.0/"
	return sc, nil
}

// Compute returns a compute v2 service client (as openstack.NewComputeV2
// does, honouring ctx): the catalog's compute endpoint of c's region and
// interface, unless endpointOverride (the versioned root, e.g.
// http://nova:8774/v2.1) replaces it. A NoAuth client needs the override
// and sends the token Nova's noauth2 takes: admin:<project>.
func (c *Client) Compute(ctx context.Context, endpointOverride string) (*gophercloud.ServiceClient, error) {
	if endpointOverride == "" {
		if c.noAuthProject != "" {
			return nil, errors.New("openstack: compute: noauth needs an endpoint override (there is no catalog)")
		}
		return c.fromCatalog(ctx, "compute", 2)
	}
	base, err := overrideURL("compute", endpointOverride)
	if err != nil {
		return nil, err
	}
	sc := &gophercloud.ServiceClient{ProviderClient: c.Provider, Endpoint: base, Type: "compute"}
	if c.noAuthProject != "" {
		sc.MoreHeaders = map[string]string{"X-Auth-Token": "admin:" + c.noAuthProject}
	}
	return sc, nil
}

// overrideURL checks the endpoint override raw of service and returns it
// ending with /.
func overrideURL(service, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("openstack: %s endpoint override %q: want an http(s) URL", service, redactURL(raw))
	}
	return gophercloud.NormalizeURL(u.String()), nil
}

// fromCatalog returns a client of service (its major version) at its
// endpoint in the token's catalog for c's region and interface.
func (c *Client) fromCatalog(ctx context.Context, service string, version int) (*gophercloud.ServiceClient, error) {
	res, ok := c.Provider.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return nil, fmt.Errorf("openstack: %s: the provider client has no Keystone v3 token (use Connect)", service)
	}
	catalog, err := res.ExtractServiceCatalog()
	if err != nil {
		return nil, fmt.Errorf("openstack: %s: reading the service catalog: %w", service, err)
	}
	eo := gophercloud.EndpointOpts{Type: service, Region: c.Region, Availability: c.Interface, Version: version}
	eo.ApplyDefaults(service)
	where := fmt.Sprintf("interface %s", eo.Availability)
	if c.Region != "" {
		where += fmt.Sprintf(", region %s", c.Region)
	}
	endpoint, err := openstack.V3Endpoint(ctx, c.Provider, catalog, eo)
	var notFound *gophercloud.ErrEndpointNotFound
	switch {
	case errors.As(err, &notFound):
		return nil, fmt.Errorf("openstack: no %s v%d endpoint (%s) in the service catalog", service, version, where)
	case err != nil:
		return nil, fmt.Errorf("openstack: %s endpoint (%s): %w", service, where, err)
	}
	return &gophercloud.ServiceClient{ProviderClient: c.Provider, Endpoint: endpoint, Type: service}, nil
}
