package neutron

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/astara-go/astara/internal/provider"
)

// The JSON shapes of Neutron's objects, as much as the provider reads.
// A JSON null leaves a field at its zero value.

type wireFixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type wirePort struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	NetworkID   string        `json:"network_id"`
	TenantID    string        `json:"tenant_id"`
	ProjectID   string        `json:"project_id"`
	MACAddress  string        `json:"mac_address"`
	FixedIPs    []wireFixedIP `json:"fixed_ips"`
	DeviceID    string        `json:"device_id"`
	DeviceOwner string        `json:"device_owner"`
	Description string        `json:"description"`
}

type wireHostRoute struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

type wireSubnet struct {
	ID              string          `json:"id"`
	NetworkID       string          `json:"network_id"`
	TenantID        string          `json:"tenant_id"`
	ProjectID       string          `json:"project_id"`
	Name            string          `json:"name"`
	IPVersion       int             `json:"ip_version"`
	CIDR            string          `json:"cidr"`
	GatewayIP       string          `json:"gateway_ip"`
	EnableDHCP      bool            `json:"enable_dhcp"`
	DNSNameservers  []string        `json:"dns_nameservers"`
	HostRoutes      []wireHostRoute `json:"host_routes"`
	IPv6RAMode      string          `json:"ipv6_ra_mode"`
	IPv6AddressMode string          `json:"ipv6_address_mode"`
}

type wireNetwork struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	TenantID  string `json:"tenant_id"`
	ProjectID string `json:"project_id"`
	MTU       int    `json:"mtu"`
	External  bool   `json:"router:external"`
}

type wireGatewayInfo struct {
	NetworkID        string        `json:"network_id"`
	ExternalFixedIPs []wireFixedIP `json:"external_fixed_ips"`
}

type wireRouter struct {
	ID           string           `json:"id"`
	Name         string           `json:"name"`
	TenantID     string           `json:"tenant_id"`
	ProjectID    string           `json:"project_id"`
	Status       string           `json:"status"`
	AdminStateUp bool             `json:"admin_state_up"`
	HA           bool             `json:"ha"`
	Gateway      *wireGatewayInfo `json:"external_gateway_info"`
	// Tags is nil when the API has no tag extension.
	Tags *[]string `json:"tags"`
}

type wireFloatingIP struct {
	ID                string `json:"id"`
	FloatingIPAddress string `json:"floating_ip_address"`
	FixedIPAddress    string `json:"fixed_ip_address"`
	PortID            string `json:"port_id"`
	RouterID          string `json:"router_id"`
	TenantID          string `json:"tenant_id"`
	ProjectID         string `json:"project_id"`
}

// project returns the project id, preferring project_id to tenant_id.
func project(projectID, tenantID string) string {
	if projectID != "" {
		return projectID
	}
	return tenantID
}

// converter turns wire objects into provider types, logging (and
// skipping) malformed values rather than failing the whole read: one bad
// address must not keep a router from being managed.
type converter struct {
	ctx context.Context
	log *slog.Logger
}

func (c converter) skip(msg string, args ...any) { c.log.WarnContext(c.ctx, msg, args...) }

func (c converter) fixedIPs(owner string, in []wireFixedIP) []provider.FixedIP {
	out := make([]provider.FixedIP, 0, len(in))
	for _, f := range in {
		a, err := netip.ParseAddr(f.IPAddress)
		if err != nil {
			c.skip("skipping a malformed fixed IP", "owner", owner, "subnet_id", f.SubnetID, "ip_address", f.IPAddress, "err", err)
			continue
		}
		out = append(out, provider.FixedIP{SubnetID: f.SubnetID, Address: a.Unmap()})
	}
	return out
}

func (c converter) port(w wirePort) provider.Port {
	mac := w.MACAddress
	if hw, err := net.ParseMAC(mac); err == nil {
		mac = hw.String()
	}
	return provider.Port{
		ID:          w.ID,
		Name:        w.Name,
		NetworkID:   w.NetworkID,
		TenantID:    project(w.ProjectID, w.TenantID),
		MAC:         mac,
		FixedIPs:    c.fixedIPs("port "+w.ID, w.FixedIPs),
		DeviceID:    w.DeviceID,
		DeviceOwner: w.DeviceOwner,
	}
}

// subnet converts a subnet; false when its CIDR is malformed (the original
// skipped such subnets too).
func (c converter) subnet(w wireSubnet) (provider.Subnet, bool) {
	cidr, err := netip.ParsePrefix(w.CIDR)
	if err != nil {
		c.skip("skipping a subnet with a malformed CIDR", "subnet_id", w.ID, "cidr", w.CIDR, "err", err)
		return provider.Subnet{}, false
	}
	s := provider.Subnet{
		ID:              w.ID,
		NetworkID:       w.NetworkID,
		TenantID:        project(w.ProjectID, w.TenantID),
		Name:            w.Name,
		CIDR:            cidr.Masked(),
		EnableDHCP:      w.EnableDHCP,
		IPv6RAMode:      w.IPv6RAMode,
		IPv6AddressMode: w.IPv6AddressMode,
	}
	if w.GatewayIP != "" {
		if gw, err := netip.ParseAddr(w.GatewayIP); err != nil {
			c.skip("ignoring a malformed gateway", "subnet_id", w.ID, "gateway_ip", w.GatewayIP, "err", err)
		} else {
			s.GatewayIP = gw
		}
	}
	for _, d := range w.DNSNameservers {
		a, err := netip.ParseAddr(d)
		if err != nil {
			c.skip("skipping a malformed DNS server", "subnet_id", w.ID, "dns_nameserver", d, "err", err)
			continue
		}
		s.DNSNameservers = append(s.DNSNameservers, a)
	}
	for _, r := range w.HostRoutes {
		dst, err1 := netip.ParsePrefix(r.Destination)
		hop, err2 := netip.ParseAddr(r.NextHop)
		if err1 != nil || err2 != nil {
			c.skip("skipping a malformed host route", "subnet_id", w.ID, "destination", r.Destination, "nexthop", r.NextHop)
			continue
		}
		s.HostRoutes = append(s.HostRoutes, provider.HostRoute{Destination: dst.Masked(), NextHop: hop})
	}
	return s, true
}

func (c converter) floatingIP(w wireFloatingIP) (provider.FloatingIP, bool) {
	fip, err := netip.ParseAddr(w.FloatingIPAddress)
	if err != nil {
		c.skip("skipping a floating IP with a malformed address", "floatingip_id", w.ID, "floating_ip_address", w.FloatingIPAddress, "err", err)
		return provider.FloatingIP{}, false
	}
	f := provider.FloatingIP{
		ID:         w.ID,
		FloatingIP: fip,
		PortID:     w.PortID,
		RouterID:   w.RouterID,
		TenantID:   project(w.ProjectID, w.TenantID),
	}
	if w.FixedIPAddress != "" {
		if a, err := netip.ParseAddr(w.FixedIPAddress); err != nil {
			c.skip("ignoring a malformed fixed address", "floatingip_id", w.ID, "fixed_ip_address", w.FixedIPAddress, "err", err)
		} else {
			f.FixedIP = a
		}
	}
	return f, true
}

// isAutoAddress reports whether Neutron computes the addresses of s from
// the port's MAC (EUI-64): either IPv6 mode is SLAAC or DHCPv6-stateless,
// as in neutron.common.ipv6_utils.is_auto_address_subnet.
func isAutoAddress(s provider.Subnet) bool {
	auto := func(m string) bool { return m == "slaac" || m == "dhcpv6-stateless" }
	return s.CIDR.Addr().Is6() && (auto(s.IPv6AddressMode) || auto(s.IPv6RAMode))
}
