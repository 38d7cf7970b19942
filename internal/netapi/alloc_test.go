package netapi

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

// addresses returns a port's fixed IPs as "subnet/ip" strings, sorted.
func addresses(p map[string]any) []string {
	var out []string
	for _, x := range p["fixed_ips"].([]any) {
		f := x.(map[string]any)
		out = append(out, str(f, "subnet_id")+"/"+str(f, "ip_address"))
	}
	slices.Sort(out)
	return out
}

func sortedStrings(s ...string) []string { slices.Sort(s); return s }

func eui(t *testing.T, prefix, mac string) string {
	t.Helper()
	a, err := ipam.EUI64(netip.MustParsePrefix(prefix), mac)
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

func TestAddressAllocation(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	a := admin(t, ts)
	type m = map[string]any
	net := str(a.must(201, "POST", "/v2.0/networks", m{"network": m{"name": "n"}}, "network"), "id")
	v4 := str(a.must(201, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24",
		"allocation_pools": []any{m{"start": "10.0.0.10", "end": "10.0.0.12"}}}}, "subnet"), "id")
	port := func(body m) map[string]any {
		body["network_id"] = net
		return a.must(201, "POST", "/v2.0/ports", m{"port": body}, "port")
	}

	// Lowest free address of the pool; the gateway is never given out.
	p1, p2 := port(m{}), port(m{})
	if got := addresses(p1); !slices.Equal(got, []string{v4 + "/10.0.0.10"}) {
		t.Errorf("first port: %v", got)
	}
	if got := addresses(p2); !slices.Equal(got, []string{v4 + "/10.0.0.11"}) {
		t.Errorf("second port: %v", got)
	}
	// An address outside the pool may be asked for; a freed one is reused.
	p3 := port(m{"fixed_ips": []any{m{"ip_address": "10.0.0.200"}}})
	if got := addresses(p3); !slices.Equal(got, []string{v4 + "/10.0.0.200"}) {
		t.Errorf("port asking for 10.0.0.200: %v", got)
	}
	a.must(204, "DELETE", "/v2.0/ports/"+str(p1, "id"), nil, "")
	if got := addresses(port(m{})); !slices.Equal(got, []string{v4 + "/10.0.0.10"}) {
		t.Errorf("port after the first was deleted: %v", got)
	}
	port(m{})
	status, body := a.do("POST", "/v2.0/ports", m{"port": m{"network_id": net}})
	if status != 409 || errorType(body) != "IpAddressGenerationFailure" || str(body["NeutronError"].(map[string]any), "message") != "No more IP addresses available on network "+net+"." {
		t.Errorf("port on an exhausted pool: %d %v", status, body)
	}
	// A port may have no address.
	if got := addresses(port(m{"fixed_ips": []any{}})); len(got) != 0 {
		t.Errorf("port with fixed_ips []: %v", got)
	}

	// A SLAAC subnet gives every port (but router interfaces) its EUI-64
	// address, also the ports that were there before it.
	iface := port(m{"device_owner": "network:router_interface", "fixed_ips": []any{}})
	v6 := str(a.must(201, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": net, "ip_version": 6, "cidr": "fd00:1::/64",
		"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}, "subnet"), "id")
	p2 = a.must(200, "GET", "/v2.0/ports/"+str(p2, "id"), nil, "port")
	if got, want := addresses(p2), sortedStrings([]string{v4 + "/10.0.0.11", v6 + "/" + eui(t, "fd00:1::/64", str(p2, "mac_address"))}...); !slices.Equal(got, want) {
		t.Errorf("existing port after a SLAAC subnet: %v, want %v", got, want)
	}
	if got := addresses(a.must(200, "GET", "/v2.0/ports/"+str(iface, "id"), nil, "port")); len(got) != 0 {
		t.Errorf("router interface after a SLAAC subnet: %v", got)
	}
	p4 := port(m{"fixed_ips": []any{m{"subnet_id": v6}}})
	if got, want := addresses(p4), sortedStrings([]string{v6 + "/" + eui(t, "fd00:1::/64", str(p4, "mac_address"))}...); !slices.Equal(got, want) {
		t.Errorf("port asking for the SLAAC subnet: %v, want %v", got, want)
	}

	// Updates: a new address replaces the old; the SLAAC address stays.
	p2 = a.must(200, "PUT", "/v2.0/ports/"+str(p2, "id"), m{"port": m{"fixed_ips": []any{m{"ip_address": "10.0.0.201"}}}}, "port")
	if got, want := addresses(p2), sortedStrings([]string{v4 + "/10.0.0.201", v6 + "/" + eui(t, "fd00:1::/64", str(p2, "mac_address"))}...); !slices.Equal(got, want) {
		t.Errorf("port after an address change: %v, want %v", got, want)
	}
	// A new MAC moves the SLAAC address.
	p2 = a.must(200, "PUT", "/v2.0/ports/"+str(p2, "id"), m{"port": m{"mac_address": "fa:16:3e:00:00:42"}}, "port")
	if got, want := addresses(p2), sortedStrings([]string{v4 + "/10.0.0.201", v6 + "/" + eui(t, "fd00:1::/64", "fa:16:3e:00:00:42")}...); !slices.Equal(got, want) {
		t.Errorf("port after a MAC change: %v, want %v", got, want)
	}
	// The old address is free again.
	if got := addresses(port(m{"fixed_ips": []any{m{"ip_address": "10.0.0.11"}}})); !slices.Contains(got, v4+"/10.0.0.11") {
		t.Errorf("address freed by the update: %v", got)
	}

	// Deleting a SLAAC subnet takes the SLAAC addresses away; an IPv4
	// subnet with ports cannot be deleted.
	a.must(204, "DELETE", "/v2.0/subnets/"+v6, nil, "")
	if got := addresses(a.must(200, "GET", "/v2.0/ports/"+str(p2, "id"), nil, "port")); !slices.Equal(got, []string{v4 + "/10.0.0.201"}) {
		t.Errorf("port after its SLAAC subnet was deleted: %v", got)
	}
	if status, body := a.do("DELETE", "/v2.0/subnets/"+v4, nil); status != 409 || errorType(body) != "SubnetInUse" {
		t.Errorf("delete a subnet with ports: %d %v", status, body)
	}

	// Stateful DHCPv6 subnets give one address from their pool.
	v6s := str(a.must(201, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": net, "ip_version": 6, "cidr": "fd00:2::/64",
		"ipv6_ra_mode": "dhcpv6-stateful", "ipv6_address_mode": "dhcpv6-stateful"}}, "subnet"), "id")
	p5 := port(m{"fixed_ips": []any{m{"subnet_id": v6s}}})
	if got := addresses(p5); !slices.Equal(got, []string{v6s + "/fd00:2::1"}) {
		t.Errorf("port on a stateful DHCPv6 subnet: %v", got)
	}
}

// A subnet with service types serves only ports of those owners (others
// take the subnets without): e.g. floating IPs from a dedicated range.
func TestSubnetServiceTypes(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	a := admin(t, ts)
	type m = map[string]any
	ext := str(a.must(201, "POST", "/v2.0/networks", m{"network": m{"name": "ext", "router:external": true}}, "network"), "id")
	fips := str(a.must(201, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": ext, "ip_version": 4, "cidr": "203.0.113.0/24",
		"service_types": []any{"network:floatingip"}}}, "subnet"), "id")
	gws := str(a.must(201, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": ext, "ip_version": 4, "cidr": "198.51.100.0/24"}}, "subnet"), "id")
	f := a.must(201, "POST", "/v2.0/floatingips", m{"floatingip": m{"floating_network_id": ext}}, "floatingip")
	if str(f, "floating_ip_address") != "203.0.113.2" {
		t.Errorf("floating IP %v, want the first of its service subnet", f["floating_ip_address"])
	}
	r := a.must(201, "POST", "/v2.0/routers", m{"router": m{"external_gateway_info": m{"network_id": ext}}}, "router")
	ips := r["external_gateway_info"].(map[string]any)["external_fixed_ips"].([]any)
	if len(ips) != 1 || str(ips[0].(map[string]any), "subnet_id") != gws {
		t.Errorf("gateway addresses %v, want one of subnet %s (not %s)", ips, gws, fips)
	}
}

// An IPv6 subnet added to a router that has an IPv6 port on the network
// goes on that port (Neutron's multi-prefix router ports).
func TestIPv6InterfacesShareAPort(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	a := admin(t, ts)
	type m = map[string]any
	net := str(a.must(201, "POST", "/v2.0/networks", m{"network": m{"name": "n"}}, "network"), "id")
	var subs []string
	for _, cidr := range []string{"fd00:1::/64", "fd00:2::/64"} {
		subs = append(subs, str(a.must(201, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": net, "ip_version": 6, "cidr": cidr,
			"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}, "subnet"), "id"))
	}
	r := str(a.must(201, "POST", "/v2.0/routers", m{"router": m{"name": "r"}}, "router"), "id")
	first := a.must(200, "PUT", "/v2.0/routers/"+r+"/add_router_interface", m{"subnet_id": subs[0]}, "")
	second := a.must(200, "PUT", "/v2.0/routers/"+r+"/add_router_interface", m{"subnet_id": subs[1]}, "")
	if str(first, "port_id") != str(second, "port_id") {
		t.Fatalf("the second IPv6 subnet got port %s, not the router's IPv6 port %s", second["port_id"], first["port_id"])
	}
	p := a.must(200, "GET", "/v2.0/ports/"+str(first, "port_id"), nil, "port")
	want := []string{subs[0] + "/fd00:1::", subs[1] + "/fd00:2::"}
	slices.Sort(want)
	if got := addresses(p); !slices.Equal(got, want) {
		t.Errorf("router port: %v, want %v", got, want)
	}
	// Removing one subnet keeps the port with the other.
	a.must(200, "PUT", "/v2.0/routers/"+r+"/remove_router_interface", m{"subnet_id": subs[0]}, "")
	p = a.must(200, "GET", "/v2.0/ports/"+str(first, "port_id"), nil, "port")
	if got := addresses(p); !slices.Equal(got, []string{subs[1] + "/fd00:2::"}) {
		t.Errorf("router port after removing a subnet: %v", got)
	}
}
