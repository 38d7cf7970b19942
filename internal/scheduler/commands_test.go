package scheduler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/worker"
)

// configured is a healthy resource running the current configuration.
var configured = statetest.Model{Instance: true, Configured: true}

// manage brings resources under management with a POLL each and waits.
func (e *env) manage(t *testing.T, rs ...event.Resource) {
	t.Helper()
	for _, r := range rs {
		e.dispatch(t, ev(r, event.Poll))
	}
	synctest.Wait()
}

func (e *env) pushes(t *testing.T, id string) int { return e.fake(t, id).Calls("Configure") }

func TestCommandPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 3, configured, nil)
		rs := []event.Resource{rtr("r1", "t1"), rtr("r2", "t2"), rtr("r3", "t3")}
		e.manage(t, rs...)
		before := map[string]int{}
		for _, r := range rs {
			before[r.ID] = e.fake(t, r.ID).Calls("UpdateState")
		}
		if err := e.command(event.CommandArgs{Name: event.CmdPoll}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, r := range rs {
			if e.fake(t, r.ID).Calls("UpdateState") == before[r.ID] {
				t.Errorf("%s not polled", r.ID)
			}
		}
	})
}

func TestCommandWorkersDebugAndConfigReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reloaded := worker.DefaultConfig()
		reloaded.State.ErrorStateCooldown = 5 * time.Minute
		var reloadErr error
		e := newEnv(t, t.TempDir(), 2, configured, func(o *Options) {
			o.Reload = func(context.Context) (worker.Config, error) { return reloaded, reloadErr }
		})
		if err := e.command(event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: "r9", Reason: "looking"}); err != nil {
			t.Fatal(err)
		}
		if err := e.command(event.CommandArgs{Name: event.CmdWorkersDebug}); err != nil {
			t.Fatal(err)
		}
		logs := e.logs.String()
		for _, want := range []string{"workers-debug", "worker=1", "resource=r9", "reason=looking"} {
			if !strings.Contains(logs, want) {
				t.Errorf("workers-debug logs lack %q", want)
			}
		}

		if err := e.command(event.CommandArgs{Name: event.CmdConfigReload}); err != nil {
			t.Fatal(err)
		}
		for _, w := range e.s.workers {
			if got := w.Config().State.ErrorStateCooldown; got != 5*time.Minute {
				t.Errorf("worker %d: cooldown %s after config-reload, want 5m", w.ID(), got)
			}
		}
		reloadErr = errors.New("bad file")
		if err := e.command(event.CommandArgs{Name: event.CmdConfigReload}); err == nil || !strings.Contains(err.Error(), "bad file") || !errors.Is(err, ErrInvalid) {
			t.Errorf("config-reload with a bad file: %v", err)
		}
		reloadErr, reloaded.Threads = nil, 0
		if err := e.command(event.CommandArgs{Name: event.CmdConfigReload}); err == nil || !strings.Contains(err.Error(), "num_worker_threads") {
			t.Errorf("config-reload with an invalid config: %v", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 1, configured, nil)
		if err := e.command(event.CommandArgs{Name: event.CmdConfigReload}); err == nil {
			t.Error("config-reload without a source succeeded")
		}
	})
}

// Global, tenant and resource debug modes: the resources they cover are
// left alone, with the reasons recorded and persisted; managing them again
// POLLs them; commands bypass them.
func TestCommandDebugModes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := newEnv(t, dir, 3, configured, nil)
		r1, r2, r3 := rtr("r1", "t1"), rtr("r2", "t2"), rtr("r3", "t2")
		e.manage(t, r1, r2, r3)

		update := func(rs ...event.Resource) {
			for _, r := range rs {
				e.dispatch(t, ev(r, event.Update))
			}
			synctest.Wait()
		}
		check := func(step string, want map[string]int) {
			t.Helper()
			for id, n := range want {
				if got := e.pushes(t, id); got != n {
					t.Errorf("%s: %s pushed %d times, want %d", step, id, got, n)
				}
			}
		}

		steps := []struct {
			name string
			cmd  event.CommandArgs
			then func()
			want map[string]int
		}{
			{"resource debug", event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: "r1", Reason: "r1 under the knife"},
				func() { update(r1, r2) }, map[string]int{"r1": 0, "r2": 1, "r3": 0}},
			{"resource debug reason updated", event.CommandArgs{Name: event.CmdRouterDebug, ResourceID: "r1", Reason: "still"},
				func() { update(r1) }, map[string]int{"r1": 0}},
			{"tenant debug", event.CommandArgs{Name: event.CmdTenantDebug, TenantID: "t2", Reason: "t2 migrating"},
				func() { update(r2, r3) }, map[string]int{"r2": 1, "r3": 0}},
			{"command bypasses debug", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "r3"},
				func() { synctest.Wait() }, map[string]int{"r3": 1}},
			{"global debug", event.CommandArgs{Name: event.CmdGlobalDebug, Enabled: true, Reason: "upgrade"},
				func() { update(r1, r2, r3) }, map[string]int{"r1": 0, "r2": 1, "r3": 1}},
		}
		for _, st := range steps {
			if err := e.command(st.cmd); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			st.then()
			check(st.name, st.want)
		}
		dm := e.s.DebugModes()
		if dm.Global == nil || dm.Global.Reason != "upgrade" || dm.Tenants["t2"].Reason != "t2 migrating" || dm.Resources["r1"].Reason != "still" {
			t.Fatalf("debug modes %+v", dm)
		}
		if st, _ := e.s.Resource("r2"); !st.Debug {
			t.Errorf("r2 not shown in debug mode: %+v", st)
		}

		// Debug modes survive a restart.
		if err := e.s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.db.Close()
		e = newEnv(t, dir, 3, configured, nil)
		if dm2 := e.s.DebugModes(); dm2.Global == nil || len(dm2.Tenants) != 1 || len(dm2.Resources) != 1 {
			t.Fatalf("after a restart: %+v", dm2)
		}
		// The new fleet starts with Up resources: a POLL would push.
		e.fleet.Set("r1", statetest.Model{Instance: true})
		e.fleet.Set("r2", statetest.Model{Instance: true})
		e.fleet.Set("r3", statetest.Model{Instance: true})
		e.manage(t, r1, r2, r3)
		if len(e.s.Resources()) != 0 {
			t.Fatalf("global debug after a restart: resources managed %+v", e.s.Resources())
		}

		// Manage again, one level at a time: each resync POLLs what it frees.
		manage := []struct {
			cmd     event.CommandArgs
			managed []string
		}{
			{event.CommandArgs{Name: event.CmdGlobalDebug, Enabled: false}, nil},
			{event.CommandArgs{Name: event.CmdTenantManage, TenantID: "t2"}, []string{"r2", "r3"}},
			{event.CommandArgs{Name: event.CmdRouterManage, ResourceID: "r1", TenantID: "t1"}, []string{"r1", "r2", "r3"}},
		}
		for _, m := range manage {
			if err := e.command(m.cmd); err != nil {
				t.Fatal(err)
			}
			e.manage(t, r1, r2, r3) // machines come with the next events
			var got []string
			for _, rs := range e.s.Resources() {
				got = append(got, rs.Resource.ID)
			}
			if !slices.Equal(got, m.managed) {
				t.Errorf("after %s: managed %v, want %v", m.cmd.Name, got, m.managed)
			}
		}
		if dm := e.s.DebugModes(); dm.Global != nil || len(dm.Tenants)+len(dm.Resources) != 0 {
			t.Errorf("debug modes left: %+v", dm)
		}
	})
}

// A DELETE received in debug mode is carried out when the resource is
// managed again.
func TestDeleteInDebugModeCarriedOutOnManage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 2, configured, nil)
		r1 := rtr("r1", "t1")
		e.manage(t, r1)
		if err := e.command(event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: "r1"}); err != nil {
			t.Fatal(err)
		}
		e.fake(t, "r1").With(func(m *statetest.Model) { m.Gone = true })
		e.dispatch(t, ev(r1, event.Delete))
		synctest.Wait()
		if _, ok := e.s.Resource("r1"); !ok || e.fake(t, "r1").Calls("Stop") != 0 {
			t.Fatal("a resource in debug mode was deleted")
		}
		if err := e.command(event.CommandArgs{Name: event.CmdResourceManage, ResourceID: "r1"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, ok := e.s.Resource("r1"); ok || e.fake(t, "r1").Calls("Stop") != 1 {
			t.Error("the DELETE kept during debug mode was not carried out by resource-manage")
		}
		if p, _ := e.db.Pending(); len(p) != 0 {
			t.Errorf("pending left: %+v", p)
		}
	})
}

// Updates and rebuilds: by id (found by tenant, or on every worker), "*"
// and "error"; rebuilds use their image; router aliases manage new routers
// when the tenant is known.
func TestCommandUpdateAndRebuild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 4, configured, func(o *Options) { o.Worker.State.RebootErrorThreshold = 1 })
		e.fleet.Set("bad", statetest.Model{FailBoots: 1})
		rs := []event.Resource{rtr("r1", "t1"), rtr("r2", "t2"), rtr("bad", "t3")}
		e.manage(t, rs...)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if st, _ := e.s.Resource("bad"); st.Instance != state.Error {
			t.Fatalf("bad: %s", st.Instance)
		}

		cmds := []struct {
			name string
			cmd  event.CommandArgs
			err  error
		}{
			{"update by id, tenant unknown", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "r1"}, nil},
			{"update by id and tenant", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "r2", TenantID: "t2"}, nil},
			{"update of an unknown resource", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "nope"}, ErrNotManaged},
			{"update of an unknown resource of a tenant", event.CommandArgs{Name: event.CmdResourceUpdate, ResourceID: "nope", TenantID: "t1"}, ErrNotManaged},
			{"router update of a new router", event.CommandArgs{Name: event.CmdRouterUpdate, ResourceID: "new", TenantID: "t9"}, nil},
			{"rebuild with an image", event.CommandArgs{Name: event.CmdResourceRebuild, ResourceID: "r1", ImageID: "img-1"}, nil},
			{"router rebuild of those in error", event.CommandArgs{Name: event.CmdRouterRebuild, ResourceID: event.Errored, ImageID: "img-e"}, nil},
			{"update of all", event.CommandArgs{Name: event.CmdRouterUpdate, ResourceID: event.All}, nil},
			{"update without id", event.CommandArgs{Name: event.CmdResourceUpdate}, ErrInvalid},
		}
		for _, c := range cmds {
			err := e.command(c.cmd)
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Errorf("%s: %v, want %v", c.name, err, c.err)
			}
			synctest.Wait()
		}
		time.Sleep(time.Minute)
		synctest.Wait()

		if got := e.fake(t, "r1").Model().BootImages; !slices.Equal(got, []string{"img-1"}) {
			t.Errorf("r1 booted %q, want img-1", got)
		}
		if got := e.fake(t, "bad").Model().BootImages; !slices.Equal(got, []string{"", "img-e"}) {
			t.Errorf("bad booted %q, want its failed boot then img-e", got)
		}
		if got := e.fake(t, "r2").Model().BootImages; len(got) != 0 {
			t.Errorf("r2 was rebuilt: %q", got)
		}
		if st, ok := e.s.Resource("new"); !ok || st.Instance != state.Configured || st.Resource.TenantID != "t9" {
			t.Errorf("router-update of a new router: %+v, %v", st, ok)
		}
		// r2: its update, then "update of all".
		if n := e.pushes(t, "r2"); n != 2 {
			t.Errorf("r2 pushed %d times, want 2", n)
		}
		if _, ok := e.fleet.Fake("nope"); ok {
			t.Error("an update of an unknown resource created it")
		}
	})
}

func TestCommandValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), 2, configured, nil)
		tests := []struct {
			cmd   event.CommandArgs
			field string
		}{
			{event.CommandArgs{}, "command"},
			{event.CommandArgs{Name: "reboot-everything"}, "unknown"},
			{event.CommandArgs{Name: event.CmdTenantDebug}, "tenant_id"},
			{event.CommandArgs{Name: event.CmdTenantDebug, TenantID: event.All}, "tenant_id"},
			{event.CommandArgs{Name: event.CmdTenantManage, TenantID: event.Errored}, "tenant_id"},
			{event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: event.All}, "resource_id"},
			{event.CommandArgs{Name: event.CmdRouterManage}, "resource_id"},
			{event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: "r1", Reason: strings.Repeat("x", 5000)}, "reason"},
			{event.CommandArgs{Name: event.CmdRouterRebuild}, "resource_id"},
		}
		for _, tt := range tests {
			err := e.command(tt.cmd)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("%+v: %v, want ErrInvalid naming %s", tt.cmd, err, tt.field)
			}
		}
		if dm := e.s.DebugModes(); dm.Global != nil || len(dm.Tenants)+len(dm.Resources) != 0 {
			t.Errorf("invalid commands changed debug modes: %+v", dm)
		}
		// Dispatch hands Command events to Command.
		args := event.CommandArgs{Name: event.CmdTenantDebug, TenantID: "t1", Reason: "via the bus"}
		if err := e.s.Dispatch(context.Background(), event.Event{Action: event.Command, Command: &args,
			Resource: event.Resource{Driver: event.All, ID: event.All, TenantID: "t1"}}); err != nil {
			t.Fatal(err)
		}
		if dm := e.s.DebugModes(); dm.Tenants["t1"].Reason != "via the bus" {
			t.Errorf("command event not applied: %+v", dm)
		}
	})
}
