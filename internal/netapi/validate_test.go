package netapi

import (
	"strings"
	"testing"
)

// Every request body is validated as Neutron validates it; a refused
// request answers Neutron's status, error type and message, and changes
// nothing.
func TestValidation(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	a := admin(t, ts)
	tp := buildTopology(a)
	long := strings.Repeat("x", 256)
	vmMAC := str(a.must(200, "GET", "/v2.0/ports/"+tp.port, nil, "port"), "mac_address")
	dhcp := str(a.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": tp.net, "device_owner": "network:dhcp"}}, "port"), "id")
	type m = map[string]any
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		typ    string
		msg    string // a part of the message
	}{
		{"unknown attribute", "POST", "/v2.0/networks", m{"network": m{"name": "x", "colour": "blue"}}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"wrong type", "POST", "/v2.0/networks", m{"network": m{"admin_state_up": "maybe"}}, 400, "InvalidInput", "Invalid input for operation: 'maybe' cannot be converted to boolean."},
		{"not an integer", "POST", "/v2.0/networks", m{"network": m{"mtu": "big"}}, 400, "InvalidInput", "Invalid input for operation: 'big' is not an integer."},
		{"name too long", "POST", "/v2.0/networks", m{"network": m{"name": long}}, 400, "HTTPBadRequest", "exceeds maximum length of 255"},
		{"name not a string", "POST", "/v2.0/networks", m{"network": m{"name": 42}}, 400, "HTTPBadRequest", "Invalid input for name. Reason: '42' is not a valid string."},
		{"read-only attribute in POST", "POST", "/v2.0/networks", m{"network": m{"status": "DOWN"}}, 400, "HTTPBadRequest", "Attribute 'status' not allowed in POST"},
		{"read-only attribute in PUT", "PUT", "/v2.0/networks/" + tp.net, m{"network": m{"tenant_id": "p2"}}, 400, "HTTPBadRequest", "Cannot update read-only attribute tenant_id"},
		{"malformed JSON", "POST", "/v2.0/networks", `{"network": `, 400, "HTTPBadRequest", "Body contains invalid data"},
		{"empty body", "POST", "/v2.0/networks", "", 400, "HTTPBadRequest", "Unable to find 'network' in request body"},
		{"no resource", "POST", "/v2.0/networks", m{"netwerk": m{}}, 400, "HTTPBadRequest", "Unable to find 'network' in request body"},
		{"bulk with a bad object", "POST", "/v2.0/networks", m{"networks": []any{m{"name": "a"}, m{"colour": "blue"}}}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"bulk whose second object fails", "POST", "/v2.0/subnets", m{"subnets": []any{
			m{"network_id": tp.net, "ip_version": 4, "cidr": "10.9.0.0/24"},
			m{"network_id": tp.net, "ip_version": 4, "cidr": "10.9.0.0/25"}}}, 400, "InvalidInput", "overlaps with another subnet"},
		{"MTU above the overlay's", "POST", "/v2.0/networks", m{"network": m{"mtu": 9000}}, 400, "InvalidInput", "Requested MTU is too big, maximum is 1450"},
		{"VLAN without physnet", "POST", "/v2.0/networks", m{"network": m{"provider:network_type": "vlan", "provider:segmentation_id": 10}}, 400, "InvalidInput", "physical_network required"},
		{"unknown network type", "POST", "/v2.0/networks", m{"network": m{"provider:network_type": "gre"}}, 400, "InvalidInput", "network_type value 'gre' not supported"},
		{"flat network", "POST", "/v2.0/networks", m{"network": m{"provider:network_type": "flat", "provider:physical_network": "p"}}, 201, "", ""},
		{"project mismatch", "POST", "/v2.0/networks", m{"network": m{"tenant_id": "a", "project_id": "b"}}, 400, "HTTPBadRequest", "'project_id' and 'tenant_id' do not match"},
		{"subnet without ip_version", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24"}}, 400, "HTTPBadRequest", "Failed to parse request. Required attribute 'ip_version' not specified"},
		{"ip_version 5", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 5}}, 400, "HTTPBadRequest", "Invalid input for ip_version. Reason: 5 is not in valid_values."},
		{"bad CIDR", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/33", "ip_version": 4}}, 400, "InvalidInput", "Invalid input for operation: 10.9.0.0/33 is not in a CIDR format."},
		{"CIDR not a string", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": 10, "ip_version": 4}}, 400, "InvalidInput", "10 is not in a CIDR format."},
		{"route to a bare address", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "host_routes": []any{m{"destination": "10.8.0.1", "nexthop": "10.9.0.1"}}}}, 400, "HTTPBadRequest", "'10.8.0.1' is not a recognized CIDR, '10.8.0.1/32' is recommended"},
		{"no CIDR", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "ip_version": 4}}, 400, "BadRequest", "a subnetpool must be specified in the absence of a cidr"},
		{"/0", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "0.0.0.0/0", "ip_version": 4, "enable_dhcp": false}}, 400, "InvalidInput", "0 is not allowed as CIDR prefix length"},
		{"overlap", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.0.0.0/16", "ip_version": 4}}, 400, "InvalidInput", "overlaps with another subnet"},
		{"duplicate nameserver", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "dns_nameservers": []any{"192.0.2.1", "192.0.2.1"}}}, 400, "HTTPBadRequest", "Duplicate nameserver '192.0.2.1'"},
		{"too many nameservers", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "dns_nameservers": []any{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"}}}, 400, "DNSNameServersExhausted", "exceeds the limit 5"},
		{"gateway of the other family", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "gateway_ip": "fd00::1"}}, 400, "InvalidInput", "gateway_ip 'fd00::1' does not match the ip_version '4'"},
		{"gateway on the broadcast address", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "gateway_ip": "10.9.0.255"}}, 400, "InvalidInput", "Gateway is not valid on subnet"},
		{"overlapping pools", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4,
			"allocation_pools": []any{m{"start": "10.9.0.10", "end": "10.9.0.20"}, m{"start": "10.9.0.15", "end": "10.9.0.30"}}}}, 409, "OverlappingAllocationPools", "Found overlapping allocation pools"},
		{"pool not an object", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "allocation_pools": []any{"10.9.0.1"}}}, 400, "HTTPBadRequest", "allocation_pools"},
		{"IPv6 mode on IPv4", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "ipv6_ra_mode": "slaac"}}, 400, "InvalidInput", "ipv6_ra_mode is not valid when ip_version is 4"},
		{"IPv6 modes differ", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "fd09::/64", "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}}, 400, "InvalidInput", "they must be the same value"},
		{"IPv6 mode without DHCP", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "fd09::/64", "ip_version": 6, "ipv6_ra_mode": "slaac", "enable_dhcp": false}}, 400, "InvalidInput", "cannot be set when enable_dhcp is set to False"},
		{"unknown IPv6 mode", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "fd09::/64", "ip_version": 6, "ipv6_ra_mode": "dhcp"}}, 400, "HTTPBadRequest", "dhcp is not in valid_values"},
		{"host route via the other family", "POST", "/v2.0/subnets", m{"subnet": m{"network_id": tp.net, "cidr": "10.9.0.0/24", "ip_version": 4, "host_routes": []any{m{"destination": "10.8.0.0/16", "nexthop": "fd00::1"}}}}, 400, "InvalidInput", "nexthop 'fd00::1' does not match"},
		{"change a router's gateway IP", "PUT", "/v2.0/subnets/" + tp.v4, m{"subnet": m{"gateway_ip": "10.0.0.254"}}, 409, "GatewayIpInUse", "already in use by port " + tp.iface},
		{"port without network", "POST", "/v2.0/ports", m{"port": m{"name": "x"}}, 400, "HTTPBadRequest", "Required attribute 'network_id' not specified"},
		{"network id not a UUID", "POST", "/v2.0/ports", m{"port": m{"network_id": "abc"}}, 400, "HTTPBadRequest", "'abc' is not a valid UUID"},
		{"bad MAC", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "mac_address": "zz:16:3e:00:00:01"}}, 400, "HTTPBadRequest", "is not a valid MAC address"},
		{"MAC in use", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "mac_address": vmMAC}}, 409, "MacAddressInUse", "The mac address " + vmMAC + " is in use."},
		{"fixed_ips not a list", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "fixed_ips": "10.0.0.9"}}, 400, "HTTPBadRequest", "fixed_ips"},
		{"duplicate address", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "fixed_ips": []any{m{"ip_address": "10.0.0.9"}, m{"ip_address": "10.0.0.9"}}}}, 400, "HTTPBadRequest", "Duplicate IP address '10.0.0.9'"},
		{"second address taken", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "fixed_ips": []any{m{"ip_address": "10.0.0.9"}, m{"ip_address": "10.0.0.1"}}}}, 409, "IpAddressAlreadyAllocated", "IP address 10.0.0.1 already allocated in subnet " + tp.v4},
		{"address on a SLAAC subnet", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "fixed_ips": []any{m{"ip_address": "fd00::9"}}}}, 400, "AllocationOnAutoAddressSubnet", "configured for automatic addresses"},
		{"network address", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "fixed_ips": []any{m{"subnet_id": tp.v4, "ip_address": "10.0.0.0"}}}}, 400, "InvalidIpForSubnet", "IP address 10.0.0.0 is not a valid IP for the specified subnet."},
		{"security groups without port security", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "port_security_enabled": false, "security_groups": []any{"2c4158ce-edb7-4211-bd6e-78de38208a81"}}}, 400, "PortSecurityAndIPRequiredForSecurityGroups", "Port security must be enabled"},
		{"address pairs without port security", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "port_security_enabled": false, "allowed_address_pairs": []any{m{"ip_address": "10.0.0.99"}}}}, 409, "AddressPairAndPortSecurityRequired", "Port Security must be enabled"},
		{"unknown vnic type", "POST", "/v2.0/ports", m{"port": m{"network_id": tp.net, "binding:vnic_type": "fancy"}}, 400, "HTTPBadRequest", "fancy is not in valid_values"},
		{"delete a router interface port", "DELETE", "/v2.0/ports/" + tp.iface, nil, 409, "ServicePortInUse", "cannot be deleted directly via the port API: has device owner network:router_interface."},
		{"gateway on an internal network", "POST", "/v2.0/routers", m{"router": m{"external_gateway_info": m{"network_id": tp.net}}}, 400, "BadRequest", "Network " + tp.net + " is not an external network"},
		{"gateway info with an unknown key", "POST", "/v2.0/routers", m{"router": m{"external_gateway_info": m{"network_id": tp.ext, "colour": "blue"}}}, 400, "HTTPBadRequest", "external_gateway_info"},
		{"distributed router", "POST", "/v2.0/routers", m{"router": m{"distributed": true}}, 400, "BadRequest", "not supported"},
		{"routes in POST", "POST", "/v2.0/routers", m{"router": m{"routes": []any{}}}, 400, "HTTPBadRequest", "Attribute 'routes' not allowed in POST"},
		{"route via an unconnected hop", "PUT", "/v2.0/routers/" + tp.router, m{"router": m{"routes": []any{m{"destination": "10.8.0.0/16", "nexthop": "192.0.2.1"}}}}, 400, "InvalidRoutes", "the nexthop is not connected with router"},
		{"route to a CIDR with host bits", "PUT", "/v2.0/routers/" + tp.router, m{"router": m{"routes": []any{m{"destination": "10.8.0.1/16", "nexthop": "10.0.0.5"}}}}, 400, "HTTPBadRequest", "'10.8.0.1/16' is not a recognized CIDR, '10.8.0.0/16' is recommended"},
		{"route via the router itself", "PUT", "/v2.0/routers/" + tp.router, m{"router": m{"routes": []any{m{"destination": "10.8.0.0/16", "nexthop": "10.0.0.1"}}}}, 400, "InvalidRoutes", "the nexthop is used by router"},
		{"interface by subnet and port", "PUT", "/v2.0/routers/" + tp.router + "/add_router_interface", m{"subnet_id": tp.v6, "port_id": tp.port}, 400, "BadRequest", "Cannot specify both subnet-id and port-id"},
		{"interface by nothing", "PUT", "/v2.0/routers/" + tp.router + "/add_router_interface", m{}, 400, "BadRequest", "Either subnet_id or port_id must be specified"},
		{"interface by a bad id", "PUT", "/v2.0/routers/" + tp.router + "/add_router_interface", m{"subnet_id": "x"}, 400, "BadRequest", "'x' is not a valid UUID"},
		{"interface on a port in use", "PUT", "/v2.0/routers/" + tp.router + "/add_router_interface", m{"port_id": tp.iface}, 409, "PortInUse", "Port already has an attached device " + tp.router},
		{"floating IP on an internal network", "POST", "/v2.0/floatingips", m{"floatingip": m{"floating_network_id": tp.net}}, 400, "BadRequest", "is not a valid external network"},
		{"fixed address without a port", "POST", "/v2.0/floatingips", m{"floatingip": m{"floating_network_id": tp.ext, "fixed_ip_address": "10.0.0.5"}}, 400, "BadRequest", "fixed_ip_address cannot be specified without a port_id"},
		{"floating IP for a DHCP port", "POST", "/v2.0/floatingips", m{"floatingip": m{"floating_network_id": tp.ext, "port_id": dhcp}}, 400, "BadRequest", "is unable to be assigned a floating IP"},
		{"tags not a list", "PUT", "/v2.0/routers/" + tp.router + "/tags", m{"tags": "a"}, 400, "InvalidInput", "is not a list"},
		{"duplicate tags", "PUT", "/v2.0/routers/" + tp.router + "/tags", m{"tags": []any{"a", "a"}}, 400, "InvalidInput", "Duplicate items in the list: 'a'"},
		{"tag too long", "PUT", "/v2.0/routers/" + tp.router + "/tags/" + long, nil, 400, "InvalidInput", "exceeds maximum length of 255"},
		{"tags of an unknown collection", "GET", "/v2.0/widgets/" + tp.router + "/tags", nil, 404, "HTTPNotFound", "The resource could not be found."},
		{"unknown path", "GET", "/v2.0/widgets", nil, 404, "HTTPNotFound", "The resource could not be found."},
		{"unknown filter", "GET", "/v2.0/ports?colour=blue", nil, 400, "HTTPBadRequest", "['colour'] is invalid attribute for filtering"},
		{"bad limit", "GET", "/v2.0/ports?limit=-1", nil, 400, "BadRequest", "Limit must be an integer 0 or greater and not '-1'"},
		{"unknown sort key", "GET", "/v2.0/ports?sort_key=colour&sort_dir=asc", nil, 400, "HTTPBadRequest", "is invalid attribute for sort_keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := listsSnapshot(a)
			status, body := a.do(tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%d %v, want %d", status, body, tc.status)
			}
			if tc.status < 400 {
				return
			}
			e, _ := body["NeutronError"].(map[string]any)
			if e["type"] != tc.typ || !strings.Contains(str(e, "message"), tc.msg) || e["detail"] != "" {
				t.Errorf("NeutronError %v, want type %s and a message with %q", e, tc.typ, tc.msg)
			}
			if after := listsSnapshot(a); after != before {
				t.Errorf("the refused request changed the objects")
			}
		})
	}
	// The address of the refused port's first fixed IP is still free.
	p := a.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": tp.net, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.9"}}}}, "port")
	if ips := p["fixed_ips"].([]any); ips[0].(map[string]any)["ip_address"] != "10.0.0.9" {
		t.Errorf("10.0.0.9 after a refused request: %v", ips)
	}
}

// A revision_number If-Match that does not hold refuses the update (412).
func TestIfMatch(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	a := admin(t, ts)
	n := a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}}, "network")
	rev := int(n["revision_number"].(float64))
	for _, tc := range []struct {
		ifMatch string
		status  int
	}{{"revision_number=99", 412}, {"revision_number=x", 400}, {"revision_number=" + itoa(rev), 200}} {
		c := a
		c.hdr = c.hdr.Clone()
		c.hdr.Set("If-Match", tc.ifMatch)
		if status, body := c.do("PUT", "/v2.0/networks/"+str(n, "id"), map[string]any{"network": map[string]any{"name": "m"}}); status != tc.status {
			t.Errorf("If-Match %s: %d %v, want %d", tc.ifMatch, status, body, tc.status)
		}
	}
}
