package orchestrator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/event/eventtest"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
)

// TestMain runs the appliance agent when the end-to-end test starts this
// binary as one; otherwise the tests, in a fresh network namespace as root.
func TestMain(m *testing.M) { appliancetest.Main(m) }

const testToken = "orchestrator-test-token-0123"

// The ids of the captured notifications, replaced by the tests' own.
const (
	fixtureRouter = "d21c0ae3-c23f-4e3b-8d4a-284a0392c352"
	fixtureTenant = "3f1b2c4d5e6f47a8b9c0d1e2f3a4b5c6"
)

var messageIDs = regexp.MustCompile(`(\\"(?:_unique_id|message_id)\\": \\")[0-9a-f-]+`)

// notification returns the body of a real Neutron notification (a captured
// fixture) about router routerID of tenant tenantID, with fresh message ids.
func notification(t testing.TB, name, routerID, tenantID string) []byte {
	t.Helper()
	f, err := eventtest.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(f.Body), fixtureRouter, routerID)
	body = strings.ReplaceAll(body, fixtureTenant, tenantID)
	body = messageIDs.ReplaceAllStringFunc(body, func(m string) string {
		prefix := messageIDs.FindStringSubmatch(m)[1]
		b := make([]byte, 16)
		rand.Read(b)
		return prefix + hex.EncodeToString(b)
	})
	if !strings.Contains(body, routerID) {
		t.Fatalf("fixture %s does not name the router", name)
	}
	return []byte(body)
}

// writeConfig writes a configuration file: the test defaults (a loopback
// API on a free port with a token, a state directory, a short health
// period), then extra lines per group.
func writeConfig(t testing.TB, dir string, extra map[string]string) string {
	t.Helper()
	groups := map[string]string{
		"DEFAULT": fmt.Sprintf(`host = test-orchestrator
state_dir = %s
management_network_id = mgt-net
management_address = fdca:3ba5:a17a:acda::1
api_listen = 127.0.0.1
api_port = 0
num_worker_processes = 3
num_worker_threads = 2
health_check_period = 0.3
retry_delay = 0.05
max_retry_delay = 0.5
boot_check_interval = 0.1
provider_rules_path = %s
shutdown_timeout = 30
`, filepath.Join(dir, "state"), filepath.Join(dir, "no-provider-rules.json")),
		"api": "auth_token = " + testToken + "\n",
	}
	for g, lines := range extra {
		groups[g] += lines + "\n"
	}
	var b bytes.Buffer
	for _, g := range []string{"DEFAULT", "api", "router", "astara_appliance"} {
		if groups[g] != "" {
			fmt.Fprintf(&b, "[%s]\n%s\n", g, groups[g])
		}
	}
	path := filepath.Join(dir, "orchestrator.ini")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadConfig(t testing.TB, path string) *config.Config {
	t.Helper()
	c, err := config.Load([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger logs to the test while it runs.
func testLogger(t testing.TB) *slog.Logger {
	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) })
	return slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		if !done.Load() {
			t.Log(strings.TrimSpace(string(b)))
		}
		return len(b), nil
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// api is a client of an orchestrator's management API.
type api struct {
	t    testing.TB
	base string
}

func newAPI(t testing.TB, o *Orchestrator) *api {
	return &api{t: t, base: "http://" + o.APIAddr().String()}
}

// call sends a request and returns the status and body.
func (a *api) call(method, path, token string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// put runs a command with the token and requires success.
func (a *api) put(path string) {
	a.t.Helper()
	if code, body := a.call("PUT", path, testToken); code != http.StatusOK {
		a.t.Fatalf("PUT %s: %d %s", path, code, body)
	}
}

// resource is a resource as GET /resources shows it.
type resource struct {
	Resource struct {
		ID       string `json:"id"`
		TenantID string `json:"tenant_id"`
	} `json:"resource"`
	State       string    `json:"state"`
	Instance    string    `json:"instance_state"`
	Sleep       string    `json:"sleep"`
	LastError   string    `json:"last_error"`
	LastSeen    time.Time `json:"last_seen"`
	Stale       bool      `json:"stale"`
	Debug       bool      `json:"debug"`
	Running     bool      `json:"running"`
	QueueLen    int       `json:"queue_len"`
	Transitions []struct {
		From, To string
	} `json:"transitions"`
}

// resource returns a managed resource (ok false: not managed).
func (a *api) resource(id string) (resource, bool) {
	a.t.Helper()
	code, body := a.call("GET", "/resources/"+id, "")
	if code == http.StatusNotFound {
		return resource{}, false
	}
	var r resource
	if code != http.StatusOK || json.Unmarshal(body, &r) != nil {
		a.t.Fatalf("GET /resources/%s: %d %s", id, code, body)
	}
	return r, true
}

// resources returns the managed resources matching query.
func (a *api) resources(query string) []resource {
	a.t.Helper()
	code, body := a.call("GET", "/resources?"+query, "")
	var l struct {
		Resources []resource `json:"resources"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &l) != nil {
		a.t.Fatalf("GET /resources?%s: %d %s", query, code, body)
	}
	return l.Resources
}

// metric returns the value of one series of /metrics ("" if absent).
func (a *api) metric(series string) string {
	a.t.Helper()
	_, body := a.call("GET", "/metrics", "")
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}
