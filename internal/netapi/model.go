package netapi

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

// The records the database keeps, one JSON document per object. They hold
// what the API serves; attributes Neutron computes (a network's subnets
// excepted) are derived when rendering.

// standard holds Neutron's "standard attributes" of every resource.
type standard struct {
	// AttrID is Neutron's standard_attr_id: a sequence over every object,
	// which also orders lists in creation order.
	AttrID      int64     `json:"standard_attr_id"`
	Description string    `json:"description"`
	Tags        []string  `json:"tags"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Revision    int64     `json:"revision_number"`
}

func (s *standard) std() *standard { return s }

// touch records a change made at now: a new revision and update time.
func (s *standard) touch(now time.Time) {
	s.Revision++
	s.UpdatedAt = now
}

// record is what every stored object is.
type record interface {
	std() *standard
	id() string
}

type network struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	TenantID string `json:"tenant_id"`
	standard
	AdminStateUp    bool     `json:"admin_state_up"`
	Shared          bool     `json:"shared"`
	External        bool     `json:"router:external"`
	MTU             int      `json:"mtu"`
	PortSecurity    bool     `json:"port_security_enabled"`
	NetworkType     string   `json:"provider:network_type"`
	PhysicalNetwork string   `json:"provider:physical_network,omitempty"`
	SegmentationID  *int     `json:"provider:segmentation_id,omitempty"`
	Subnets         []string `json:"subnets"` // in creation order
}

func (n *network) id() string { return n.ID }

type hostRoute struct {
	Destination netip.Prefix `json:"destination"`
	NextHop     netip.Addr   `json:"nexthop"`
}

type subnet struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	TenantID  string `json:"tenant_id"`
	NetworkID string `json:"network_id"`
	standard
	IPVersion    int          `json:"ip_version"`
	CIDR         netip.Prefix `json:"cidr"`
	GatewayIP    netip.Addr   `json:"gateway_ip"` // invalid: none
	EnableDHCP   bool         `json:"enable_dhcp"`
	RAMode       string       `json:"ipv6_ra_mode,omitempty"`
	AddressMode  string       `json:"ipv6_address_mode,omitempty"`
	Pools        []ipam.Range `json:"allocation_pools"`
	DNS          []netip.Addr `json:"dns_nameservers"`
	HostRoutes   []hostRoute  `json:"host_routes"`
	ServiceTypes []string     `json:"service_types"`
}

func (s *subnet) id() string { return s.ID }

// autoAddress reports whether ports get their address on s by SLAAC
// (Neutron's is_auto_address_subnet).
func (s *subnet) autoAddress() bool {
	return s.IPVersion == 6 && (s.AddressMode == modeSLAAC || s.AddressMode == modeStateless)
}

// The IPv6 modes.
const (
	modeSLAAC     = "slaac"
	modeStateful  = "dhcpv6-stateful"
	modeStateless = "dhcpv6-stateless"
)

type fixedIP struct {
	SubnetID string     `json:"subnet_id"`
	IP       netip.Addr `json:"ip_address"`
}

type addressPair struct {
	IPAddress  string `json:"ip_address"` // an address or a CIDR
	MACAddress string `json:"mac_address"`
}

type port struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	NetworkID string `json:"network_id"`
	TenantID  string `json:"tenant_id"`
	standard
	MAC            string          `json:"mac_address"`
	AdminStateUp   bool            `json:"admin_state_up"`
	DeviceID       string          `json:"device_id"`
	DeviceOwner    string          `json:"device_owner"`
	FixedIPs       []fixedIP       `json:"fixed_ips"`
	PortSecurity   bool            `json:"port_security_enabled"`
	SecurityGroups []string        `json:"security_groups"`
	VNICType       string          `json:"binding:vnic_type"`
	Profile        json.RawMessage `json:"binding:profile"`
	HostID         string          `json:"binding:host_id"`
	AddressPairs   []addressPair   `json:"allowed_address_pairs"`
}

func (p *port) id() string { return p.ID }

type gateway struct {
	NetworkID  string `json:"network_id"`
	EnableSNAT bool   `json:"enable_snat"`
	PortID     string `json:"port_id"`
}

type router struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	TenantID string `json:"tenant_id"`
	standard
	AdminStateUp bool        `json:"admin_state_up"`
	Gateway      *gateway    `json:"gateway,omitempty"`
	Routes       []hostRoute `json:"routes"`
}

func (r *router) id() string { return r.ID }

type floatingIP struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	standard
	Address   netip.Addr `json:"floating_ip_address"`
	NetworkID string     `json:"floating_network_id"`
	PortID    string     `json:"port_id,omitempty"` // the associated port
	FixedIP   netip.Addr `json:"fixed_ip_address"`
	RouterID  string     `json:"router_id,omitempty"`
	OwnPortID string     `json:"own_port_id"` // the network:floatingip port holding Address
}

func (f *floatingIP) id() string { return f.ID }

// Device owners Neutron gives its own ports.
const (
	ownerRouterInterface   = "network:router_interface"
	ownerHAInterface       = "network:ha_router_replicated_interface"
	ownerDVRInterface      = "network:router_interface_distributed"
	ownerRouterGateway     = "network:router_gateway"
	ownerFloatingIP        = "network:floatingip"
	ownerDHCP              = "network:dhcp"
	ownerPrefixNetworkRole = "network:"
)

// routerInterfaceOwner reports whether owner is one of Neutron's
// ROUTER_INTERFACE_OWNERS (which get no SLAAC addresses).
func routerInterfaceOwner(owner string) bool {
	return owner == ownerRouterInterface || owner == ownerHAInterface || owner == ownerDVRInterface
}

// routerOwner reports whether owner is a router's port of any kind.
func routerOwner(owner string) bool {
	return routerInterfaceOwner(owner) || owner == ownerRouterGateway
}
