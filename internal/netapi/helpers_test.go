package netapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event"
)

// client makes requests to a test server as one caller.
type client struct {
	t   *testing.T
	url string
	hdr http.Header
}

func admin(t *testing.T, ts *httptest.Server) client { return client{t, ts.URL, http.Header{}} }

func tenant(t *testing.T, ts *httptest.Server, project string) client {
	return client{t, ts.URL, tenantHeaders(project)}
}

// do sends a request (body JSON-encoded unless a string) and decodes the answer.
func (c client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = strings.NewReader(string(data))
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header = c.hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var out map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			c.t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

// must sends a request that must answer status, and returns the object
// under key (the whole body if key is "").
func (c client) must(status int, method, path string, body any, key string) map[string]any {
	c.t.Helper()
	got, out := c.do(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s %v: %d %v, want %d", method, path, body, got, out, status)
	}
	if key == "" {
		return out
	}
	o, _ := out[key].(map[string]any)
	return o
}

// errorType returns the NeutronError type of a body.
func errorType(body map[string]any) string {
	e, _ := body["NeutronError"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func str(o map[string]any, k string) string { s, _ := o[k].(string); return s }

// recorder is a Notifier that keeps what it receives.
type recorder struct {
	mu    sync.Mutex
	notes []event.Notification
	added chan struct{}
}

func newRecorder() *recorder { return &recorder{added: make(chan struct{}, 1)} }

func (r *recorder) Notify(_ context.Context, n event.Notification) error {
	r.mu.Lock()
	r.notes = append(r.notes, n)
	r.mu.Unlock()
	select {
	case r.added <- struct{}{}:
	default:
	}
	return nil
}

// all returns what was received so far.
func (r *recorder) all() []event.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Notification(nil), r.notes...)
}

// waitFor waits until cond holds on what was received (or fails the test
// after a generous time: delivery is asynchronous).
func (r *recorder) waitFor(t *testing.T, what string, cond func([]event.Notification) bool) []event.Notification {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if got := r.all(); cond(got) {
			return got
		}
		select {
		case <-r.added:
		case <-deadline:
			got := r.all()
			types := make([]string, len(got))
			for i, n := range got {
				types[i] = n.EventType
			}
			t.Fatalf("waiting for %s: received %v", what, types)
		}
	}
}

// waitCount waits for at least n notifications.
func (r *recorder) waitCount(t *testing.T, n int) []event.Notification {
	t.Helper()
	return r.waitFor(t, "notifications", func(got []event.Notification) bool { return len(got) >= n })
}

// newTestServer opens a server on a fresh state directory and serves it
// on a local HTTP listener; both are closed when the test ends.
func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Host == "" {
		cfg.Host = "netapi-test"
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		if err := s.Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s, ts
}

// httptestServe serves s on a local listener, closed when the test ends
// (the caller shuts s down).
func httptestServe(t *testing.T, s *Server) *httptest.Server {
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// tenantHeaders acts as a project, as Neutron's keystonecontext
// middleware reads it.
func tenantHeaders(project string) http.Header {
	return http.Header{"X-Project-Id": {project}, "X-User-Id": {"user-" + project[:8]}, "X-Roles": {"member,reader"}}
}
