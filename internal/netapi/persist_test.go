package netapi

import (
	"encoding/json"
	"testing"
)

// listsSnapshot returns every list of the API, as admin sees them.
func listsSnapshot(c client) string {
	c.t.Helper()
	out := ""
	for _, coll := range []string{"networks", "subnets", "ports", "routers", "floatingips"} {
		body := c.must(200, "GET", "/v2.0/"+coll, nil, "")
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		out += string(b) + "\n"
	}
	return out
}

// topo is a small L3 topology of project p1: an external network, a
// network with an IPv4 and a SLAAC subnet, a router with a gateway and an
// IPv4 interface, a VM port with a floating IP, a tagged router.
type topo struct {
	ext, extSubnet, net, v4, v6, router, iface, port, fip string
}

func buildTopology(a client) topo {
	var tp topo
	tp.ext = str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "ext", "router:external": true}}, "network"), "id")
	tp.extSubnet = str(a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": tp.ext, "ip_version": 4, "cidr": "203.0.113.0/24"}}, "subnet"), "id")
	tp.net = str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n", "project_id": "p1"}}, "network"), "id")
	tp.v4 = str(a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": tp.net, "ip_version": 4, "cidr": "10.0.0.0/24", "project_id": "p1"}}, "subnet"), "id")
	tp.v6 = str(a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": tp.net, "ip_version": 6, "cidr": "fd00::/64",
		"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac", "project_id": "p1"}}, "subnet"), "id")
	tp.router = str(a.must(201, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r", "project_id": "p1",
		"external_gateway_info": map[string]any{"network_id": tp.ext}}}, "router"), "id")
	tp.iface = str(a.must(200, "PUT", "/v2.0/routers/"+tp.router+"/add_router_interface", map[string]any{"subnet_id": tp.v4}, ""), "port_id")
	tp.port = str(a.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": tp.net, "project_id": "p1", "name": "vm"}}, "port"), "id")
	tp.fip = str(a.must(201, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.ext, "port_id": tp.port, "project_id": "p1"}}, "floatingip"), "id")
	a.must(201, "PUT", "/v2.0/routers/"+tp.router+"/tags/astara:state=ACTIVE", nil, "")
	a.must(200, "PUT", "/v2.0/ports/"+tp.port, map[string]any{"port": map[string]any{"name": "vm-renamed"}}, "port")
	return tp
}

// A restarted server serves the same objects: ids, MACs, addresses,
// revision numbers, timestamps, tags; and allocates after them.
func TestRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{StateDir: dir, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptestServe(t, s)
	a := admin(t, ts)
	buildTopology(a)
	before := listsSnapshot(a)
	ts.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(Config{StateDir: dir, Host: "h"})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Shutdown(t.Context()) })
	a2 := admin(t, httptestServe(t, s2))
	if after := listsSnapshot(a2); after != before {
		t.Errorf("after a restart:\n%s\nbefore:\n%s", after, before)
	}
	// The allocations were kept: the next port gets the next address and
	// another MAC.
	nets := a2.must(200, "GET", "/v2.0/networks?name=n", nil, "")["networks"].([]any)
	net := nets[0].(map[string]any)["id"].(string)
	p := a2.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net}}, "port")
	ips := p["fixed_ips"].([]any)
	if ip := ips[0].(map[string]any)["ip_address"]; ip != "10.0.0.3" {
		t.Errorf("new port after restart got %v, want 10.0.0.3 (.1 router, .2 vm)", ip)
	}
	ports := a2.must(200, "GET", "/v2.0/ports?mac_address="+str(p, "mac_address"), nil, "")["ports"].([]any)
	if len(ports) != 1 {
		t.Errorf("MAC %s is on %d ports", str(p, "mac_address"), len(ports))
	}
}

// Open needs a state directory.
func TestOpenNeedsAStateDirectory(t *testing.T) {
	if _, err := Open(Config{Host: "h"}); err == nil {
		t.Errorf("Open with no state directory succeeded")
	}
}
