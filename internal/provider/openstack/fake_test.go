package openstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// fakeCloud is a Keystone serving POST /v3/auth/tokens with the responses
// recorded in testdata (see testdata/README.md), their catalog pointing at
// the same server: network at /network/<region>/<interface>/ (which serves
// Neutron's version list) and compute at
// /compute/<region>/<interface>/v2.1/<project>. Any other request is a
// service request: it needs a token Keystone issued and has not expired
// (or noauth's X-Project-Id or admin:<project> token), else it gets
// Keystone's 401.
type fakeCloud struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// authBodies are the bodies of the token requests, in order.
	authBodies [][]byte
	// issued counts the tokens issued (token-1, token-2, ...).
	issued int
	// valid are the tokens services accept.
	valid map[string]bool
	// rejectAuth makes Keystone answer 401 to token requests.
	rejectAuth bool
	// seen are the service requests, in order.
	seen []*http.Request
}

// newFakeCloud starts a fakeCloud, over TLS if useTLS, closed with the test.
func newFakeCloud(t *testing.T, useTLS bool) *fakeCloud {
	t.Helper()
	f := &fakeCloud{t: t, valid: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/auth/tokens", f.tokens)
	mux.HandleFunc("GET /network/{region}/{iface}/{$}", f.networkVersions)
	mux.HandleFunc("/", f.service)
	if useTLS {
		f.srv = httptest.NewTLSServer(mux)
	} else {
		f.srv = httptest.NewServer(mux)
	}
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the server's root URL.
func (f *fakeCloud) URL() string { return f.srv.URL }

// fixture returns testdata/name with {{SERVER}} replaced by the server's URL.
func (f *fakeCloud) fixture(name string) []byte {
	return bytes.ReplaceAll(readFixture(f.t, name), []byte("{{SERVER}}"), []byte(f.srv.URL))
}

func (f *fakeCloud) tokens(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req struct {
		Auth struct {
			Identity struct {
				Methods []string `json:"methods"`
			} `json:"identity"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Auth.Identity.Methods) != 1 {
		http.Error(w, fmt.Sprintf("bad token request %s", body), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.authBodies = append(f.authBodies, body)
	reject := f.rejectAuth
	var token string
	if !reject {
		f.issued++
		token = fmt.Sprintf("token-%d", f.issued)
		f.valid[token] = true
	}
	f.mu.Unlock()
	if reject {
		f.unauthorized(w)
		return
	}
	resp := "keystone-auth-password-project-scoped-response.json"
	if req.Auth.Identity.Methods[0] == "application_credential" {
		resp = "keystone-auth-application-credential-response.json"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Subject-Token", token)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(f.fixture(resp))
}

// unauthorized answers 401 as Keystone (and keystonemiddleware) do.
func (f *fakeCloud) unauthorized(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", f.srv.URL+"/v3"))
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(f.fixture("keystone-unauthorized-response.json"))
}

func (f *fakeCloud) networkVersions(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	endpoint := f.srv.URL + r.URL.Path
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(bytes.ReplaceAll(f.fixture("neutron-versions-list-response.json"), []byte("{{ENDPOINT}}"), []byte(endpoint)))
}

func (f *fakeCloud) service(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	f.mu.Lock()
	token := r.Header.Get("X-Auth-Token")
	ok := f.valid[token] || r.Header.Get("X-Project-Id") != "" || strings.HasPrefix(token, "admin:")
	f.mu.Unlock()
	if !ok {
		f.unauthorized(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"networks": []}`)
}

func (f *fakeCloud) record(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, r.Clone(r.Context()))
}

// expire makes the services refuse token.
func (f *fakeCloud) expire(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.valid, token)
}

// reject makes Keystone refuse (or accept again) every token request.
func (f *fakeCloud) reject(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejectAuth = v
}

// bodies returns the token requests' bodies so far.
func (f *fakeCloud) bodies() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.authBodies...)
}

// requests returns the service requests so far as "METHOD path token".
func (f *fakeCloud) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.seen {
		out = append(out, fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, r.Header.Get("X-Auth-Token")))
	}
	return out
}

// get makes a GET of resource through sc and returns the request as the
// fake received it.
func (f *fakeCloud) get(sc *gophercloud.ServiceClient, resource string) *http.Request {
	f.t.Helper()
	if _, err := sc.Get(f.t.Context(), sc.ServiceURL(resource), nil, nil); err != nil {
		f.t.Fatalf("GET %s: %v", resource, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[len(f.seen)-1]
}

// readFixture returns testdata/name.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureJSON returns testdata/name decoded.
func fixtureJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(readFixture(t, name), &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// authRequest returns the token request with the identity of fixture
// identity and the scope of fixture scope ("" for none).
func authRequest(t *testing.T, identity, scope string) map[string]any {
	t.Helper()
	auth := map[string]any{"identity": fixtureJSON(t, identity)["auth"].(map[string]any)["identity"]}
	if scope != "" {
		auth["scope"] = fixtureJSON(t, scope)["auth"].(map[string]any)["scope"]
	}
	return map[string]any{"auth": auth}
}

// sameJSON fails the test unless got (JSON) and want are the same JSON value.
func sameJSON(t *testing.T, got []byte, want any) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wb, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("token request\n got %s\nwant %s", got, wb)
	}
}

// mustContain fails the test unless err's message has every one of want.
func mustContain(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}
