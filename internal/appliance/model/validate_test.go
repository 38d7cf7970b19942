package model

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// TestDecodeRejects edits the valid example document in one way per case
// and checks the exact list of field errors Decode reports.
func TestDecodeRejects(t *testing.T) {
	num := func(s string) json.Number { return json.Number(s) }
	long := func(n int) string { return strings.Repeat("a", n) }
	noExternal := []edit{del("networks[1]"), del("default_v4_gateway")}

	tests := []struct {
		name  string
		edits []edit
		want  []wantErr
	}{
		// Identity.
		{"tenant_id missing", []edit{del("tenant_id")}, []wantErr{{"tenant_id", "required"}}},
		{"tenant_id empty", []edit{set("tenant_id", "")}, []wantErr{{"tenant_id", "required"}}},
		{"tenant_id null", []edit{set("tenant_id", nil)}, []wantErr{{"tenant_id", "required"}}},
		{"tenant_id space", []edit{set("tenant_id", "a b")}, []wantErr{{"tenant_id", `"a b" must be 1-255 characters from [A-Za-z0-9._:@-]`}}},
		{"tenant_id newline", []edit{set("tenant_id", "a\nX-Evil: 1")}, []wantErr{{"tenant_id", "must be 1-255 characters"}}},
		{"tenant_id slash", []edit{set("tenant_id", "../etc")}, []wantErr{{"tenant_id", "must be 1-255 characters"}}},
		{"tenant_id 256 characters", []edit{set("tenant_id", long(256))}, []wantErr{{"tenant_id", "must be 1-255 characters"}}},
		{"hostname missing", []edit{del("hostname")}, []wantErr{{"hostname", "required"}}},
		{"hostname empty", []edit{set("hostname", "")}, []wantErr{{"hostname", "required"}}},
		{"hostname underscore", []edit{set("hostname", "ak_router")}, []wantErr{{"hostname", `"ak_router" is not a valid host name`}}},
		{"hostname leading hyphen", []edit{set("hostname", "-ak")}, []wantErr{{"hostname", "not a valid host name"}}},
		{"hostname trailing hyphen", []edit{set("hostname", "ak-.example")}, []wantErr{{"hostname", "not a valid host name"}}},
		{"hostname empty label", []edit{set("hostname", "ak..example")}, []wantErr{{"hostname", "not a valid host name"}}},
		{"hostname only a dot", []edit{set("hostname", ".")}, []wantErr{{"hostname", "not a valid host name"}}},
		{"hostname label of 64", []edit{set("hostname", long(64))}, []wantErr{{"hostname", "not a valid host name"}}},
		{"hostname of 255", []edit{set("hostname", long(63)+"."+long(63)+"."+long(63)+"."+long(63))}, []wantErr{{"hostname", "not a valid host name"}}},
		{"hostname newline", []edit{set("hostname", "ak\nevil")}, []wantErr{{"hostname", "not a valid host name"}}},

		// Numbers: asn, neighbor_asn, generation.
		{"asn zero", []edit{set("asn", 0)}, []wantErr{{"asn", "must be an integer between 1 and 4294967295, not 0"}}},
		{"asn too big", []edit{set("asn", num("4294967296"))}, []wantErr{{"asn", "not 4294967296"}}},
		{"asn negative", []edit{set("asn", -1)}, []wantErr{{"asn", "not -1"}}},
		{"asn fraction", []edit{set("asn", num("64512.5"))}, []wantErr{{"asn", "not 64512.5"}}},
		{"asn integral fraction", []edit{set("asn", num("64512.0"))}, []wantErr{{"asn", "not 64512.0"}}},
		{"asn exponent", []edit{set("asn", num("6.4512e4"))}, []wantErr{{"asn", "not 6.4512e4"}}},
		{"asn huge", []edit{set("asn", num("1"+strings.Repeat("0", 40)))}, []wantErr{{"asn", "between 1 and 4294967295"}}},
		{"neighbor_asn zero", []edit{set("neighbor_asn", 0)}, []wantErr{{"neighbor_asn", "must be an integer between 1 and 4294967295, not 0"}}},
		{"neighbor_asn too big", []edit{set("neighbor_asn", num("4294967296"))}, []wantErr{{"neighbor_asn", "not 4294967296"}}},
		{"generation negative", []edit{set("generation", -1)}, []wantErr{{"generation", "must be an integer between 0 and 18446744073709551615, not -1"}}},
		{"generation too big", []edit{set("generation", num("18446744073709551616"))}, []wantErr{{"generation", "not 18446744073709551616"}}},
		{"generation fraction", []edit{set("generation", num("1.0"))}, []wantErr{{"generation", "not 1.0"}}},

		// Default gateway.
		{"default_v4_gateway IPv6", []edit{set("default_v4_gateway", "2001:db8:77::1")}, []wantErr{{"default_v4_gateway", "2001:db8:77::1 is not an IPv4 address"}}},
		{"default_v4_gateway not an address", []edit{set("default_v4_gateway", "gateway")}, []wantErr{{"default_v4_gateway", `"gateway" is not an IP address`}}},
		{"default_v4_gateway with prefix", []edit{set("default_v4_gateway", "172.16.77.1/24")}, []wantErr{{"default_v4_gateway", "is not an IP address"}}},
		{"default_v4_gateway IPv4-mapped", []edit{set("default_v4_gateway", "::ffff:172.16.77.1")}, []wantErr{{"default_v4_gateway", "write IPv4 addresses in dotted form"}}},
		{"default_v4_gateway zoned", []edit{set("default_v4_gateway", "fe80::1%ge1")}, []wantErr{{"default_v4_gateway", "zoned addresses are not allowed"}}},
		{"default_v4_gateway off the external network", []edit{set("default_v4_gateway", "192.168.0.254")}, []wantErr{{"default_v4_gateway", "192.168.0.254 is not on the external network"}}},
		{"default_v4_gateway without external network", append(noExternal[:1:1], set("floating_ips", []any{})), []wantErr{{"default_v4_gateway", "set but the router has no external network"}}},

		// HA and orchestrator.
		{"ha_resource", []edit{set("ha_resource", true)}, []wantErr{{"ha_resource", "HA routers are not supported by this appliance"}}},
		{"orchestrator address", []edit{set("orchestrator.address", "orchestrator.local")}, []wantErr{{"orchestrator.address", `"orchestrator.local" is not an IP address`}}},
		{"orchestrator address zoned", []edit{set("orchestrator.address", "fe80::1%ge0")}, []wantErr{{"orchestrator.address", "zoned addresses are not allowed"}}},
		{"orchestrator metadata_port zero", []edit{set("orchestrator.metadata_port", 0)}, []wantErr{{"orchestrator.metadata_port", "must be an integer between 1 and 65535, not 0"}}},
		{"orchestrator metadata_port too big", []edit{set("orchestrator.metadata_port", 65536)}, []wantErr{{"orchestrator.metadata_port", "not 65536"}}},

		// Networks.
		{"network_id missing", []edit{del("networks[3].network_id")}, []wantErr{{"networks[3].network_id", "required"}}},
		{"network_id empty", []edit{set("networks[3].network_id", "")}, []wantErr{{"networks[3].network_id", "required"}}},
		{"network_id format", []edit{set("networks[3].network_id", "net 3")}, []wantErr{{"networks[3].network_id", `"net 3" must be 1-255 characters`}}},
		{"network_id duplicate", []edit{set("networks[3].network_id", "int-net-id")}, []wantErr{{"networks[3].network_id", `"int-net-id" is also the id of networks[2]`}}},
		{"network_type unknown", []edit{set("networks[3].network_type", "tenant")}, []wantErr{{"networks[3].network_type", `must be one of external|internal|isolated|management, not "tenant"`}}},
		{"network_type empty", []edit{set("networks[3].network_type", "")}, []wantErr{{"networks[3].network_type", `not ""`}}},
		{"network_type wrong case", []edit{set("networks[3].network_type", "Internal")}, []wantErr{{"networks[3].network_type", `not "Internal"`}}},
		{"network_type loadbalancer", []edit{set("networks[3].network_type", "loadbalancer")}, []wantErr{{"networks[3].network_type", "loadbalancer networks belong to load-balancer appliances, not routers"}}},
		{"two external networks", []edit{set("networks[3].network_type", "external")}, []wantErr{{"networks[3].network_type", "a router has at most one external network"}}},
		{"two management networks", []edit{set("networks[3].network_type", "management")}, []wantErr{{"networks[3].network_type", "a router has at most one management network"}}},
		{"v4_conf_service", []edit{set("networks[3].v4_conf_service", "ra")}, []wantErr{{"networks[3].v4_conf_service", `must be one of dhcp|static, not "ra"`}}},
		{"v6_conf_service", []edit{set("networks[3].v6_conf_service", "slaac")}, []wantErr{{"networks[3].v6_conf_service", `must be one of dhcp|ra|static, not "slaac"`}}},
		{"v4_conf_service empty", []edit{set("networks[2].v4_conf_service", "")}, []wantErr{{"networks[2].v4_conf_service", `not ""`}}},
		{"network mtu too big", []edit{set("networks[2].mtu", 65536)}, []wantErr{{"networks[2].mtu", "must be an integer between 0 and 65535, not 65536"}}},

		// Interfaces.
		{"interface missing", []edit{del("networks[3].interface")}, []wantErr{{"networks[3].interface", "required"}}},
		{"interface null", []edit{set("networks[3].interface", nil)}, []wantErr{{"networks[3].interface", "required"}}},
		{"ifname missing", []edit{del("networks[3].interface.ifname")}, []wantErr{{"networks[3].interface.ifname", "required"}}},
		{"ifname real name", []edit{set("networks[3].interface.ifname", "eth3")}, []wantErr{{"networks[3].interface.ifname", `"eth3" must be a generic interface name geN (N = 0..9999)`}}},
		{"ifname leading zero", []edit{set("networks[3].interface.ifname", "ge03")}, []wantErr{{"networks[3].interface.ifname", "must be a generic interface name"}}},
		{"ifname plus sign", []edit{set("networks[3].interface.ifname", "ge+3")}, []wantErr{{"networks[3].interface.ifname", "must be a generic interface name"}}},
		{"ifname too big", []edit{set("networks[3].interface.ifname", "ge10000")}, []wantErr{{"networks[3].interface.ifname", "must be a generic interface name"}}},
		{"ifname duplicate", []edit{set("networks[3].interface.ifname", "ge2")}, []wantErr{{"networks[3].interface.ifname", `"ge2" is also the interface of networks[2]`}}},
		{"lladdr garbage", []edit{set("networks[3].interface.lladdr", "zz")}, []wantErr{{"networks[3].interface.lladdr", `"zz" is not a MAC address (aa:bb:cc:dd:ee:ff)`}}},
		{"lladdr dotted form", []edit{set("networks[3].interface.lladdr", "fa16.3e00.0003")}, []wantErr{{"networks[3].interface.lladdr", "is not a MAC address"}}},
		{"lladdr EUI-64", []edit{set("networks[3].interface.lladdr", "fa:16:3e:00:00:03:00:01")}, []wantErr{{"networks[3].interface.lladdr", "is not a MAC address"}}},
		{"lladdr five bytes", []edit{set("networks[3].interface.lladdr", "fa:16:3e:00:03")}, []wantErr{{"networks[3].interface.lladdr", "is not a MAC address"}}},

		// Interface addresses.
		{"address without prefix length", []edit{set("networks[3].interface.addresses[0]", "10.1.0.1")}, []wantErr{{"networks[3].interface.addresses[0]", `"10.1.0.1" is not an address/prefix-length`}}},
		{"address bad CIDR", []edit{set("networks[3].interface.addresses[0]", "10.1.0.1/33")}, []wantErr{{"networks[3].interface.addresses[0]", "is not an address/prefix-length"}}},
		{"address zoned", []edit{set("networks[3].interface.addresses[0]", "fe80::1%ge3/64")}, []wantErr{{"networks[3].interface.addresses[0]", "is not an address/prefix-length"}}},
		{"address IPv4-mapped", []edit{set("networks[3].interface.addresses[0]", "::ffff:10.1.0.1/120")}, []wantErr{{"networks[3].interface.addresses[0]", "write IPv4 prefixes in dotted form"}}},
		{"address unspecified v4", []edit{set("networks[3].interface.addresses[0]", "0.0.0.0/24")}, []wantErr{{"networks[3].interface.addresses[0]", "0.0.0.0/24 is not a unicast address"}}},
		{"address unspecified v6", []edit{add("networks[3].interface.addresses", "::/64")}, []wantErr{{"networks[3].interface.addresses[1]", "::/64 is not a unicast address"}}},
		{"address multicast v4", []edit{set("networks[3].interface.addresses[0]", "224.0.0.5/24")}, []wantErr{{"networks[3].interface.addresses[0]", "is not a unicast address"}}},
		{"address multicast v6", []edit{add("networks[3].interface.addresses", "ff02::1/64")}, []wantErr{{"networks[3].interface.addresses[1]", "is not a unicast address"}}},
		{"address loopback v4", []edit{set("networks[3].interface.addresses[0]", "127.0.0.1/8")}, []wantErr{{"networks[3].interface.addresses[0]", "is not a unicast address"}}},
		{"address loopback v6", []edit{add("networks[3].interface.addresses", "::1/128")}, []wantErr{{"networks[3].interface.addresses[1]", "is not a unicast address"}}},
		{"address network address", []edit{set("networks[3].interface.addresses[0]", "10.1.0.0/24")}, []wantErr{{"networks[3].interface.addresses[0]", "10.1.0.0/24 is the network or broadcast address of its subnet"}}},
		{"address broadcast address", []edit{set("networks[3].interface.addresses[0]", "10.1.0.255/24")}, []wantErr{{"networks[3].interface.addresses[0]", "is the network or broadcast address"}}},
		{"address broadcast of /30", []edit{set("networks[3].interface.addresses[0]", "10.1.0.3/30")}, []wantErr{{"networks[3].interface.addresses[0]", "is the network or broadcast address"}}},
		{"address prefix length 0 v4", []edit{set("networks[3].interface.addresses[0]", "10.1.0.1/0")}, []wantErr{{"networks[3].interface.addresses[0]", "prefix length 0 is not an interface address"}}},
		{"address prefix length 0 v6", []edit{add("networks[3].interface.addresses", "2001:db8:3::1/0")}, []wantErr{{"networks[3].interface.addresses[1]", "prefix length 0 is not an interface address"}}},
		{"address on two interfaces", []edit{set("networks[3].interface.addresses[0]", "192.168.0.1/24")}, []wantErr{{"networks[3].interface.addresses[0]", "192.168.0.1 is also assigned at networks[2].interface.addresses[0]"}}},
		{"address twice on one interface", []edit{add("networks[3].interface.addresses", "10.1.0.1/25")}, []wantErr{{"networks[3].interface.addresses[1]", "10.1.0.1 is also assigned at networks[3].interface.addresses[0]"}}},
		{"v6 address on two interfaces", []edit{add("networks[3].interface.addresses", "2001:db8:77::2/64")}, []wantErr{{"networks[3].interface.addresses[1]", "2001:db8:77::2 is also assigned at networks[1].interface.addresses[1]"}}},

		// MTU.
		{"mtu below IPv4 minimum", []edit{set("networks[3].interface.mtu", 67)}, []wantErr{{"networks[3].interface.mtu", "must be between 68 and 65535, not 67"}}},
		{"mtu below IPv6 minimum", []edit{set("networks[2].interface.mtu", 1279)}, []wantErr{{"networks[2].interface.mtu", "must be between 1280 and 65535, not 1279"}}},
		{"mtu below IPv6 minimum on v6-only interface", []edit{set("networks[0].interface.mtu", 1000)}, []wantErr{{"networks[0].interface.mtu", "must be between 1280 and 65535, not 1000"}}},
		{"mtu too big", []edit{set("networks[3].interface.mtu", 65536)}, []wantErr{{"networks[3].interface.mtu", "must be an integer between 0 and 65535, not 65536"}}},
		{"mtu negative", []edit{set("networks[3].interface.mtu", -1500)}, []wantErr{{"networks[3].interface.mtu", "not -1500"}}},
		{"mtu fraction", []edit{set("networks[3].interface.mtu", num("1500.5"))}, []wantErr{{"networks[3].interface.mtu", "not 1500.5"}}},

		// Subnets.
		{"subnet id missing", []edit{del("networks[3].subnets[0].id")}, []wantErr{{"networks[3].subnets[0].id", "required"}}},
		{"subnet id format", []edit{set("networks[3].subnets[0].id", "sub/net")}, []wantErr{{"networks[3].subnets[0].id", `"sub/net" must be 1-255 characters`}}},
		{"subnet id duplicate", []edit{set("networks[3].subnets[0].id", "int-v6-subnet-id")}, []wantErr{{"networks[3].subnets[0].id", `"int-v6-subnet-id" is also the id of networks[2].subnets[1]`}}},
		{"subnet cidr missing", []edit{del("networks[3].subnets[0].cidr")}, []wantErr{{"networks[3].subnets[0].cidr", "required"}}},
		{"subnet cidr empty", []edit{set("networks[3].subnets[0].cidr", "")}, []wantErr{{"networks[3].subnets[0].cidr", `"" is not an address/prefix-length`}}},
		{"subnet cidr without length", []edit{set("networks[3].subnets[0].cidr", "10.1.0.0")}, []wantErr{{"networks[3].subnets[0].cidr", `"10.1.0.0" is not an address/prefix-length`}}},
		{"subnet cidr host bits", []edit{set("networks[3].subnets[0].cidr", "10.1.0.1/24")}, []wantErr{{"networks[3].subnets[0].cidr", `"10.1.0.1/24" has host bits set (did you mean 10.1.0.0/24?)`}}},
		{"subnet cidr v6 host bits", []edit{set("networks[2].subnets[1].cidr", "fdd6:a1fa:cfa8:9df::1/64")}, []wantErr{{"networks[2].subnets[1].cidr", "did you mean fdd6:a1fa:cfa8:9df::/64?"}}},
		{"subnet cidr IPv4-mapped", []edit{set("networks[3].subnets[0].cidr", "::ffff:10.1.0.0/120")}, []wantErr{{"networks[3].subnets[0].cidr", "write IPv4 prefixes in dotted form"}}},
		{"subnet gateway outside", []edit{set("networks[3].subnets[0].gateway_ip", "10.2.0.1")}, []wantErr{{"networks[3].subnets[0].gateway_ip", "10.2.0.1 is not inside the subnet 10.1.0.0/24"}}},
		{"subnet gateway other family", []edit{set("networks[3].subnets[0].gateway_ip", "2001:db8::1")}, []wantErr{{"networks[3].subnets[0].gateway_ip", "2001:db8::1 is not inside the subnet 10.1.0.0/24"}}},
		{"subnet gateway not an address", []edit{set("networks[3].subnets[0].gateway_ip", "10.1.0")}, []wantErr{{"networks[3].subnets[0].gateway_ip", `"10.1.0" is not an IP address`}}},
		{"subnet dhcp_enabled missing", []edit{del("networks[3].subnets[0].dhcp_enabled")}, []wantErr{{"networks[3].subnets[0].dhcp_enabled", "required"}}},
		{"subnet dhcp_enabled null", []edit{set("networks[3].subnets[0].dhcp_enabled", nil)}, []wantErr{{"networks[3].subnets[0].dhcp_enabled", "required"}}},
		{"dns unspecified", []edit{set("networks[2].subnets[0].dns_nameservers[0]", "0.0.0.0")}, []wantErr{{"networks[2].subnets[0].dns_nameservers[0]", "0.0.0.0 is not a unicast address"}}},
		{"dns multicast", []edit{set("networks[2].subnets[1].dns_nameservers[0]", "ff02::fb")}, []wantErr{{"networks[2].subnets[1].dns_nameservers[0]", "ff02::fb is not a unicast address"}}},
		{"dns not an address", []edit{set("networks[2].subnets[0].dns_nameservers[1]", "dns.example")}, []wantErr{{"networks[2].subnets[0].dns_nameservers[1]", `"dns.example" is not an IP address`}}},
		{"host route destination missing", []edit{del("networks[2].subnets[0].host_routes[0].destination")}, []wantErr{{"networks[2].subnets[0].host_routes[0].destination", "required"}}},
		{"host route destination empty", []edit{set("networks[2].subnets[0].host_routes[0].destination", "")}, []wantErr{{"networks[2].subnets[0].host_routes[0].destination", "required"}}},
		{"host route destination host bits", []edit{set("networks[2].subnets[0].host_routes[0].destination", "10.10.0.1/16")}, []wantErr{{"networks[2].subnets[0].host_routes[0].destination", "has host bits set (did you mean 10.10.0.0/16?)"}}},
		{"host route nexthop missing", []edit{del("networks[2].subnets[0].host_routes[0].nexthop")}, []wantErr{{"networks[2].subnets[0].host_routes[0].nexthop", "required"}}},
		{"host route nexthop not an address", []edit{set("networks[2].subnets[0].host_routes[0].nexthop", "router")}, []wantErr{{"networks[2].subnets[0].host_routes[0].nexthop", `"router" is not an IP address`}}},
		{"host route families differ", []edit{set("networks[2].subnets[0].host_routes[0].nexthop", "fdd6:a1fa:cfa8:9df::fe")}, []wantErr{{"networks[2].subnets[0].host_routes[0].nexthop", "fdd6:a1fa:cfa8:9df::fe and destination 10.10.0.0/16 are of different IP versions"}}},
		{"host route nexthop off-link", []edit{set("networks[2].subnets[0].host_routes[0].nexthop", "10.1.0.254")}, []wantErr{{"networks[2].subnets[0].host_routes[0].nexthop", "10.1.0.254 is not on the subnet 192.168.0.0/24"}}},

		// Allocations.
		{"allocation mac missing", []edit{del("networks[2].allocations[0].mac_address")}, []wantErr{{"networks[2].allocations[0].mac_address", "required"}}},
		{"allocation mac empty", []edit{set("networks[2].allocations[0].mac_address", "")}, []wantErr{{"networks[2].allocations[0].mac_address", "required"}}},
		{"allocation mac garbage", []edit{set("networks[2].allocations[0].mac_address", "fa:16:3e:00:00:0g")}, []wantErr{{"networks[2].allocations[0].mac_address", `"fa:16:3e:00:00:0g" is not a MAC address (aa:bb:cc:dd:ee:ff)`}}},
		{"allocation mac dotted form", []edit{set("networks[2].allocations[0].mac_address", "fa16.3e00.0005")}, []wantErr{{"networks[2].allocations[0].mac_address", "is not a MAC address"}}},
		{"allocation mac EUI-64", []edit{set("networks[2].allocations[0].mac_address", "fa:16:3e:00:00:05:00:01")}, []wantErr{{"networks[2].allocations[0].mac_address", "is not a MAC address"}}},
		{"allocation mac injection", []edit{set("networks[2].allocations[0].mac_address", "fa:16:3e:00:00:05\nx")}, []wantErr{{"networks[2].allocations[0].mac_address", "is not a MAC address"}}},
		{"allocation hostname missing", []edit{del("networks[2].allocations[0].hostname")}, []wantErr{{"networks[2].allocations[0].hostname", "required"}}},
		{"allocation hostname newline", []edit{set("networks[2].allocations[0].hostname", "a\nb")}, []wantErr{{"networks[2].allocations[0].hostname", `"a\nb" is not a valid host name`}}},
		{"allocation hostname dnsmasq option injection", []edit{set("networks[2].allocations[0].hostname", "vm\ndhcp-script=/tmp/x")}, []wantErr{{"networks[2].allocations[0].hostname", "is not a valid host name"}}},
		{"allocation hostname comma", []edit{set("networks[2].allocations[0].hostname", "x,y")}, []wantErr{{"networks[2].allocations[0].hostname", `"x,y" is not a valid host name`}}},
		{"allocation hostname space", []edit{set("networks[2].allocations[0].hostname", "x y")}, []wantErr{{"networks[2].allocations[0].hostname", "is not a valid host name"}}},
		{"allocation hostname lease time", []edit{set("networks[2].allocations[0].hostname", "3600")}, []wantErr{{"networks[2].allocations[0].hostname", "dnsmasq would read it as a lease time"}}},
		{"allocation hostname lease time with unit", []edit{set("networks[2].allocations[0].hostname", "12h.local")}, []wantErr{{"networks[2].allocations[0].hostname", "dnsmasq would read it as a lease time"}}},
		{"allocation hostname keyword", []edit{set("networks[2].allocations[0].hostname", "infinite")}, []wantErr{{"networks[2].allocations[0].hostname", "or keyword"}}},
		{"allocation hostname NUL", []edit{set("networks[2].allocations[0].hostname", "x\x00")}, []wantErr{{"networks[2].allocations[0].hostname", "is not a valid host name"}}},
		{"allocation hostname brackets", []edit{set("networks[2].allocations[0].hostname", "[::1]")}, []wantErr{{"networks[2].allocations[0].hostname", "is not a valid host name"}}},
		{"allocation device_id format", []edit{set("networks[2].allocations[0].device_id", "dev ice")}, []wantErr{{"networks[2].allocations[0].device_id", `"dev ice" must be 1-255 characters`}}},
		{"allocation device_id newline", []edit{set("networks[2].allocations[0].device_id", "a\nb")}, []wantErr{{"networks[2].allocations[0].device_id", "must be 1-255 characters"}}},
		{"allocation ip_addresses missing", []edit{del("networks[2].allocations[0].ip_addresses")}, []wantErr{{"networks[2].allocations[0].ip_addresses", "required"}}},
		{"allocation ip_addresses null", []edit{set("networks[2].allocations[0].ip_addresses", nil)}, []wantErr{{"networks[2].allocations[0].ip_addresses", "required"}}},
		{"allocation ip not an address", []edit{set("networks[2].allocations[0].ip_addresses.bogus", true)}, []wantErr{{"networks[2].allocations[0].ip_addresses[bogus]", `"bogus" is not an IP address`}}},
		{"allocation ip with prefix", []edit{set("networks[2].allocations[1].ip_addresses", map[string]any{"192.168.0.6/24": true})}, []wantErr{{"networks[2].allocations[1].ip_addresses[192.168.0.6/24]", "is not an IP address"}}},
		{"allocation ip IPv4-mapped", []edit{set("networks[2].allocations[1].ip_addresses", map[string]any{"::ffff:192.168.0.6": true})}, []wantErr{{"networks[2].allocations[1].ip_addresses[::ffff:192.168.0.6]", "write IPv4 addresses in dotted form"}}},
		{"allocation ip not in a subnet", []edit{set("networks[2].allocations[1].ip_addresses", map[string]any{"10.1.0.6": true})}, []wantErr{{"networks[2].allocations[1].ip_addresses[10.1.0.6]", `10.1.0.6 is not inside any subnet of network "int-net-id"`}}},

		// Floating IPs.
		{"floating ip IPv6", []edit{set("floating_ips[0].floating_ip", "2001:db8:77::50")}, []wantErr{{"floating_ips[0].floating_ip", "2001:db8:77::50: only IPv4 floating IPs are supported"}}},
		{"floating ip without external network", noExternal, []wantErr{{"floating_ips[0].floating_ip", "the router has no external network"}}},
		{"floating ip outside external subnets", []edit{set("floating_ips[0].floating_ip", "172.16.78.50")}, []wantErr{{"floating_ips[0].floating_ip", "172.16.78.50 is not inside an external subnet"}}},
		{"floating ip in an internal subnet", []edit{set("floating_ips[0].floating_ip", "192.168.0.50")}, []wantErr{{"floating_ips[0].floating_ip", "192.168.0.50 is not inside an external subnet"}}},
		{"floating ip is the router address", []edit{set("floating_ips[0].floating_ip", "172.16.77.2")}, []wantErr{{"floating_ips[0].floating_ip", "172.16.77.2 is the router's own or its gateway's address"}}},
		{"floating ip is the gateway", []edit{set("floating_ips[0].floating_ip", "172.16.77.1")}, []wantErr{{"floating_ips[0].floating_ip", "172.16.77.1 is the router's own or its gateway's address"}}},
		{"floating ip twice", []edit{add("floating_ips", map[string]any{"floating_ip": "172.16.77.50", "fixed_ip": "192.168.0.6"})}, []wantErr{{"floating_ips[1].floating_ip", "172.16.77.50 is also floating_ips[0]"}}},
		{"floating ip missing", []edit{del("floating_ips[0].floating_ip")}, []wantErr{{"floating_ips[0].floating_ip", "required"}}},
		{"floating ip not an address", []edit{set("floating_ips[0].floating_ip", "public")}, []wantErr{{"floating_ips[0].floating_ip", `"public" is not an IP address`}}},
		{"fixed ip missing", []edit{del("floating_ips[0].fixed_ip")}, []wantErr{{"floating_ips[0].fixed_ip", "required"}}},
		{"fixed ip empty", []edit{set("floating_ips[0].fixed_ip", "")}, []wantErr{{"floating_ips[0].fixed_ip", "required"}}},
		{"fixed ip not internal", []edit{set("floating_ips[0].fixed_ip", "10.9.9.9")}, []wantErr{{"floating_ips[0].fixed_ip", "10.9.9.9 is not inside an internal subnet"}}},
		{"fixed ip on the external network", []edit{set("floating_ips[0].fixed_ip", "172.16.77.9")}, []wantErr{{"floating_ips[0].fixed_ip", "172.16.77.9 is not inside an internal subnet"}}},
		{"fixed ip on an isolated network", []edit{set("networks[3].network_type", "isolated"), set("floating_ips[0].fixed_ip", "10.1.0.5")}, []wantErr{{"floating_ips[0].fixed_ip", "10.1.0.5 is not inside an internal subnet"}}},
		{"fixed ip IPv6", []edit{set("floating_ips[0].fixed_ip", "fdd6:a1fa:cfa8:9df::5")}, []wantErr{{"floating_ips[0].fixed_ip", "fdd6:a1fa:cfa8:9df::5: the fixed address of a floating IP must be IPv4"}}},
		{"fixed ip twice", []edit{add("floating_ips", map[string]any{"floating_ip": "172.16.77.51", "fixed_ip": "192.168.0.5"})}, []wantErr{{"floating_ips[1].fixed_ip", "192.168.0.5 already has floating_ips[0]"}}},

		// Legacy keys that are only echoed must still be well-formed.
		{"static route not a pair", []edit{set("static_routes", []any{[]any{"10.0.0.0/8"}})}, []wantErr{{"static_routes[0]", "must be a [destination, next hop] pair"}}},
		{"static route triple", []edit{set("static_routes", []any{[]any{"10.0.0.0/8", "172.16.77.1", "x"}})}, []wantErr{{"static_routes[0]", "must be a [destination, next hop] pair"}}},
		{"static route destination host bits", []edit{set("static_routes", []any{[]any{"10.0.0.1/8", "172.16.77.1"}})}, []wantErr{{"static_routes[0][0]", "has host bits set"}}},
		{"static route next hop", []edit{set("static_routes", []any{[]any{"10.0.0.0/8", "hop"}})}, []wantErr{{"static_routes[0][1]", `"hop" is not an IP address`}}},
		{"label cidr", []edit{set("labels", map[string]any{"web": []any{"10.0.0.0/8", "x"}})}, []wantErr{{"labels.web[1]", `"x" is not an address/prefix-length`}}},

		// Advanced services: a nameless one is malformed, not unsupported.
		{"service without a name", []edit{set("services", map[string]any{"": map[string]any{}, "router": nil})}, []wantErr{{"services", "a service name must not be empty"}}},
		{"vpn kind without a name", []edit{set("vpn", map[string]any{"": []any{map[string]any{}}})}, []wantErr{{"vpn", "a VPN kind must not be empty"}}},
		{"address book cidr", []edit{set("address_book", map[string]any{"db": []any{"10.0.0.5"}})}, []wantErr{{"address_book.db[0]", `"10.0.0.5" is not an address/prefix-length`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Decode(example(t, tc.edits...))
			if doc != nil {
				t.Errorf("Decode returned a document along with the error")
			}
			checkFieldErrors(t, err, tc.want)
		})
	}
}

// TestDecodeAccepts covers the edge values each rule must let through, and
// what they decode to.
func TestDecodeAccepts(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name  string
		edits []edit
		check func(t *testing.T, d *Document)
	}{
		{"tenant_id of 255 characters and every allowed symbol", []edit{set("tenant_id", long(249)+"._:@-9")}, nil},
		{"hostname with trailing dot", []edit{set("hostname", "ak-router.example.")}, func(t *testing.T, d *Document) {
			if d.Hostname != "ak-router.example." {
				t.Errorf("Hostname = %q", d.Hostname)
			}
		}},
		{"hostname of 253", []edit{set("hostname", long(63)+"."+long(63)+"."+long(63)+"."+long(61))}, nil},
		{"hostname label of 63", []edit{set("hostname", long(63))}, nil},
		{"asn bounds", []edit{set("asn", json.Number("4294967295")), set("neighbor_asn", 1)}, func(t *testing.T, d *Document) {
			if d.ASN != 4294967295 || d.NeighborASN != 1 {
				t.Errorf("ASN, NeighborASN = %d, %d; want 4294967295, 1", d.ASN, d.NeighborASN)
			}
		}},
		{"asn null takes the default", []edit{set("asn", nil), del("neighbor_asn")}, func(t *testing.T, d *Document) {
			if d.ASN != DefaultASN || d.NeighborASN != DefaultASN {
				t.Errorf("ASN, NeighborASN = %d, %d; want %d twice", d.ASN, d.NeighborASN, DefaultASN)
			}
		}},
		{"neighbor_asn defaults to asn", []edit{set("asn", 65001), del("neighbor_asn")}, func(t *testing.T, d *Document) {
			if d.NeighborASN != 65001 {
				t.Errorf("NeighborASN = %d, want the asn 65001", d.NeighborASN)
			}
		}},
		{"generation zero", []edit{set("generation", 0)}, nil},
		{"generation maximum", []edit{set("generation", json.Number("18446744073709551615"))}, func(t *testing.T, d *Document) {
			if d.Generation != 18446744073709551615 {
				t.Errorf("Generation = %d", d.Generation)
			}
		}},
		{"default_v4_gateway empty", []edit{set("default_v4_gateway", "")}, func(t *testing.T, d *Document) {
			if d.DefaultV4Gateway.IsValid() {
				t.Errorf("DefaultV4Gateway = %v, want none", d.DefaultV4Gateway)
			}
		}},
		{"default_v4_gateway null", []edit{set("default_v4_gateway", nil)}, nil},
		{"default_v4_gateway empty without external network", []edit{del("networks[1]"), set("default_v4_gateway", ""), set("floating_ips", []any{})}, nil},
		{"default_v4_gateway on the external interface's prefix only", []edit{del("networks[1].subnets[0]"), set("floating_ips", []any{})}, nil},
		{"ha_resource false", []edit{set("ha_resource", false)}, nil},
		{"orchestrator address empty takes the default", []edit{set("orchestrator.address", ""), del("orchestrator.metadata_port")}, func(t *testing.T, d *Document) {
			want := Orchestrator{Address: addr(DefaultOrchestratorAddress), MetadataPort: DefaultMetadataPort, Host: "orchestrator-1"}
			if d.Orchestrator != want {
				t.Errorf("Orchestrator = %+v, want %+v", d.Orchestrator, want)
			}
		}},
		{"orchestrator null", []edit{set("orchestrator", nil)}, func(t *testing.T, d *Document) {
			want := Orchestrator{Address: addr(DefaultOrchestratorAddress), MetadataPort: DefaultMetadataPort}
			if d.Orchestrator != want {
				t.Errorf("Orchestrator = %+v, want %+v", d.Orchestrator, want)
			}
		}},
		{"orchestrator IPv4 and port bounds", []edit{set("orchestrator.address", "10.0.0.1"), set("orchestrator.metadata_port", 65535)}, func(t *testing.T, d *Document) {
			if d.Orchestrator.Address != addr("10.0.0.1") || d.Orchestrator.MetadataPort != 65535 {
				t.Errorf("Orchestrator = %+v", d.Orchestrator)
			}
		}},
		{"network_type missing means isolated", []edit{del("networks[3].network_type")}, func(t *testing.T, d *Document) {
			if d.Networks[3].Type != NetworkIsolated {
				t.Errorf("Type = %q, want isolated", d.Networks[3].Type)
			}
		}},
		{"network_type null means isolated", []edit{set("networks[3].network_type", nil)}, func(t *testing.T, d *Document) {
			if d.Networks[3].Type != NetworkIsolated {
				t.Errorf("Type = %q, want isolated", d.Networks[3].Type)
			}
		}},
		{"conf services dhcp and ra", []edit{set("networks[3].v4_conf_service", "dhcp"), set("networks[3].v6_conf_service", "ra")}, nil},
		{"v6_conf_service dhcp", []edit{set("networks[3].v6_conf_service", "dhcp")}, nil},
		{"network without subnets or allocations", []edit{del("networks[3].subnets"), set("networks[3].allocations", nil)}, nil},
		{"network mtu 0", []edit{set("networks[2].mtu", 0)}, nil},
		{"ifname ge9999", []edit{set("networks[3].interface.ifname", "ge9999")}, nil},
		{"lladdr colons and hyphens", []edit{set("networks[3].interface.lladdr", "FA:16:3E:00:00:03"), set("networks[2].interface.lladdr", "fa-16-3e-00-00-02")}, nil},
		{"address /31 network address", []edit{set("networks[3].interface.addresses[0]", "10.1.0.0/31")}, nil},
		{"address /31 upper address", []edit{set("networks[3].interface.addresses[0]", "10.1.0.1/31")}, nil},
		{"address /32", []edit{set("networks[3].interface.addresses[0]", "10.1.0.255/32")}, nil},
		{"address v6 /128 and link-local", []edit{add("networks[3].interface.addresses", "2001:db8:3::1/128"), add("networks[3].interface.addresses", "fe80::1/64")}, nil},
		{"no addresses", []edit{set("networks[3].interface.addresses", []any{})}, nil},
		{"mtu IPv4 minimum", []edit{set("networks[3].interface.mtu", 68)}, nil},
		{"mtu IPv6 minimum", []edit{set("networks[2].interface.mtu", 1280)}, nil},
		{"mtu maximum", []edit{set("networks[2].interface.mtu", 65535)}, nil},
		{"mtu 0 means unset", []edit{set("networks[2].interface.mtu", 0)}, func(t *testing.T, d *Document) {
			if d.Networks[2].Interface.MTU != 0 {
				t.Errorf("MTU = %d, want 0", d.Networks[2].Interface.MTU)
			}
		}},
		{"subnet without gateway", []edit{set("networks[3].subnets[0].gateway_ip", ""), set("networks[2].subnets[1].gateway_ip", nil)}, nil},
		{"subnet dns of the other family", []edit{set("networks[3].subnets[0].dns_nameservers", []any{"2001:4860:4860::8888", "10.1.0.1"})}, nil},
		{"host route v6", []edit{set("networks[2].subnets[1].host_routes", []any{map[string]any{"destination": "2001:db8:f::/48", "nexthop": "fdd6:a1fa:cfa8:9df::fe"}})}, nil},
		{"host route default", []edit{set("networks[2].subnets[0].host_routes[0].destination", "0.0.0.0/0")}, nil},
		{"allocation mac hyphens and upper case", []edit{set("networks[2].allocations[0].mac_address", "FA-16-3E-00-00-05")}, nil},
		{"allocation without device_id", []edit{del("networks[2].allocations[0].device_id")}, nil},
		{"allocation without addresses", []edit{set("networks[2].allocations[0].ip_addresses", map[string]any{})}, func(t *testing.T, d *Document) {
			if ips := d.Networks[2].Allocations[0].IPAddresses; ips == nil || len(ips) != 0 {
				t.Errorf("IPAddresses = %#v, want an empty map", ips)
			}
		}},
		{"allocation address served without DHCP", []edit{set("networks[2].allocations[1].ip_addresses", map[string]any{"192.168.0.6": false})}, func(t *testing.T, d *Document) {
			if v, ok := d.Networks[2].Allocations[1].IPAddresses[addr("192.168.0.6")]; !ok || v {
				t.Errorf("IPAddresses = %v, want 192.168.0.6: false", d.Networks[2].Allocations[1].IPAddresses)
			}
		}},
		{"floating ip mapped to the second internal network", []edit{set("floating_ips[0].fixed_ip", "10.1.0.5")}, nil},
		{"two floating ips", []edit{add("floating_ips", map[string]any{"floating_ip": "172.16.77.51", "fixed_ip": "192.168.0.6"})}, nil},
		{"no floating ips", []edit{set("floating_ips", nil)}, func(t *testing.T, d *Document) {
			if d.FloatingIPs == nil || len(d.FloatingIPs) != 0 {
				t.Errorf("FloatingIPs = %#v, want empty", d.FloatingIPs)
			}
		}},
		{"legacy keys echoed", []edit{
			set("static_routes", []any{[]any{"10.0.0.0/8", "172.16.77.1"}}),
			set("labels", map[string]any{"web": []any{"10.0.0.1/8"}}),
			set("address_book", map[string]any{"db": []any{"2001:db8::/32"}}),
			set("anchors", []any{map[string]any{"name": "a", "rules": []any{}}}),
		}, func(t *testing.T, d *Document) {
			if len(d.StaticRoutes) != 1 || d.StaticRoutes[0] != (StaticRoute{prefix("10.0.0.0/8"), addr("172.16.77.1")}) {
				t.Errorf("StaticRoutes = %v", d.StaticRoutes)
			}
			if got := d.Labels["web"]; len(got) != 1 || got[0] != prefix("10.0.0.1/8") {
				t.Errorf("Labels = %v; label prefixes keep their host bits", d.Labels)
			}
			if got := d.AddressBook["db"]; len(got) != 1 || got[0] != prefix("2001:db8::/32") {
				t.Errorf("AddressBook = %v", d.AddressBook)
			}
			if len(d.Anchors) != 1 || string(d.Anchors[0]) != `{"name":"a","rules":[]}` {
				t.Errorf("Anchors = %s", d.Anchors)
			}
		}},
		{"unknown keys ignored", []edit{set("ha_config", map[string]any{"peers": []any{}}), set("networks[3].interface.state", "up")}, nil},
		{"router service", []edit{set("services", map[string]any{"router": map[string]any{"asn": 1}})}, nil},
		{"empty advanced services", []edit{set("services", map[string]any{}), set("vpn", map[string]any{"ipsec": []any{}, "other": nil})}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustDecode(t, example(t, tc.edits...))
			if err := d.Validate(); err != nil {
				t.Errorf("Validate() of a decoded document = %v", err)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestDecodeReportsEveryError puts several mistakes in one document.
func TestDecodeReportsEveryError(t *testing.T) {
	t.Run("while converting", func(t *testing.T) {
		_, err := Decode(example(t,
			set("asn", 0),
			set("orchestrator.metadata_port", 70000),
			set("networks[1].interface.addresses[0]", "172.16.77.2"),
			del("networks[2].subnets[0].dhcp_enabled"),
			set("networks[2].allocations[1].ip_addresses", map[string]any{"x": true}),
			set("networks[3].interface.mtu", -1),
			del("networks[3].subnets[0].cidr"),
			set("floating_ips[0].fixed_ip", "y"),
		))
		checkFieldErrors(t, err, []wantErr{
			{"asn", "not 0"},
			{"networks[1].interface.addresses[0]", "is not an address/prefix-length"},
			{"networks[2].subnets[0].dhcp_enabled", "required"},
			{"networks[2].allocations[1].ip_addresses[x]", "is not an IP address"},
			{"networks[3].interface.mtu", "not -1"},
			{"networks[3].subnets[0].cidr", "required"},
			{"floating_ips[0].fixed_ip", "is not an IP address"},
			{"orchestrator.metadata_port", "not 70000"},
		})
	})
	t.Run("while validating", func(t *testing.T) {
		_, err := Decode(example(t,
			set("tenant_id", "a b"),
			set("hostname", "a_b"),
			set("ha_resource", true),
			set("networks[0].network_type", "external"),
			set("networks[2].interface.ifname", "eth2"),
			set("networks[2].interface.mtu", 1279),
			set("networks[2].allocations[0].hostname", "x,y"),
			set("networks[3].network_id", "int-net-id"),
			set("networks[3].subnets[0].gateway_ip", "10.9.0.1"),
			set("default_v4_gateway", "10.9.9.9"),
			set("floating_ips[0].fixed_ip", "172.16.77.9"),
		))
		checkFieldErrors(t, err, []wantErr{
			{"tenant_id", "must be 1-255 characters"},
			{"hostname", "not a valid host name"},
			{"ha_resource", "not supported"},
			{"networks[1].network_type", "at most one external network"},
			{"networks[2].interface.ifname", "must be a generic interface name"},
			{"networks[2].interface.mtu", "between 1280 and 65535"},
			{"networks[2].allocations[0].hostname", "not a valid host name"},
			{"networks[3].network_id", "is also the id of networks[2]"},
			{"networks[3].subnets[0].gateway_ip", "not inside the subnet"},
			{"default_v4_gateway", "not on the external network"},
			// The management network, now the first external one, has no v4 subnet.
			{"floating_ips[0].floating_ip", "not inside an external subnet"},
			{"floating_ips[0].fixed_ip", "not inside an internal subnet"},
		})
	})
}

// TestValidate checks the rules of Validate that Decode cannot reach
// because the decoder fills or refuses the values first.
func TestValidate(t *testing.T) {
	valid := func() *Document {
		return &Document{
			TenantID: "t", Hostname: "h", ASN: 1, NeighborASN: 1,
			Orchestrator: Orchestrator{Address: addr("::1"), MetadataPort: 1},
		}
	}
	tests := []struct {
		name   string
		mutate func(d *Document)
		want   []wantErr
	}{
		{"zero document", func(d *Document) { *d = Document{} }, []wantErr{
			{"tenant_id", "required"},
			{"hostname", "required"},
			{"asn", "must be between 1 and 4294967295"},
			{"neighbor_asn", "must be between 1 and 4294967295"},
			{"orchestrator.address", "required"},
			{"orchestrator.metadata_port", "must be between 1 and 65535"},
		}},
		{"network with zero interface", func(d *Document) {
			d.Networks = []Network{{ID: "n", Type: NetworkInternal, V4ConfService: "static", V6ConfService: "static"}}
		}, []wantErr{{"networks[0].interface.ifname", "required"}}},
		{"zero values left by a failed decode are skipped", func(d *Document) {
			d.Networks = []Network{{
				ID: "n", Type: NetworkInternal, V4ConfService: "static", V6ConfService: "static",
				Interface:   Interface{IfName: "ge0", Addresses: []netip.Prefix{{}}},
				Subnets:     []Subnet{{ID: "s"}, {ID: "s6", CIDR: prefix("2001:db8::/64"), HostRoutes: []HostRoute{{}}}},
				Allocations: []Allocation{{MACAddress: "fa:16:3e:00:00:01", Hostname: "vm"}},
			}}
			d.FloatingIPs = []FloatingIP{{}}
		}, nil},
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("Validate() of the base document = %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := valid()
			tc.mutate(d)
			err := d.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			checkFieldErrors(t, err, tc.want)
		})
	}
}
