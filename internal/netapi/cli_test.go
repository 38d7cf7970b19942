package netapi

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// osc runs the openstack CLI (python3-openstackclient) against the API in
// no-auth mode, with an empty home so no clouds.yaml interferes.
type osc struct {
	t        *testing.T
	endpoint string
	home     string
}

func newOSC(t *testing.T, url string) osc {
	t.Helper()
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is required (scripts/test.sh installs python3-openstackclient): %v", err)
	}
	return osc{t: t, endpoint: url + "/", home: t.TempDir()}
}

// run runs the CLI; it returns stdout, stderr and whether it succeeded.
func (o osc) run(args ...string) ([]byte, string, bool) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(o.t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openstack", args...)
	cmd.Dir = o.home
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OS_") }),
		"HOME="+o.home, "OS_AUTH_TYPE=none", "OS_ENDPOINT="+o.endpoint)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		o.t.Fatalf("openstack %s: %v", strings.Join(args, " "), ctx.Err())
	}
	return stdout.Bytes(), stderr.String(), err == nil
}

// must runs the CLI, which must succeed.
func (o osc) must(args ...string) []byte {
	o.t.Helper()
	out, stderr, ok := o.run(args...)
	if !ok {
		o.t.Fatalf("openstack %s failed: %s", strings.Join(args, " "), stderr)
	}
	return out
}

// json runs a command with -f json and decodes its output into v.
func (o osc) json(v any, args ...string) {
	o.t.Helper()
	out := o.must(append(args, "-f", "json")...)
	if err := json.Unmarshal(out, v); err != nil {
		o.t.Fatalf("openstack %s: output %q: %v", strings.Join(args, " "), out, err)
	}
}

// fails runs a command that must fail with a message containing want.
func (o osc) fails(want string, args ...string) {
	o.t.Helper()
	if _, stderr, ok := o.run(args...); ok || !strings.Contains(stderr, want) {
		o.t.Errorf("openstack %s: ok=%v, stderr %q; want a failure with %q", strings.Join(args, " "), ok, stderr, want)
	}
}

type m = map[string]any

// The openstack CLI of Debian 12 (python3-openstackclient 6.0, no auth:
// OS_AUTH_TYPE=none and OS_ENDPOINT) manages networks, subnets, routers,
// ports and floating IPs on the embedded API.
func TestOpenstackCLI(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	o := newOSC(t, ts.URL)

	var ext, extSub, net, sub4, sub6, router, vm, fip m
	o.json(&ext, "network", "create", "--external", "--provider-network-type", "flat", "--provider-physical-network", "external", "public")
	if ext["router:external"] != true || ext["provider:network_type"] != "flat" || ext["status"] != "ACTIVE" {
		t.Errorf("network create --external: %v", ext)
	}
	o.json(&extSub, "subnet", "create", "--network", "public", "--subnet-range", "203.0.113.0/24", "--no-dhcp",
		"--allocation-pool", "start=203.0.113.10,end=203.0.113.20", "public-v4")
	if !jsonEqual(extSub["allocation_pools"], []any{m{"start": "203.0.113.10", "end": "203.0.113.20"}}) || extSub["enable_dhcp"] != false {
		t.Errorf("subnet create on the external network: %v", extSub)
	}
	o.json(&net, "network", "create", "net1")
	o.json(&sub4, "subnet", "create", "--network", "net1", "--subnet-range", "10.0.0.0/24", "--dns-nameserver", "192.0.2.53",
		"--host-route", "destination=10.9.0.0/16,gateway=10.0.0.254", "net1-v4")
	if sub4["gateway_ip"] != "10.0.0.1" || !jsonEqual(sub4["dns_nameservers"], []any{"192.0.2.53"}) ||
		!jsonEqual(sub4["host_routes"], []any{m{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}}) {
		t.Errorf("subnet create: %v", sub4)
	}
	o.json(&sub6, "subnet", "create", "--network", "net1", "--ip-version", "6", "--ipv6-ra-mode", "slaac",
		"--ipv6-address-mode", "slaac", "--subnet-range", "fd00:1::/64", "net1-v6")
	if sub6["ipv6_address_mode"] != "slaac" || sub6["gateway_ip"] != "fd00:1::" {
		t.Errorf("IPv6 subnet create: %v", sub6)
	}
	o.fails("overlaps with another subnet", "subnet", "create", "--network", "net1", "--subnet-range", "10.0.0.0/16", "bad")

	o.json(&router, "router", "create", "r1")
	o.must("router", "set", "--external-gateway", "public", "r1")
	o.must("router", "add", "subnet", "r1", "net1-v4")
	o.must("router", "add", "subnet", "r1", "net1-v6")
	o.json(&router, "router", "show", "r1")
	gw, _ := router["external_gateway_info"].(map[string]any)
	if gw == nil || gw["network_id"] != ext["id"] || router["status"] != "ACTIVE" {
		t.Errorf("router show: %v", router)
	}
	var interfaces []m
	o.json(&interfaces, "port", "list", "--router", "r1", "--device-owner", "network:router_interface")
	var addrs []string
	for _, p := range interfaces {
		for _, f := range p["Fixed IP Addresses"].([]any) {
			addrs = append(addrs, f.(map[string]any)["ip_address"].(string))
		}
	}
	if slices.Sort(addrs); !slices.Equal(addrs, []string{"10.0.0.1", "fd00:1::"}) {
		t.Errorf("router interfaces have %v, want the subnets' gateways", addrs)
	}

	o.json(&vm, "port", "create", "--network", "net1", "--device-owner", "compute:nova",
		"--device", "11111111-2222-3333-4444-555555555555", "vm1")
	mac, _ := vm["mac_address"].(string)
	wantIPs := []any{m{"subnet_id": sub4["id"], "ip_address": "10.0.0.2"}, m{"subnet_id": sub6["id"], "ip_address": eui(t, "fd00:1::/64", mac)}}
	if !strings.HasPrefix(mac, "fa:16:3e:") || !jsonEqual(vm["fixed_ips"], wantIPs) {
		t.Errorf("port create: mac %q, fixed_ips %v; want %v", mac, vm["fixed_ips"], wantIPs)
	}

	o.json(&fip, "floating", "ip", "create", "public")
	o.must("floating", "ip", "set", "--port", "vm1", fip["id"].(string))
	o.json(&fip, "floating", "ip", "show", fip["id"].(string))
	if fip["router_id"] != router["id"] || fip["fixed_ip_address"] != "10.0.0.2" || fip["port_id"] != vm["id"] {
		t.Errorf("floating ip set --port: %v", fip)
	}
	o.fails("required by one or more floating IPs", "router", "remove", "subnet", "r1", "net1-v4")

	o.must("router", "set", "--tag", "astara:state=ACTIVE", "r1")
	o.json(&router, "router", "show", "r1")
	if !jsonEqual(router["tags"], []any{"astara:state=ACTIVE"}) {
		t.Errorf("router set --tag: tags %v", router["tags"])
	}
	o.fails("There are one or more ports still in use on the network", "network", "delete", "net1")

	o.must("floating", "ip", "unset", "--port", fip["id"].(string))
	o.must("floating", "ip", "delete", fip["id"].(string))
	o.must("port", "delete", "vm1")
	o.must("router", "remove", "subnet", "r1", "net1-v4")
	o.must("router", "remove", "subnet", "r1", "net1-v6")
	o.must("router", "unset", "--external-gateway", "r1")
	o.must("router", "delete", "r1")
	o.must("network", "delete", "net1")
	o.must("subnet", "delete", "public-v4")
	o.must("network", "delete", "public")
	var left []m
	o.json(&left, "port", "list")
	if len(left) != 0 {
		t.Errorf("ports left: %v", left)
	}
}
