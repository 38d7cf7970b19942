package nova

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/astara-go/astara/internal/provider/retry"
)

// The ids of the recorded samples (testdata/README.md).
const (
	// base is the compute endpoint of the samples' links (v2.1, project
	// 6f70656e737461636b20342065766572).
	base = "/v2.1/6f70656e737461636b20342065766572/"
	// sampleHost is the host of the samples' links.
	sampleHost = "openstack.example.com"
	// serverCreated is the server of server-create-resp.json, and the one
	// of servers-details-resp.json (its first page).
	serverCreated = "f5dc173b-6804-445a-a6d8-c705dad5b5eb"
	// serverShown is the server of server-get-resp.json, served as the
	// second page of the list.
	serverShown  = "0e44cc9c-e052-415d-afbf-469b0d384170"
	sampleName   = "new-server-test"
	sampleImage  = "70a599e0-31e7-49b7-b260-868f441e862b"
	sampleFlavor = "1"
	// samplePort is the port of the os-interface samples.
	samplePort = "ce531f90-199f-48c0-816c-13e38010b442"
	// sampleCreated is the servers' creation time.
	sampleCreated = "2013-09-03T04:01:32Z"
	// missing is the server of item-not-found.json.
	missing = "9e3c5bd0-3bd2-4a77-a0f4-6d7c9b8f1e21"
)

// fakeNova is a Nova compute API serving the recorded samples of
// testdata: the servers of server-get-resp.json and
// servers-details-resp.json (its servers_links leading to a second page
// that holds the server of server-get-resp.json), server create and
// delete, and os-interface list, attach and detach. Every 404 is
// item-not-found.json. Faults make requests fail on demand, and it records
// every request.
type fakeNova struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// servers are the servers' JSON objects by id.
	servers map[string]json.RawMessage
	// links are the servers_links of the first page of the list.
	links json.RawMessage
	// ifaces are the interface attachments of each server.
	ifaces map[string][]json.RawMessage
	// pending are attachment changes a list of the server has not shown
	// yet.
	pending []*change
	// ifaceDelay is how many lists of a server's interfaces go by before an
	// attach or detach shows; negative: never.
	ifaceDelay int
	// deleting counts the reads that still show a deleted server;
	// deleteDelay is its initial value (negative: forever).
	deleting    map[string]int
	deleteDelay int
	faults      []*fault
	requests    []request
	// refuse is how many requests the transport refuses to connect.
	refuse int
}

type change struct {
	server, port string
	add          json.RawMessage // nil: detach
	after        int
}

type request struct {
	Method, Path string // Path relative to base
	Query        url.Values
	Header       http.Header
	Body         []byte
}

type fault struct {
	method, path string // path relative to base
	status       int    // 0: reset the connection
	body         []byte // nil: a fault body in Nova's format
	times        int    // negative: forever
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// field returns a top-level member of a JSON object.
func field(t *testing.T, b []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m[key] == nil {
		t.Fatalf("no %q in %s (%v)", key, b, err)
	}
	return m[key]
}

func newFake(t *testing.T) *fakeNova {
	t.Helper()
	f := &fakeNova{t: t, servers: map[string]json.RawMessage{}, ifaces: map[string][]json.RawMessage{}, deleting: map[string]int{}}
	details := readSample(t, "servers-details-resp.json")
	var page []json.RawMessage
	if err := json.Unmarshal(field(t, details, "servers"), &page); err != nil || len(page) != 1 {
		t.Fatalf("servers-details-resp.json: %v", err)
	}
	f.servers[serverCreated] = page[0]
	f.links = field(t, details, "servers_links")
	f.servers[serverShown] = field(t, readSample(t, "server-get-resp.json"), "server")
	var attached []json.RawMessage
	if err := json.Unmarshal(field(t, readSample(t, "attach-interfaces-list-resp.json"), "interfaceAttachments"), &attached); err != nil {
		t.Fatal(err)
	}
	for id := range f.servers {
		f.ifaces[id] = attached
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+base+"servers", f.createServer)
	mux.HandleFunc("GET "+base+"servers/detail", f.listServers)
	mux.HandleFunc("GET "+base+"servers/{id}", f.showServer)
	mux.HandleFunc("DELETE "+base+"servers/{id}", f.onServer(f.deleteServer))
	mux.HandleFunc("GET "+base+"servers/{id}/os-interface", f.onServer(f.listInterfaces))
	mux.HandleFunc("POST "+base+"servers/{id}/os-interface", f.onServer(f.attach))
	mux.HandleFunc("DELETE "+base+"servers/{id}/os-interface/{port}", f.detach)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { f.notFound(w) })
	f.srv = httptest.NewServer(f.middleware(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// provider returns a Provider for the fake with quick retries and polls.
func (f *fakeNova) provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	p, err := New(f.client(), f.options(opts))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fakeNova) options(opts Options) Options {
	if opts.Retry == (retry.Policy{}) {
		opts.Retry = retry.Policy{Attempts: 4, BaseDelay: 1, MaxDelay: 1}
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Nanosecond
	}
	if opts.BuildWait == 0 {
		opts.BuildWait = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts
}

// client returns a compute service client for the fake, as
// openstack.NewComputeV2 makes one (without a token).
func (f *fakeNova) client() *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{HTTPClient: http.Client{Transport: f}}
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: f.srv.URL + base, Type: "compute"}
}

// RoundTrip sends requests for the samples' host (their links) to the
// fake, and refuses to connect while refuse says so.
func (f *fakeNova) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	refuse := f.refuse > 0
	if refuse {
		f.refuse--
	}
	f.mu.Unlock()
	if refuse {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	if r.URL.Host == sampleHost {
		u, _ := url.Parse(f.srv.URL)
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
	}
	return f.srv.Client().Transport.RoundTrip(r)
}

func (f *fakeNova) set(fn func(f *fakeNova)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fail makes the next times requests of method to path (relative to base)
// fail with status (0: a reset connection) and body (nil: a fault body).
func (f *fakeNova) fail(method, path string, status, times int, body []byte) {
	f.set(func(f *fakeNova) {
		f.faults = append(f.faults, &fault{method: method, path: path, status: status, times: times, body: body})
	})
}

// patch sets a member of a server's object.
func (f *fakeNova) patch(id, key string, value any) {
	f.set(func(f *fakeNova) {
		var m map[string]any
		if err := json.Unmarshal(f.servers[id], &m); err != nil {
			f.t.Fatal(err)
		}
		m[key] = value
		b, err := json.Marshal(m)
		if err != nil {
			f.t.Fatal(err)
		}
		f.servers[id] = b
	})
}

// requestsTo returns the requests of method to path (relative to base).
func (f *fakeNova) requestsTo(method, path string) []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.requests {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeNova) allRequests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

// faultNames are the names Nova gives its faults (nova/api/openstack/wsgi.py).
var faultNames = map[int]string{400: "badRequest", 404: "itemNotFound", 409: "conflictingRequest",
	429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}

// middleware records the request and applies a fault that matches it.
func (f *fakeNova) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		path := strings.TrimPrefix(r.URL.Path, base)
		f.mu.Lock()
		f.requests = append(f.requests, request{Method: r.Method, Path: path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		var ft *fault
		for _, c := range f.faults {
			if c.times != 0 && c.method == r.Method && c.path == path {
				ft = c
				c.times--
				break
			}
		}
		f.mu.Unlock()
		switch {
		case ft == nil:
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			next.ServeHTTP(w, r)
		case ft.status == 0:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				f.t.Error(err)
				return
			}
			conn.Close()
		case ft.body != nil:
			writeJSON(w, ft.status, ft.body)
		default:
			name, ok := faultNames[ft.status]
			if !ok {
				name = "computeFault"
			}
			writeJSON(w, ft.status, fmt.Appendf(nil, `{%q: {"code": %d, "message": "fake failure"}}`, name, ft.status))
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func (f *fakeNova) reply(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Error(err)
	}
	writeJSON(w, status, b)
}

func (f *fakeNova) notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, readSample(f.t, "item-not-found.json"))
}

// createServer answers server-create-resp.json as it is: every server
// created is serverCreated.
func (f *fakeNova) createServer(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusAccepted, readSample(f.t, "server-create-resp.json"))
}

// listServers answers the first page (serverCreated, with the samples'
// servers_links) or, for its next link (marker=serverCreated), the second
// (serverShown). Filters are recorded, not applied.
func (f *fakeNova) listServers(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Query().Get("marker") == serverCreated {
		f.reply(w, http.StatusOK, map[string]any{"servers": []json.RawMessage{f.servers[serverShown]}})
		return
	}
	f.reply(w, http.StatusOK, map[string]any{"servers": []json.RawMessage{f.servers[serverCreated]}, "servers_links": f.links})
}

func (f *fakeNova) showServer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.deleting[id]; ok {
		if n == 0 {
			delete(f.servers, id)
			delete(f.deleting, id)
		} else if n > 0 {
			f.deleting[id] = n - 1
		}
	}
	s, ok := f.servers[id]
	if !ok {
		f.notFound(w)
		return
	}
	f.reply(w, http.StatusOK, map[string]json.RawMessage{"server": s})
}

// onServer returns a handler that calls fn, under the lock, with the
// server of the path, or answers 404 when there is no such server.
func (f *fakeNova) onServer(fn func(w http.ResponseWriter, r *http.Request, id string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.servers[id]; !ok {
			f.notFound(w)
			return
		}
		fn(w, r, id)
	}
}

func (f *fakeNova) deleteServer(w http.ResponseWriter, r *http.Request, id string) {
	if _, ok := f.deleting[id]; !ok {
		f.deleting[id] = f.deleteDelay
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeNova) listInterfaces(w http.ResponseWriter, r *http.Request, id string) {
	var left []*change
	for _, c := range f.pending {
		switch {
		case c.server != id || c.after < 0:
			left = append(left, c)
		case c.after > 0:
			c.after--
			left = append(left, c)
		default:
			f.apply(c)
		}
	}
	f.pending = left
	f.reply(w, http.StatusOK, map[string]any{"interfaceAttachments": f.ifaces[id]})
}

// apply makes an attachment change show.
func (f *fakeNova) apply(c *change) {
	var kept []json.RawMessage
	for _, a := range f.ifaces[c.server] {
		if portOf(f.t, a) != c.port {
			kept = append(kept, a)
		}
	}
	if c.add != nil {
		kept = append(kept, c.add)
	}
	f.ifaces[c.server] = kept
}

func portOf(t *testing.T, attachment json.RawMessage) string {
	var a struct {
		PortID string `json:"port_id"`
	}
	if err := json.Unmarshal(attachment, &a); err != nil {
		t.Error(err)
	}
	return a.PortID
}

// attach answers attach-interfaces-create-resp.json as it is; its
// attachment shows in the list after ifaceDelay lists.
func (f *fakeNova) attach(w http.ResponseWriter, r *http.Request, id string) {
	resp := readSample(f.t, "attach-interfaces-create-resp.json")
	a := field(f.t, resp, "interfaceAttachment")
	f.pending = append(f.pending, &change{server: id, port: portOf(f.t, a), add: a, after: f.ifaceDelay})
	writeJSON(w, http.StatusOK, resp)
}

// detach answers 202 for an attached port; the port leaves the list after
// ifaceDelay lists.
func (f *fakeNova) detach(w http.ResponseWriter, r *http.Request) {
	id, port := r.PathValue("id"), r.PathValue("port")
	f.mu.Lock()
	defer f.mu.Unlock()
	attached := false
	for _, a := range f.ifaces[id] {
		attached = attached || portOf(f.t, a) == port
	}
	if !attached {
		f.notFound(w)
		return
	}
	f.pending = append(f.pending, &change{server: id, port: port, after: f.ifaceDelay})
	w.WriteHeader(http.StatusAccepted)
}
