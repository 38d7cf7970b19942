package instance

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/state"
)

const (
	routerID = "router-1"
	tenantID = "d22b149cee9b4eac8349c517eda00b89"
)

func a(s string) netip.Addr   { return netip.MustParseAddr(s) }
func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// env is a router in the memory providers, its fake appliances, and what
// a manager needs.
type env struct {
	t       *testing.T
	ctx     context.Context
	net     *memory.Network
	compute *memory.Compute
	fakes   *fakes
	client  *client.Client
	driver  *router.Driver
	cfg     Config
}

// testLogger logs through t, and stops when the test ends.
func testLogger(t *testing.T) *slog.Logger {
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

// newWorld populates a network API with the router: a management network
// (IPv6 SLAAC), an external network, and two tenant networks with a VM
// each; the router has a gateway, both interfaces and a floating IP.
func newWorld(t *testing.T) *memory.Network {
	t.Helper()
	n := memory.NewNetwork("mgt-net")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n.AddNetwork(provider.Network{ID: "mgt-net", Subnets: []provider.Subnet{{ID: "mgt-subnet", CIDR: p("fdca:3ba5:a17a:acda::/64"),
		GatewayIP: a("fdca:3ba5:a17a:acda::1"), EnableDHCP: true, IPv6RAMode: "slaac", IPv6AddressMode: "slaac"}}}))
	must(n.AddNetwork(provider.Network{ID: "ext-net", External: true, Subnets: []provider.Subnet{
		{ID: "ext-v4", CIDR: p("172.16.77.0/24"), GatewayIP: a("172.16.77.1")}}}))
	must(n.AddNetwork(provider.Network{ID: "int1-net", MTU: 1450, Subnets: []provider.Subnet{
		{ID: "int1-v4", CIDR: p("192.168.0.0/24"), GatewayIP: a("192.168.0.1"), EnableDHCP: true}}}))
	must(n.AddNetwork(provider.Network{ID: "int2-net", Subnets: []provider.Subnet{
		{ID: "int2-v4", CIDR: p("10.1.0.0/24"), GatewayIP: a("10.1.0.1"), EnableDHCP: true}}}))
	must(n.AddNetwork(provider.Network{ID: "int3-net", Subnets: []provider.Subnet{
		{ID: "int3-v4", CIDR: p("10.3.0.0/24"), GatewayIP: a("10.3.0.1"), EnableDHCP: true}}}))
	must(n.AddRouter(provider.Router{ID: routerID, TenantID: tenantID,
		GatewayPort: &provider.Port{NetworkID: "ext-net", FixedIPs: []provider.FixedIP{{Address: a("172.16.77.2")}}},
		Interfaces: []provider.Port{
			{NetworkID: "int1-net", FixedIPs: []provider.FixedIP{{Address: a("192.168.0.1")}}},
			{NetworkID: "int2-net", FixedIPs: []provider.FixedIP{{Address: a("10.1.0.1")}}},
		},
		FloatingIPs: []provider.FloatingIP{{FloatingIP: a("172.16.77.50"), FixedIP: a("192.168.0.5")}},
	}))
	for _, vm := range []provider.Port{
		{NetworkID: "int1-net", DeviceID: "vm-1", DeviceOwner: "compute:nova", FixedIPs: []provider.FixedIP{{Address: a("192.168.0.5")}}},
		{NetworkID: "int2-net", DeviceID: "vm-2", DeviceOwner: "compute:nova", FixedIPs: []provider.FixedIP{{Address: a("10.1.0.5")}}},
	} {
		_, err := n.AddPort(vm)
		must(err)
	}
	return n
}

var routerConfig = router.Config{
	ManagementNetworkID: "mgt-net",
	Orchestrator:        model.Orchestrator{Address: a("fdca:3ba5:a17a:acda::1"), Host: "orchestrator-1"},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), net: newWorld(t), fakes: newFakes()}
	e.compute = memory.NewCompute(e.fakes, e.net)
	t.Cleanup(e.fakes.closeAll)
	var err error
	e.client, err = client.New(client.Options{DialContext: e.fakes.dial, AliveTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.Close)
	log := testLogger(t)
	e.driver, err = router.New(e.net, routerConfig, routerID, log)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{ImageID: "img-1", FlavorID: "flavor-1", RetryDelay: time.Millisecond, PollInterval: time.Millisecond,
		HotplugTimeout: 30 * time.Second, DeleteTimeout: 30 * time.Second, Logger: log}
	return e
}

// manager returns a fresh manager (a fresh orchestrator), with a fresh driver.
func (e *env) manager() *Manager {
	e.t.Helper()
	d, err := router.New(e.net, routerConfig, routerID, e.cfg.Logger)
	if err != nil {
		e.t.Fatal(err)
	}
	return New(d, e.net, e.compute, e.client, e.cfg)
}

func (e *env) expect(what string, got, want state.InstanceState) {
	e.t.Helper()
	if got != want {
		e.t.Fatalf("%s: state %s, want %s", what, got, want)
	}
}

// configured boots and configures the router's instance.
func (e *env) configured(m *Manager) {
	e.t.Helper()
	if err := m.Boot(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.expect("UpdateState after boot", m.UpdateState(e.ctx), state.Up)
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
}

func (e *env) servicePorts() (mgmt, vrrp []provider.Port) {
	e.t.Helper()
	mgmt, vrrp, err := e.driver.ServicePorts(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return mgmt, vrrp
}

func networksOf(ports []provider.Port) []string {
	var out []string
	for _, p := range ports {
		out = append(out, p.NetworkID)
	}
	slices.Sort(out)
	return out
}

func docNetworks(d *model.Document) []string {
	var out []string
	for _, n := range d.Networks {
		out = append(out, n.ID)
	}
	slices.Sort(out)
	return out
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.expect("no instance", m.UpdateState(e.ctx), state.Down)

	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.expect("after Boot", m.State(), state.Booting)
	if m.BootAttempts() != 1 || m.BootStarted().IsZero() {
		t.Errorf("attempts %d, boot started %v", m.BootAttempts(), m.BootStarted())
	}
	insts := e.compute.Instances()
	if len(insts) != 1 || insts[0].Name != "ak-router-router-1_0" || insts[0].ImageID != "img-1" {
		t.Fatalf("instances %+v", insts)
	}
	mgmt, vrrp := e.servicePorts()
	if len(mgmt) != 1 || !slices.Equal(networksOf(vrrp), []string{"ext-net", "int1-net", "int2-net"}) {
		t.Errorf("service ports: %v, VRRP on %v", mgmt, networksOf(vrrp))
	}
	if insts[0].PortIDs[0] != mgmt[0].ID {
		t.Errorf("the management port is not the first NIC: %v", insts[0].PortIDs)
	}

	e.expect("answering", m.UpdateState(e.ctx), state.Up)
	if !m.BootStarted().IsZero() {
		t.Errorf("BootStarted %v once up, want zero", m.BootStarted())
	}
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
	doc, puts := e.fakes.only().b.applied()
	if puts != 1 || doc.Generation == 0 || !slices.Equal(docNetworks(doc), []string{"ext-net", "int1-net", "int2-net", "mgt-net"}) {
		t.Fatalf("applied %d documents, last %+v", puts, doc)
	}
	if doc.Networks[0].Type != model.NetworkManagement || doc.Networks[0].Interface.IfName != "ge0" ||
		doc.Networks[0].Interface.LLAddr != mgmt[0].MAC {
		t.Errorf("management network %+v", doc.Networks[0])
	}
	if m.BootAttempts() != 0 {
		t.Errorf("boot attempts %d after a successful configuration", m.BootAttempts())
	}

	// A poll of a configured router pushes nothing.
	e.expect("poll", m.UpdateState(e.ctx), state.Configured)
	if _, puts := e.fakes.only().b.applied(); puts != 1 {
		t.Errorf("a poll pushed a document (%d pushes)", puts)
	}
	// Each push has a newer generation.
	gen := doc.Generation
	e.expect("Configure again", m.Configure(e.ctx), state.Configured)
	if doc, _ := e.fakes.only().b.applied(); doc.Generation <= gen {
		t.Errorf("generation %d after %d", doc.Generation, gen)
	}

	// A change nobody notified is found by the next poll.
	if _, err := e.net.AddPort(provider.Port{NetworkID: "int2-net", DeviceID: "vm-3", FixedIPs: []provider.FixedIP{{SubnetID: "int2-v4"}}}); err != nil {
		t.Fatal(err)
	}
	e.expect("poll after a silent change", m.UpdateState(e.ctx), state.Up)
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
	doc, _ = e.fakes.only().b.applied()
	if got := len(doc.Networks[3].Allocations); got != 3 {
		t.Errorf("int2 has %d allocations, want 3 (router, vm-2, vm-3)", got)
	}

	// The pending update did not take the router out of ACTIVE.
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, []string{"DOWN", "BUILD", "ACTIVE"}) {
		t.Errorf("published statuses %v", h)
	}
}

// TestOrchestratorRestart: a new manager finds a configured appliance
// Configured and pushes nothing; it finds one running an older document Up.
func TestOrchestratorRestart(t *testing.T) {
	e := newEnv(t)
	e.configured(e.manager())
	statuses := e.net.StatusHistory(routerID)

	m := Open(e.ctx, mustDriver(e), e.net, e.compute, e.client, e.cfg)
	e.expect("after a restart", m.State(), state.Configured)
	if _, puts := e.fakes.only().b.applied(); puts != 1 {
		t.Errorf("the restarted manager pushed: %d pushes", puts)
	}
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, statuses) {
		t.Errorf("the restarted manager published %v (before: %v)", h, statuses)
	}
	// Its next push still has a newer generation than the appliance's.
	before, _ := e.fakes.only().b.applied()
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
	if after, _ := e.fakes.only().b.applied(); after.Generation <= before.Generation {
		t.Errorf("generation went from %d to %d", before.Generation, after.Generation)
	}

	// The router changed while no orchestrator ran.
	if _, err := e.net.AddRouterInterface(routerID, provider.Port{NetworkID: "int3-net", FixedIPs: []provider.FixedIP{{SubnetID: "int3-v4"}}}); err != nil {
		t.Fatal(err)
	}
	m = Open(e.ctx, mustDriver(e), e.net, e.compute, e.client, e.cfg)
	e.expect("after a restart, with the router changed", m.State(), state.Up)
}

func mustDriver(e *env) *router.Driver {
	e.t.Helper()
	d, err := router.New(e.net, routerConfig, routerID, e.cfg.Logger)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestUnconfiguredAfterRestart: an answering appliance without a document is Up.
func TestUnconfiguredAfterRestart(t *testing.T) {
	e := newEnv(t)
	if err := e.manager().Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	m := Open(e.ctx, mustDriver(e), e.net, e.compute, e.client, e.cfg)
	e.expect("answering, never configured", m.State(), state.Up)
}

func TestInstanceDies(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	old := e.compute.Instances()[0]
	oldMgmt, oldVRRP := e.servicePorts()

	if err := e.compute.Kill(e.ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	e.expect("dead appliance", m.UpdateState(e.ctx), state.Down)
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	insts := e.compute.Instances()
	if len(insts) != 1 || insts[0].ID == old.ID || insts[0].Name != "ak-router-router-1_1" {
		t.Fatalf("after the reboot: %+v (old %s)", insts, old.ID)
	}
	mgmt, vrrp := e.servicePorts()
	for _, p := range append(oldMgmt, oldVRRP...) {
		if _, ok := e.net.Port(p.ID); ok {
			t.Errorf("the dead instance's port %s (%s) remains", p.ID, p.Name)
		}
	}
	if len(mgmt) != 1 || len(vrrp) != 3 {
		t.Errorf("new ports: %d management, %d VRRP", len(mgmt), len(vrrp))
	}
	e.expect("new appliance", m.UpdateState(e.ctx), state.Up)
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, []string{"BUILD", "ACTIVE", "DOWN", "BUILD", "ACTIVE"}) {
		t.Errorf("published statuses %v", h)
	}
}

// TestBootDeletesLeftover: booting replaces an instance left by someone else.
func TestBootDeletesLeftover(t *testing.T) {
	e := newEnv(t)
	if err := e.manager().Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	left := e.compute.Instances()[0]
	m := e.manager()
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	insts := e.compute.Instances()
	if len(insts) != 1 || insts[0].ID == left.ID || e.fakes.count() != 1 {
		t.Errorf("after booting over a leftover: %+v, %d appliances", insts, e.fakes.count())
	}
	e.expect("UpdateState", m.UpdateState(e.ctx), state.Up)
}

func TestBootFailures(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.compute.Fail("Boot", errors.New("no valid host"), -1)
	for i := 1; i <= 3; i++ {
		if err := m.Boot(e.ctx); err == nil || !strings.Contains(err.Error(), "no valid host") {
			t.Errorf("boot %d: %v", i, err)
		}
		e.expect("failed boot", m.State(), state.Down)
		if m.BootAttempts() != i {
			t.Errorf("boot attempts %d, want %d", m.BootAttempts(), i)
		}
	}
	if mgmt, vrrp := e.servicePorts(); len(mgmt)+len(vrrp) != 0 {
		t.Errorf("failed boots left ports: %v %v", mgmt, vrrp)
	}
	m.SetError(e.ctx)
	e.expect("SetError", m.State(), state.Error)
	if m.LastError().IsZero() {
		t.Error("LastError is zero")
	}
	m.ClearError(e.ctx)
	e.expect("ClearError", m.State(), state.Down)
	if m.BootAttempts() != 0 {
		t.Errorf("boot attempts %d after ClearError", m.BootAttempts())
	}
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, []string{"DOWN", "ERROR", "DOWN"}) {
		t.Errorf("published statuses %v", h)
	}
	e.compute.Fail("Boot", nil, 0)

	// The instance boots but goes to ERROR.
	e.fakes.startErr = errors.New("kernel panic")
	if err := m.Boot(e.ctx); err == nil || !strings.Contains(err.Error(), "ERROR") {
		t.Errorf("boot into ERROR: %v", err)
	}
	e.expect("booted into ERROR", m.State(), state.Down)
	e.expect("UpdateState of an instance in ERROR", m.UpdateState(e.ctx), state.Down)
	e.fakes.startErr = nil
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	if insts := e.compute.Instances(); len(insts) != 1 || insts[0].Status != provider.InstanceActive {
		t.Errorf("the instance in ERROR was not replaced: %+v", insts)
	}
	if m.BootAttempts() != 2 {
		t.Errorf("boot attempts %d, want 2", m.BootAttempts())
	}

	// Port creation fails half way: nothing is left behind.
	e.net.Fail("CreateServicePort", errors.New("quota"), 1)
	if err := m.Boot(e.ctx); err == nil {
		t.Error("boot without ports succeeded")
	}
	if mgmt, vrrp := e.servicePorts(); len(mgmt)+len(vrrp) != 0 || len(e.compute.Instances()) != 0 {
		t.Errorf("a failed boot left ports %v %v or instances %v", mgmt, vrrp, e.compute.Instances())
	}
	m.ResetBootCounter()
	if m.BootAttempts() != 0 {
		t.Error("ResetBootCounter")
	}
}

func TestBootingUntilAnswer(t *testing.T) {
	e := newEnv(t)
	e.fakes.silent = true
	m := e.manager()
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	started := m.BootStarted()
	for range 3 {
		e.expect("silent appliance", m.UpdateState(e.ctx), state.Booting)
	}
	if !m.BootStarted().Equal(started) {
		t.Errorf("BootStarted moved from %v to %v", started, m.BootStarted())
	}
	// A restarted orchestrator finds it booting since the instance's creation.
	m2 := Open(e.ctx, mustDriver(e), e.net, e.compute, e.client, e.cfg)
	e.expect("restarted while booting", m2.State(), state.Booting)
	if created := e.compute.Instances()[0].Created; !m2.BootStarted().Equal(created) {
		t.Errorf("BootStarted %v, want the instance's creation %v", m2.BootStarted(), created)
	}
	// The compute API still builds it: not probed.
	if err := e.compute.SetStatus(e.compute.Instances()[0].ID, provider.InstanceBuild); err != nil {
		t.Fatal(err)
	}
	e.fakes.answer()
	e.expect("building", m.UpdateState(e.ctx), state.Booting)
	if err := e.compute.SetStatus(e.compute.Instances()[0].ID, provider.InstanceActive); err != nil {
		t.Fatal(err)
	}
	e.expect("answering", m.UpdateState(e.ctx), state.Up)
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
}

func TestReplug(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	_, before := e.servicePorts()
	statuses := e.net.StatusHistory(routerID)

	// A new interface: one VRRP port attached, the appliance sees it.
	e.fakes.hotplugLag = 3
	if _, err := e.net.AddRouterInterface(routerID, provider.Port{NetworkID: "int3-net", FixedIPs: []provider.FixedIP{{SubnetID: "int3-v4"}}}); err != nil {
		t.Fatal(err)
	}
	e.expect("new interface", m.UpdateState(e.ctx), state.Up)
	e.expect("Configure", m.Configure(e.ctx), state.Replug)
	e.expect("Replug", m.Replug(e.ctx), state.Replug)
	_, vrrp := e.servicePorts()
	if !slices.Equal(networksOf(vrrp), []string{"ext-net", "int1-net", "int2-net", "int3-net"}) {
		t.Errorf("VRRP ports on %v", networksOf(vrrp))
	}
	if inst := e.compute.Instances()[0]; len(inst.PortIDs) != 5 {
		t.Errorf("instance ports %v", inst.PortIDs)
	}
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
	doc, _ := e.fakes.only().b.applied()
	if !slices.Equal(docNetworks(doc), []string{"ext-net", "int1-net", "int2-net", "int3-net", "mgt-net"}) {
		t.Errorf("document networks %v", docNetworks(doc))
	}

	// Two interfaces removed at once: exactly their two ports go (the
	// original deleted one port, the last it looked at).
	r, err := e.net.GetRouter(e.ctx, routerID)
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, ifc := range r.Interfaces {
		if ifc.NetworkID == "int2-net" || ifc.NetworkID == "int3-net" {
			if err := e.net.DeletePort(e.ctx, ifc.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range vrrp {
		if p.NetworkID == "int2-net" || p.NetworkID == "int3-net" {
			gone = append(gone, p.ID)
		}
	}
	e.expect("Configure", m.Configure(e.ctx), state.Replug)
	e.expect("Replug", m.Replug(e.ctx), state.Replug)
	_, after := e.servicePorts()
	if !slices.Equal(networksOf(after), []string{"ext-net", "int1-net"}) {
		t.Errorf("VRRP ports on %v after removing two interfaces", networksOf(after))
	}
	for _, id := range gone {
		if _, ok := e.net.Port(id); ok {
			t.Errorf("detached port %s not deleted", id)
		}
	}
	for _, p := range before {
		if p.NetworkID == "ext-net" || p.NetworkID == "int1-net" {
			if _, ok := e.net.Port(p.ID); !ok {
				t.Errorf("port %s on %s, still needed, was deleted", p.ID, p.NetworkID)
			}
		}
	}
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
	doc, _ = e.fakes.only().b.applied()
	if !slices.Equal(docNetworks(doc), []string{"ext-net", "int1-net", "mgt-net"}) {
		t.Errorf("document networks %v", docNetworks(doc))
	}
	// The NICs were renumbered by the unplugs; the document follows them.
	for _, n := range doc.Networks {
		if n.ID == "int1-net" && n.Interface.IfName != "ge2" {
			t.Errorf("int1 on %s", n.Interface.IfName)
		}
	}
	// The router stays ACTIVE throughout.
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, statuses) {
		t.Errorf("published statuses %v", h)
	}
	// Nothing to do: Replug changes nothing.
	e.expect("Replug with nothing to do", m.Replug(e.ctx), state.Replug)
}

func TestReplugDuplicatePorts(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	// A second VRRP port on int1 (the original's one-port-per-logical-port).
	extra, err := e.driver.CreateVRRPPort(e.ctx, "int1-net")
	if err != nil {
		t.Fatal(err)
	}
	inst := e.compute.Instances()[0]
	if err := e.compute.AttachPort(e.ctx, inst.ID, extra); err != nil {
		t.Fatal(err)
	}
	e.expect("Configure", m.Configure(e.ctx), state.Replug)
	e.expect("Replug", m.Replug(e.ctx), state.Replug)
	if _, ok := e.net.Port(extra.ID); ok {
		t.Error("the duplicate port remains")
	}
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
}

// TestReplugWaitsForAttachedPort: a port attached before the appliance
// saw it is waited for, not attached again.
func TestReplugWaitsForAttachedPort(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	if _, err := e.net.AddRouterInterface(routerID, provider.Port{NetworkID: "int3-net", FixedIPs: []provider.FixedIP{{Address: a("10.3.0.1")}}}); err != nil {
		t.Fatal(err)
	}
	p, err := e.driver.CreateVRRPPort(e.ctx, "int3-net")
	if err != nil {
		t.Fatal(err)
	}
	e.fakes.hotplugLag = 3
	if err := e.compute.AttachPort(e.ctx, e.compute.Instances()[0].ID, p); err != nil {
		t.Fatal(err)
	}
	e.expect("Configure", m.Configure(e.ctx), state.Replug)
	e.expect("Replug", m.Replug(e.ctx), state.Replug)
	if _, vrrp := e.servicePorts(); len(vrrp) != 4 {
		t.Errorf("%d VRRP ports, want 4", len(vrrp))
	}
	e.expect("Configure", m.Configure(e.ctx), state.Configured)
}

func TestReplugFailures(t *testing.T) {
	addInterface := func(e *env) {
		if _, err := e.net.AddRouterInterface(routerID, provider.Port{NetworkID: "int3-net", FixedIPs: []provider.FixedIP{{SubnetID: "int3-v4"}}}); err != nil {
			e.t.Fatal(err)
		}
	}
	t.Run("hotplug never seen", func(t *testing.T) {
		e := newEnv(t)
		e.cfg.HotplugTimeout = 50 * time.Millisecond
		m := e.manager()
		e.configured(m)
		addInterface(e)
		e.fakes.only().b.set(func(b *fakeBackend) { b.lostPlugs = true })
		e.fakes.hotplugLag = 1
		e.expect("Replug", m.Replug(e.ctx), state.Restart)
	})
	t.Run("unknown NIC", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		e.fakes.only().b.set(func(b *fakeBackend) { b.nics = append(b.nics, fakeNIC{mac: "fa:16:3e:ff:ff:ff"}) })
		e.expect("Configure", m.Configure(e.ctx), state.Replug)
		e.expect("Replug", m.Replug(e.ctx), state.Restart)
	})
	t.Run("attach fails", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		addInterface(e)
		e.compute.Fail("AttachPort", errors.New("nova says no"), 1)
		e.expect("Replug", m.Replug(e.ctx), state.Restart)
		if _, vrrp := e.servicePorts(); len(vrrp) != 3 {
			t.Errorf("the port that failed to attach remains: %v", networksOf(vrrp))
		}
	})
	t.Run("detach fails", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		r, _ := e.net.GetRouter(e.ctx, routerID)
		if err := e.net.DeletePort(e.ctx, r.Interfaces[1].ID); err != nil {
			t.Fatal(err)
		}
		e.compute.Fail("DetachPort", errors.New("nova says no"), 1)
		e.expect("Replug", m.Replug(e.ctx), state.Restart)
	})
	t.Run("port creation fails", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		addInterface(e)
		e.net.Fail("CreateServicePort", errors.New("quota"), 1)
		e.expect("Replug", m.Replug(e.ctx), state.Up)
		e.expect("Replug again", m.Replug(e.ctx), state.Replug)
	})
}

func TestStop(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	e.expect("Stop", m.Stop(e.ctx), state.Down)
	if len(e.compute.Instances()) != 0 || e.fakes.count() != 0 {
		t.Errorf("instances left: %v", e.compute.Instances())
	}
	if mgmt, vrrp := e.servicePorts(); len(mgmt)+len(vrrp) != 0 {
		t.Errorf("ports left: %v %v", mgmt, vrrp)
	}
	e.expect("Stop again", m.Stop(e.ctx), state.Down)
	e.expect("UpdateState", m.UpdateState(e.ctx), state.Down)

	// Deletion fails: still there, so Restart.
	e.configured(m)
	e.compute.Fail("Delete", errors.New("nova down"), 1)
	e.expect("failed Stop", m.Stop(e.ctx), state.Restart)
	e.expect("Stop", m.Stop(e.ctx), state.Down)

	// The router goes away.
	e.configured(m)
	if err := e.net.DeleteRouter(routerID); err != nil {
		t.Fatal(err)
	}
	e.expect("UpdateState", m.UpdateState(e.ctx), state.Gone)
	e.expect("Configure", m.Configure(e.ctx), state.Gone)
	e.expect("Replug", m.Replug(e.ctx), state.Gone)
	e.expect("Stop", m.Stop(e.ctx), state.Gone)
	if len(e.compute.Instances()) != 0 {
		t.Errorf("instances left: %v", e.compute.Instances())
	}
	if mgmt, vrrp := e.servicePorts(); len(mgmt)+len(vrrp) != 0 {
		t.Errorf("ports left: %v %v", mgmt, vrrp)
	}
	e.expect("Stop again", m.Stop(e.ctx), state.Gone)
	if err := m.Boot(e.ctx); err == nil {
		t.Error("booting a deleted router succeeded")
	}
	e.expect("Boot", m.State(), state.Gone)
}

func TestConfigureErrors(t *testing.T) {
	t.Run("stale generation", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		// Another orchestrator, whose clock is ahead, pushed meanwhile.
		ahead := time.Now().Add(time.Hour)
		e.cfg.Now = func() time.Time { return ahead }
		e.expect("Configure from the future", e.manager().Configure(e.ctx), state.Configured)
		future, _ := e.fakes.only().b.applied()
		e.cfg.Now = nil
		e.expect("Configure", m.Configure(e.ctx), state.Configured)
		doc, _ := e.fakes.only().b.applied()
		if doc.Generation != future.Generation+1 {
			t.Errorf("generation %d, want %d", doc.Generation, future.Generation+1)
		}
	})
	t.Run("one failure", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		if err := m.Boot(e.ctx); err != nil {
			t.Fatal(err)
		}
		b := e.fakes.only().b
		b.set(func(b *fakeBackend) {
			b.applyErr = errors.New("dnsmasq failed")
			b.beforeApply = func() { b.set(func(b *fakeBackend) { b.applyErr, b.beforeApply = nil, nil }) }
		})
		e.expect("Configure", m.Configure(e.ctx), state.Configured)
	})
	t.Run("failures", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		if err := m.Boot(e.ctx); err != nil {
			t.Fatal(err)
		}
		e.fakes.only().b.set(func(b *fakeBackend) { b.applyErr = errors.New("dnsmasq failed") })
		e.expect("Configure", m.Configure(e.ctx), state.Restart)
	})
	t.Run("rejected", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		if err := m.Boot(e.ctx); err != nil {
			t.Fatal(err)
		}
		e.fakes.only().b.set(func(b *fakeBackend) {
			b.applyErr = &model.ValidationError{Errors: []model.FieldError{{Field: "networks[2].subnets[0].cidr", Msg: "overlaps"}}}
		})
		e.expect("Configure", m.Configure(e.ctx), state.Error)
		if h := e.net.StatusHistory(routerID); h[len(h)-1] != "ERROR" {
			t.Errorf("published statuses %v", h)
		}
	})
	t.Run("renumbered", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		if err := m.Boot(e.ctx); err != nil {
			t.Fatal(err)
		}
		b := e.fakes.only().b
		// Between reading the NICs and applying, two swap places.
		b.set(func(b *fakeBackend) {
			b.beforeApply = func() {
				b.set(func(b *fakeBackend) {
					b.nics[1], b.nics[2] = b.nics[2], b.nics[1]
					b.beforeApply = nil
				})
			}
		})
		e.expect("Configure", m.Configure(e.ctx), state.Configured)
		doc, puts := b.applied()
		if puts != 1 || doc.Networks[1].Interface.IfName != "ge2" {
			t.Errorf("%d pushes; external network on %s, want ge2", puts, doc.Networks[1].Interface.IfName)
		}
	})
	t.Run("invalid router data", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		if err := m.Boot(e.ctx); err != nil {
			t.Fatal(err)
		}
		// A floating IP to an address on no internal network.
		e.net.AddFloatingIP(provider.FloatingIP{FloatingIP: a("172.16.77.60"), FixedIP: a("10.99.0.5"), RouterID: routerID})
		e.expect("Configure", m.Configure(e.ctx), state.Error)
		if _, puts := e.fakes.only().b.applied(); puts != 0 {
			t.Errorf("an invalid document was pushed")
		}
	})
	t.Run("network API down", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		e.net.Fail("GetRouter", errors.New("neutron down"), -1)
		e.expect("UpdateState", m.UpdateState(e.ctx), state.Configured)
		e.expect("Configure", m.Configure(e.ctx), state.Up)
		e.net.Fail("GetRouter", nil, 0)
		e.net.Fail("GetNetwork", errors.New("neutron down"), 1)
		e.expect("Configure", m.Configure(e.ctx), state.Up)
		e.expect("Configure", m.Configure(e.ctx), state.Configured)
	})
	t.Run("appliance dead", func(t *testing.T) {
		e := newEnv(t)
		m := e.manager()
		e.configured(m)
		if err := e.compute.Kill(e.ctx, e.compute.Instances()[0].ID); err != nil {
			t.Fatal(err)
		}
		e.expect("Configure", m.Configure(e.ctx), state.Down)
	})
	t.Run("no instance", func(t *testing.T) {
		e := newEnv(t)
		e.expect("Configure", e.manager().Configure(e.ctx), state.Down)
	})
}

// TestCanceled: a canceled context leaves the state as it was.
func TestCanceled(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	e.expect("UpdateState", m.UpdateState(ctx), state.Configured)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	e.expect("Replug", m.Replug(ctx), state.Configured)
}

func TestUserData(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	mgmt, _ := e.servicePorts()
	ud, _ := e.compute.UserData(e.compute.Instances()[0].ID)
	want := `{"astara":{"management":{"mac":"` + mgmt[0].MAC + `","address":"` + mgmt[0].FixedIPs[0].Address.String() + `/64"}}}`
	if string(ud) != want {
		t.Errorf("user data %s, want %s", ud, want)
	}
	m.SetImage("img-custom")
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	if img := e.compute.Instances()[0].ImageID; img != "img-custom" {
		t.Errorf("image %s after SetImage", img)
	}
	m.SetImage("")
	if err := m.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	if img := e.compute.Instances()[0].ImageID; img != "img-1" {
		t.Errorf("image %s after SetImage(\"\")", img)
	}
}

func TestSameDocument(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	e.configured(m)
	doc, _ := e.fakes.only().b.applied()
	other := *doc
	other.Generation++
	other.Networks = slices.Clone(doc.Networks)
	slices.Reverse(other.Networks)
	if same, err := sameDocument(doc, &other); err != nil || !same {
		t.Errorf("the same document, reordered and with another generation: %v, %v", same, err)
	}
	other.Hostname = "ak-other"
	if same, _ := sameDocument(doc, &other); same {
		t.Error("documents with different host names are the same")
	}
}

func TestFactory(t *testing.T) {
	e := newEnv(t)
	f := &Factory{Network: e.net, Compute: e.compute, Appliance: e.client, Router: routerConfig, Config: e.cfg}
	inst, err := f.NewInstance(e.ctx, event.Resource{Driver: "router", ID: routerID, TenantID: tenantID})
	if err != nil {
		t.Fatal(err)
	}
	e.expect("new manager", inst.State(), state.Down)
	if err := inst.Boot(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.expect("UpdateState", inst.UpdateState(e.ctx), state.Up)
	for name, tc := range map[string]struct {
		f *Factory
		r event.Resource
	}{
		"load balancer":    {f, event.Resource{Driver: "loadbalancer", ID: "lb-1"}},
		"wildcard":         {f, event.Resource{Driver: "router", ID: event.All}},
		"no id":            {f, event.Resource{Driver: "router"}},
		"no providers":     {&Factory{Router: routerConfig}, event.Resource{Driver: "router", ID: routerID}},
		"incomplete setup": {&Factory{Network: e.net, Compute: e.compute, Appliance: e.client}, event.Resource{Driver: "router", ID: routerID}},
	} {
		if _, err := tc.f.NewInstance(e.ctx, tc.r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
