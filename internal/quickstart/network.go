package quickstart

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/astara-go/astara/internal/provider/neutron"
)

// StateTagPrefix starts the router tag in which the orchestrator publishes
// a router's state (astara:state=ACTIVE).
const StateTagPrefix = "astara:state="

// Network is a network made through the network API, with its one subnet.
type Network struct {
	ID, SubnetID, CIDR, GatewayIP string
}

// Port is a VM's port.
type Port struct {
	ID, NetworkID, IP string
	MAC               net.HardwareAddr
}

// Client makes the demo's resources through the network API: an admin
// client for the external network, a tenant's for the rest, as a user
// would.
type Client struct {
	admin, tenant *gophercloud.ServiceClient
}

// AdminProject is the project of a Client's admin requests.
const AdminProject = "admin"

// NewClient returns a client of the no-auth network API at url acting for
// project (as a member) and as admin.
func NewClient(url, project string) (*Client, error) {
	admin, err := neutron.NoAuthClient(url, AdminProject, nil)
	if err != nil {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	tenant, err := neutron.NoAuthClient(url, project, nil)
	if err != nil {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	t := *tenant
	t.MoreHeaders = maps.Clone(tenant.MoreHeaders)
	t.MoreHeaders["X-Roles"] = "member"
	t.MoreHeaders["X-User-Id"] = project + "-user"
	return &Client{admin: admin, tenant: &t}, nil
}

// External makes an external network with an IPv4 subnet without DHCP
// whose gateway is the upstream host.
func (c *Client) External(ctx context.Context, name, cidr, gateway string) (Network, error) {
	yes := true
	n, err := networks.Create(ctx, c.admin, external.CreateOptsExt{
		CreateOptsBuilder: networks.CreateOpts{Name: name}, External: &yes}).Extract()
	if err != nil {
		return Network{}, fmt.Errorf("creating external network %s: %w", name, err)
	}
	no := false
	s, err := subnets.Create(ctx, c.admin, subnets.CreateOpts{NetworkID: n.ID, Name: name, CIDR: cidr,
		IPVersion: gophercloud.IPv4, GatewayIP: &gateway, EnableDHCP: &no}).Extract()
	if err != nil {
		return Network{}, fmt.Errorf("creating subnet %s of external network %s: %w", cidr, name, err)
	}
	return Network{ID: n.ID, SubnetID: s.ID, CIDR: s.CIDR, GatewayIP: s.GatewayIP}, nil
}

// Tenant makes a tenant network with a DHCP-enabled IPv4 subnet.
func (c *Client) Tenant(ctx context.Context, name, cidr string) (Network, error) {
	n, err := networks.Create(ctx, c.tenant, networks.CreateOpts{Name: name}).Extract()
	if err != nil {
		return Network{}, fmt.Errorf("creating network %s: %w", name, err)
	}
	yes := true
	s, err := subnets.Create(ctx, c.tenant, subnets.CreateOpts{NetworkID: n.ID, Name: name, CIDR: cidr,
		IPVersion: gophercloud.IPv4, EnableDHCP: &yes, DNSNameservers: []string{"192.0.2.53"}}).Extract()
	if err != nil {
		return Network{}, fmt.Errorf("creating subnet %s of network %s: %w", cidr, name, err)
	}
	return Network{ID: n.ID, SubnetID: s.ID, CIDR: s.CIDR, GatewayIP: s.GatewayIP}, nil
}

// Router makes a router with its gateway on the external network ext.
func (c *Client) Router(ctx context.Context, name, ext string) (string, error) {
	up := true
	r, err := routers.Create(ctx, c.tenant, routers.CreateOpts{Name: name, AdminStateUp: &up,
		GatewayInfo: &routers.GatewayInfo{NetworkID: ext}}).Extract()
	if err != nil {
		return "", fmt.Errorf("creating router %s: %w", name, err)
	}
	return r.ID, nil
}

// AddInterface plugs a subnet into a router.
func (c *Client) AddInterface(ctx context.Context, router, subnet string) error {
	if _, err := routers.AddInterface(ctx, c.tenant, router, routers.AddInterfaceOpts{SubnetID: subnet}).Extract(); err != nil {
		return fmt.Errorf("adding subnet %s to router %s: %w", subnet, router, err)
	}
	return nil
}

// VMPort makes a VM's port on a network, its address from the subnet.
func (c *Client) VMPort(ctx context.Context, name, network string) (Port, error) {
	p, err := ports.Create(ctx, c.tenant, ports.CreateOpts{Name: name, NetworkID: network,
		DeviceOwner: "compute:nova", DeviceID: name}).Extract()
	if err != nil {
		return Port{}, fmt.Errorf("creating port %s: %w", name, err)
	}
	mac, err := net.ParseMAC(p.MACAddress)
	if err != nil || len(p.FixedIPs) == 0 {
		return Port{}, fmt.Errorf("port %s: MAC %q, %d addresses", p.ID, p.MACAddress, len(p.FixedIPs))
	}
	return Port{ID: p.ID, NetworkID: network, IP: p.FixedIPs[0].IPAddress, MAC: mac}, nil
}

// FloatingIP makes a floating IP on the external network ext for port.
func (c *Client) FloatingIP(ctx context.Context, ext, port string) (id, addr string, err error) {
	f, err := floatingips.Create(ctx, c.tenant, floatingips.CreateOpts{FloatingNetworkID: ext, PortID: port}).Extract()
	if err != nil {
		return "", "", fmt.Errorf("creating a floating IP for port %s: %w", port, err)
	}
	return f.ID, f.FloatingIP, nil
}

// AssociateFloatingIP points a floating IP at port (PUT
// /v2.0/floatingips/{id}); an empty port disassociates it.
func (c *Client) AssociateFloatingIP(ctx context.Context, id, port string) error {
	// gophercloud sends an empty port as null.
	if _, err := floatingips.Update(ctx, c.tenant, id, floatingips.UpdateOpts{PortID: &port}).Extract(); err != nil {
		return fmt.Errorf("associating floating IP %s with port %q: %w", id, port, err)
	}
	return nil
}

// DeleteFloatingIP deletes a floating IP.
func (c *Client) DeleteFloatingIP(ctx context.Context, id string) error {
	if err := floatingips.Delete(ctx, c.tenant, id).ExtractErr(); err != nil {
		return fmt.Errorf("deleting floating IP %s: %w", id, err)
	}
	return nil
}

// DeleteRouter removes a router's interfaces and deletes it, as a user
// must (Neutron refuses to delete a router with interfaces). Floating IPs
// associated through it must be deleted first: Neutron refuses to remove
// their interface (409 RouterInterfaceInUseByFloatingIP).
func (c *Client) DeleteRouter(ctx context.Context, id string) error {
	pages, err := ports.List(c.tenant, ports.ListOpts{DeviceID: id, DeviceOwner: "network:router_interface"}).AllPages(ctx)
	if err != nil {
		return fmt.Errorf("listing the interfaces of router %s: %w", id, err)
	}
	ifs, err := ports.ExtractPorts(pages)
	if err != nil {
		return fmt.Errorf("listing the interfaces of router %s: %w", id, err)
	}
	for _, p := range ifs {
		if _, err := routers.RemoveInterface(ctx, c.tenant, id, routers.RemoveInterfaceOpts{PortID: p.ID}).Extract(); err != nil {
			return fmt.Errorf("removing interface %s of router %s: %w", p.ID, id, err)
		}
	}
	if err := routers.Delete(ctx, c.tenant, id).ExtractErr(); err != nil {
		return fmt.Errorf("deleting router %s: %w", id, err)
	}
	return nil
}

// RouterState returns the state the orchestrator published on a router
// (its astara:state= tag; "" before the first) and its Neutron status.
func (c *Client) RouterState(ctx context.Context, id string) (state, status string, err error) {
	r, err := routers.Get(ctx, c.tenant, id).Extract()
	if err != nil {
		return "", "", fmt.Errorf("reading router %s: %w", id, err)
	}
	for _, t := range r.Tags {
		if s, ok := strings.CutPrefix(t, StateTagPrefix); ok {
			state = s
		}
	}
	return state, r.Status, nil
}

// RouterExists reports whether the router exists.
func (c *Client) RouterExists(ctx context.Context, id string) (bool, error) {
	_, err := routers.Get(ctx, c.tenant, id).Extract()
	switch {
	case err == nil:
		return true, nil
	case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
		return false, nil
	}
	return false, fmt.Errorf("reading router %s: %w", id, err)
}

// ServicePorts returns the ids of the ports the orchestrator made for a
// router's appliance (named ASTARA:*:<router id>).
func (c *Client) ServicePorts(ctx context.Context, router string) ([]string, error) {
	pages, err := ports.List(c.admin, ports.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing ports: %w", err)
	}
	all, err := ports.ExtractPorts(pages)
	if err != nil {
		return nil, fmt.Errorf("listing ports: %w", err)
	}
	var ids []string
	for _, p := range all {
		if strings.HasPrefix(p.Name, "ASTARA:") && strings.HasSuffix(p.Name, ":"+router) {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// ErrNotYet is a condition not met yet, for waits.
var ErrNotYet = errors.New("not yet")

// RouterGatewayIP returns the router's address on its external network.
func (c *Client) RouterGatewayIP(ctx context.Context, id string) (string, error) {
	r, err := routers.Get(ctx, c.tenant, id).Extract()
	if err != nil {
		return "", fmt.Errorf("reading router %s: %w", id, err)
	}
	if len(r.GatewayInfo.ExternalFixedIPs) == 0 {
		return "", fmt.Errorf("router %s has no external address", id)
	}
	return r.GatewayInfo.ExternalFixedIPs[0].IPAddress, nil
}

// WaitRouterState waits until the orchestrator published state on the
// router.
func (c *Client) WaitRouterState(ctx context.Context, id, state string) error {
	last := ""
	return Wait(ctx, "router "+id+" "+state, func() error {
		s, _, err := c.RouterState(ctx, id)
		if err != nil {
			return err
		}
		if s != state {
			last = s
			return fmt.Errorf("%w: state %q", ErrNotYet, last)
		}
		return nil
	})
}
