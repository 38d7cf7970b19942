package model

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wantExample is testdata/example_config.json as a Document.
func wantExample() *Document {
	return &Document{
		TenantID:         "d22b149cee9b4eac8349c517eda00b89",
		Hostname:         "ak-d22b149cee9b4eac8349c517eda00b89",
		ASN:              64512,
		NeighborASN:      64512,
		DefaultV4Gateway: addr("172.16.77.1"),
		Orchestrator:     Orchestrator{Address: addr("fdca:3ba5:a17a:acda::1"), MetadataPort: 9697, Host: "orchestrator-1"},
		FloatingIPs:      []FloatingIP{{FloatingIP: addr("172.16.77.50"), FixedIP: addr("192.168.0.5")}},
		Networks: []Network{
			{
				ID: "mgt-net-id", Type: NetworkManagement, V4ConfService: "static", V6ConfService: "static", MTU: 1500,
				Interface: Interface{IfName: "ge0", Addresses: []netip.Prefix{prefix("fdca:3ba5:a17a:acda:f816:3eff:fe66:33b6/64")}, MTU: 1500},
				Subnets: []Subnet{
					{ID: "mgt-subnet-id", CIDR: prefix("fdca:3ba5:a17a:acda::/64"), GatewayIP: addr("fdca:3ba5:a17a:acda::1"), DHCPEnabled: true},
				},
			},
			{
				ID: "ext-net-id", Type: NetworkExternal, V4ConfService: "static", V6ConfService: "static", MTU: 1500,
				Interface: Interface{IfName: "ge1", Addresses: []netip.Prefix{prefix("172.16.77.2/24"), prefix("2001:db8:77::2/64")}, MTU: 1500},
				Subnets: []Subnet{
					{ID: "ext-v4-subnet-id", CIDR: prefix("172.16.77.0/24"), GatewayIP: addr("172.16.77.1")},
					{ID: "ext-v6-subnet-id", CIDR: prefix("2001:db8:77::/64"), GatewayIP: addr("2001:db8:77::1")},
				},
			},
			{
				ID: "int-net-id", Type: NetworkInternal, V4ConfService: "static", V6ConfService: "static", MTU: 1450,
				Interface: Interface{IfName: "ge2", Addresses: []netip.Prefix{prefix("192.168.0.1/24"), prefix("fdd6:a1fa:cfa8:9df::1/64")}, MTU: 1450},
				Subnets: []Subnet{
					{
						ID: "98a6270e-cf5f-4a60-9d7f-0d4524c00606", CIDR: prefix("192.168.0.0/24"), GatewayIP: addr("192.168.0.1"), DHCPEnabled: true,
						DNSNameservers: []netip.Addr{addr("8.8.8.8"), addr("8.8.4.4")},
						HostRoutes:     []HostRoute{{Destination: prefix("10.10.0.0/16"), NextHop: addr("192.168.0.254")}},
					},
					{
						ID: "int-v6-subnet-id", CIDR: prefix("fdd6:a1fa:cfa8:9df::/64"), GatewayIP: addr("fdd6:a1fa:cfa8:9df::1"),
						DNSNameservers: []netip.Addr{addr("fdd6:a1fa:cfa8:9df::53")},
					},
				},
				Allocations: []Allocation{
					{
						MACAddress:  "fa:16:3e:00:00:05",
						IPAddresses: map[netip.Addr]bool{addr("192.168.0.5"): true, addr("fdd6:a1fa:cfa8:9df:f816:3eff:fe00:5"): true},
						Hostname:    "192-168-0-5.local", DeviceID: "11111111-2222-3333-4444-555555555555",
					},
					{
						MACAddress:  "fa:16:3e:00:00:06",
						IPAddresses: map[netip.Addr]bool{addr("192.168.0.6"): true},
						Hostname:    "192-168-0-6.local", DeviceID: "66666666-7777-8888-9999-000000000000",
					},
				},
			},
			{
				// No network_type, conf services or mtu in the fixture: defaults.
				ID: "int2-net-id", Type: NetworkInternal, V4ConfService: "static", V6ConfService: "static",
				Interface: Interface{IfName: "ge3", Addresses: []netip.Prefix{prefix("10.1.0.1/24")}},
				Subnets: []Subnet{
					{ID: "int2-v4-subnet-id", CIDR: prefix("10.1.0.0/24"), GatewayIP: addr("10.1.0.1"), DHCPEnabled: true},
				},
			},
		},
	}
}

func TestDecodeFixtures(t *testing.T) {
	t.Run("example_config.json", func(t *testing.T) {
		got := mustDecode(t, readFixture(t, "example_config.json"))
		if diff := cmp.Diff(wantExample(), got, cmpOpts); diff != "" {
			t.Errorf("decoded document differs (-want +got):\n%s", diff)
		}
	})
	t.Run("example_config_ha.json fails on ha_resource only", func(t *testing.T) {
		_, err := Decode(readFixture(t, "example_config_ha.json"))
		checkFieldErrors(t, err, []wantErr{{"ha_resource", "HA routers are not supported"}})
	})
	t.Run("example_config_vpn.json is unsupported", func(t *testing.T) {
		doc, err := Decode(readFixture(t, "example_config_vpn.json"))
		var ue *UnsupportedError
		if !errors.As(err, &ue) || ue.Service != "vpn/ipsec" {
			t.Fatalf("Decode = %v (%T), want *UnsupportedError for vpn/ipsec", err, err)
		}
		if doc != nil {
			t.Errorf("Decode returned a document along with the error")
		}
	})
}

// TestDecodeShapes checks that the orchestrator's shape and the
// {"configuration": ...} wrapper are the same document.
func TestDecodeShapes(t *testing.T) {
	for _, name := range []string{"example_config.json", "example_config_ha.json", "example_config_vpn.json"} {
		t.Run(name, func(t *testing.T) {
			top := readFixture(t, name)
			wrapped := []byte(`{"configuration": ` + string(top) + "}")
			d1, err1 := Decode(top)
			d2, err2 := Decode(wrapped)
			if diff := cmp.Diff(d1, d2, cmpOpts); diff != "" {
				t.Errorf("documents differ (-top-level +wrapped):\n%s", diff)
			}
			if diff := cmp.Diff(err1, err2); diff != "" {
				t.Errorf("errors differ (-top-level +wrapped):\n%s", diff)
			}
		})
	}
	t.Run("errors name the same fields", func(t *testing.T) {
		bad := example(t, set("networks[3].interface.mtu", 67), set("hostname", "x y"))
		_, err1 := Decode(bad)
		_, err2 := Decode([]byte(`{"configuration":` + string(bad) + `}`))
		want := []wantErr{{"hostname", "not a valid host name"}, {"networks[3].interface.mtu", "between 68 and 65535"}}
		checkFieldErrors(t, err1, want)
		checkFieldErrors(t, err2, want)
	})
}

func TestDecodeDefaults(t *testing.T) {
	d := mustDecode(t, []byte(`{"tenant_id": "t", "hostname": "h", "networks": [
		{"network_id": "n", "interface": {"ifname": "ge0"}}
	]}`))
	want := &Document{
		TenantID: "t", Hostname: "h",
		ASN: DefaultASN, NeighborASN: DefaultASN,
		Networks: []Network{{
			ID: "n", Type: NetworkIsolated, V4ConfService: "static", V6ConfService: "static",
			Interface: Interface{IfName: "ge0"},
		}},
		FloatingIPs:  []FloatingIP{},
		Orchestrator: Orchestrator{Address: addr(DefaultOrchestratorAddress), MetadataPort: DefaultMetadataPort},
	}
	if diff := cmp.Diff(want, d, cmpOpts); diff != "" {
		t.Errorf("defaults differ (-want +got):\n%s", diff)
	}
	if DefaultASN != 64512 || DefaultMetadataPort != 9697 || DefaultOrchestratorAddress != "fdca:3ba5:a17a:acda::1" {
		t.Errorf("defaults changed: asn %d, port %d, address %s; the original used 64512, 9697, fdca:3ba5:a17a:acda::1",
			DefaultASN, DefaultMetadataPort, DefaultOrchestratorAddress)
	}
}

// TestDecodeMalformed covers the errors found before the document's fields are looked at.
func TestDecodeMalformed(t *testing.T) {
	ex := readFixture(t, "example_config.json")
	tests := []struct {
		name  string
		input string
		want  wantErr
	}{
		{"empty", "", wantErr{"(document)", "EOF"}},
		{"only whitespace", " \n\t", wantErr{"(document)", "EOF"}},
		{"syntax error", `{"tenant_id": }`, wantErr{"(document)", "malformed JSON at byte 15"}},
		{"trailing comma", `{"tenant_id": "t",}`, wantErr{"(document)", "malformed JSON"}},
		{"single quotes", `{'tenant_id': 't'}`, wantErr{"(document)", "malformed JSON"}},
		{"bare word", `nope`, wantErr{"(document)", "malformed JSON"}},
		{"truncated", `{"tenant_id": "t"`, wantErr{"(document)", "unexpected EOF"}},
		{"truncated example", string(ex[:len(ex)/2]), wantErr{"(document)", "unexpected EOF"}},
		{"too deep", `{"anchors": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, wantErr{"(document)", "exceeded max depth"}},
		{"null", `null`, wantErr{"(document)", "must be a JSON object"}},
		{"list", `[]`, wantErr{"(document)", "must be an object, not JSON array"}},
		{"string", `"config"`, wantErr{"(document)", "must be an object, not JSON string"}},
		{"number", `42`, wantErr{"(document)", "must be an object, not JSON number"}},
		{"boolean", `true`, wantErr{"(document)", "must be an object, not JSON bool"}},
		{"second value", string(ex) + ` {}`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"second value without space", `{"tenant_id":"t"}{}`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing word", string(ex) + `x`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing number", `{} 1`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing brace", string(ex) + `}`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing bracket", string(ex) + "\n]", wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing comma after document", string(ex) + `,`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing colon", `{}:`, wantErr{"(document)", "unexpected data after the JSON value"}},
		{"trailing NUL", "{}\x00", wantErr{"(document)", "unexpected data after the JSON value"}},
		{"wrapper with extra key", `{"configuration": ` + string(ex) + `, "tenant_id": "t"}`, wantErr{"configuration", "the wrapper must be the only top-level key"}},
		{"wrapper with extra null key", `{"services": null, "configuration": {}}`, wantErr{"configuration", "the wrapper must be the only top-level key"}},
		{"wrapper around a list", `{"configuration": []}`, wantErr{"(document)", "must be an object, not JSON array"}},
		{"wrapper around a string", `{"configuration": "x"}`, wantErr{"(document)", "must be an object, not JSON string"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Decode([]byte(tc.input))
			if doc != nil {
				t.Errorf("Decode returned a document along with the error")
			}
			checkFieldErrors(t, err, []wantErr{tc.want})
		})
	}
	t.Run("trailing whitespace is fine", func(t *testing.T) {
		mustDecode(t, append(bytes.Clone(ex), " \r\n\t"...))
	})
}

// TestDecodeTypeErrors checks that a value of the wrong JSON type is
// reported against its field. The decoder names the field by its keys
// (networks.interface.mtu), without list indices.
func TestDecodeTypeErrors(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		want  wantErr
	}{
		{"networks string", []edit{set("networks", "x")}, wantErr{"networks", "must be a list, not JSON string"}},
		{"networks object", []edit{set("networks", map[string]any{})}, wantErr{"networks", "must be a list, not JSON object"}},
		{"network string", []edit{set("networks[0]", "mgt")}, wantErr{"networks", "must be an object, not JSON string"}},
		{"tenant_id number", []edit{set("tenant_id", 5)}, wantErr{"tenant_id", "must be a string, not JSON number"}},
		{"hostname list", []edit{set("hostname", []any{"h"})}, wantErr{"hostname", "must be a string, not JSON array"}},
		{"ha_resource string", []edit{set("ha_resource", "yes")}, wantErr{"ha_resource", "must be a boolean, not JSON string"}},
		{"ha_resource number", []edit{set("ha_resource", 1)}, wantErr{"ha_resource", "must be a boolean, not JSON number"}},
		{"asn string", []edit{set("asn", "64512")}, wantErr{"asn", "must be a number, not JSON string"}},
		{"asn boolean", []edit{set("asn", true)}, wantErr{"asn", "must be a number, not JSON bool"}},
		{"asn list", []edit{set("asn", []any{1})}, wantErr{"asn", "must be a number, not JSON array"}},
		{"asn object", []edit{set("asn", map[string]any{})}, wantErr{"asn", "must be a number, not JSON object"}},
		{"generation string", []edit{set("generation", "7")}, wantErr{"generation", "must be a number, not JSON string"}},
		{"orchestrator string", []edit{set("orchestrator", "fdca::1")}, wantErr{"orchestrator", "must be an object, not JSON string"}},
		{"orchestrator port string", []edit{set("orchestrator.metadata_port", "9697")}, wantErr{"orchestrator.metadata_port", "must be a number, not JSON string"}},
		{"orchestrator address number", []edit{set("orchestrator.address", 1)}, wantErr{"orchestrator.address", "must be a string, not JSON number"}},
		{"interface list", []edit{set("networks[3].interface", []any{})}, wantErr{"networks.interface", "must be an object, not JSON array"}},
		{"interface mtu big", []edit{set("networks[3].interface.mtu", "big")}, wantErr{"networks.interface.mtu", "must be a number, not JSON string"}},
		{"interface mtu quoted", []edit{set("networks[3].interface.mtu", "1500")}, wantErr{"networks.interface.mtu", "must be a number, not JSON string"}},
		{"network mtu boolean", []edit{set("networks[3].mtu", false)}, wantErr{"networks.mtu", "must be a number, not JSON bool"}},
		{"addresses string", []edit{set("networks[3].interface.addresses", "10.1.0.1/24")}, wantErr{"networks.interface.addresses", "must be a list, not JSON string"}},
		{"address number", []edit{set("networks[3].interface.addresses[0]", 10)}, wantErr{"networks.interface.addresses", "must be a string, not JSON number"}},
		{"ifname number", []edit{set("networks[3].interface.ifname", 3)}, wantErr{"networks.interface.ifname", "must be a string, not JSON number"}},
		{"subnets object", []edit{set("networks[3].subnets", map[string]any{})}, wantErr{"networks.subnets", "must be a list, not JSON object"}},
		{"dhcp_enabled string", []edit{set("networks[3].subnets[0].dhcp_enabled", "yes")}, wantErr{"networks.subnets.dhcp_enabled", "must be a boolean, not JSON string"}},
		{"dns_nameservers string", []edit{set("networks[2].subnets[0].dns_nameservers", "8.8.8.8")}, wantErr{"networks.subnets.dns_nameservers", "must be a list, not JSON string"}},
		{"host route list", []edit{set("networks[2].subnets[0].host_routes[0]", []any{"10.10.0.0/16", "192.168.0.254"})}, wantErr{"networks.subnets.host_routes", "must be an object, not JSON array"}},
		{"ip_addresses list", []edit{set("networks[2].allocations[0].ip_addresses", []any{"192.168.0.5"})}, wantErr{"networks.allocations.ip_addresses", "must be an object, not JSON array"}},
		{"ip_addresses value", []edit{set("networks[2].allocations[0].ip_addresses", map[string]any{"192.168.0.5": "yes"})}, wantErr{"networks.allocations.ip_addresses", "must be a boolean, not JSON string"}},
		{"floating_ips object", []edit{set("floating_ips", map[string]any{})}, wantErr{"floating_ips", "must be a list, not JSON object"}},
		{"fixed_ip number", []edit{set("floating_ips[0].fixed_ip", 1)}, wantErr{"floating_ips.fixed_ip", "must be a string, not JSON number"}},
		{"static_routes string", []edit{set("static_routes", "x")}, wantErr{"static_routes", "must be a list, not JSON string"}},
		{"labels list", []edit{set("labels", []any{})}, wantErr{"labels", "must be an object, not JSON array"}},
		{"label string", []edit{set("labels", map[string]any{"web": "10.0.0.0/8"})}, wantErr{"labels", "must be a list, not JSON string"}},
		{"anchors object", []edit{set("anchors", map[string]any{})}, wantErr{"anchors", "must be a list, not JSON object"}},
		{"services list", []edit{set("services", []any{"loadbalancer"})}, wantErr{"services", "must be an object, not JSON array"}},
		{"vpn list", []edit{set("vpn", []any{})}, wantErr{"vpn", "must be an object, not JSON array"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(example(t, tc.edits...))
			checkFieldErrors(t, err, []wantErr{tc.want})
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	ex := readFixture(t, "example_config.json")
	atLimit := make([]byte, MaxDocumentSize)
	copy(atLimit, ex)
	for i := len(ex); i < len(atLimit); i++ {
		atLimit[i] = ' '
	}
	t.Run("at the limit", func(t *testing.T) {
		mustDecode(t, atLimit)
	})
	t.Run("one byte over", func(t *testing.T) {
		_, err := Decode(append(atLimit, ' '))
		checkFieldErrors(t, err, []wantErr{{"(document)", fmt.Sprintf("larger than %d bytes", MaxDocumentSize)}})
	})
}

func TestDecodeUnsupported(t *testing.T) {
	lb := map[string]any{"id": "lb", "listeners": []any{}}
	tests := []struct {
		name    string
		edits   []edit
		service string
	}{
		{"load balancer", []edit{set("services", map[string]any{"loadbalancer": lb})}, "loadbalancer"},
		{"load balancer null", []edit{set("services", map[string]any{"loadbalancer": nil})}, "loadbalancer"},
		{"load balancer next to router", []edit{set("services", map[string]any{"router": nil, "loadbalancer": lb})}, "loadbalancer"},
		{"first unknown service by name", []edit{set("services", map[string]any{"zebra": 1, "firewall": 1, "loadbalancer": 1})}, "firewall"},
		{"ipsec", []edit{set("vpn", map[string]any{"ipsec": []any{map[string]any{"id": "v"}}})}, "vpn/ipsec"},
		{"ipsec object", []edit{set("vpn", map[string]any{"ipsec": map[string]any{}})}, "vpn/ipsec"},
		{"ipsec string", []edit{set("vpn", map[string]any{"ipsec": "on"})}, "vpn/ipsec"},
		{"first vpn kind by name", []edit{set("vpn", map[string]any{"wireguard": []any{1}, "ipsec": []any{1}, "openvpn": []any{1}})}, "vpn/ipsec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := example(t, tc.edits...)
			// Several runs: the answer must not depend on map iteration order.
			for range 20 {
				for _, input := range [][]byte{data, []byte(`{"configuration":` + string(data) + `}`)} {
					doc, err := Decode(input)
					var ue *UnsupportedError
					if !errors.As(err, &ue) {
						t.Fatalf("Decode = %v (%T), want *UnsupportedError", err, err)
					}
					if ue.Service != tc.service {
						t.Fatalf("Service = %q, want %q", ue.Service, tc.service)
					}
					if want := "this appliance cannot service requested advanced service: " + tc.service; err.Error() != want {
						t.Fatalf("Error() = %q, want %q", err.Error(), want)
					}
					var ve *ValidationError
					if errors.As(err, &ve) || doc != nil {
						t.Fatalf("an unsupported service must be reported alone (HTTP 400): doc %v, err %v", doc, err)
					}
				}
			}
		})
	}
}

func TestDecodeText(t *testing.T) {
	t.Run("invalid UTF-8 becomes U+FFFD and is refused in host names", func(t *testing.T) {
		in := bytes.Replace(readFixture(t, "example_config.json"), []byte(`"hostname": "ak-`), []byte("\"hostname\": \"\xff"), 1)
		_, err := Decode(in)
		checkFieldErrors(t, err, []wantErr{{"hostname", "\"\ufffdd22b149cee9b4eac8349c517eda00b89\" is not a valid host name"}})
	})
	t.Run("escaped control characters are refused", func(t *testing.T) {
		in := bytes.Replace(readFixture(t, "example_config.json"), []byte(`"hostname": "192-168-0-6.local"`), []byte(`"hostname": "vm\u000adhcp-option=3"`), 1)
		_, err := Decode(in)
		checkFieldErrors(t, err, []wantErr{{"networks[2].allocations[1].hostname", "is not a valid host name"}})
	})
	t.Run("non-ASCII names are echoed", func(t *testing.T) {
		d := mustDecode(t, example(t, set("networks[3].name", "réseau <interne>")))
		if d.Networks[3].Name != "réseau <interne>" {
			t.Errorf("Name = %q", d.Networks[3].Name)
		}
	})
}

func TestErrorStrings(t *testing.T) {
	ve := &ValidationError{Errors: []FieldError{{"hostname", "required"}, {"networks[0].interface.mtu", "too big"}}}
	if got, want := ve.Error(), "invalid configuration: hostname: required; networks[0].interface.mtu: too big"; got != want {
		t.Errorf("ValidationError.Error() = %q, want %q", got, want)
	}
	if got, want := (FieldError{"asn", "bad"}).Error(), "asn: bad"; got != want {
		t.Errorf("FieldError.Error() = %q, want %q", got, want)
	}
	// The API layer tells the two apart with errors.As; wrapping must keep that.
	var target *ValidationError
	if !errors.As(fmt.Errorf("apply: %w", ve), &target) || target != ve {
		t.Errorf("a wrapped *ValidationError is not found by errors.As")
	}
}
