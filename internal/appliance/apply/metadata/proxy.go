// Package metadata runs the router's per-network metadata proxies in process.
//
// Instances on a tenant network send their metadata requests to
// 169.254.169.254:80; the router's firewall DNATs them to the router's own
// IPv4 address on that network, port 9600+N. A Proxy listens on those
// addresses and forwards every request to the orchestrator's metadata service,
// adding the headers that identify the instance (X-Forwarded-For,
// X-Instance-ID, X-Tenant-ID and the network id) and removing any the
// instance sent itself, so that it cannot claim to be another instance.
//
// Apply reconciles the listeners with a Spec: it opens the new ones, closes
// the removed ones and keeps the others (their connections survive), and
// swaps the tenant, upstream and instance maps atomically for the next
// request.
package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the Options left zero.
const (
	DefaultUpstreamTimeout   = 30 * time.Second
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultDrainTimeout      = 5 * time.Second
)

// The headers the proxy sets on every upstream request.
const (
	HeaderForwardedFor     = "X-Forwarded-For"
	HeaderInstanceID       = "X-Instance-ID"
	HeaderTenantID         = "X-Tenant-ID"
	HeaderQuantumNetworkID = "X-Quantum-Network-ID"
	HeaderNeutronNetworkID = "X-Neutron-Network-ID"
)

// spoofable lists the headers an instance must not be able to send upstream:
// the ones the proxy sets, and those the orchestrator or Nova trust for
// identity (signatures, router and provider ids).
var spoofable = []string{
	HeaderForwardedFor,
	HeaderInstanceID,
	HeaderTenantID,
	HeaderQuantumNetworkID,
	HeaderNeutronNetworkID,
	"X-Instance-ID-Signature",
	"X-Tenant-ID-Signature",
	"X-Neutron-Router-ID",
	"X-Metadata-Provider",
	"X-Metadata-Provider-Signature",
	"Forwarded",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
}

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("metadata: proxy closed")

// Spec is the desired state of the proxy: who the instances belong to, where
// requests go, and one listener per tenant network.
type Spec struct {
	TenantID string
	// Upstream is the orchestrator's metadata service (IPv6 or IPv4).
	Upstream netip.AddrPort
	Networks []Network
}

// Network is one tenant network the router serves metadata on.
type Network struct {
	// ID is the network id, sent upstream as X-Neutron-Network-ID.
	ID string
	// Listen is the router's address on the network and the proxy port (9600+N).
	Listen netip.AddrPort
	// Instances maps an instance's fixed IP to its device (instance) id.
	Instances map[netip.Addr]string
}

// Options tune a Proxy. The zero value is usable.
type Options struct {
	// Logger receives the proxy's logs; nil means slog.Default().
	Logger *slog.Logger
	// UpstreamTimeout bounds each upstream exchange (default 30 s).
	UpstreamTimeout time.Duration
	// Transport sends the upstream requests; nil means a transport that
	// ignores proxy environment variables.
	Transport http.RoundTripper
	// MaxBodyBytes bounds a request body (default 1 MiB); larger ones get 413.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds the request header (default 64 KiB).
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time to read a request header (default 10 s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 60 s).
	IdleTimeout time.Duration
	// DrainTimeout is how long in-flight requests on a removed listener may
	// finish before their connections are closed (default 5 s).
	DrainTimeout time.Duration
}

// Result says what an Apply changed.
type Result struct {
	// Opened and Closed list the listeners opened and closed, in address order.
	Opened []netip.AddrPort
	Closed []netip.AddrPort
	// Changed is true if anything changed: listeners, tenant, upstream,
	// network ids or instance maps.
	Changed bool
}

// Proxy is a set of metadata listeners, one per tenant network. It is safe
// for concurrent use.
type Proxy struct {
	opts      Options
	log       *slog.Logger
	transport http.RoundTripper
	rp        *httputil.ReverseProxy

	// state is what requests read; Apply replaces it as a whole.
	state atomic.Pointer[state]

	mu        sync.Mutex // serializes Apply and Close; guards the fields below
	listeners map[netip.AddrPort]*listener
	closed    bool
	serving   sync.WaitGroup // Serve and drain goroutines
}

// state is an immutable snapshot of a Spec, indexed by listen address.
type state struct {
	tenantID string
	upstream netip.AddrPort
	networks map[netip.AddrPort]*network
}

type network struct {
	id        string
	instances map[netip.Addr]string
}

func (n *network) equal(o *network) bool {
	return n.id == o.id && maps.Equal(n.instances, o.instances)
}

// listener is one open listening socket and the server behind it.
type listener struct {
	addr    netip.AddrPort
	ln      net.Listener
	srv     *http.Server
	closing atomic.Bool
	once    sync.Once
	err     error
}

// Close closes the socket once; later calls (from http.Server) return nil.
func (l *listener) Close() error {
	l.once.Do(func() {
		l.closing.Store(true)
		l.err = l.ln.Close()
	})
	return nil
}

func (l *listener) Accept() (net.Conn, error) { return l.ln.Accept() }
func (l *listener) Addr() net.Addr            { return l.ln.Addr() }

// reqInfo travels in the request context from the handler to the rewrite
// and error hooks of the reverse proxy.
type reqInfo struct {
	upstream netip.AddrPort
	tenantID string
	network  string
	client   netip.Addr
	instance string
}

type reqInfoKey struct{}

// New returns a Proxy with no listeners; Apply opens them.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	transport := opts.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // never send metadata through an environment proxy
		t.MaxIdleConnsPerHost = 16
		transport = t
	}
	p := &Proxy{
		opts:      opts,
		log:       opts.Logger,
		transport: transport,
		listeners: map[netip.AddrPort]*listener{},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      transport,
		ErrorHandler:   p.proxyError,
		ModifyResponse: p.logResponse,
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	p.state.Store(&state{networks: map[netip.AddrPort]*network{}})
	return p
}

// Apply makes the listeners and the request state match s. It opens the
// listeners of new addresses, closes those no longer wanted, keeps the others
// untouched, and publishes the new tenant, upstream and instance maps for the
// next request. If s is invalid or a listener cannot be opened, Apply returns
// an error and changes nothing.
func (p *Proxy) Apply(ctx context.Context, s Spec) (Result, error) {
	next, err := compile(s)
	if err != nil {
		return Result{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Result{}, ErrClosed
	}
	cur := p.state.Load()

	// Open every new socket before touching anything, so that a failure
	// leaves the proxy as it was.
	var res Result
	var opened []*listener
	for _, addr := range sortedAddrs(next.networks) {
		if _, ok := p.listeners[addr]; ok {
			continue
		}
		l, err := p.listen(ctx, addr)
		if err != nil {
			for _, o := range opened {
				_ = o.Close() // records its error in o.err
				if o.err != nil {
					err = errors.Join(err, fmt.Errorf("closing %s: %w", o.addr, o.err))
				}
			}
			return Result{}, fmt.Errorf("metadata: network %s: listen on %s: %w", next.networks[addr].id, addr, err)
		}
		opened = append(opened, l)
		res.Opened = append(res.Opened, addr)
	}

	p.state.Store(next)
	for _, l := range opened {
		p.listeners[l.addr] = l
		p.serve(l)
		p.log.LogAttrs(ctx, slog.LevelInfo, "metadata proxy listening",
			slog.String("network_id", next.networks[l.addr].id), slog.String("listen", l.addr.String()))
	}
	for _, addr := range sortedAddrs(p.listeners) {
		if _, ok := next.networks[addr]; ok {
			continue
		}
		l := p.listeners[addr]
		delete(p.listeners, addr)
		p.drain(ctx, l)
		res.Closed = append(res.Closed, addr)
		attrs := []slog.Attr{slog.String("listen", addr.String())}
		if n := cur.networks[addr]; n != nil {
			attrs = append(attrs, slog.String("network_id", n.id))
		}
		p.log.LogAttrs(ctx, slog.LevelInfo, "metadata proxy stopped listening", attrs...)
	}

	res.Changed = len(res.Opened) > 0 || len(res.Closed) > 0 ||
		cur.tenantID != next.tenantID || cur.upstream != next.upstream
	for addr, n := range next.networks {
		if old := cur.networks[addr]; old != nil && !old.equal(n) {
			res.Changed = true
			p.log.LogAttrs(ctx, slog.LevelInfo, "metadata proxy network updated",
				slog.String("network_id", n.id), slog.String("listen", addr.String()),
				slog.Int("instances", len(n.instances)))
		}
	}
	if cur.upstream != next.upstream && next.upstream.IsValid() {
		p.log.LogAttrs(ctx, slog.LevelInfo, "metadata proxy upstream", slog.String("upstream", next.upstream.String()))
	}
	return res, nil
}

// Close stops every listener, waits (bounded by ctx) for in-flight requests
// to finish, and releases idle upstream connections. Apply fails afterwards.
func (p *Proxy) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, addr := range sortedAddrs(p.listeners) {
		l := p.listeners[addr]
		delete(p.listeners, addr)
		_ = l.Close() // records its error in l.err
		if l.err != nil {
			errs = append(errs, fmt.Errorf("metadata: closing %s: %w", addr, l.err))
		}
		if err := l.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metadata: shutting down %s: %w", addr, err))
			if err := l.srv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("metadata: closing connections on %s: %w", addr, err))
			}
		}
	}
	p.state.Store(&state{networks: map[netip.AddrPort]*network{}})
	done := make(chan struct{})
	go func() { p.serving.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("metadata: waiting for listeners to stop: %w", ctx.Err()))
	}
	if ci, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// listen binds exactly addr; it fails if the address is not (yet) local.
func (p *Proxy) listen(ctx context.Context, addr netip.AddrPort) (*listener, error) {
	network := "tcp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "tcp6"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	l := &listener{addr: addr, ln: ln}
	l.srv = &http.Server{
		Handler:           p.handler(addr),
		ReadHeaderTimeout: p.opts.ReadHeaderTimeout,
		IdleTimeout:       p.opts.IdleTimeout,
		MaxHeaderBytes:    p.opts.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(p.log.Handler().WithAttrs([]slog.Attr{
			slog.String("listen", addr.String())}), slog.LevelWarn),
	}
	return l, nil
}

// serve runs the server of l until its listener is closed.
func (p *Proxy) serve(l *listener) {
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		err := l.srv.Serve(l)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closing.Load() {
			p.log.LogAttrs(context.Background(), slog.LevelError, "metadata proxy listener failed",
				slog.String("listen", l.addr.String()), slog.Any("error", err))
		}
	}()
}

// drain closes l's socket now, so that the address is free when Apply
// returns, and lets its in-flight requests finish in the background for at
// most DrainTimeout before closing their connections.
func (p *Proxy) drain(ctx context.Context, l *listener) {
	_ = l.Close()
	if l.err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "metadata proxy: closing listener",
			slog.String("listen", l.addr.String()), slog.Any("error", l.err))
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.DrainTimeout)
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		defer cancel()
		if err := l.srv.Shutdown(dctx); err != nil {
			if cerr := l.srv.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			p.log.LogAttrs(dctx, slog.LevelWarn, "metadata proxy: draining removed listener",
				slog.String("listen", l.addr.String()), slog.Any("error", err))
		}
	}()
}

// handler serves the requests arriving on the listener of addr.
func (p *Proxy) handler(addr netip.AddrPort) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := p.state.Load()
		n := st.networks[addr]
		if n == nil {
			// The listener is being removed.
			http.Error(w, "metadata proxy: network not configured", http.StatusServiceUnavailable)
			return
		}
		client, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			// Cannot happen with a TCP listener; refuse rather than guess.
			http.Error(w, "metadata proxy: unknown client address", http.StatusBadRequest)
			return
		}
		info := &reqInfo{
			upstream: st.upstream,
			tenantID: st.tenantID,
			network:  n.id,
			client:   client.Addr().Unmap(),
		}
		info.instance = n.instances[info.client]
		ctx, cancel := context.WithTimeout(r.Context(), p.opts.UpstreamTimeout)
		defer cancel()
		if status, msg := p.readBody(w, r); status != 0 {
			p.reject(w, r, info, status, msg)
			return
		}
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, reqInfoKey{}, info)))
	})
}

// readBody reads the whole request body (it is small) before anything goes
// upstream, so that an oversized or stalled body is refused without sending
// the upstream a truncated request. It returns a status and message on failure.
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.ContentLength > p.opts.MaxBodyBytes {
		return http.StatusRequestEntityTooLarge, "metadata proxy: request body too large"
	}
	if r.ContentLength == 0 {
		return 0, ""
	}
	// Bound the time to receive the body like the upstream exchange.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(p.opts.UpstreamTimeout)); err != nil {
		return http.StatusInternalServerError, "metadata proxy: cannot read request"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, "metadata proxy: request body too large"
		}
		return http.StatusBadRequest, "metadata proxy: cannot read request body"
	}
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return http.StatusInternalServerError, "metadata proxy: cannot read request"
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return 0, ""
}

// rewrite turns the instance's request into the upstream request.
func rewrite(pr *httputil.ProxyRequest) {
	info := pr.In.Context().Value(reqInfoKey{}).(*reqInfo)
	out := pr.Out
	// Out.URL is a copy of the incoming URL: keep its path and query.
	out.URL.Scheme = "http"
	out.URL.Host = info.upstream.String()
	out.URL.User = nil
	out.Host = ""
	for name := range out.Header {
		if isSpoofable(name) {
			delete(out.Header, name)
		}
	}
	out.Header.Set(HeaderForwardedFor, info.client.String())
	out.Header.Set(HeaderInstanceID, info.instance)
	out.Header.Set(HeaderTenantID, info.tenantID)
	out.Header.Set(HeaderQuantumNetworkID, info.network)
	out.Header.Set(HeaderNeutronNetworkID, info.network)
}

// isSpoofable reports whether an instance's header must be dropped. Names
// are compared with underscores read as dashes, because WSGI servers
// upstream map both spellings to the same variable.
func isSpoofable(name string) bool {
	norm := strings.ReplaceAll(name, "_", "-")
	for _, h := range spoofable {
		if strings.EqualFold(norm, h) {
			return true
		}
	}
	return false
}

func (p *Proxy) logResponse(resp *http.Response) error {
	info := resp.Request.Context().Value(reqInfoKey{}).(*reqInfo)
	p.log.LogAttrs(resp.Request.Context(), slog.LevelDebug, "metadata request",
		slog.String("network_id", info.network), slog.String("instance_ip", info.client.String()),
		slog.String("instance_id", info.instance), slog.String("method", resp.Request.Method),
		slog.String("path", resp.Request.URL.Path), slog.Int("status", resp.StatusCode))
	return nil
}

// proxyError answers a request whose upstream exchange failed.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	info := r.Context().Value(reqInfoKey{}).(*reqInfo)
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		p.logFailure(r, info, http.StatusGatewayTimeout, err)
		http.Error(w, "metadata proxy: upstream timed out", http.StatusGatewayTimeout)
	case errors.Is(err, context.Canceled):
		// The instance went away; nobody reads the answer.
		p.logFailure(r, info, http.StatusBadGateway, err)
		w.WriteHeader(http.StatusBadGateway)
	default:
		p.logFailure(r, info, http.StatusBadGateway, err)
		http.Error(w, "metadata proxy: upstream unavailable", http.StatusBadGateway)
	}
}

func (p *Proxy) reject(w http.ResponseWriter, r *http.Request, info *reqInfo, status int, msg string) {
	p.log.LogAttrs(r.Context(), slog.LevelWarn, "metadata request rejected",
		slog.String("network_id", info.network), slog.String("instance_ip", info.client.String()),
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status))
	w.Header().Set("Connection", "close")
	http.Error(w, msg, status)
}

func (p *Proxy) logFailure(r *http.Request, info *reqInfo, status int, err error) {
	p.log.LogAttrs(r.Context(), slog.LevelWarn, "metadata upstream request failed",
		slog.String("network_id", info.network), slog.String("instance_ip", info.client.String()),
		slog.String("upstream", info.upstream.String()), slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.Int("status", status), slog.Any("error", err))
}

// compile validates s and turns it into a state. Errors name the field.
func compile(s Spec) (*state, error) {
	st := &state{tenantID: s.TenantID, upstream: s.Upstream, networks: make(map[netip.AddrPort]*network, len(s.Networks))}
	if len(s.Networks) > 0 {
		if s.TenantID == "" {
			return nil, errors.New("metadata: tenant_id: required")
		}
		if !s.Upstream.IsValid() || s.Upstream.Addr().IsUnspecified() || s.Upstream.Port() == 0 {
			return nil, fmt.Errorf("metadata: upstream: %q is not an address:port", s.Upstream)
		}
	}
	if err := checkHeaderValue(s.TenantID); err != nil {
		return nil, fmt.Errorf("metadata: tenant_id: %w", err)
	}
	ids := map[string]int{}
	for i, n := range s.Networks {
		path := fmt.Sprintf("metadata: networks[%d]", i)
		if n.ID == "" {
			return nil, fmt.Errorf("%s.id: required", path)
		}
		if err := checkHeaderValue(n.ID); err != nil {
			return nil, fmt.Errorf("%s.id: %w", path, err)
		}
		if j, dup := ids[n.ID]; dup {
			return nil, fmt.Errorf("%s.id: %q is also the id of networks[%d]", path, n.ID, j)
		}
		ids[n.ID] = i
		if !n.Listen.IsValid() || n.Listen.Addr().IsUnspecified() || n.Listen.Port() == 0 || n.Listen.Addr().Zone() != "" {
			return nil, fmt.Errorf("%s.listen: %q is not a unicast address:port", path, n.Listen)
		}
		listen := netip.AddrPortFrom(n.Listen.Addr().Unmap(), n.Listen.Port())
		if other, dup := st.networks[listen]; dup {
			return nil, fmt.Errorf("%s.listen: %s is also the address of network %s", path, listen, other.id)
		}
		nw := &network{id: n.ID, instances: make(map[netip.Addr]string, len(n.Instances))}
		for ip, dev := range n.Instances {
			if !ip.IsValid() {
				return nil, fmt.Errorf("%s.instances: invalid address", path)
			}
			if err := checkHeaderValue(dev); err != nil {
				return nil, fmt.Errorf("%s.instances[%s]: %w", path, ip, err)
			}
			nw.instances[ip.Unmap()] = dev
		}
		st.networks[listen] = nw
	}
	return st, nil
}

// checkHeaderValue refuses what cannot travel in an HTTP header value.
func checkHeaderValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%q contains a control character", v)
		}
	}
	return nil
}

func sortedAddrs[V any](m map[netip.AddrPort]V) []netip.AddrPort {
	return slices.SortedFunc(maps.Keys(m), func(a, b netip.AddrPort) int { return a.Compare(b) })
}
