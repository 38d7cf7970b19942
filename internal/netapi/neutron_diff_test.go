package netapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/astara-go/astara/internal/testutil/neutrontest"
)

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// side is one API under comparison, with the ids its objects got.
type side struct {
	url  string
	ids  map[string]string
	hdrs map[string]http.Header
}

func (s *side) req(t *testing.T, who, method, path, body string) (int, map[string]any, string) {
	for k, v := range s.ids {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
		body = strings.ReplaceAll(body, "{"+k+"}", v)
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.url+path, r)
	req.Header = s.hdrs[who].Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(data, &out)
	return resp.StatusCode, out, string(data)
}

// TestSameAnswersAsNeutron sends the same requests (an L3 scenario, then
// refused and odd ones) to the embedded API and to a real Neutron server
// in headers mode (ASTARA_NEUTRON_URL, ASTARA_NEUTRON_AUTH=headers, as
// scripts/neutron.sh starts it), and compares the answers: statuses, error
// types and messages (ids aside), the shapes of bodies and the values that
// do not depend on ids or on which free address is picked.
func TestSameAnswersAsNeutron(t *testing.T) {
	n := neutrontest.FindHeaders(t)
	url := n.URL
	_, ts := newTestServer(t, Config{})
	pa, pb := "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	// Some deletes are refused on both sides, as the test wants: the
	// server keeps nothing of the test's all the same.
	neutrontest.CleanupProjects(t, n, pa, pb, "adadadadadadadadadadadadadadadad")
	hdrs := map[string]http.Header{
		"admin": {"X-User-Id": {"adm"}, "X-Project-Id": {"adadadadadadadadadadadadadadadad"}, "X-Roles": {"admin,member,reader"}},
		"a":     {"X-User-Id": {"ua"}, "X-Project-Id": {pa}, "X-Roles": {"member,reader"}},
		"b":     {"X-User-Id": {"ub"}, "X-Project-Id": {pb}, "X-Roles": {"member,reader"}},
	}
	emb := &side{ts.URL, map[string]string{}, hdrs}
	real := &side{url, map[string]string{}, hdrs}
	type step struct{ who, method, path, body, save string }
	steps := []step{
		{"admin", "POST", "/v2.0/networks", `{"network": {"name": "d-ext", "router:external": true}}`, "network:ext"},
		{"admin", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{ext}", "ip_version": 4, "cidr": "203.0.113.0/24", "enable_dhcp": false, "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.50"}]}}`, "subnet:extsub"},
		{"a", "POST", "/v2.0/networks", `{"network": {"name": "d-net"}}`, "network:net"},
		{"a", "GET", "/v2.0/networks/{net}", ``, ""},
		{"admin", "GET", "/v2.0/networks/{net}", ``, ""},
		{"a", "PUT", "/v2.0/networks/{net}", `{"network": {"description": "x"}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "ip_version": 4, "cidr": "10.70.0.0/24"}}`, "subnet:sub4"},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "ip_version": 6, "cidr": "fd00:70::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}`, "subnet:sub6"},
		{"a", "PUT", "/v2.0/subnets/{sub4}", `{"subnet": {"dns_nameservers": ["192.0.2.53"]}}`, ""},
		{"a", "POST", "/v2.0/routers", `{"router": {"name": "d-r"}}`, "router:router"},
		{"a", "GET", "/v2.0/routers/{router}", ``, ""},
		{"admin", "GET", "/v2.0/routers/{router}", ``, ""},
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"external_gateway_info": {"network_id": "{ext}"}}}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{"subnet_id": "{sub4}"}`, ":iface"},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{"subnet_id": "{sub6}"}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "name": "vm", "device_owner": "compute:nova", "device_id": "11111111-2222-3333-4444-555555555555"}}`, "port:port"},
		{"a", "GET", "/v2.0/ports/{port}", ``, ""},
		{"admin", "GET", "/v2.0/ports/{port}", ``, ""},
		{"a", "PUT", "/v2.0/ports/{port}", `{"port": {"name": "vm2"}}`, ""},
		{"a", "POST", "/v2.0/floatingips", `{"floatingip": {"floating_network_id": "{ext}", "port_id": "{port}"}}`, "floatingip:fip"},
		{"a", "GET", "/v2.0/floatingips/{fip}", ``, ""},
		{"a", "PUT", "/v2.0/floatingips/{fip}", `{"floatingip": {"port_id": null}}`, ""},
		{"admin", "GET", "/v2.0/ports?device_id={router}&fields=id&fields=device_owner", ``, ""},
		{"a", "GET", "/v2.0/ports?device_id={router}", ``, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"name": "x", "colour": "blue"}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"admin_state_up": "maybe"}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"name": 42}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"status": "DOWN"}}`, ""},
		{"a", "PUT", "/v2.0/networks/{net}", `{"network": {"tenant_id": "x"}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": `, ""},
		{"a", "POST", "/v2.0/networks", ``, ""},
		{"a", "POST", "/v2.0/networks", `{"networks": [{"name": "a"}]}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"router:external": true}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"shared": true}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"project_id": "{x}zzz"}}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"mtu": 9000}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24"}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 5}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "ip_version": 4}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.70.0.0/16", "ip_version": 4}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 4, "allocation_pools": [{"start": "10.71.0.10", "end": "10.71.1.10"}]}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 4, "allocation_pools": [{"start": "10.71.0.1", "end": "10.71.0.10"}]}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 4, "allocation_pools": [{"start": "10.71.0.10", "end": "10.71.0.20"}, {"start": "10.71.0.15", "end": "10.71.0.30"}]}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 4, "dns_nameservers": ["192.0.2.1", "192.0.2.1"]}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 4, "gateway_ip": "10.71.0.255"}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "fd00:71::/64", "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "fd00:71::/80", "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}`, ""},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net}", "cidr": "10.71.0.0/24", "ip_version": 4, "host_routes": [{"destination": "10.8.0.1", "nexthop": "10.71.0.1"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"name": "x"}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "abc"}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "mac_address": "zz:16:3e:00:00:01"}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": "10.70.0.9"}, {"ip_address": "10.70.0.9"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": "10.70.0.9"}, {"ip_address": "10.70.0.1"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": "fd00:70::9"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "fixed_ips": [{"subnet_id": "{sub4}", "ip_address": "10.70.0.0"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": "10.99.0.9"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "port_security_enabled": false, "security_groups": ["2c4158ce-edb7-4211-bd6e-78de38208a81"]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "port_security_enabled": false, "allowed_address_pairs": [{"ip_address": "10.70.0.99"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "binding:vnic_type": "fancy"}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}", "binding:host_id": "h"}}`, ""},
		{"a", "DELETE", "/v2.0/ports/{iface}", ``, ""},
		{"a", "DELETE", "/v2.0/networks/{net}", ``, ""},
		{"a", "DELETE", "/v2.0/subnets/{sub4}", ``, ""},
		{"a", "DELETE", "/v2.0/routers/{router}", ``, ""},
		{"a", "PUT", "/v2.0/subnets/{sub4}", `{"subnet": {"gateway_ip": "10.70.0.254"}}`, ""},
		{"a", "GET", "/v2.0/networks/00000000-0000-4000-8000-000000000000", ``, ""},
		{"a", "GET", "/v2.0/routers/00000000-0000-4000-8000-000000000000", ``, ""},
		{"a", "GET", "/v2.0/ports/00000000-0000-4000-8000-000000000000", ``, ""},
		{"a", "GET", "/v2.0/subnets/00000000-0000-4000-8000-000000000000", ``, ""},
		{"a", "GET", "/v2.0/floatingips/00000000-0000-4000-8000-000000000000", ``, ""},
		{"a", "DELETE", "/v2.0/routers/00000000-0000-4000-8000-000000000000", ``, ""},
		{"a", "GET", "/v2.0/widgets", ``, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{"subnet_id": "x"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{"subnet_id": "{sub4}", "port_id": "{port}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{"subnet_id": "{sub4}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_router_interface", `{"port_id": "{iface}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/remove_router_interface", `{"subnet_id": "{extsub}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"routes": [{"destination": "10.8.0.0/16", "nexthop": "192.0.2.1"}]}}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"routes": [{"destination": "10.8.0.0/16", "nexthop": "10.70.0.1"}]}}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"routes": [{"destination": "10.8.0.0/16", "nexthop": "10.70.0.254"}]}}`, ""},
		// (A gateway on an internal network is refused by both, but Neutron
		// bumps the router's revision anyway: not compared.)
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"external_gateway_info": {"network_id": "{ext}", "enable_snat": false}}}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/tags/astara:state=ACTIVE", ``, ""},
		{"a", "GET", "/v2.0/routers/{router}/tags", ``, ""},
		{"a", "GET", "/v2.0/routers/{router}/tags/astara:state=ACTIVE", ``, ""},
		{"a", "PUT", "/v2.0/routers/{router}/tags", `{"tags": ["a", "b"]}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/tags", `{"tags": "a"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/tags", `{"tags": ["a", "a"]}`, ""},
		{"a", "DELETE", "/v2.0/routers/{router}/tags/zz", ``, ""},
		{"a", "GET", "/v2.0/routers/{router}/tags/zz", ``, ""},
		{"a", "GET", "/v2.0/ports?colour=blue", ``, ""},
		{"a", "GET", "/v2.0/ports?limit=-1", ``, ""},
		{"a", "GET", "/v2.0/ports?sort_key=colour&sort_dir=asc", ``, ""},
		{"a", "GET", "/v2.0/ports?sort_key=name", ``, ""},
		{"a", "GET", "/v2.0/ports?limit=1&name=vm2", ``, ""},
		{"a", "POST", "/v2.0/floatingips", `{"floatingip": {"floating_network_id": "{net}"}}`, ""},
		{"a", "POST", "/v2.0/floatingips", `{"floatingip": {"floating_network_id": "{ext}", "fixed_ip_address": "10.70.0.5"}}`, ""},
		{"a", "POST", "/v2.0/floatingips", `{"floatingip": {"floating_network_id": "{ext}", "port_id": "{iface}"}}`, ""},
		{"a", "POST", "/v2.0/floatingips", `{"floatingip": {"floating_network_id": "{ext}", "floating_ip_address": "203.0.113.44"}}`, ""},
		{"b", "PUT", "/v2.0/floatingips/{fip}", `{"floatingip": {"port_id": null}}`, ""},
		{"b", "GET", "/v2.0/networks/{net}", ``, ""},
		{"b", "PUT", "/v2.0/networks/{ext}", `{"network": {"name": "x"}}`, ""},
		{"b", "DELETE", "/v2.0/networks/{ext}", ``, ""},
		{"b", "GET", "/v2.0/subnets/{extsub}", ``, ""},
		{"b", "POST", "/v2.0/ports", `{"port": {"network_id": "{net}"}}`, ""},
		{"b", "POST", "/v2.0/ports", `{"port": {"network_id": "{ext}"}}`, "port:bport"},
		{"b", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{ext}", "ip_version": 4, "cidr": "10.72.0.0/24"}}`, ""},
		{"a", "GET", "/", ``, ""},
		{"a", "GET", "/v2.0/", ``, ""},
		{"a", "GET", "/v2.0/extensions/router", ``, ""},
		{"a", "POST", "/v2.0/networks", `{"networks": [{"name": "bulk1"}, {"name": "bulk2"}]}`, ""},
		{"a", "POST", "/v2.0/networks", `{"network": {"name": "d-net2"}}`, "network:net2"},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net2}", "ip_version": 6, "cidr": "fd00:72::/64", "ipv6_ra_mode": "dhcpv6-stateful", "ipv6_address_mode": "dhcpv6-stateful"}}`, "subnet:s62"},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net2}"}}`, "port:p2"},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net2}", "fixed_ips": []}}`, "port:p3"},
		{"a", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "{net2}", "ip_version": 4, "cidr": "10.73.0.0/24", "gateway_ip": null, "allocation_pools": [{"start": "10.73.0.1", "end": "10.73.0.3"}]}}`, "subnet:s42"},
		{"a", "GET", "/v2.0/ports/{p2}", ``, ""},
		{"a", "PUT", "/v2.0/ports/{p2}", `{"port": {"fixed_ips": [{"subnet_id": "{s42}"}]}}`, ""},
		{"a", "PUT", "/v2.0/ports/{p3}", `{"port": {"fixed_ips": [{"subnet_id": "{s42}", "ip_address": "10.73.0.3"}], "name": "p3"}}`, ""},
		{"a", "PUT", "/v2.0/ports/{p3}", `{"port": {"mac_address": "fa:16:3e:00:11:22"}}`, ""},
		{"admin", "PUT", "/v2.0/ports/{p3}", `{"port": {"mac_address": "fa:16:3e:00:11:22"}}`, ""},
		{"a", "PUT", "/v2.0/subnets/{s42}", `{"subnet": {"gateway_ip": "10.73.0.254"}}`, ""},
		{"a", "PUT", "/v2.0/subnets/{s42}", `{"subnet": {"gateway_ip": "10.73.0.2"}}`, ""},
		{"a", "PUT", "/v2.0/subnets/{s42}", `{"subnet": {"allocation_pools": [{"start": "10.73.0.10", "end": "10.73.0.20"}], "enable_dhcp": false, "host_routes": [{"destination": "10.8.0.0/16", "nexthop": "10.73.0.5"}]}}`, ""},
		{"a", "POST", "/v2.0/ports", `{"port": {"network_id": "{net2}", "fixed_ips": [{"subnet_id": "{s42}"}], "allowed_address_pairs": [{"ip_address": "10.73.0.99"}, {"ip_address": "10.74.0.0/24", "mac_address": "fa:16:3e:aa:bb:cc"}]}}`, ""},
		{"a", "GET", "/v2.0/ports?network_id={net2}&sort_key=name&sort_dir=desc&fields=name", ``, ""},
		{"a", "GET", "/v2.0/ports?network_id={net2}&limit=1&fields=id", ``, ""},
		{"a", "GET", "/v2.0/ports?network_id={net2}&fixed_ips=ip_address_substr=10.73", ``, ""},
		{"a", "GET", "/v2.0/subnets?network_id={net2}&ip_version=6", ``, ""},
		{"a", "GET", "/v2.0/networks?name=d-net2&fields=subnets&fields=mtu", ``, ""},
		{"admin", "GET", "/v2.0/networks/{net2}?fields=provider:network_type", ``, ""},
		{"a", "PUT", "/v2.0/routers/{router}/add_extraroutes", `{"router": {"routes": [{"destination": "10.9.0.0/16", "nexthop": "10.70.0.253"}]}}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/remove_extraroutes", `{"router": {"routes": [{"destination": "10.9.0.0/16", "nexthop": "10.70.0.253"}]}}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"name": "d-r2", "admin_state_up": false, "description": "d"}}`, ""},
		{"a", "PUT", "/v2.0/floatingips/{fip}", `{"floatingip": {"description": "d"}}`, ""},
		{"a", "PUT", "/v2.0/floatingips/{fip}", `{"floatingip": {"fixed_ip_address": "10.70.0.5"}}`, ""},
		{"a", "DELETE", "/v2.0/routers/{router}/tags", ``, ""},
		{"a", "PUT", "/v2.0/networks/{net2}/tags/x", ``, ""},
		{"a", "GET", "/v2.0/networks?tags=x", ``, ""},
		{"a", "GET", "/v2.0/networks?not-tags=x&name=d-net2", ``, ""},
		{"a", "DELETE", "/v2.0/subnets/{s62}", ``, ""},
		{"a", "DELETE", "/v2.0/ports/{p2}", ``, ""},
		{"a", "DELETE", "/v2.0/ports/{p3}", ``, ""},
		{"a", "GET", "/v2.0/extensions/nope", ``, ""},
		{"a", "GET", "/v2.0/networks/{net}/tags", ``, ""},
		{"a", "POST", "/v2.0/routers", `{"router": {"name": "r3", "external_gateway_info": {"network_id": "{ext}"}}}`, "router:r3"},
		{"a", "PUT", "/v2.0/routers/{r3}/add_router_interface", `{"subnet_id": "{s42}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{r3}/remove_router_interface", `{"subnet_id": "{s42}"}`, ""},
		{"admin", "PUT", "/v2.0/routers/{r3}", `{"router": {"external_gateway_info": {"network_id": "{ext}", "external_fixed_ips": [{"ip_address": "203.0.113.45"}]}}}`, ""},
		{"admin", "PUT", "/v2.0/routers/{r3}", `{"router": {"external_gateway_info": {"network_id": "{ext}", "enable_snat": false}}}`, ""},
		{"a", "DELETE", "/v2.0/routers/{r3}", ``, ""},
		{"a", "DELETE", "/v2.0/networks/{net2}", ``, ""},
		{"admin", "DELETE", "/v2.0/ports/{bport}", ``, ""},
		{"a", "DELETE", "/v2.0/floatingips/{fip}", ``, ""},
		{"a", "DELETE", "/v2.0/ports/{port}", ``, ""},
		{"a", "PUT", "/v2.0/routers/{router}/remove_router_interface", `{"subnet_id": "{sub4}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}/remove_router_interface", `{"subnet_id": "{sub6}"}`, ""},
		{"a", "PUT", "/v2.0/routers/{router}", `{"router": {"external_gateway_info": {}}}`, ""},
		{"a", "DELETE", "/v2.0/routers/{router}", ``, ""},
		{"a", "DELETE", "/v2.0/networks/{net}", ``, ""},
		{"admin", "DELETE", "/v2.0/networks/{ext}", ``, ""},
	}
	norm := func(s string) string { return uuidRE.ReplaceAllString(s, "<id>") }
	for i, st := range steps {
		es, eb, eraw := emb.req(t, st.who, st.method, st.path, st.body)
		rs, rb, rraw := real.req(t, st.who, st.method, st.path, st.body)
		label := fmt.Sprintf("#%d %s %s %s %s", i, st.who, st.method, st.path, st.body)
		if st.save != "" {
			kind, name, _ := strings.Cut(st.save, ":")
			if kind == "" {
				emb.ids[name], _ = eb["port_id"].(string)
				real.ids[name], _ = rb["port_id"].(string)
			} else {
				if o, ok := eb[kind].(map[string]any); ok {
					emb.ids[name], _ = o["id"].(string)
				}
				if o, ok := rb[kind].(map[string]any); ok {
					real.ids[name], _ = o["id"].(string)
				}
			}
		}
		if es != rs {
			t.Errorf("%s\n  status: embedded %d, neutron %d\n  embedded %s\n  neutron  %s", label, es, rs, norm(eraw), norm(rraw))
			continue
		}
		ee, _ := eb["NeutronError"].(map[string]any)
		re, _ := rb["NeutronError"].(map[string]any)
		if ee != nil || re != nil {
			if ee == nil || re == nil || ee["type"] != re["type"] || norm(fmt.Sprint(ee["message"])) != norm(fmt.Sprint(re["message"])) {
				t.Errorf("%s\n  error: embedded %s\n         neutron  %s", label, norm(eraw), norm(rraw))
			}
			continue
		}
		if eb != nil || rb != nil {
			if d := sameShape("body", any(eb), any(rb)); len(d) > 0 {
				t.Errorf("%s\n  shape: %s", label, strings.Join(d, "; "))
			}
			for _, d := range sameValues("body", any(eb), any(rb)) {
				t.Errorf("%s\n  value: %s", label, d)
			}
		}
	}
}

// compared are the attributes whose values must be the same on both sides.
var compared = map[string]bool{"revision_number": true, "status": true, "port_security_enabled": true, "mtu": true,
	"admin_state_up": true, "gateway_ip": true, "allocation_pools": true, "cidr": true, "enable_dhcp": true,
	"router:external": true, "shared": true, "description": true, "name": true, "tags": true, "routes": true,
	"host_routes": true, "dns_nameservers": true, "is_default": true, "binding:vif_type": true, "binding:vnic_type": true,
	"ipv6_ra_mode": true, "ipv6_address_mode": true, "enable_snat": true, "device_owner": true, "ip_version": true,
	"provider:network_type": true, "service_types": true, "allowed_address_pairs": true}

// sameValues compares the values of the compared attributes; lists of
// objects with ids are compared only when they hold one item, since they
// are ordered by id.
func sameValues(path string, got, want any) []string {
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				continue
			}
			if compared[k] {
				if k == "allowed_address_pairs" {
					continue
				}
				if !jsonEqual(gv, wv) {
					out = append(out, fmt.Sprintf("%s.%s = %v, neutron %v", path, k, gv, wv))
				}
				continue
			}
			out = append(out, sameValues(path+"."+k, gv, wv)...)
		}
	case []any:
		g, _ := got.([]any)
		if len(w) > 1 {
			if o, ok := w[0].(map[string]any); ok {
				if _, hasID := o["id"]; hasID {
					return nil
				}
			}
		}
		if len(g) == len(w) {
			for i := range w {
				out = append(out, sameValues(fmt.Sprintf("%s[%d]", path, i), g[i], w[i])...)
			}
		}
	}
	return out
}
