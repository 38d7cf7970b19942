package router

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/provider"
)

// ConfigError means the router's data cannot make a valid document (for
// example an address on a subnet of another network, or an HA router the
// appliance does not support): retrying will not help until the data
// changes. Errors reading the network API are not ConfigErrors.
type ConfigError struct {
	RouterID string
	Err      error
}

func (e *ConfigError) Error() string { return "router " + e.RouterID + ": " + e.Err.Error() }

// Unwrap returns the underlying error (a *model.ValidationError when the
// document failed validation).
func (e *ConfigError) Unwrap() error { return e.Err }

// Input is everything the router's document is built from.
type Input struct {
	Router *provider.Router
	// Management is the appliance's management port.
	Management provider.Port
	// Networks are the networks the document names (management, external,
	// internal), by id.
	Networks map[string]*provider.Network
	// Ports are every port of each internal network, by network id: the
	// DHCP allocations.
	Ports map[string][]provider.Port
	// Interfaces map each network to the appliance's NIC on it.
	Interfaces InterfaceMap
}

// BuildConfig reads the networks and ports the document of r needs and
// builds it (see Build).
func (d *Driver) BuildConfig(ctx context.Context, r *provider.Router, mgmt provider.Port, ifaces InterfaceMap) (*model.Document, error) {
	in := Input{Router: r, Management: mgmt, Networks: map[string]*provider.Network{}, Ports: map[string][]provider.Port{}, Interfaces: ifaces}
	need := []string{mgmt.NetworkID}
	if r.GatewayPort != nil {
		need = append(need, r.GatewayPort.NetworkID)
	}
	internal := internalNetworks(r)
	need = append(need, internal...)
	for _, id := range need {
		if in.Networks[id] != nil {
			continue
		}
		nw, err := d.net.GetNetwork(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("router %s: reading network %s: %w", r.ID, id, err)
		}
		in.Networks[id] = nw
	}
	for _, id := range internal {
		ports, err := d.net.ListPorts(ctx, provider.PortFilter{NetworkID: id})
		if err != nil {
			return nil, fmt.Errorf("router %s: listing the ports of network %s: %w", r.ID, id, err)
		}
		in.Ports[id] = ports
	}
	return d.cfg.Build(in)
}

// Build builds the router's configuration document, as the original's
// config builder (astara/api/config/router.py and common.py) did:
//
//   - networks: management (the appliance's management port), external
//     (the router's gateway port, if any), then one internal network per
//     network of the router interface ports; each with its interface (the
//     appliance's NIC on the network: generic name, the logical ports'
//     addresses with their subnet's prefix length, the network's MTU), all
//     the network's subnets, and, for internal networks, an allocation for
//     every port on the network except ASTARA:VRRP and ASTARA:LB ports;
//   - floating IPs, default_v4_gateway, asn, neighbor_asn, labels,
//     orchestrator, hostname ak-<tenant>, tenant_id, ha_resource.
//
// Beyond the original: each interface carries its NIC's lladdr, so that an
// appliance whose NICs were renumbered by a hot-plug refuses the document
// instead of misconfiguring; router interfaces on one network share one
// NIC and one network entry (the original sent the network twice); and
// allocations are sorted by address, so that equal inputs give equal
// documents. The document is validated: Neutron data that would make an
// invalid document is a *ConfigError, never pushed.
func (c Config) Build(in Input) (*model.Document, error) {
	doc, err := c.build(in)
	if err != nil {
		return nil, &ConfigError{RouterID: in.Router.ID, Err: err}
	}
	return doc, nil
}

func (c Config) build(in Input) (*model.Document, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	r := in.Router
	doc := &model.Document{
		TenantID:     r.TenantID,
		Hostname:     applianceHostname(r.TenantID),
		ASN:          c.ASN,
		NeighborASN:  c.NeighborASN,
		HAResource:   r.HA,
		Networks:     []model.Network{},
		FloatingIPs:  []model.FloatingIP{},
		Orchestrator: c.Orchestrator,
	}
	if len(c.Labels) > 0 {
		doc.Labels = maps.Clone(c.Labels)
	}

	mgmt, err := in.network(in.Management.NetworkID, model.NetworkManagement, []provider.Port{in.Management})
	if err != nil {
		return nil, err
	}
	doc.Networks = append(doc.Networks, *mgmt)
	if gw := r.GatewayPort; gw != nil {
		ext, err := in.network(gw.NetworkID, model.NetworkExternal, []provider.Port{*gw})
		if err != nil {
			return nil, err
		}
		doc.Networks = append(doc.Networks, *ext)
		doc.DefaultV4Gateway = defaultV4Gateway(ext)
	}
	for _, id := range internalNetworks(r) {
		var ports []provider.Port
		for _, p := range r.Interfaces {
			if isInterface(p) && p.NetworkID == id {
				ports = append(ports, p)
			}
		}
		n, err := in.network(id, model.NetworkInternal, ports)
		if err != nil {
			return nil, err
		}
		if n.Allocations, err = allocations(in.Networks[id], in.Ports[id]); err != nil {
			return nil, err
		}
		doc.Networks = append(doc.Networks, *n)
	}
	for _, f := range r.FloatingIPs {
		if f.FloatingIP.IsValid() && f.FixedIP.IsValid() {
			doc.FloatingIPs = append(doc.FloatingIPs, model.FloatingIP{FloatingIP: f.FloatingIP, FixedIP: f.FixedIP})
		}
	}
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("its data would make an invalid configuration: %w", err)
	}
	return doc, nil
}

// internalNetworks returns the distinct networks of the router interface
// ports, in order.
func internalNetworks(r *provider.Router) []string {
	var out []string
	for _, p := range r.Interfaces {
		if isInterface(p) && !slices.Contains(out, p.NetworkID) {
			out = append(out, p.NetworkID)
		}
	}
	return out
}

// network builds a network entry whose interface carries the addresses of
// ports (common._make_network_config_dict); allocations are left empty.
func (in *Input) network(id string, typ model.NetworkType, ports []provider.Port) (*model.Network, error) {
	nw := in.Networks[id]
	if nw == nil {
		return nil, fmt.Errorf("%s network %s: no such network", typ, id)
	}
	att, ok := in.Interfaces[id]
	if !ok {
		return nil, fmt.Errorf("%s network %s: the appliance has no NIC on it", typ, id)
	}
	addrs := []netip.Prefix{}
	for _, p := range ports {
		for _, f := range p.FixedIPs {
			s := subnetOf(nw, f)
			if s == nil {
				return nil, fmt.Errorf("%s network %s: port %s has address %s on subnet %q, which is not one of the network's", typ, id, p.ID, f.Address, f.SubnetID)
			}
			addrs = append(addrs, netip.PrefixFrom(f.Address, s.CIDR.Bits()))
		}
	}
	n := &model.Network{
		ID:            nw.ID,
		Type:          typ,
		V4ConfService: "static",
		V6ConfService: "static",
		MTU:           nw.MTU,
		Interface:     model.Interface{IfName: att.IfName, LLAddr: att.MAC, Addresses: addrs, MTU: nw.MTU},
		Subnets:       make([]model.Subnet, 0, len(nw.Subnets)),
		Allocations:   []model.Allocation{},
	}
	for _, s := range nw.Subnets {
		ms := model.Subnet{
			ID:             s.ID,
			CIDR:           s.CIDR,
			GatewayIP:      s.GatewayIP,
			DHCPEnabled:    s.EnableDHCP && s.IPv6RAMode != "slaac",
			DNSNameservers: append([]netip.Addr{}, s.DNSNameservers...),
			HostRoutes:     make([]model.HostRoute, 0, len(s.HostRoutes)),
		}
		for _, hr := range s.HostRoutes {
			ms.HostRoutes = append(ms.HostRoutes, model.HostRoute{Destination: hr.Destination, NextHop: hr.NextHop})
		}
		n.Subnets = append(n.Subnets, ms)
	}
	return n, nil
}

// subnetOf returns the subnet of nw a fixed IP is on: by id, or, without
// one, the subnet containing the address.
func subnetOf(nw *provider.Network, f provider.FixedIP) *provider.Subnet {
	for i := range nw.Subnets {
		s := &nw.Subnets[i]
		if (f.SubnetID != "" && s.ID == f.SubnetID) || (f.SubnetID == "" && s.CIDR.Contains(f.Address)) {
			if !s.CIDR.Contains(f.Address) {
				return nil
			}
			return s
		}
	}
	return nil
}

// allocations are the DHCP entries of an internal network: every port with
// an address except the appliances' VRRP and LB ports
// (common._allocation_config).
func allocations(nw *provider.Network, ports []provider.Port) ([]model.Allocation, error) {
	out := []model.Allocation{}
	for _, p := range ports {
		if isServiceDataPort(p.Name) || len(p.FixedIPs) == 0 {
			continue
		}
		a := model.Allocation{MACAddress: normalMAC(p.MAC), DeviceID: p.DeviceID, IPAddresses: map[netip.Addr]bool{}}
		if a.MACAddress == "" {
			return nil, fmt.Errorf("internal network %s: port %s has no valid MAC (%q)", nw.ID, p.ID, p.MAC)
		}
		for _, f := range p.FixedIPs {
			s := subnetOf(nw, f)
			if s == nil {
				return nil, fmt.Errorf("internal network %s: port %s has address %s on subnet %q, which is not one of the network's", nw.ID, p.ID, f.Address, f.SubnetID)
			}
			a.IPAddresses[f.Address] = s.EnableDHCP
		}
		a.Hostname = hostname(a.SortedIPs()[0])
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(x, y model.Allocation) int {
		return cmp.Or(x.SortedIPs()[0].Compare(y.SortedIPs()[0]), strings.Compare(x.MACAddress, y.MACAddress))
	})
	return out, nil
}

// isServiceDataPort matches the original's ^ASTARA:(VRRP|LB):.*$.
func isServiceDataPort(name string) bool {
	return strings.HasPrefix(name, "ASTARA:"+provider.LabelVRRP+":") || strings.HasPrefix(name, "ASTARA:"+provider.LabelLoadBalancer+":")
}

// hostname is an allocation's host name: its first address with '.' and
// ':' replaced by '-', in .local.
func hostname(a netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(a.String()) + ".local"
}

// defaultV4Gateway is the gateway of the first IPv4 subnet of the external
// network that contains one of the router's external IPv4 addresses
// (router._get_default_v4_gateway); invalid when there is none.
func defaultV4Gateway(ext *model.Network) netip.Addr {
	for _, s := range ext.Subnets {
		if !s.CIDR.Addr().Is4() {
			continue
		}
		for _, p := range ext.Interface.Addresses {
			if p.Addr().Is4() && s.CIDR.Contains(p.Addr()) {
				return s.GatewayIP
			}
		}
	}
	return netip.Addr{}
}

// applianceHostname is the appliance's host name: "ak-" and the tenant id, as the
// original, made a valid RFC 1123 label (a project id of a no-auth or
// LDAP-backed cloud may hold any character): lower case, other characters
// than letters, digits and '-' replaced by '-', at most 63 bytes.
func applianceHostname(tenantID string) string {
	b := []byte("ak-" + strings.ToLower(tenantID))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			b[i] = '-'
		}
	}
	return strings.TrimRight(string(b[:min(len(b), 63)]), "-")
}
