package netapi

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/neutron"
)

// The orchestrator's network provider (gophercloud, noauth) reads and
// writes what it needs on the embedded API: routers with their gateway
// port, interfaces and floating IPs, networks with their subnets, ports by
// device, its appliance ports, the router status as a tag.
func TestOrchestratorProvider(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	a := admin(t, ts)
	tp := buildTopology(a)
	v4only := str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "v4only", "project_id": "p1"}}, "network"), "id")
	a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": v4only, "ip_version": 4, "cidr": "10.5.0.0/24", "project_id": "p1"}}, "subnet")

	p, err := neutron.NewNoAuth(ts.URL, "0123456789abcdef0123456789abcdef", neutron.Options{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r, err := p.GetRouter(ctx, tp.router)
	if err != nil {
		t.Fatalf("GetRouter: %v", err)
	}
	if r.TenantID != "p1" || r.Status != "ACTIVE" || !r.AdminStateUp {
		t.Errorf("router %+v", r)
	}
	if r.GatewayPort == nil || r.GatewayPort.NetworkID != tp.ext || len(r.GatewayPort.FixedIPs) != 1 {
		t.Errorf("gateway port %+v", r.GatewayPort)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].ID != tp.iface || r.Interfaces[0].FixedIPs[0].Address != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("interfaces %+v", r.Interfaces)
	}
	if len(r.FloatingIPs) != 1 || r.FloatingIPs[0].ID != tp.fip || r.FloatingIPs[0].PortID != tp.port || !r.FloatingIPs[0].FixedIP.IsValid() {
		t.Errorf("floating IPs %+v", r.FloatingIPs)
	}
	if !slices.Contains(r.Tags, "astara:state=ACTIVE") {
		t.Errorf("tags %v", r.Tags)
	}

	refs, err := p.ListRouters(ctx)
	if err != nil || len(refs) != 1 || refs[0].ID != tp.router {
		t.Errorf("ListRouters: %v, %v", refs, err)
	}
	refs, err = p.RoutersOfTenant(ctx, "p1")
	if err != nil || len(refs) != 1 {
		t.Errorf("RoutersOfTenant: %v, %v", refs, err)
	}
	n, err := p.GetNetwork(ctx, tp.net)
	if err != nil {
		t.Fatalf("GetNetwork: %v", err)
	}
	if n.MTU != 1450 || n.External || len(n.Subnets) != 2 {
		t.Errorf("network %+v", n)
	}
	for _, s := range n.Subnets {
		if s.ID == tp.v6 && (s.IPv6AddressMode != "slaac" || s.GatewayIP != netip.MustParseAddr("fd00::")) {
			t.Errorf("IPv6 subnet %+v", s)
		}
	}
	ports, err := p.ListPorts(ctx, provider.PortFilter{DeviceID: tp.router})
	if err != nil || len(ports) != 2 {
		t.Errorf("ports of the router: %v, %v", ports, err)
	}

	vrrp, err := p.CreateServicePort(ctx, provider.LabelVRRP, tp.router, v4only)
	if err != nil {
		t.Fatalf("CreateServicePort: %v", err)
	}
	if vrrp.Name != provider.ServicePortName(provider.LabelVRRP, tp.router) || len(vrrp.FixedIPs) != 0 {
		t.Errorf("VRRP port %+v", vrrp)
	}
	body := a.must(200, "GET", "/v2.0/ports/"+vrrp.ID, nil, "port")
	if body["port_security_enabled"] != false {
		t.Errorf("VRRP port has port security: %v", body)
	}
	mgt, err := p.CreateServicePort(ctx, provider.LabelManagement, tp.router, tp.net)
	if err != nil {
		t.Fatalf("CreateServicePort(MGT): %v", err)
	}
	if len(mgt.FixedIPs) != 1 || mgt.FixedIPs[0].SubnetID != tp.v6 {
		t.Errorf("management port %+v, want its SLAAC address only", mgt)
	}
	for _, label := range []string{provider.LabelVRRP, provider.LabelManagement} {
		if err := p.DeleteServicePorts(ctx, label, tp.router); err != nil {
			t.Errorf("DeleteServicePorts(%s): %v", label, err)
		}
	}
	if left, err := p.ListPorts(ctx, provider.PortFilter{Name: provider.ServicePortName(provider.LabelVRRP, tp.router)}); err != nil || len(left) != 0 {
		t.Errorf("service ports left: %v, %v", left, err)
	}

	if err := p.SetRouterStatus(ctx, tp.router, "ERROR"); err != nil {
		t.Fatalf("SetRouterStatus: %v", err)
	}
	tags := a.must(200, "GET", "/v2.0/routers/"+tp.router+"/tags", nil, "")["tags"]
	if !jsonEqual(tags, []any{"astara:state=ERROR"}) {
		t.Errorf("tags after SetRouterStatus(ERROR): %v", tags)
	}
	if _, err := p.GetRouter(ctx, "00000000-0000-4000-8000-000000000000"); err == nil {
		t.Errorf("GetRouter of a missing router succeeded")
	}
}
