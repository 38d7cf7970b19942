package contract

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// The addresses of the scenario (documentation and private ranges; a
// real Neutron allows overlapping addresses across networks).
const (
	extCIDR    = "203.0.113.0/24"
	extGateway = "203.0.113.1"
	extStart   = "203.0.113.10"
	extEnd     = "203.0.113.50"
	a4CIDR     = "10.10.0.0/24"
	a6CIDR     = "fd00:10::/64"
	a2CIDR     = "10.20.0.0/24"
	a3CIDR     = "10.30.0.0/24"
	tinyCIDR   = "10.40.0.0/29"
)

// Attributes every object of a kind has, in Neutron and in the embedded API.
var (
	standardKeys = []string{"id", "tenant_id", "project_id", "description", "tags", "created_at", "updated_at", "revision_number"}
	networkKeys  = append([]string{"name", "admin_state_up", "status", "subnets", "shared", "router:external", "mtu", "port_security_enabled"}, standardKeys...)
	subnetKeys   = append([]string{"name", "network_id", "ip_version", "cidr", "gateway_ip", "enable_dhcp", "allocation_pools", "host_routes", "dns_nameservers", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id", "service_types"}, standardKeys...)
	portKeys     = append([]string{"name", "network_id", "mac_address", "admin_state_up", "status", "device_id", "device_owner", "fixed_ips", "port_security_enabled", "security_groups", "allowed_address_pairs", "binding:vnic_type"}, standardKeys...)
	routerKeys   = append([]string{"name", "admin_state_up", "status", "external_gateway_info", "routes"}, standardKeys...)
	fipKeys      = append([]string{"floating_ip_address", "floating_network_id", "router_id", "port_id", "fixed_ip_address", "status"}, standardKeys...)
)

func (s *suite) name(n string) string { return s.prefix + n }

func (s *suite) discovery(t *testing.T) {
	status, body := s.raw(t, s.admin, http.MethodGet, "/", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /: %d %v", status, body)
	}
	found := slices.ContainsFunc(list(body, "versions"), func(v any) bool {
		m, _ := v.(map[string]any)
		return str(m, "id") == "v2.0" && str(m, "status") == "CURRENT"
	})
	if !found {
		t.Errorf("GET /: %v lists no CURRENT v2.0", body)
	}
	status, body = s.raw(t, s.admin, http.MethodGet, "/v2.0/extensions", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v2.0/extensions: %d %v", status, body)
	}
	var aliases []string
	for _, e := range list(body, "extensions") {
		m, _ := e.(map[string]any)
		hasKeys(t, "extension", m, "alias", "name", "description", "links")
		aliases = append(aliases, str(m, "alias"))
	}
	for _, a := range []string{"router", "external-net", "ext-gw-mode", "extraroute", "standard-attr-tag",
		"standard-attr-revisions", "port-security", "net-mtu", "binding", "pagination"} {
		if !slices.Contains(aliases, a) {
			t.Errorf("extension %q not listed (have %v)", a, aliases)
		}
	}
}

func (s *suite) externalNetwork(t *testing.T) {
	yes := true
	r := networks.Create(s.ctx, s.admin, external.CreateOptsExt{
		CreateOptsBuilder: networks.CreateOpts{Name: s.name("ext")},
		External:          &yes,
	})
	n := object(t, "create external network", r.Result, "network")
	s.extNet = str(n, "id")
	s.track("network", s.extNet)
	hasKeys(t, "external network", n, networkKeys...)
	want(t, "external network", n, "router:external", true)
	want(t, "external network", n, "status", "ACTIVE")
	want(t, "external network", n, "subnets", []any{})
	want(t, "external network", n, "admin_state_up", true)
	want(t, "external network", n, "tags", []any{})
	if str(n, "tenant_id") != str(n, "project_id") || str(n, "tenant_id") == "" {
		t.Errorf("external network: tenant_id %q, project_id %q", n["tenant_id"], n["project_id"])
	}
	if mtu := number(n["mtu"]); mtu < 1280 {
		t.Errorf("external network: mtu %v", n["mtu"])
	}
	for _, k := range []string{"created_at", "updated_at"} {
		if _, err := time.Parse(time.RFC3339, str(n, k)); err != nil {
			t.Errorf("external network: %s %q is not RFC 3339", k, n[k])
		}
	}
	if _, ok := n["provider:network_type"]; !ok {
		t.Errorf("external network: admin sees no provider:network_type in %v", n)
	}

	no := false
	gw := extGateway
	sr := subnets.Create(s.ctx, s.admin, subnets.CreateOpts{
		NetworkID: s.extNet, Name: s.name("ext-v4"), CIDR: extCIDR, IPVersion: 4,
		GatewayIP: &gw, EnableDHCP: &no,
		AllocationPools: []subnets.AllocationPool{{Start: extStart, End: extEnd}},
	})
	sn := object(t, "create external subnet", sr.Result, "subnet")
	s.extSubnet = str(sn, "id")
	s.track("subnet", s.extSubnet)
	hasKeys(t, "external subnet", sn, subnetKeys...)
	want(t, "external subnet", sn, "cidr", extCIDR)
	want(t, "external subnet", sn, "gateway_ip", extGateway)
	want(t, "external subnet", sn, "enable_dhcp", false)
	want(t, "external subnet", sn, "ip_version", 4)
	want(t, "external subnet", sn, "allocation_pools", []any{map[string]any{"start": extStart, "end": extEnd}})
	want(t, "external subnet", sn, "ipv6_ra_mode", nil)
	want(t, "external subnet", sn, "host_routes", []any{})
	want(t, "external subnet", sn, "dns_nameservers", []any{})

	got := object(t, "show external network", networks.Get(s.ctx, s.admin, s.extNet).Result, "network")
	want(t, "external network after its subnet", got, "subnets", []any{s.extSubnet})
}

// network creates a network of project A (on its behalf when tenants are
// not told apart by request).
func (s *suite) network(t *testing.T, name string) string {
	t.Helper()
	r := networks.Create(s.ctx, s.tenantA, networks.CreateOpts{Name: s.name(name), ProjectID: s.projA})
	n := object(t, "create network "+name, r.Result, "network")
	s.track("network", str(n, "id"))
	hasKeys(t, "network "+name, n, networkKeys...)
	want(t, "network "+name, n, "project_id", s.projA)
	want(t, "network "+name, n, "tenant_id", s.projA)
	want(t, "network "+name, n, "router:external", false)
	if s.tenantMode {
		for _, k := range []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id"} {
			if _, ok := n[k]; ok {
				t.Errorf("network %s: a tenant sees the admin-only %s", name, k)
			}
		}
	}
	return str(n, "id")
}

func (s *suite) subnet(t *testing.T, opts subnets.CreateOpts) map[string]any {
	t.Helper()
	opts.ProjectID = s.projA
	sn := object(t, "create subnet "+opts.Name, subnets.Create(s.ctx, s.tenantA, opts).Result, "subnet")
	s.track("subnet", str(sn, "id"))
	hasKeys(t, "subnet "+opts.Name, sn, subnetKeys...)
	want(t, "subnet "+opts.Name, sn, "project_id", s.projA)
	return sn
}

func (s *suite) tenantNetworks(t *testing.T) {
	s.netA = s.network(t, "a")
	sn := s.subnet(t, subnets.CreateOpts{
		NetworkID: s.netA, Name: s.name("a-v4"), CIDR: a4CIDR, IPVersion: 4,
		DNSNameservers: []string{"192.0.2.53"},
		HostRoutes:     []subnets.HostRoute{{DestinationCIDR: "10.99.0.0/16", NextHop: "10.10.0.254"}},
	})
	s.subnetA4 = str(sn, "id")
	want(t, "subnet a-v4", sn, "gateway_ip", "10.10.0.1")
	want(t, "subnet a-v4", sn, "enable_dhcp", true)
	want(t, "subnet a-v4", sn, "allocation_pools", []any{map[string]any{"start": "10.10.0.2", "end": "10.10.0.254"}})
	want(t, "subnet a-v4", sn, "dns_nameservers", []any{"192.0.2.53"})
	want(t, "subnet a-v4", sn, "host_routes", []any{map[string]any{"destination": "10.99.0.0/16", "nexthop": "10.10.0.254"}})

	sn = s.subnet(t, subnets.CreateOpts{
		NetworkID: s.netA, Name: s.name("a-v6"), CIDR: a6CIDR, IPVersion: 6,
		IPv6RAMode: "slaac", IPv6AddressMode: "slaac",
	})
	s.subnetA6 = str(sn, "id")
	want(t, "subnet a-v6", sn, "ip_version", 6)
	want(t, "subnet a-v6", sn, "gateway_ip", "fd00:10::")
	want(t, "subnet a-v6", sn, "ipv6_ra_mode", "slaac")
	want(t, "subnet a-v6", sn, "ipv6_address_mode", "slaac")
	want(t, "subnet a-v6", sn, "allocation_pools", []any{map[string]any{"start": "fd00:10::1", "end": "fd00:10::ffff:ffff:ffff:ffff"}})

	n := object(t, "show network a", networks.Get(s.ctx, s.tenantA, s.netA).Result, "network")
	if got := list(n, "subnets"); len(got) != 2 || !slices.Contains(got, any(s.subnetA4)) || !slices.Contains(got, any(s.subnetA6)) {
		t.Errorf("network a: subnets %v, want %s and %s", got, s.subnetA4, s.subnetA6)
	}

	s.netA2 = s.network(t, "a2")
	s.subnetA2 = str(s.subnet(t, subnets.CreateOpts{NetworkID: s.netA2, Name: s.name("a2-v4"), CIDR: a2CIDR, IPVersion: 4}), "id")
	s.netA3 = s.network(t, "a3")
	s.subnetA3 = str(s.subnet(t, subnets.CreateOpts{NetworkID: s.netA3, Name: s.name("a3-v4"), CIDR: a3CIDR, IPVersion: 4}), "id")
}

func (s *suite) invalidSubnets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   subnets.CreateOpts
		status int
		types  []string
	}{
		{"not a CIDR", subnets.CreateOpts{CIDR: "not-a-cidr", IPVersion: 4}, 400, []string{"InvalidInput"}},
		{"prefix too long", subnets.CreateOpts{CIDR: "10.50.0.0/33", IPVersion: 4}, 400, []string{"InvalidInput"}},
		{"version mismatch", subnets.CreateOpts{CIDR: "fd00:50::/64", IPVersion: 4}, 400, []string{"InvalidInput"}},
		{"overlaps a subnet of the network", subnets.CreateOpts{CIDR: "10.10.0.128/25", IPVersion: 4}, 400, []string{"InvalidInput"}},
		{"SLAAC needs a /64", subnets.CreateOpts{CIDR: "fd00:50::/80", IPVersion: 6, IPv6RAMode: "slaac", IPv6AddressMode: "slaac"}, 400, []string{"InvalidInput"}},
		{"pool beyond the CIDR", subnets.CreateOpts{CIDR: "10.50.0.0/24", IPVersion: 4,
			AllocationPools: []subnets.AllocationPool{{Start: "10.50.0.10", End: "10.50.1.10"}}}, 400, []string{"OutOfBoundsAllocationPool"}},
		{"gateway in the pool", subnets.CreateOpts{CIDR: "10.50.0.0/24", IPVersion: 4,
			AllocationPools: []subnets.AllocationPool{{Start: "10.50.0.1", End: "10.50.0.10"}}}, 409, []string{"GatewayConflictWithAllocationPools"}},
	} {
		tc.opts.NetworkID, tc.opts.ProjectID, tc.opts.Name = s.netA, s.projA, s.name("bad")
		r := subnets.Create(s.ctx, s.tenantA, tc.opts)
		if r.Err == nil {
			if sn, ok := r.Body.(map[string]any)["subnet"].(map[string]any); ok {
				s.track("subnet", str(sn, "id"))
			}
		}
		wantError(t, tc.name, r.Err, tc.status, tc.types...)
	}
	n := object(t, "show network a", networks.Get(s.ctx, s.tenantA, s.netA).Result, "network")
	if len(list(n, "subnets")) != 2 {
		t.Errorf("network a has subnets %v after refused creations, want its 2", n["subnets"])
	}

	// Host bits are cleared, not refused.
	sn := s.subnet(t, subnets.CreateOpts{NetworkID: s.netA3, Name: s.name("host-bits"), CIDR: "10.31.0.7/24", IPVersion: 4})
	want(t, "subnet with host bits", sn, "cidr", "10.31.0.0/24")
	want(t, "subnet with host bits", sn, "gateway_ip", "10.31.0.1")
	if err := subnets.Delete(s.ctx, s.tenantA, str(sn, "id")).ExtractErr(); err != nil {
		t.Errorf("delete subnet: %v", err)
	}
}

func (s *suite) invalidBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		body any
	}{
		{"unknown attribute", map[string]any{"network": map[string]any{"name": s.name("bad"), "colour": "blue"}}},
		{"wrong type", map[string]any{"network": map[string]any{"name": s.name("bad"), "admin_state_up": "maybe"}}},
		{"read-only attribute", map[string]any{"network": map[string]any{"name": s.name("bad"), "status": "DOWN"}}},
		{"no resource", map[string]any{"netwerk": map[string]any{"name": s.name("bad")}}},
	} {
		status, body := s.raw(t, s.admin, http.MethodPost, "/v2.0/networks", tc.body)
		checkError(t, tc.name, status, body, http.StatusBadRequest)
		if n, ok := body["network"].(map[string]any); ok {
			s.track("network", str(n, "id"))
		}
	}
	status, body := s.raw(t, s.admin, http.MethodGet, "/v2.0/networks"+query("name", s.name("bad")), nil)
	if status != http.StatusOK || len(list(body, "networks")) != 0 {
		t.Errorf("refused bodies created networks: %d %v", status, body)
	}
}

func (s *suite) routerGateway(t *testing.T) {
	up := true
	r := routers.Create(s.ctx, s.tenantA, routers.CreateOpts{Name: s.name("router"), AdminStateUp: &up, ProjectID: s.projA})
	rt := object(t, "create router", r.Result, "router")
	s.router = str(rt, "id")
	s.track("router", s.router)
	hasKeys(t, "router", rt, routerKeys...)
	want(t, "router", rt, "status", "ACTIVE")
	want(t, "router", rt, "external_gateway_info", nil)
	want(t, "router", rt, "routes", []any{})
	want(t, "router", rt, "project_id", s.projA)

	u := routers.Update(s.ctx, s.tenantA, s.router, routers.UpdateOpts{GatewayInfo: &routers.GatewayInfo{NetworkID: s.extNet}})
	rt = object(t, "set gateway", u.Result, "router")
	gw, _ := rt["external_gateway_info"].(map[string]any)
	if gw == nil {
		t.Fatalf("set gateway: external_gateway_info %v", rt["external_gateway_info"])
	}
	want(t, "gateway", gw, "network_id", s.extNet)
	want(t, "gateway", gw, "enable_snat", true)
	ips := fixedIPs(list(gw, "external_fixed_ips"))
	if len(ips[s.extSubnet]) != 1 || !inRange(ips[s.extSubnet][0], extStart, extEnd) {
		t.Fatalf("gateway: external_fixed_ips %v, want one address of %s-%s", gw["external_fixed_ips"], extStart, extEnd)
	}
	gwPorts := s.listPorts(t, s.admin, ports.ListOpts{DeviceID: s.router, DeviceOwner: "network:router_gateway"})
	if len(gwPorts) != 1 {
		t.Fatalf("admin lists %d router_gateway ports of the router, want 1", len(gwPorts))
	}
	p := gwPorts[0]
	s.gatewayPort = str(p, "id")
	want(t, "gateway port", p, "network_id", s.extNet)
	want(t, "gateway port", p, "tenant_id", "")
	if got := fixedIPs(list(p, "fixed_ips")); !equalJSON(got, ips) {
		t.Errorf("gateway port fixed_ips %v, external_fixed_ips %v", got, ips)
	}
	if s.tenantMode {
		if got := s.listPorts(t, s.tenantA, ports.ListOpts{DeviceID: s.router}); len(got) != 0 {
			t.Errorf("the tenant sees %d ports of its router before any interface (its gateway port belongs to no project)", len(got))
		}
	}
}

func inRange(ip, start, end string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && netip.MustParseAddr(start).Compare(a) <= 0 && a.Compare(netip.MustParseAddr(end)) <= 0
}

// listPorts lists ports through gophercloud's pager.
func (s *suite) listPorts(t *testing.T, c *gophercloud.ServiceClient, opts ports.ListOpts) []map[string]any {
	t.Helper()
	var out []map[string]any
	err := ports.List(c, opts).EachPage(s.ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		body, _ := p.(ports.PortPage).Body.(map[string]any)
		for _, x := range list(body, "ports") {
			out = append(out, x.(map[string]any))
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("list ports %+v: %v", opts, err)
	}
	return out
}

func (s *suite) showPort(t *testing.T, c *gophercloud.ServiceClient, id string) map[string]any {
	t.Helper()
	return object(t, "show port "+id, ports.Get(s.ctx, c, id).Result, "port")
}

func (s *suite) interfacesBySubnet(t *testing.T) {
	for _, tc := range []struct {
		subnet, ip string
		port       *string
	}{
		{s.subnetA4, "10.10.0.1", &s.ifaceA4Port},
		{s.subnetA6, "fd00:10::", &s.ifaceA6Port},
	} {
		info, err := routers.AddInterface(s.ctx, s.tenantA, s.router, routers.AddInterfaceOpts{SubnetID: tc.subnet}).Extract()
		if err != nil {
			t.Fatalf("add interface on subnet %s: %v", tc.subnet, err)
		}
		if info.SubnetID != tc.subnet || info.ID != s.router || info.PortID == "" {
			t.Errorf("add interface on subnet %s: %+v", tc.subnet, info)
		}
		*tc.port = info.PortID
		p := s.showPort(t, s.tenantA, info.PortID)
		want(t, "interface port", p, "device_owner", "network:router_interface")
		want(t, "interface port", p, "device_id", s.router)
		want(t, "interface port", p, "network_id", s.netA)
		want(t, "interface port", p, "fixed_ips", []any{map[string]any{"subnet_id": tc.subnet, "ip_address": tc.ip}})
	}
	if s.ifaceA4Port == s.ifaceA6Port {
		t.Errorf("the IPv4 and IPv6 interfaces share port %s", s.ifaceA4Port)
	}
	_, err := routers.AddInterface(s.ctx, s.tenantA, s.router, routers.AddInterfaceOpts{SubnetID: s.subnetA4}).Extract()
	wantError(t, "add interface on a subnet the router is on", err, http.StatusBadRequest, "BadRequest")
}

func (s *suite) interfaceByPort(t *testing.T) {
	r := ports.Create(s.ctx, s.tenantA, ports.CreateOpts{
		NetworkID: s.netA2, Name: s.name("a2-router-port"), ProjectID: s.projA,
		FixedIPs: []ports.IP{{SubnetID: s.subnetA2, IPAddress: "10.20.0.1"}},
	})
	p := object(t, "create port for the router", r.Result, "port")
	s.portA2 = str(p, "id")
	s.track("port", s.portA2)
	info, err := routers.AddInterface(s.ctx, s.tenantA, s.router, routers.AddInterfaceOpts{PortID: s.portA2}).Extract()
	if err != nil {
		t.Fatalf("add interface by port: %v", err)
	}
	if info.PortID != s.portA2 || info.SubnetID != s.subnetA2 {
		t.Errorf("add interface by port: %+v", info)
	}
	p = s.showPort(t, s.tenantA, s.portA2)
	want(t, "port made an interface", p, "device_owner", "network:router_interface")
	want(t, "port made an interface", p, "device_id", s.router)
	want(t, "port made an interface", p, "fixed_ips", []any{map[string]any{"subnet_id": s.subnetA2, "ip_address": "10.20.0.1"}})

	_, err = routers.AddInterface(s.ctx, s.tenantA, s.router, routers.AddInterfaceOpts{PortID: s.portA2}).Extract()
	wantError(t, "add a port already attached", err, http.StatusConflict, "PortInUse")
}

// eui64 is the SLAAC address of mac in prefix, computed here independently
// of the API under test.
func eui64(t *testing.T, prefix, mac string) string {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		t.Fatalf("MAC %q: %v", mac, err)
	}
	b := netip.MustParsePrefix(prefix).Addr().As16()
	copy(b[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return netip.AddrFrom16(b).String()
}

func (s *suite) ports(t *testing.T) {
	device := "11111111-2222-3333-4444-" + randomHex(6)
	r := ports.Create(s.ctx, s.tenantA, ports.CreateOpts{
		NetworkID: s.netA, Name: s.name("vm"), ProjectID: s.projA,
		DeviceID: device, DeviceOwner: "compute:nova",
	})
	p := object(t, "create VM port", r.Result, "port")
	s.vmPort = str(p, "id")
	s.track("port", s.vmPort)
	hasKeys(t, "VM port", p, portKeys...)
	want(t, "VM port", p, "device_id", device)
	want(t, "VM port", p, "device_owner", "compute:nova")
	want(t, "VM port", p, "name", s.name("vm"))
	want(t, "VM port", p, "port_security_enabled", true)
	if st := str(p, "status"); st != "DOWN" && st != "ACTIVE" {
		t.Errorf("VM port: status %q", st)
	}
	s.vmMAC = str(p, "mac_address")
	if !strings.HasPrefix(s.vmMAC, "fa:16:3e:") || len(s.vmMAC) != 17 {
		t.Errorf("VM port: mac_address %q, want fa:16:3e:xx:xx:xx", s.vmMAC)
	}
	ips := fixedIPs(list(p, "fixed_ips"))
	if len(ips) != 2 || len(ips[s.subnetA4]) != 1 || len(ips[s.subnetA6]) != 1 {
		t.Fatalf("VM port: fixed_ips %v, want one address on %s and one on %s", p["fixed_ips"], s.subnetA4, s.subnetA6)
	}
	s.vmIPv4, s.vmIPv6 = ips[s.subnetA4][0], ips[s.subnetA6][0]
	if !inRange(s.vmIPv4, "10.10.0.2", "10.10.0.254") {
		t.Errorf("VM port: IPv4 %s outside the allocation pool", s.vmIPv4)
	}
	if w := eui64(t, a6CIDR, s.vmMAC); s.vmIPv6 != w {
		t.Errorf("VM port: IPv6 %s, want the EUI-64 address %s", s.vmIPv6, w)
	}

	r = ports.Create(s.ctx, s.tenantA, ports.CreateOpts{
		NetworkID: s.netA, Name: s.name("fixed"), ProjectID: s.projA,
		FixedIPs: []ports.IP{{SubnetID: s.subnetA4, IPAddress: "10.10.0.200"}},
	})
	p = object(t, "create port with an address", r.Result, "port")
	s.fixedPort = str(p, "id")
	s.track("port", s.fixedPort)
	if got := fixedIPs(list(p, "fixed_ips")); !slices.Equal(got[s.subnetA4], []string{"10.10.0.200"}) {
		t.Errorf("port with an address: fixed_ips %v", p["fixed_ips"])
	}

	for _, tc := range []struct {
		name   string
		ips    []ports.IP
		status int
		types  []string
	}{
		{"address in use", []ports.IP{{SubnetID: s.subnetA4, IPAddress: "10.10.0.200"}}, 409, []string{"IpAddressAlreadyAllocated", "IpAddressInUse"}},
		{"address on no subnet of the network", []ports.IP{{IPAddress: "10.11.0.5"}}, 400, []string{"InvalidIpForNetwork"}},
		{"address not on the subnet", []ports.IP{{SubnetID: s.subnetA4, IPAddress: "10.20.0.5"}}, 400, []string{"InvalidIpForSubnet"}},
		{"subnet of another network", []ports.IP{{SubnetID: s.subnetA2}}, 400, []string{"InvalidInput"}},
	} {
		r := ports.Create(s.ctx, s.tenantA, ports.CreateOpts{NetworkID: s.netA, Name: s.name("bad"), ProjectID: s.projA, FixedIPs: tc.ips})
		if r.Err == nil {
			s.track("port", str(object(t, tc.name, r.Result, "port"), "id"))
		}
		wantError(t, tc.name, r.Err, tc.status, tc.types...)
	}

	name := s.name("vm-renamed")
	p = object(t, "rename VM port", ports.Update(s.ctx, s.tenantA, s.vmPort, ports.UpdateOpts{Name: &name}).Result, "port")
	want(t, "renamed VM port", p, "name", name)
	want(t, "renamed VM port", p, "mac_address", s.vmMAC)
	if got := fixedIPs(list(p, "fixed_ips")); !slices.Equal(got[s.subnetA4], []string{s.vmIPv4}) {
		t.Errorf("renamed VM port: fixed_ips %v changed", p["fixed_ips"])
	}
}

// appliancePorts creates ports as the orchestrator creates its
// appliance's (ASTARA:VRRP:<router>): no fixed IPs, no security groups,
// port security off.
func (s *suite) appliancePorts(t *testing.T) {
	off := false
	name := "ASTARA:VRRP:" + s.router
	for _, tc := range []struct {
		network string
		slaac   bool
	}{{s.netA2, false}, {s.netA, true}} {
		r := ports.Create(s.ctx, s.admin, portsecurity.PortCreateOptsExt{
			CreateOptsBuilder: ports.CreateOpts{
				NetworkID: tc.network, Name: name, ProjectID: s.projA,
				FixedIPs: []ports.IP{}, SecurityGroups: &[]string{},
			},
			PortSecurityEnabled: &off,
		})
		p := object(t, "create appliance port", r.Result, "port")
		id := str(p, "id")
		s.track("port", id)
		want(t, "appliance port", p, "port_security_enabled", false)
		want(t, "appliance port", p, "security_groups", []any{})
		ips := fixedIPs(list(p, "fixed_ips"))
		if tc.slaac {
			// fixed_ips: [] still gets the SLAAC address (Neutron adds the
			// addresses of every auto-address subnet).
			if w := eui64(t, a6CIDR, str(p, "mac_address")); len(ips) != 1 || !slices.Equal(ips[s.subnetA6], []string{w}) {
				t.Errorf("appliance port on a SLAAC network: fixed_ips %v, want only %s", p["fixed_ips"], w)
			}
		} else if len(ips) != 0 {
			t.Errorf("appliance port: fixed_ips %v, want none", p["fixed_ips"])
		}
		got := s.listPorts(t, s.admin, ports.ListOpts{Name: name, NetworkID: tc.network})
		if len(got) != 1 || str(got[0], "id") != id {
			t.Errorf("list ports by name %s: %v", name, ids(anySlice(got)))
		}
		if err := ports.Delete(s.ctx, s.admin, id).ExtractErr(); err != nil {
			t.Errorf("delete appliance port: %v", err)
		}
	}
	if got := s.listPorts(t, s.admin, ports.ListOpts{Name: name}); len(got) != 0 {
		t.Errorf("appliance ports left after deletion: %v", ids(anySlice(got)))
	}
}

func anySlice(l []map[string]any) []any {
	out := make([]any, len(l))
	for i, x := range l {
		out[i] = x
	}
	return out
}

func (s *suite) idsOf(t *testing.T, c *gophercloud.ServiceClient, path, key string) []string {
	t.Helper()
	status, body := s.raw(t, c, http.MethodGet, path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, status, body)
	}
	return ids(list(body, key))
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func (s *suite) listFilters(t *testing.T) {
	interfaces := sorted(s.ifaceA4Port, s.ifaceA6Port, s.portA2)
	for _, tc := range []struct {
		name string
		c    *gophercloud.ServiceClient
		path string
		key  string
		want []string
	}{
		{"ports of the router", s.admin, "/v2.0/ports" + query("device_id", s.router), "ports", sorted(append(slices.Clone(interfaces), s.gatewayPort)...)},
		{"router interfaces", s.admin, "/v2.0/ports" + query("device_id", s.router, "device_owner", "network:router_interface"), "ports", interfaces},
		{"repeated device_owner", s.admin, "/v2.0/ports" + query("device_id", s.router, "device_owner", "network:router_interface", "device_owner", "network:router_gateway"), "ports", sorted(append(slices.Clone(interfaces), s.gatewayPort)...)},
		{"ports of network a", s.tenantA, "/v2.0/ports" + query("network_id", s.netA), "ports", sorted(s.ifaceA4Port, s.ifaceA6Port, s.vmPort, s.fixedPort)},
		{"ports of two networks", s.tenantA, "/v2.0/ports" + query("network_id", s.netA2, "network_id", s.netA3), "ports", []string{s.portA2}},
		{"port by name", s.tenantA, "/v2.0/ports" + query("name", s.name("vm-renamed")), "ports", []string{s.vmPort}},
		{"port by address", s.tenantA, "/v2.0/ports" + query("fixed_ips", "ip_address=10.10.0.200"), "ports", []string{s.fixedPort}},
		{"port by subnet and address", s.tenantA, "/v2.0/ports" + query("fixed_ips", "subnet_id="+s.subnetA4, "fixed_ips", "ip_address=10.10.0.200"), "ports", []string{s.fixedPort}},
		{"ports by MAC", s.tenantA, "/v2.0/ports" + query("mac_address", s.vmMAC), "ports", []string{s.vmPort}},
		{"routers by project_id", s.admin, "/v2.0/routers" + query("project_id", s.projA), "routers", []string{s.router}},
		{"routers by tenant_id", s.admin, "/v2.0/routers" + query("tenant_id", s.projA), "routers", []string{s.router}},
		{"subnets of network a", s.tenantA, "/v2.0/subnets" + query("network_id", s.netA), "subnets", sorted(s.subnetA4, s.subnetA6)},
		{"IPv6 subnets of network a", s.tenantA, "/v2.0/subnets" + query("network_id", s.netA, "ip_version", "6"), "subnets", []string{s.subnetA6}},
		{"networks by name", s.tenantA, "/v2.0/networks" + query("name", s.name("a2")), "networks", []string{s.netA2}},
		{"external networks by name", s.admin, "/v2.0/networks" + query("router:external", "True", "name", s.name("ext")), "networks", []string{s.extNet}},
		{"no match", s.tenantA, "/v2.0/ports" + query("device_id", "no-such-device"), "ports", nil},
	} {
		if got := s.idsOf(t, tc.c, tc.path, tc.key); !slices.Equal(got, tc.want) {
			t.Errorf("%s: GET %s = %v, want %v", tc.name, tc.path, got, tc.want)
		}
	}

	status, body := s.raw(t, s.tenantA, http.MethodGet, "/v2.0/ports"+query("network_id", s.netA, "fields", "id", "fields", "name"), nil)
	if status != http.StatusOK || len(list(body, "ports")) == 0 {
		t.Fatalf("ports with fields: %d %v", status, body)
	}
	for _, x := range list(body, "ports") {
		p, _ := x.(map[string]any)
		keys := make([]string, 0, len(p))
		for k := range p {
			keys = append(keys, k)
		}
		if slices.Sort(keys); !slices.Equal(keys, []string{"id", "name"}) {
			t.Errorf("ports with fields=id&fields=name: %v", p)
		}
	}
	status, body = s.raw(t, s.tenantA, http.MethodGet, "/v2.0/ports"+query("colour", "blue"), nil)
	checkError(t, "filter on an unknown attribute", status, body, http.StatusBadRequest, "HTTPBadRequest")
}

func (s *suite) pagination(t *testing.T) {
	all := s.listPorts(t, s.tenantA, ports.ListOpts{NetworkID: s.netA})
	paged := s.listPorts(t, s.tenantA, ports.ListOpts{NetworkID: s.netA, Limit: 1})
	if got, want := ids(anySlice(paged)), ids(anySlice(all)); !slices.Equal(got, want) || len(got) < 3 {
		t.Errorf("pages of 1 port: %v, want %v", got, want)
	}
	status, body := s.raw(t, s.tenantA, http.MethodGet, "/v2.0/ports"+query("network_id", s.netA, "limit", "2"), nil)
	if status != http.StatusOK || len(list(body, "ports")) != 2 {
		t.Fatalf("limit=2: %d %v", status, body)
	}
	hasNext := slices.ContainsFunc(list(body, "ports_links"), func(l any) bool { m, _ := l.(map[string]any); return str(m, "rel") == "next" })
	if !hasNext {
		t.Errorf("limit=2 of more ports: no next link in %v", body["ports_links"])
	}
}

func (s *suite) createFIP(t *testing.T, opts floatingips.CreateOpts) map[string]any {
	t.Helper()
	opts.FloatingNetworkID, opts.ProjectID = s.extNet, s.projA
	f := object(t, "create floating IP", floatingips.Create(s.ctx, s.tenantA, opts).Result, "floatingip")
	s.track("floatingip", str(f, "id"))
	hasKeys(t, "floating IP", f, fipKeys...)
	want(t, "floating IP", f, "floating_network_id", s.extNet)
	want(t, "floating IP", f, "project_id", s.projA)
	if !inRange(str(f, "floating_ip_address"), extStart, extEnd) {
		t.Errorf("floating IP %v outside the external pool", f["floating_ip_address"])
	}
	if st := str(f, "status"); st != "DOWN" && st != "ACTIVE" {
		t.Errorf("floating IP: status %q", st)
	}
	return f
}

func (s *suite) wantAssociated(t *testing.T, what string, f map[string]any) {
	t.Helper()
	want(t, what, f, "port_id", s.vmPort)
	want(t, what, f, "fixed_ip_address", s.vmIPv4)
	want(t, what, f, "router_id", s.router)
	if d, ok := f["port_details"].(map[string]any); ok {
		want(t, what+": port_details", d, "network_id", s.netA)
		want(t, what+": port_details", d, "mac_address", s.vmMAC)
		want(t, what+": port_details", d, "device_owner", "compute:nova")
	}
}

func (s *suite) floatingIPs(t *testing.T) {
	f := s.createFIP(t, floatingips.CreateOpts{})
	fip := str(f, "id")
	want(t, "new floating IP", f, "router_id", nil)
	want(t, "new floating IP", f, "port_id", nil)
	want(t, "new floating IP", f, "fixed_ip_address", nil)

	port := s.vmPort
	f = object(t, "associate", floatingips.Update(s.ctx, s.tenantA, fip, floatingips.UpdateOpts{PortID: &port}).Result, "floatingip")
	s.wantAssociated(t, "associated floating IP", f)
	f = object(t, "show floating IP", floatingips.Get(s.ctx, s.tenantA, fip).Result, "floatingip")
	s.wantAssociated(t, "shown floating IP", f)
	if got := s.idsOf(t, s.tenantA, "/v2.0/floatingips"+query("router_id", s.router), "floatingips"); !slices.Equal(got, []string{fip}) {
		t.Errorf("floating IPs of the router: %v, want [%s]", got, fip)
	}

	second := s.createFIP(t, floatingips.CreateOpts{})
	_, err := floatingips.Update(s.ctx, s.tenantA, str(second, "id"), floatingips.UpdateOpts{PortID: &port}).Extract()
	wantError(t, "associate a second floating IP with the same address", err, http.StatusConflict, "FloatingIPPortAlreadyAssociated")
	err = routers.Update(s.ctx, s.tenantA, s.router, routers.UpdateOpts{GatewayInfo: &routers.GatewayInfo{}}).Err
	wantError(t, "clear the gateway a floating IP uses", err, http.StatusConflict, "RouterExternalGatewayInUseByFloatingIp")
	_, err = routers.RemoveInterface(s.ctx, s.tenantA, s.router, routers.RemoveInterfaceOpts{SubnetID: s.subnetA4}).Extract()
	wantError(t, "remove the interface a floating IP uses", err, http.StatusConflict, "RouterInterfaceInUseByFloatingIP")

	unrouted := object(t, "create port on an unrouted network", ports.Create(s.ctx, s.tenantA,
		ports.CreateOpts{NetworkID: s.netA3, Name: s.name("unrouted"), ProjectID: s.projA}).Result, "port")
	s.track("port", str(unrouted, "id"))
	other := str(unrouted, "id")
	_, err = floatingips.Update(s.ctx, s.tenantA, str(second, "id"), floatingips.UpdateOpts{PortID: &other}).Extract()
	wantError(t, "associate with a port no router reaches", err, http.StatusNotFound, "ExternalGatewayForFloatingIPNotFound")

	none := ""
	f = object(t, "disassociate", floatingips.Update(s.ctx, s.tenantA, fip, floatingips.UpdateOpts{PortID: &none}).Result, "floatingip")
	want(t, "disassociated floating IP", f, "port_id", nil)
	want(t, "disassociated floating IP", f, "fixed_ip_address", nil)
	want(t, "disassociated floating IP", f, "router_id", nil)

	third := s.createFIP(t, floatingips.CreateOpts{PortID: s.vmPort})
	s.wantAssociated(t, "floating IP created associated", third)
	if a, b := str(third, "floating_ip_address"), str(second, "floating_ip_address"); a == b || a == str(f, "floating_ip_address") {
		t.Errorf("floating IPs share address %s", a)
	}

	for _, id := range []string{fip, str(second, "id"), str(third, "id")} {
		if err := floatingips.Delete(s.ctx, s.tenantA, id).ExtractErr(); err != nil {
			t.Errorf("delete floating IP %s: %v", id, err)
		}
		_, err := floatingips.Get(s.ctx, s.tenantA, id).Extract()
		wantError(t, "show deleted floating IP", err, http.StatusNotFound, "FloatingIPNotFound")
	}
	if err := ports.Delete(s.ctx, s.tenantA, other).ExtractErr(); err != nil {
		t.Errorf("delete unrouted port: %v", err)
	}
}

func (s *suite) routerTags(t *testing.T) []string {
	t.Helper()
	tags, err := attributestags.List(s.ctx, s.tenantA, "routers", s.router).Extract()
	if err != nil {
		t.Fatalf("list router tags: %v", err)
	}
	slices.Sort(tags)
	return tags
}

func (s *suite) tags(t *testing.T) {
	const state = "astara:state=ACTIVE"
	if err := attributestags.Add(s.ctx, s.tenantA, "routers", s.router, state).ExtractErr(); err != nil {
		t.Fatalf("add tag: %v", err)
	}
	ok, err := attributestags.Confirm(s.ctx, s.tenantA, "routers", s.router, state).Extract()
	if err != nil || !ok {
		t.Errorf("confirm tag: %v, %v", ok, err)
	}
	rt := object(t, "show tagged router", routers.Get(s.ctx, s.tenantA, s.router).Result, "router")
	want(t, "tagged router", rt, "tags", []any{state})
	if got := s.idsOf(t, s.tenantA, "/v2.0/routers"+query("tags", state), "routers"); !slices.Equal(got, []string{s.router}) {
		t.Errorf("routers tagged %s: %v", state, got)
	}

	replaced, err := attributestags.ReplaceAll(s.ctx, s.tenantA, "routers", s.router, attributestags.ReplaceAllOpts{Tags: []string{"b", "a"}}).Extract()
	if slices.Sort(replaced); err != nil || !slices.Equal(replaced, []string{"a", "b"}) {
		t.Errorf("replace tags: %v, %v", replaced, err)
	}
	if got := s.routerTags(t); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("tags after replace: %v", got)
	}
	if err := attributestags.Delete(s.ctx, s.tenantA, "routers", s.router, "a").ExtractErr(); err != nil {
		t.Errorf("delete tag: %v", err)
	}
	err = attributestags.Delete(s.ctx, s.tenantA, "routers", s.router, "a").ExtractErr()
	wantError(t, "delete a missing tag", err, http.StatusNotFound, "TagNotFound")
	if got := s.idsOf(t, s.tenantA, "/v2.0/routers"+query("tags-any", "a,b", "project_id", s.projA), "routers"); !slices.Equal(got, []string{s.router}) {
		t.Errorf("routers with tags-any=a,b: %v", got)
	}
	if err := attributestags.DeleteAll(s.ctx, s.tenantA, "routers", s.router).ExtractErr(); err != nil {
		t.Errorf("delete all tags: %v", err)
	}
	if got := s.routerTags(t); len(got) != 0 {
		t.Errorf("tags after delete all: %v", got)
	}
	if err := attributestags.Add(s.ctx, s.tenantA, "networks", s.netA, "x").ExtractErr(); err != nil {
		t.Errorf("tag a network: %v", err)
	}
	n := object(t, "show tagged network", networks.Get(s.ctx, s.tenantA, s.netA).Result, "network")
	want(t, "tagged network", n, "tags", []any{"x"})
}

func (s *suite) extraRoutes(t *testing.T) {
	routes := []routers.Route{{DestinationCIDR: "10.60.0.0/16", NextHop: "10.10.0.254"}}
	rt := object(t, "set routes", routers.Update(s.ctx, s.tenantA, s.router, routers.UpdateOpts{Routes: &routes}).Result, "router")
	want(t, "router with routes", rt, "routes", []any{map[string]any{"destination": "10.60.0.0/16", "nexthop": "10.10.0.254"}})
	_, err := routers.RemoveInterface(s.ctx, s.tenantA, s.router, routers.RemoveInterfaceOpts{SubnetID: s.subnetA4}).Extract()
	wantError(t, "remove the interface a route uses", err, http.StatusConflict, "RouterInterfaceInUseByRoute")
	bad := []routers.Route{{DestinationCIDR: "10.61.0.0/16", NextHop: "192.0.2.77"}}
	err = routers.Update(s.ctx, s.tenantA, s.router, routers.UpdateOpts{Routes: &bad}).Err
	wantError(t, "route via an unconnected next hop", err, http.StatusBadRequest, "InvalidRoutes")
	none := []routers.Route{}
	rt = object(t, "clear routes", routers.Update(s.ctx, s.tenantA, s.router, routers.UpdateOpts{Routes: &none}).Result, "router")
	want(t, "router without routes", rt, "routes", []any{})
}

func (s *suite) conflicts(t *testing.T) {
	wantError(t, "delete a network with ports", networks.Delete(s.ctx, s.tenantA, s.netA).ExtractErr(), http.StatusConflict, "NetworkInUse")
	wantError(t, "delete a subnet with a router interface", subnets.Delete(s.ctx, s.tenantA, s.subnetA4).ExtractErr(), http.StatusConflict, "SubnetInUse")
	wantError(t, "delete a router with interfaces", routers.Delete(s.ctx, s.tenantA, s.router).ExtractErr(), http.StatusConflict, "RouterInUse")
	wantError(t, "delete a router interface port", ports.Delete(s.ctx, s.tenantA, s.ifaceA4Port).ExtractErr(), http.StatusConflict, "ServicePortInUse", "L3PortInUse")
	wantError(t, "delete the external network", networks.Delete(s.ctx, s.admin, s.extNet).ExtractErr(), http.StatusConflict, "NetworkInUse")
	// Nothing changed.
	if p := s.showPort(t, s.tenantA, s.ifaceA4Port); str(p, "device_id") != s.router {
		t.Errorf("interface port changed: %v", p)
	}
}

func (s *suite) notFound(t *testing.T) {
	missing := "00000000-0000-4000-8000-" + randomHex(6)
	for _, tc := range []struct {
		what, path, typ string
	}{
		{"network", "/v2.0/networks/" + missing, "NetworkNotFound"},
		{"subnet", "/v2.0/subnets/" + missing, "SubnetNotFound"},
		{"port", "/v2.0/ports/" + missing, "PortNotFound"},
		{"router", "/v2.0/routers/" + missing, "RouterNotFound"},
		{"floating IP", "/v2.0/floatingips/" + missing, "FloatingIPNotFound"},
	} {
		status, body := s.raw(t, s.tenantA, http.MethodGet, tc.path, nil)
		checkError(t, "GET missing "+tc.what, status, body, http.StatusNotFound, tc.typ)
		status, body = s.raw(t, s.tenantA, http.MethodDelete, tc.path, nil)
		checkError(t, "DELETE missing "+tc.what, status, body, http.StatusNotFound, tc.typ)
	}
	_, err := routers.AddInterface(s.ctx, s.tenantA, s.router, routers.AddInterfaceOpts{SubnetID: missing}).Extract()
	wantError(t, "add interface on a missing subnet", err, http.StatusNotFound, "SubnetNotFound")
	_, err = routers.RemoveInterface(s.ctx, s.tenantA, s.router, routers.RemoveInterfaceOpts{SubnetID: s.subnetA3}).Extract()
	wantError(t, "remove an interface the router does not have", err, http.StatusNotFound, "RouterInterfaceNotFoundForSubnet")
	r := ports.Create(s.ctx, s.tenantA, ports.CreateOpts{NetworkID: missing, Name: s.name("bad"), ProjectID: s.projA})
	wantError(t, "port on a missing network", r.Err, http.StatusNotFound, "NetworkNotFound")
}

func (s *suite) exhaustion(t *testing.T) {
	tiny := s.network(t, "tiny")
	sn := s.subnet(t, subnets.CreateOpts{NetworkID: tiny, Name: s.name("tiny-v4"), CIDR: tinyCIDR, IPVersion: 4,
		AllocationPools: []subnets.AllocationPool{{Start: "10.40.0.2", End: "10.40.0.3"}}})
	var got []string
	for range 2 {
		p := object(t, "port on the tiny subnet", ports.Create(s.ctx, s.tenantA, ports.CreateOpts{NetworkID: tiny, Name: s.name("tiny"), ProjectID: s.projA}).Result, "port")
		s.track("port", str(p, "id"))
		got = append(got, fixedIPs(list(p, "fixed_ips"))[str(sn, "id")]...)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"10.40.0.2", "10.40.0.3"}) {
		t.Errorf("the pool's two addresses went to %v", got)
	}
	r := ports.Create(s.ctx, s.tenantA, ports.CreateOpts{NetworkID: tiny, Name: s.name("tiny"), ProjectID: s.projA})
	if r.Err == nil {
		s.track("port", str(object(t, "third port", r.Result, "port"), "id"))
	}
	wantError(t, "third port on a pool of two", r.Err, http.StatusConflict, "IpAddressGenerationFailure")
	r = ports.Create(s.ctx, s.tenantA, ports.CreateOpts{NetworkID: tiny, Name: s.name("tiny"), ProjectID: s.projA,
		FixedIPs: []ports.IP{{SubnetID: str(sn, "id")}}})
	if r.Err == nil {
		s.track("port", str(object(t, "third port", r.Result, "port"), "id"))
	}
	wantError(t, "third port on the full subnet", r.Err, http.StatusConflict, "IpAddressGenerationFailure")
}

func (s *suite) isolation(t *testing.T) {
	if !s.tenantMode {
		s.noIsolation(t)
		return
	}
	b := s.tenantB
	for _, tc := range []struct{ what, path, typ string }{
		{"network", "/v2.0/networks/" + s.netA, "NetworkNotFound"},
		{"subnet", "/v2.0/subnets/" + s.subnetA4, "SubnetNotFound"},
		{"port", "/v2.0/ports/" + s.vmPort, "PortNotFound"},
		{"router", "/v2.0/routers/" + s.router, "RouterNotFound"},
		{"external subnet", "/v2.0/subnets/" + s.extSubnet, "SubnetNotFound"},
	} {
		status, body := s.raw(t, b, http.MethodGet, tc.path, nil)
		checkError(t, "another project shows "+tc.what, status, body, http.StatusNotFound, tc.typ)
	}
	nets := s.idsOf(t, b, "/v2.0/networks", "networks")
	if !slices.Contains(nets, s.extNet) || slices.Contains(nets, s.netA) {
		t.Errorf("another project lists networks %v: want the external one, not project A's", nets)
	}
	for _, path := range []string{"/v2.0/ports" + query("network_id", s.netA), "/v2.0/routers" + query("project_id", s.projA), "/v2.0/subnets" + query("network_id", s.netA)} {
		if got := s.idsOf(t, b, path, strings.Split(strings.TrimPrefix(path, "/v2.0/"), "?")[0]); len(got) != 0 {
			t.Errorf("another project lists %s: %v", path, got)
		}
	}
	f := s.createFIP(t, floatingips.CreateOpts{})
	port := s.vmPort
	_, err := floatingips.Update(s.ctx, b, str(f, "id"), floatingips.UpdateOpts{PortID: &port}).Extract()
	wantError(t, "another project updates the floating IP", err, http.StatusNotFound, "FloatingIPNotFound")
	yes := true
	r := networks.Create(s.ctx, b, external.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: s.name("b-ext")}, External: &yes})
	if r.Err == nil {
		s.track("network", str(object(t, "external network by a project", r.Result, "network"), "id"))
	}
	wantError(t, "a project creates an external network", r.Err, http.StatusForbidden)
	r2 := ports.Create(s.ctx, b, ports.CreateOpts{NetworkID: s.netA, Name: s.name("b")})
	wantError(t, "another project plugs into project A's network", r2.Err, http.StatusNotFound, "NetworkNotFound")
	if got := s.listPorts(t, s.tenantA, ports.ListOpts{DeviceID: s.router}); len(got) != 3 {
		t.Errorf("project A sees %d ports of its router, want its 3 interfaces (not the gateway port)", len(got))
	}
	if err := floatingips.Delete(s.ctx, s.tenantA, str(f, "id")).ExtractErr(); err != nil {
		t.Errorf("delete floating IP: %v", err)
	}
}

// noIsolation checks the other side of a target without per-request
// tenants (Neutron's noauth): every request is admin, so what project A
// made shows to any client, by id and in lists.
func (s *suite) noIsolation(t *testing.T) {
	b := s.tenantB
	for _, tc := range []struct{ what, path string }{
		{"network", "/v2.0/networks/" + s.netA},
		{"subnet", "/v2.0/subnets/" + s.subnetA4},
		{"port", "/v2.0/ports/" + s.vmPort},
		{"router", "/v2.0/routers/" + s.router},
	} {
		if status, body := s.raw(t, b, http.MethodGet, tc.path, nil); status != http.StatusOK {
			t.Errorf("noauth: project A's %s: %d %s, want 200 (every request is admin)", tc.what, status, body)
		}
	}
	if nets := s.idsOf(t, b, "/v2.0/networks", "networks"); !slices.Contains(nets, s.netA) || !slices.Contains(nets, s.extNet) {
		t.Errorf("noauth: networks listed %v: want project A's %s and the external %s", nets, s.netA, s.extNet)
	}
}

func (s *suite) teardown(t *testing.T) {
	c := s.tenantA
	for _, id := range []string{s.vmPort, s.fixedPort} {
		if err := ports.Delete(s.ctx, c, id).ExtractErr(); err != nil {
			t.Errorf("delete port %s: %v", id, err)
		}
	}
	info, err := routers.RemoveInterface(s.ctx, c, s.router, routers.RemoveInterfaceOpts{SubnetID: s.subnetA4}).Extract()
	if err != nil || info.PortID != s.ifaceA4Port {
		t.Errorf("remove interface by subnet: %+v, %v", info, err)
	}
	info, err = routers.RemoveInterface(s.ctx, c, s.router, routers.RemoveInterfaceOpts{PortID: s.ifaceA6Port}).Extract()
	if err != nil || info.SubnetID != s.subnetA6 {
		t.Errorf("remove interface by port: %+v, %v", info, err)
	}
	info, err = routers.RemoveInterface(s.ctx, c, s.router, routers.RemoveInterfaceOpts{PortID: s.portA2}).Extract()
	if err != nil || info.SubnetID != s.subnetA2 {
		t.Errorf("remove the interface added by port: %+v, %v", info, err)
	}
	for _, id := range []string{s.ifaceA4Port, s.ifaceA6Port, s.portA2} {
		_, err := ports.Get(s.ctx, s.admin, id).Extract()
		wantError(t, "show the port of a removed interface", err, http.StatusNotFound, "PortNotFound")
	}
	rt := object(t, "clear gateway", routers.Update(s.ctx, c, s.router, routers.UpdateOpts{GatewayInfo: &routers.GatewayInfo{}}).Result, "router")
	want(t, "router without gateway", rt, "external_gateway_info", nil)
	if got := s.listPorts(t, s.admin, ports.ListOpts{DeviceID: s.router}); len(got) != 0 {
		t.Errorf("router ports left after clearing the gateway: %v", ids(anySlice(got)))
	}
	if err := routers.Delete(s.ctx, c, s.router).ExtractErr(); err != nil {
		t.Errorf("delete router: %v", err)
	}
	_, err = routers.Get(s.ctx, c, s.router).Extract()
	wantError(t, "show deleted router", err, http.StatusNotFound, "RouterNotFound")
	if err := subnets.Delete(s.ctx, c, s.subnetA6).ExtractErr(); err != nil {
		t.Errorf("delete subnet: %v", err)
	}
	s.cleanup(t)
	for _, id := range []string{s.netA, s.netA2, s.extNet} {
		_, err := networks.Get(s.ctx, s.admin, id).Extract()
		wantError(t, "show deleted network", err, http.StatusNotFound, "NetworkNotFound")
	}
	_, err = subnets.Get(s.ctx, s.admin, s.subnetA4).Extract()
	wantError(t, "show a subnet deleted with its network", err, http.StatusNotFound, "SubnetNotFound")
}
