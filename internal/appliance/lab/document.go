package lab

import (
	"net/netip"

	"github.com/astara-go/astara/internal/appliance/model"
)

// Tenant and device ids the lab's document uses.
const (
	TenantID = "d22b149cee9b4eac8349c517eda00b89"
	VM1ID    = "11111111-2222-3333-4444-555555555555"
	VM2ID    = "66666666-7777-8888-9999-000000000000"
)

// Document returns a router document for the lab, shaped like the
// orchestrator's (example_config.json): management, external, and two
// internal networks, one floating IP for vm1, metadata sent to the root
// namespace's management address on metadataPort.
func (l *Lab) Document(metadataPort uint16) *model.Document {
	return &model.Document{
		TenantID:         TenantID,
		Hostname:         "ak-" + TenantID,
		ASN:              64512,
		NeighborASN:      64512,
		DefaultV4Gateway: ExtGateway,
		Orchestrator:     model.Orchestrator{Address: l.Orchestrator, MetadataPort: metadataPort, Host: "lab"},
		FloatingIPs:      []model.FloatingIP{{FloatingIP: FloatingIP, FixedIP: VM1IP}},
		Networks: []model.Network{
			{
				ID: "mgt-net-id", Type: model.NetworkManagement, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge0", Addresses: []netip.Prefix{l.ApplianceMgmt}, MTU: 1500},
				Subnets:   []model.Subnet{{ID: "mgt-subnet-id", CIDR: l.MgmtPrefix, GatewayIP: l.Orchestrator, DHCPEnabled: true}},
			},
			{
				ID: "ext-net-id", Type: model.NetworkExternal, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge1", Addresses: []netip.Prefix{RouterExt, RouterExtV6}, MTU: 1500},
				Subnets: []model.Subnet{
					{ID: "ext-v4-subnet-id", CIDR: ExtCIDR, GatewayIP: ExtGateway},
					{ID: "ext-v6-subnet-id", CIDR: ExtV6CIDR, GatewayIP: ExtV6Gateway},
				},
			},
			{
				ID: "int-net-id", Type: model.NetworkInternal, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge2", Addresses: []netip.Prefix{RouterInt1, RouterInt1V6}, MTU: 1450},
				Subnets: []model.Subnet{
					{
						ID: "int-v4-subnet-id", CIDR: Int1CIDR, GatewayIP: RouterInt1.Addr(), DHCPEnabled: true,
						DNSNameservers: []netip.Addr{netip.MustParseAddr("192.0.2.53")},
						HostRoutes:     []model.HostRoute{{Destination: netip.MustParsePrefix("10.10.0.0/16"), NextHop: netip.MustParseAddr("192.168.0.254")}},
					},
					{ID: "int-v6-subnet-id", CIDR: Int1V6CIDR, GatewayIP: RouterInt1V6.Addr(), DHCPEnabled: false},
				},
				Allocations: []model.Allocation{{
					MACAddress:  VM1MAC,
					IPAddresses: map[netip.Addr]bool{VM1IP: true},
					Hostname:    "192-168-0-5.local",
					DeviceID:    VM1ID,
				}},
			},
			{
				ID: "int2-net-id", Type: model.NetworkInternal, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge3", Addresses: []netip.Prefix{RouterInt2}},
				Subnets:   []model.Subnet{{ID: "int2-v4-subnet-id", CIDR: Int2CIDR, GatewayIP: RouterInt2.Addr(), DHCPEnabled: true}},
				Allocations: []model.Allocation{{
					MACAddress:  VM2MAC,
					IPAddresses: map[netip.Addr]bool{VM2IP: true},
					Hostname:    "10-1-0-5.local",
					DeviceID:    VM2ID,
				}},
			},
		},
	}
}
