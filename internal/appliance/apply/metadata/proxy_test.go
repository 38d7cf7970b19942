package metadata

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
)

// seen is one request as the upstream received it.
type seen struct {
	Method   string
	Path     string
	RawQuery string
	Body     string
	Header   http.Header
}

// upstream is a fake orchestrator metadata service that records requests.
type upstream struct {
	srv  *httptest.Server
	reqs chan seen
	// release unblocks requests to /block.
	release chan struct{}
}

func newUpstream(t *testing.T, network, addr string) *upstream {
	t.Helper()
	u := &upstream{reqs: make(chan seen, 100), release: make(chan struct{})}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: reading body: %v", err)
		}
		u.reqs <- seen{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: string(body), Header: r.Header.Clone()}
		if r.URL.Path == "/block" {
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", u.srv.Listener.Addr().String())
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	if network != "" {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatalf("upstream listen %s %s: %v", network, addr, err)
		}
		u.srv.Listener.Close()
		u.srv.Listener = ln
	}
	u.srv.Start()
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.srv.Close()
	})
	return u
}

func (u *upstream) addr(t *testing.T) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(u.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// next returns the next request the upstream received.
func (u *upstream) next(t *testing.T) seen {
	t.Helper()
	select {
	case s := <-u.reqs:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("upstream received no request")
		return seen{}
	}
}

func (u *upstream) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-u.reqs:
		t.Fatalf("upstream received an unexpected request: %+v", s)
	default:
	}
}

// loopback returns a random address in 127.0.0.0/8 (all of it is local on
// Linux), so that concurrent test runs do not collide on ports.
func loopback() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

func listenAddr(port uint16) netip.AddrPort { return netip.AddrPortFrom(loopback(), port) }

// client returns an HTTP client whose connections come from src, the
// instance's address as the proxy sees it.
func client(src netip.Addr) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 20 * time.Second}
}

func newProxy(t *testing.T, opts Options) *Proxy {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func mustApply(t *testing.T, p *Proxy, s Spec) Result {
	t.Helper()
	res, err := p.Apply(t.Context(), s)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

func url(ap netip.AddrPort, path string) string { return "http://" + ap.String() + path }

func TestForwardsMethodBodyQueryAndHeaders(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{})
	listen := listenAddr(9602)
	inst := loopback()
	mustApply(t, p, Spec{
		TenantID: "tenant-1",
		Upstream: up.addr(t),
		Networks: []Network{{ID: "net-1", Listen: listen, Instances: map[netip.Addr]string{inst: "dev-1"}}},
	})

	req, err := http.NewRequest(http.MethodPost, url(listen, "/openstack/2013-04-04/password?a=1&b=x%20y"), strings.NewReader("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Instance-ID", "X-Tenant-ID", "X-Forwarded-For", "X-Quantum-Network-ID",
		"X-Neutron-Network-ID", "X-Instance-ID-Signature", "X-Metadata-Provider", "Forwarded"} {
		req.Header.Set(h, "spoofed")
	}
	req.Header["X_Instance_ID"] = []string{"spoofed"}
	req.Header["x-tenant-id"] = []string{"spoofed"} // non-canonical spelling
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "hop-by-hop")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client(inst).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	got := up.next(t)
	if got.Method != http.MethodPost || got.Path != "/openstack/2013-04-04/password" || got.RawQuery != "a=1&b=x%20y" || got.Body != "s3cret" {
		t.Errorf("upstream got %s %s?%s body %q; want POST /openstack/2013-04-04/password?a=1&b=x%%20y body \"s3cret\"",
			got.Method, got.Path, got.RawQuery, got.Body)
	}
	want := map[string]string{
		"X-Forwarded-For":      inst.String(),
		"X-Instance-Id":        "dev-1",
		"X-Tenant-Id":          "tenant-1",
		"X-Quantum-Network-Id": "net-1",
		"X-Neutron-Network-Id": "net-1",
		"X-Custom":             "kept",
		"Content-Type":         "text/plain",
	}
	for h, v := range want {
		if vs := got.Header.Values(h); !slices.Equal(vs, []string{v}) {
			t.Errorf("upstream header %s = %q, want exactly [%q]", h, vs, v)
		}
	}
	for _, h := range []string{"X-Instance-Id-Signature", "X-Metadata-Provider", "Forwarded", "X_instance_id", "X_Instance_ID", "X-Hop"} {
		if vs, ok := got.Header[http.CanonicalHeaderKey(h)]; ok {
			t.Errorf("upstream received header %s = %q; it must be stripped", h, vs)
		}
		if vs, ok := got.Header[h]; ok {
			t.Errorf("upstream received header %s = %q; it must be stripped", h, vs)
		}
	}

	if resp.StatusCode != http.StatusCreated {
		t.Errorf("status %d, want the upstream's 201", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want the upstream's application/json", ct)
	}
	if want := `{"path":"/openstack/2013-04-04/password"}`; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
}

func TestMethodsForwardedAsSent(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{{ID: "n", Listen: listen}}})
	c := client(loopback())
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, "PATCH"} {
		req, err := http.NewRequest(m, url(listen, "/latest/meta-data/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		resp.Body.Close()
		if got := up.next(t); got.Method != m {
			t.Errorf("upstream got method %s, want %s", got.Method, m)
		}
	}
}

func TestUnknownInstanceGetsEmptyInstanceID(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{})
	listen := listenAddr(9601)
	known, stranger := loopback(), loopback()
	for stranger == known {
		stranger = loopback()
	}
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t),
		Networks: []Network{{ID: "n", Listen: listen, Instances: map[netip.Addr]string{known: "dev-known"}}}})

	req, err := http.NewRequest(http.MethodGet, url(listen, "/latest/meta-data/instance-id"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Instance-ID", "dev-known") // claims to be someone else
	resp, err := client(stranger).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := up.next(t)
	if vs := got.Header.Values("X-Instance-Id"); !slices.Equal(vs, []string{""}) {
		t.Errorf("X-Instance-ID = %q, want exactly one empty value", vs)
	}
	if v := got.Header.Get("X-Forwarded-For"); v != stranger.String() {
		t.Errorf("X-Forwarded-For = %q, want %s", v, stranger)
	}
}

func TestIPv6Upstream(t *testing.T) {
	up := newUpstream(t, "tcp6", "[::1]:0")
	p := newProxy(t, Options{})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{{ID: "n", Listen: listen}}})
	resp, _ := get(t, client(loopback()), url(listen, "/v6?q=1"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d, want 201", resp.StatusCode)
	}
	if got := up.next(t); got.Path != "/v6" || got.RawQuery != "q=1" {
		t.Errorf("upstream got %s?%s", got.Path, got.RawQuery)
	}
}

func TestNetworksAddedAndRemovedAtRuntime(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{})
	a, b, c := listenAddr(9601), listenAddr(9602), listenAddr(9603)
	spec := func(nets ...Network) Spec { return Spec{TenantID: "t", Upstream: up.addr(t), Networks: nets} }
	netA := Network{ID: "net-a", Listen: a}
	netB := Network{ID: "net-b", Listen: b}
	netC := Network{ID: "net-c", Listen: c}

	res := mustApply(t, p, spec(netA, netB))
	if !res.Changed || !sameAddrs(res.Opened, a, b) || len(res.Closed) != 0 {
		t.Fatalf("first Apply: %+v, want A and B opened", res)
	}

	// A keep-alive connection to A, with a request in flight across the Apply.
	ca := client(loopback())
	inflight := make(chan error, 1)
	go func() {
		resp, err := ca.Get(url(a, "/block"))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusCreated {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		inflight <- err
	}()
	if got := up.next(t); got.Path != "/block" {
		t.Fatalf("upstream got %s, want /block", got.Path)
	}

	res = mustApply(t, p, spec(netA, netC))
	if !res.Changed || !sameAddrs(res.Opened, c) || !sameAddrs(res.Closed, b) {
		t.Fatalf("second Apply: %+v, want C opened and B closed", res)
	}
	if _, err := net.DialTimeout("tcp", b.String(), 5*time.Second); err == nil {
		t.Errorf("removed listener %s still accepts connections", b)
	}
	resp, _ := get(t, client(loopback()), url(c, "/c"))
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("new listener: status %d", resp.StatusCode)
	}
	if got := up.next(t); got.Header.Get("X-Neutron-Network-ID") != "net-c" {
		t.Errorf("request on the new listener carried network %q, want net-c", got.Header.Get("X-Neutron-Network-ID"))
	}

	close(up.release)
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight request on the unchanged listener: %v", err)
	}
	// The same connection serves the next request: the listener was kept.
	var reused bool
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url(a, "/again"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = ca.Do(req)
	if err != nil {
		t.Fatalf("second request on the kept connection: %v", err)
	}
	resp.Body.Close()
	if !reused {
		t.Error("the keep-alive connection to the unchanged listener did not survive the Apply")
	}
	if got := up.next(t); got.Path != "/again" || got.Header.Get("X-Neutron-Network-ID") != "net-a" {
		t.Errorf("upstream got %s for network %q", got.Path, got.Header.Get("X-Neutron-Network-ID"))
	}

	// Removing every network closes every listener.
	res = mustApply(t, p, Spec{})
	if !sameAddrs(res.Closed, a, c) {
		t.Errorf("empty Apply closed %v, want A and C", res.Closed)
	}
	for _, ap := range []netip.AddrPort{a, c} {
		if _, err := net.DialTimeout("tcp", ap.String(), 5*time.Second); err == nil {
			t.Errorf("listener %s still accepts connections", ap)
		}
	}
}

func sameAddrs(got []netip.AddrPort, want ...netip.AddrPort) bool {
	slices.SortFunc(want, netip.AddrPort.Compare)
	return slices.Equal(got, want)
}

func TestIdenticalApplyChangesNothing(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{})
	listen, inst := listenAddr(9601), loopback()
	mk := func() Spec { // a fresh but equal Spec each time
		return Spec{TenantID: "t", Upstream: up.addr(t),
			Networks: []Network{{ID: "n", Listen: listen, Instances: map[netip.Addr]string{inst: "dev"}}}}
	}
	if res := mustApply(t, p, mk()); !res.Changed {
		t.Fatalf("first Apply reported no change: %+v", res)
	}
	res := mustApply(t, p, mk())
	if res.Changed || len(res.Opened) != 0 || len(res.Closed) != 0 {
		t.Errorf("identical Apply: %+v, want no change", res)
	}
}

func TestInstanceMapAndUpstreamSwap(t *testing.T) {
	up1, up2 := newUpstream(t, "", ""), newUpstream(t, "", "")
	p := newProxy(t, Options{})
	listen, inst := listenAddr(9601), loopback()
	c := client(inst)
	spec := Spec{TenantID: "t1", Upstream: up1.addr(t),
		Networks: []Network{{ID: "n", Listen: listen, Instances: map[netip.Addr]string{inst: "dev-old"}}}}
	mustApply(t, p, spec)
	get(t, c, url(listen, "/1"))
	if got := up1.next(t); got.Header.Get("X-Instance-ID") != "dev-old" {
		t.Fatalf("X-Instance-ID %q, want dev-old", got.Header.Get("X-Instance-ID"))
	}

	spec.Networks = []Network{{ID: "n", Listen: listen, Instances: map[netip.Addr]string{inst: "dev-new"}}}
	res := mustApply(t, p, spec)
	if !res.Changed || len(res.Opened)+len(res.Closed) != 0 {
		t.Fatalf("instance map change: %+v, want Changed without listener changes", res)
	}
	get(t, c, url(listen, "/2"))
	if got := up1.next(t); got.Header.Get("X-Instance-ID") != "dev-new" {
		t.Errorf("after swap X-Instance-ID %q, want dev-new", got.Header.Get("X-Instance-ID"))
	}

	spec.Upstream, spec.TenantID = up2.addr(t), "t2"
	if res := mustApply(t, p, spec); !res.Changed || len(res.Opened)+len(res.Closed) != 0 {
		t.Fatalf("upstream change: %+v, want Changed without listener changes", res)
	}
	resp, _ := get(t, c, url(listen, "/3"))
	if got := resp.Header.Get("X-Upstream"); got != up2.srv.Listener.Addr().String() {
		t.Errorf("answered by upstream %q, want the new one %s", got, up2.srv.Listener.Addr())
	}
	if got := up2.next(t); got.Path != "/3" || got.Header.Get("X-Tenant-ID") != "t2" {
		t.Errorf("new upstream got %s with tenant %q", got.Path, got.Header.Get("X-Tenant-ID"))
	}
	up1.none(t)
}

func TestUpstreamDownIs502(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close() // nothing listens there any more

	p := newProxy(t, Options{})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: dead, Networks: []Network{{ID: "n", Listen: listen}}})
	resp, body := get(t, client(loopback()), url(listen, "/"))
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(body, "upstream unavailable") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("body %q (%s), want a short text error", body, resp.Header.Get("Content-Type"))
	}
}

func TestUpstreamTimeoutIs504(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{UpstreamTimeout: 100 * time.Millisecond})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{{ID: "n", Listen: listen}}})
	resp, body := get(t, client(loopback()), url(listen, "/block"))
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d (%q), want 504", resp.StatusCode, body)
	}
}

func TestRequestBodyIsBounded(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{MaxBodyBytes: 16})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{{ID: "n", Listen: listen}}})
	c := client(loopback())
	big := strings.Repeat("x", 100)

	// Declared length too large: refused before anything goes upstream.
	resp, err := c.Post(url(listen, "/password"), "text/plain", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("declared large body: status %d, want 413", resp.StatusCode)
	}
	up.none(t)

	// Chunked body that grows too large while streaming.
	req, err := http.NewRequest(http.MethodPost, url(listen, "/password"), io.MultiReader(strings.NewReader(big)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked large body: status %d, want 413", resp.StatusCode)
	}

	up.none(t)

	// Small bodies pass, declared or chunked.
	for _, chunked := range []bool{false, true} {
		req, err := http.NewRequest(http.MethodPost, url(listen, "/password"), io.MultiReader(strings.NewReader("small")))
		if err != nil {
			t.Fatal(err)
		}
		if !chunked {
			req.ContentLength = 5
		}
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("small body (chunked %v): status %d", chunked, resp.StatusCode)
		}
		if got := up.next(t); got.Body != "small" {
			t.Errorf("small body (chunked %v): upstream got %q", chunked, got.Body)
		}
	}
}

func TestSlowHeaderConnectionIsClosed(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{ReadHeaderTimeout: 100 * time.Millisecond})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{{ID: "n", Listen: listen}}})
	conn, err := net.DialTimeout("tcp", listen.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil { // header never finished
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the proxy kept a connection with an unfinished header open for 10 s")
	}
	up.none(t)
}

func TestBindFailureKeepsPreviousState(t *testing.T) {
	up := newUpstream(t, "", "")
	p := newProxy(t, Options{})
	a, d, inst := listenAddr(9601), listenAddr(9604), loopback()
	good := Spec{TenantID: "t", Upstream: up.addr(t),
		Networks: []Network{{ID: "net-a", Listen: a, Instances: map[netip.Addr]string{inst: "dev-a"}}}}
	mustApply(t, p, good)

	absent := netip.MustParseAddrPort("192.0.2.77:9602") // TEST-NET-1: not on this host
	bad := Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{
		{ID: "net-a", Listen: a, Instances: map[netip.Addr]string{inst: "changed"}},
		{ID: "net-d", Listen: d},
		{ID: "net-missing", Listen: absent},
	}}
	_, err := p.Apply(t.Context(), bad)
	if err == nil {
		t.Fatal("Apply bound an address the host does not have")
	}
	if !strings.Contains(err.Error(), "net-missing") || !strings.Contains(err.Error(), absent.String()) {
		t.Errorf("error %q does not name the network and the address", err)
	}
	if _, err := net.DialTimeout("tcp", d.String(), 5*time.Second); err == nil {
		t.Errorf("listener %s opened by the failed Apply is still open", d)
	}
	get(t, client(inst), url(a, "/after-failure"))
	if got := up.next(t); got.Header.Get("X-Instance-ID") != "dev-a" {
		t.Errorf("after a failed Apply X-Instance-ID = %q, want the previous dev-a", got.Header.Get("X-Instance-ID"))
	}
	if res := mustApply(t, p, good); res.Changed {
		t.Errorf("re-applying the previous spec after a failure changed %+v", res)
	}
}

func TestInvalidSpec(t *testing.T) {
	up := netip.MustParseAddrPort("[fdca:3ba5:a17a:acda::1]:9697")
	l1, l2 := netip.MustParseAddrPort("127.0.0.1:9601"), netip.MustParseAddrPort("127.0.0.1:9602")
	tests := []struct {
		name  string
		spec  Spec
		field string
	}{
		{"no tenant", Spec{Upstream: up, Networks: []Network{{ID: "n", Listen: l1}}}, "tenant_id"},
		{"tenant with newline", Spec{TenantID: "t\r\nX: y", Upstream: up, Networks: []Network{{ID: "n", Listen: l1}}}, "tenant_id"},
		{"no upstream", Spec{TenantID: "t", Networks: []Network{{ID: "n", Listen: l1}}}, "upstream"},
		{"upstream port 0", Spec{TenantID: "t", Upstream: netip.AddrPortFrom(up.Addr(), 0), Networks: []Network{{ID: "n", Listen: l1}}}, "upstream"},
		{"no network id", Spec{TenantID: "t", Upstream: up, Networks: []Network{{Listen: l1}}}, "networks[0].id"},
		{"duplicate network id", Spec{TenantID: "t", Upstream: up, Networks: []Network{{ID: "n", Listen: l1}, {ID: "n", Listen: l2}}}, "networks[1].id"},
		{"no listen", Spec{TenantID: "t", Upstream: up, Networks: []Network{{ID: "n"}}}, "networks[0].listen"},
		{"listen port 0", Spec{TenantID: "t", Upstream: up, Networks: []Network{{ID: "n", Listen: netip.AddrPortFrom(l1.Addr(), 0)}}}, "networks[0].listen"},
		{"listen unspecified", Spec{TenantID: "t", Upstream: up, Networks: []Network{{ID: "n", Listen: netip.MustParseAddrPort("0.0.0.0:9601")}}}, "networks[0].listen"},
		{"duplicate listen", Spec{TenantID: "t", Upstream: up, Networks: []Network{{ID: "n", Listen: l1}, {ID: "m", Listen: l1}}}, "networks[1].listen"},
		{"bad device id", Spec{TenantID: "t", Upstream: up, Networks: []Network{{ID: "n", Listen: l1,
			Instances: map[netip.Addr]string{netip.MustParseAddr("10.0.0.5"): "a\nb"}}}}, "networks[0].instances[10.0.0.5]"},
	}
	p := newProxy(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Apply(t.Context(), tt.spec)
			if err == nil {
				t.Fatal("Apply accepted an invalid spec")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestCloseStopsEverything(t *testing.T) {
	up := newUpstream(t, "", "")
	p := New(Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	listen := listenAddr(9601)
	mustApply(t, p, Spec{TenantID: "t", Upstream: up.addr(t), Networks: []Network{{ID: "n", Listen: listen}}})
	get(t, client(loopback()), url(listen, "/"))
	if err := p.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", listen.String(), 5*time.Second); err == nil {
		t.Error("listener still open after Close")
	}
	if _, err := p.Apply(t.Context(), Spec{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSpecFromDocument(t *testing.T) {
	d := &model.Document{
		TenantID:     "tenant",
		Orchestrator: model.Orchestrator{Address: netip.MustParseAddr("fdca:3ba5:a17a:acda::1"), MetadataPort: 9697},
		Networks: []model.Network{
			{ID: "mgt", Type: model.NetworkManagement, Interface: model.Interface{IfName: "ge0",
				Addresses: []netip.Prefix{netip.MustParsePrefix("fdca:3ba5:a17a:acda::5/64")}}},
			{ID: "ext", Type: model.NetworkExternal, Interface: model.Interface{IfName: "ge1",
				Addresses: []netip.Prefix{netip.MustParsePrefix("172.16.77.2/24")}}},
			{ID: "int", Type: model.NetworkInternal, Interface: model.Interface{IfName: "ge2",
				Addresses: []netip.Prefix{netip.MustParsePrefix("fdd6::1/64"), netip.MustParsePrefix("192.168.0.9/24"), netip.MustParsePrefix("192.168.0.1/24")}},
				Allocations: []model.Allocation{
					{DeviceID: "dev-5", IPAddresses: map[netip.Addr]bool{netip.MustParseAddr("192.168.0.5"): true, netip.MustParseAddr("fdd6::5"): true}},
					{DeviceID: "dev-6", IPAddresses: map[netip.Addr]bool{netip.MustParseAddr("192.168.0.6"): false}},
				}},
			{ID: "iso", Type: model.NetworkIsolated, Interface: model.Interface{IfName: "ge3",
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}}},
			{ID: "v6only", Type: model.NetworkInternal, Interface: model.Interface{IfName: "ge4",
				Addresses: []netip.Prefix{netip.MustParsePrefix("fdd7::1/64")}}},
		},
	}
	s, err := SpecFromDocument(d)
	if err != nil {
		t.Fatal(err)
	}
	if s.TenantID != "tenant" || s.Upstream != netip.MustParseAddrPort("[fdca:3ba5:a17a:acda::1]:9697") {
		t.Errorf("tenant %q upstream %s", s.TenantID, s.Upstream)
	}
	want := []Network{
		{ID: "int", Listen: netip.MustParseAddrPort("192.168.0.1:9602"), Instances: map[netip.Addr]string{
			netip.MustParseAddr("192.168.0.5"): "dev-5", netip.MustParseAddr("fdd6::5"): "dev-5", netip.MustParseAddr("192.168.0.6"): "dev-6"}},
		{ID: "iso", Listen: netip.MustParseAddrPort("10.1.0.1:9603"), Instances: map[netip.Addr]string{}},
	}
	if len(s.Networks) != len(want) {
		t.Fatalf("networks %+v, want %+v", s.Networks, want)
	}
	for i := range want {
		g, w := s.Networks[i], want[i]
		if g.ID != w.ID || g.Listen != w.Listen || len(g.Instances) != len(w.Instances) {
			t.Errorf("networks[%d] = %+v, want %+v", i, g, w)
			continue
		}
		for ip, dev := range w.Instances {
			if g.Instances[ip] != dev {
				t.Errorf("networks[%d].instances[%s] = %q, want %q", i, ip, g.Instances[ip], dev)
			}
		}
	}
}
