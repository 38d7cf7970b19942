package neutron

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/astara-go/astara/internal/netapi"
	"github.com/astara-go/astara/internal/provider"
)

// embedded serves the embedded network API on a test server and returns
// its URL and an admin client to populate it.
func embedded(t *testing.T) (string, *gophercloud.ServiceClient) {
	t.Helper()
	srv, err := netapi.Open(netapi.Config{StateDir: t.TempDir(), Host: "test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	c, err := NoAuthClient(hs.URL, "admin-project", nil)
	if err != nil {
		t.Fatal(err)
	}
	return hs.URL, c
}

// topology is what populate made.
type topology struct {
	mgmtNet, extNet, intNet string
	mgmtSubnet, intSubnet   string
	router                  string
	gatewayIP, interfaceIP  netip.Addr
	vmPort                  string
	fip                     netip.Addr
}

// populate makes, as the openstack CLI would: a SLAAC management network,
// an external network, a tenant network with a subnet, a router with a
// gateway and an interface, a VM port and a floating IP on it.
func populate(t *testing.T, c *gophercloud.ServiceClient, tenant string) topology {
	t.Helper()
	ctx := t.Context()
	var top topology
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mgmt, err := networks.Create(ctx, c, networks.CreateOpts{Name: "astara-mgmt"}).Extract()
	must(err)
	top.mgmtNet = mgmt.ID
	mgmtSub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: mgmt.ID, IPVersion: gophercloud.IPv6,
		CIDR: "fdca:3ba5:a17a:acda::/64", IPv6AddressMode: "slaac", IPv6RAMode: "slaac"}).Extract()
	must(err)
	top.mgmtSubnet = mgmtSub.ID

	ext, err := networks.Create(ctx, c, external.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: "public"},
		External: gophercloud.Enabled}).Extract()
	must(err)
	top.extNet = ext.ID
	_, err = subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: ext.ID, IPVersion: gophercloud.IPv4,
		CIDR: "203.0.113.0/24", EnableDHCP: gophercloud.Disabled}).Extract()
	must(err)

	in, err := networks.Create(ctx, c, networks.CreateOpts{Name: "tenant-net", ProjectID: tenant}).Extract()
	must(err)
	top.intNet = in.ID
	dns := []string{"192.0.2.53"}
	inSub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: in.ID, IPVersion: gophercloud.IPv4, ProjectID: tenant,
		CIDR: "198.51.100.0/24", DNSNameservers: dns,
		HostRoutes: []subnets.HostRoute{{DestinationCIDR: "10.20.0.0/16", NextHop: "198.51.100.254"}}}).Extract()
	must(err)
	top.intSubnet = inSub.ID

	r, err := routers.Create(ctx, c, routers.CreateOpts{Name: "tenant-router", ProjectID: tenant,
		GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	must(err)
	top.router = r.ID
	if len(r.GatewayInfo.ExternalFixedIPs) != 1 {
		t.Fatalf("router gateway %+v", r.GatewayInfo)
	}
	top.gatewayIP = netip.MustParseAddr(r.GatewayInfo.ExternalFixedIPs[0].IPAddress)
	_, err = routers.AddInterface(ctx, c, r.ID, routers.AddInterfaceOpts{SubnetID: inSub.ID}).Extract()
	must(err)
	top.interfaceIP = netip.MustParseAddr("198.51.100.1")

	vm, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: in.ID, Name: "vm-port", ProjectID: tenant,
		DeviceID: "11111111-2222-3333-4444-555555555555", DeviceOwner: "compute:nova"}).Extract()
	must(err)
	top.vmPort = vm.ID
	fip, err := floatingips.Create(ctx, c, floatingips.CreateOpts{FloatingNetworkID: ext.ID, PortID: vm.ID, ProjectID: tenant}).Extract()
	must(err)
	top.fip = netip.MustParseAddr(fip.FloatingIP)
	return top
}

func TestEmbeddedAPI(t *testing.T) {
	const tenant = "3f1b2c4d5e6f47a8b9c0d1e2f3a4b5c6"
	url, admin := embedded(t)
	top := populate(t, admin, tenant)
	// Pages of one item: every list follows the API's next links.
	p, err := NewNoAuth(url, "admin-project", Options{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	r, err := p.GetRouter(ctx, top.router)
	if err != nil {
		t.Fatal(err)
	}
	if r.TenantID != tenant || !r.AdminStateUp || r.Status != "" || r.HA {
		t.Errorf("router %+v", r)
	}
	if gw := r.GatewayPort; gw == nil || gw.ID == "" || gw.MAC == "" || gw.NetworkID != top.extNet ||
		len(gw.FixedIPs) != 1 || gw.FixedIPs[0].Address != top.gatewayIP {
		t.Errorf("gateway port %+v", r.GatewayPort)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].NetworkID != top.intNet || r.Interfaces[0].DeviceOwner != provider.OwnerRouterInterface ||
		r.Interfaces[0].FixedIPs[0] != (provider.FixedIP{SubnetID: top.intSubnet, Address: top.interfaceIP}) {
		t.Errorf("interfaces %+v", r.Interfaces)
	}
	if len(r.FloatingIPs) != 1 || r.FloatingIPs[0].FloatingIP != top.fip || r.FloatingIPs[0].PortID != top.vmPort ||
		!r.FloatingIPs[0].FixedIP.IsValid() {
		t.Errorf("floating IPs %+v", r.FloatingIPs)
	}
	if _, err := p.GetRouter(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("a missing router: %v", err)
	}

	refs, err := p.ListRouters(ctx)
	if err != nil || !slices.Equal(refs, []provider.RouterRef{{ID: top.router, TenantID: tenant}}) {
		t.Errorf("ListRouters = %v, %v", refs, err)
	}
	if refs, err := p.RoutersOfTenant(ctx, "someone-else"); err != nil || len(refs) != 0 {
		t.Errorf("RoutersOfTenant of another tenant = %v, %v", refs, err)
	}

	n, err := p.GetNetwork(ctx, top.intNet)
	if err != nil {
		t.Fatal(err)
	}
	if n.TenantID != tenant || n.External || len(n.Subnets) != 1 {
		t.Fatalf("network %+v", n)
	}
	s := n.Subnets[0]
	if s.CIDR != netip.MustParsePrefix("198.51.100.0/24") || s.GatewayIP != top.interfaceIP || !s.EnableDHCP ||
		!slices.Equal(s.DNSNameservers, []netip.Addr{netip.MustParseAddr("192.0.2.53")}) ||
		!slices.Equal(s.HostRoutes, []provider.HostRoute{{Destination: netip.MustParsePrefix("10.20.0.0/16"), NextHop: netip.MustParseAddr("198.51.100.254")}}) {
		t.Errorf("subnet %+v", s)
	}
	if n, err := p.GetNetwork(ctx, top.extNet); err != nil || !n.External {
		t.Errorf("external network %+v, %v", n, err)
	}
	if m, err := p.GetNetwork(ctx, top.mgmtNet); err != nil || len(m.Subnets) != 1 || m.Subnets[0].IPv6AddressMode != "slaac" {
		t.Errorf("management network %+v, %v", m, err)
	}

	// The appliance's ports.
	mgt, err := p.CreateServicePort(ctx, provider.LabelManagement, top.router, top.mgmtNet)
	if err != nil {
		t.Fatal(err)
	}
	if mgt.Name != "ASTARA:MGT:"+top.router || len(mgt.FixedIPs) != 1 || mgt.FixedIPs[0].SubnetID != top.mgmtSubnet ||
		!netip.MustParsePrefix("fdca:3ba5:a17a:acda::/64").Contains(mgt.FixedIPs[0].Address) {
		t.Errorf("management port %+v", mgt)
	}
	var vrrp []*provider.Port
	for _, net := range []string{top.extNet, top.intNet} {
		v, err := p.CreateServicePort(ctx, provider.LabelVRRP, top.router, net)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.FixedIPs) != 0 || v.MAC == "" {
			t.Errorf("VRRP port %+v: want no address", v)
		}
		vrrp = append(vrrp, v)
	}
	raw, err := ports.Get(ctx, admin, vrrp[1].ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var ext struct {
		PortSecurity *bool `json:"port_security_enabled"`
	}
	if err := ports.Get(ctx, admin, vrrp[1].ID).ExtractInto(&ext); err != nil || ext.PortSecurity == nil || *ext.PortSecurity ||
		len(raw.SecurityGroups) != 0 || !raw.AdminStateUp {
		t.Errorf("VRRP port as stored: %+v, port security %v, %v", raw, ext.PortSecurity, err)
	}
	listed, err := p.ListPorts(ctx, provider.PortFilter{Name: "ASTARA:VRRP:" + top.router, NetworkID: top.intNet})
	if err != nil || len(listed) != 1 || listed[0].ID != vrrp[1].ID {
		t.Errorf("ListPorts = %+v, %v", listed, err)
	}
	onNet, err := p.ListPorts(ctx, provider.PortFilter{NetworkID: top.intNet})
	if err != nil || len(onNet) < 3 { // the interface, the VM, the VRRP port (and a DHCP port, maybe)
		t.Errorf("ports of the tenant network: %d, %v", len(onNet), err)
	}

	if err := p.DeletePort(ctx, vrrp[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := p.DeletePort(ctx, vrrp[0].ID); err != nil {
		t.Errorf("deleting a deleted port: %v", err)
	}
	for _, label := range []string{provider.LabelVRRP, provider.LabelManagement} {
		if err := p.DeleteServicePorts(ctx, label, top.router); err != nil {
			t.Fatal(err)
		}
	}
	if left, err := p.ListPorts(ctx, provider.PortFilter{NetworkID: top.mgmtNet}); err != nil || len(left) != 0 {
		t.Errorf("management ports left: %+v, %v", left, err)
	}

	// Status, as a tag next to the user's.
	if err := attributestags.Add(ctx, admin, "routers", top.router, "owner=alice").ExtractErr(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"BUILD", "ACTIVE", "ACTIVE"} {
		if err := p.SetRouterStatus(ctx, top.router, st); err != nil {
			t.Fatal(err)
		}
	}
	r, err = p.GetRouter(ctx, top.router)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(r.Tags)
	if r.Status != "ACTIVE" || !slices.Equal(r.Tags, []string{"astara:state=ACTIVE", "owner=alice"}) {
		t.Errorf("router after publication: status %q, tags %v, %v", r.Status, r.Tags, err)
	}
	if err := p.SetRouterStatus(ctx, "00000000-0000-4000-8000-000000000000", "ACTIVE"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("status of a missing router: %v", err)
	}
}
