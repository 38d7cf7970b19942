package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

const token = "s3cret-token-0123456789"

// fakeScheduler records the commands it is given.
type fakeScheduler struct {
	mu       sync.Mutex
	commands []event.CommandArgs
	err      error
}

func (f *fakeScheduler) Command(_ context.Context, c event.CommandArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, c)
	return f.err
}

func (f *fakeScheduler) last() (event.CommandArgs, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.commands) == 0 {
		return event.CommandArgs{}, 0
	}
	return f.commands[len(f.commands)-1], len(f.commands)
}

func (f *fakeScheduler) Resources() []worker.ResourceStatus { return nil }
func (f *fakeScheduler) Resource(string) (worker.ResourceStatus, bool) {
	return worker.ResourceStatus{}, false
}
func (f *fakeScheduler) Workers() []worker.WorkerStatus {
	return []worker.WorkerStatus{{ID: 0, Goroutines: 4}}
}
func (f *fakeScheduler) DebugModes() store.DebugModes { return store.DebugModes{} }

func newServer(t *testing.T, s Scheduler, tweak func(*Options)) *Server {
	t.Helper()
	opts := Options{Scheduler: s, Addr: "0.0.0.0:44250", Token: token}
	if tweak != nil {
		tweak(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// do sends a request to h; auth is the Authorization header ("" for none).
func do(t *testing.T, h http.Handler, method, target, auth string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func put(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	return do(t, h, http.MethodPut, target, "Bearer "+token)
}

func TestCommandRoutes(t *testing.T) {
	f := &fakeScheduler{}
	tenants := map[string]string{"r-known": "tenant-9"}
	h := newServer(t, f, func(o *Options) {
		o.RouterTenant = func(_ context.Context, id string) (string, error) {
			if t, ok := tenants[id]; ok {
				return t, nil
			}
			return "", fmt.Errorf("router %s: %w", id, provider.ErrNotFound)
		}
	}).Handler()
	for _, tc := range []struct {
		path string
		want event.CommandArgs
	}{
		{"/poll", event.CommandArgs{Name: event.CmdPoll}},
		{"/workers/debug", event.CommandArgs{Name: event.CmdWorkersDebug}},
		{"/config/reload", event.CommandArgs{Name: event.CmdConfigReload}},
		{"/global/debug/enable", event.CommandArgs{Name: event.CmdGlobalDebug, Enabled: true}},
		{"/global/debug/enable/--reason/upgrading%20the%20cloud", event.CommandArgs{Name: event.CmdGlobalDebug, Enabled: true, Reason: "upgrading the cloud"}},
		{"/global/debug/disable?reason=done", event.CommandArgs{Name: event.CmdGlobalDebug, Reason: "done"}},
		{"/tenant/debug/t-1/--reason=a%2Fb", event.CommandArgs{Name: event.CmdTenantDebug, TenantID: "t-1", Reason: "a/b"}},
		{"/tenant/manage/t-1", event.CommandArgs{Name: event.CmdTenantManage, TenantID: "t-1"}},
		{"/resource/debug/R-1/--reason/nat", event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: "r-1", Reason: "nat"}},
		{"/resource/manage/r-1", event.CommandArgs{Name: event.CmdResourceManage, ResourceID: "r-1"}},
		{"/resource/update/r-1", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "r-1"}},
		{"/resource/update/error", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "error"}},
		{"/resource/rebuild/r-1/--image_uuid/img-2", event.CommandArgs{Name: event.CmdResourceRebuild, ResourceID: "r-1", ImageID: "img-2"}},
		{"/resource/rebuild/r-1?image=img-3&reason=new", event.CommandArgs{Name: event.CmdResourceRebuild, ResourceID: "r-1", ImageID: "img-3", Reason: "new"}},
		{"/router/debug/r-1", event.CommandArgs{Name: event.CmdRouterDebug, ResourceID: "r-1"}},
		{"/router/manage/r-1", event.CommandArgs{Name: event.CmdRouterManage, ResourceID: "r-1"}},
		{"/router/update/r-known", event.CommandArgs{Name: event.CmdRouterUpdate, ResourceID: "r-known", TenantID: "tenant-9"}},
		{"/router/rebuild/r-known/--router_image_uuid/img-4", event.CommandArgs{Name: event.CmdRouterRebuild, ResourceID: "r-known", TenantID: "tenant-9", ImageID: "img-4"}},
		{"/router/rebuild/*", event.CommandArgs{Name: event.CmdRouterRebuild, ResourceID: "*"}},
	} {
		code, body := put(t, h, tc.path)
		got, _ := f.last()
		if code != http.StatusOK || got != tc.want {
			t.Errorf("PUT %s: %d %s\ncommand %+v\nwant    %+v", tc.path, code, body, got, tc.want)
			continue
		}
		var resp commandResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Status != "ok" || resp.Command != tc.want {
			t.Errorf("PUT %s: answer %s (%v)", tc.path, body, err)
		}
	}
	if _, body := put(t, h, "/workers/debug"); !strings.Contains(body, `"goroutines": 4`) {
		t.Errorf("workers debug answer lacks the workers: %s", body)
	}
}

func TestBadRequests(t *testing.T) {
	f := &fakeScheduler{}
	h := newServer(t, f, func(o *Options) {
		o.RouterTenant = func(context.Context, string) (string, error) { return "", errors.New("neutron down") }
	}).Handler()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"PUT", "/global/debug/maybe", 400},
		{"PUT", "/global/debug/enable/--reason", 400},
		{"PUT", "/global/debug/enable/extra", 400},
		{"PUT", "/resource/update/r-1/--image_uuid/img", 400},
		{"PUT", "/resource/rebuild/r-1?colour=red", 400},
		{"PUT", "/resource/debug/r-1/--reason/a/--reason/b", 400},
		{"PUT", "/poll/now", 404},
		{"PUT", "/poll?x=1", 400},
		{"PUT", "/tenant/forget/t-1", 404},
		{"PUT", "/resource/delete/r-1", 404},
		{"PUT", "/router/update/r-1", 502},
		{"PUT", "/browse", 501},
		{"PUT", "/ssh/r-1", 501},
		{"POST", "/poll", 405},
		{"DELETE", "/resource/debug/r-1", 405},
		{"GET", "/poll", 405},
		{"PUT", "/nowhere", 404},
	} {
		code, body := do(t, h, tc.method, tc.path, "Bearer "+token)
		if code != tc.code || !strings.Contains(body, `"error"`) && tc.code != 405 && tc.code != 404 {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
		}
	}
	if _, n := f.last(); n != 0 {
		t.Errorf("%d commands reached the scheduler from bad requests", n)
	}
	for err, code := range map[error]int{
		fmt.Errorf("command x: %w", scheduler.ErrInvalid):    400,
		fmt.Errorf("command x: %w", scheduler.ErrNotManaged): 404,
		fmt.Errorf("dispatch: %w", scheduler.ErrStopped):     503,
		context.DeadlineExceeded:                             504,
		errors.New("the store is broken"):                    500,
	} {
		f.err = err
		if got, body := put(t, h, "/resource/update/r-1"); got != code || !strings.Contains(body, err.Error()) {
			t.Errorf("scheduler error %v: %d %s, want %d", err, got, body, code)
		}
	}
}

func TestAuth(t *testing.T) {
	f := &fakeScheduler{}
	h := newServer(t, f, nil).Handler()
	code, _ := do(t, h, "PUT", "/poll", "")
	if code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/poll", nil))
	if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q", got)
	}
	for auth, want := range map[string]int{
		"Basic " + token:                 401,
		"Bearer":                         401,
		"Bearer ":                        401,
		"Bearer wrong":                   403,
		"Bearer " + token + "x":          403,
		"Bearer " + token[:len(token)-1]: 403,
		"Bearer " + token:                200,
		"bearer " + token:                200,
	} {
		if code, body := do(t, h, "PUT", "/poll", auth); code != want {
			t.Errorf("Authorization %q: %d %s, want %d", auth, code, body, want)
		}
	}
	if _, n := f.last(); n != 2 {
		t.Errorf("%d commands reached the scheduler, want 2", n)
	}
	// Every non-GET route needs it, known or not; GETs do not.
	for _, m := range []string{"PUT", "POST", "DELETE", "PATCH"} {
		for _, p := range []string{"/poll", "/resource/rebuild/r-1", "/nowhere", "/resources"} {
			if code, _ := do(t, h, m, p, ""); code != 401 {
				t.Errorf("%s %s without a token: %d", m, p, code)
			}
		}
	}
	for _, p := range []string{"/", "/resources", "/workers", "/debug", "/healthz", "/metrics"} {
		if code, body := do(t, h, "GET", p, ""); code != 200 {
			t.Errorf("GET %s without a token: %d %s", p, code, body)
		}
	}
	// A new token replaces the old one.
	srv := newServer(t, f, nil)
	if err := srv.SetToken("another-token-0123456789"); err != nil {
		t.Fatal(err)
	}
	if code, _ := put(t, srv.Handler(), "/poll"); code != 403 {
		t.Errorf("old token after SetToken: %d", code)
	}
	if code, _ := do(t, srv.Handler(), "PUT", "/poll", "Bearer another-token-0123456789"); code != 200 {
		t.Errorf("new token: %d", code)
	}
	if err := srv.SetToken(""); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("removing the token of a public API: %v", err)
	}
}

func TestLoopbackRule(t *testing.T) {
	for addr, ok := range map[string]bool{
		"0.0.0.0:44250": false, "[::]:44250": false, ":44250": false, "192.0.2.1:44250": false,
		"api.example.com:44250": false, "127.0.0.1:44250": true, "127.1.2.3:1": true, "[::1]:44250": true,
		"localhost:44250": true,
	} {
		_, err := New(Options{Scheduler: &fakeScheduler{}, Addr: addr})
		if ok != (err == nil) {
			t.Errorf("%s without a token: %v", addr, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "auth_token") || !strings.Contains(err.Error(), "loopback")) {
			t.Errorf("%s: unclear error %v", addr, err)
		}
		if _, err := New(Options{Scheduler: &fakeScheduler{}, Addr: addr, Token: token}); err != nil {
			t.Errorf("%s with a token: %v", addr, err)
		}
	}
	// On loopback without a token, commands need none.
	f := &fakeScheduler{}
	srv, err := New(Options{Scheduler: f, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, srv.Handler(), "PUT", "/poll", ""); code != 200 {
		t.Errorf("PUT /poll on loopback without a token: %d", code)
	}
}

func TestServe(t *testing.T) {
	srv := newServer(t, &fakeScheduler{}, func(o *Options) { o.Addr = "127.0.0.1:0" })
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	req, err := http.NewRequest("PUT", "http://"+addr.String()+"/poll", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("PUT /poll: %d %s", resp.StatusCode, body)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// A busy port fails Listen.
	busy := newServer(t, &fakeScheduler{}, func(o *Options) { o.Addr = "127.0.0.1:0" })
	a, err := busy.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Shutdown(context.Background())
	if _, err := newServer(t, &fakeScheduler{}, func(o *Options) { o.Addr = a.String() }).Listen(); err == nil {
		t.Errorf("Listen on a busy port succeeded")
	}
}

// counterCollector is an extra collector, as the orchestrator adds.
func counterCollector() prometheus.Collector {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "astara_test_total", Help: "A test counter."})
	c.Add(3)
	return c
}
