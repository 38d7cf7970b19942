// Package model defines the router configuration document that the orchestrator
// pushes to an appliance, and how it is decoded and validated.
//
// A Document is the whole desired state of one router appliance. Decode turns
// JSON (the orchestrator's top-level shape, or the {"configuration": {...}}
// wrapper the appliance API documents) into a validated Document, or returns
// an error naming every offending field.
package model

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
)

// Defaults the original appliance applied when the orchestrator left a field out.
const (
	DefaultASN                 = 64512
	DefaultMetadataPort        = 9697
	DefaultOrchestratorAddress = "fdca:3ba5:a17a:acda::1"
	// BaseMetadataPort is the first local port of the per-network metadata
	// proxies: the proxy of interface geN listens on BaseMetadataPort+N.
	BaseMetadataPort = 9600
	// MetadataAddress is the well-known address instances send metadata requests to.
	MetadataAddress = "169.254.169.254"
)

// NetworkType says what role a network plays for the router.
type NetworkType string

// The network types the appliance understands.
const (
	NetworkExternal     NetworkType = "external"
	NetworkInternal     NetworkType = "internal"
	NetworkIsolated     NetworkType = "isolated"
	NetworkManagement   NetworkType = "management"
	NetworkLoadBalancer NetworkType = "loadbalancer"
)

// Document is the whole configuration of one router appliance.
type Document struct {
	// Generation increases with every change the orchestrator makes; an
	// appliance refuses a document older than the one it applied. Zero means
	// "not tracked" and is always accepted.
	Generation       uint64       `json:"generation,omitempty"`
	TenantID         string       `json:"tenant_id"`
	Hostname         string       `json:"hostname"`
	ASN              uint32       `json:"asn"`
	NeighborASN      uint32       `json:"neighbor_asn"`
	DefaultV4Gateway netip.Addr   `json:"default_v4_gateway"`
	HAResource       bool         `json:"ha_resource"`
	Networks         []Network    `json:"networks"`
	FloatingIPs      []FloatingIP `json:"floating_ips"`
	Orchestrator     Orchestrator `json:"orchestrator"`
	// StaticRoutes, Labels, AddressBook and Anchors are accepted and echoed
	// for compatibility with the original API; the router does not use them.
	StaticRoutes []StaticRoute             `json:"static_routes,omitempty"`
	Labels       map[string][]netip.Prefix `json:"labels,omitempty"`
	AddressBook  map[string][]netip.Prefix `json:"address_book,omitempty"`
	Anchors      []json.RawMessage         `json:"anchors,omitempty"`
}

// Network is one network the router is attached to, with its interface.
type Network struct {
	ID            string       `json:"network_id"`
	Name          string       `json:"name,omitempty"`
	Type          NetworkType  `json:"network_type"`
	V4ConfService string       `json:"v4_conf_service"`
	V6ConfService string       `json:"v6_conf_service"`
	MTU           int          `json:"mtu,omitempty"`
	Interface     Interface    `json:"interface"`
	Subnets       []Subnet     `json:"subnets"`
	Allocations   []Allocation `json:"allocations"`
}

// Interface is the appliance's port on a network, by generic name (ge0, ge1, ...).
type Interface struct {
	IfName    string         `json:"ifname"`
	Addresses []netip.Prefix `json:"addresses"`
	MTU       int            `json:"mtu,omitempty"`
	LLAddr    string         `json:"lladdr,omitempty"`
}

// Subnet is a Neutron subnet on a network.
type Subnet struct {
	ID             string       `json:"id"`
	CIDR           netip.Prefix `json:"cidr"`
	GatewayIP      netip.Addr   `json:"gateway_ip"`
	DHCPEnabled    bool         `json:"dhcp_enabled"`
	DNSNameservers []netip.Addr `json:"dns_nameservers"`
	HostRoutes     []HostRoute  `json:"host_routes"`
}

// HostRoute is a route pushed to instances (DHCP option 121) and installed on the router.
type HostRoute struct {
	Destination netip.Prefix `json:"destination"`
	NextHop     netip.Addr   `json:"nexthop"`
}

// StaticRoute is a legacy [destination, next hop] pair; accepted and echoed only.
type StaticRoute struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

// MarshalJSON encodes the route as the original's two-element list.
func (r StaticRoute) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]string{r.Destination.String(), r.NextHop.String()})
}

// Allocation is one instance port on a tenant network: its MAC and addresses.
type Allocation struct {
	MACAddress string `json:"mac_address"`
	// IPAddresses maps each address of the port to whether DHCP serves it.
	IPAddresses map[netip.Addr]bool `json:"ip_addresses"`
	Hostname    string              `json:"hostname"`
	DeviceID    string              `json:"device_id"`
}

// FloatingIP maps a public address on the external network to an instance's fixed address.
type FloatingIP struct {
	FloatingIP netip.Addr `json:"floating_ip"`
	FixedIP    netip.Addr `json:"fixed_ip"`
}

// Orchestrator says where the appliance forwards metadata requests.
type Orchestrator struct {
	Address      netip.Addr `json:"address"`
	MetadataPort uint16     `json:"metadata_port"`
	Host         string     `json:"host,omitempty"`
}

// IsTenant reports whether instances live on the network (internal or isolated).
func (n *Network) IsTenant() bool {
	return n.Type == NetworkInternal || n.Type == NetworkIsolated
}

// Management returns the management network, or nil.
func (d *Document) Management() *Network { return d.firstOfType(NetworkManagement) }

// External returns the external network, or nil.
func (d *Document) External() *Network { return d.firstOfType(NetworkExternal) }

func (d *Document) firstOfType(t NetworkType) *Network {
	for i := range d.Networks {
		if d.Networks[i].Type == t {
			return &d.Networks[i]
		}
	}
	return nil
}

// FirstV4 returns the numerically lowest IPv4 address of the interface.
func (i *Interface) FirstV4() (netip.Prefix, bool) { return i.first(true) }

// FirstV6 returns the numerically lowest IPv6 address of the interface.
func (i *Interface) FirstV6() (netip.Prefix, bool) { return i.first(false) }

func (i *Interface) first(v4 bool) (netip.Prefix, bool) {
	var best netip.Prefix
	for _, p := range i.Addresses {
		if p.Addr().Is4() != v4 {
			continue
		}
		if !best.IsValid() || p.Addr().Less(best.Addr()) {
			best = p
		}
	}
	return best, best.IsValid()
}

// GenericIndex returns N for a generic interface name "geN".
func GenericIndex(ifname string) (int, bool) {
	digits, ok := strings.CutPrefix(ifname, "ge")
	if !ok || digits == "" || len(digits) > 4 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	// Digits only: strconv.Atoi alone also takes a sign ("ge+1", "ge-0").
	if strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0, false
	}
	return n, true
}

// MetadataPort returns the local port of the metadata proxy for a tenant interface.
func MetadataPort(ifname string) (uint16, bool) {
	n, ok := GenericIndex(ifname)
	if !ok {
		return 0, false
	}
	return uint16(BaseMetadataPort + n), true
}
