package instance

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// The management network of newWorld: the test is the orchestrator at ::1.
const (
	mgmtBridge  = "br-astara-mgt"
	orchestrAdr = "fdca:3ba5:a17a:acda::1/64"
)

// TestRealAppliance drives the real astara-appliance agent, one network
// namespace per instance, through the memory providers: boot, configure,
// an orchestrator restart, hot-plugged and unplugged interfaces, the
// instance dying and being replaced, and stop. The agent requires a client
// certificate (mutual TLS), as it can in production.
func TestRealAppliance(t *testing.T) {
	nstest.Require(t)
	ctx := context.Background()
	appliancetest.Bridge(t, mgmtBridge, orchestrAdr)
	pki := appliancetest.NewPKI(t)
	runner := appliancetest.NewRunner(t, mgmtBridge, pki.AgentFlags())
	e := &env{t: t, ctx: ctx, net: newWorld(t)}
	e.compute = memory.NewCompute(runner, e.net)
	t.Cleanup(func() {
		// Whatever happened, no instance outlives the test.
		for _, in := range e.compute.Instances() {
			_ = e.compute.Delete(context.Background(), in.ID)
		}
	})
	var err error
	e.client, err = client.New(client.Options{TLS: &client.TLSOptions{
		CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: appliancetest.ServerName}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.Close)
	log := testLogger(t)
	if e.driver, err = router.New(e.net, routerConfig, routerID, log); err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{ImageID: "img-1", RetryDelay: 200 * time.Millisecond, PollInterval: 100 * time.Millisecond,
		HotplugTimeout: time.Minute, DeleteTimeout: time.Minute, Logger: log}

	m := e.manager()
	e.expect("no instance", m.UpdateState(ctx), state.Down)

	// Boot: the agent configures its management interface from the user
	// data and starts answering.
	if err := m.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	e.expect("after Boot", m.State(), state.Booting)
	e.expect("boot", untilBooted(t, m), state.Up)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	inst := e.compute.Instances()[0]
	ns := runner.Namespace(inst.ID)
	gen := e.checkApplied(ns, "192.168.0.1/24", "10.1.0.1/24", "172.16.77.2/24")

	// An orchestrator restart: the new manager finds it Configured and
	// pushes nothing.
	m2 := Open(ctx, mustDriver(e), e.net, e.compute, e.client, e.cfg)
	e.expect("after an orchestrator restart", m2.State(), state.Configured)
	if info := e.info(); info.Generation != gen {
		t.Errorf("the restarted manager pushed: generation %d, was %d", info.Generation, gen)
	}
	m = m2

	// A new router interface: a NIC is hot-plugged into the namespace, the
	// agent sees it, and the document uses it.
	ifc, err := e.net.AddRouterInterface(routerID, provider.Port{NetworkID: "int3-net", FixedIPs: []provider.FixedIP{{Address: a("10.3.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	e.expect("new interface", m.UpdateState(ctx), state.Up)
	e.expect("Configure", m.Configure(ctx), state.Replug)
	e.expect("Replug", m.Replug(ctx), state.Replug)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	e.checkApplied(ns, "10.3.0.1/24")

	// The interface goes: its NIC is unplugged and its port deleted.
	_, before := e.servicePorts()
	if err := e.net.DeletePort(ctx, ifc.ID); err != nil {
		t.Fatal(err)
	}
	e.expect("Configure", m.Configure(ctx), state.Replug)
	e.expect("Replug", m.Replug(ctx), state.Replug)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	e.checkApplied(ns, "192.168.0.1/24", "10.1.0.1/24")
	if addrs := appliancetest.Addrs(t, ns); strings.Contains(addrs, "10.3.0.1") {
		t.Errorf("10.3.0.1 is still in the namespace:\n%s", addrs)
	}
	_, after := e.servicePorts()
	if len(after) != len(before)-1 || slices.Contains(networksOf(after), "int3-net") {
		t.Errorf("VRRP ports on %v, were on %v", networksOf(after), networksOf(before))
	}

	// The instance dies: Down, then a new one boots and is configured.
	if err := e.compute.Kill(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	e.expect("dead instance", m.UpdateState(ctx), state.Down)
	if err := m.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	e.expect("boot again", untilBooted(t, m), state.Up)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	insts := e.compute.Instances()
	if len(insts) != 1 || insts[0].ID == inst.ID || insts[0].Name != "ak-router-router-1_1" {
		t.Fatalf("instances after the reboot: %+v", insts)
	}
	ns2 := runner.Namespace(insts[0].ID)
	if appliancetest.NamespaceExists(t, ns) {
		t.Errorf("the dead instance's namespace %s remains", ns)
	}
	e.checkApplied(ns2, "192.168.0.1/24", "10.1.0.1/24", "172.16.77.2/24")

	// Stop: the namespace, the instance and the ports go.
	e.expect("Stop", m.Stop(ctx), state.Down)
	if appliancetest.NamespaceExists(t, ns2) {
		t.Errorf("namespace %s remains after Stop", ns2)
	}
	if len(e.compute.Instances()) != 0 {
		t.Errorf("instances after Stop: %v", e.compute.Instances())
	}
	if mgmt, vrrp := e.servicePorts(); len(mgmt)+len(vrrp) != 0 {
		t.Errorf("ports after Stop: %v %v", mgmt, vrrp)
	}
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, []string{"DOWN", "BUILD", "ACTIVE", "DOWN", "BUILD", "ACTIVE", "DOWN"}) {
		t.Errorf("published statuses %v", h)
	}
}

// untilBooted polls UpdateState while the instance boots (at most two
// minutes: the agent is built with the race detector) and returns the
// first other state.
func untilBooted(t *testing.T, m *Manager) state.InstanceState {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := m.UpdateState(context.Background())
		if st != state.Booting || time.Now().After(deadline) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkApplied checks that the appliance runs the document the router
// needs (GET /v1/system/config), that its generation is the applied one,
// and that the kernel of its namespace has the addresses; it returns the
// generation.
func (e *env) checkApplied(ns string, addrs ...string) uint64 {
	e.t.Helper()
	ctx := e.ctx
	mgmt, vrrp := e.servicePorts()
	addr := mgmt[0].FixedIPs[0].Address
	nics, err := e.client.Interfaces(ctx, addr)
	if err != nil {
		e.t.Fatal(err)
	}
	ifmap, err := router.MapInterfaces(nics, append(mgmt, vrrp...))
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := e.driver.Router(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	want, err := e.driver.BuildConfig(ctx, r, mgmt[0], ifmap)
	if err != nil {
		e.t.Fatal(err)
	}
	got, err := e.client.GetConfig(ctx, addr)
	if err != nil || got == nil {
		e.t.Fatalf("GET /v1/system/config: %v, %v", got, err)
	}
	if same, err := sameDocument(want, got); err != nil || !same {
		e.t.Errorf("the appliance runs another document (%v):\nwant %+v\ngot  %+v", err, want, got)
	}
	if info := e.info(); info.Generation != got.Generation || !info.Configured {
		e.t.Errorf("GET /v1/info: %+v, document generation %d", info, got.Generation)
	}
	have := appliancetest.Addrs(e.t, ns)
	for _, a := range addrs {
		if !strings.Contains(have, " "+a) {
			e.t.Errorf("%s is not in namespace %s:\n%s", a, ns, have)
		}
	}
	return got.Generation
}

func (e *env) info() *client.Info {
	e.t.Helper()
	mgmt, _ := e.servicePorts()
	info, err := e.client.Info(e.ctx, mgmt[0].FixedIPs[0].Address)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}
