// Package netapi is the embedded network API of standalone mode: a
// faithful subset of Neutron's v2.0 REST API (networks, subnets, ports,
// routers with interfaces, gateways and extra routes, floating IPs, tags)
// that standard clients (gophercloud, the openstack CLI) use as they use
// Neutron. Objects live in a bbolt database under the state directory;
// every change is one transaction and emits the notifications a real
// Neutron (Zed) emits, through Notifiers (the orchestrator's in-process
// event source, optionally AMQP).
//
// Authentication is Neutron's noauth: no token is checked. X-Project-Id
// names the caller's project, X-User-Id the user and X-Roles the roles; a
// request without a project is admin, as is one whose roles include admin.
// A tenant sees its own objects and shared or external networks; admin
// sees everything.
package netapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultAddr is where standalone mode serves the API: Neutron's address.
const DefaultAddr = "127.0.0.1:9696"

// DefaultRetryBackoff is the first pause before a failed notification is
// retried; it doubles up to 30 s.
const DefaultRetryBackoff = 100 * time.Millisecond

// Config configures a Server. Only StateDir is required.
type Config struct {
	// StateDir holds the database (DBFileName); it is created if missing.
	StateDir string
	// Notifiers receive every notification, each in commit order and at
	// least once (see Server). None: no notification is kept or sent.
	Notifiers []Notifier
	// Host names the server in notifications: publisher_id is
	// "network.<Host>" (default: the host name).
	Host string
	// RetryBackoff is the first pause before a failed notification is
	// retried (default DefaultRetryBackoff).
	RetryBackoff time.Duration
	// Logger receives the logs (default: none).
	Logger *slog.Logger
}

// Server is the embedded network API. Its Handler serves the API; Listen,
// Serve and Shutdown run it on a TCP address. It is safe for concurrent
// use.
//
// Every change is one bbolt transaction: it changes everything or, on
// any error, nothing. The change's notifications are stored in that same
// transaction and delivered to the Notifiers after the commit, so a
// change the API reported as done is notified even if the process dies
// right after: undelivered notifications are delivered after the next
// Open. A notifier that fails is retried, with a backoff, without
// blocking the API; the orchestrator's periodic poll covers the delay.
type Server struct {
	log         *slog.Logger
	db          *bbolt.DB
	handler     http.Handler
	publisherID string
	delivery    *delivery

	// wmu serializes changes with the queueing of their notifications, so
	// notifications are queued in commit order; closed (under wmu) refuses
	// changes once Shutdown has begun.
	wmu    sync.Mutex
	closed bool

	mu       sync.Mutex
	http     *http.Server
	ln       net.Listener
	shutdown bool
}

// Open opens (or creates) the database in cfg.StateDir, queues the
// notifications a previous run left undelivered, and returns a Server
// ready to serve.
func Open(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("netapi: host name: %w", err)
		}
		cfg.Host = h
	}
	for i, n := range cfg.Notifiers {
		if n == nil {
			return nil, fmt.Errorf("netapi: notifier %d is nil", i)
		}
	}
	db, err := openDB(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("netapi: %w", err)
	}
	s := &Server{
		log:         cfg.Logger,
		db:          db,
		publisherID: "network." + cfg.Host,
		delivery:    newDelivery(db, cfg.Notifiers, cfg.RetryBackoff, cfg.Logger),
	}
	s.handler = s.routes()
	if err := s.delivery.start(); err != nil {
		db.Close()
		return nil, fmt.Errorf("netapi: %w", err)
	}
	return s, nil
}

// Handler returns the HTTP handler of the API (for tests, or to serve it
// on a listener of the caller's).
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the API's TCP address (DefaultAddr if empty), so that the
// caller learns of a port in use before serving.
func (s *Server) Listen(addr string) error {
	if addr == "" {
		addr = DefaultAddr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return errors.New("netapi: listen: server shut down")
	case s.ln != nil:
		return errors.New("netapi: listen: already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("netapi: listen: %w", err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return nil
}

// Addr returns the address Listen bound; nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL returns the API's base URL, http://<address>; "" before Listen.
func (s *Server) URL() string {
	if a := s.Addr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// Serve serves the API on the address Listen bound, until Shutdown; it
// then returns nil.
func (s *Server) Serve() error {
	s.mu.Lock()
	hs, ln := s.http, s.ln
	s.mu.Unlock()
	if hs == nil {
		return errors.New("netapi: serve: Listen first")
	}
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("netapi: serve: %w", err)
	}
	return nil
}

// Shutdown stops serving (letting requests in progress finish), waits
// until the notifications queued are delivered or ctx is done, and closes
// the database. Notifications left undelivered are delivered after the
// next Open.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	hs := s.http
	s.mu.Unlock()
	var errs []error
	if hs != nil {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
			hs.Close()
		}
	}
	s.wmu.Lock()
	s.closed = true
	s.wmu.Unlock()
	if err := s.delivery.stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("notifications: %w", err))
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("database: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netapi: shutdown: %w", err)
	}
	return nil
}

// now returns the time of a change, at Neutron's (second) precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// write runs fn in one write transaction and, once it is committed,
// queues the notifications it emitted. Any error rolls everything back.
func (s *Server) write(c *caller, fn func(t *txn) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errUnavailable
	}
	var items []item
	err := s.db.Update(func(tx *bbolt.Tx) error {
		t := &txn{tx: tx, now: now()}
		if err := fn(t); err != nil {
			return err
		}
		items = items[:0]
		for _, e := range t.ends {
			env, n, err := s.buildNotification(c, e.eventType, e.payload, time.Now())
			if err != nil {
				return err
			}
			var seq uint64
			if s.delivery.durable() {
				b := tx.Bucket(bucketOutbox)
				if seq, err = b.NextSequence(); err != nil {
					return fmt.Errorf("outbox: %w", err)
				}
				if err := b.Put(outboxKey(seq), env); err != nil {
					return fmt.Errorf("outbox: %w", err)
				}
			}
			items = append(items, item{seq: seq, note: n})
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.delivery.enqueue(items)
	return nil
}

// read runs fn in a read-only transaction.
func (s *Server) read(fn func(t *txn) error) error {
	err := s.db.View(func(tx *bbolt.Tx) error { return fn(&txn{tx: tx, now: now()}) })
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return errUnavailable
	}
	return err
}

// notifyStart queues a .start notification: before the change, which may
// still fail (as Neutron does, a failed request sends a .start and no .end).
func (s *Server) notifyStart(c *caller, eventType string, payload any) {
	if !s.delivery.durable() {
		return
	}
	_, n, err := s.buildNotification(c, eventType, payload, time.Now())
	if err != nil {
		s.log.Error("cannot build a notification", "event_type", eventType, "error", err)
		return
	}
	s.wmu.Lock()
	if !s.closed {
		s.delivery.enqueue([]item{{note: n}})
	}
	s.wmu.Unlock()
}

// handlerFunc is an API handler: it returns the status and body of a
// success, or an error (an *apiError for what the client did wrong).
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) (int, any, error)

// handle adapts an API handler to net/http: it derives the caller,
// renders the body or the NeutronError, and logs unexpected failures.
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerOf(r, time.Now())
		w.Header().Set("X-Openstack-Request-Id", c.RequestID)
		status, body, err := h(w, r, &c)
		if err != nil {
			e, ok := asAPIError(err)
			if !ok {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "request_id", c.RequestID, "error", err)
				e = errInternal
			}
			writeJSON(w, e.Status, object{{"NeutronError", object{{"type", e.Type}, {"message", e.Message}, {"detail", ""}}}})
			return
		}
		if page, ok := body.(htmlPage); ok {
			w.Header().Set("Content-Type", "text/html; charset=UTF-8")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html>\n <head>\n  <title>%s</title>\n </head>\n <body>\n  <h1>%s</h1>\n  %s\n </body>\n</html>", page.title, page.title, page.text)
			return
		}
		if body == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"NeutronError": {"type": "HTTPInternalServerError", "message": "Request Failed: internal server error while processing your request.", "detail": ""}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// stripJSONSuffix serves /v2.0/networks.json as /v2.0/networks, as Neutron
// does for older clients.
func stripJSONSuffix(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutSuffix(r.URL.Path, ".json"); ok {
			r2 := r.Clone(r.Context())
			r2.URL.Path = p
			r2.URL.RawPath = ""
			next.ServeHTTP(w, r2)
			return
		}
		next.ServeHTTP(w, r)
	})
}
