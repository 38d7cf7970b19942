package netapi

import (
	"net/http"
	"testing"
)

// What a project sees and may change follows Neutron's default policies:
// its own objects, shared and external networks (not their subnets unless
// shared), the ports on its networks; admin sees everything.
func TestVisibility(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	adm := admin(t, ts)
	const pa, pb = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	a, b := tenant(t, ts, pa), tenant(t, ts, pb)
	projectAdmin := client{t, ts.URL, http.Header{"X-Project-Id": {pb}, "X-Roles": {"admin,member"}}}

	tp := buildTopology(client{t, ts.URL, http.Header{}})
	// buildTopology's objects belong to p1; give project A its own.
	netA := str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "a"}}, "network"), "id")
	subA := str(a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": netA, "ip_version": 4, "cidr": "10.1.0.0/24"}}, "subnet"), "id")
	routerA := str(a.must(201, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "a", "external_gateway_info": map[string]any{"network_id": tp.ext}}}, "router"), "id")
	a.must(200, "PUT", "/v2.0/routers/"+routerA+"/add_router_interface", map[string]any{"subnet_id": subA}, "")
	portA := str(a.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netA}}, "port"), "id")
	fipA := str(a.must(201, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.ext, "port_id": portA}}, "floatingip"), "id")
	shared := str(adm.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "shared", "shared": true}}, "network"), "id")
	sharedSub := str(adm.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": shared, "ip_version": 4, "cidr": "10.2.0.0/24"}}, "subnet"), "id")
	sharedA := str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "a-shared"}}, "network"), "id")
	adm.must(200, "PUT", "/v2.0/networks/"+sharedA, map[string]any{"network": map[string]any{"shared": true}}, "network")
	a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": sharedA, "ip_version": 4, "cidr": "10.3.0.0/24"}}, "subnet")
	portBonA := str(b.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": sharedA}}, "port"), "id")

	type m = map[string]any
	for _, tc := range []struct {
		name   string
		c      client
		method string
		path   string
		body   any
		status int
	}{
		{"own network", a, "GET", "/v2.0/networks/" + netA, nil, 200},
		{"another project's network", b, "GET", "/v2.0/networks/" + netA, nil, 404},
		{"external network", b, "GET", "/v2.0/networks/" + tp.ext, nil, 200},
		{"subnet of the external network", b, "GET", "/v2.0/subnets/" + tp.extSubnet, nil, 404},
		{"shared network", b, "GET", "/v2.0/networks/" + shared, nil, 200},
		{"subnet of a shared network", b, "GET", "/v2.0/subnets/" + sharedSub, nil, 200},
		{"another project's router", b, "GET", "/v2.0/routers/" + routerA, nil, 404},
		{"another project's port", b, "GET", "/v2.0/ports/" + portA, nil, 404},
		{"another project's floating IP", b, "PUT", "/v2.0/floatingips/" + fipA, m{"floatingip": m{"port_id": nil}}, 404},
		{"the gateway port of its router", a, "GET", "/v2.0/ports?device_owner=network:router_gateway&device_id=" + routerA, nil, 200},
		{"a port on its network", a, "GET", "/v2.0/ports/" + portBonA, nil, 200},
		{"change a port on its network", a, "PUT", "/v2.0/ports/" + portBonA, m{"port": m{"name": "x"}}, 403},
		{"delete a port on its network", a, "DELETE", "/v2.0/ports/" + portBonA, nil, 204},
		{"update the external network", b, "PUT", "/v2.0/networks/" + tp.ext, m{"network": m{"name": "x"}}, 403},
		{"delete the external network", b, "DELETE", "/v2.0/networks/" + tp.ext, nil, 403},
		{"subnet on a shared network", b, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": shared, "ip_version": 4, "cidr": "10.9.0.0/24"}}, 403},
		{"port on a shared network", b, "POST", "/v2.0/ports", m{"port": m{"network_id": shared}}, 201},
		{"port on another project's network", b, "POST", "/v2.0/ports", m{"port": m{"network_id": netA}}, 404},
		{"port on the external network", b, "POST", "/v2.0/ports", m{"port": m{"network_id": tp.ext}}, 403},
		{"subnet on the external network", b, "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.ext, "ip_version": 4, "cidr": "10.9.0.0/24"}}, 403},
		{"change a network's project", a, "PUT", "/v2.0/networks/" + netA, m{"network": m{"tenant_id": pb}}, 400},
		{"shared network by a project", b, "POST", "/v2.0/networks", m{"network": m{"shared": true}}, 403},
		{"unshared network by a project", b, "POST", "/v2.0/networks", m{"network": m{"shared": false}}, 201},
		{"external network by a project", b, "POST", "/v2.0/networks", m{"network": m{"router:external": true}}, 403},
		{"provider network by a project", b, "POST", "/v2.0/networks", m{"network": m{"provider:network_type": "vxlan"}}, 403},
		{"object of another project", b, "POST", "/v2.0/networks", m{"network": m{"project_id": pa}}, 400},
		{"object of another project by admin", adm, "POST", "/v2.0/networks", m{"network": m{"project_id": pa}}, 201},
		{"port bound to a host by a project", a, "POST", "/v2.0/ports", m{"port": m{"network_id": netA, "binding:host_id": "h"}}, 403},
		{"router interface port of a router of another project", b, "POST", "/v2.0/ports", m{"port": m{"network_id": shared, "device_owner": "network:router_interface", "device_id": routerA}}, 403},
		{"gateway without SNAT by a project", a, "PUT", "/v2.0/routers/" + routerA, m{"router": m{"external_gateway_info": m{"network_id": tp.ext, "enable_snat": false}}}, 403},
		{"floating IP address by a project", a, "POST", "/v2.0/floatingips", m{"floatingip": m{"floating_network_id": tp.ext, "floating_ip_address": "203.0.113.77"}}, 403},
		{"interface on another project's subnet", b, "PUT", "/v2.0/routers/" + routerA + "/add_router_interface", m{"subnet_id": sharedSub}, 404},
		{"interface on a shared subnet", a, "PUT", "/v2.0/routers/" + routerA + "/add_router_interface", m{"subnet_id": sharedSub}, 400},
		{"tag another project's router", b, "PUT", "/v2.0/routers/" + routerA + "/tags/x", nil, 404},
		{"tag the external network", b, "PUT", "/v2.0/networks/" + tp.ext + "/tags/x", nil, 403},
		{"admin of a project", projectAdmin, "GET", "/v2.0/routers/" + routerA, nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := tc.c.do(tc.method, tc.path, tc.body); status != tc.status {
				t.Errorf("%d %v, want %d", status, body, tc.status)
			}
		})
	}

	// Lists hold only what the caller may see.
	for _, tc := range []struct {
		name  string
		c     client
		path  string
		key   string
		count int
	}{
		{"networks of project B", b, "/v2.0/networks", "networks", 4}, // ext, shared, a-shared, its own
		{"subnets of project B", b, "/v2.0/subnets", "subnets", 2},    // of the shared networks
		{"routers of project B", b, "/v2.0/routers", "routers", 0},
		{"floating IPs of project B", b, "/v2.0/floatingips", "floatingips", 0},
		{"ports of its router for project A", a, "/v2.0/ports?device_id=" + routerA, "ports", 1}, // the interface, not the gateway port
		{"ports of the router for admin", adm, "/v2.0/ports?device_id=" + routerA, "ports", 2},
	} {
		body := tc.c.must(200, "GET", tc.path, nil, "")
		if got := len(body[tc.key].([]any)); got != tc.count {
			t.Errorf("%s: %d, want %d: %v", tc.name, got, tc.count, body[tc.key])
		}
	}

	// Admin-only attributes are hidden from projects.
	for _, tc := range []struct {
		c      client
		path   string
		key    string
		hidden []string
	}{
		{a, "/v2.0/networks/" + netA, "network", []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id"}},
		{a, "/v2.0/ports/" + portA, "port", []string{"binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"}},
		{a, "/v2.0/routers/" + routerA, "router", []string{"distributed", "ha"}},
	} {
		o := tc.c.must(200, "GET", tc.path, nil, tc.key)
		for _, k := range tc.hidden {
			if _, ok := o[k]; ok {
				t.Errorf("%s: a project sees %s", tc.path, k)
			}
		}
		o = adm.must(200, "GET", tc.path, nil, tc.key)
		for _, k := range tc.hidden {
			if _, ok := o[k]; !ok {
				t.Errorf("%s: admin does not see %s", tc.path, k)
			}
		}
	}
}
