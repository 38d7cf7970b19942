package memory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/astara-go/astara/internal/provider"
)

// Network is an in-memory provider.NetworkAPI. Populate it with AddNetwork,
// AddRouter, AddPort, AddRouterInterface and AddFloatingIP; a router's
// gateway port and interfaces are the ports whose device is the router, as
// in Neutron.
type Network struct {
	faults
	mu            sync.Mutex
	mgmtNetworkID string
	networks      []*provider.Network
	routers       []*routerRecord
	ports         []*provider.Port
	floatingIPs   []*provider.FloatingIP
	statuses      map[string][]string
	macs          uint32
}

type routerRecord struct {
	provider.Router // GatewayPort, Interfaces and FloatingIPs unused
}

var _ provider.NetworkAPI = (*Network)(nil)

// NewNetwork returns an empty network API whose management network (where
// management ports get an address) is mgmtNetworkID.
func NewNetwork(mgmtNetworkID string) *Network {
	return &Network{mgmtNetworkID: mgmtNetworkID, statuses: map[string][]string{}}
}

// Fail makes the next times calls of the NetworkAPI method op (e.g.
// "CreateServicePort") fail with err; times < 0 fails every call, and a nil
// err or zero times clears the fault.
func (n *Network) Fail(op string, err error, times int) { n.faults.set(op, err, times) }

// AddNetwork adds a network with its subnets (their NetworkID is set).
func (n *Network) AddNetwork(nw provider.Network) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nw.ID == "" {
		return errors.New("AddNetwork: the network needs an id")
	}
	if n.network(nw.ID) != nil {
		return fmt.Errorf("AddNetwork: network %s exists", nw.ID)
	}
	c := copyNetwork(&nw)
	for i := range c.Subnets {
		s := &c.Subnets[i]
		if s.ID == "" || !s.CIDR.IsValid() {
			return fmt.Errorf("AddNetwork %s: subnet %d needs an id and a CIDR", nw.ID, i)
		}
		s.NetworkID = nw.ID
		s.CIDR = s.CIDR.Masked()
	}
	n.networks = append(n.networks, c)
	return nil
}

// AddRouter adds a router. Its GatewayPort and Interfaces, if given, are
// added as ports of the router; its FloatingIPs are added too.
func (n *Network) AddRouter(r provider.Router) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r.ID == "" {
		return errors.New("AddRouter: the router needs an id")
	}
	if n.router(r.ID) != nil {
		return fmt.Errorf("AddRouter: router %s exists", r.ID)
	}
	rec := &routerRecord{Router: r}
	rec.GatewayPort, rec.Interfaces, rec.FloatingIPs = nil, nil, nil
	rec.Tags = slices.Clone(r.Tags)
	if rec.Status == "" {
		rec.Status = "ACTIVE"
	}
	n.routers = append(n.routers, rec)
	if r.GatewayPort != nil {
		p := *r.GatewayPort
		p.DeviceID, p.DeviceOwner = r.ID, provider.OwnerRouterGateway
		if _, err := n.addPort(p); err != nil {
			return fmt.Errorf("AddRouter %s: gateway port: %w", r.ID, err)
		}
	}
	for _, p := range r.Interfaces {
		p.DeviceID = r.ID
		if p.DeviceOwner != provider.OwnerHARouterInterface {
			p.DeviceOwner = provider.OwnerRouterInterface
		}
		if _, err := n.addPort(p); err != nil {
			return fmt.Errorf("AddRouter %s: interface: %w", r.ID, err)
		}
	}
	for _, f := range r.FloatingIPs {
		f.RouterID = r.ID
		if f.ID == "" {
			f.ID = newID()
		}
		n.floatingIPs = append(n.floatingIPs, &f)
	}
	return nil
}

// DeleteRouter removes a router and its gateway and interface ports.
func (n *Network) DeleteRouter(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.routers, func(r *routerRecord) bool { return r.ID == id })
	if i < 0 {
		return fmt.Errorf("router %s: %w", id, provider.ErrNotFound)
	}
	n.routers = slices.Delete(n.routers, i, i+1)
	n.ports = slices.DeleteFunc(n.ports, func(p *provider.Port) bool { return p.DeviceID == id && isRouterPort(p) })
	n.floatingIPs = slices.DeleteFunc(n.floatingIPs, func(f *provider.FloatingIP) bool { return f.RouterID == id })
	return nil
}

// AddRouterInterface plugs the router into a network with a new port (its
// MAC and addresses allocated when missing) and returns the port.
func (n *Network) AddRouterInterface(routerID string, p provider.Port) (provider.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.router(routerID) == nil {
		return provider.Port{}, fmt.Errorf("router %s: %w", routerID, provider.ErrNotFound)
	}
	p.DeviceID, p.DeviceOwner = routerID, provider.OwnerRouterInterface
	return n.addPort(p)
}

// SetGateway gives the router a gateway port (replacing any) and returns it.
func (n *Network) SetGateway(routerID string, p provider.Port) (provider.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.router(routerID) == nil {
		return provider.Port{}, fmt.Errorf("router %s: %w", routerID, provider.ErrNotFound)
	}
	n.ports = slices.DeleteFunc(n.ports, func(q *provider.Port) bool {
		return q.DeviceID == routerID && q.DeviceOwner == provider.OwnerRouterGateway
	})
	p.DeviceID, p.DeviceOwner = routerID, provider.OwnerRouterGateway
	return n.addPort(p)
}

// AddPort adds a port. An empty ID or MAC is generated, and a fixed IP
// with a subnet but no address gets the next free address of the subnet.
func (n *Network) AddPort(p provider.Port) (provider.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addPort(p)
}

// AddFloatingIP adds a floating IP (associated with a router when RouterID is set).
func (n *Network) AddFloatingIP(f provider.FloatingIP) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if f.ID == "" {
		f.ID = newID()
	}
	n.floatingIPs = append(n.floatingIPs, &f)
}

// DeletePort deletes one port by id (a Neutron DELETE /ports/<id>).
func (n *Network) DeletePort(ctx context.Context, id string) error {
	if err := n.check("DeletePort"); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.ports, func(p *provider.Port) bool { return p.ID == id })
	if i < 0 {
		return fmt.Errorf("port %s: %w", id, provider.ErrNotFound)
	}
	n.ports = slices.Delete(n.ports, i, i+1)
	return nil
}

// Port returns a port by id.
func (n *Network) Port(id string) (provider.Port, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.ports {
		if p.ID == id {
			return copyPort(p), true
		}
	}
	return provider.Port{}, false
}

// Ports returns every port, in creation order.
func (n *Network) Ports() []provider.Port {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]provider.Port, len(n.ports))
	for i, p := range n.ports {
		out[i] = copyPort(p)
	}
	return out
}

// BindPort sets a port's device (as Nova does when it attaches a port);
// empty values unbind it.
func (n *Network) BindPort(id, deviceID, deviceOwner string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.ports {
		if p.ID == id {
			p.DeviceID, p.DeviceOwner = deviceID, deviceOwner
			return nil
		}
	}
	return fmt.Errorf("port %s: %w", id, provider.ErrNotFound)
}

// RouterStatus returns the router's status.
func (n *Network) RouterStatus(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.router(id); r != nil {
		return r.Status
	}
	return ""
}

// StatusHistory returns every status SetRouterStatus published for the router.
func (n *Network) StatusHistory(id string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.statuses[id])
}

// GetRouter implements provider.NetworkAPI.
func (n *Network) GetRouter(ctx context.Context, id string) (*provider.Router, error) {
	if err := n.check("GetRouter"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rec := n.router(id)
	if rec == nil {
		return nil, fmt.Errorf("router %s: %w", id, provider.ErrNotFound)
	}
	r := rec.Router
	r.Tags = slices.Clone(rec.Tags)
	for _, p := range n.ports {
		if p.DeviceID != id {
			continue
		}
		switch p.DeviceOwner {
		case provider.OwnerRouterGateway:
			gw := copyPort(p)
			r.GatewayPort = &gw
		case provider.OwnerRouterInterface, provider.OwnerHARouterInterface:
			r.Interfaces = append(r.Interfaces, copyPort(p))
		}
	}
	for _, f := range n.floatingIPs {
		if f.RouterID == id {
			r.FloatingIPs = append(r.FloatingIPs, *f)
		}
	}
	return &r, nil
}

// ListRouters implements provider.NetworkAPI.
func (n *Network) ListRouters(ctx context.Context) ([]provider.RouterRef, error) {
	return n.listRouters("ListRouters", func(*routerRecord) bool { return true })
}

// RoutersOfTenant implements provider.NetworkAPI.
func (n *Network) RoutersOfTenant(ctx context.Context, tenantID string) ([]provider.RouterRef, error) {
	return n.listRouters("RoutersOfTenant", func(r *routerRecord) bool { return r.TenantID == tenantID })
}

func (n *Network) listRouters(op string, keep func(*routerRecord) bool) ([]provider.RouterRef, error) {
	if err := n.check(op); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []provider.RouterRef{}
	for _, r := range n.routers {
		if keep(r) {
			out = append(out, provider.RouterRef{ID: r.ID, TenantID: r.TenantID})
		}
	}
	return out, nil
}

// GetNetwork implements provider.NetworkAPI.
func (n *Network) GetNetwork(ctx context.Context, id string) (*provider.Network, error) {
	if err := n.check("GetNetwork"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := n.network(id)
	if nw == nil {
		return nil, fmt.Errorf("network %s: %w", id, provider.ErrNotFound)
	}
	return copyNetwork(nw), nil
}

// ListPorts implements provider.NetworkAPI.
func (n *Network) ListPorts(ctx context.Context, f provider.PortFilter) ([]provider.Port, error) {
	if err := n.check("ListPorts"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []provider.Port{}
	for _, p := range n.ports {
		if (f.NetworkID == "" || p.NetworkID == f.NetworkID) && (f.DeviceID == "" || p.DeviceID == f.DeviceID) &&
			(f.Name == "" || p.Name == f.Name) {
			out = append(out, copyPort(p))
		}
	}
	return out, nil
}

// CreateServicePort implements provider.NetworkAPI: a port named
// ASTARA:<label>:<resourceID> with a fresh MAC, without addresses except on
// the management network, where it gets one on the first subnet (EUI-64 on
// a SLAAC subnet, as Neutron does).
func (n *Network) CreateServicePort(ctx context.Context, label, resourceID, networkID string) (*provider.Port, error) {
	if err := n.check("CreateServicePort"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := n.network(networkID)
	if nw == nil {
		return nil, fmt.Errorf("creating port %s on network %s: %w", provider.ServicePortName(label, resourceID), networkID, provider.ErrNotFound)
	}
	p := provider.Port{Name: provider.ServicePortName(label, resourceID), NetworkID: networkID}
	if label == provider.LabelManagement && networkID == n.mgmtNetworkID {
		if len(nw.Subnets) == 0 {
			return nil, fmt.Errorf("management network %s has no subnet", networkID)
		}
		p.FixedIPs = []provider.FixedIP{{SubnetID: nw.Subnets[0].ID}}
	}
	created, err := n.addPort(p)
	if err != nil {
		return nil, err
	}
	return &created, nil
}

// DeleteServicePorts implements provider.NetworkAPI.
func (n *Network) DeleteServicePorts(ctx context.Context, label, resourceID string) error {
	if err := n.check("DeleteServicePorts"); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	name := provider.ServicePortName(label, resourceID)
	n.ports = slices.DeleteFunc(n.ports, func(p *provider.Port) bool { return p.Name == name })
	return nil
}

// SetRouterStatus implements provider.NetworkAPI.
func (n *Network) SetRouterStatus(ctx context.Context, id, status string) error {
	if err := n.check("SetRouterStatus"); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.router(id)
	if r == nil {
		return fmt.Errorf("router %s: %w", id, provider.ErrNotFound)
	}
	r.Status = status
	n.statuses[id] = append(n.statuses[id], status)
	return nil
}

// addPort stores p, filling its id, MAC and missing addresses. n.mu is held.
func (n *Network) addPort(p provider.Port) (provider.Port, error) {
	nw := n.network(p.NetworkID)
	if nw == nil {
		return provider.Port{}, fmt.Errorf("port on network %q: %w", p.NetworkID, provider.ErrNotFound)
	}
	if p.ID == "" {
		p.ID = newID()
	}
	if slices.ContainsFunc(n.ports, func(q *provider.Port) bool { return q.ID == p.ID }) {
		return provider.Port{}, fmt.Errorf("port %s exists", p.ID)
	}
	if p.MAC == "" {
		n.macs++
		p.MAC = fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", byte(n.macs>>16), byte(n.macs>>8), byte(n.macs))
	} else if hw, err := net.ParseMAC(p.MAC); err != nil || len(hw) != 6 {
		return provider.Port{}, fmt.Errorf("port %s: bad MAC %q", p.ID, p.MAC)
	} else {
		p.MAC = hw.String()
	}
	p.FixedIPs = slices.Clone(p.FixedIPs)
	for i := range p.FixedIPs {
		f := &p.FixedIPs[i]
		j := slices.IndexFunc(nw.Subnets, func(s provider.Subnet) bool {
			return s.ID == f.SubnetID || (f.SubnetID == "" && f.Address.IsValid() && s.CIDR.Contains(f.Address))
		})
		if j < 0 {
			return provider.Port{}, fmt.Errorf("port %s: no subnet %q (address %v) on network %s", p.ID, f.SubnetID, f.Address, nw.ID)
		}
		s := &nw.Subnets[j]
		f.SubnetID = s.ID
		if f.Address.IsValid() {
			if !s.CIDR.Contains(f.Address) {
				return provider.Port{}, fmt.Errorf("port %s: %s is not on subnet %s (%s)", p.ID, f.Address, s.ID, s.CIDR)
			}
			continue
		}
		a, err := n.allocate(s, p.MAC)
		if err != nil {
			return provider.Port{}, fmt.Errorf("port %s: %w", p.ID, err)
		}
		f.Address = a
	}
	n.ports = append(n.ports, &p)
	return copyPort(&p), nil
}

// allocate picks an address on s: EUI-64 from mac on an IPv6 SLAAC subnet,
// else the lowest free one (not the gateway, not the broadcast address).
func (n *Network) allocate(s *provider.Subnet, mac string) (netip.Addr, error) {
	if s.CIDR.Addr().Is6() && s.CIDR.Bits() == 64 &&
		(s.IPv6AddressMode == "slaac" || s.IPv6AddressMode == "dhcpv6-stateless" || (s.IPv6AddressMode == "" && s.IPv6RAMode == "slaac")) {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return netip.Addr{}, err
		}
		b := s.CIDR.Addr().As16()
		copy(b[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
		return netip.AddrFrom16(b), nil
	}
	used := map[netip.Addr]bool{s.GatewayIP: true}
	for _, p := range n.ports {
		for _, f := range p.FixedIPs {
			used[f.Address] = true
		}
	}
	for a, i := s.CIDR.Addr().Next(), 0; s.CIDR.Contains(a) && i < 1<<16; a, i = a.Next(), i+1 {
		if used[a] || (a.Is4() && !s.CIDR.Contains(a.Next())) {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("subnet %s (%s) has no free address", s.ID, s.CIDR)
}

func (n *Network) network(id string) *provider.Network {
	for _, nw := range n.networks {
		if nw.ID == id {
			return nw
		}
	}
	return nil
}

func (n *Network) router(id string) *routerRecord {
	for _, r := range n.routers {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func isRouterPort(p *provider.Port) bool {
	switch p.DeviceOwner {
	case provider.OwnerRouterGateway, provider.OwnerRouterInterface, provider.OwnerHARouterInterface:
		return true
	}
	return false
}

func copyPort(p *provider.Port) provider.Port {
	c := *p
	c.FixedIPs = slices.Clone(p.FixedIPs)
	return c
}

func copyNetwork(nw *provider.Network) *provider.Network {
	c := *nw
	c.Subnets = slices.Clone(nw.Subnets)
	for i := range c.Subnets {
		c.Subnets[i].DNSNameservers = slices.Clone(c.Subnets[i].DNSNameservers)
		c.Subnets[i].HostRoutes = slices.Clone(c.Subnets[i].HostRoutes)
	}
	return &c
}
