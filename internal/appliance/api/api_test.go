package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
)

// fakeBackend records what the API asks of it.
type fakeBackend struct {
	applied  *model.Document
	at       time.Time
	applyErr error
	calls    int
}

func (f *fakeBackend) Apply(ctx context.Context, doc *model.Document, body []byte) error {
	f.calls++
	if f.applyErr != nil {
		return f.applyErr
	}
	if f.applied != nil && doc.Generation != 0 && doc.Generation < f.applied.Generation {
		return &model.StaleError{Got: doc.Generation, Applied: f.applied.Generation}
	}
	f.applied, f.at = doc, time.Now()
	return nil
}

func (f *fakeBackend) Config() (*model.Document, time.Time) { return f.applied, f.at }

func (f *fakeBackend) Interfaces(ctx context.Context) ([]Interface, error) {
	return []Interface{
		{IfName: "ge0", LLAddr: "fa:16:3e:34:ba:28", MTU: 1500, State: "up", Groups: []string{}},
		{IfName: "ge1", LLAddr: "fa:16:3e:7a:d8:64", MTU: 1500, State: "up", Groups: []string{},
			Addresses: []netip.Prefix{netip.MustParsePrefix("192.168.105.2/24")}},
	}, nil
}

func (f *fakeBackend) FirewallRules(ctx context.Context, fromKernel bool) (string, error) {
	return "table inet astara {\n}\n", nil
}

func (f *fakeBackend) Reachability(ctx context.Context) Reachability { return Reachability{V4: true} }

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../model/testdata/example_config.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func do(t *testing.T, h http.Handler, method, path, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPutConfig(t *testing.T) {
	doc := string(fixture(t))
	for _, tc := range []struct {
		name, ctype, body string
		code              int
		want              string
	}{
		{"orchestrator shape", "application/json", doc, 200, `"tenant_id":"d22b149cee9b4eac8349c517eda00b89"`},
		{"wrapper shape", "application/json", `{"configuration": ` + doc + `}`, 200, `"hostname":"ak-d22b149cee9b4eac8349c517eda00b89"`},
		{"charset parameter", "application/json; charset=utf-8", doc, 200, `"configuration"`},
		{"wrong type", "text/plain", doc, 415, "Content-Type must be application/json"},
		{"no type", "", doc, 415, "Content-Type must be application/json"},
		{"invalid field", "application/json", strings.Replace(doc, `"mtu": 1450`, `"mtu": 99999`, 2), 422, `"field":"networks[2].interface.mtu"`},
		{"missing hostname", "application/json", `{"tenant_id": "t"}`, 422, `"field":"hostname"`},
		{"not json", "application/json", `{"tenant_id": `, 422, `"field":"(document)"`},
		{"unknown service", "application/json", `{"tenant_id": "t", "hostname": "h", "services": {"loadbalancer": {}}}`, 400, "cannot service requested advanced service: loadbalancer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBackend{}
			rec := do(t, New(b, Info{}, quiet), "PUT", "/v1/system/config", tc.ctype, tc.body)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("got %d %s, want %d containing %s", rec.Code, rec.Body, tc.code, tc.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code != 200 && b.calls != 0 {
				t.Errorf("a rejected document reached the backend")
			}
		})
	}
}

func TestPutConfigStaleAndFailure(t *testing.T) {
	b := &fakeBackend{}
	h := New(b, Info{}, quiet)
	doc := strings.Replace(string(fixture(t)), `"asn": 64512,`, `"asn": 64512, "generation": 7,`, 1)
	if rec := do(t, h, "PUT", "/v1/system/config", "application/json", doc); rec.Code != 200 {
		t.Fatalf("first put: %d %s", rec.Code, rec.Body)
	}
	old := strings.Replace(doc, `"generation": 7`, `"generation": 6`, 1)
	rec := do(t, h, "PUT", "/v1/system/config", "application/json", old)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "generation 6 is older than the applied generation 7") {
		t.Errorf("stale put: %d %s", rec.Code, rec.Body)
	}
	b.applyErr = errors.New("dnsmasq failed to start")
	rec = do(t, h, "PUT", "/v1/system/config", "application/json", doc)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "dnsmasq failed to start") {
		t.Errorf("failing apply: %d %s", rec.Code, rec.Body)
	}
	b.applyErr = &model.ValidationError{Errors: []model.FieldError{{Field: "networks[1].interface.ifname", Msg: "no interface ge7"}}}
	rec = do(t, h, "PUT", "/v1/system/config", "application/json", doc)
	if rec.Code != 422 || !strings.Contains(rec.Body.String(), "no interface ge7") {
		t.Errorf("environment validation: %d %s", rec.Code, rec.Body)
	}
}

func TestGetConfigRoundTrip(t *testing.T) {
	b := &fakeBackend{}
	h := New(b, Info{}, quiet)
	rec := do(t, h, "GET", "/v1/system/config", "", "")
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"configuration":null}` {
		t.Errorf("before any put: %d %s", rec.Code, rec.Body)
	}
	do(t, h, "PUT", "/v1/system/config", "application/json", string(fixture(t)))
	rec = do(t, h, "GET", "/v1/system/config", "", "")
	first := b.applied
	// What GET returns is a valid document that PUTs back to the same thing.
	if rec := do(t, h, "PUT", "/v1/system/config", "application/json", rec.Body.String()); rec.Code != 200 {
		t.Fatalf("put of get: %d %s", rec.Code, rec.Body)
	}
	a, _ := json.Marshal(first)
	c, _ := json.Marshal(b.applied)
	if string(a) != string(c) {
		t.Errorf("round trip changed the document:\n%s\n%s", a, c)
	}
}

func TestReadEndpoints(t *testing.T) {
	h := New(&fakeBackend{}, Info{Version: "1.2.3", Hostname: func() string { return "ak-x" }}, quiet)
	for _, tc := range []struct {
		path  string
		code  int
		ctype string
		want  string
	}{
		{"/v1/base/", 200, "text/plain; charset=utf-8", "Astara appliance API service is active"},
		{"/v1/status/", 200, "application/json", `{"v4":true,"v6":false}`},
		{"/v1/status", 301, "", ""},
		{"/v1/firewall/rules", 200, "text/plain; charset=utf-8", "table inet astara"},
		{"/v1/system/interfaces", 200, "application/json", `"ifname":"ge1","lladdr":"fa:16:3e:7a:d8:64","addresses":["192.168.105.2/24"],"mtu":1500,"state":"up"`},
		{"/v1/system/interface/ge1", 200, "application/json", `{"interface":{"ifname":"ge1"`},
		{"/v1/system/interface/ge9", 404, "application/json", `no interface \"ge9\"`},
		{"/v1/info", 200, "application/json", `"version":"1.2.3","hostname":"ak-x"`},
		{"/v2/nothing", 404, "application/json", "no such resource"},
	} {
		rec := do(t, h, "GET", tc.path, "", "")
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("GET %s: %d %s, want %d containing %s", tc.path, rec.Code, rec.Body, tc.code, tc.want)
		}
		if tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, rec.Header().Get("Content-Type"), tc.ctype)
		}
	}
	if rec := do(t, h, "DELETE", "/v1/system/config", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE config: %d", rec.Code)
	}
}

var quiet = slog.New(slog.DiscardHandler)
