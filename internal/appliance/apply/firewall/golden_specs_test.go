package firewall

import "net/netip"

var (
	ap = netip.MustParseAddr
	pp = netip.MustParsePrefix
)

// fullSpec exercises every feature: management ports, an external network
// with SNAT and BGP peers, internal and isolated tenants with DHCP/DNS flags
// and metadata, floating IPs.
func fullSpec() Spec {
	return Spec{
		Management:         []string{"eth0"},
		ManagementTCPPorts: []uint16{22, 5000},
		External: &External{
			IfName:   "eth2",
			SNATAddr: ap("172.16.0.2"),
			BGPPeers: []netip.Addr{ap("172.16.0.3"), ap("2001:db8::1")},
		},
		Tenants: []Tenant{
			{IfName: "eth1", Internal: true, V4Subnets: []netip.Prefix{pp("10.0.0.0/24")},
				DHCPv4: true, DHCPv6: true, DNS: true, Metadata: netip.MustParseAddrPort("10.0.0.1:9601")},
			{IfName: "eth3", Internal: true, V4Subnets: []netip.Prefix{pp("10.1.0.0/24")},
				Metadata: netip.MustParseAddrPort("10.1.0.1:9603")},
			{IfName: "eth4", V4Subnets: []netip.Prefix{pp("10.9.0.0/24")}, DHCPv4: true, DNS: true},
		},
		FloatingIPs: []FloatingIP{
			{Floating: ap("172.16.0.11"), Fixed: ap("10.0.0.5")},
			{Floating: ap("172.16.0.10"), Fixed: ap("10.0.0.4")},
		},
	}
}

func goldenSpecs() map[string]Spec {
	return map[string]Spec{
		"full":  fullSpec(),
		"empty": {},
		"no_external": {
			Management:         []string{"eth0"},
			ManagementTCPPorts: []uint16{22},
			Tenants: []Tenant{{IfName: "eth1", Internal: true, V4Subnets: []netip.Prefix{pp("10.0.0.0/24")},
				DHCPv4: true, Metadata: netip.MustParseAddrPort("10.0.0.1:9601")}},
		},
		"isolated_only": {
			Management:         []string{"eth0", "eth9"},
			ManagementTCPPorts: []uint16{5000},
			Tenants:            []Tenant{{IfName: "eth1", V4Subnets: []netip.Prefix{pp("10.0.0.0/24")}, DHCPv6: true}},
		},
		"external_no_snat": {
			External: &External{IfName: "ens5"},
			Tenants: []Tenant{{IfName: "ens6", Internal: true, V4Subnets: []netip.Prefix{
				pp("10.0.1.0/24"), pp("10.0.0.0/24"), pp("10.0.2.0/24"), pp("10.0.0.128/25"),
				pp("192.168.1.7/24"), pp("255.255.255.0/24"), pp("172.20.0.0/16")}}},
			FloatingIPs: []FloatingIP{{Floating: ap("203.0.113.5"), Fixed: ap("10.0.0.9")}},
		},
	}
}
