package netapi

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

// view is what a rendering is for. Neutron's bodies differ slightly by
// operation (the notifications carry them, so they are kept): only a
// network's creation shows is_default, and a delete.end payload is the
// stored object as the plugin read it (with standard_attr_id, and every
// attribute whatever the caller's role).
type view uint8

const (
	viewShow    view = iota // GET and list: a response body
	viewCreated             // the response to a POST (and create.end)
	viewUpdated             // the response to a PUT (and update.end)
	viewDeleted             // the object in a delete.end payload
	viewPlugin              // the router dict add/remove_extraroutes return as is
)

const timeFormat = "2006-01-02T15:04:05Z"

func stamp(t time.Time) string { return t.UTC().Format(timeFormat) }

// Port and object statuses: with no agents, Neutron's ports and floating
// IPs stay DOWN while networks and routers are ACTIVE.
const (
	statusActive = "ACTIVE"
	statusDown   = "DOWN"
)

// addStandard appends the standard attributes Neutron lists last.
func addStandard(o *object, s *standard) {
	o.add("description", s.Description)
	o.add("tags", orEmpty(s.Tags))
	o.add("created_at", stamp(s.CreatedAt))
	o.add("updated_at", stamp(s.UpdatedAt))
	o.add("revision_number", s.Revision)
}

func addrOrNull(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a.String()
}

func stringOrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func renderNetwork(n *network, c *caller, v view) object {
	admin := c.Admin || v == viewDeleted
	o := object{
		{"id", n.ID},
		{"name", n.Name},
		{"tenant_id", n.TenantID},
		{"admin_state_up", n.AdminStateUp},
		{"mtu", n.MTU},
		{"status", statusActive},
		{"subnets", orEmpty(n.Subnets)},
	}
	if v == viewDeleted {
		o.add("standard_attr_id", n.AttrID)
	}
	o.add("shared", n.Shared)
	o.add("project_id", n.TenantID)
	o.add("port_security_enabled", n.PortSecurity)
	o.add("router:external", n.External)
	if admin {
		o.add("provider:network_type", n.NetworkType)
		o.add("provider:physical_network", stringOrNull(n.PhysicalNetwork))
		var seg any
		if n.SegmentationID != nil {
			seg = *n.SegmentationID
		}
		o.add("provider:segmentation_id", seg)
	}
	if v == viewCreated {
		o.add("is_default", false)
	}
	o.add("availability_zone_hints", []string{})
	o.add("availability_zones", []string{})
	o.add("ipv4_address_scope", nil)
	o.add("ipv6_address_scope", nil)
	if v == viewDeleted {
		o.add("vlan_transparent", nil)
	}
	addStandard(&o, &n.standard)
	return o
}

func renderPools(pools []ipam.Range) []object {
	out := make([]object, 0, len(pools))
	for _, p := range pools {
		out = append(out, object{{"start", p.Start.String()}, {"end", p.End.String()}})
	}
	return out
}

func renderRoutes(routes []hostRoute) []object {
	out := make([]object, 0, len(routes))
	for _, r := range routes {
		out = append(out, object{{"destination", r.Destination.String()}, {"nexthop", r.NextHop.String()}})
	}
	return out
}

func renderSubnet(s *subnet, network *network, v view) object {
	dns := make([]string, 0, len(s.DNS))
	for _, a := range s.DNS {
		dns = append(dns, a.String())
	}
	o := object{
		{"id", s.ID},
		{"name", s.Name},
		{"tenant_id", s.TenantID},
		{"network_id", s.NetworkID},
		{"ip_version", s.IPVersion},
		{"subnetpool_id", nil},
		{"enable_dhcp", s.EnableDHCP},
		{"ipv6_ra_mode", stringOrNull(s.RAMode)},
		{"ipv6_address_mode", stringOrNull(s.AddressMode)},
	}
	if v == viewDeleted {
		o.add("standard_attr_id", s.AttrID)
	}
	o.add("gateway_ip", addrOrNull(s.GatewayIP))
	o.add("cidr", s.CIDR.String())
	o.add("allocation_pools", renderPools(s.Pools))
	o.add("host_routes", renderRoutes(s.HostRoutes))
	o.add("dns_nameservers", dns)
	if v == viewDeleted {
		o.add("shared", network != nil && network.Shared)
	}
	o.add("description", s.Description)
	o.add("service_types", orEmpty(s.ServiceTypes))
	o.add("tags", orEmpty(s.Tags))
	o.add("created_at", stamp(s.CreatedAt))
	o.add("updated_at", stamp(s.UpdatedAt))
	o.add("revision_number", s.Revision)
	o.add("project_id", s.TenantID)
	return o
}

func renderFixedIPs(ips []fixedIP) []object {
	out := make([]object, 0, len(ips))
	for _, f := range ips {
		out = append(out, object{{"subnet_id", f.SubnetID}, {"ip_address", f.IP.String()}})
	}
	return out
}

// vifType is the binding Neutron reports with no L2 agent: unbound until
// a host is set, then binding_failed.
func vifType(p *port) string {
	if p.HostID == "" {
		return "unbound"
	}
	return "binding_failed"
}

func renderPort(p *port, c *caller, v view) object {
	admin := c.Admin || v == viewDeleted
	o := object{
		{"id", p.ID},
		{"name", p.Name},
		{"network_id", p.NetworkID},
		{"tenant_id", p.TenantID},
		{"mac_address", p.MAC},
		{"admin_state_up", p.AdminStateUp},
		{"status", statusDown},
		{"device_id", p.DeviceID},
		{"device_owner", p.DeviceOwner},
	}
	if v == viewDeleted {
		o.add("standard_attr_id", p.AttrID)
	}
	o.add("fixed_ips", renderFixedIPs(p.FixedIPs))
	o.add("project_id", p.TenantID)
	o.add("port_security_enabled", p.PortSecurity)
	o.add("security_groups", orEmpty(p.SecurityGroups))
	o.add("binding:vnic_type", p.VNICType)
	if admin {
		profile := p.Profile
		if len(profile) == 0 || string(profile) == "null" {
			profile = json.RawMessage("{}")
		}
		o.add("binding:profile", profile)
		o.add("binding:host_id", p.HostID)
		o.add("binding:vif_type", vifType(p))
		o.add("binding:vif_details", object{})
	}
	pairs := make([]object, 0, len(p.AddressPairs))
	for _, a := range p.AddressPairs {
		pairs = append(pairs, object{{"ip_address", a.IPAddress}, {"mac_address", a.MACAddress}})
	}
	o.add("allowed_address_pairs", pairs)
	o.add("extra_dhcp_opts", []object{})
	addStandard(&o, &p.standard)
	return o
}

// renderRouter renders r; gw is its gateway port (nil: none).
func renderRouter(r *router, gw *port, c *caller, v view) object {
	admin := c.Admin || v == viewDeleted
	var info any
	if r.Gateway != nil {
		var ips []fixedIP
		if gw != nil {
			ips = gw.FixedIPs
		}
		info = object{
			{"network_id", r.Gateway.NetworkID},
			{"external_fixed_ips", renderFixedIPs(ips)},
			{"enable_snat", r.Gateway.EnableSNAT},
		}
	}
	o := object{
		{"id", r.ID},
		{"name", r.Name},
		{"tenant_id", r.TenantID},
		{"admin_state_up", r.AdminStateUp},
		{"status", statusActive},
		{"external_gateway_info", info},
	}
	if v == viewPlugin {
		var gwPort any
		if r.Gateway != nil {
			gwPort = r.Gateway.PortID
		}
		o.add("gw_port_id", gwPort)
	}
	o.add("description", r.Description)
	o.add("availability_zones", []string{})
	if admin || v == viewPlugin {
		o.add("distributed", false)
		o.add("ha", false)
	}
	if v == viewPlugin {
		o.add("ha_vr_id", 0)
	}
	o.add("availability_zone_hints", []string{})
	o.add("routes", renderRoutes(r.Routes))
	o.add("flavor_id", nil)
	o.add("tags", orEmpty(r.Tags))
	o.add("created_at", stamp(r.CreatedAt))
	o.add("updated_at", stamp(r.UpdatedAt))
	o.add("revision_number", r.Revision)
	o.add("project_id", r.TenantID)
	return o
}

// renderFloatingIP renders f; assoc is its associated port (nil: none).
func renderFloatingIP(f *floatingIP, assoc *port) object {
	var details any
	if assoc != nil {
		details = object{
			{"name", assoc.Name},
			{"network_id", assoc.NetworkID},
			{"mac_address", assoc.MAC},
			{"admin_state_up", assoc.AdminStateUp},
			{"status", statusDown},
			{"device_id", assoc.DeviceID},
			{"device_owner", assoc.DeviceOwner},
		}
	}
	return object{
		{"id", f.ID},
		{"tenant_id", f.TenantID},
		{"floating_ip_address", f.Address.String()},
		{"floating_network_id", f.NetworkID},
		{"router_id", stringOrNull(f.RouterID)},
		{"port_id", stringOrNull(f.PortID)},
		{"fixed_ip_address", addrOrNull(f.FixedIP)},
		{"status", statusDown},
		{"project_id", f.TenantID},
		{"description", f.Description},
		{"port_details", details},
		{"tags", orEmpty(f.Tags)},
		{"created_at", stamp(f.CreatedAt)},
		{"updated_at", stamp(f.UpdatedAt)},
		{"revision_number", f.Revision},
	}
}
