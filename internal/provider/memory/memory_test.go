package memory

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/astara-go/astara/internal/provider"
)

var ctx = context.Background()

func mustNetwork(t *testing.T) *Network {
	t.Helper()
	n := NewNetwork("mgt")
	for _, nw := range []provider.Network{
		{ID: "mgt", Subnets: []provider.Subnet{{ID: "mgt-v6", CIDR: netip.MustParsePrefix("fdca:3ba5:a17a:acda::/64"),
			GatewayIP: netip.MustParseAddr("fdca:3ba5:a17a:acda::1"), IPv6RAMode: "slaac", IPv6AddressMode: "slaac"}}},
		{ID: "ext", External: true, Subnets: []provider.Subnet{{ID: "ext-v4", CIDR: netip.MustParsePrefix("172.16.77.0/24"),
			GatewayIP: netip.MustParseAddr("172.16.77.1")}}},
		{ID: "int", MTU: 1450, Subnets: []provider.Subnet{{ID: "int-v4", CIDR: netip.MustParsePrefix("192.168.0.0/30"),
			GatewayIP: netip.MustParseAddr("192.168.0.1"), EnableDHCP: true}}},
	} {
		if err := n.AddNetwork(nw); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func TestNetworkRouters(t *testing.T) {
	n := mustNetwork(t)
	err := n.AddRouter(provider.Router{
		ID: "r1", TenantID: "t1",
		GatewayPort: &provider.Port{NetworkID: "ext", FixedIPs: []provider.FixedIP{{SubnetID: "ext-v4"}}},
		Interfaces:  []provider.Port{{NetworkID: "int", FixedIPs: []provider.FixedIP{{Address: netip.MustParseAddr("192.168.0.1")}}}},
		FloatingIPs: []provider.FloatingIP{{FloatingIP: netip.MustParseAddr("172.16.77.50"), FixedIP: netip.MustParseAddr("192.168.0.2")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.GetRouter(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.GatewayPort == nil || r.GatewayPort.FixedIPs[0].Address != netip.MustParseAddr("172.16.77.2") ||
		r.GatewayPort.DeviceOwner != provider.OwnerRouterGateway {
		t.Errorf("gateway port %+v: want 172.16.77.2 (the first free address after the gateway)", r.GatewayPort)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].FixedIPs[0].SubnetID != "int-v4" || r.Interfaces[0].DeviceID != "r1" {
		t.Errorf("interfaces %+v", r.Interfaces)
	}
	if len(r.FloatingIPs) != 1 || r.FloatingIPs[0].RouterID != "r1" || r.FloatingIPs[0].ID == "" || r.Status != "ACTIVE" {
		t.Errorf("router %+v", r)
	}

	// The /30 has 192.168.0.1 (router) and .2; .3 is the broadcast address.
	vm, err := n.AddPort(provider.Port{NetworkID: "int", FixedIPs: []provider.FixedIP{{SubnetID: "int-v4"}}})
	if err != nil || vm.FixedIPs[0].Address != netip.MustParseAddr("192.168.0.2") || vm.MAC == "" || vm.ID == "" {
		t.Errorf("AddPort = %+v, %v", vm, err)
	}
	if _, err := n.AddPort(provider.Port{NetworkID: "int", FixedIPs: []provider.FixedIP{{SubnetID: "int-v4"}}}); err == nil {
		t.Error("a full subnet allocated an address")
	}
	if _, err := n.AddPort(provider.Port{NetworkID: "nope"}); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("port on an unknown network: %v", err)
	}

	refs, err := n.RoutersOfTenant(ctx, "t1")
	if err != nil || len(refs) != 1 || refs[0].ID != "r1" {
		t.Errorf("RoutersOfTenant = %v, %v", refs, err)
	}
	if refs, _ := n.RoutersOfTenant(ctx, "t2"); len(refs) != 0 {
		t.Errorf("another tenant's routers: %v", refs)
	}
	if err := n.SetRouterStatus(ctx, "r1", "BUILD"); err != nil {
		t.Fatal(err)
	}
	if err := n.SetRouterStatus(ctx, "r1", "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	if h := n.StatusHistory("r1"); !slices.Equal(h, []string{"BUILD", "ACTIVE"}) {
		t.Errorf("status history %v", h)
	}

	if err := n.DeleteRouter("r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.GetRouter(ctx, "r1"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("GetRouter of a deleted router: %v", err)
	}
	if ports, _ := n.ListPorts(ctx, provider.PortFilter{DeviceID: "r1"}); len(ports) != 0 {
		t.Errorf("the deleted router's ports remain: %v", ports)
	}
	if err := n.SetRouterStatus(ctx, "r1", "DOWN"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("status of a deleted router: %v", err)
	}
}

func TestServicePorts(t *testing.T) {
	n := mustNetwork(t)
	mgt, err := n.CreateServicePort(ctx, provider.LabelManagement, "r1", "mgt")
	if err != nil {
		t.Fatal(err)
	}
	// EUI-64 of the MAC on the SLAAC subnet.
	hw := mgt.MAC
	if mgt.Name != "ASTARA:MGT:r1" || len(mgt.FixedIPs) != 1 || mgt.FixedIPs[0].SubnetID != "mgt-v6" {
		t.Fatalf("management port %+v", mgt)
	}
	want := netip.MustParseAddr("fdca:3ba5:a17a:acda:f816:3eff:fe" + hw[9:11] + ":" + hw[12:14] + hw[15:17])
	if mgt.FixedIPs[0].Address != want {
		t.Errorf("management address %s, want the EUI-64 %s", mgt.FixedIPs[0].Address, want)
	}
	v1, err := n.CreateServicePort(ctx, provider.LabelVRRP, "r1", "ext")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := n.CreateServicePort(ctx, provider.LabelVRRP, "r1", "int")
	if err != nil {
		t.Fatal(err)
	}
	if len(v1.FixedIPs) != 0 || v1.MAC == v2.MAC || v1.MAC == mgt.MAC {
		t.Errorf("VRRP ports %+v %+v", v1, v2)
	}
	if _, err := n.CreateServicePort(ctx, provider.LabelVRRP, "r1", "nope"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("service port on an unknown network: %v", err)
	}
	ports, err := n.ListPorts(ctx, provider.PortFilter{Name: "ASTARA:VRRP:r1"})
	if err != nil || len(ports) != 2 {
		t.Errorf("ListPorts by name = %v, %v", ports, err)
	}
	ports, _ = n.ListPorts(ctx, provider.PortFilter{Name: "ASTARA:VRRP:r1", NetworkID: "int"})
	if len(ports) != 1 || ports[0].ID != v2.ID {
		t.Errorf("ListPorts by name and network = %v", ports)
	}
	if err := n.DeleteServicePorts(ctx, provider.LabelVRRP, "r1"); err != nil {
		t.Fatal(err)
	}
	if left := n.Ports(); len(left) != 1 || left[0].ID != mgt.ID {
		t.Errorf("after deleting the VRRP ports: %v", left)
	}
	if err := n.DeletePort(ctx, mgt.ID); err != nil {
		t.Fatal(err)
	}
	if err := n.DeletePort(ctx, mgt.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("deleting a deleted port: %v", err)
	}
}

func TestNetworkFaults(t *testing.T) {
	n := mustNetwork(t)
	boom := errors.New("boom")
	n.Fail("CreateServicePort", boom, 1)
	if _, err := n.CreateServicePort(ctx, provider.LabelVRRP, "r", "ext"); !errors.Is(err, boom) {
		t.Errorf("injected failure: %v", err)
	}
	if _, err := n.CreateServicePort(ctx, provider.LabelVRRP, "r", "ext"); err != nil {
		t.Errorf("after the injected failure: %v", err)
	}
	n.Fail("GetNetwork", boom, -1)
	for range 3 {
		if _, err := n.GetNetwork(ctx, "ext"); !errors.Is(err, boom) {
			t.Errorf("persistent failure: %v", err)
		}
	}
	n.Fail("GetNetwork", nil, 0)
	if _, err := n.GetNetwork(ctx, "ext"); err != nil {
		t.Errorf("cleared failure: %v", err)
	}
}

// recorder is a Runner that records what it was asked.
type recorder struct {
	mu    sync.Mutex
	calls []string
	fail  error
}

func (r *recorder) add(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.fail
}
func (r *recorder) Start(_ context.Context, s RunSpec) error {
	return r.add("start " + s.Instance.Name + " " + s.ManagementPort.MAC)
}
func (r *recorder) Stop(_ context.Context, id string) error { return r.add("stop") }
func (r *recorder) Attach(_ context.Context, id string, p provider.Port) error {
	return r.add("attach " + p.MAC)
}
func (r *recorder) Detach(_ context.Context, id string, p provider.Port) error {
	return r.add("detach " + p.MAC)
}

func TestCompute(t *testing.T) {
	n := mustNetwork(t)
	rec := &recorder{}
	c := NewCompute(rec, n)
	mgt, _ := n.CreateServicePort(ctx, provider.LabelManagement, "r1", "mgt")
	v1, _ := n.CreateServicePort(ctx, provider.LabelVRRP, "r1", "ext")
	v2, _ := n.CreateServicePort(ctx, provider.LabelVRRP, "r1", "int")

	inst, err := c.Boot(ctx, provider.BootSpec{Name: "ak-router-r1_0", ImageID: "img", ManagementPort: *mgt, Ports: []provider.Port{*v1}, UserData: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Status != provider.InstanceActive || !slices.Equal(inst.PortIDs, []string{mgt.ID, v1.ID}) {
		t.Errorf("booted %+v", inst)
	}
	if p, _ := n.Port(v1.ID); p.DeviceID != inst.ID || p.DeviceOwner != ComputeOwner {
		t.Errorf("port not bound: %+v", p)
	}
	if ud, _ := c.UserData(inst.ID); string(ud) != "{}" {
		t.Errorf("user data %q", ud)
	}
	if err := c.AttachPort(ctx, inst.ID, *v2); err != nil {
		t.Fatal(err)
	}
	if err := c.AttachPort(ctx, inst.ID, *v2); err == nil {
		t.Error("attached a port twice")
	}
	if err := c.DetachPort(ctx, inst.ID, v1.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DetachPort(ctx, inst.ID, v1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("detaching a detached port: %v", err)
	}
	if p, _ := n.Port(v1.ID); p.DeviceID != "" {
		t.Errorf("detached port still bound: %+v", p)
	}
	got, err := c.Get(ctx, inst.ID)
	if err != nil || !slices.Equal(got.PortIDs, []string{mgt.ID, v2.ID}) {
		t.Errorf("Get = %+v, %v", got, err)
	}
	list, err := c.ListByPrefix(ctx, "ak-router-r1")
	if err != nil || len(list) != 1 {
		t.Errorf("ListByPrefix = %v, %v", list, err)
	}
	if list, _ := c.ListByPrefix(ctx, "ak-router-r2"); len(list) != 0 {
		t.Errorf("ListByPrefix of another router: %v", list)
	}
	if err := c.Kill(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get(ctx, inst.ID); got.Status != provider.InstanceActive {
		t.Errorf("a killed instance is %s, want still ACTIVE", got.Status)
	}
	if err := c.Delete(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, inst.ID); err != nil {
		t.Errorf("deleting a deleted instance: %v", err)
	}
	if _, err := c.Get(ctx, inst.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get of a deleted instance: %v", err)
	}
	if p, _ := n.Port(mgt.ID); p.DeviceID != "" {
		t.Errorf("the deleted instance's port is still bound: %+v", p)
	}
	want := []string{"start ak-router-r1_0 " + mgt.MAC, "attach " + v2.MAC, "detach " + v1.MAC, "stop", "stop"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("runner calls %q, want %q", rec.calls, want)
	}
}

func TestComputeFailures(t *testing.T) {
	n := mustNetwork(t)
	rec := &recorder{}
	c := NewCompute(rec, n)
	mgt, _ := n.CreateServicePort(ctx, provider.LabelManagement, "r1", "mgt")
	boom := errors.New("no valid host")

	c.Fail("Boot", boom, 1)
	if _, err := c.Boot(ctx, provider.BootSpec{Name: "x_0", ManagementPort: *mgt}); !errors.Is(err, boom) {
		t.Errorf("injected boot failure: %v", err)
	}
	if c.Boots() != 0 || len(c.Instances()) != 0 {
		t.Errorf("a failed boot left an instance")
	}
	c.Fail("Start", boom, 1)
	inst, err := c.Boot(ctx, provider.BootSpec{Name: "x_0", ManagementPort: *mgt})
	if err != nil || inst.Status != provider.InstanceError {
		t.Errorf("injected start failure: %+v, %v; want an instance in ERROR", inst, err)
	}
	rec.fail = boom
	inst2, err := c.Boot(ctx, provider.BootSpec{Name: "x_1", ManagementPort: *mgt})
	if err != nil || inst2.Status != provider.InstanceError {
		t.Errorf("runner failure: %+v, %v; want an instance in ERROR", inst2, err)
	}
	if err := c.Delete(ctx, inst2.ID); !errors.Is(err, boom) {
		t.Errorf("runner failing to stop: %v", err)
	}
	rec.fail = nil
	if err := c.SetStatus(inst.ID, provider.InstanceOther); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get(ctx, inst.ID); got.Status != provider.InstanceOther {
		t.Errorf("SetStatus: %s", got.Status)
	}
}

// TestConcurrent exercises both providers from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	n := mustNetwork(t)
	c := NewCompute(nil, n)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			id := string(rune('a' + i))
			mgt, err := n.CreateServicePort(ctx, provider.LabelManagement, id, "mgt")
			if err != nil {
				t.Error(err)
				return
			}
			inst, err := c.Boot(ctx, provider.BootSpec{Name: "ak-router-" + id + "_0", ManagementPort: *mgt})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := c.ListByPrefix(ctx, "ak-router-"); err != nil {
				t.Error(err)
			}
			if err := c.Delete(ctx, inst.ID); err != nil {
				t.Error(err)
			}
			if err := n.DeleteServicePorts(ctx, provider.LabelManagement, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(c.Instances()) != 0 || len(n.Ports()) != 0 {
		t.Errorf("left %d instances and %d ports", len(c.Instances()), len(n.Ports()))
	}
}
