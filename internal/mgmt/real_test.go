package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// realEnv is the API over a real scheduler whose instances are fakes.
type realEnv struct {
	s     *scheduler.Scheduler
	fleet *statetest.Fleet
	h     http.Handler
}

func newRealEnv(t *testing.T, reload func(context.Context) (worker.Config, error)) *realEnv {
	t.Helper()
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &realEnv{fleet: statetest.NewFleet(statetest.Model{Instance: true, Configured: true})}
	e.fleet.Set("broken", statetest.Model{FailBoots: 1 << 20})
	cfg := worker.DefaultConfig()
	cfg.State.RebootErrorThreshold = 2
	cfg.State.ErrorStateCooldown = time.Hour
	e.s, err = scheduler.New(scheduler.Options{Workers: 3, Worker: cfg, Factory: e.fleet, Store: db,
		Reload: reload, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.s.Stop(ctx); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	srv, err := New(Options{Scheduler: e.s, Addr: "[::]:44250", Token: token,
		StaleAfter: func() time.Duration { return 2 * time.Minute },
		RouterTenant: func(_ context.Context, id string) (string, error) {
			return "tenant-of-" + id, nil
		},
		Collectors: []prometheus.Collector{counterCollector()},
		Status: func(_ event.Resource, st state.InstanceState) (string, bool) {
			return strings.ToUpper(st.String()), st != state.Gone
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = srv.Handler()
	for _, r := range []event.Resource{
		{Driver: "router", ID: "r1", TenantID: "t1"},
		{Driver: "router", ID: "r2", TenantID: "t1"},
		{Driver: "router", ID: "broken", TenantID: "t2"},
	} {
		if err := e.s.Dispatch(ctx, event.Event{Resource: r, Action: event.Create}); err != nil {
			t.Fatal(err)
		}
	}
	synctest.Wait()
	return e
}

func (e *realEnv) fake(t *testing.T, id string) *statetest.Fake {
	t.Helper()
	f, ok := e.fleet.Fake(id)
	if !ok {
		t.Fatalf("no instance for %s", id)
	}
	return f
}

func decode[T any](t *testing.T, code int, body string) T {
	t.Helper()
	var v T
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return v
}

// resourceJSON is a ResourceView as a client decodes it.
type resourceJSON struct {
	Resource    event.Resource    `json:"resource"`
	State       string            `json:"state"`
	Instance    string            `json:"instance_state"`
	Debug       bool              `json:"debug"`
	ErrorSince  time.Time         `json:"error_since"`
	LastError   string            `json:"last_error"`
	LastSeen    time.Time         `json:"last_seen"`
	Transitions []json.RawMessage `json:"transitions"`
	Stale       bool              `json:"stale"`
	Status      string            `json:"status"`
}

type resourceList struct {
	Resources []resourceJSON `json:"resources"`
	Count     int            `json:"count"`
}

func ids(l resourceList) []string {
	var out []string
	for _, r := range l.Resources {
		out = append(out, r.Resource.ID)
	}
	return out
}

func TestRealSchedulerCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newRealEnv(t, nil)

		// Debug modes: set, shown, cleared.
		if code, body := put(t, e.h, "/resource/debug/r1/--reason/looking%20at%20NAT"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if d := e.s.DebugModes().Resources["r1"]; d.Reason != "looking at NAT" {
			t.Errorf("resource debug modes %+v", e.s.DebugModes())
		}
		dm := get[store.DebugModes](t, e.h, "/debug")
		if dm.Resources["r1"].Reason != "looking at NAT" {
			t.Errorf("GET /debug: %+v", dm)
		}
		l := get[resourceList](t, e.h, "/resources?debug=true")
		if !slices.Equal(ids(l), []string{"r1"}) || l.Count != 1 {
			t.Errorf("resources in debug: %v", ids(l))
		}
		put(t, e.h, "/tenant/debug/t1?reason=maintenance")
		if d, ok := e.s.DebugModes().Tenants["t1"]; !ok || d.Reason != "maintenance" {
			t.Errorf("tenant debug modes %+v", e.s.DebugModes())
		}
		put(t, e.h, "/global/debug/enable/--reason/upgrade")
		if g := e.s.DebugModes().Global; g == nil || g.Reason != "upgrade" {
			t.Errorf("global debug %+v", g)
		}
		for _, p := range []string{"/global/debug/disable", "/tenant/manage/t1", "/resource/manage/r1"} {
			if code, body := put(t, e.h, p); code != 200 {
				t.Fatalf("PUT %s: %d %s", p, code, body)
			}
		}
		if dm := e.s.DebugModes(); dm.Global != nil || len(dm.Tenants)+len(dm.Resources) != 0 {
			t.Errorf("debug modes left: %+v", dm)
		}
		if code, _ := put(t, e.h, "/tenant/debug/*"); code != 400 {
			t.Errorf("tenant debug of a wildcard: %d", code)
		}

		// Poll reaches every resource.
		before := e.fake(t, "r2").Calls("UpdateState")
		put(t, e.h, "/poll")
		synctest.Wait()
		if e.fake(t, "r2").Calls("UpdateState") == before {
			t.Errorf("PUT /poll did not poll r2")
		}

		// Update and rebuild.
		pushes := e.fake(t, "r2").Calls("Configure")
		if code, body := put(t, e.h, "/resource/update/r2"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		synctest.Wait()
		if e.fake(t, "r2").Calls("Configure") == pushes {
			t.Errorf("PUT /resource/update/r2 pushed nothing")
		}
		if code, body := put(t, e.h, "/resource/rebuild/r2/--image_uuid/img-9"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		synctest.Wait()
		if imgs := e.fake(t, "r2").Model().BootImages; len(imgs) == 0 || imgs[len(imgs)-1] != "img-9" {
			t.Errorf("boot images of r2 after a rebuild with img-9: %q", imgs)
		}
		if code, body := put(t, e.h, "/resource/update/unknown"); code != 404 || !strings.Contains(body, "not managed") {
			t.Errorf("update of an unmanaged resource: %d %s", code, body)
		}
		// The deprecated router routes look the tenant up and start
		// managing a router nobody managed.
		if code, body := put(t, e.h, "/router/update/r-new"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		synctest.Wait()
		rv := get[resourceJSON](t, e.h, "/resources/r-new")
		if rv.Resource.TenantID != "tenant-of-r-new" || rv.Instance != "configured" {
			t.Errorf("router adopted through /router/update: %+v", rv)
		}
	})
}

// get decodes the answer to a GET.
func get[T any](t *testing.T, h http.Handler, path string) T {
	t.Helper()
	code, body := do(t, h, "GET", path, "")
	return decode[T](t, code, body)
}

func TestRealSchedulerReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newRealEnv(t, nil)
		time.Sleep(10 * time.Second) // "broken" fails its boots, backs off, and goes to ERROR
		synctest.Wait()
		l := get[resourceList](t, e.h, "/resources")
		if !slices.Equal(ids(l), []string{"broken", "r1", "r2"}) {
			t.Fatalf("resources %v", ids(l))
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"state=error", []string{"broken"}},
			{"state=CONFIGURED", []string{"r1", "r2"}},
			{"tenant=t1", []string{"r1", "r2"}},
			{"tenant=t1&state=error", nil},
			{"machine_state=CalcAction", []string{"broken", "r1", "r2"}},
			{"driver=loadbalancer", nil},
			{"stale=false", []string{"broken", "r1", "r2"}},
		} {
			l := get[resourceList](t, e.h, "/resources?"+tc.query)
			if !slices.Equal(ids(l), tc.want) {
				t.Errorf("?%s: %v, want %v", tc.query, ids(l), tc.want)
			}
		}
		for _, q := range []string{"state=sleepy", "machine_state=Nap", "debug=perhaps", "colour=red"} {
			if code, body := do(t, e.h, "GET", "/resources?"+q, ""); code != 400 {
				t.Errorf("?%s: %d %s", q, code, body)
			}
		}
		rv := get[resourceJSON](t, e.h, "/resources/broken")
		if rv.Instance != "error" || rv.Status != "ERROR" || rv.LastError == "" || len(rv.Transitions) == 0 || rv.ErrorSince.IsZero() || rv.LastSeen.IsZero() {
			t.Errorf("broken resource: %+v", rv)
		}
		if code, body := do(t, e.h, "GET", "/resources/nope", ""); code != 404 {
			t.Errorf("GET /resources/nope: %d %s", code, body)
		}

		// Polls refresh the healthy; the one in ERROR drops them and goes
		// stale.
		time.Sleep(3 * time.Minute)
		put(t, e.h, "/poll")
		synctest.Wait()
		l = get[resourceList](t, e.h, "/resources?stale=true")
		if !slices.Equal(ids(l), []string{"broken"}) {
			t.Errorf("stale resources %v", ids(l))
		}

		wv := get[workersView](t, e.h, "/workers")
		if len(wv.Workers) != 3 || wv.Resources != 3 || wv.Workers[0].InputCapacity != worker.DefaultConfig().QueueSize {
			t.Errorf("workers %+v", wv)
		}

		_, metrics := do(t, e.h, "GET", "/metrics", "")
		for _, want := range []string{
			`astara_resources{instance_state="configured"} 2`,
			`astara_resources{instance_state="error"} 1`,
			`astara_resources{instance_state="booting"} 0`,
			`astara_resources_stale 1`,
			`astara_resources_debug 0`,
			`astara_debug_modes{scope="global"} 0`,
			`astara_worker_input_queue{worker="2"} 0`,
			`astara_worker_input_capacity{worker="0"} 1024`,
			`astara_worker_resources{worker=`,
			`astara_resources_error_since_seconds{resource_id="broken"} `,
			"astara_test_total 3",
			"go_goroutines ",
			"# HELP astara_worker_run_queue ",
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}

func TestRealSchedulerConfigReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := worker.DefaultConfig()
		cfg.State.ErrorStateCooldown = 5 * time.Minute
		var fail error
		e := newRealEnv(t, func(context.Context) (worker.Config, error) { return cfg, fail })
		if code, body := put(t, e.h, "/config/reload"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		fail = errors.New(`config file /etc/astara/orchestrator.ini: [DEFAULT] health_check_period = "soon": not a number of seconds`)
		code, body := put(t, e.h, "/config/reload")
		if code != 400 || !strings.Contains(body, "health_check_period") {
			t.Errorf("failed reload: %d %s", code, body)
		}
	})
}
