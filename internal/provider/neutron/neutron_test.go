package neutron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gophercloud/gophercloud/v2"

	"github.com/astara-go/astara/internal/provider"
)

// Ids of testdata/neutron.json.
const (
	tenant     = "3f1b2c4d5e6f47a8b9c0d1e2f3a4b5c6"
	alice      = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	publicNet  = "f2619f3b-e3c6-4a2d-b358-64bd6f6b98d1"
	publicV4   = "b9846774-e90e-40ae-962c-77560f170747"
	tenantNet  = "142b3843-afbd-4770-9f01-78d020957a8f"
	tenantV4   = "b6d62f86-b74b-41ac-9a98-363ecf7b2b3e"
	tenantV6   = "c1d2e3f4-0000-4a5b-8c6d-7e8f9a0b1c2d"
	isolatedV4 = "d2e3f4a5-1111-4b6c-9d7e-8f9a0b1c2d3e"
	mgmtNet    = "5c2e1a3b-9d7f-4e61-8a0b-2f4c6d8e0a11"
	mgmtV6     = "f4a5b6c7-3333-4d8e-9fa0-0b1c2d3e4f50"
	mgmt4Net   = "6d3f2b4c-0e8a-4f72-9b1c-3a5d7e9f1b22"
	mgmt4V4    = "0a1b2c3d-4444-4e9f-a0b1-1c2d3e4f5061"
	dualNet    = "7e4a3c5d-1f9b-4a83-8c2d-4b6e8f0a2c33"
	dualV4     = "1b2c3d4e-5555-4fa0-b1c2-2d3e4f506172"
	dualV6     = "2c3d4e5f-6666-4ab1-8c2d-3e4f50617283"
	emptyNet   = "8f5b4d6e-2a0c-4b94-9d3e-5c7f9a1b3d44"
	router1    = "d21c0ae3-c23f-4e3b-8d4a-284a0392c352"
	router2    = "4a7d1e90-6b2c-4f3e-9a1d-0c8b7e6f5d41"
	router3    = "9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
	gone       = "00000000-dead-4bad-8bad-000000000000"
)

var (
	addr   = netip.MustParseAddr
	prefix = netip.MustParsePrefix
)

func TestGetRouter(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	r, err := p.GetRouter(t.Context(), router1)
	if err != nil {
		t.Fatal(err)
	}
	want := &provider.Router{
		ID: router1, Name: "tenant-router", TenantID: tenant, Status: "", AdminStateUp: true,
		GatewayPort: &provider.Port{ID: "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f", NetworkID: publicNet, MAC: "fa:16:3e:01:02:03",
			FixedIPs: []provider.FixedIP{{SubnetID: publicV4, Address: addr("203.0.113.134")}},
			DeviceID: router1, DeviceOwner: provider.OwnerRouterGateway},
		Interfaces: []provider.Port{
			{ID: "1ff59da3-0378-4950-b200-40e971423af5", NetworkID: tenantNet, TenantID: tenant, MAC: "fa:16:3e:4b:5c:6d",
				FixedIPs: []provider.FixedIP{{SubnetID: tenantV4, Address: addr("198.51.100.1")}},
				DeviceID: router1, DeviceOwner: provider.OwnerRouterInterface},
			{ID: "2aa6aeb4-1489-4a61-8c11-51fa82534b06", NetworkID: tenantNet, TenantID: tenant, MAC: "fa:16:3e:5c:6d:7e",
				FixedIPs: []provider.FixedIP{{SubnetID: tenantV6, Address: addr("2001:db8:42::1")}},
				DeviceID: router1, DeviceOwner: provider.OwnerHARouterInterface},
		},
		FloatingIPs: []provider.FloatingIP{{ID: "7fc645df-cc3e-4886-b756-6ddb3b56f6ed", FloatingIP: addr("203.0.113.65"),
			FixedIP: addr("198.51.100.55"), PortID: "9eceb1f8-efba-4b6c-95a4-4e57b6d45916", RouterID: router1, TenantID: tenant}},
		Tags: []string{"env=test"},
	}
	if d := cmp.Diff(want, r, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
		t.Errorf("GetRouter (-want +got):\n%s", d)
	}
	if got := f.requestsTo("GET", "/v2.0/ports"); len(got) != 1 || got[0].Query.Get("device_id") != router1 {
		t.Errorf("ports listed with %v, want by device_id", got)
	}
	if got := f.requestsTo("GET", "/v2.0/floatingips"); len(got) != 1 || got[0].Query.Get("router_id") != router1 {
		t.Errorf("floating IPs listed with %v, want by router_id", got)
	}
}

func TestGetRouterHAWithoutGatewayPort(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	r, err := p.GetRouter(t.Context(), router2)
	if err != nil {
		t.Fatal(err)
	}
	if !r.HA || r.TenantID != alice {
		t.Errorf("router %+v: want HA, tenant %s", r, alice)
	}
	// The gateway port is not listed: it comes from external_gateway_info.
	gw := r.GatewayPort
	if gw == nil || gw.NetworkID != publicNet || gw.DeviceOwner != provider.OwnerRouterGateway ||
		!slices.Equal(gw.FixedIPs, []provider.FixedIP{{SubnetID: publicV4, Address: addr("203.0.113.140")}}) {
		t.Errorf("gateway port %+v", gw)
	}
	if len(r.Interfaces) != 1 || len(r.FloatingIPs) != 1 || r.FloatingIPs[0].FloatingIP != addr("203.0.113.70") {
		t.Errorf("interfaces %+v, floating IPs %+v", r.Interfaces, r.FloatingIPs)
	}

	r, err = p.GetRouter(t.Context(), router3)
	if err != nil {
		t.Fatal(err)
	}
	if r.GatewayPort != nil || len(r.Interfaces) != 0 || len(r.FloatingIPs) != 0 {
		t.Errorf("a router without gateway nor interfaces: %+v", r)
	}
}

func TestGetRouterNotFound(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	_, err := p.GetRouter(t.Context(), gone)
	if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), gone) {
		t.Errorf("GetRouter of a missing router: %v, want ErrNotFound naming it", err)
	}
	if n := len(f.requestsTo("GET", "/v2.0/routers/"+gone)); n != 1 {
		t.Errorf("a 404 was tried %d times, want once", n)
	}
	if _, err := p.GetRouter(t.Context(), "../networks"); err == nil || errors.Is(err, provider.ErrNotFound) {
		t.Errorf("a malformed id: %v", err)
	}
}

func TestListRouters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverPage int
		pageSize   int
		wantPages  int
	}{
		{"unpaged", 0, 0, 1},
		{"server pages", 1, 0, 3},
		{"client limit", 0, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(func(f *fakeNeutron) { f.pageSize = tc.serverPage })
			p := f.provider(t, Options{PageSize: tc.pageSize})
			refs, err := p.ListRouters(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := []provider.RouterRef{{ID: router1, TenantID: tenant}, {ID: router2, TenantID: alice}, {ID: router3, TenantID: strings.Repeat("b", 32)}}
			if !slices.Equal(refs, want) {
				t.Errorf("ListRouters = %v, want %v", refs, want)
			}
			reqs := f.requestsTo("GET", "/v2.0/routers")
			if len(reqs) != tc.wantPages {
				t.Fatalf("%d requests, want %d pages", len(reqs), tc.wantPages)
			}
			for i, r := range reqs {
				if tc.pageSize > 0 && r.Query.Get("limit") != fmt.Sprint(tc.pageSize) {
					t.Errorf("page %d: limit %q", i, r.Query.Get("limit"))
				}
				if (i > 0) != r.Query.Has("marker") {
					t.Errorf("page %d: marker %q", i, r.Query.Get("marker"))
				}
			}
		})
	}
}

func TestRoutersOfTenant(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	refs, err := p.RoutersOfTenant(t.Context(), alice)
	if err != nil || !slices.Equal(refs, []provider.RouterRef{{ID: router2, TenantID: alice}}) {
		t.Errorf("RoutersOfTenant = %v, %v", refs, err)
	}
	if r := f.requestsTo("GET", "/v2.0/routers"); len(r) != 1 || r[0].Query.Get("project_id") != alice {
		t.Errorf("requests %v: want a project_id filter", r)
	}
	// A server that ignores the filter.
	f.set(func(f *fakeNeutron) { f.ignoreFilters = true })
	refs, err = p.RoutersOfTenant(t.Context(), alice)
	if err != nil || !slices.Equal(refs, []provider.RouterRef{{ID: router2, TenantID: alice}}) {
		t.Errorf("RoutersOfTenant with the filter ignored = %v, %v", refs, err)
	}
	refs, err = p.RoutersOfTenant(t.Context(), "nobody")
	if err != nil || refs == nil || len(refs) != 0 {
		t.Errorf("RoutersOfTenant of a tenant without routers = %#v, %v; want empty", refs, err)
	}
}

func TestGetNetwork(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	n, err := p.GetNetwork(t.Context(), tenantNet)
	if err != nil {
		t.Fatal(err)
	}
	want := &provider.Network{ID: tenantNet, Name: "tenant-net", TenantID: tenant, MTU: 1450, Subnets: []provider.Subnet{
		{ID: tenantV4, NetworkID: tenantNet, TenantID: tenant, Name: "tenant-v4", CIDR: prefix("198.51.100.0/24"),
			GatewayIP: addr("198.51.100.1"), EnableDHCP: true, DNSNameservers: []netip.Addr{addr("192.0.2.53")},
			HostRoutes: []provider.HostRoute{{Destination: prefix("10.20.0.0/16"), NextHop: addr("198.51.100.254")}}},
		{ID: tenantV6, NetworkID: tenantNet, TenantID: tenant, Name: "tenant-v6", CIDR: prefix("2001:db8:42::/64"),
			GatewayIP: addr("2001:db8:42::1"), EnableDHCP: true, DNSNameservers: []netip.Addr{addr("2001:db8::53")},
			IPv6RAMode: "slaac", IPv6AddressMode: "slaac"},
		// gateway_ip null: no gateway. The subnet with a malformed CIDR is skipped.
		{ID: isolatedV4, NetworkID: tenantNet, TenantID: tenant, Name: "tenant-isolated", CIDR: prefix("10.9.0.0/24")},
	}}
	if d := cmp.Diff(want, n, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
		t.Errorf("GetNetwork (-want +got):\n%s", d)
	}

	n, err = p.GetNetwork(t.Context(), publicNet)
	if err != nil || !n.External || n.MTU != 1500 || len(n.Subnets) != 1 || n.Subnets[0].EnableDHCP {
		t.Errorf("external network %+v, %v", n, err)
	}
	n, err = p.GetNetwork(t.Context(), emptyNet)
	if err != nil || n.MTU != 0 || len(n.Subnets) != 0 {
		t.Errorf("network with a null MTU and no subnet: %+v, %v", n, err)
	}
	if _, err := p.GetNetwork(t.Context(), gone); !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), gone) {
		t.Errorf("GetNetwork of a missing network: %v", err)
	}
}

func TestListPorts(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fakeNeutron) { f.pageSize = 2 })
	p := f.provider(t, Options{})
	ids := func(ports []provider.Port) []string {
		var out []string
		for _, p := range ports {
			out = append(out, p.ID)
		}
		return out
	}
	all, err := p.ListPorts(t.Context(), provider.PortFilter{})
	if err != nil || len(all) != 7 {
		t.Fatalf("every port: %d, %v", len(all), err)
	}
	if n := len(f.requestsTo("GET", "/v2.0/ports")); n != 4 {
		t.Errorf("%d pages of 2 for 7 ports, want 4", n)
	}
	onNet, err := p.ListPorts(t.Context(), provider.PortFilter{NetworkID: tenantNet, DeviceID: router1})
	want := []string{"1ff59da3-0378-4950-b200-40e971423af5", "2aa6aeb4-1489-4a61-8c11-51fa82534b06"}
	if err != nil || !slices.Equal(ids(onNet), want) {
		t.Errorf("ports of router1 on the tenant network: %v, %v", ids(onNet), err)
	}
	vm, err := p.ListPorts(t.Context(), provider.PortFilter{Name: "vm-port"})
	if err != nil || len(vm) != 1 || vm[0].DeviceOwner != "compute:nova" || vm[0].MAC != "fa:16:3e:8c:dc:77" ||
		vm[0].FixedIPs[0] != (provider.FixedIP{SubnetID: tenantV4, Address: addr("198.51.100.55")}) {
		t.Errorf("port by name: %+v, %v", vm, err)
	}
	f.set(func(f *fakeNeutron) { f.ignoreFilters = true })
	vm, err = p.ListPorts(t.Context(), provider.PortFilter{Name: "vm-port"})
	if err != nil || len(vm) != 1 {
		t.Errorf("port by name from a server ignoring filters: %+v, %v", vm, err)
	}
}

func TestCreateServicePortVRRP(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	port, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, tenantNet)
	if err != nil {
		t.Fatal(err)
	}
	// The tenant network has a SLAAC subnet: Neutron adds its address even
	// with fixed_ips [] (as for the original's VRRP ports).
	if port.Name != "ASTARA:VRRP:"+router1 || port.NetworkID != tenantNet || port.ID == "" || port.MAC == "" ||
		len(port.FixedIPs) != 1 || port.FixedIPs[0].SubnetID != tenantV6 {
		t.Errorf("VRRP port %+v", port)
	}
	posts := f.requestsTo("POST", "/v2.0/ports")
	if len(posts) != 1 {
		t.Fatalf("%d POSTs", len(posts))
	}
	body := posts[0].Body["port"].(map[string]any)
	for k, v := range map[string]any{"name": "ASTARA:VRRP:" + router1, "network_id": tenantNet, "admin_state_up": true,
		"port_security_enabled": false, "fixed_ips": []any{}, "security_groups": []any{}} {
		if !cmp.Equal(body[k], v) {
			t.Errorf("request %s = %#v, want %#v", k, body[k], v)
		}
	}
	if d, _ := body["description"].(string); !strings.HasPrefix(d, "astara service port") {
		t.Errorf("description %q: want a request id", d)
	}
	stored := f.object("ports", port.ID)
	if stored["port_security_enabled"] != false || len(stored["security_groups"].([]any)) != 0 {
		t.Errorf("stored port %v", stored)
	}

	lb, err := p.CreateServicePort(t.Context(), provider.LabelLoadBalancer, "lb1", publicNet)
	if err != nil || lb.Name != "ASTARA:LB:lb1" || len(lb.FixedIPs) != 0 {
		t.Errorf("LB port on a v4-only network: %+v, %v", lb, err)
	}
	if _, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, gone); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("a port on a missing network: %v", err)
	}
	if _, err := p.CreateServicePort(t.Context(), "", router1, tenantNet); err == nil {
		t.Error("a port without label was made")
	}
}

func TestCreateServicePortManagement(t *testing.T) {
	for _, tc := range []struct {
		name     string
		network  string
		subnetID string // Options.ManagementSubnetID
		want     provider.FixedIP
	}{
		// EUI-64 of fa:16:3e:a0:00:01, the fake's first MAC.
		{"SLAAC", mgmtNet, "", provider.FixedIP{SubnetID: mgmtV6, Address: addr("fdca:3ba5:a17a:acda:f816:3eff:fea0:1")}},
		{"IPv4", mgmt4Net, "", provider.FixedIP{SubnetID: mgmt4V4, Address: addr("192.168.254.101")}},
		{"dual stack prefers SLAAC", dualNet, "", provider.FixedIP{SubnetID: dualV6, Address: addr("fdca:3ba5:a17a:b000:f816:3eff:fea0:1")}},
		{"configured subnet", dualNet, dualV4, provider.FixedIP{SubnetID: dualV4, Address: addr("172.31.0.101")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			p := f.provider(t, Options{ManagementSubnetID: tc.subnetID})
			port, err := p.CreateServicePort(t.Context(), provider.LabelManagement, router1, tc.network)
			if err != nil {
				t.Fatal(err)
			}
			if port.Name != "ASTARA:MGT:"+router1 {
				t.Errorf("name %q", port.Name)
			}
			// Dual stack: the DHCPv6-stateless subnet's address comes
			// with the IPv4 one when that is the configured subnet.
			if len(port.FixedIPs) == 0 || port.FixedIPs[0] != tc.want {
				t.Errorf("addresses %v, want first %v", port.FixedIPs, tc.want)
			}
			body := f.requestsTo("POST", "/v2.0/ports")[0].Body["port"].(map[string]any)
			wantFixed := []any{map[string]any{"subnet_id": tc.want.SubnetID}}
			if !cmp.Equal(body["fixed_ips"], wantFixed) || body["port_security_enabled"] != false {
				t.Errorf("request fixed_ips %v, port_security_enabled %v", body["fixed_ips"], body["port_security_enabled"])
			}
		})
	}

	f := newFake(t)
	p := f.provider(t, Options{})
	if _, err := p.CreateServicePort(t.Context(), provider.LabelManagement, router1, emptyNet); err == nil ||
		errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), "no subnet") {
		t.Errorf("a management port on a network without subnet: %v", err)
	}
	if _, err := p.CreateServicePort(t.Context(), provider.LabelManagement, router1, gone); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("a management port on a missing network: %v", err)
	}
	if n := len(f.requestsTo("POST", "/v2.0/ports")); n != 0 {
		t.Errorf("%d ports created", n)
	}
}

func TestCreateServicePortWithoutPortSecurity(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		f := newFake(t)
		f.set(func(f *fakeNeutron) { f.noPortSecurity = true })
		p := f.provider(t, Options{})
		for i := range 2 {
			port, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet)
			if err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
			if f.object("ports", port.ID) == nil {
				t.Errorf("create %d: port %s not stored", i, port.ID)
			}
		}
		var sent []bool
		for _, r := range f.requestsTo("POST", "/v2.0/ports") {
			_, ok := r.Body["port"].(map[string]any)["port_security_enabled"]
			sent = append(sent, ok)
		}
		// Refused once, then never sent again.
		if !slices.Equal(sent, []bool{true, false, false}) {
			t.Errorf("port_security_enabled sent: %v", sent)
		}
		if n := len(f.named("ports", "ASTARA:VRRP:"+router1)); n != 2 {
			t.Errorf("%d ports, want 2", n)
		}
	})
	t.Run("extension not listed", func(t *testing.T) {
		f := newFake(t)
		f.set(func(f *fakeNeutron) {
			f.extensions = slices.DeleteFunc(f.extensions, func(e string) bool { return e == extPortSecurity })
		})
		p := f.provider(t, Options{})
		if _, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet); err != nil {
			t.Fatal(err)
		}
		posts := f.requestsTo("POST", "/v2.0/ports")
		if _, ok := posts[0].Body["port"].(map[string]any)["port_security_enabled"]; len(posts) != 1 || ok {
			t.Errorf("POSTs %v: want one, without port_security_enabled", posts)
		}
	})
	t.Run("no extension listing", func(t *testing.T) {
		f := newFake(t)
		f.set(func(f *fakeNeutron) { f.extensions = nil })
		p := f.provider(t, Options{})
		if _, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet); err != nil {
			t.Fatal(err)
		}
		body := f.requestsTo("POST", "/v2.0/ports")[0].Body["port"].(map[string]any)
		if _, ok := body["description"]; ok || body["port_security_enabled"] != false {
			t.Errorf("body %v: want port_security_enabled tried, no description", body)
		}
	})
}

func TestCreateServicePortRetries(t *testing.T) {
	name := "ASTARA:VRRP:" + router1
	t.Run("made, then 500: adopted", func(t *testing.T) {
		f := newFake(t)
		f.fail("POST", "/v2.0/ports", http.StatusInternalServerError, 1, failAfter)
		p := f.provider(t, Options{})
		port, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet)
		if err != nil {
			t.Fatal(err)
		}
		stored := f.named("ports", name)
		if len(stored) != 1 || stored[0]["id"] != port.ID || len(f.requestsTo("POST", "/v2.0/ports")) != 1 {
			t.Errorf("ports %v, returned %s: want the one made by the failed attempt, no second create", stored, port.ID)
		}
	})
	t.Run("made, then reset: adopted", func(t *testing.T) {
		f := newFake(t)
		f.fail("POST", "/v2.0/ports", 0, 1, resetAfter)
		p := f.provider(t, Options{})
		port, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet)
		if err != nil {
			t.Fatal(err)
		}
		if stored := f.named("ports", name); len(stored) != 1 || stored[0]["id"] != port.ID {
			t.Errorf("ports %v, returned %s", stored, port.ID)
		}
	})
	t.Run("503 twice: created by the third", func(t *testing.T) {
		f := newFake(t)
		f.fail("POST", "/v2.0/ports", http.StatusServiceUnavailable, 2, failBefore)
		p := f.provider(t, Options{})
		if _, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet); err != nil {
			t.Fatal(err)
		}
		if n, posts := len(f.named("ports", name)), len(f.requestsTo("POST", "/v2.0/ports")); n != 1 || posts != 3 {
			t.Errorf("%d ports after %d POSTs, want 1 after 3", n, posts)
		}
	})
	t.Run("no request id: 500 not retried, 429 retried", func(t *testing.T) {
		f := newFake(t)
		f.set(func(f *fakeNeutron) {
			f.extensions = slices.DeleteFunc(f.extensions, func(e string) bool { return e == extDescription })
		})
		f.fail("POST", "/v2.0/ports", http.StatusInternalServerError, 1, failAfter)
		p := f.provider(t, Options{})
		_, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet)
		if !gophercloud.ResponseCodeIs(err, http.StatusInternalServerError) || len(f.requestsTo("POST", "/v2.0/ports")) != 1 {
			t.Errorf("an ambiguous failure without a request id: %v, want the 500 and no retry", err)
		}
		f.fail("POST", "/v2.0/ports", http.StatusTooManyRequests, 1, failBefore)
		if _, err := p.CreateServicePort(t.Context(), provider.LabelVRRP, router1, publicNet); err != nil {
			t.Errorf("after a 429: %v", err)
		}
		if n := len(f.requestsTo("POST", "/v2.0/ports")); n != 3 {
			t.Errorf("%d POSTs, want 3", n)
		}
	})
}

func TestDeleteServicePorts(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	for _, n := range []string{"ASTARA:VRRP:" + router1, "ASTARA:VRRP:" + router1, "AKANDA:VRRP:" + router1,
		"ASTARA:MGT:" + router1, "ASTARA:VRRP:" + router2} {
		f.add("ports", map[string]any{"id": newUUID(), "name": n, "network_id": tenantNet, "mac_address": "fa:16:3e:00:00:01",
			"fixed_ips": []any{}, "device_id": "", "device_owner": ""})
	}
	if err := p.DeleteServicePorts(t.Context(), provider.LabelVRRP, router1); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]int{"ASTARA:VRRP:" + router1: 0, "AKANDA:VRRP:" + router1: 0,
		"ASTARA:MGT:" + router1: 1, "ASTARA:VRRP:" + router2: 1} {
		if got := len(f.named("ports", n)); got != want {
			t.Errorf("%d ports %s left, want %d", got, n, want)
		}
	}
	if err := p.DeleteServicePorts(t.Context(), provider.LabelVRRP, router1); err != nil {
		t.Errorf("deleting ports already gone: %v", err)
	}

	// One port that cannot be deleted does not keep the others.
	mgt := f.named("ports", "ASTARA:MGT:"+router1)[0]["id"].(string)
	f.add("ports", map[string]any{"id": "stuck", "name": "ASTARA:MGT:" + router1, "network_id": tenantNet})
	f.fail("DELETE", "/v2.0/ports/stuck", http.StatusForbidden, -1, failBefore)
	err := p.DeleteServicePorts(t.Context(), provider.LabelManagement, router1)
	if !gophercloud.ResponseCodeIs(err, http.StatusForbidden) || f.object("ports", mgt) != nil || f.object("ports", "stuck") == nil {
		t.Errorf("DeleteServicePorts with a stuck port: %v", err)
	}

	// A port deleted between the listing and its deletion.
	f = newFake(t)
	p = f.provider(t, Options{})
	f.add("ports", map[string]any{"id": "racy", "name": "ASTARA:LB:lb1", "network_id": tenantNet})
	f.fail("DELETE", "/v2.0/ports/racy", http.StatusNotFound, 1, failBefore)
	if err := p.DeleteServicePorts(t.Context(), provider.LabelLoadBalancer, "lb1"); err != nil {
		t.Errorf("a port deleted meanwhile: %v", err)
	}
}

func TestDeletePort(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	vm := "9eceb1f8-efba-4b6c-95a4-4e57b6d45916"
	f.fail("DELETE", "/v2.0/ports/", http.StatusBadGateway, 1, failBefore)
	if err := p.DeletePort(t.Context(), vm); err != nil {
		t.Fatal(err)
	}
	if f.object("ports", vm) != nil || len(f.requestsTo("DELETE", "/v2.0/ports/")) != 2 {
		t.Error("the port was not deleted after one retry")
	}
	if err := p.DeletePort(t.Context(), vm); err != nil {
		t.Errorf("deleting a deleted port: %v", err)
	}
	// Deleted by the attempt whose answer was lost: the retry's 404 is success.
	f.fail("DELETE", "/v2.0/ports/", 0, 1, resetAfter)
	if err := p.DeletePort(t.Context(), "4cc8c0d6-36ab-4c83-8e33-73bc04756d28"); err != nil {
		t.Errorf("a delete whose answer was lost: %v", err)
	}
	f.fail("DELETE", "/v2.0/ports/", http.StatusConflict, 1, failBefore)
	if err := p.DeletePort(t.Context(), "1ff59da3-0378-4950-b200-40e971423af5"); !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Errorf("a 409 on delete: %v, want it returned", err)
	}
}

func tagsOfRouter(f *fakeNeutron, id string) []string {
	var out []string
	for _, t := range tagsOf(f.object("routers", id)) {
		out = append(out, t.(string))
	}
	return out
}

func TestSetRouterStatusTags(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	f.set(func(f *fakeNeutron) {
		f.find("routers", router1)["tags"] = []any{"env=test", "astara:state=DOWN", "astara:state=BUILD"}
	})

	r, err := p.GetRouter(t.Context(), router1)
	if err != nil || r.Status != "" {
		t.Errorf("status with two state tags: %q, %v; want unknown", r.Status, err)
	}
	if err := p.SetRouterStatus(t.Context(), router1, "BUILD"); err != nil {
		t.Fatal(err)
	}
	if got := tagsOfRouter(f, router1); !slices.Equal(got, []string{"env=test", "astara:state=BUILD"}) {
		t.Errorf("tags %v", got)
	}
	if n := len(f.requestsTo("PUT", "/v2.0/routers/")); n != 0 {
		t.Errorf("%d tags added, the tag was there", n)
	}
	f.resetRequests()
	if err := p.SetRouterStatus(t.Context(), router1, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	if got := tagsOfRouter(f, router1); !slices.Equal(got, []string{"env=test", "astara:state=ACTIVE"}) {
		t.Errorf("tags %v", got)
	}
	puts, dels := f.requestsTo("PUT", "/v2.0/routers/"), f.requestsTo("DELETE", "/v2.0/routers/")
	if len(puts) != 1 || puts[0].Path != "/v2.0/routers/"+router1+"/tags/astara:state=ACTIVE" ||
		len(dels) != 1 || dels[0].Path != "/v2.0/routers/"+router1+"/tags/astara:state=BUILD" {
		t.Errorf("PUT %v, DELETE %v", puts, dels)
	}
	r, err = p.GetRouter(t.Context(), router1)
	if err != nil || r.Status != "ACTIVE" || !slices.Contains(r.Tags, "astara:state=ACTIVE") {
		t.Errorf("router after publication: %+v, %v", r, err)
	}

	// Unchanged: the tags are read, nothing written.
	f.resetRequests()
	if err := p.SetRouterStatus(t.Context(), router1, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	if reqs := f.all(); len(reqs) != 1 || reqs[0].Method != "GET" {
		t.Errorf("requests %v, want the tag listing only", reqs)
	}

	// A concurrent update (409) is retried.
	f.fail("PUT", "/v2.0/routers/", http.StatusConflict, 1, failBefore)
	if err := p.SetRouterStatus(t.Context(), router1, "ERROR"); err != nil {
		t.Fatal(err)
	}
	if got := tagsOfRouter(f, router1); !slices.Equal(got, []string{"env=test", "astara:state=ERROR"}) {
		t.Errorf("tags after a conflict %v", got)
	}

	if err := p.SetRouterStatus(t.Context(), gone, "ACTIVE"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("status of a missing router: %v", err)
	}
	if err := p.SetRouterStatus(t.Context(), router1, "A/B"); err == nil {
		t.Error("a malformed status was published")
	}
	if n := len(f.requestsTo("GET", "/v2.0/dhrouterstatus")) + len(f.requestsTo("PUT", "/v2.0/dhrouterstatus")); n != 0 {
		t.Errorf("dhrouterstatus used without the extension")
	}

	f.set(func(f *fakeNeutron) { f.noTags = true })
	if err := p.SetRouterStatus(t.Context(), router1, "DOWN"); !errors.Is(err, ErrStatusUnsupported) || errors.Is(err, provider.ErrNotFound) {
		t.Errorf("status without tags: %v, want ErrStatusUnsupported", err)
	}
}

func TestSetRouterStatusExtension(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fakeNeutron) {
		f.extensions = append(f.extensions, extRouterStatus)
		f.find("routers", router1)["tags"] = []any{"astara:state=BUILD"}
	})
	p := f.provider(t, Options{})
	for _, s := range []string{"BUILD", "ACTIVE"} {
		if err := p.SetRouterStatus(t.Context(), router1, s); err != nil {
			t.Fatal(err)
		}
	}
	puts := f.requestsTo("PUT", "/v2.0/dhrouterstatus/"+router1)
	if len(puts) != 2 || !cmp.Equal(puts[1].Body, map[string]any{"routerstatus": map[string]any{"status": "ACTIVE"}}) {
		t.Errorf("PUTs %v", puts)
	}
	if n := len(f.requestsTo("GET", "/v2.0/routers/"+router1+"/tags")); n != 0 {
		t.Errorf("tags read %d times with the extension", n)
	}
	r, err := p.GetRouter(t.Context(), router1)
	if err != nil || r.Status != "ACTIVE" {
		t.Errorf("status %q, %v: want the router's own status", r.Status, err)
	}
	if err := p.SetRouterStatus(t.Context(), gone, "ACTIVE"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("status of a missing router: %v", err)
	}
	if n := len(f.requestsTo("GET", "/v2.0/extensions")); n != 1 {
		t.Errorf("extensions listed %d times, want once", n)
	}
}

func TestRetries(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "/v2.0/routers/"+router1, http.StatusInternalServerError, 1, failBefore)
		f.fail("GET", "/v2.0/routers/"+router1, http.StatusServiceUnavailable, 2, failBefore)
		p := f.provider(t, Options{})
		if _, err := p.GetRouter(t.Context(), router1); err != nil {
			t.Fatal(err)
		}
		if n := len(f.requestsTo("GET", "/v2.0/routers/"+router1)); n != 4 {
			t.Errorf("%d requests, want 4", n)
		}
	})
	t.Run("attempts exhausted", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "/v2.0/networks/", http.StatusBadGateway, -1, failBefore)
		p := f.provider(t, Options{Retry: RetryPolicy{Attempts: 3, BaseDelay: 1}})
		_, err := p.GetNetwork(t.Context(), tenantNet)
		if !gophercloud.ResponseCodeIs(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "3 attempts") ||
			!strings.Contains(err.Error(), tenantNet) {
			t.Errorf("GetNetwork = %v", err)
		}
		if n := len(f.requestsTo("GET", "/v2.0/networks/")); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})
	t.Run("client errors not retried", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "/v2.0/routers", http.StatusBadRequest, -1, failBefore)
		p := f.provider(t, Options{})
		if _, err := p.ListRouters(t.Context()); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
			t.Errorf("ListRouters = %v", err)
		}
		if n := len(f.requestsTo("GET", "/v2.0/routers")); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("a page fails", func(t *testing.T) {
		f := newFake(t)
		f.set(func(f *fakeNeutron) {
			f.pageSize = 1
			// The second page fails once: the listing starts over.
			f.faults = append(f.faults, &fault{method: "GET", path: "/v2.0/routers", query: "marker=", status: 500, times: 1})
		})
		p := f.provider(t, Options{})
		refs, err := p.ListRouters(t.Context())
		if err != nil || len(refs) != 3 || refs[0].ID != router1 || refs[2].ID != router3 {
			t.Fatalf("ListRouters = %v, %v", refs, err)
		}
		if n := len(f.requestsTo("GET", "/v2.0/routers")); n != 5 {
			t.Errorf("%d requests, want 5 (page 1, page 2 failing, then 3 pages)", n)
		}
	})
	t.Run("connection reset", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "/v2.0/subnets", 0, 2, resetBefore)
		p := f.provider(t, Options{})
		n, err := p.GetNetwork(t.Context(), mgmtNet)
		if err != nil || len(n.Subnets) != 1 {
			t.Errorf("GetNetwork = %+v, %v", n, err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		var dials atomic.Int32
		refuse := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			dials.Add(1)
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		})}
		c, err := NoAuthClient("http://192.0.2.1:9696/v2.0/", "p", refuse)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(c, Options{Retry: RetryPolicy{Attempts: 3, BaseDelay: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.DeletePort(t.Context(), "x"); err == nil || dials.Load() != 3 {
			t.Errorf("DeletePort = %v after %d dials, want an error after 3", err, dials.Load())
		}
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cancelOnRetry is a slog handler that cancels a context when the provider
// logs that it will retry: the cancellation lands during the backoff.
type cancelOnRetry struct {
	slog.Handler
	cancel context.CancelFunc
}

func (h cancelOnRetry) Enabled(context.Context, slog.Level) bool { return true }

func (h cancelOnRetry) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.cancel()
	}
	return nil
}

func (h cancelOnRetry) WithAttrs([]slog.Attr) slog.Handler { return h }

func TestRetryBackoffHonoursContext(t *testing.T) {
	f := newFake(t)
	f.fail("GET", "/v2.0/routers/", http.StatusServiceUnavailable, -1, failBefore)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := f.provider(t, Options{
		Retry:  RetryPolicy{Attempts: 100, BaseDelay: time.Hour, MaxDelay: time.Hour},
		Logger: slog.New(cancelOnRetry{cancel: cancel}),
	})
	_, err := p.GetRouter(ctx, router1)
	if !errors.Is(err, context.Canceled) || !gophercloud.ResponseCodeIs(err, http.StatusServiceUnavailable) {
		t.Errorf("GetRouter = %v, want the 503 and the cancellation", err)
	}
	if n := len(f.requestsTo("GET", "/v2.0/routers/")); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestNoAuth(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fakeNeutron) { f.requireHeaders = true })
	for _, endpoint := range []string{f.srv.URL, f.srv.URL + "/", f.srv.URL + "/v2.0", f.srv.URL + "/v2.0/"} {
		p, err := NewNoAuth(endpoint, "proj", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.ListRouters(t.Context()); err != nil {
			t.Errorf("endpoint %s: %v", endpoint, err)
		}
	}
	for _, r := range f.requestsTo("GET", "/v2.0/") {
		if r.Header.Get("X-Project-Id") != "proj" || r.Header.Get("X-Roles") != "admin" || r.Header.Get("X-User-Id") != NoAuthUserID {
			t.Errorf("request headers %v", r.Header)
		}
	}
	// A client without the headers is refused, and the 401 is not retried.
	c, err := NoAuthClient(f.srv.URL, "proj", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.MoreHeaders = nil
	p, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.resetRequests()
	if _, err := p.ListRouters(t.Context()); !gophercloud.ResponseCodeIs(err, http.StatusUnauthorized) || len(f.all()) != 1 {
		t.Errorf("without headers: %v after %d requests", err, len(f.all()))
	}

	for _, bad := range []struct{ endpoint, project string }{{"", "p"}, {"ftp://x", "p"}, {"http://", "p"}, {f.srv.URL, ""}} {
		if _, err := NewNoAuth(bad.endpoint, bad.project, Options{}); err == nil {
			t.Errorf("NewNoAuth(%q, %q) accepted", bad.endpoint, bad.project)
		}
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New(nil) accepted")
	}
	if _, err := New(c, Options{PageSize: -1}); err == nil {
		t.Error("a negative page size accepted")
	}
}
