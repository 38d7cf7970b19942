package quickstart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/provider/local"
)

// checkFloatingIPRemoved checks what deleting vm1's floating IP does to
// traffic: upstream no longer reaches vm1 at it (TCP nor ping), and vm1
// reaches upstream as the router's address again (SNAT). It returns when
// the first connection to the floating IP that failed started.
func checkFloatingIPRemoved(ctx context.Context, t *testing.T, sys *system, d *Demo) time.Time {
	t.Helper()
	gone, err := WaitUnreachable(ctx, d.Upstream, EchoAddr(d.FloatingIP))
	if err != nil {
		t.Fatal(err)
	}
	if err := PingOnce(ctx, d.Upstream, d.FloatingIP); err == nil {
		t.Errorf("upstream still pings %s, the floating IP deleted", d.FloatingIP)
	}
	if err := sys.scen.CheckSNAT(ctx, d, d.VM1NS); err != nil {
		t.Fatal(err)
	}
	return gone
}

// procStartTime returns when process pid started (field 22 of
// /proc/<pid>/stat), and whether it lives (exists, not a zombie).
func procStartTime(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return "", false
	}
	return f[19], true
}

// TestHotPlugSecondSubnet adds a second tenant subnet to the running
// router: its appliance gets a NIC on it without a reboot, serves DHCP on
// it, and routes a VM there to the first subnet (east-west, not NATed)
// and to upstream (SNAT).
func TestHotPlugSecondSubnet(t *testing.T) {
	sys := newSystem(t)
	d := sys.up()
	ctx := sys.ctx()
	c := sys.scen.Client
	before, found, err := Appliance(sys.cfg.StateDir, d.RouterID)
	if err != nil || !found {
		t.Fatalf("router %s's appliance: found %v, %v", d.RouterID, found, err)
	}

	start := time.Now()
	n, err := c.Tenant(ctx, "private2", "10.0.1.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddInterface(ctx, d.RouterID, n.SubnetID); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	vm3, err := c.VMPort(ctx, "vm3", n.ID)
	if err != nil {
		t.Fatal(err)
	}
	// PlugVM starts the DHCP client once the new network's bridge exists:
	// ~0.1 s before the appliance's dnsmasq serves the new subnet, so the
	// lease usually comes with dhclient's first retransmission (seconds).
	ns, err := sys.scen.PlugVM(ctx, d, "vm3", vm3)
	if err != nil {
		t.Fatal(err)
	}
	leased := time.Now()

	// East-west: vm3 reaches vm1 on the first subnet through the router,
	// and vm1 sees vm3's own address.
	if err := Ping(ctx, ns, d.VM1.IP); err != nil {
		t.Fatal(err)
	}
	routed := time.Now()
	seen, err := lab.SeenAs(ctx, ns, EchoAddr(d.VM1.IP))
	if err != nil {
		t.Fatal(err)
	}
	if seen != vm3.IP {
		t.Errorf("vm1 saw vm3's connection from %s, want vm3's address %s (no NAT between tenant subnets)", seen, vm3.IP)
	}
	if err := sys.scen.CheckSNAT(ctx, d, ns); err != nil {
		t.Fatal(err)
	}
	// The first subnet still works.
	if err := sys.scen.CheckSNAT(ctx, d, d.VM2NS); err != nil {
		t.Fatal(err)
	}
	if err := sys.scen.CheckFloatingIP(ctx, d); err != nil {
		t.Fatal(err)
	}

	after, found, err := Appliance(sys.cfg.StateDir, d.RouterID)
	if err != nil || !found {
		t.Fatalf("router %s's appliance after the hot-plug: found %v, %v", d.RouterID, found, err)
	}
	if after.ID != before.ID || after.PID != before.PID {
		t.Errorf("appliance %s (agent %d) replaced by %s (agent %d): want the NIC hot-plugged, not a reboot",
			before.ID, before.PID, after.ID, after.PID)
	}
	if !slices.ContainsFunc(after.Ports, func(p local.PortInfo) bool { return p.NetworkID == n.ID }) {
		t.Errorf("appliance %s has no port on network %s: %+v", after.ID, n.ID, after.Ports)
	}
	if state, _, err := c.RouterState(ctx, d.RouterID); err != nil || state != "ACTIVE" {
		t.Errorf("router state %q, %v; want ACTIVE", state, err)
	}
	t.Logf("subnet %s hot-plugged into appliance %s: interface added %v after the first request, "+
		"vm3 leased %v and routed to vm1 %v after the interface",
		n.CIDR, after.ID, added.Sub(start).Round(time.Millisecond),
		leased.Sub(added).Round(time.Millisecond), routed.Sub(added).Round(time.Millisecond))
}

// TestRemoveFloatingIP deletes vm1's floating IP: upstream no longer
// reaches vm1 at it, and vm1 reaches upstream as the router's address.
func TestRemoveFloatingIP(t *testing.T) {
	sys := newSystem(t)
	d := sys.up()
	ctx := sys.ctx()
	start := time.Now()
	if err := sys.scen.Client.DeleteFloatingIP(ctx, d.FloatingID); err != nil {
		t.Fatal(err)
	}
	gone := checkFloatingIPRemoved(ctx, t, sys, d)
	t.Logf("floating IP %s deleted: unreachable from upstream %v after the request",
		d.FloatingIP, gone.Sub(start).Round(time.Millisecond))
}

// TestDeleteRouter deletes the router: its appliance goes (instance,
// namespace, agent), and so do its service ports and the orchestrator's
// state of it; its VMs lose their way out.
func TestDeleteRouter(t *testing.T) {
	sys := newSystem(t)
	d := sys.up()
	ctx := sys.ctx()
	c := sys.scen.Client
	in, found, err := Appliance(sys.cfg.StateDir, d.RouterID)
	if err != nil || !found {
		t.Fatalf("router %s's appliance: found %v, %v", d.RouterID, found, err)
	}
	agentStart, alive := procStartTime(in.PID)
	if !alive {
		t.Fatalf("agent %d of appliance %s is not running", in.PID, in.ID)
	}
	if sp, err := c.ServicePorts(ctx, d.RouterID); err != nil || len(sp) == 0 {
		t.Fatalf("router %s's service ports: %v, %v; want some before the delete", d.RouterID, sp, err)
	}

	// The network API, as Neutron, refuses to remove a router interface
	// a floating IP needs: the floating IP goes first.
	start := time.Now()
	if err := c.DeleteFloatingIP(ctx, d.FloatingID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRouter(ctx, d.RouterID); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.RouterExists(ctx, d.RouterID); err != nil || ok {
		t.Fatalf("router %s exists after its delete: %v, %v", d.RouterID, ok, err)
	}
	var timings []string
	step := func(what string, cond func() error) {
		t.Helper()
		if err := Wait(ctx, what, cond); err != nil {
			t.Fatal(err)
		}
		timings = append(timings, fmt.Sprintf("%s %v", what, time.Since(start).Round(time.Millisecond)))
	}
	step("unmanaged", func() error {
		r, found, err := ManagedResource(ctx, sys.scen.ManagementURL, d.RouterID)
		if err != nil {
			return err
		}
		if found {
			return fmt.Errorf("%w: still managed: %+v", ErrNotYet, r)
		}
		return nil
	})
	step("instance deleted", func() error {
		got, found, err := Appliance(sys.cfg.StateDir, d.RouterID)
		if err != nil {
			return err
		}
		if found {
			return fmt.Errorf("%w: instance %s still serves it", ErrNotYet, got.ID)
		}
		insts, err := local.ReadInstances(filepath.Join(sys.cfg.StateDir, "local"))
		if err != nil {
			return err
		}
		for _, i := range insts {
			if i.ID == in.ID {
				return fmt.Errorf("%w: instance %s still recorded", ErrNotYet, in.ID)
			}
		}
		return nil
	})
	step("namespace gone", func() error {
		_, err := os.Stat(filepath.Join("/run/netns", in.Namespace))
		switch {
		case err == nil:
			return fmt.Errorf("%w: namespace %s exists", ErrNotYet, in.Namespace)
		case errors.Is(err, os.ErrNotExist):
			return nil
		}
		return err
	})
	step("agent exited", func() error {
		if s, alive := procStartTime(in.PID); alive && s == agentStart {
			return fmt.Errorf("%w: agent %d runs", ErrNotYet, in.PID)
		}
		return nil
	})
	step("service ports deleted", func() error {
		sp, err := c.ServicePorts(ctx, d.RouterID)
		if err != nil {
			return err
		}
		if len(sp) != 0 {
			return fmt.Errorf("%w: service ports %v", ErrNotYet, sp)
		}
		return nil
	})
	if len(sys.instances()) != 0 {
		t.Errorf("instances left: %+v", sys.instances())
	}
	// The VMs, plugged still, lost their router.
	if err := PingOnce(ctx, d.VM2NS, UpstreamIP); err == nil {
		t.Errorf("vm2 still pings upstream, its router deleted")
	}
	if _, err := lab.Dial(d.Upstream, EchoAddr(d.FloatingIP), ProbeTimeout); err == nil {
		t.Errorf("upstream still reaches %s, its router deleted", d.FloatingIP)
	}
	t.Logf("router %s deleted (appliance %s); after the request: %s", d.RouterID, in.ID, strings.Join(timings, ", "))
}

// TestRestartOrchestrator stops standalone mode and opens it again on its
// state directory: the appliances keep serving while it is down, the new
// orchestrator adopts them without a reboot, the network API kept every
// object, and a change made after the restart is applied.
func TestRestartOrchestrator(t *testing.T) {
	sys := newSystem(t)
	d := sys.up()
	ctx := sys.ctx()
	before := sys.instances()
	if len(before) == 0 {
		t.Fatal("no instance")
	}
	oldMgmt, oldNet := sys.scen.ManagementURL, sys.s.NetworkURL()

	stopping := time.Now()
	sys.stop()
	stopped := time.Now()
	if _, found, err := ManagedResource(ctx, oldMgmt, d.RouterID); err == nil {
		t.Errorf("management API %s still answers (found %v) after the stop", oldMgmt, found)
	}
	// The appliances serve without the orchestrator.
	if err := sys.scen.CheckSNAT(ctx, d, d.VM2NS); err != nil {
		t.Fatal(err)
	}
	if err := sys.scen.CheckFloatingIP(ctx, d); err != nil {
		t.Fatal(err)
	}

	starting := time.Now()
	sys.start()
	started := time.Now()
	if url := sys.s.NetworkURL(); url != oldNet {
		t.Logf("network API moved from %s to %s", oldNet, url)
		cl, err := NewClient(url, "demo")
		if err != nil {
			t.Fatal(err)
		}
		sys.scen.Client = cl
	}
	c := sys.scen.Client
	r, err := WaitManagedStatus(ctx, sys.scen.ManagementURL, d.RouterID, "ACTIVE")
	if err != nil {
		t.Fatal(err)
	}
	managed := time.Now()
	if state, _, err := c.RouterState(ctx, d.RouterID); err != nil || state != "ACTIVE" {
		t.Errorf("router state %q, %v after the restart; want ACTIVE", state, err)
	}
	after := sys.instances()
	type idPID struct {
		ID  string
		PID int
	}
	ids := func(insts []local.Info) (out []idPID) {
		for _, in := range insts {
			out = append(out, idPID{in.ID, in.PID})
		}
		return out
	}
	if !slices.Equal(ids(before), ids(after)) {
		t.Errorf("instances (id, agent pid) %v before the restart, %v after: want them adopted, not rebooted",
			ids(before), ids(after))
	}
	for _, in := range after {
		if _, alive := procStartTime(in.PID); !alive {
			t.Errorf("agent %d of instance %s is not running", in.PID, in.ID)
		}
	}
	select {
	case e := <-sys.exits:
		t.Errorf("an agent exited: %+v", e)
	default:
	}
	if err := sys.scen.CheckSNAT(ctx, d, d.VM2NS); err != nil {
		t.Fatal(err)
	}
	if err := sys.scen.CheckFloatingIP(ctx, d); err != nil {
		t.Fatal(err)
	}
	checkObjects(ctx, t, c, d)

	// The restarted orchestrator consumes the network API's events.
	change := time.Now()
	if err := c.DeleteFloatingIP(ctx, d.FloatingID); err != nil {
		t.Fatal(err)
	}
	gone := checkFloatingIPRemoved(ctx, t, sys, d)
	if _, err := floatingips.Get(ctx, c.tenant, d.FloatingID).Extract(); err == nil {
		t.Errorf("floating IP %s still in the network API after its delete", d.FloatingID)
	}
	t.Logf("stopped in %v, reopened in %v, router ACTIVE in the management API (instance %s) %v after the reopen; "+
		"a floating IP deleted after the restart stopped working after %v",
		stopped.Sub(stopping).Round(time.Millisecond), started.Sub(starting).Round(time.Millisecond), r.Instance,
		managed.Sub(started).Round(time.Millisecond), gone.Sub(change).Round(time.Millisecond))
}

// checkObjects reads the demo's objects back from the network API.
func checkObjects(ctx context.Context, t *testing.T, c *Client, d *Demo) {
	t.Helper()
	for _, n := range []Network{d.External, d.Private} {
		got, err := networks.Get(ctx, c.admin, n.ID).Extract()
		if err != nil {
			t.Errorf("network %s: %v", n.ID, err)
			continue
		}
		if !slices.Contains(got.Subnets, n.SubnetID) {
			t.Errorf("network %s has subnets %v, want %s among them", n.ID, got.Subnets, n.SubnetID)
		}
		s, err := subnets.Get(ctx, c.admin, n.SubnetID).Extract()
		if err != nil {
			t.Errorf("subnet %s: %v", n.SubnetID, err)
		} else if s.CIDR != n.CIDR || s.GatewayIP != n.GatewayIP {
			t.Errorf("subnet %s: %s via %s, want %s via %s", n.SubnetID, s.CIDR, s.GatewayIP, n.CIDR, n.GatewayIP)
		}
	}
	r, err := routers.Get(ctx, c.tenant, d.RouterID).Extract()
	switch {
	case err != nil:
		t.Errorf("router %s: %v", d.RouterID, err)
	case r.GatewayInfo.NetworkID != d.External.ID || len(r.GatewayInfo.ExternalFixedIPs) == 0 ||
		r.GatewayInfo.ExternalFixedIPs[0].IPAddress != d.RouterIP:
		t.Errorf("router %s's gateway %+v, want %s on %s", d.RouterID, r.GatewayInfo, d.RouterIP, d.External.ID)
	}
	pages, err := ports.List(c.tenant, ports.ListOpts{DeviceID: d.RouterID, DeviceOwner: "network:router_interface"}).AllPages(ctx)
	if err != nil {
		t.Errorf("router %s's interfaces: %v", d.RouterID, err)
	} else if ifs, err := ports.ExtractPorts(pages); err != nil || len(ifs) != 1 || ifs[0].NetworkID != d.Private.ID {
		t.Errorf("router %s's interfaces: %+v, %v; want one on %s", d.RouterID, ifs, err, d.Private.ID)
	}
	for _, p := range []Port{d.VM1, d.VM2} {
		got, err := ports.Get(ctx, c.tenant, p.ID).Extract()
		if err != nil {
			t.Errorf("port %s: %v", p.ID, err)
		} else if got.MACAddress != p.MAC.String() || len(got.FixedIPs) == 0 || got.FixedIPs[0].IPAddress != p.IP {
			t.Errorf("port %s: %s %+v, want %s %s", p.ID, got.MACAddress, got.FixedIPs, p.MAC, p.IP)
		}
	}
	f, err := floatingips.Get(ctx, c.tenant, d.FloatingID).Extract()
	if err != nil {
		t.Errorf("floating IP %s: %v", d.FloatingID, err)
	} else if f.FloatingIP != d.FloatingIP || f.PortID != d.VM1.ID || f.RouterID != d.RouterID {
		t.Errorf("floating IP %s: %s on port %s of router %s, want %s on %s of %s",
			d.FloatingID, f.FloatingIP, f.PortID, f.RouterID, d.FloatingIP, d.VM1.ID, d.RouterID)
	}
}
