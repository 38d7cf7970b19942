package ipam

import (
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }
func rng(a, b string) Range     { return Range{ip(a), ip(b)} }

func TestGeneratePools(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cidr    string
		gateway string
		want    []Range
	}{
		{"v4 gateway first", "10.0.0.0/24", "10.0.0.1", []Range{rng("10.0.0.2", "10.0.0.254")}},
		{"v4 gateway inside", "10.0.0.0/24", "10.0.0.100", []Range{rng("10.0.0.1", "10.0.0.99"), rng("10.0.0.101", "10.0.0.254")}},
		{"v4 gateway last", "10.0.0.0/24", "10.0.0.254", []Range{rng("10.0.0.1", "10.0.0.253")}},
		{"v4 no gateway", "10.0.0.0/24", "", []Range{rng("10.0.0.1", "10.0.0.254")}},
		{"v4 gateway outside", "10.0.0.0/24", "192.0.2.1", []Range{rng("10.0.0.1", "10.0.0.254")}},
		{"v4 /30", "10.0.0.0/30", "10.0.0.1", []Range{rng("10.0.0.2", "10.0.0.2")}},
		{"v4 /31", "10.0.0.0/31", "", []Range{}},
		{"v4 /32", "10.0.0.7/32", "", []Range{rng("10.0.0.7", "10.0.0.7")}},
		{"v6 /64", "fd00::/64", "fd00::1", []Range{rng("fd00::2", "fd00::ffff:ffff:ffff:ffff")}},
		{"v6 /120 gateway last", "fd00::/120", "fd00::ff", []Range{rng("fd00::1", "fd00::fe")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gw netip.Addr
			if tc.gateway != "" {
				gw = ip(tc.gateway)
			}
			got := GeneratePools(pfx(tc.cidr), gw)
			if !slices.Equal(got, tc.want) {
				t.Errorf("GeneratePools(%s, %s) = %v, want %v", tc.cidr, tc.gateway, got, tc.want)
			}
		})
	}
}

func TestValidatePools(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cidr    string
		pools   []Range
		gateway string
		kind    PoolErrorKind // "" when valid
	}{
		{"valid, sorted on return", "10.0.0.0/24", []Range{rng("10.0.0.100", "10.0.0.200"), rng("10.0.0.10", "10.0.0.20")}, "10.0.0.1", ""},
		{"whole v4 host range", "10.0.0.0/24", []Range{rng("10.0.0.1", "10.0.0.254")}, "", ""},
		{"network address", "10.0.0.0/24", []Range{rng("10.0.0.0", "10.0.0.20")}, "", OutOfBoundsAllocationPool},
		{"broadcast address", "10.0.0.0/24", []Range{rng("10.0.0.10", "10.0.0.255")}, "", OutOfBoundsAllocationPool},
		{"outside", "10.0.0.0/24", []Range{rng("10.0.1.10", "10.0.1.20")}, "", OutOfBoundsAllocationPool},
		{"reversed", "10.0.0.0/24", []Range{rng("10.0.0.20", "10.0.0.10")}, "", InvalidAllocationPool},
		{"wrong family", "10.0.0.0/24", []Range{rng("fd00::1", "fd00::2")}, "", InvalidAllocationPool},
		{"overlap", "10.0.0.0/24", []Range{rng("10.0.0.10", "10.0.0.20"), rng("10.0.0.20", "10.0.0.30")}, "", OverlappingAllocationPools},
		{"gateway inside", "10.0.0.0/24", []Range{rng("10.0.0.1", "10.0.0.20")}, "10.0.0.1", GatewayConflictWithAllocationPools},
		{"v4 /31 both addresses", "10.0.0.0/31", []Range{rng("10.0.0.0", "10.0.0.1")}, "", ""},
		{"v6 last address", "fd00::/64", []Range{rng("fd00::2", "fd00::ffff:ffff:ffff:ffff")}, "fd00::1", ""},
		{"v6 network address", "fd00::/64", []Range{rng("fd00::", "fd00::10")}, "", OutOfBoundsAllocationPool},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gw netip.Addr
			if tc.gateway != "" {
				gw = ip(tc.gateway)
			}
			got, err := ValidatePools(pfx(tc.cidr), tc.pools, gw)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("ValidatePools: %v", err)
				}
				if !slices.IsSortedFunc(got, func(a, b Range) int { return a.Start.Compare(b.Start) }) || len(got) != len(tc.pools) {
					t.Errorf("ValidatePools = %v, want the pools sorted", got)
				}
				return
			}
			var pe *PoolError
			if !errors.As(err, &pe) || pe.Kind != tc.kind {
				t.Fatalf("ValidatePools error = %v, want %s", err, tc.kind)
			}
		})
	}
}

func TestValidSubnetIP(t *testing.T) {
	for _, tc := range []struct {
		cidr, ip string
		anyNet   bool
		want     bool
	}{
		{"10.0.0.0/24", "10.0.0.5", false, true},
		{"10.0.0.0/24", "10.0.0.0", false, false},
		{"10.0.0.0/24", "10.0.0.255", false, false},
		{"10.0.0.0/24", "10.0.1.5", false, false},
		{"10.0.0.0/24", "10.0.0.0", true, false},
		{"10.0.0.0/31", "10.0.0.1", false, true},
		{"fd00::/64", "fd00::", false, false},
		{"fd00::/64", "fd00::", true, true},
		{"fd00::/64", "fd00::ffff:ffff:ffff:ffff", false, true},
		{"fd00::/64", "10.0.0.1", false, false},
	} {
		if got := ValidSubnetIP(pfx(tc.cidr), ip(tc.ip), tc.anyNet); got != tc.want {
			t.Errorf("ValidSubnetIP(%s, %s, %v) = %v, want %v", tc.cidr, tc.ip, tc.anyNet, got, tc.want)
		}
	}
}

func TestFirstFree(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, ip(s))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		pools []Range
		used  []netip.Addr
		want  string // "" when exhausted
	}{
		{"empty", []Range{rng("10.0.0.2", "10.0.0.4")}, nil, "10.0.0.2"},
		{"gap", []Range{rng("10.0.0.2", "10.0.0.4")}, addrs("10.0.0.2", "10.0.0.4"), "10.0.0.3"},
		{"used outside the pool", []Range{rng("10.0.0.2", "10.0.0.4")}, addrs("10.0.0.1", "10.0.0.2"), "10.0.0.3"},
		{"exhausted", []Range{rng("10.0.0.2", "10.0.0.3")}, addrs("10.0.0.2", "10.0.0.3"), ""},
		{"next pool", []Range{rng("10.0.0.20", "10.0.0.21"), rng("10.0.0.2", "10.0.0.2")}, addrs("10.0.0.2"), "10.0.0.20"},
		{"single address pool", []Range{rng("10.0.0.9", "10.0.0.9")}, addrs("10.0.0.9"), ""},
		{"v6", []Range{rng("fd00::2", "fd00::ffff:ffff:ffff:ffff")}, addrs("fd00::2", "fd00::3"), "fd00::4"},
		{"no pools", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FirstFree(tc.pools, tc.used)
			if tc.want == "" {
				if ok {
					t.Fatalf("FirstFree = %s, want exhausted", got)
				}
				return
			}
			if !ok || got != ip(tc.want) {
				t.Fatalf("FirstFree = %s, %v; want %s", got, ok, tc.want)
			}
		})
	}
}

func TestEUI64(t *testing.T) {
	for _, tc := range []struct{ prefix, mac, want string }{
		// Neutron's unit test vector (test_ipv6_utils).
		{"2001:db8:1:2::/64", "00:16:3e:33:44:55", "2001:db8:1:2:216:3eff:fe33:4455"},
		{"fd00:1::/64", "fa:16:3e:ed:99:e3", "fd00:1::f816:3eff:feed:99e3"},
		// Host bits of the prefix are ignored.
		{"fd00:1::5/64", "fa:16:3e:00:00:01", "fd00:1::f816:3eff:fe00:1"},
	} {
		got, err := EUI64(pfx(tc.prefix), tc.mac)
		if err != nil || got != ip(tc.want) {
			t.Errorf("EUI64(%s, %s) = %s, %v; want %s", tc.prefix, tc.mac, got, err, tc.want)
		}
	}
	for _, bad := range []struct{ prefix, mac string }{
		{"10.0.0.0/24", "fa:16:3e:00:00:01"},
		{"fd00::/80", "fa:16:3e:00:00:01"},
		{"fd00::/64", "not-a-mac"},
	} {
		if _, err := EUI64(pfx(bad.prefix), bad.mac); err == nil {
			t.Errorf("EUI64(%s, %s) succeeded, want an error", bad.prefix, bad.mac)
		}
	}
}

func TestMAC(t *testing.T) {
	format := regexp.MustCompile(`^fa:16:3e(:[0-9a-f]{2}){3}$`)
	seen := map[string]bool{}
	for range 64 {
		m, err := RandomMAC()
		if err != nil {
			t.Fatal(err)
		}
		if !format.MatchString(m) {
			t.Fatalf("RandomMAC() = %q, want fa:16:3e:xx:xx:xx", m)
		}
		seen[m] = true
	}
	if len(seen) < 2 {
		t.Errorf("RandomMAC returned the same address 64 times")
	}
	for _, tc := range []struct{ in, want string }{
		{"FA:16:3E:AA:BB:CC", "fa:16:3e:aa:bb:cc"},
		{"fa-16-3e-aa-bb-cc", "fa:16:3e:aa:bb:cc"},
		{"01:00:5e:00:00:01", ""}, // multicast
		{"00:00:00:00:00:00", ""},
		{"fa:16:3e:aa:bb", ""},
		{"garbage", ""},
	} {
		got, err := NormalizeMAC(tc.in)
		if (tc.want == "") != (err != nil) || got != tc.want {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
