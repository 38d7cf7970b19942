package apply

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/appliance/apply/bird"
	"github.com/astara-go/astara/internal/appliance/apply/dhcp"
	"github.com/astara-go/astara/internal/appliance/apply/firewall"
	"github.com/astara-go/astara/internal/appliance/apply/metadata"
	"github.com/astara-go/astara/internal/appliance/apply/netif"
	"github.com/astara-go/astara/internal/appliance/model"
)

// plan is a document bound to this appliance's interfaces and split into
// what each driver must make true.
type plan struct {
	doc      *model.Document
	real     map[string]string // generic name → kernel name
	netif    netif.Spec
	firewall firewall.Spec
	metadata metadata.Spec
	dhcp     dhcp.Spec
	bird     bird.Spec
	// extIf is the external interface's kernel name ("" without one).
	extIf string
}

// planConfig is what the plan needs from the agent's own configuration.
type planConfig struct {
	ManagementTCPPorts []uint16
	DNSUpstream        []netip.Addr
	// Keep are addresses that must stay on whatever link holds them (the
	// management address the API listens on), whatever the document says.
	Keep []netip.Prefix
}

// bind resolves the document's generic interface names against the kernel's
// links. A name with no link, or a MAC that disagrees, is the document's
// fault: a *model.ValidationError.
func bind(doc *model.Document, links []netif.Link) (map[string]string, error) {
	byGeneric := make(map[string]netif.Link, len(links))
	for _, l := range links {
		byGeneric[l.Generic] = l
	}
	real := make(map[string]string, len(doc.Networks))
	var errs []model.FieldError
	for i, n := range doc.Networks {
		field := fmt.Sprintf("networks[%d].interface", i)
		l, ok := byGeneric[n.Interface.IfName]
		if !ok {
			errs = append(errs, model.FieldError{Field: field + ".ifname",
				Msg: fmt.Sprintf("no interface %s on this appliance (it has %s)", n.Interface.IfName, describe(links))})
			continue
		}
		if n.Interface.LLAddr != "" && !strings.EqualFold(n.Interface.LLAddr, l.MAC.String()) {
			errs = append(errs, model.FieldError{Field: field + ".lladdr",
				Msg: fmt.Sprintf("%s is %s, not %s", n.Interface.IfName, l.MAC, n.Interface.LLAddr)})
			continue
		}
		real[n.Interface.IfName] = l.Name
	}
	if len(errs) > 0 {
		return nil, &model.ValidationError{Errors: errs}
	}
	return real, nil
}

func describe(links []netif.Link) string {
	if len(links) == 0 {
		return "no data interfaces"
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Generic + "=" + l.MAC.String()
	}
	return strings.Join(names, ", ")
}

// newPlan splits a validated document into the drivers' specs.
func newPlan(doc *model.Document, links []netif.Link, cfg planConfig) (*plan, error) {
	real, err := bind(doc, links)
	if err != nil {
		return nil, err
	}
	p := &plan{doc: doc, real: real}
	p.netif = netifSpec(doc, real, links, cfg)
	p.firewall = firewallSpec(doc, real, cfg)
	if p.metadata, err = metadata.SpecFromDocument(doc); err != nil {
		return nil, err
	}
	realName := func(generic string) (string, bool) { name, ok := real[generic]; return name, ok }
	if p.dhcp, err = dhcp.FromDocument(doc, realName, cfg.DNSUpstream); err != nil {
		return nil, err
	}
	if p.bird, err = bird.FromDocument(doc, realName); err != nil {
		return nil, err
	}
	if ext := doc.External(); ext != nil {
		p.extIf = real[ext.Interface.IfName]
	}
	return p, nil
}

func netifSpec(doc *model.Document, real map[string]string, links []netif.Link, cfg planConfig) netif.Spec {
	var s netif.Spec
	for _, n := range doc.Networks {
		ifc := netif.Interface{
			Name:       real[n.Interface.IfName],
			Addresses:  slices.Clone(n.Interface.Addresses),
			MTU:        n.Interface.MTU,
			DisableDAD: n.Type != model.NetworkExternal,
		}
		// Never take away the address the API listens on.
		for _, l := range links {
			if l.Name != ifc.Name {
				continue
			}
			for _, keep := range cfg.Keep {
				if slices.Contains(l.Addresses, keep) && !slices.Contains(ifc.Addresses, keep) {
					ifc.Addresses = append(ifc.Addresses, keep)
				}
			}
		}
		s.Interfaces = append(s.Interfaces, ifc)
	}
	// Default routes: IPv4 from default_v4_gateway, else the first external
	// IPv4 subnet's gateway; IPv6 from the first external IPv6 subnet's.
	if ext := doc.External(); ext != nil {
		dev := real[ext.Interface.IfName]
		v4, v6 := doc.DefaultV4Gateway, netip.Addr{}
		for _, sn := range ext.Subnets {
			switch {
			case !sn.GatewayIP.IsValid():
			case sn.GatewayIP.Is4() && !v4.IsValid():
				v4 = sn.GatewayIP
			case sn.GatewayIP.Is6() && !v6.IsValid():
				v6 = sn.GatewayIP
			}
		}
		if v4.IsValid() {
			s.Routes = append(s.Routes, netif.Route{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: v4, Dev: dev})
		}
		if v6.IsValid() {
			s.Routes = append(s.Routes, netif.Route{Dst: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Gateway: v6, Dev: dev})
		}
		s.LocalAddrs = make([]netif.LocalAddr, len(doc.FloatingIPs))
		for i, f := range doc.FloatingIPs {
			s.LocalAddrs[i] = netif.LocalAddr{Addr: f.FloatingIP, Dev: dev}
		}
	}
	// Subnet host routes are installed on the router too (they also go to
	// instances as DHCP option 121), except default routes, which would
	// override the router's own, and routes through the router itself.
	for _, n := range doc.Networks {
		own := map[netip.Addr]bool{}
		for _, a := range n.Interface.Addresses {
			own[a.Addr()] = true
		}
		for _, sn := range n.Subnets {
			for _, r := range sn.HostRoutes {
				if r.Destination.Bits() == 0 || own[r.NextHop] {
					continue
				}
				s.Routes = append(s.Routes, netif.Route{Dst: r.Destination, Gateway: r.NextHop, Dev: real[n.Interface.IfName]})
			}
		}
	}
	return s
}

func firewallSpec(doc *model.Document, real map[string]string, cfg planConfig) firewall.Spec {
	s := firewall.Spec{ManagementTCPPorts: cfg.ManagementTCPPorts}
	for _, n := range doc.Networks {
		name := real[n.Interface.IfName]
		switch n.Type {
		case model.NetworkManagement:
			s.Management = append(s.Management, name)
		case model.NetworkExternal:
			ext := &firewall.External{IfName: name}
			if v4, ok := n.Interface.FirstV4(); ok {
				ext.SNATAddr = v4.Addr()
			}
			for _, sn := range n.Subnets {
				if sn.GatewayIP.Is6() {
					ext.BGPPeers = append(ext.BGPPeers, sn.GatewayIP)
				}
			}
			s.External = ext
			s.MaxFloatingIPs = floatingCapacity(n.Subnets)
		case model.NetworkInternal, model.NetworkIsolated:
			t := firewall.Tenant{IfName: name, Internal: n.Type == model.NetworkInternal}
			for _, sn := range n.Subnets {
				if sn.CIDR.Addr().Is4() {
					t.V4Subnets = append(t.V4Subnets, sn.CIDR)
					t.DHCPv4 = t.DHCPv4 || sn.DHCPEnabled
				} else {
					t.DHCPv6 = t.DHCPv6 || sn.DHCPEnabled
				}
			}
			t.DNS = len(cfg.DNSUpstream) > 0 && (t.DHCPv4 || t.DHCPv6)
			if v4, ok := n.Interface.FirstV4(); ok && t.Internal {
				if port, ok := model.MetadataPort(n.Interface.IfName); ok {
					t.Metadata = netip.AddrPortFrom(v4.Addr(), port)
				}
			}
			s.Tenants = append(s.Tenants, t)
		}
	}
	s.FloatingIPs = make([]firewall.FloatingIP, len(doc.FloatingIPs))
	for i, f := range doc.FloatingIPs {
		s.FloatingIPs[i] = firewall.FloatingIP{Floating: f.FloatingIP, Fixed: f.FixedIP}
	}
	return s
}

// floatingCapacity is how many floating IPs the external subnets can hold:
// the size of the firewall's floating-IP maps (the kernel caps a sized map).
func floatingCapacity(subnets []model.Subnet) int {
	total := 0
	for _, sn := range subnets {
		if !sn.CIDR.Addr().Is4() {
			continue
		}
		total += 1 << (32 - sn.CIDR.Bits())
		if total >= firewall.MaxFloatingIPsLimit {
			return firewall.MaxFloatingIPsLimit
		}
	}
	return total
}
