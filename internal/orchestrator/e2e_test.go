package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// The end-to-end world: the management network, where the test is the
// orchestrator, an external network and two tenant networks.
const (
	e2eBridge = "br-astara-e2e"
	e2eMgmt   = "fdca:3ba5:a17a:acda::1/64"
	tenant1   = "11111111aaaa4aaa8aaa111111111111"
	tenant2   = "22222222bbbb4bbb8bbb222222222222"
	router1   = "11111111-aaaa-4aaa-8aaa-000000000001"
	router2   = "22222222-bbbb-4bbb-8bbb-000000000002"
	// e2eWait bounds each wait: agents built with the race detector boot
	// slowly on a loaded machine.
	e2eWait = 3 * time.Minute
)

func e2eWorld(t *testing.T) *memory.Network {
	t.Helper()
	n := memory.NewNetwork("mgt-net")
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, nw := range []provider.Network{
		{ID: "mgt-net", Subnets: []provider.Subnet{{ID: "mgt-subnet", CIDR: p("fdca:3ba5:a17a:acda::/64"),
			GatewayIP: a("fdca:3ba5:a17a:acda::1"), EnableDHCP: true, IPv6RAMode: "slaac", IPv6AddressMode: "slaac"}}},
		{ID: "ext-net", External: true, Subnets: []provider.Subnet{{ID: "ext-v4", CIDR: p("172.16.77.0/24"), GatewayIP: a("172.16.77.1")}}},
		{ID: "int1-net", TenantID: tenant1, Subnets: []provider.Subnet{{ID: "int1-v4", CIDR: p("192.168.1.0/24"), GatewayIP: a("192.168.1.1"), EnableDHCP: true}}},
		{ID: "int2-net", TenantID: tenant2, Subnets: []provider.Subnet{{ID: "int2-v4", CIDR: p("192.168.2.0/24"), GatewayIP: a("192.168.2.1"), EnableDHCP: true}}},
	} {
		if err := n.AddNetwork(nw); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// e2e is the end-to-end environment: real appliance agents in namespaces,
// in-memory network and compute APIs, and an orchestrator fed real
// Neutron notifications.
type e2e struct {
	t       *testing.T
	dir     string
	net     *memory.Network
	compute *memory.Compute
	runner  *appliancetest.Runner
	client  *client.Client
	src     *intake.InProcessSource
	o       *Orchestrator
	api     *api
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	appliancetest.Bridge(t, e2eBridge, e2eMgmt)
	pki := appliancetest.NewPKI(t)
	e := &e2e{t: t, dir: t.TempDir(), net: e2eWorld(t)}
	e.runner = appliancetest.NewRunner(t, e2eBridge, pki.AgentFlags())
	e.compute = memory.NewCompute(e.runner, e.net)
	t.Cleanup(func() {
		for _, in := range e.compute.Instances() { // whatever happened, no instance outlives the test
			_ = e.compute.Delete(context.Background(), in.ID)
		}
	})
	var err error
	e.client, err = client.New(client.Options{AliveTimeout: 10 * time.Second, TLS: &client.TLSOptions{
		CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: appliancetest.ServerName}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.Close)
	writeConfig(t, e.dir, map[string]string{
		"DEFAULT": `health_check_period = 1
reboot_error_threshold = 2
error_state_cooldown = 3600
boot_timeout = 150
boot_check_interval = 0.2
alive_timeout = 10
config_timeout = 90
hotplug_timeout = 90
retry_delay = 0.2
max_retry_delay = 2`,
		"router": "image_uuid = astara-appliance-image\ninstance_flavor = m1.small",
		"astara_appliance": fmt.Sprintf("tls_ca_file = %s\ntls_cert_file = %s\ntls_key_file = %s\ntls_server_name = %s",
			pki.CA, pki.ClientCert, pki.ClientKey, appliancetest.ServerName),
	})
	e.start()
	return e
}

// start starts an orchestrator on the environment's configuration and
// state directory.
func (e *e2e) start() {
	e.t.Helper()
	cfg := loadConfig(e.t, filepath.Join(e.dir, "orchestrator.ini"))
	e.src = intake.NewInProcessSource(intake.InProcessConfig{Normalizer: Normalizer(cfg)})
	o, err := New(cfg, Deps{Network: e.net, Compute: e.compute, Source: e.src, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { o.Stop(context.Background()) })
	e.o, e.api = o, newAPI(e.t, o)
}

func (e *e2e) stop() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	if err := e.o.Stop(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) publish(name, routerID, tenantID string) {
	e.t.Helper()
	if err := e.src.Publish(context.Background(), notification(e.t, name, routerID, tenantID)); err != nil {
		e.t.Fatal(err)
	}
}

// instances returns the router's instances.
func (e *e2e) instances(routerID string) []provider.Instance {
	var out []provider.Instance
	for _, in := range e.compute.Instances() {
		if strings.HasPrefix(in.Name, "ak-router-"+routerID) {
			out = append(out, in)
		}
	}
	return out
}

// servicePorts returns the appliance ports of a router (ASTARA:*:<id>).
func (e *e2e) servicePorts(routerID string) []provider.Port {
	var out []provider.Port
	for _, p := range e.net.Ports() {
		if strings.HasPrefix(p.Name, "ASTARA:") && strings.HasSuffix(p.Name, ":"+routerID) {
			out = append(out, p)
		}
	}
	return out
}

// mgmtAddr returns the router's appliance's management address.
func (e *e2e) mgmtAddr(routerID string) (netip.Addr, bool) {
	ports, err := e.net.ListPorts(context.Background(), provider.PortFilter{Name: provider.ServicePortName(provider.LabelManagement, routerID)})
	if err != nil || len(ports) != 1 || len(ports[0].FixedIPs) == 0 {
		return netip.Addr{}, false
	}
	return ports[0].FixedIPs[0].Address, true
}

// applied returns the document the router's appliance runs (nil if it
// does not answer).
func (e *e2e) applied(routerID string) *model.Document {
	addr, ok := e.mgmtAddr(routerID)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	doc, err := e.client.GetConfig(ctx, addr)
	if err != nil {
		return nil
	}
	return doc
}

func networkIDs(d *model.Document) []string {
	var ids []string
	for _, n := range d.Networks {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	return ids
}

// configured waits until the router's appliance runs a document with
// exactly these networks, the orchestrator shows it configured, and the
// router's status is ACTIVE. It returns the document.
func (e *e2e) configured(routerID string, networks ...string) *model.Document {
	e.t.Helper()
	slices.Sort(networks)
	var doc *model.Document
	nstest.WaitFor(e.t, e2eWait, fmt.Sprintf("router %s configured with %v", routerID, networks), func() bool {
		doc = e.applied(routerID)
		if doc == nil || !slices.Equal(networkIDs(doc), networks) {
			return false
		}
		r, ok := e.api.resource(routerID)
		return ok && r.Instance == "configured" && e.net.RouterStatus(routerID) == "ACTIVE"
	})
	return doc
}

// generation returns the generation the router's appliance applied.
func (e *e2e) generation(routerID string) uint64 {
	e.t.Helper()
	addr, ok := e.mgmtAddr(routerID)
	if !ok {
		e.t.Fatalf("router %s has no management port", routerID)
	}
	info, err := e.client.Info(context.Background(), addr)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.Generation
}

// healthPolls returns how many health polls the orchestrator dispatched.
func (e *e2e) healthPolls() int {
	n, _ := strconv.Atoi(e.api.metric(`astara_health_polls_total{result="ok"}`))
	return n
}

// TestEndToEnd drives the orchestrator with real Neutron notifications
// through the in-memory network and compute APIs, whose instances run the
// real astara-appliance agent in network namespaces: boot and configure,
// repair after the instance dies, ERROR after repeated boot failures and
// out of it by an operator command, delete, and an orchestrator restart
// that adopts a running appliance without pushing to it.
func TestEndToEnd(t *testing.T) {
	nstest.Require(t)
	e := newE2E(t)

	t.Log("(1) router.create.end, then router.interface.create: booted and configured")
	if err := e.net.AddRouter(provider.Router{ID: router1, TenantID: tenant1, AdminStateUp: true,
		GatewayPort: &provider.Port{NetworkID: "ext-net", FixedIPs: []provider.FixedIP{{Address: netip.MustParseAddr("172.16.77.11")}}}}); err != nil {
		t.Fatal(err)
	}
	e.publish("router.create.end", router1, tenant1)
	if _, err := e.net.AddRouterInterface(router1, provider.Port{NetworkID: "int1-net",
		FixedIPs: []provider.FixedIP{{Address: netip.MustParseAddr("192.168.1.1")}}}); err != nil {
		t.Fatal(err)
	}
	e.publish("router.interface.create", router1, tenant1)
	doc := e.configured(router1, "mgt-net", "ext-net", "int1-net")
	if doc.TenantID != tenant1 || doc.Orchestrator.Address != netip.MustParseAddr("fdca:3ba5:a17a:acda::1") ||
		doc.Orchestrator.Host != "test-orchestrator" {
		t.Errorf("document: tenant %s, orchestrator %+v", doc.TenantID, doc.Orchestrator)
	}
	insts := e.instances(router1)
	if len(insts) != 1 || insts[0].ImageID != "astara-appliance-image" {
		t.Fatalf("instances of router 1: %+v", insts)
	}
	first := insts[0]
	nstest.WaitFor(t, e2eWait, "both notifications acknowledged", func() bool {
		got := e.src.Stats()
		return got.Acked == 2 && got.Events == 2
	})

	t.Log("(2) the appliance dies: the health poll finds it, and it is replaced")
	ns := e.runner.Namespace(first.ID)
	if err := e.compute.Kill(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	if appliancetest.NamespaceExists(t, ns) {
		t.Fatalf("namespace %s survived the kill", ns)
	}
	nstest.WaitFor(t, e2eWait, "a new instance for router 1", func() bool {
		insts := e.instances(router1)
		return len(insts) == 1 && insts[0].ID != first.ID
	})
	e.configured(router1, "mgt-net", "ext-net", "int1-net")
	h := e.net.StatusHistory(router1)
	if i := slices.Index(h, "ACTIVE"); i < 0 || !slices.Contains(h[i:], "DOWN") || h[len(h)-1] != "ACTIVE" {
		t.Errorf("router 1's statuses %v: want ACTIVE, then DOWN when it died, ACTIVE again", h)
	}

	t.Log("(3) every boot fails: ERROR after reboot_error_threshold; polls ignored; an operator command clears it")
	e.compute.Fail("Boot", errors.New("no valid host was found"), -1)
	if err := e.net.AddRouter(provider.Router{ID: router2, TenantID: tenant2, AdminStateUp: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.net.AddRouterInterface(router2, provider.Port{NetworkID: "int2-net",
		FixedIPs: []provider.FixedIP{{Address: netip.MustParseAddr("192.168.2.1")}}}); err != nil {
		t.Fatal(err)
	}
	e.publish("router.create.end", router2, tenant2)
	var inError resource
	nstest.WaitFor(t, e2eWait, "router 2 in ERROR", func() bool {
		var ok bool
		inError, ok = e.api.resource(router2)
		return ok && inError.Instance == "error" && e.net.RouterStatus(router2) == "ERROR"
	})
	// Polls queued before it went to ERROR are dropped in one more step;
	// from then on, nothing runs it.
	nstest.WaitFor(t, e2eWait, "router 2 at rest", func() bool {
		var ok bool
		inError, ok = e.api.resource(router2)
		return ok && !inError.Running && inError.QueueLen == 0 && inError.State == "CalcAction"
	})
	if !strings.Contains(inError.LastError, "2 boots failed") {
		t.Errorf("router 2's last error %q", inError.LastError)
	}
	if len(e.instances(router2)) != 0 {
		t.Errorf("router 2 has instances: %+v", e.instances(router2))
	}
	polls := e.healthPolls()
	nstest.WaitFor(t, e2eWait, "three health polls", func() bool { return e.healthPolls() >= polls+3 })
	r2, _ := e.api.resource(router2)
	if len(r2.Transitions) != len(inError.Transitions) || !r2.LastSeen.Equal(inError.LastSeen) || r2.Instance != "error" {
		t.Errorf("router 2 in ERROR took polls: %d transitions (were %d), last seen %s (was %s)",
			len(r2.Transitions), len(inError.Transitions), r2.LastSeen, inError.LastSeen)
	}
	nstest.WaitFor(t, e2eWait, "router 2 shown stale", func() bool {
		stale := e.api.resources("stale=true")
		return len(stale) == 1 && stale[0].Resource.ID == router2
	})
	e.compute.Fail("Boot", nil, 0) // the cloud recovers; the operator retries
	e.api.put("/resource/update/" + router2)
	e.configured(router2, "mgt-net", "int2-net")

	t.Log("(4) router.delete.end: the instance, its ports and its namespace go")
	insts = e.instances(router2)
	if len(insts) != 1 {
		t.Fatalf("instances of router 2: %+v", insts)
	}
	ns2 := e.runner.Namespace(insts[0].ID)
	if err := e.net.DeleteRouter(router2); err != nil {
		t.Fatal(err)
	}
	e.publish("router.delete.end", router2, tenant2)
	nstest.WaitFor(t, e2eWait, "router 2 no longer managed", func() bool {
		_, ok := e.api.resource(router2)
		return !ok
	})
	if insts := e.instances(router2); len(insts) != 0 {
		t.Errorf("router 2's instances remain: %+v", insts)
	}
	if ports := e.servicePorts(router2); len(ports) != 0 {
		t.Errorf("router 2's appliance ports remain: %+v", ports)
	}
	if appliancetest.NamespaceExists(t, ns2) {
		t.Errorf("router 2's namespace %s remains", ns2)
	}

	t.Log("(5) an orchestrator restart adopts the running appliance without pushing to it")
	gen, boots := e.generation(router1), e.compute.Boots()
	running := e.instances(router1)[0]
	e.stop()
	e.start()
	nstest.WaitFor(t, e2eWait, "router 1 adopted", func() bool {
		r, ok := e.api.resource(router1)
		return ok && r.Instance == "configured"
	})
	polls = e.healthPolls()
	nstest.WaitFor(t, e2eWait, "two health polls", func() bool { return e.healthPolls() >= polls+2 })
	if g := e.generation(router1); g != gen {
		t.Errorf("the restarted orchestrator pushed a document: generation %d, was %d", g, gen)
	}
	if insts := e.instances(router1); len(insts) != 1 || insts[0].ID != running.ID || e.compute.Boots() != boots {
		t.Errorf("the restarted orchestrator booted: instances %+v, %d boots (were %d)", insts, e.compute.Boots(), boots)
	}
	r1, _ := e.api.resource(router1)
	for _, tr := range r1.Transitions {
		if tr.To == "ConfigureInstance" || tr.To == "CreateInstance" {
			t.Errorf("the adopted router went through %s: %+v", tr.To, r1.Transitions)
		}
	}
	if s := e.api.resources("stale=true"); len(s) != 0 {
		t.Errorf("stale resources after the restart: %+v", s)
	}
}
