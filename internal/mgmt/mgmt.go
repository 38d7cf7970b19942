// Package mgmt is the orchestrator's management HTTP API: the original's
// PUT routes (reference §11: /poll, /workers/debug, /config/reload,
// /global/debug/..., /tenant/..., /resource/..., /router/...) carrying out
// operator commands through the scheduler, JSON reads of the resources,
// workers and debug modes, Prometheus metrics (/metrics) and /healthz.
//
// Unlike the original, every request that is not a GET needs a bearer token
// (Authorization: Bearer <[api] auth_token>); without a token the API may
// only listen on a loopback address.
package mgmt

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// Scheduler is what the API drives and reads; *scheduler.Scheduler
// implements it.
type Scheduler interface {
	Command(ctx context.Context, c event.CommandArgs) error
	Resources() []worker.ResourceStatus
	Resource(id string) (worker.ResourceStatus, bool)
	Workers() []worker.WorkerStatus
	DebugModes() store.DebugModes
}

// DefaultCommandTimeout bounds a command by default.
const DefaultCommandTimeout = 30 * time.Second

// Options configure a Server.
type Options struct {
	// Scheduler carries out the commands; required.
	Scheduler Scheduler
	// Addr is where the API listens, host:port (api_listen, api_port).
	Addr string
	// Token is the bearer token of every request but GETs ([api]
	// auth_token). Empty is allowed only when Addr is a loopback address.
	Token string
	// RouterTenant returns a router's tenant, for the deprecated
	// /router/update and /router/rebuild routes: as the original's CLI
	// looked it up in Neutron, they then also start managing a router not
	// managed yet. It returns an error wrapping provider.ErrNotFound for an
	// unknown router. nil: those routes act on managed routers only.
	RouterTenant func(ctx context.Context, routerID string) (string, error)
	// StaleAfter returns how long a resource may go without an event
	// before it is shown as stale (health.StaleAfter of the health check
	// period); nil: none is.
	StaleAfter func() time.Duration
	// Status returns the status a resource in instance state st has in
	// the network API (a router's ACTIVE, BUILD, DOWN or ERROR), shown as
	// "status"; nil, or false: none is shown.
	Status func(r event.Resource, st state.InstanceState) (string, bool)
	// Collectors are exposed on /metrics besides the scheduler's own.
	Collectors []prometheus.Collector
	// CommandTimeout bounds one command (DefaultCommandTimeout if zero).
	CommandTimeout time.Duration
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
}

// Server is the management API.
type Server struct {
	opts    Options
	log     *slog.Logger
	token   atomic.Pointer[[sha256.Size]byte] // nil: no token
	handler http.Handler

	mu  sync.Mutex
	ln  net.Listener
	srv *http.Server
}

// CheckBinding enforces the token rule: without a token, addr must be a
// loopback address (127.0.0.0/8, ::1 or localhost).
func CheckBinding(addr, token string) error {
	if token != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("management API address %q: %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	shown := host
	if shown == "" {
		shown = "every address"
	}
	return fmt.Errorf("the management API would listen on %s (%s), which is not a loopback address, "+
		"and [api] auth_token is not set: set a token, or set api_listen to 127.0.0.1, ::1 or localhost", shown, addr)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New returns a server; it fails when the token rule is broken (see
// CheckBinding).
func New(opts Options) (*Server, error) {
	if opts.Scheduler == nil {
		return nil, errors.New("mgmt: no scheduler")
	}
	if err := CheckBinding(opts.Addr, opts.Token); err != nil {
		return nil, fmt.Errorf("mgmt: %w", err)
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log}
	s.setToken(opts.Token)
	reg := prometheus.NewRegistry()
	cs := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newSchedulerCollector(opts.Scheduler, s.stale),
	}, opts.Collectors...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mgmt: metrics: %w", err)
		}
	}
	s.handler = s.routes(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: promLogger{log}}))
	return s, nil
}

// SetToken replaces the bearer token (config-reload); the token rule
// applies.
func (s *Server) SetToken(token string) error {
	if err := CheckBinding(s.opts.Addr, token); err != nil {
		return fmt.Errorf("mgmt: %w", err)
	}
	s.setToken(token)
	return nil
}

func (s *Server) setToken(token string) {
	if token == "" {
		s.token.Store(nil)
		return
	}
	h := sha256.Sum256([]byte(token))
	s.token.Store(&h)
}

// Handler returns the API's handler (the server's, for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the API's address, so that a busy port fails the start
// before anything else runs; Serve then serves.
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mgmt: listen: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.opts.CommandTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return ln.Addr(), nil
}

// Serve serves the API on the listener of Listen until Shutdown; it then
// returns nil.
func (s *Server) Serve() error {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.mu.Unlock()
	if srv == nil {
		return errors.New("mgmt: Serve before Listen")
	}
	s.log.Info("management API listening", "addr", ln.Addr().String(), "token", s.token.Load() != nil)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mgmt: serve: %w", err)
	}
	return nil
}

// Shutdown stops the server, letting requests under way finish until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	ln.Close() // if Serve never ran
	if err != nil {
		return fmt.Errorf("mgmt: shutdown: %w", err)
	}
	return nil
}

// authorize requires the bearer token of every request but GET and HEAD.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := s.token.Load()
		if r.Method == http.MethodGet || r.Method == http.MethodHead || want == nil {
			next.ServeHTTP(w, r)
			return
		}
		scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		cred = strings.TrimSpace(cred)
		if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="astara"`)
			writeError(w, http.StatusUnauthorized, errors.New("a bearer token is required (Authorization: Bearer <token>)"))
			return
		}
		got := sha256.Sum256([]byte(cred))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.log.Warn("management API: wrong token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, errors.New("wrong token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// promLogger routes promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
