package model

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// roundTripInputs are valid documents that exercise every field.
func roundTripInputs(t *testing.T) map[string][]byte {
	ex := readFixture(t, "example_config.json")
	return map[string][]byte{
		"example":         ex,
		"wrapped example": []byte(`{"configuration":` + string(ex) + `}`),
		"minimal":         []byte(`{"tenant_id":"t","hostname":"h"}`),
		"every optional field": example(t,
			set("generation", 42),
			set("asn", 65001), set("neighbor_asn", 65002),
			set("networks[3].name", "second <internal> & more"),
			set("networks[3].network_type", "isolated"),
			set("networks[3].v4_conf_service", "dhcp"),
			set("networks[3].v6_conf_service", "ra"),
			set("networks[3].interface.lladdr", "fa:16:3e:00:00:03"),
			set("networks[3].interface.mtu", 9000),
			set("networks[2].allocations[1].ip_addresses", map[string]any{"192.168.0.6": false}),
			add("networks[2].allocations", map[string]any{"mac_address": "fa:16:3e:00:00:07", "ip_addresses": map[string]any{}, "hostname": "vm7"}),
			set("networks[2].subnets[1].host_routes", []any{map[string]any{"destination": "::/0", "nexthop": "fdd6:a1fa:cfa8:9df::fe"}}),
			set("floating_ips[0].fixed_ip", "192.168.0.6"),
			set("static_routes", []any{[]any{"10.0.0.0/8", "172.16.77.1"}, []any{"2001:db8:f::/48", "2001:db8:77::1"}}),
			set("labels", map[string]any{"web": []any{"10.0.0.1/8", "2001:db8::1/64"}, "none": []any{}, "null": nil}),
			set("address_book", map[string]any{"db": []any{"10.1.0.0/24"}}),
		),
		// Anchors are kept as raw JSON: spacing and escapes must not change
		// them between decode and re-decode.
		"anchors with spaces and HTML": []byte(`{"tenant_id":"t","hostname":"h","anchors":[ {"name" : "a<b>&c", "rules" : [ 1 , 2.50, "\u2028" ] } , null, "x\u0041" ]}`),
		"empty lists and maps":         []byte(`{"tenant_id":"t","hostname":"h","networks":[],"floating_ips":[],"static_routes":[],"labels":{},"address_book":{},"anchors":[],"services":{},"vpn":{}}`),
		"nulls":                        []byte(`{"tenant_id":"t","hostname":"h","generation":null,"asn":null,"neighbor_asn":null,"default_v4_gateway":null,"ha_resource":null,"networks":null,"floating_ips":null,"orchestrator":null,"static_routes":null,"labels":null,"address_book":null,"anchors":null}`),
		"non-canonical addresses": example(t,
			set("networks[2].interface.addresses[1]", "FDD6:A1FA:CFA8:09DF:0:0:0:1/64"),
			set("networks[2].allocations[0].ip_addresses", map[string]any{"192.168.0.5": true, "FDD6:a1fa:cfa8:9df:f816:3eff:fe00:0005": true}),
			set("orchestrator.address", "FDCA:3BA5:A17A:ACDA:0::1"),
		),
	}
}

// TestRoundTrip checks that a decoded document survives json.Marshal and
// Decode unchanged, and that marshalling is stable.
func TestRoundTrip(t *testing.T) {
	for name, input := range roundTripInputs(t) {
		t.Run(name, func(t *testing.T) {
			d1 := mustDecode(t, input)
			b1, err := json.Marshal(d1)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			d2 := mustDecode(t, b1)
			if diff := cmp.Diff(d1, d2, cmpOpts); diff != "" {
				t.Fatalf("document changed by Marshal+Decode (-first +second):\n%s\nmarshalled: %s", diff, b1)
			}
			again, err := json.Marshal(d1)
			if err != nil || !bytes.Equal(b1, again) {
				t.Errorf("marshalling the same document twice differs:\n%s\n%s", b1, again)
			}
			b2, err := json.Marshal(d2)
			if err != nil || !bytes.Equal(b1, b2) {
				t.Errorf("marshalling is not a fixed point:\n%s\n%s", b1, b2)
			}
		})
	}
}

// TestMarshalWritesDefaults checks that the filled-in defaults are written out,
// so that what the appliance reports is what it applies.
func TestMarshalWritesDefaults(t *testing.T) {
	d := mustDecode(t, []byte(`{"tenant_id":"t","hostname":"h","networks":[{"network_id":"n","interface":{"ifname":"ge0"}}]}`))
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	want := map[string]any{
		"tenant_id": "t", "hostname": "h",
		"asn": 64512.0, "neighbor_asn": 64512.0,
		"default_v4_gateway": "", "ha_resource": false,
		"networks": []any{map[string]any{
			"network_id": "n", "network_type": "isolated",
			"v4_conf_service": "static", "v6_conf_service": "static",
			"interface":   map[string]any{"ifname": "ge0", "addresses": nil},
			"subnets":     nil,
			"allocations": nil,
		}},
		"floating_ips": []any{},
		"orchestrator": map[string]any{"address": "fdca:3ba5:a17a:acda::1", "metadata_port": 9697.0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marshalled defaults differ (-want +got):\n%s\n%s", diff, b)
	}
}
