package cloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/provider/neutron"
	"github.com/astara-go/astara/internal/quickstart"
	"github.com/astara-go/astara/internal/standalone"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/neutrontest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

func TestMain(m *testing.M) { appliancetest.Main(m) }

// e2eTimeout bounds the end-to-end test's waits: a real Neutron answers
// router updates in about a second, and agents built with the race
// detector start slowly on a loaded machine.
const e2eTimeout = 4 * time.Minute

// TestRealNeutron is OpenStack mode against a real Neutron server
// (scripts/neutron.sh, in headers mode): the orchestrator, configured as
// an operator would (auth_type none, [neutron] endpoint_override,
// compute_provider local), consumes Neutron's real notifications from
// RabbitMQ and runs the router's appliance on this machine. Through
// Neutron's API, as a user would, the test makes an external and a tenant
// network, a router with a gateway and an interface, two VMs' ports and a
// floating IP, and checks real traffic: both DHCP leases, SNAT, the
// floating IP both ways. Then it updates (the floating IP moved from one
// VM to the other) and deletes everything, checking that the appliance,
// its namespace and its ports go, and that Neutron then deletes the
// networks (nothing of the orchestrator's is left on them).
func TestRealNeutron(t *testing.T) {
	nstest.Require(t)
	n := neutrontest.FindHeaders(t)
	if n.TransportURL == "" {
		t.Fatal("ASTARA_NEUTRON_TRANSPORT_URL is not set: the broker Neutron publishes to")
	}
	api, err := url.Parse(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	broker, err := url.Parse(n.TransportURL)
	if err != nil {
		t.Fatal(err)
	}
	// The test runs in a namespace of its own; Neutron and RabbitMQ run on
	// the host's loopback.
	nstest.ForwardFromHost(t, api.Host)
	nstest.ForwardFromHost(t, broker.Host)

	w := newWorld(t, n)
	ctx := w.ctx
	c := w.scen.Client
	d, err := w.scen.Up(ctx)
	t.Cleanup(func() {
		if err := d.RemoveHosts(); err != nil {
			t.Errorf("removing the hosts: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	in, found, err := quickstart.Appliance(w.cfg.StateDir, d.RouterID)
	if err != nil || !found {
		t.Fatalf("router %s's appliance: found %v, %v", d.RouterID, found, err)
	}
	t.Logf("router %s served by appliance %s (namespace %s)", d.RouterID, in.ID, in.Namespace)

	// Update: the floating IP leaves vm1 (PUT port_id null)...
	if err := c.AssociateFloatingIP(ctx, d.FloatingID, ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	gone, err := quickstart.WaitUnreachable(ctx, d.Upstream, quickstart.EchoAddr(d.FloatingIP))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("floating IP %s disassociated: the first connection to fail started %v after Neutron answered",
		d.FloatingIP, gone.Sub(start).Round(time.Millisecond))
	if err := w.scen.CheckSNAT(ctx, d, d.VM1NS); err != nil {
		t.Fatal(err)
	}
	// ... and goes to vm2.
	if err := c.AssociateFloatingIP(ctx, d.FloatingID, d.VM2.ID); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := waitSeenAs(ctx, d.Upstream, quickstart.EchoAddr(d.FloatingIP), quickstart.UpstreamIP); err != nil {
		t.Fatal(err)
	}
	out, err := lab.SeenAs(ctx, d.VM2NS, quickstart.EchoAddr(quickstart.UpstreamIP))
	if err != nil || out != d.FloatingIP {
		t.Fatalf("vm2 reached upstream as %q (%v), want its new floating IP %s", out, err, d.FloatingIP)
	}
	t.Logf("floating IP %s moved to vm2 %s: upstream reaches it %v after Neutron answered", d.FloatingIP, d.VM2.IP,
		time.Since(start).Round(time.Millisecond))
	if after, found, err := quickstart.Appliance(w.cfg.StateDir, d.RouterID); err != nil || !found || after.ID != in.ID {
		t.Errorf("after the updates, router %s's appliance is %+v (found %v, %v), want %s still", d.RouterID, after, found, err, in.ID)
	}

	// Delete: the floating IP, the interface and the router; the
	// appliance and its ports go.
	start = time.Now()
	if err := c.DeleteFloatingIP(ctx, d.FloatingID); err != nil {
		t.Fatal(err)
	}
	d.FloatingID = ""
	if err := c.DeleteRouter(ctx, d.RouterID); err != nil {
		t.Fatal(err)
	}
	if err := quickstart.Wait(ctx, "appliance deleted", func() error {
		insts, err := local.ReadInstances(filepath.Join(w.cfg.StateDir, "local"))
		if err != nil {
			return err
		}
		if len(insts) != 0 {
			return fmt.Errorf("%w: instances %+v", quickstart.ErrNotYet, insts)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", in.Namespace)); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: namespace %s: %v", quickstart.ErrNotYet, in.Namespace, err)
		}
		sp, err := c.ServicePorts(ctx, d.RouterID)
		if err != nil {
			return err
		}
		if len(sp) != 0 {
			return fmt.Errorf("%w: service ports %v", quickstart.ErrNotYet, sp)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("router %s deleted: its appliance, namespace and service ports gone %v after the first delete",
		d.RouterID, time.Since(start).Round(time.Millisecond))
	d.RouterID = ""
	if err := quickstart.PingOnce(ctx, d.VM2NS, quickstart.UpstreamIP); err == nil {
		t.Errorf("vm2 still pings upstream, its router deleted")
	}
	// Neutron deletes the networks: nothing of the orchestrator's is on them.
	if err := w.deleteDemo(d); err != nil {
		t.Fatal(err)
	}
}

// world is OpenStack mode run by a test against the real Neutron: its
// own management network in Neutron, its own broker queue, the test
// binary as the appliances' agent.
type world struct {
	t     *testing.T
	ctx   context.Context
	cfg   *config.Config
	admin *gophercloud.ServiceClient
	sys   *System
	scen  *quickstart.Scenario
	log   *nstest.SyncBuffer
}

func newWorld(t *testing.T, n neutrontest.Server) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	t.Cleanup(cancel)
	run := randomHex(2)
	service, tenant := randomHex(16), randomHex(16) // the orchestrator's (service) project, the user's
	// Whatever happens, the projects' objects go (last: after the
	// orchestrator stopped).
	neutrontest.CleanupProjects(t, n, service, tenant, quickstart.AdminProject)
	w := &world{t: t, ctx: ctx, log: &nstest.SyncBuffer{}}
	var err error
	if w.admin, err = neutron.NoAuthClient(n.URL, service, nil); err != nil {
		t.Fatal(err)
	}

	// The management network, as an operator makes it: IPv6 SLAAC, the
	// orchestrator's address as the gateway.
	var ula [16]byte
	ula[0] = 0xfd
	rand.Read(ula[1:8])
	prefix := netip.PrefixFrom(netip.AddrFrom16(ula), 64)
	up := true
	mgmt, err := networks.Create(ctx, w.admin, networks.CreateOpts{Name: "astara-mgmt-e2e-" + run, AdminStateUp: &up}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	gw := prefix.Addr().Next().String()
	sub, err := subnets.Create(ctx, w.admin, subnets.CreateOpts{NetworkID: mgmt.ID, CIDR: prefix.String(), GatewayIP: &gw,
		IPVersion: gophercloud.IPv6, IPv6AddressMode: "slaac", IPv6RAMode: "slaac"}).Extract()
	if err != nil {
		t.Fatal(err)
	}

	// dnsmasq drops to "nobody", which must reach its files: not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "astara-ne-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	host := "e2e-" + run
	file := filepath.Join(dir, "orchestrator.ini")
	if err := os.WriteFile(file, fmt.Appendf(nil, `[DEFAULT]
host = %s
state_dir = %s
management_network_id = %s
management_subnet_id = %s
management_prefix = %s
transport_url = %s
compute_provider = local
api_listen = 127.0.0.1
api_port = 0
boot_check_interval = 0.05
retry_delay = 0.2
max_retry_delay = 5
health_check_period = 10
error_state_cooldown = 5

[keystone_authtoken]
auth_type = none
project_id = %s

[neutron]
endpoint_override = %s

[standalone]
management_bridge = amg-%s
`, host, filepath.Join(dir, "s"), mgmt.ID, sub.ID, prefix, n.TransportURL, service, n.URL, run), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if w.cfg, err = config.Load([]string{file}, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := standalone.Purge(context.Background(), w.cfg, nil); err != nil {
			t.Errorf("purge: %v", err)
		}
		os.RemoveAll(dir)
		deleteQueue(t, n.TransportURL, "astara.notifications."+host)
		if t.Failed() {
			t.Logf("the orchestrator's log:\n%s", w.log.String())
			if insts, err := local.ReadInstances(filepath.Join(w.cfg.StateDir, "local")); err == nil {
				for _, in := range insts {
					if b, err := os.ReadFile(in.LogFile); err == nil {
						t.Logf("agent of %s:\n%s", in.Name, b)
					}
				}
			}
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w.sys, err = Open(ctx, w.cfg, Options{Logger: log, Local: standalone.Options{
		AgentPath: exe, AgentEnv: appliancetest.AgentEnv(), AgentArgs: []string{"-log-level", "debug"},
		NamespacePrefix: "astara-n" + run + "-",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.sys.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		if err := w.sys.Stop(sctx); err != nil {
			t.Errorf("stopping the orchestrator: %v", err)
		}
	})

	qc, err := quickstart.NewClient(n.URL, tenant)
	if err != nil {
		t.Fatal(err)
	}
	w.scen = &quickstart.Scenario{Client: qc, ManagementURL: "http://" + w.sys.Orchestrator().APIAddr().String(),
		Prefix: "n" + run + "-", Dir: filepath.Join(dir, "hosts"),
		Progress: func(format string, args ...any) { t.Logf(format, args...) }}
	return w
}

// deleteDemo deletes what the scenario made in Neutron that is still
// there: the floating IP, the router, the VMs' ports, the networks. (A
// test that fails before leaves it to neutrontest.CleanupProjects.)
func (w *world) deleteDemo(d *quickstart.Demo) error {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	c := w.scen.Client
	var errs []error
	if d.FloatingID != "" {
		errs = append(errs, c.DeleteFloatingIP(ctx, d.FloatingID))
		d.FloatingID = ""
	}
	if d.RouterID != "" {
		errs = append(errs, c.DeleteRouter(ctx, d.RouterID))
		d.RouterID = ""
	}
	for _, p := range []*quickstart.Port{&d.VM1, &d.VM2} {
		if p.ID != "" {
			errs = append(errs, ports.Delete(ctx, w.admin, p.ID).ExtractErr())
			p.ID = ""
		}
	}
	for _, nw := range []*quickstart.Network{&d.Private, &d.External} {
		if nw.ID != "" {
			errs = append(errs, w.deleteNetworkErr(ctx, nw.ID))
			nw.ID = ""
		}
	}
	return errors.Join(errs...)
}

// deleteNetworkErr deletes a network; one already gone is not an error.
func (w *world) deleteNetworkErr(ctx context.Context, id string) error {
	err := networks.Delete(ctx, w.admin, id).ExtractErr()
	if err != nil && !gophercloud.ResponseCodeIs(err, 404) {
		return fmt.Errorf("deleting network %s: %w", id, err)
	}
	return nil
}

// deleteQueue deletes the orchestrator's durable notification queue.
func deleteQueue(t *testing.T, transportURL, queue string) {
	u, err := url.Parse(transportURL)
	if err != nil {
		t.Errorf("transport URL: %v", err)
		return
	}
	u.Scheme = "amqp"
	conn, err := amqp.Dial(u.String())
	if err != nil {
		t.Errorf("deleting queue %s: %v", queue, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("deleting queue %s: %v", queue, err)
		return
	}
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Errorf("deleting queue %s: %v", queue, err)
	}
}

// waitSeenAs waits until a connection from namespace ns to the echo
// server at addr gets through, seen as want.
func waitSeenAs(ctx context.Context, ns, addr, want string) error {
	return quickstart.Wait(ctx, addr+" reached from "+ns, func() error {
		seen, err := lab.Dial(ns, addr, quickstart.ProbeTimeout)
		if err != nil {
			return fmt.Errorf("%w: %v", quickstart.ErrNotYet, err)
		}
		if seen != want {
			return fmt.Errorf("%s saw the connection from %s, want %s", addr, seen, want)
		}
		return nil
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
