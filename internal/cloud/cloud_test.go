package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/astara-go/astara/internal/config"
)

// keystoneFixtures are Keystone's and Neutron's recorded responses, kept
// with the package that authenticates (see its testdata/README.md).
const keystoneFixtures = "../provider/openstack/testdata"

// fakeCloud is a Keystone whose catalog (Keystone's recorded token
// response) points Neutron and Nova at the same server; Neutron answers
// its version list. It records the token requests.
type fakeCloud struct {
	srv      *httptest.Server
	password string

	mu     sync.Mutex
	tokens []map[string]any
}

func newFakeCloud(t *testing.T, password string) *fakeCloud {
	t.Helper()
	f := &fakeCloud{password: password}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(keystoneFixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.ReplaceAll(b, []byte("{{SERVER}}"), []byte(f.srv.URL))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.tokens = append(f.tokens, body)
		f.mu.Unlock()
		if !strings.Contains(string(b), `"password":"`+f.password+`"`) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(read("keystone-unauthorized-response.json"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Subject-Token", "token-1")
		w.WriteHeader(http.StatusCreated)
		w.Write(read("keystone-auth-password-project-scoped-response.json"))
	})
	mux.HandleFunc("GET /network/RegionOne/public/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(bytes.ReplaceAll(read("neutron-versions-list-response.json"), []byte("{{ENDPOINT}}"),
			[]byte(f.srv.URL+"/network/RegionOne/public/")))
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// novaConfig is OpenStack mode with Nova, authenticating to f with a
// password.
func novaConfig(t *testing.T, f *fakeCloud, password string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "orchestrator.ini")
	content := `[DEFAULT]
state_dir = ` + t.TempDir() + `
management_network_id = mgt-net
management_address = fdca:3ba5:a17a:acda::1
api_listen = 127.0.0.1
api_port = 0
transport_url = rabbit://astara:secret@127.0.0.1:1/
[router]
image_uuid = appliance-image
instance_flavor = m1.astara
[keystone_authtoken]
auth_url = ` + f.srv.URL + `/v3
username = admin
password = ` + password + `
project_name = admin
region_name = RegionOne
`
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Open authenticates with [keystone_authtoken]'s password and assembles
// the orchestrator over the catalog's Neutron and Nova.
func TestOpenNova(t *testing.T) {
	f := newFakeCloud(t, "s3cret")
	s, err := Open(context.Background(), novaConfig(t, f, "s3cret"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Orchestrator() == nil || s.Local() != nil {
		t.Errorf("orchestrator %v, local %v: want an orchestrator over Nova", s.Orchestrator(), s.Local())
	}
	if len(f.tokens) != 1 {
		t.Fatalf("%d token requests, want 1", len(f.tokens))
	}
	got, _ := json.Marshal(f.tokens[0])
	for _, want := range []string{`"methods":["password"]`, `"name":"admin"`, `"password":"s3cret"`, `"project":{"domain":{"name":"Default"},"name":"admin"}`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("token request %s lacks %s", got, want)
		}
	}
}

// A refused password is an error naming the user and Keystone, never the
// password.
func TestOpenAuthenticationFails(t *testing.T) {
	f := newFakeCloud(t, "right")
	_, err := Open(context.Background(), novaConfig(t, f, "wrong-password"), Options{})
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), f.srv.URL) ||
		strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("Open: %v", err)
	}
}

// Check names what OpenStack mode lacks.
func TestCheck(t *testing.T) {
	f := newFakeCloud(t, "s3cret")
	cfg := novaConfig(t, f, "s3cret")
	if err := Check(cfg); err != nil {
		t.Fatal(err)
	}
	bad := cfg.Clone()
	bad.Router.ImageUUID = ""
	bad.Keystone.Password = ""
	bad.TransportURL = ""
	err := Check(bad)
	for _, want := range []string{"[router] image_uuid", "password", "[DEFAULT] transport_url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v; want it to name %s", err, want)
		}
	}
	none := cfg.Clone()
	none.Keystone = config.Keystone{AuthType: config.AuthNone}
	if err := Check(none); err == nil || !strings.Contains(err.Error(), "[neutron] endpoint_override") {
		t.Errorf("auth_type none without endpoints: %v", err)
	}
}
