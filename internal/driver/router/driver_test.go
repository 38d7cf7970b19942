package router

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/state"
)

var ctx = context.Background()

// populate loads the base world into a memory network API.
func populate(t *testing.T, w *world) *memory.Network {
	t.Helper()
	n := memory.NewNetwork("mgt-net")
	for _, id := range []string{"mgt-net", "ext-net", "int1-net", "int2-net"} {
		if err := n.AddNetwork(*w.networks[id]); err != nil {
			t.Fatal(err)
		}
	}
	r := *w.router
	r.Interfaces = nil
	r.GatewayPort = nil
	if err := n.AddRouter(r); err != nil {
		t.Fatal(err)
	}
	for _, ports := range [][]provider.Port{{*w.router.GatewayPort}, w.ports["int1-net"], w.ports["int2-net"]} {
		for _, p := range ports {
			if strings.HasPrefix(p.Name, "ASTARA:") {
				continue // the appliance's ports are made by the tests
			}
			if _, err := n.AddPort(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

func newDriver(t *testing.T, net provider.NetworkAPI) *Driver {
	t.Helper()
	d, err := New(net, testConfig, "router-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNames(t *testing.T) {
	d := newDriver(t, memory.NewNetwork("mgt-net"))
	if d.Name() != "ak-router-router-1" || d.InstanceName(3) != "ak-router-router-1_3" {
		t.Errorf("names %s, %s", d.Name(), d.InstanceName(3))
	}
	for name, want := range map[string]int{"ak-router-router-1_0": 0, "ak-router-router-1_12": 12, "ak-router-router-1": 0} {
		if n, ok := d.InstanceIndex(name); !ok || n != want {
			t.Errorf("InstanceIndex(%s) = %d, %v", name, n, ok)
		}
	}
	for _, name := range []string{"ak-router-router-10_0", "ak-router-router-1_", "ak-router-router-1_x", "ak-router-router-1_01", "ak-router-router-1_-1", "ak-router-router-2_0"} {
		if _, ok := d.InstanceIndex(name); ok {
			t.Errorf("InstanceIndex(%s) accepted", name)
		}
	}
	for name, want := range map[string]string{"ak-router-router-1_0": "router-1", "ak-router-d21c0ae3-c23f_12": "d21c0ae3-c23f",
		"ak-router-r": "r", "ak-router-a_b": "a_b", "ak-router-a_1_2": "a_1"} {
		if id, ok := ParseInstanceName(name); !ok || id != want {
			t.Errorf("ParseInstanceName(%s) = %q, %v; want %q", name, id, ok, want)
		}
	}
	for _, name := range []string{"ak-router-", "ak-loadbalancer-x_0", "router-1_0", ""} {
		if id, ok := ParseInstanceName(name); ok {
			t.Errorf("ParseInstanceName(%s) = %q", name, id)
		}
	}
	if _, err := New(nil, Config{}, "r", nil); err == nil || !strings.Contains(err.Error(), "management network id") || !strings.Contains(err.Error(), "orchestrator address") {
		t.Errorf("New with an empty config: %v", err)
	}
	if d.Config().ASN != 64512 || d.Config().NeighborASN != 64512 || d.Config().Orchestrator.MetadataPort != 9697 {
		t.Errorf("defaults not filled: %+v", d.Config())
	}
}

func TestLogicalNetworks(t *testing.T) {
	w := baseWorld()
	cases["same_network_two_interfaces"](w)
	w.router.GatewayPort = baseWorld().router.GatewayPort
	// A port of another owner among the interfaces is not a logical port.
	w.router.Interfaces = append(w.router.Interfaces, provider.Port{ID: "odd", NetworkID: "int2-net", DeviceOwner: "network:dhcp"})
	var ids []string
	for _, p := range LogicalPorts(w.router) {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{"gw-port", "if1-port", "if1b-port"}) {
		t.Errorf("LogicalPorts = %v", ids)
	}
	if nets := LogicalNetworks(w.router); !slices.Equal(nets, []string{"ext-net", "int1-net"}) {
		t.Errorf("LogicalNetworks = %v, want one entry per network", nets)
	}
}

func TestMakeAndDeletePorts(t *testing.T) {
	w := baseWorld()
	n := populate(t, w)
	d := newDriver(t, n)
	// Two interfaces on int1-net: still one VRRP port there.
	w.router.Interfaces = append(w.router.Interfaces, provider.Port{ID: "if1b", NetworkID: "int1-net", DeviceOwner: provider.OwnerRouterInterface})
	mgmt, vrrp, err := d.MakePorts(ctx, w.router)
	if err != nil {
		t.Fatal(err)
	}
	if mgmt.Name != "ASTARA:MGT:router-1" || mgmt.NetworkID != "mgt-net" || len(mgmt.FixedIPs) != 1 {
		t.Errorf("management port %+v", mgmt)
	}
	var nets []string
	for _, p := range vrrp {
		nets = append(nets, p.NetworkID)
		if p.Name != "ASTARA:VRRP:router-1" || len(p.FixedIPs) != 0 {
			t.Errorf("VRRP port %+v", p)
		}
	}
	if !slices.Equal(nets, []string{"ext-net", "int1-net", "int2-net"}) {
		t.Errorf("VRRP ports on %v", nets)
	}
	// The management port was created first.
	all := n.Ports()
	if i := slices.IndexFunc(all, func(p provider.Port) bool { return strings.HasPrefix(p.Name, "ASTARA:") }); all[i].ID != mgmt.ID {
		t.Errorf("the first service port created is %+v, not the management port", all[i])
	}
	m, v, err := d.ServicePorts(ctx)
	if err != nil || len(m) != 1 || len(v) != 3 {
		t.Errorf("ServicePorts = %v, %v, %v", m, v, err)
	}

	if err := d.DeletePort(ctx, vrrp[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePort(ctx, vrrp[1].ID); err != nil {
		t.Errorf("deleting a deleted port: %v", err)
	}
	if _, ok := n.Port(vrrp[1].ID); ok {
		t.Error("DeletePort left the port")
	}
	if _, ok := n.Port(vrrp[0].ID); !ok {
		t.Error("DeletePort deleted another port")
	}
	if err := d.DeletePorts(ctx); err != nil {
		t.Fatal(err)
	}
	if m, v, _ := d.ServicePorts(ctx); len(m)+len(v) != 0 {
		t.Errorf("after DeletePorts: %v %v", m, v)
	}
	if err := d.DeletePorts(ctx); err != nil {
		t.Errorf("DeletePorts twice: %v", err)
	}

	// A failure half way deletes what was made.
	created := 0
	failing := &failAfter{Network: n, ok: 2, created: &created}
	d2 := newDriver(t, failing)
	if _, _, err := d2.MakePorts(ctx, w.router); err == nil || !strings.Contains(err.Error(), "quota exceeded") {
		t.Errorf("MakePorts with a failing API: %v", err)
	}
	if m, v, _ := d.ServicePorts(ctx); created != 2 || len(m)+len(v) != 0 {
		t.Errorf("after a failed MakePorts (%d created): %v %v", created, m, v)
	}

	// A provider without DeletePort.
	d3 := newDriver(t, struct{ provider.NetworkAPI }{n})
	if err := d3.DeletePort(ctx, "x"); !errors.Is(err, ErrCannotDeletePort) {
		t.Errorf("DeletePort without support: %v", err)
	}
}

// failAfter lets ok service ports be created, then fails.
type failAfter struct {
	*memory.Network
	ok      int
	created *int
}

func (f *failAfter) CreateServicePort(ctx context.Context, label, id, net string) (*provider.Port, error) {
	if *f.created >= f.ok {
		return nil, errors.New("quota exceeded")
	}
	*f.created++
	return f.Network.CreateServicePort(ctx, label, id, net)
}

func TestMapInterfaces(t *testing.T) {
	w := baseWorld()
	ports := []provider.Port{w.mgmt, w.ifaces["ext-net"].Port, w.ifaces["int1-net"].Port}
	nics := []client.Interface{
		{IfName: "ge0", LLAddr: "FA:16:3E:AA:00:00"},
		{IfName: "ge1", LLAddr: "fa:16:3e:aa:00:02"},
		{IfName: "ge2", LLAddr: "fa:16:3e:aa:00:01"},
	}
	m, err := MapInterfaces(nics, ports)
	if err != nil {
		t.Fatal(err)
	}
	if m["mgt-net"].IfName != "ge0" || m["int1-net"].IfName != "ge1" || m["ext-net"].IfName != "ge2" || m["mgt-net"].MAC != "fa:16:3e:aa:00:00" {
		t.Errorf("map %+v", m)
	}
	if !slices.Equal(m.Networks(), []string{"ext-net", "int1-net", "mgt-net"}) {
		t.Errorf("Networks() = %v", m.Networks())
	}

	// A port without NIC, a NIC without port, two ports on one network.
	extra := provider.Port{ID: "second-int1", NetworkID: "int1-net", MAC: "fa:16:3e:aa:00:09"}
	unplugged := provider.Port{ID: "int2", NetworkID: "int2-net", MAC: "fa:16:3e:aa:00:03"}
	nics = append(nics, client.Interface{IfName: "ge3", LLAddr: "fa:16:3e:aa:00:09"}, client.Interface{IfName: "ge4", LLAddr: "fa:16:3e:ff:ff:ff"})
	m, err = MapInterfaces(nics, append(ports, extra, unplugged))
	var mm *Mismatch
	if !errors.As(err, &mm) {
		t.Fatalf("mismatch not reported: %v", err)
	}
	if len(mm.Unplugged) != 1 || mm.Unplugged[0].ID != "int2" || len(mm.Unknown) != 1 || mm.Unknown[0].IfName != "ge4" ||
		len(mm.Duplicate) != 1 || mm.Duplicate[0].ID != "second-int1" {
		t.Errorf("mismatch %+v", mm)
	}
	if m["int1-net"].IfName != "ge1" {
		t.Errorf("the first port on a network keeps its NIC: %+v", m["int1-net"])
	}
	for _, s := range []string{"port int2", "NIC ge4", "second NIC on network int1-net"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
}

func TestStatus(t *testing.T) {
	want := map[state.InstanceState]string{
		state.Down: "DOWN", state.Booting: "BUILD", state.Up: "BUILD", state.Degraded: "BUILD",
		state.Configured: "ACTIVE", state.Error: "ERROR",
	}
	for s := state.Down; s <= state.Degraded; s++ {
		got, ok := Status(s)
		if w, mapped := want[s]; ok != mapped || got != w {
			t.Errorf("Status(%s) = %q, %v; want %q, %v", s, got, ok, w, mapped)
		}
	}
}

func TestSyncStatus(t *testing.T) {
	w := baseWorld()
	n := populate(t, w)
	d := newDriver(t, n)
	for _, s := range []state.InstanceState{state.Down, state.Booting, state.Up, state.Booting, state.Replug, state.Configured, state.Configured, state.Restart, state.Gone} {
		if err := d.SyncStatus(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if h := n.StatusHistory("router-1"); !slices.Equal(h, []string{"DOWN", "BUILD", "ACTIVE"}) {
		t.Errorf("published %v, want each change once and nothing for unmapped states", h)
	}
	// A failed publication is retried by the next sync.
	n.Fail("SetRouterStatus", errors.New("neutron down"), 1)
	if err := d.SyncStatus(ctx, state.Error); err == nil {
		t.Error("the failure was not reported")
	}
	if err := d.SyncStatus(ctx, state.Error); err != nil {
		t.Fatal(err)
	}
	if h := n.StatusHistory("router-1"); !slices.Equal(h, []string{"DOWN", "BUILD", "ACTIVE", "ERROR"}) {
		t.Errorf("published %v after a failure", h)
	}
	// What the router shows is not published again; what differs is.
	d = newDriver(t, n)
	d.RecordStatus("ERROR")
	if err := d.SyncStatus(ctx, state.Error); err != nil {
		t.Fatal(err)
	}
	if err := d.SyncStatus(ctx, state.Booting); err != nil {
		t.Fatal(err)
	}
	if h := n.StatusHistory("router-1"); !slices.Equal(h, []string{"DOWN", "BUILD", "ACTIVE", "ERROR", "BUILD"}) {
		t.Errorf("published %v after recording ERROR", h)
	}
}

// TestBuildConfigReadsNeutron: BuildConfig reads what Build needs through
// the network API, and gets the same document as from the hand-made input.
func TestBuildConfigReadsNeutron(t *testing.T) {
	w := baseWorld()
	n := populate(t, w)
	d := newDriver(t, n)
	r, err := d.Router(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.BuildConfig(ctx, r, w.mgmt, w.ifaces)
	if err != nil {
		t.Fatal(err)
	}
	want, err := testConfig.Build(w.input())
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("BuildConfig:\n%s\nBuild:\n%s", gb, wb)
	}

	n.Fail("GetNetwork", errors.New("neutron down"), 1)
	var cerr *ConfigError
	if _, err := d.BuildConfig(ctx, r, w.mgmt, w.ifaces); err == nil || !strings.Contains(err.Error(), "reading network") || errors.As(err, &cerr) {
		t.Errorf("BuildConfig with Neutron down: %v; want a read error, not a *ConfigError", err)
	}
	if err := n.DeleteRouter("router-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Router(ctx); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Router of a deleted router: %v", err)
	}
}
