// Package quickstart is standalone mode's demonstration, and the scenario
// its end-to-end tests and benchmarks drive: through the network API, as
// a user would, it makes an external network, a tenant network, a router
// with a gateway and an interface, two VMs' ports and a floating IP; it
// stands the VMs and the external network's upstream router up as network
// namespaces plugged into the bridges of the local compute provider; then
// it checks with real traffic that the router's appliance serves them:
// DHCP leases, SNAT to upstream, upstream to the floating IP.
package quickstart

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/provider/local"
)

// The demo's addresses.
const (
	ExternalCIDR = "172.24.4.0/24"
	// UpstreamIP is the external subnet's gateway: the upstream router,
	// a namespace.
	UpstreamIP  = "172.24.4.1"
	PrivateCIDR = "10.0.0.0/24"
	// EchoPort is where the upstream host and VM 1 answer each TCP
	// connection with the address they see it from.
	EchoPort = 7
)

// Scenario runs the demo against a running standalone system.
type Scenario struct {
	Client *Client
	// ManagementURL is the orchestrator's management API
	// (http://127.0.0.1:44250); empty: not checked.
	ManagementURL string
	// Prefix starts the names of the hosts' namespaces (at most 7 bytes):
	// <Prefix>upstream, <Prefix>vm1, ...
	Prefix string
	// Dir holds the VMs' DHCP client files.
	Dir string
	// Progress, when set, is told of each step done.
	Progress func(format string, args ...any)
}

// Demo is what the scenario made.
type Demo struct {
	External, Private Network
	RouterID          string
	// RouterIP is the router's address on the external network: VMs
	// without a floating IP reach upstream as it.
	RouterIP   string
	VM1, VM2   Port
	FloatingID string
	FloatingIP string
	// Upstream, VM1NS and VM2NS are the hosts' namespaces.
	Upstream, VM1NS, VM2NS string
	// Hosts are every namespace the scenario made, for RemoveHosts.
	Hosts []string

	listeners []net.Listener
}

func (s *Scenario) progress(format string, args ...any) {
	if s.Progress != nil {
		s.Progress(format, args...)
	}
}

// Up makes the demo and checks it, step by step. On failure the Demo
// returned holds what was made, for Close and RemoveHosts.
func (s *Scenario) Up(ctx context.Context) (*Demo, error) {
	d := &Demo{}
	err := s.up(ctx, d)
	return d, err
}

func (s *Scenario) up(ctx context.Context, d *Demo) (err error) {
	start := time.Now()
	c := s.Client
	if d.External, err = c.External(ctx, "public", ExternalCIDR, UpstreamIP); err != nil {
		return err
	}
	s.progress("external network public %s made (%s)", ExternalCIDR, d.External.ID)
	if d.Private, err = c.Tenant(ctx, "private", PrivateCIDR); err != nil {
		return err
	}
	s.progress("tenant network private %s made (%s)", d.Private.CIDR, d.Private.ID)
	if d.RouterID, err = c.Router(ctx, "router1", d.External.ID); err != nil {
		return err
	}
	if err := c.AddInterface(ctx, d.RouterID, d.Private.SubnetID); err != nil {
		return err
	}
	if d.RouterIP, err = c.RouterGatewayIP(ctx, d.RouterID); err != nil {
		return err
	}
	s.progress("router router1 made (%s): gateway %s on public, interface %s on private", d.RouterID, d.RouterIP, d.Private.GatewayIP)
	if d.VM1, err = c.VMPort(ctx, "vm1", d.Private.ID); err != nil {
		return err
	}
	if d.VM2, err = c.VMPort(ctx, "vm2", d.Private.ID); err != nil {
		return err
	}
	s.progress("ports made: vm1 %s (%s), vm2 %s (%s)", d.VM1.IP, d.VM1.MAC, d.VM2.IP, d.VM2.MAC)
	if d.FloatingID, d.FloatingIP, err = c.FloatingIP(ctx, d.External.ID, d.VM1.ID); err != nil {
		return err
	}
	s.progress("floating IP %s made for vm1", d.FloatingIP)

	if err := c.WaitRouterState(ctx, d.RouterID, "ACTIVE"); err != nil {
		return err
	}
	s.progress("router ACTIVE in GET /v2.0/routers/%s (tag %sACTIVE), %.1fs after the first request",
		d.RouterID, StateTagPrefix, time.Since(start).Seconds())
	if s.ManagementURL != "" {
		r, err := WaitManagedStatus(ctx, s.ManagementURL, d.RouterID, "ACTIVE")
		if err != nil {
			return err
		}
		s.progress("router ACTIVE in the management API: GET %s/resources/%s (instance %s)", s.ManagementURL, d.RouterID, r.Instance)
	}

	if err := s.plugUpstream(ctx, d); err != nil {
		return err
	}
	for _, vm := range []struct {
		ns   *string
		name string
		port Port
	}{{&d.VM1NS, "vm1", d.VM1}, {&d.VM2NS, "vm2", d.VM2}} {
		if *vm.ns, err = s.PlugVM(ctx, d, vm.name, vm.port); err != nil {
			return err
		}
	}
	if err := s.CheckSNAT(ctx, d, d.VM2NS); err != nil {
		return err
	}
	return s.CheckFloatingIP(ctx, d)
}

// plugUpstream stands the upstream router up on the external network's
// bridge, with an echo server.
func (s *Scenario) plugUpstream(ctx context.Context, d *Demo) error {
	br := local.DefaultBridgeName(d.External.ID)
	if err := WaitLink(ctx, br); err != nil {
		return err
	}
	d.Upstream = s.Prefix + "upstream"
	d.Hosts = append(d.Hosts, d.Upstream)
	addr := netip.MustParsePrefix(UpstreamIP + "/24")
	if err := PlugHost(ctx, d.Upstream, br, nil, addr, netip.Addr{}); err != nil {
		return err
	}
	if err := d.echo(d.Upstream, net.JoinHostPort(UpstreamIP, fmt.Sprint(EchoPort))); err != nil {
		return err
	}
	s.progress("upstream host %s plugged into bridge %s of public", addr, br)
	return nil
}

// PlugVM stands a VM up as namespace <Prefix><name> on its port's
// network, once the router's appliance plugged that network's bridge,
// and waits for its DHCP lease (the appliance's dnsmasq).
func (s *Scenario) PlugVM(ctx context.Context, d *Demo, name string, p Port) (string, error) {
	br := local.DefaultBridgeName(p.NetworkID)
	if err := WaitLink(ctx, br); err != nil {
		return "", err
	}
	ns := s.Prefix + name
	d.Hosts = append(d.Hosts, ns)
	if err := PlugHost(ctx, ns, br, p.MAC, netip.Prefix{}, netip.Addr{}); err != nil {
		return "", err
	}
	start := time.Now()
	l, err := lab.DHCP(ctx, ns, filepath.Join(s.Dir, name))
	if err != nil {
		return "", fmt.Errorf("%s: DHCP: %w", name, err)
	}
	if l.IP != p.IP {
		return "", fmt.Errorf("%s: DHCP gave %s, but its port has %s", name, l.IP, p.IP)
	}
	s.progress("%s got its DHCP lease in %.1fs: %s/%s via %s, DNS %s, MTU %s", name, time.Since(start).Seconds(),
		l.IP, l.Mask, l.Routers, l.DNS, l.MTU)
	if err := d.echo(ns, net.JoinHostPort("0.0.0.0", fmt.Sprint(EchoPort))); err != nil {
		return "", err
	}
	return ns, nil
}

// CheckSNAT checks that the VM in namespace vm reaches upstream, seen as
// the router's external address.
func (s *Scenario) CheckSNAT(ctx context.Context, d *Demo, vm string) error {
	if err := Ping(ctx, vm, UpstreamIP); err != nil {
		return err
	}
	seen, err := lab.SeenAs(ctx, vm, net.JoinHostPort(UpstreamIP, fmt.Sprint(EchoPort)))
	if err != nil {
		return err
	}
	if seen != d.RouterIP {
		return fmt.Errorf("%s reached upstream as %s, want the router's address %s (SNAT)", vm, seen, d.RouterIP)
	}
	s.progress("%s pings upstream %s, and upstream sees it as the router's address %s (SNAT)", vm, UpstreamIP, seen)
	return nil
}

// CheckFloatingIP checks that upstream reaches VM 1 at its floating IP,
// and that VM 1 reaches upstream as it.
func (s *Scenario) CheckFloatingIP(ctx context.Context, d *Demo) error {
	if err := Ping(ctx, d.Upstream, d.FloatingIP); err != nil {
		return err
	}
	addr := net.JoinHostPort(d.FloatingIP, fmt.Sprint(EchoPort))
	seen, err := lab.SeenAs(ctx, d.Upstream, addr)
	if err != nil {
		return err
	}
	if seen != UpstreamIP {
		return fmt.Errorf("vm1 saw upstream's connection to %s from %s, want %s", addr, seen, UpstreamIP)
	}
	out, err := lab.SeenAs(ctx, d.VM1NS, net.JoinHostPort(UpstreamIP, fmt.Sprint(EchoPort)))
	if err != nil {
		return err
	}
	if out != d.FloatingIP {
		return fmt.Errorf("vm1 reached upstream as %s, want its floating IP %s", out, d.FloatingIP)
	}
	s.progress("upstream pings and connects to floating IP %s, reaching vm1 (%s); vm1 reaches upstream as %s",
		d.FloatingIP, d.VM1.IP, out)
	return nil
}

// ProbeTimeout bounds one connection attempt of the waits for a path to
// close: failing (refused, unreachable, or timed out) means the path is
// gone.
const ProbeTimeout = time.Second

// EchoAddr is the echo server's address on host.
func EchoAddr(host string) string { return net.JoinHostPort(host, strconv.Itoa(EchoPort)) }

// WaitUnreachable waits until a connection from namespace ns to the echo
// server at addr fails, and returns when that attempt started.
func WaitUnreachable(ctx context.Context, ns, addr string) (time.Time, error) {
	var at time.Time
	err := Wait(ctx, addr+" unreachable from "+ns, func() error {
		at = time.Now()
		seen, err := lab.Dial(ns, addr, ProbeTimeout)
		if err == nil {
			return fmt.Errorf("%w: %s still reached (seen as %s)", ErrNotYet, addr, seen)
		}
		return nil
	})
	return at, err
}

// echo starts an echo server in namespace ns, closed by Close.
func (d *Demo) echo(ns, addr string) error {
	ln, err := lab.Echo(ns, addr)
	if err != nil {
		return fmt.Errorf("echo server in %s: %w", ns, err)
	}
	d.listeners = append(d.listeners, ln)
	return nil
}

// Close stops the demo's echo servers (the hosts stay).
func (d *Demo) Close() {
	for _, ln := range d.listeners {
		ln.Close()
	}
	d.listeners = nil
}

// RemoveHosts closes the demo and removes its hosts' namespaces.
func (d *Demo) RemoveHosts() error {
	d.Close()
	var errs []error
	for _, ns := range d.Hosts {
		errs = append(errs, RemoveHost(ns))
	}
	return errors.Join(errs...)
}
