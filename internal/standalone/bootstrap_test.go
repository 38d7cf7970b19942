package standalone

import (
	"context"
	"log/slog"
	"maps"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/netapi"
	"github.com/astara-go/astara/internal/provider/neutron"
)

// embeddedAPI is a real embedded network API served on a loopback port,
// with a client of the service project (as Open makes it) and one of
// another project.
type embeddedAPI struct {
	t       *testing.T
	url     string
	admin   *gophercloud.ServiceClient // project Project, as Open's
	another *gophercloud.ServiceClient // project "another-project"
}

func newEmbeddedAPI(t *testing.T) *embeddedAPI {
	t.Helper()
	api, err := netapi.Open(netapi.Config{StateDir: t.TempDir(), Host: "standalone-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := api.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close) // before the API's Shutdown (cleanups run last first)
	e := &embeddedAPI{t: t, url: srv.URL}
	if e.admin, err = neutron.NoAuthClient(srv.URL, Project, nil); err != nil {
		t.Fatal(err)
	}
	if e.another, err = neutron.NoAuthClient(srv.URL, "another-project", nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// network makes a network named name with c.
func (e *embeddedAPI) network(c *gophercloud.ServiceClient, name string) networks.Network {
	e.t.Helper()
	n, err := networks.Create(context.Background(), c, networks.CreateOpts{Name: name}).Extract()
	if err != nil {
		e.t.Fatalf("making network %s: %v", name, err)
	}
	return *n
}

// subnet makes a subnet on cidr in the network networkID (without DHCP, so
// that IPv4 and IPv6 subnets need nothing else).
func (e *embeddedAPI) subnet(networkID, cidr string) subnets.Subnet {
	e.t.Helper()
	p := netip.MustParsePrefix(cidr)
	off := false
	opts := subnets.CreateOpts{NetworkID: networkID, CIDR: cidr, EnableDHCP: &off, IPVersion: gophercloud.IPv4}
	if p.Addr().Is6() {
		opts.IPVersion = gophercloud.IPv6
	}
	s, err := subnets.Create(context.Background(), e.admin, opts).Extract()
	if err != nil {
		e.t.Fatalf("making subnet %s: %v", cidr, err)
	}
	return *s
}

// networksNamed lists the networks named name, of every project.
func (e *embeddedAPI) networksNamed(name string) []networks.Network {
	e.t.Helper()
	pages, err := networks.List(e.admin, networks.ListOpts{Name: name}).AllPages(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	ns, err := networks.ExtractNetworks(pages)
	if err != nil {
		e.t.Fatal(err)
	}
	return ns
}

// subnetsOf lists the subnets of the network networkID.
func (e *embeddedAPI) subnetsOf(networkID string) []subnets.Subnet {
	e.t.Helper()
	pages, err := subnets.List(e.admin, subnets.ListOpts{NetworkID: networkID}).AllPages(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	ss, err := subnets.ExtractSubnets(pages)
	if err != nil {
		e.t.Fatal(err)
	}
	return ss
}

// bootstrap runs bootstrap against the API with cfg, the orchestrator's
// address being managementAddress(cfg).
func (e *embeddedAPI) bootstrap(cfg *config.Config) (management, error) {
	e.t.Helper()
	addr, err := managementAddress(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return bootstrap(context.Background(), e.admin, cfg, addr, discardLogger())
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is the default configuration with a state directory of the
// test's.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	// Short (not t.TempDir): Check refuses a state directory too long
	// for the appliances' BIRD control sockets.
	dir, err := os.MkdirTemp("", "ast-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.StateDir = dir
	cfg.Host = "standalone-test"
	return cfg
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %q", err, p)
		}
	}
}

func TestBootstrapMakesTheManagementNetworkOnce(t *testing.T) {
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.networkID == "" || m.subnetID == "" {
		t.Fatalf("bootstrap = %+v, want a network and a subnet", m)
	}

	n, err := networks.Get(context.Background(), e.admin, m.networkID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != ManagementNetworkName || n.ProjectID != Project || !n.AdminStateUp {
		t.Errorf("management network: name %q, project %q, admin_state_up %v; want %q, %q, true",
			n.Name, n.ProjectID, n.AdminStateUp, ManagementNetworkName, Project)
	}
	s, err := subnets.Get(context.Background(), e.admin, m.subnetID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if s.NetworkID != m.networkID {
		t.Errorf("subnet on network %s, want %s", s.NetworkID, m.networkID)
	}
	if want := cfg.ManagementPrefix.String(); s.CIDR != want {
		t.Errorf("subnet cidr %s, want %s", s.CIDR, want)
	}
	if want := cfg.ManagementPrefix.Addr().Next().String(); s.GatewayIP != want {
		t.Errorf("subnet gateway %q, want the orchestrator's address %s", s.GatewayIP, want)
	}
	if s.IPVersion != 6 || s.IPv6AddressMode != "slaac" || s.IPv6RAMode != "slaac" {
		t.Errorf("subnet: ip_version %d, ipv6_address_mode %q, ipv6_ra_mode %q; want 6, slaac, slaac",
			s.IPVersion, s.IPv6AddressMode, s.IPv6RAMode)
	}

	again, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again != m {
		t.Errorf("second bootstrap = %+v, want the first's %+v", again, m)
	}
	if ns := e.networksNamed(ManagementNetworkName); len(ns) != 1 {
		t.Errorf("%d networks named %s after two bootstraps, want 1", len(ns), ManagementNetworkName)
	}
	if ss := e.subnetsOf(m.networkID); len(ss) != 1 {
		t.Errorf("%d subnets on the management network after two bootstraps, want 1", len(ss))
	}
}

func TestBootstrapGatewayIsTheManagementAddress(t *testing.T) {
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	cfg.ManagementPrefix = netip.MustParsePrefix("fd00:1234:5678:9abc::/64")
	cfg.ManagementAddress = netip.MustParseAddr("fd00:1234:5678:9abc::42")
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := subnets.Get(context.Background(), e.admin, m.subnetID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if s.CIDR != "fd00:1234:5678:9abc::/64" || s.GatewayIP != "fd00:1234:5678:9abc::42" {
		t.Errorf("subnet %s gateway %s, want fd00:1234:5678:9abc::/64 gateway fd00:1234:5678:9abc::42", s.CIDR, s.GatewayIP)
	}
}

func TestBootstrapIPv4HasNoDHCP(t *testing.T) {
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	cfg.ManagementPrefix = netip.MustParsePrefix("10.42.0.0/24")
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := subnets.Get(context.Background(), e.admin, m.subnetID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if s.CIDR != "10.42.0.0/24" || s.IPVersion != 4 || s.EnableDHCP || s.GatewayIP != "10.42.0.1" {
		t.Errorf("subnet: cidr %s, ip_version %d, enable_dhcp %v, gateway %s; want 10.42.0.0/24, 4, false, 10.42.0.1",
			s.CIDR, s.IPVersion, s.EnableDHCP, s.GatewayIP)
	}
	if s.IPv6AddressMode != "" || s.IPv6RAMode != "" {
		t.Errorf("IPv4 subnet with ipv6 modes %q, %q", s.IPv6AddressMode, s.IPv6RAMode)
	}
}

func TestBootstrapUnmaskedPrefix(t *testing.T) {
	// management_prefix written with host bits: the subnet is on the network.
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	cfg.ManagementPrefix = netip.MustParsePrefix("fd00:aaaa:bbbb:cccc::7/64")
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := subnets.Get(context.Background(), e.admin, m.subnetID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if s.CIDR != "fd00:aaaa:bbbb:cccc::/64" || s.GatewayIP != "fd00:aaaa:bbbb:cccc::1" {
		t.Errorf("subnet %s gateway %s, want fd00:aaaa:bbbb:cccc::/64 gateway fd00:aaaa:bbbb:cccc::1", s.CIDR, s.GatewayIP)
	}
	again, err := e.bootstrap(cfg)
	if err != nil || again != m {
		t.Errorf("second bootstrap = %+v, %v; want %+v", again, err, m)
	}
}

func TestBootstrapConfiguredNetwork(t *testing.T) {
	e := newEmbeddedAPI(t)
	n := e.network(e.admin, "my-management")
	cfg := testConfig(t)
	cfg.ManagementNetworkID = n.ID
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.networkID != n.ID {
		t.Errorf("management network %s, want the configured %s", m.networkID, n.ID)
	}
	if ss := e.subnetsOf(n.ID); len(ss) != 1 || ss[0].ID != m.subnetID {
		t.Errorf("subnets of the configured network: %+v, want the one made (%s)", ss, m.subnetID)
	}
	if ns := e.networksNamed(ManagementNetworkName); len(ns) != 0 {
		t.Errorf("bootstrap made a network named %s although management_network_id is set", ManagementNetworkName)
	}
}

func TestBootstrapMissingConfiguredNetwork(t *testing.T) {
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	cfg.ManagementNetworkID = "6f3c1a52-0000-4000-8000-000000000000"
	_, err := e.bootstrap(cfg)
	wantErr(t, err, "management_network_id", cfg.ManagementNetworkID)
	if ns := e.networksNamed(ManagementNetworkName); len(ns) != 0 {
		t.Errorf("bootstrap made a network named %s after failing", ManagementNetworkName)
	}
}

func TestBootstrapSubnetOnAnotherPrefix(t *testing.T) {
	e := newEmbeddedAPI(t)
	n := e.network(e.admin, ManagementNetworkName)
	e.subnet(n.ID, "fd00:dead:beef:1::/64")
	cfg := testConfig(t)
	_, err := e.bootstrap(cfg)
	wantErr(t, err, "management_prefix", cfg.ManagementPrefix.String(), "fd00:dead:beef:1::/64")
	if ss := e.subnetsOf(n.ID); len(ss) != 1 {
		t.Errorf("%d subnets on the network after a failed bootstrap, want the one there was", len(ss))
	}
}

func TestBootstrapFindsTheSubnetOnThePrefix(t *testing.T) {
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	n := e.network(e.admin, ManagementNetworkName)
	e.subnet(n.ID, "10.9.0.0/24")
	want := e.subnet(n.ID, cfg.ManagementPrefix.String())
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.networkID != n.ID || m.subnetID != want.ID {
		t.Errorf("bootstrap = %+v, want network %s subnet %s", m, n.ID, want.ID)
	}
	if ss := e.subnetsOf(n.ID); len(ss) != 2 {
		t.Errorf("%d subnets, want the 2 there were", len(ss))
	}
}

func TestBootstrapConfiguredSubnet(t *testing.T) {
	e := newEmbeddedAPI(t)
	cfg := testConfig(t)
	n := e.network(e.admin, "my-management")
	other := e.subnet(n.ID, "10.9.0.0/24")
	onPrefix := e.subnet(n.ID, cfg.ManagementPrefix.String())
	elsewhere := e.subnet(e.network(e.admin, "elsewhere").ID, cfg.ManagementPrefix.String())
	cfg.ManagementNetworkID = n.ID

	cfg.ManagementSubnetID = onPrefix.ID
	m, err := e.bootstrap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.networkID != n.ID || m.subnetID != onPrefix.ID {
		t.Errorf("bootstrap = %+v, want network %s subnet %s", m, n.ID, onPrefix.ID)
	}

	cfg.ManagementSubnetID = other.ID
	_, err = e.bootstrap(cfg)
	wantErr(t, err, "management_subnet_id", other.ID, "10.9.0.0/24", "management_prefix")

	cfg.ManagementSubnetID = elsewhere.ID
	_, err = e.bootstrap(cfg)
	wantErr(t, err, "management_subnet_id", elsewhere.ID, "not a subnet of the management network")

	if ss := e.subnetsOf(n.ID); len(ss) != 2 {
		t.Errorf("%d subnets on the management network, want the 2 there were", len(ss))
	}
}

func TestBootstrapAmbiguousName(t *testing.T) {
	e := newEmbeddedAPI(t)
	e.network(e.admin, ManagementNetworkName)
	e.network(e.admin, ManagementNetworkName)
	_, err := e.bootstrap(testConfig(t))
	wantErr(t, err, "2 networks named "+ManagementNetworkName, "management_network_id")
	if ns := e.networksNamed(ManagementNetworkName); len(ns) != 2 {
		t.Errorf("%d networks named %s after a failed bootstrap, want 2", len(ns), ManagementNetworkName)
	}
}

func TestBootstrapIgnoresOtherProjects(t *testing.T) {
	// A tenant's network that happens to be named astara-management is not
	// the management network.
	e := newEmbeddedAPI(t)
	theirs := e.network(e.another, ManagementNetworkName)
	m, err := e.bootstrap(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.networkID == theirs.ID {
		t.Fatalf("bootstrap took the network of project another-project")
	}
	if ss := e.subnetsOf(theirs.ID); len(ss) != 0 {
		t.Errorf("bootstrap made subnets on another project's network: %+v", ss)
	}
	if ns := e.networksNamed(ManagementNetworkName); len(ns) != 2 {
		t.Errorf("%d networks named %s, want 2 (theirs and ours)", len(ns), ManagementNetworkName)
	}
}

func TestResolveUplinks(t *testing.T) {
	e := newEmbeddedAPI(t)
	ext := e.network(e.admin, "ext")
	byID := e.network(e.admin, "public")
	tenants := e.network(e.another, "tenant-ext") // names resolve across projects
	e.network(e.admin, "dup")
	e.network(e.another, "dup")

	for _, tc := range []struct {
		name   string
		byName map[string]string
		want   map[string]string
		err    []string
	}{
		{name: "none", byName: map[string]string{}, want: map[string]string{}},
		{name: "by name", byName: map[string]string{"ext": "eth1"}, want: map[string]string{ext.ID: "eth1"}},
		{name: "by id", byName: map[string]string{byID.ID: "eth2"}, want: map[string]string{byID.ID: "eth2"}},
		{name: "another project's", byName: map[string]string{"tenant-ext": "eth3"}, want: map[string]string{tenants.ID: "eth3"}},
		{name: "several", byName: map[string]string{"ext": "eth1", byID.ID: "eth2"},
			want: map[string]string{ext.ID: "eth1", byID.ID: "eth2"}},
		{name: "missing is skipped", byName: map[string]string{"not-yet": "eth4", "ext": "eth1"},
			want: map[string]string{ext.ID: "eth1"}},
		{name: "ambiguous", byName: map[string]string{"dup": "eth5"},
			err: []string{"external_interfaces", "2 networks are named dup"}},
		{name: "one interface for two networks", byName: map[string]string{"ext": "eth6", byID.ID: "eth6"},
			err: []string{"external_interfaces", "interface eth6 is given for two networks"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUplinks(context.Background(), e.admin, tc.byName, discardLogger())
			if tc.err != nil {
				wantErr(t, err, tc.err...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("resolveUplinks(%v) = %v, want %v", tc.byName, got, tc.want)
			}
		})
	}
}

func TestResolveUplinksUnreachableAPI(t *testing.T) {
	srv := httptest.NewServer(nil)
	srv.Close() // nothing listens there any more
	c, err := neutron.NoAuthClient(srv.URL, Project, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = resolveUplinks(context.Background(), c, map[string]string{"ext": "eth1"}, discardLogger())
	wantErr(t, err, "external_interfaces", "ext")
}
