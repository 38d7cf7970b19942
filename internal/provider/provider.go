// Package provider defines what the orchestrator needs from the cloud: a
// Network provider (Neutron, or the embedded network API) and a Compute
// provider (Nova, or local namespaces). Implementations live in
// sub-packages; the state machines only see these interfaces.
package provider

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ErrNotFound means the object does not exist (any more): for a resource,
// that it is gone and its instance must be deleted.
var ErrNotFound = errors.New("not found")

// Port names of the appliance's own ports: ASTARA:<label>:<resource id>.
const (
	LabelManagement   = "MGT"
	LabelVRRP         = "VRRP"
	LabelLoadBalancer = "LB"
)

// ServicePortName returns the name of an appliance port.
func ServicePortName(label, resourceID string) string { return "ASTARA:" + label + ":" + resourceID }

// Device owners of router ports, as Neutron sets them.
const (
	OwnerRouterInterface   = "network:router_interface"
	OwnerHARouterInterface = "network:ha_router_replicated_interface"
	OwnerRouterGateway     = "network:router_gateway"
	OwnerFloatingIP        = "network:floatingip"
	OwnerDHCP              = "network:dhcp"
)

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID string
	Address  netip.Addr
}

// Port is a Neutron port.
type Port struct {
	ID          string
	Name        string
	NetworkID   string
	TenantID    string
	MAC         string
	FixedIPs    []FixedIP
	DeviceID    string
	DeviceOwner string
}

// HostRoute is a subnet host route.
type HostRoute struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

// Subnet is a Neutron subnet.
type Subnet struct {
	ID              string
	NetworkID       string
	TenantID        string
	Name            string
	CIDR            netip.Prefix
	GatewayIP       netip.Addr // invalid: no gateway
	EnableDHCP      bool
	DNSNameservers  []netip.Addr
	HostRoutes      []HostRoute
	IPv6RAMode      string // "", slaac, dhcpv6-stateful, dhcpv6-stateless
	IPv6AddressMode string
}

// Network is a Neutron network with its subnets.
type Network struct {
	ID       string
	Name     string
	TenantID string
	MTU      int
	External bool
	Subnets  []Subnet
}

// FloatingIP is a floating IP associated with a router.
type FloatingIP struct {
	ID         string
	FloatingIP netip.Addr
	FixedIP    netip.Addr // invalid when not associated
	PortID     string
	RouterID   string
	TenantID   string
}

// Router is a Neutron router with everything its appliance needs.
type Router struct {
	ID           string
	Name         string
	TenantID     string
	Status       string
	AdminStateUp bool
	HA           bool
	// GatewayPort is the router's port on the external network (nil: no gateway).
	GatewayPort *Port
	// Interfaces are the router's ports on tenant networks.
	Interfaces  []Port
	FloatingIPs []FloatingIP
	Tags        []string
}

// RouterRef is a router as listed: enough to manage it.
type RouterRef struct {
	ID       string
	TenantID string
}

// PortFilter selects ports; empty fields match anything.
type PortFilter struct {
	NetworkID string
	DeviceID  string
	Name      string
}

// NetworkAPI is what the orchestrator reads from and writes to the network API.
type NetworkAPI interface {
	// GetRouter returns the router with its gateway port, interfaces and
	// floating IPs; ErrNotFound when it is gone.
	GetRouter(ctx context.Context, id string) (*Router, error)
	// ListRouters lists every router (all tenants).
	ListRouters(ctx context.Context) ([]RouterRef, error)
	// RoutersOfTenant lists a tenant's routers.
	RoutersOfTenant(ctx context.Context, tenantID string) ([]RouterRef, error)
	// GetNetwork returns a network with its subnets; ErrNotFound when gone.
	GetNetwork(ctx context.Context, id string) (*Network, error)
	// ListPorts lists the ports matching f.
	ListPorts(ctx context.Context, f PortFilter) ([]Port, error)
	// CreateServicePort creates an appliance port ASTARA:<label>:<resourceID>
	// on a network: no fixed IPs (the management port excepted, which gets
	// an address on the management subnet) and port security off.
	CreateServicePort(ctx context.Context, label, resourceID, networkID string) (*Port, error)
	// DeleteServicePorts deletes the appliance ports ASTARA:<label>:<resourceID>.
	DeleteServicePorts(ctx context.Context, label, resourceID string) error
	// SetRouterStatus publishes the router's state (ACTIVE, BUILD, DOWN, ERROR).
	SetRouterStatus(ctx context.Context, id, status string) error
}

// InstanceStatus is a compute instance's status as the compute API reports it.
type InstanceStatus string

// The statuses the orchestrator distinguishes.
const (
	InstanceBuild  InstanceStatus = "BUILD"
	InstanceActive InstanceStatus = "ACTIVE"
	InstanceError  InstanceStatus = "ERROR"
	InstanceOther  InstanceStatus = "OTHER"
)

// Instance is one service instance (a VM, or a namespace in local mode).
type Instance struct {
	ID      string
	Name    string
	ImageID string
	Status  InstanceStatus
	Created time.Time
	// PortIDs are the ports attached to the instance.
	PortIDs []string
}

// BootSpec describes an instance to boot.
type BootSpec struct {
	Name     string
	ImageID  string
	FlavorID string
	// ManagementPort is attached first; Ports follow in order.
	ManagementPort Port
	Ports          []Port
	// UserData is given to the instance (config drive): it tells the
	// appliance its management MAC and address.
	UserData []byte
}

// ComputeAPI boots, finds and deletes service instances.
type ComputeAPI interface {
	Boot(ctx context.Context, spec BootSpec) (*Instance, error)
	// Get returns an instance; ErrNotFound when it does not exist.
	Get(ctx context.Context, id string) (*Instance, error)
	// ListByPrefix lists the instances whose name starts with prefix.
	ListByPrefix(ctx context.Context, prefix string) ([]Instance, error)
	// Delete deletes an instance; deleting a missing one is not an error.
	Delete(ctx context.Context, id string) error
	AttachPort(ctx context.Context, instanceID string, port Port) error
	DetachPort(ctx context.Context, instanceID, portID string) error
}
