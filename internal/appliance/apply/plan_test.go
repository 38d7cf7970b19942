package apply

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/astara-go/astara/internal/appliance/apply/firewall"
	"github.com/astara-go/astara/internal/appliance/apply/netif"
	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/appliance/model"
)

func labLinks() []netif.Link {
	var links []netif.Link
	for i, mac := range lab.ApplianceMACs {
		hw, _ := net.ParseMAC(mac)
		links = append(links, netif.Link{Generic: "ge" + string(rune('0'+i)), Name: "eth" + string(rune('0'+i)), MAC: hw})
	}
	return links
}

func labDoc() *model.Document {
	l := &lab.Lab{
		MgmtPrefix:    netip.MustParsePrefix("fdca:1::/64"),
		Orchestrator:  netip.MustParseAddr("fdca:1::1"),
		ApplianceMgmt: netip.MustParsePrefix("fdca:1::2/64"),
	}
	return l.Document(9697)
}

func TestBind(t *testing.T) {
	doc := labDoc()
	real, err := bind(doc, labLinks())
	if err != nil {
		t.Fatal(err)
	}
	if real["ge0"] != "eth0" || real["ge3"] != "eth3" {
		t.Errorf("bound %v", real)
	}

	doc.Networks[3].Interface.IfName = "ge7"
	doc.Networks[1].Interface.LLAddr = "fa:16:3e:ff:ff:ff"
	_, err = bind(doc, labLinks())
	var verr *model.ValidationError
	if !errors.As(err, &verr) || len(verr.Errors) != 2 {
		t.Fatalf("err = %v, want two field errors", err)
	}
	if f := verr.Errors[0]; f.Field != "networks[1].interface.lladdr" || !strings.Contains(f.Msg, "ge1 is fa:16:3e:aa:00:01") {
		t.Errorf("first error %+v", f)
	}
	if f := verr.Errors[1]; f.Field != "networks[3].interface.ifname" || !strings.Contains(f.Msg, "no interface ge7") || !strings.Contains(f.Msg, "ge3=fa:16:3e:aa:00:03") {
		t.Errorf("second error %+v", f)
	}
}

func TestPlan(t *testing.T) {
	doc := labDoc()
	keep := netip.MustParsePrefix("fdca:1::99/64")
	links := labLinks()
	links[0].Addresses = []netip.Prefix{keep}
	p, err := newPlan(doc, links, planConfig{ManagementTCPPorts: []uint16{22, 5000}, Keep: []netip.Prefix{keep}})
	if err != nil {
		t.Fatal(err)
	}

	// Interfaces: DAD off except on the external network; the API's address kept.
	for _, ifc := range p.netif.Interfaces {
		if ifc.DisableDAD != (ifc.Name != "eth1") {
			t.Errorf("%s: DisableDAD %v", ifc.Name, ifc.DisableDAD)
		}
	}
	if mgmt := p.netif.Interfaces[0]; !slices.Contains(mgmt.Addresses, keep) || !slices.Contains(mgmt.Addresses, netip.MustParsePrefix("fdca:1::2/64")) {
		t.Errorf("management addresses %v, want the document's and the kept one", mgmt.Addresses)
	}
	wantRoutes := []netif.Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: lab.ExtGateway, Dev: "eth1"},
		{Dst: netip.MustParsePrefix("::/0"), Gateway: lab.ExtV6Gateway, Dev: "eth1"},
		{Dst: netip.MustParsePrefix("10.10.0.0/16"), Gateway: netip.MustParseAddr("192.168.0.254"), Dev: "eth2"},
	}
	if !slices.Equal(p.netif.Routes, wantRoutes) {
		t.Errorf("routes %v, want %v", p.netif.Routes, wantRoutes)
	}
	if want := []netif.LocalAddr{{Addr: lab.FloatingIP, Dev: "eth1"}}; !slices.Equal(p.netif.LocalAddrs, want) {
		t.Errorf("local addresses %v, want %v", p.netif.LocalAddrs, want)
	}

	fw := p.firewall
	if !slices.Equal(fw.Management, []string{"eth0"}) || fw.External == nil || fw.External.SNATAddr != lab.RouterExt.Addr() ||
		!slices.Equal(fw.External.BGPPeers, []netip.Addr{lab.ExtV6Gateway}) {
		t.Errorf("firewall management/external: %v %+v", fw.Management, fw.External)
	}
	wantTenants := []firewall.Tenant{
		{IfName: "eth2", Internal: true, V4Subnets: []netip.Prefix{lab.Int1CIDR}, DHCPv4: true,
			Metadata: netip.MustParseAddrPort("192.168.0.1:9602")},
		{IfName: "eth3", Internal: true, V4Subnets: []netip.Prefix{lab.Int2CIDR}, DHCPv4: true,
			Metadata: netip.MustParseAddrPort("10.1.0.1:9603")},
	}
	if len(fw.Tenants) != 2 {
		t.Fatalf("tenants %+v", fw.Tenants)
	}
	for i, w := range wantTenants {
		g := fw.Tenants[i]
		if g.IfName != w.IfName || g.Internal != w.Internal || !slices.Equal(g.V4Subnets, w.V4Subnets) ||
			g.DHCPv4 != w.DHCPv4 || g.DHCPv6 || g.DNS || g.Metadata != w.Metadata {
			t.Errorf("tenant %d: %+v, want %+v", i, g, w)
		}
	}
	if fw.MaxFloatingIPs != 256 {
		t.Errorf("MaxFloatingIPs = %d, want 256 (the external /24)", fw.MaxFloatingIPs)
	}
	if want := []firewall.FloatingIP{{Floating: lab.FloatingIP, Fixed: lab.VM1IP}}; !slices.Equal(fw.FloatingIPs, want) {
		t.Errorf("floating IPs %v", fw.FloatingIPs)
	}

	if len(p.dhcp.Networks) != 2 || !slices.Equal(p.dhcp.ExceptInterfaces, []string{"eth0", "eth1"}) {
		t.Errorf("dhcp spec %+v", p.dhcp)
	}
	if p.bird.External == nil || p.bird.External.Interface != "eth1" || len(p.bird.Tenants) != 2 {
		t.Errorf("bird spec %+v", p.bird)
	}
	if len(p.metadata.Networks) != 2 || p.metadata.Upstream != netip.MustParseAddrPort("[fdca:1::1]:9697") {
		t.Errorf("metadata spec %+v", p.metadata)
	}
}

func TestPlanSkipsRouterUnfriendlyHostRoutes(t *testing.T) {
	doc := labDoc()
	sn := &doc.Networks[2].Subnets[0]
	sn.HostRoutes = append(sn.HostRoutes,
		model.HostRoute{Destination: netip.MustParsePrefix("0.0.0.0/0"), NextHop: netip.MustParseAddr("192.168.0.254")},
		model.HostRoute{Destination: netip.MustParsePrefix("10.20.0.0/16"), NextHop: netip.MustParseAddr("192.168.0.1")})
	p, err := newPlan(doc, labLinks(), planConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.netif.Routes {
		if r.Dev == "eth2" && r.Dst != netip.MustParsePrefix("10.10.0.0/16") {
			t.Errorf("route %+v installed on the router", r)
		}
	}
}
