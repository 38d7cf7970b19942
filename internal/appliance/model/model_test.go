package model

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"
)

func TestManagementAndExternal(t *testing.T) {
	d := mustDecode(t, readFixture(t, "example_config.json"))
	if got := d.Management(); got != &d.Networks[0] {
		t.Errorf("Management() = %v, want a pointer to networks[0] (mgt-net-id)", got)
	}
	if got := d.External(); got != &d.Networks[1] {
		t.Errorf("External() = %v, want a pointer to networks[1] (ext-net-id)", got)
	}

	none := mustDecode(t, example(t, del("networks[1]"), del("networks[0]"), del("default_v4_gateway"), set("floating_ips", nil)))
	if got := none.Management(); got != nil {
		t.Errorf("Management() without a management network = %+v, want nil", got)
	}
	if got := none.External(); got != nil {
		t.Errorf("External() without an external network = %+v, want nil", got)
	}

	// Not decodable (two externals), but the helpers must pick the first.
	two := &Document{Networks: []Network{{ID: "a", Type: NetworkInternal}, {ID: "b", Type: NetworkExternal}, {ID: "c", Type: NetworkExternal}}}
	if got := two.External(); got == nil || got.ID != "b" {
		t.Errorf("External() = %+v, want the first external network b", got)
	}
}

func TestIsTenant(t *testing.T) {
	for typ, want := range map[NetworkType]bool{
		NetworkInternal: true, NetworkIsolated: true,
		NetworkExternal: false, NetworkManagement: false, NetworkLoadBalancer: false,
	} {
		n := Network{Type: typ}
		if got := n.IsTenant(); got != want {
			t.Errorf("IsTenant() of %s = %v, want %v", typ, got, want)
		}
	}
}

func TestFirstV4V6(t *testing.T) {
	tests := []struct {
		name       string
		addresses  []string
		v4, v6     string // "" = none
		v4ok, v6ok bool
	}{
		{"none", nil, "", "", false, false},
		{"numeric not lexical order", []string{"10.0.0.10/24", "10.0.0.9/24", "2001:db8::10/64", "2001:db8::9/64"}, "10.0.0.9/24", "2001:db8::9/64", true, true},
		{"prefix length kept", []string{"192.168.1.1/24", "10.0.0.1/8"}, "10.0.0.1/8", "", true, false},
		{"v6 only", []string{"fe80::1/64", "2001:db8::1/64"}, "", "2001:db8::1/64", false, true},
		{"first given is lowest", []string{"2001:db8::1/64", "10.0.0.1/24", "10.0.0.2/24"}, "10.0.0.1/24", "2001:db8::1/64", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ifc Interface
			for _, a := range tc.addresses {
				ifc.Addresses = append(ifc.Addresses, prefix(a))
			}
			check := func(fn string, got netip.Prefix, ok bool, want string, wantOK bool) {
				t.Helper()
				if ok != wantOK || (wantOK && got != prefix(want)) || (!wantOK && got.IsValid()) {
					t.Errorf("%s() = %v, %v; want %q, %v", fn, got, ok, want, wantOK)
				}
			}
			p, ok := ifc.FirstV4()
			check("FirstV4", p, ok, tc.v4, tc.v4ok)
			p, ok = ifc.FirstV6()
			check("FirstV6", p, ok, tc.v6, tc.v6ok)
		})
	}
}

func TestGenericIndexAndMetadataPort(t *testing.T) {
	tests := []struct {
		ifname string
		index  int
		ok     bool
	}{
		{"ge0", 0, true},
		{"ge1", 1, true},
		{"ge9", 9, true},
		{"ge10", 10, true},
		{"ge100", 100, true},
		{"ge9999", 9999, true},
		{"ge", 0, false},
		{"", 0, false},
		{"ge00", 0, false},
		{"ge01", 0, false},
		{"ge10000", 0, false},
		{"ge99999", 0, false},
		{"eth0", 0, false},
		{"GE1", 0, false},
		{"ge-1", 0, false},
		{"ge-0", 0, false},
		{"ge+1", 0, false},
		{"ge+0", 0, false},
		{"ge1a", 0, false},
		{"ge 1", 0, false},
		{"ge1 ", 0, false},
		{" ge1", 0, false},
		{"ge1\n", 0, false},
		{"ge٣", 0, false}, // Arabic-Indic digit three
		{"gege1", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.ifname, func(t *testing.T) {
			n, ok := GenericIndex(tc.ifname)
			if n != tc.index || ok != tc.ok {
				t.Errorf("GenericIndex(%q) = %d, %v; want %d, %v", tc.ifname, n, ok, tc.index, tc.ok)
			}
			port, ok := MetadataPort(tc.ifname)
			wantPort := uint16(0)
			if tc.ok {
				wantPort = uint16(BaseMetadataPort + tc.index)
			}
			if port != wantPort || ok != tc.ok {
				t.Errorf("MetadataPort(%q) = %d, %v; want %d, %v", tc.ifname, port, ok, wantPort, tc.ok)
			}
		})
	}
	// The original's examples: ge2 listens on 9602.
	if port, _ := MetadataPort("ge2"); port != 9602 {
		t.Errorf("MetadataPort(ge2) = %d, want 9602", port)
	}
	// Every accepted name has a distinct port that fits in a uint16.
	seen := map[uint16]string{}
	for i := range 10000 {
		name := "ge" + strconv.Itoa(i)
		port, ok := MetadataPort(name)
		if !ok || int(port) != BaseMetadataPort+i {
			t.Fatalf("MetadataPort(%q) = %d, %v; want %d", name, port, ok, BaseMetadataPort+i)
		}
		if other, dup := seen[port]; dup {
			t.Fatalf("%s and %s share metadata port %d", name, other, port)
		}
		seen[port] = name
	}
}

func TestSortedIPs(t *testing.T) {
	a := Allocation{IPAddresses: map[netip.Addr]bool{
		addr("2001:db8::b"):   true,
		addr("10.0.0.10"):     false,
		addr("fe80::1"):       true,
		addr("10.0.0.9"):      true,
		addr("2001:db8::a"):   false,
		addr("9.255.255.255"): true,
	}}
	want := []netip.Addr{addr("9.255.255.255"), addr("10.0.0.9"), addr("10.0.0.10"), addr("2001:db8::a"), addr("2001:db8::b"), addr("fe80::1")}
	if got := a.SortedIPs(); !slices.Equal(got, want) {
		t.Errorf("SortedIPs() = %v, want %v (IPv4 first, numeric order, DHCP flag ignored)", got, want)
	}
	if got := (&Allocation{}).SortedIPs(); len(got) != 0 {
		t.Errorf("SortedIPs() of no addresses = %v, want empty", got)
	}
}
