// Package client is the orchestrator's client of the appliance REST API
// (internal/appliance/api): liveness, interfaces, and the configuration
// document. One Client serves every appliance; each call names the
// appliance by its management address.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
)

// Defaults of Options (the original's alive_timeout, config_timeout and
// appliance port; its other calls used 30 s).
const (
	DefaultPort           = 5000
	DefaultAliveTimeout   = 3 * time.Second
	DefaultConfigTimeout  = 90 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// maxResponse bounds what the client reads from an appliance.
const maxResponse = model.MaxDocumentSize + 1<<20

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// Port is the appliance API's TCP port.
	Port uint16
	// AliveTimeout bounds one liveness probe.
	AliveTimeout time.Duration
	// ConfigTimeout bounds one configuration push.
	ConfigTimeout time.Duration
	// RequestTimeout bounds the other calls.
	RequestTimeout time.Duration
	// TLS, when set, makes the client speak HTTPS (see TLSOptions).
	TLS *TLSOptions
	// DialContext, when set, opens the connections (for example from
	// inside a network namespace); the default is a plain net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// TLSOptions configure HTTPS to appliances, matching the agent's
// -tls-cert/-tls-key/-tls-client-ca options.
type TLSOptions struct {
	// CAFile holds the CA certificates (PEM) that sign the appliances'
	// certificates; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (PEM) sent to
	// appliances that require one; both or neither.
	CertFile, KeyFile string
	// ServerName, when set, is the name the appliances' certificates are
	// verified against instead of their management address.
	ServerName string
}

// Config returns the tls.Config the options describe.
func (o *TLSOptions) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("appliance CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("appliance CA %s: no PEM certificate found", o.CAFile)
		}
		c.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("appliance client certificate: the certificate and key files go together")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("appliance client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Client talks to appliances. It is safe for concurrent use.
type Client struct {
	opts   Options
	scheme string
	hc     *http.Client
}

// New returns a Client; it fails when the TLS files cannot be loaded.
func New(opts Options) (*Client, error) {
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.AliveTimeout <= 0 {
		opts.AliveTimeout = DefaultAliveTimeout
	}
	if opts.ConfigTimeout <= 0 {
		opts.ConfigTimeout = DefaultConfigTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	tr := &http.Transport{
		Proxy:                 nil, // never a proxy from the environment (the original's trust_env=False)
		DialContext:           opts.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if tr.DialContext == nil {
		tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	c := &Client{opts: opts, scheme: "http", hc: &http.Client{
		Transport: tr,
		// The API redirects only /v1/base and /v1/status; a redirect
		// elsewhere is an answer to report, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if opts.TLS != nil {
		tc, err := opts.TLS.Config()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
		c.scheme = "https"
	}
	return c, nil
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// URL returns the URL of path on the appliance at addr (IPv6 bracketed).
func (c *Client) URL(addr netip.Addr, path string) string {
	u := url.URL{Scheme: c.scheme, Host: netip.AddrPortFrom(addr, c.opts.Port).String(), Path: path}
	return u.String()
}

// Interface is one of the appliance's network interfaces.
type Interface struct {
	// IfName is the generic name (ge0, ge1, ...) documents refer to.
	IfName    string         `json:"ifname"`
	LLAddr    string         `json:"lladdr"`
	Addresses []netip.Prefix `json:"addresses"`
	MTU       int            `json:"mtu"`
	State     string         `json:"state"`
}

// Info identifies an appliance's agent and the document it applied.
type Info struct {
	Version       string     `json:"version"`
	Hostname      string     `json:"hostname"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	Generation    uint64     `json:"generation"`
	Configured    bool       `json:"configured"`
	AppliedAt     *time.Time `json:"applied_at,omitempty"`
}

// Alive probes the appliance with GET /v1/firewall/rules (the original's
// probe) within the alive timeout: nil when it answered 200.
func (c *Client) Alive(ctx context.Context, addr netip.Addr) error {
	_, err := c.do(ctx, c.opts.AliveTimeout, http.MethodGet, addr, "/v1/firewall/rules", nil)
	return err
}

// IsAlive reports whether Alive succeeds.
func (c *Client) IsAlive(ctx context.Context, addr netip.Addr) bool { return c.Alive(ctx, addr) == nil }

// Interfaces returns the appliance's interfaces (GET /v1/system/interfaces).
func (c *Client) Interfaces(ctx context.Context, addr netip.Addr) ([]Interface, error) {
	body, err := c.do(ctx, c.opts.RequestTimeout, http.MethodGet, addr, "/v1/system/interfaces", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Interfaces *[]Interface `json:"interfaces"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Interfaces == nil {
		return nil, fmt.Errorf("GET %s: malformed answer: %s", c.URL(addr, "/v1/system/interfaces"), describe(err, body))
	}
	return *out.Interfaces, nil
}

// PutConfig pushes doc (PUT /v1/system/config) within the config timeout
// and returns the document the appliance applied. A refusal is a
// *StaleError (409) or a *RejectedError (400, 422); any other status is a
// *StatusError.
func (c *Client) PutConfig(ctx context.Context, addr netip.Addr, doc *model.Document) (*model.Document, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding the document: %w", err)
	}
	body, err := c.do(ctx, c.opts.ConfigTimeout, http.MethodPut, addr, "/v1/system/config", b)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			switch se.Status {
			case http.StatusConflict:
				return nil, &StaleError{Generation: doc.Generation, Message: se.Message}
			case http.StatusBadRequest, http.StatusUnprocessableEntity:
				return nil, &RejectedError{Status: se.Status, Message: se.Message, Fields: se.Fields}
			}
		}
		return nil, err
	}
	applied, err := decodeConfiguration(body)
	if err != nil {
		return nil, fmt.Errorf("PUT %s: %w", c.URL(addr, "/v1/system/config"), err)
	}
	return applied, nil
}

// GetConfig returns the document the appliance applied (GET
// /v1/system/config), or nil before its first.
func (c *Client) GetConfig(ctx context.Context, addr netip.Addr) (*model.Document, error) {
	body, err := c.do(ctx, c.opts.RequestTimeout, http.MethodGet, addr, "/v1/system/config", nil)
	if err != nil {
		return nil, err
	}
	doc, err := decodeConfiguration(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", c.URL(addr, "/v1/system/config"), err)
	}
	return doc, nil
}

// Info returns the agent's identity and applied generation (GET /v1/info).
func (c *Client) Info(ctx context.Context, addr netip.Addr) (*Info, error) {
	body, err := c.do(ctx, c.opts.RequestTimeout, http.MethodGet, addr, "/v1/info", nil)
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("GET %s: malformed answer: %s", c.URL(addr, "/v1/info"), describe(err, body))
	}
	return &info, nil
}

// decodeConfiguration reads {"configuration": <document>|null}.
func decodeConfiguration(body []byte) (*model.Document, error) {
	var top struct {
		Configuration json.RawMessage `json:"configuration"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("malformed answer: %s", describe(err, body))
	}
	if len(top.Configuration) == 0 || string(top.Configuration) == "null" {
		return nil, nil
	}
	doc, err := model.Decode(top.Configuration)
	if err != nil {
		return nil, fmt.Errorf("the appliance's document: %w", err)
	}
	return doc, nil
}

// do runs one request within timeout and returns the body of a 200.
func (c *Client) do(ctx context.Context, timeout time.Duration, method string, addr netip.Addr, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := c.URL(addr, path)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, u, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, newStatusError(method, u, resp.StatusCode, b)
	}
	return b, nil
}

// describe summarizes a body that failed to decode.
func describe(err error, body []byte) string {
	const max = 200
	s := string(body)
	if len(s) > max {
		s = s[:max] + "..."
	}
	if err == nil {
		return strconv.Quote(s)
	}
	return err.Error() + ": " + strconv.Quote(s)
}
