package orchestrator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

const (
	tenantA = "aaaaaaaa00000000000000000000000a"
	tenantB = "bbbbbbbb00000000000000000000000b"
	routerA = "aaaaaaaa-0000-0000-0000-00000000000a"
	routerB = "bbbbbbbb-0000-0000-0000-00000000000b"
	routerN = "cccccccc-0000-0000-0000-00000000000c"
)

// fakeWorld is a network API with two routers.
func fakeWorld(t *testing.T) *memory.Network {
	t.Helper()
	n := memory.NewNetwork("mgt-net")
	for id, tenant := range map[string]string{routerA: tenantA, routerB: tenantB} {
		if err := n.AddRouter(provider.Router{ID: id, TenantID: tenant}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// fakeEnv is an orchestrator whose instances are fakes.
type fakeEnv struct {
	dir   string
	net   *memory.Network
	fleet *statetest.Fleet
	src   *intake.InProcessSource
	o     *Orchestrator
	api   *api
}

func startFake(t *testing.T, e *fakeEnv) {
	t.Helper()
	cfg := loadConfig(t, filepath.Join(e.dir, "orchestrator.ini"))
	var err error
	e.o, err = New(cfg, Deps{Network: e.net, Compute: memory.NewCompute(nil, e.net), Source: e.src,
		Factory: e.fleet, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.o.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	e.api = newAPI(t, e.o)
}

func newFakeEnv(t *testing.T, extra map[string]string) *fakeEnv {
	t.Helper()
	e := &fakeEnv{dir: t.TempDir(), net: fakeWorld(t),
		fleet: statetest.NewFleet(statetest.Model{Instance: true, Configured: true}),
		src:   intake.NewInProcessSource(intake.InProcessConfig{})}
	writeConfig(t, e.dir, extra)
	startFake(t, e)
	return e
}

func (e *fakeEnv) publish(t *testing.T, body []byte) {
	t.Helper()
	if err := e.src.Publish(context.Background(), body); err != nil {
		t.Fatal(err)
	}
}

func TestOrchestratorWithFakes(t *testing.T) {
	e := newFakeEnv(t, nil)
	a := e.api
	wait := 30 * time.Second

	// The existing routers are polled at the start, and adopted as they
	// run: nothing is pushed to them.
	nstest.WaitFor(t, wait, "the existing routers managed", func() bool {
		return len(a.resources("state=configured")) == 2
	})
	started := time.Now()

	// A notification brings a new router.
	if err := e.net.AddRouter(provider.Router{ID: routerN, TenantID: tenantA}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, notification(t, "router.create.end", routerN, tenantA))
	nstest.WaitFor(t, wait, "the new router managed", func() bool {
		r, ok := a.resource(routerN)
		return ok && r.Instance == "configured" && r.Resource.TenantID == tenantA
	})
	nstest.WaitFor(t, wait, "the notification acknowledged", func() bool { return e.src.Stats().Acked == 1 })

	// The health poll reaches every resource.
	nstest.WaitFor(t, wait, "a health poll of every resource", func() bool {
		for _, r := range a.resources("") {
			if !r.LastSeen.After(started) {
				return false
			}
		}
		return true
	})
	for _, id := range []string{routerA, routerB} {
		f, _ := e.fleet.Fake(id)
		if n := f.Calls("Configure"); n != 0 {
			t.Errorf("%s: %d configuration pushes to an adopted, configured instance", id, n)
		}
	}

	for series, want := range map[string]string{
		`astara_events_total{action="poll",origin="populate",result="accepted"}`: "2",
		`astara_events_total{action="create",origin="intake",result="accepted"}`: "1",
		`astara_intake_messages_total{outcome="received"}`:                       "1",
		`astara_intake_messages_total{outcome="acked"}`:                          "1",
		`astara_resources{instance_state="configured"}`:                          "3",
		`astara_health_check_period_seconds`:                                     "0.3",
	} {
		if got := a.metric(series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if n, _ := strconv.Atoi(a.metric(`astara_health_polls_total{result="ok"}`)); n < 1 {
		t.Errorf("no health poll counted")
	}

	// Commands need the token.
	if code, _ := a.call("PUT", "/resource/debug/"+routerA, ""); code != http.StatusUnauthorized {
		t.Errorf("a command without a token: %d", code)
	}
	a.put("/resource/debug/" + routerA + "/--reason/testing")
	if r, _ := a.resource(routerA); !r.Debug {
		t.Errorf("%s not in debug mode", routerA)
	}
	a.put("/resource/manage/" + routerA)
}

func TestConfigReload(t *testing.T) {
	e := newFakeEnv(t, nil)
	a := e.api
	const newToken = "the-next-token-0123456789"
	writeConfig(t, e.dir, map[string]string{
		"DEFAULT": "health_check_period = 0.5\nerror_state_cooldown = 77\nnum_worker_threads = 9",
		"api":     "auth_token = " + newToken,
	})
	a.put("/config/reload")
	if got := e.o.Config(); got.HealthCheckPeriod != 500*time.Millisecond || got.ErrorStateCooldown != 77*time.Second ||
		got.API.AuthToken != newToken {
		t.Errorf("after the reload: period %s, cooldown %s", got.HealthCheckPeriod, got.ErrorStateCooldown)
	}
	if got := a.metric("astara_health_check_period_seconds"); got != "0.5" {
		t.Errorf("health period %q after the reload", got)
	}
	for _, w := range e.o.sched.Workers() {
		if w.Goroutines != 2 {
			t.Errorf("worker %d runs %d goroutines: num_worker_threads changes at a restart only", w.ID, w.Goroutines)
		}
	}
	if code, _ := a.call("PUT", "/poll", testToken); code != http.StatusForbidden {
		t.Errorf("the old token after the reload: %d", code)
	}
	if code, _ := a.call("PUT", "/poll", newToken); code != http.StatusOK {
		t.Errorf("the new token after the reload: %d", code)
	}

	// An invalid file changes nothing.
	path := writeConfig(t, e.dir, map[string]string{"DEFAULT": "health_check_period = soon", "api": "auth_token = " + newToken})
	code, body := a.call("PUT", "/config/reload", newToken)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "health_check_period") ||
		!strings.Contains(string(body), path) {
		t.Errorf("reload of an invalid file: %d %s", code, body)
	}
	if got := e.o.Config(); got.HealthCheckPeriod != 500*time.Millisecond {
		t.Errorf("health period %s after a failed reload", got.HealthCheckPeriod)
	}
	// So does removing the token of an API that needs one... on loopback
	// it is allowed; the rule itself is tested with the binding.
}

// TestShutdownKeepsDeletes stops the orchestrator while a DELETE is being
// carried out: the next orchestrator on the same state directory finishes
// it.
func TestShutdownKeepsDeletes(t *testing.T) {
	gate := make(chan struct{})
	e := &fakeEnv{dir: t.TempDir(), net: fakeWorld(t),
		fleet: statetest.NewFleet(statetest.Model{Instance: true, Configured: true}),
		src:   intake.NewInProcessSource(intake.InProcessConfig{})}
	e.fleet.Set(routerA, statetest.Model{Instance: true, Configured: true, StopGate: gate})
	writeConfig(t, e.dir, map[string]string{"DEFAULT": "shutdown_timeout = 0.2"})
	cfg := loadConfig(t, filepath.Join(e.dir, "orchestrator.ini"))
	o, err := New(cfg, Deps{Network: e.net, Compute: memory.NewCompute(nil, e.net), Source: e.src, Factory: e.fleet, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	nstest.WaitFor(t, time.Minute, "the API up", func() bool { return o.APIAddr() != nil })
	a := newAPI(t, o)
	nstest.WaitFor(t, time.Minute, "the routers managed", func() bool { return len(a.resources("state=configured")) == 2 })

	if err := e.net.DeleteRouter(routerA); err != nil {
		t.Fatal(err)
	}
	e.publish(t, notification(t, "router.delete.end", routerA, tenantA))
	nstest.WaitFor(t, time.Minute, "the delete under way", func() bool {
		r, _ := a.resource(routerA)
		return r.Running && r.State == "StopInstance"
	})
	cancel() // the instance is still being stopped: Run gives it shutdown_timeout
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	db, err := store.Open(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := db.Pending()
	db.Close()
	if err != nil || len(pending) != 1 || pending[0].Resource.ID != routerA || pending[0].Actions[0] != event.Delete {
		t.Fatalf("pending work after the shutdown: %+v, %v", pending, err)
	}

	// The next orchestrator carries it out.
	close(gate)
	startFake(t, e)
	nstest.WaitFor(t, time.Minute, "the deleted router gone", func() bool {
		_, ok := e.api.resource(routerA)
		return !ok && len(e.api.resources("")) == 1
	})
	if f, _ := e.fleet.Fake(routerA); f.Model().Instance {
		t.Errorf("the deleted router's instance still runs")
	}
	nstest.WaitFor(t, time.Minute, "the pending delete forgotten", func() bool {
		pending, err := e.o.db.Pending()
		return err == nil && len(pending) == 0
	})
}

func TestNewRefusesBadSetups(t *testing.T) {
	dir := t.TempDir()
	net := fakeWorld(t)
	deps := Deps{Network: net, Compute: memory.NewCompute(nil, net), Source: intake.NewInProcessSource(intake.InProcessConfig{}), Logger: testLogger(t)}
	for _, tc := range []struct {
		name  string
		extra map[string]string
		deps  func(*Deps)
		want  string
	}{
		{"public API without a token", map[string]string{"DEFAULT": "api_listen = 0.0.0.0", "api": "auth_token ="}, nil, "auth_token"},
		{"no management network", map[string]string{"DEFAULT": "management_network_id ="}, nil, "management_network_id"},
		{"no management address", map[string]string{"DEFAULT": "management_address ="}, nil, "management address"},
		{"appliance TLS files", map[string]string{"astara_appliance": "tls_ca_file = /nonexistent/ca.pem"}, nil, "tls"},
		{"no source", nil, func(d *Deps) { d.Source = nil }, "notification source"},
		{"no compute", nil, func(d *Deps) { d.Compute = nil }, "compute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, writeConfig(t, dir, tc.extra))
			d := deps
			if tc.deps != nil {
				tc.deps(&d)
			}
			if _, err := New(cfg, d); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// A malformed provider rules file is refused; a good one is read.
	rules := filepath.Join(dir, "rules.json")
	os.WriteFile(rules, []byte(`{"labels": {"ext": ["192.168.57.0/24", "nonsense"]}}`), 0o600)
	cfg := loadConfig(t, writeConfig(t, dir, map[string]string{"DEFAULT": "provider_rules_path = " + rules}))
	if _, err := New(cfg, deps); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("bad provider rules: %v", err)
	}
	os.WriteFile(rules, []byte(`{"labels": {"ext": ["192.168.57.0/24"]}, "prerules": []}`), 0o600)
	o, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if l := o.factory.Load().Router.Labels["ext"]; len(l) != 1 || l[0].String() != "192.168.57.0/24" {
		t.Errorf("labels %v", o.factory.Load().Router.Labels)
	}
}

// failingSource is a source that cannot run.
type failingSource struct{}

func (failingSource) Run(context.Context, intake.Sink) error {
	return errors.New("broker refused the exchange declaration")
}
func (failingSource) Stats() intake.Stats { return intake.Stats{} }

func TestRunStopsOnIntakeFailure(t *testing.T) {
	dir := t.TempDir()
	net := fakeWorld(t)
	cfg := loadConfig(t, writeConfig(t, dir, nil))
	o, err := New(cfg, Deps{Network: net, Compute: memory.NewCompute(nil, net), Source: failingSource{},
		Factory: statetest.NewFleet(statetest.Model{}), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = o.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "broker refused") {
		t.Errorf("Run: %v", err)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	world := fakeWorld(t)
	cfg := loadConfig(t, writeConfig(t, dir, map[string]string{"DEFAULT": "api_port = " + strconv.Itoa(port)}))
	deps := Deps{Network: world, Compute: memory.NewCompute(nil, world), Source: intake.NewInProcessSource(intake.InProcessConfig{}),
		Factory: statetest.NewFleet(statetest.Model{}), Logger: testLogger(t)}
	o, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "api_port") {
		t.Fatalf("Start on a busy port: %v", err)
	}
	if err := o.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed start: %v", err)
	}
	// The failed start released the store.
	cfg = loadConfig(t, writeConfig(t, dir, nil))
	o, err = New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatalf("Start after a failed start: %v", err)
	}
	if err := o.Stop(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestPollRouter(t *testing.T) {
	e := newFakeEnv(t, map[string]string{"DEFAULT": "health_check_period = 3600"})
	a := e.api
	wait := 30 * time.Second
	nstest.WaitFor(t, wait, "the existing routers managed", func() bool {
		return len(a.resources("state=configured")) == 2
	})
	before, _ := a.resource(routerA)
	if err := e.o.PollRouter(context.Background(), routerA, "exit"); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, wait, "router A polled", func() bool {
		r, _ := a.resource(routerA)
		return r.LastSeen.After(before.LastSeen)
	})
	if got := a.metric(`astara_events_total{action="poll",origin="exit",result="accepted"}`); got != "1" {
		t.Errorf("exit polls counted: %q", got)
	}
	// A router it does not manage yet: the network API names its tenant.
	if err := e.net.AddRouter(provider.Router{ID: routerN, TenantID: tenantB}); err != nil {
		t.Fatal(err)
	}
	if err := e.o.PollRouter(context.Background(), routerN, "exit"); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, wait, "router N managed", func() bool {
		r, ok := a.resource(routerN)
		return ok && r.Resource.TenantID == tenantB
	})
	if err := e.o.PollRouter(context.Background(), "dddddddd-0000-0000-0000-00000000000d", "exit"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("a router that is gone: %v", err)
	}
	if err := e.o.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.o.PollRouter(context.Background(), routerA, "exit"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stopped: %v", err)
	}
}
