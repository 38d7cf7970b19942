package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode checks Decode's contract on arbitrary input: it never panics;
// it returns either a document or a *ValidationError / *UnsupportedError;
// a document it returns is valid, and survives json.Marshal and Decode
// unchanged.
//
// The seed corpus is the fixtures and the variants below, plus the files
// under testdata/fuzz/FuzzDecode (the same kind of documents, and inputs the
// fuzzer found, kept as regression cases).
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"example_config.json", "example_config_ha.json", "example_config_vpn.json"} {
		b := readFixture(f, name)
		f.Add(b)
		f.Add([]byte(`{"configuration":` + string(b) + `}`))
	}
	for _, s := range []string{
		`{"tenant_id":"t","hostname":"h"}`,
		`{"tenant_id":"t","hostname":"h","networks":[{"network_id":"n","interface":{"ifname":"ge0","addresses":["10.0.0.1/24","2001:db8::1/64"],"mtu":1280},"subnets":[{"id":"s","cidr":"10.0.0.0/24","gateway_ip":"10.0.0.1","dhcp_enabled":true,"dns_nameservers":["10.0.0.1"],"host_routes":[{"destination":"0.0.0.0/0","nexthop":"10.0.0.254"}]}],"allocations":[{"mac_address":"fa:16:3e:00:00:01","ip_addresses":{"10.0.0.5":true},"hostname":"vm","device_id":"d"}]}]}`,
		`{"tenant_id":"t","hostname":"h","anchors":[ {"a" : "<b>"} , null ],"static_routes":[["10.0.0.0/8","10.0.0.1"]],"labels":{"x":["10.0.0.1/8"],"y":null},"address_book":{}}`,
		`{"tenant_id":"t","hostname":"h","networks":[],"floating_ips":[],"static_routes":[],"labels":{},"anchors":[],"services":{"router":null},"vpn":{"ipsec":[]}}`,
		`{"tenant_id":"t","hostname":"h","generation":18446744073709551615,"asn":4294967295,"neighbor_asn":1,"orchestrator":{"address":"10.0.0.1","metadata_port":65535,"host":"o"}}`,
		`{"tenant_id":"t","hostname":"h","networks":[{"network_id":"n","interface":{"ifname":"ge+1","mtu":"big"}}]}`,
		`{"tenant_id":"t","hostname":"h","services":{"loadbalancer":{}},"vpn":{"b":[1],"a":[1]}}`,
		`{"configuration":{"tenant_id":"t","hostname":"h"},"x":1}`,
		`{"tenant_id":"t","hostname":"h"}}`,
		`{"configuration":null}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Decode(data)
		if err != nil {
			if doc != nil {
				t.Fatalf("Decode returned both a document and an error: %v", err)
			}
			checkDecodeError(t, err)
			return
		}
		if doc == nil {
			t.Fatal("Decode returned neither a document nor an error")
		}
		if err := doc.Validate(); err != nil {
			t.Fatalf("Decode accepted a document that fails Validate: %v", err)
		}
		b1, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("Marshal of a decoded document: %v", err)
		}
		again, err := Decode(b1)
		if err != nil {
			t.Fatalf("Decode of the marshalled document: %v\nmarshalled: %s", err, b1)
		}
		if diff := cmp.Diff(doc, again, cmpOpts); diff != "" {
			t.Fatalf("document changed by Marshal+Decode (-first +second):\n%s\nmarshalled: %s", diff, b1)
		}
		b2, err := json.Marshal(again)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("marshalling is not stable (err %v):\n%s\n%s", err, b1, b2)
		}
	})
}

// checkDecodeError checks that err is one of the two documented error
// types, and is complete enough for an API response.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var ve *ValidationError
	var ue *UnsupportedError
	switch {
	case errors.As(err, &ve):
		if len(ve.Errors) == 0 {
			t.Fatalf("ValidationError without field errors")
		}
		for _, fe := range ve.Errors {
			if fe.Field == "" || fe.Msg == "" {
				t.Fatalf("field error without a field or a message: %+v", fe)
			}
		}
	case errors.As(err, &ue):
		if ue.Service == "" {
			t.Fatalf("UnsupportedError without a service")
		}
	default:
		t.Fatalf("Decode error %v is a %T, want *ValidationError or *UnsupportedError", err, err)
	}
}
