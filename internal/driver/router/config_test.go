package router

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/provider"
)

const tenant = "d22b149cee9b4eac8349c517eda00b89"

func a(s string) netip.Addr   { return netip.MustParseAddr(s) }
func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func fixed(subnet, addr string) provider.FixedIP {
	return provider.FixedIP{SubnetID: subnet, Address: a(addr)}
}

var testConfig = Config{
	ManagementNetworkID: "mgt-net",
	Orchestrator:        model.Orchestrator{Address: a("fdca:3ba5:a17a:acda::1"), Host: "orchestrator-1"},
	Labels:              map[string][]netip.Prefix{"ext": {p("192.168.57.0/24")}},
}

// world is the Neutron side of the test router: a management network,
// an external network, two tenant networks, their ports.
type world struct {
	networks map[string]*provider.Network
	ports    map[string][]provider.Port // by network
	router   *provider.Router
	mgmt     provider.Port
	ifaces   InterfaceMap
}

func baseWorld() *world {
	w := &world{networks: map[string]*provider.Network{}, ports: map[string][]provider.Port{}}
	for _, nw := range []provider.Network{
		{ID: "mgt-net", Subnets: []provider.Subnet{{ID: "mgt-subnet", CIDR: p("fdca:3ba5:a17a:acda::/64"),
			GatewayIP: a("fdca:3ba5:a17a:acda::1"), EnableDHCP: true, IPv6RAMode: "slaac", IPv6AddressMode: "slaac"}}},
		{ID: "ext-net", External: true, Subnets: []provider.Subnet{
			{ID: "ext-v4", CIDR: p("172.16.77.0/24"), GatewayIP: a("172.16.77.1")},
			{ID: "ext-v6", CIDR: p("2001:db8:77::/64"), GatewayIP: a("2001:db8:77::1")},
		}},
		{ID: "int1-net", MTU: 1450, Subnets: []provider.Subnet{
			{ID: "int1-v4", CIDR: p("192.168.0.0/24"), GatewayIP: a("192.168.0.1"), EnableDHCP: true,
				DNSNameservers: []netip.Addr{a("8.8.8.8"), a("8.8.4.4")}},
			{ID: "int1-v6", CIDR: p("fdd6:a1fa:cfa8:9df::/64"), GatewayIP: a("fdd6:a1fa:cfa8:9df::1"), EnableDHCP: true,
				IPv6RAMode: "slaac", IPv6AddressMode: "slaac"},
		}},
		{ID: "int2-net", Subnets: []provider.Subnet{
			{ID: "int2-v4", CIDR: p("10.1.0.0/24"), GatewayIP: a("10.1.0.1"), EnableDHCP: true},
		}},
	} {
		w.networks[nw.ID] = &nw
	}
	w.mgmt = provider.Port{ID: "mgt-port", Name: "ASTARA:MGT:router-1", NetworkID: "mgt-net", MAC: "fa:16:3e:aa:00:00",
		FixedIPs: []provider.FixedIP{fixed("mgt-subnet", "fdca:3ba5:a17a:acda:f816:3eff:feaa:0")}}
	gw := provider.Port{ID: "gw-port", NetworkID: "ext-net", MAC: "fa:16:3e:10:00:01", DeviceID: "router-1",
		DeviceOwner: provider.OwnerRouterGateway, TenantID: tenant,
		FixedIPs: []provider.FixedIP{fixed("ext-v4", "172.16.77.2"), fixed("ext-v6", "2001:db8:77::2")}}
	if1 := provider.Port{ID: "if1-port", NetworkID: "int1-net", MAC: "fa:16:3e:20:00:01", DeviceID: "router-1",
		DeviceOwner: provider.OwnerRouterInterface, TenantID: tenant,
		FixedIPs: []provider.FixedIP{fixed("int1-v4", "192.168.0.1"), fixed("int1-v6", "fdd6:a1fa:cfa8:9df::1")}}
	if2 := provider.Port{ID: "if2-port", NetworkID: "int2-net", MAC: "fa:16:3e:30:00:01", DeviceID: "router-1",
		DeviceOwner: provider.OwnerRouterInterface, TenantID: tenant,
		FixedIPs: []provider.FixedIP{fixed("int2-v4", "10.1.0.1")}}
	w.router = &provider.Router{ID: "router-1", TenantID: tenant, GatewayPort: &gw, Interfaces: []provider.Port{if1, if2},
		FloatingIPs: []provider.FloatingIP{
			{ID: "fip-1", FloatingIP: a("172.16.77.50"), FixedIP: a("192.168.0.5"), RouterID: "router-1"},
			{ID: "fip-2", FloatingIP: a("172.16.77.51"), RouterID: "router-1"}, // not associated
		}}
	vrrp := func(id, net, mac string) provider.Port {
		return provider.Port{ID: id, Name: "ASTARA:VRRP:router-1", NetworkID: net, MAC: mac}
	}
	vm1 := provider.Port{ID: "vm1-port", NetworkID: "int1-net", MAC: "fa:16:3e:00:00:05", DeviceID: "vm-1", DeviceOwner: "compute:nova",
		FixedIPs: []provider.FixedIP{fixed("int1-v4", "192.168.0.5"), fixed("int1-v6", "fdd6:a1fa:cfa8:9df:f816:3eff:fe00:5")}}
	vm2 := provider.Port{ID: "vm2-port", NetworkID: "int2-net", MAC: "fa:16:3e:00:01:05", DeviceID: "vm-2", DeviceOwner: "compute:nova",
		FixedIPs: []provider.FixedIP{fixed("int2-v4", "10.1.0.5")}}
	w.ports["int1-net"] = []provider.Port{if1, vm1, vrrp("vrrp-int1", "int1-net", "fa:16:3e:aa:00:02")}
	w.ports["int2-net"] = []provider.Port{vm2, if2, vrrp("vrrp-int2", "int2-net", "fa:16:3e:aa:00:03")}
	w.ifaces = InterfaceMap{
		"mgt-net":  {IfName: "ge0", MAC: "fa:16:3e:aa:00:00", Port: w.mgmt},
		"ext-net":  {IfName: "ge1", MAC: "fa:16:3e:aa:00:01", Port: vrrp("vrrp-ext", "ext-net", "fa:16:3e:aa:00:01")},
		"int1-net": {IfName: "ge2", MAC: "fa:16:3e:aa:00:02", Port: vrrp("vrrp-int1", "int1-net", "fa:16:3e:aa:00:02")},
		"int2-net": {IfName: "ge3", MAC: "fa:16:3e:aa:00:03", Port: vrrp("vrrp-int2", "int2-net", "fa:16:3e:aa:00:03")},
	}
	return w
}

func (w *world) input() Input {
	return Input{Router: w.router, Management: w.mgmt, Networks: w.networks, Ports: w.ports, Interfaces: w.ifaces}
}

// only keeps the router interfaces on the given networks.
func (w *world) only(nets ...string) {
	var keep []provider.Port
	for _, p := range w.router.Interfaces {
		for _, n := range nets {
			if p.NetworkID == n {
				keep = append(keep, p)
			}
		}
	}
	w.router.Interfaces = keep
}

func (w *world) noGateway() {
	w.router.GatewayPort = nil
	w.router.FloatingIPs = nil
}

// cases are the inputs of the hand-written documents in testdata/<name>.json.
var cases = map[string]func(w *world){
	"gateway_two_interfaces_fip": func(w *world) {},
	"no_gateway":                 func(w *world) { w.noGateway() },
	"ipv6_slaac_dhcpv6": func(w *world) {
		w.noGateway()
		w.networks["v6-net"] = &provider.Network{ID: "v6-net", Subnets: []provider.Subnet{
			{ID: "v6-slaac", CIDR: p("fd00:1::/64"), GatewayIP: a("fd00:1::1"), EnableDHCP: true, IPv6RAMode: "slaac", IPv6AddressMode: "slaac"},
			{ID: "v6-stateful", CIDR: p("fd00:2::/64"), GatewayIP: a("fd00:2::1"), EnableDHCP: true,
				IPv6RAMode: "dhcpv6-stateful", IPv6AddressMode: "dhcpv6-stateful", DNSNameservers: []netip.Addr{a("fd00:2::53")}},
			{ID: "v6-stateless", CIDR: p("fd00:3::/64"), EnableDHCP: true, IPv6RAMode: "dhcpv6-stateless", IPv6AddressMode: "dhcpv6-stateless"},
			{ID: "v6-nodhcp", CIDR: p("fd00:4::/64"), GatewayIP: a("fd00:4::1")},
		}}
		ifv6 := provider.Port{ID: "ifv6-port", NetworkID: "v6-net", MAC: "fa:16:3e:40:00:01", DeviceID: "router-1",
			DeviceOwner: provider.OwnerRouterInterface,
			FixedIPs:    []provider.FixedIP{fixed("v6-slaac", "fd00:1::1"), fixed("v6-stateful", "fd00:2::1")}}
		vm6 := provider.Port{ID: "vm6-port", NetworkID: "v6-net", MAC: "fa:16:3e:00:06:05", DeviceID: "vm-6",
			FixedIPs: []provider.FixedIP{fixed("v6-nodhcp", "fd00:4::5"), fixed("v6-stateful", "fd00:2::5"),
				fixed("v6-slaac", "fd00:1::f816:3eff:fe00:605")}}
		w.router.Interfaces = []provider.Port{ifv6}
		w.ports["v6-net"] = []provider.Port{vm6, ifv6}
		w.ifaces["v6-net"] = Attachment{IfName: "ge1", MAC: "fa:16:3e:aa:00:06"}
	},
	"host_routes": func(w *world) {
		w.noGateway()
		w.only("int2-net")
		s := &w.networks["int2-net"].Subnets[0]
		s.DNSNameservers = []netip.Addr{a("10.1.0.53")}
		s.HostRoutes = []provider.HostRoute{
			{Destination: p("10.10.0.0/16"), NextHop: a("10.1.0.254")},
			{Destination: p("172.20.0.0/24"), NextHop: a("10.1.0.253")},
		}
	},
	"mtu": func(w *world) {
		w.only("int1-net")
		w.networks["mgt-net"].MTU = 1400
		w.networks["ext-net"].MTU = 1500
		w.networks["int1-net"].MTU = 9000
	},
	"allocations": func(w *world) {
		w.noGateway()
		w.only("int1-net")
		nw := w.networks["int1-net"]
		nw.Subnets = append(nw.Subnets, provider.Subnet{ID: "int1-static", CIDR: p("192.168.5.0/24")})
		port := func(id, name, mac, dev, owner string, ips ...provider.FixedIP) provider.Port {
			return provider.Port{ID: id, Name: name, NetworkID: "int1-net", MAC: mac, DeviceID: dev, DeviceOwner: owner, FixedIPs: ips}
		}
		w.ports["int1-net"] = []provider.Port{
			port("v6only", "", "FA:16:3E:00:00:0A", "vm-10", "compute:nova", fixed("int1-v6", "fdd6:a1fa:cfa8:9df::a")),
			port("other-if", "", "fa:16:3e:50:00:01", "router-2", provider.OwnerRouterInterface, fixed("int1-v4", "192.168.0.254")),
			port("vrrp-int1", "ASTARA:VRRP:router-1", "fa:16:3e:aa:00:02", "", ""),
			port("vrrp-other", "ASTARA:VRRP:router-2", "fa:16:3e:aa:01:02", "", "", fixed("int1-v4", "192.168.0.250")),
			port("lb-own", "ASTARA:LB:lb-1", "fa:16:3e:aa:02:01", "", "", fixed("int1-v4", "192.168.0.101")),
			port("vip", "loadbalancer-lb-1", "fa:16:3e:70:00:01", "lb-1", "neutron:LOADBALANCERV2", fixed("int1-v4", "192.168.0.100")),
			port("mgt-elsewhere", "ASTARA:MGT:router-9", "fa:16:3e:aa:03:00", "", "", fixed("int1-v4", "192.168.0.99")),
			port("static", "", "fa:16:3e:00:00:0b", "vm-11", "compute:nova", fixed("int1-static", "192.168.5.10")),
			port("ha-if", "", "fa:16:3e:60:00:01", "router-3", provider.OwnerHARouterInterface, fixed("int1-v4", "192.168.0.253")),
			port("bare", "", "fa:16:3e:00:00:09", "vm-9", "compute:nova"),
			w.router.Interfaces[0],
			port("dhcp", "", "fa:16:3e:00:00:02", "dhcp-agent-1", provider.OwnerDHCP, fixed("int1-v4", "192.168.0.2")),
			w.ports["int1-net"][1], // vm1
		}
	},
	"same_network_two_interfaces": func(w *world) {
		w.noGateway()
		w.only("int1-net")
		nw := w.networks["int1-net"]
		nw.Subnets = append(nw.Subnets, provider.Subnet{ID: "int1-v4b", CIDR: p("192.168.1.0/24"), GatewayIP: a("192.168.1.1"), EnableDHCP: true})
		if1b := provider.Port{ID: "if1b-port", NetworkID: "int1-net", MAC: "fa:16:3e:20:00:02", DeviceID: "router-1",
			DeviceOwner: provider.OwnerRouterInterface, FixedIPs: []provider.FixedIP{fixed("int1-v4b", "192.168.1.1")}}
		w.router.Interfaces = append(w.router.Interfaces, if1b)
		w.ports["int1-net"] = []provider.Port{w.router.Interfaces[0], if1b}
	},
}

// TestBuild compares the built documents with the hand-written ones,
// field by field: every key, every list, every null.
func TestBuild(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Errorf("%d expected documents for %d cases", len(files), len(cases))
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := model.Decode(want); err != nil {
				t.Fatalf("the expected document is not valid: %v", err)
			}
			w := baseWorld()
			setup(w)
			doc, err := testConfig.Build(w.input())
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var gotV, wantV any
			if err := json.Unmarshal(got, &gotV); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &wantV); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotV, wantV) {
				t.Errorf("document differs from testdata/%s.json (-want +got):\n%s", name, cmp.Diff(wantV, gotV))
			}
		})
	}
}

// TestBuildIsDeterministic: the order Neutron lists ports in does not
// change the document (a restarted orchestrator compares documents).
func TestBuildIsDeterministic(t *testing.T) {
	w := baseWorld()
	cases["allocations"](w)
	first, err := testConfig.Build(w.input())
	if err != nil {
		t.Fatal(err)
	}
	ports := w.ports["int1-net"]
	for i, j := 0, len(ports)-1; i < j; i, j = i+1, j-1 {
		ports[i], ports[j] = ports[j], ports[i]
	}
	second, err := testConfig.Build(w.input())
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(first)
	b2, _ := json.Marshal(second)
	if string(b1) != string(b2) {
		t.Errorf("reordering the ports changed the document:\n%s\n%s", b1, b2)
	}
}

func TestBuildErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		setup func(w *world)
		want  string
	}{
		"no NIC on a network":              {func(w *world) { delete(w.ifaces, "int2-net") }, "internal network int2-net: the appliance has no NIC on it"},
		"no NIC on the management network": {func(w *world) { delete(w.ifaces, "mgt-net") }, "management network mgt-net: the appliance has no NIC"},
		"unknown network":                  {func(w *world) { delete(w.networks, "ext-net") }, "external network ext-net: no such network"},
		"address on a foreign subnet": {func(w *world) {
			w.router.Interfaces[1].FixedIPs = []provider.FixedIP{fixed("int1-v4", "192.168.0.77")}
		}, `port if2-port has address 192.168.0.77 on subnet "int1-v4"`},
		"allocation on a foreign subnet": {func(w *world) {
			w.ports["int2-net"][0].FixedIPs = []provider.FixedIP{fixed("nope", "10.1.0.5")}
		}, `port vm2-port has address 10.1.0.5 on subnet "nope"`},
		"floating IP without a gateway": {func(w *world) { w.router.GatewayPort = nil }, "floating_ips[0].floating_ip: the router has no external network"},
		"HA router":                     {func(w *world) { w.router.HA = true }, "ha_resource"},
		"tenant id with a space":        {func(w *world) { w.router.TenantID = "bad tenant" }, "tenant_id"},
		"hostname that is no host name": {func(w *world) {
			w.networks["int2-net"].Subnets = append(w.networks["int2-net"].Subnets, provider.Subnet{ID: "v6", CIDR: p("::/64")})
			w.ports["int2-net"][0].FixedIPs = []provider.FixedIP{fixed("v6", "::5")}
		}, "networks[3].allocations[1].hostname"},
	} {
		t.Run(name, func(t *testing.T) {
			w := baseWorld()
			tc.setup(w)
			_, err := testConfig.Build(w.input())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v; want an error containing %q", err, tc.want)
			}
		})
	}
	var verr *model.ValidationError
	var cerr *ConfigError
	w := baseWorld()
	w.router.HA = true
	if _, err := testConfig.Build(w.input()); !errors.As(err, &verr) || !errors.As(err, &cerr) || cerr.RouterID != "router-1" {
		t.Errorf("an invalid document's error is not a *ConfigError wrapping a *model.ValidationError: %v", err)
	}
	w = baseWorld()
	delete(w.ifaces, "int2-net")
	if _, err := testConfig.Build(w.input()); !errors.As(err, &cerr) {
		t.Errorf("a missing NIC is not a *ConfigError: %v", err)
	}
	if _, err := (Config{ManagementNetworkID: "mgt-net"}).Build(baseWorld().input()); err == nil || !strings.Contains(err.Error(), "orchestrator address") {
		t.Errorf("a config without the orchestrator's address: %v", err)
	}
}

func TestApplianceHostname(t *testing.T) {
	for in, want := range map[string]string{
		"2b5b4a2c5f3e4e8a9d0c1b2a3f4e5d6c": "ak-2b5b4a2c5f3e4e8a9d0c1b2a3f4e5d6c",
		"fake_project_id":                  "ak-fake-project-id",
		"Demo.Project":                     "ak-demo-project",
		"x__":                              "ak-x",
		strings.Repeat("a", 80):            "ak-" + strings.Repeat("a", 60),
	} {
		if got := applianceHostname(in); got != want {
			t.Errorf("applianceHostname(%q) = %q, want %q", in, got, want)
		}
	}
}
