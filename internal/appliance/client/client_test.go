package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/api"
	"github.com/astara-go/astara/internal/appliance/model"
)

// backend is a fake appliance behind the real API handler.
type backend struct {
	mu       sync.Mutex
	doc      *model.Document
	at       time.Time
	applyErr error
	ifs      []api.Interface
	applied  int
}

func (b *backend) Apply(ctx context.Context, doc *model.Document, _ []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applyErr != nil {
		return b.applyErr
	}
	if b.doc != nil && doc.Generation != 0 && doc.Generation < b.doc.Generation {
		return &model.StaleError{Got: doc.Generation, Applied: b.doc.Generation}
	}
	b.doc, b.at = doc, time.Now()
	b.applied++
	return nil
}

func (b *backend) Config() (*model.Document, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.doc, b.at
}

func (b *backend) Interfaces(context.Context) ([]api.Interface, error) { return b.ifs, nil }

func (b *backend) FirewallRules(context.Context, bool) (string, error) {
	return "table inet astara {}", nil
}

func (b *backend) Reachability(context.Context) api.Reachability { return api.Reachability{} }

// appliance serves the real API over a fake backend; the client reaches it
// at the management address mgmt through a dialer.
func appliance(t *testing.T, b *backend) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.New(b, api.Info{Version: "test"}, nil))
	t.Cleanup(srv.Close)
	return srv
}

var mgmt = netip.MustParseAddr("fdca:3ba5:a17a:acda::5")

// dialTo sends every connection to srv, whatever address was asked for, and
// records the addresses asked for.
func dialTo(srv *httptest.Server, asked *[]string, mu *sync.Mutex) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		*asked = append(*asked, addr)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
}

func newClient(t *testing.T, srv *httptest.Server, opts Options) *Client {
	t.Helper()
	var asked []string
	var mu sync.Mutex
	if opts.DialContext == nil {
		opts.DialContext = dialTo(srv, &asked, &mu)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testDoc(gen uint64) *model.Document {
	return &model.Document{
		Generation: gen, TenantID: "tenant", Hostname: "ak-tenant", ASN: 64512, NeighborASN: 64512,
		Orchestrator: model.Orchestrator{Address: netip.MustParseAddr("fdca:3ba5:a17a:acda::1"), MetadataPort: 9697},
		Networks: []model.Network{{
			ID: "mgt", Type: model.NetworkManagement, V4ConfService: "static", V6ConfService: "static",
			Interface: model.Interface{IfName: "ge0", Addresses: []netip.Prefix{netip.PrefixFrom(mgmt, 64)}},
			Subnets:   []model.Subnet{{ID: "mgt-sub", CIDR: netip.MustParsePrefix("fdca:3ba5:a17a:acda::/64")}},
		}},
	}
}

func TestURL(t *testing.T) {
	c, err := New(Options{Port: 5001})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"fdca:3ba5:a17a:acda::5": "http://[fdca:3ba5:a17a:acda::5]:5001/v1/info",
		"192.0.2.7":              "http://192.0.2.7:5001/v1/info",
	} {
		if got := c.URL(netip.MustParseAddr(addr), "/v1/info"); got != want {
			t.Errorf("URL(%s) = %s, want %s", addr, got, want)
		}
	}
	c, err = New(Options{TLS: &TLSOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.URL(mgmt, "/v1/info"); got != "https://[fdca:3ba5:a17a:acda::5]:5000/v1/info" {
		t.Errorf("TLS URL with the default port: %s", got)
	}
}

// TestCalls drives every call against the real API handler.
func TestCalls(t *testing.T) {
	b := &backend{ifs: []api.Interface{
		{IfName: "ge0", LLAddr: "fa:16:3e:00:00:01", Addresses: []netip.Prefix{netip.PrefixFrom(mgmt, 64)}, MTU: 1500, State: "up"},
		{IfName: "ge1", LLAddr: "fa:16:3e:00:00:02", Addresses: []netip.Prefix{}, MTU: 1450, State: "down"},
	}}
	srv := appliance(t, b)
	var asked []string
	var mu sync.Mutex
	c := newClient(t, srv, Options{DialContext: dialTo(srv, &asked, &mu)})
	ctx := context.Background()

	if err := c.Alive(ctx, mgmt); err != nil {
		t.Errorf("Alive: %v", err)
	}
	ifs, err := c.Interfaces(ctx, mgmt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 2 || ifs[1].IfName != "ge1" || ifs[1].LLAddr != "fa:16:3e:00:00:02" || ifs[1].MTU != 1450 || ifs[0].Addresses[0] != netip.PrefixFrom(mgmt, 64) {
		t.Errorf("Interfaces = %+v", ifs)
	}

	doc, err := c.GetConfig(ctx, mgmt)
	if err != nil || doc != nil {
		t.Errorf("GetConfig before any push = %v, %v; want nil, nil", doc, err)
	}
	info, err := c.Info(ctx, mgmt)
	if err != nil || info.Configured || info.Generation != 0 || info.Version != "test" {
		t.Errorf("Info before any push = %+v, %v", info, err)
	}

	applied, err := c.PutConfig(ctx, mgmt, testDoc(7))
	if err != nil {
		t.Fatal(err)
	}
	if applied.Generation != 7 || applied.TenantID != "tenant" {
		t.Errorf("PutConfig returned %+v", applied)
	}
	doc, err = c.GetConfig(ctx, mgmt)
	if err != nil || doc == nil || doc.Generation != 7 || doc.Networks[0].Interface.Addresses[0] != netip.PrefixFrom(mgmt, 64) {
		t.Errorf("GetConfig after the push = %+v, %v", doc, err)
	}
	info, err = c.Info(ctx, mgmt)
	if err != nil || !info.Configured || info.Generation != 7 || info.AppliedAt == nil {
		t.Errorf("Info after the push = %+v, %v", info, err)
	}

	// The client dials the management address on the API port.
	mu.Lock()
	defer mu.Unlock()
	for _, a := range asked {
		if a != "[fdca:3ba5:a17a:acda::5]:5000" {
			t.Errorf("dialed %s, want [fdca:3ba5:a17a:acda::5]:5000", a)
		}
	}
}

func TestPutConfigErrors(t *testing.T) {
	b := &backend{}
	srv := appliance(t, b)
	c := newClient(t, srv, Options{})
	ctx := context.Background()
	if _, err := c.PutConfig(ctx, mgmt, testDoc(10)); err != nil {
		t.Fatal(err)
	}

	_, err := c.PutConfig(ctx, mgmt, testDoc(9))
	var stale *StaleError
	if !errors.As(err, &stale) || stale.Generation != 9 || !strings.Contains(stale.Message, "older than the applied generation 10") {
		t.Errorf("older generation: %v, want a *StaleError", err)
	}

	// An invalid document: the appliance names the field (422).
	bad := testDoc(11)
	bad.Networks[0].Interface.IfName = "eth0"
	_, err = c.PutConfig(ctx, mgmt, bad)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Status != 422 || len(rej.Fields) != 1 || rej.Fields[0].Field != "networks[0].interface.ifname" {
		t.Errorf("invalid document: %v, want a *RejectedError naming networks[0].interface.ifname", err)
	} else if !strings.Contains(err.Error(), "networks[0].interface.ifname") {
		t.Errorf("the error does not name the field: %v", err)
	}

	// A valid document naming interfaces the appliance lacks (the backend's 422).
	b.applyErr = &model.ValidationError{Errors: []model.FieldError{{Field: "networks[0].interface.lladdr", Msg: "ge0 is fa:16:3e:00:00:09"}}}
	_, err = c.PutConfig(ctx, mgmt, testDoc(12))
	if !errors.As(err, &rej) || rej.Fields[0].Field != "networks[0].interface.lladdr" || rej.Fields[0].Msg != "ge0 is fa:16:3e:00:00:09" {
		t.Errorf("backend validation error: %v", err)
	}

	b.applyErr = &model.UnsupportedError{Service: "loadbalancer"}
	_, err = c.PutConfig(ctx, mgmt, testDoc(13))
	if !errors.As(err, &rej) || rej.Status != 400 {
		t.Errorf("unsupported service: %v, want a 400 *RejectedError", err)
	}

	b.applyErr = errors.New("netlink: boom")
	_, err = c.PutConfig(ctx, mgmt, testDoc(14))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 500 || !strings.Contains(se.Message, "netlink: boom") {
		t.Errorf("appliance failure: %v, want a 500 *StatusError", err)
	}
	if errors.As(err, &rej) || errors.As(err, &stale) {
		t.Errorf("a 500 is neither rejected nor stale: %v", err)
	}
}

func TestNotAlive(t *testing.T) {
	ctx := context.Background()
	// Nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c, err := New(Options{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, dead)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.IsAlive(ctx, mgmt) {
		t.Error("alive with nothing listening")
	}

	// A hung appliance: the alive timeout ends the probe.
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	c = newClient(t, hung, Options{AliveTimeout: 50 * time.Millisecond})
	if err := c.Alive(ctx, mgmt); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung appliance: %v, want a deadline error", err)
	}

	// An answer other than 200.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer broken.Close()
	c = newClient(t, broken, Options{})
	var se *StatusError
	if err := c.Alive(ctx, mgmt); !errors.As(err, &se) || se.Status != 502 || se.Message != "bad gateway" {
		t.Errorf("502: %v", err)
	}
	if _, err := c.Interfaces(ctx, mgmt); !errors.As(err, &se) {
		t.Errorf("Interfaces on a 502: %v", err)
	}
}

// TestNoProxy: proxies from the environment are ignored.
func TestNoProxy(t *testing.T) {
	proxied := false
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied = true
		http.Error(w, "proxy", http.StatusBadGateway)
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	srv := appliance(t, &backend{})
	c := newClient(t, srv, Options{})
	if err := c.Alive(context.Background(), netip.MustParseAddr("192.0.2.7")); err != nil || proxied {
		t.Errorf("Alive with a proxy in the environment: %v (proxied: %v)", err, proxied)
	}
}

func TestMalformedAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"configuration": {"tenant_id": ""}, "interfaces": "x"}`))
	}))
	defer srv.Close()
	c := newClient(t, srv, Options{})
	ctx := context.Background()
	if _, err := c.Interfaces(ctx, mgmt); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("Interfaces: %v", err)
	}
	var verr *model.ValidationError
	if _, err := c.GetConfig(ctx, mgmt); !errors.As(err, &verr) {
		t.Errorf("GetConfig of an invalid document: %v", err)
	}
}

// TestMutualTLS: with a CA and a client certificate, the client reaches an
// appliance that requires client certificates (the agent's -tls-client-ca).
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCert(t, "astara-ca", nil, x509.ExtKeyUsageAny)
	other := newCert(t, "other-ca", nil, x509.ExtKeyUsageAny)
	server := newCert(t, "appliance.astara", ca, x509.ExtKeyUsageServerAuth)
	good := newCert(t, "orchestrator", ca, x509.ExtKeyUsageClientAuth)
	bad := newCert(t, "intruder", other, x509.ExtKeyUsageClientAuth)
	caFile, _ := ca.write(t, dir, "ca")
	otherFile, _ := other.write(t, dir, "other")
	goodCert, goodKey := good.write(t, dir, "good")
	badCert, badKey := bad.write(t, dir, "bad")

	b := &backend{}
	srv := httptest.NewUnstartedServer(api.New(b, api.Info{Version: "test"}, nil))
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{server.der}, PrivateKey: server.key}},
		ClientCAs:    pool, ClientAuth: tls.RequireAndVerifyClientCert,
	}
	srv.StartTLS()
	defer srv.Close()

	ctx := context.Background()
	try := func(o TLSOptions) error {
		c := newClient(t, srv, Options{TLS: &o})
		_, err := c.PutConfig(ctx, mgmt, testDoc(1))
		return err
	}
	if err := try(TLSOptions{CAFile: caFile, CertFile: goodCert, KeyFile: goodKey, ServerName: "appliance.astara"}); err != nil {
		t.Errorf("client certificate from the CA: %v", err)
	}
	if err := try(TLSOptions{CAFile: caFile, ServerName: "appliance.astara"}); err == nil {
		t.Error("no client certificate: the appliance answered")
	}
	if err := try(TLSOptions{CAFile: caFile, CertFile: badCert, KeyFile: badKey, ServerName: "appliance.astara"}); err == nil {
		t.Error("client certificate from another CA: the appliance answered")
	}
	if err := try(TLSOptions{CAFile: otherFile, CertFile: goodCert, KeyFile: goodKey, ServerName: "appliance.astara"}); err == nil {
		t.Error("appliance certificate from an unknown CA: accepted")
	}
	if err := try(TLSOptions{CAFile: caFile, CertFile: goodCert, KeyFile: goodKey}); err == nil {
		t.Error("appliance certificate for another name than its address: accepted")
	}

	// Bad options fail at New.
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]TLSOptions{
		"missing CA":            {CAFile: filepath.Join(dir, "missing.pem")},
		"CA without a PEM cert": {CAFile: junk},
		"cert without key":      {CertFile: goodCert},
		"bad key pair":          {CertFile: goodCert, KeyFile: badKey},
	} {
		if _, err := New(Options{TLS: &o}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// newCert makes a CA (parent nil) or a leaf certificate signed by parent.
func newCert(t *testing.T, name string, parent *certKey, usage x509.ExtKeyUsage) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  parent == nil,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.DNSNames = []string{name}
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certKey{cert: cert, key: key, der: der}
}

func (c *certKey) write(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	kb, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}
