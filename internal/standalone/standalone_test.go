package standalone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	dto "github.com/prometheus/client_model/go"
	"github.com/vishvananda/netlink"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/netapi"
	"github.com/astara-go/astara/internal/orchestrator"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/provider/neutron"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// TestMain runs the appliance agent when the local provider starts this
// binary as one (appliancetest.AgentEnv); otherwise it runs the tests, in
// a fresh network namespace as root: the management bridge and the
// appliances' bridges are made there, not on the machine.
func TestMain(m *testing.M) { appliancetest.Main(m) }

// wait bounds every wait: agents built with the race detector start slowly
// on a loaded machine.
const wait = 2 * time.Minute

// rig is a standalone mode configuration of one test's: a state directory,
// a management bridge, a management prefix and namespaces of its own, and
// the management API and network API on free loopback ports. When the
// test ends, even failed, every System opened is stopped and Purge
// removes what they made; the test fails if anything is left.
type rig struct {
	t      *testing.T
	run    string // random, in every name
	cfg    *config.Config
	opts   Options
	dir    string     // holds the state directory
	addr   netip.Addr // the orchestrator's management address
	log    *nstest.SyncBuffer
	logger *slog.Logger
	exits  chan Exit // what OnApplianceExit was told
	// bridgesBefore are the bridges there were before the test.
	bridgesBefore map[string]bool
}

func newRig(t *testing.T) *rig {
	t.Helper()
	nstest.Require(t)
	r := &rig{t: t, run: randomHex(t, 3), log: &nstest.SyncBuffer{}, exits: make(chan Exit, 64)}
	r.logger = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// dnsmasq, in an appliance, reads its files as nobody: not t.TempDir
	// (0700). Short: BIRD's control socket, under the state directory,
	// takes at most 107 bytes.
	var err error
	if r.dir, err = os.MkdirTemp("", "ast-"); err != nil {
		t.Fatal(err)
	}
	dir := r.dir
	t.Cleanup(func() { // last, after the rig's cleanup
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	if err := os.Chmod(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var ula [16]byte
	ula[0] = 0xfd
	copy(ula[1:8], randomBytes(t, 7))
	prefix := netip.PrefixFrom(netip.AddrFrom16(ula), 64)
	ula[15] = 1
	r.addr = netip.AddrFrom16(ula)

	cfg := config.Default()
	cfg.Host = "standalone-test"
	cfg.StateDir = filepath.Join(r.dir, "s")
	cfg.ProviderRulesPath = filepath.Join(r.dir, "no-provider-rules.json")
	cfg.APIListen, cfg.APIPort = "127.0.0.1", 0
	cfg.Standalone.NetworkAPIListen = "127.0.0.1:0"
	cfg.Standalone.ManagementBridge = "st" + r.run + "-mgmt"
	cfg.ManagementPrefix = prefix
	cfg.NumWorkerProcesses = 2
	cfg.HealthCheckPeriod = time.Second
	cfg.BootCheckInterval = 100 * time.Millisecond
	cfg.RetryDelay = 50 * time.Millisecond
	cfg.MaxRetryDelay = 500 * time.Millisecond
	cfg.ShutdownTimeout = 30 * time.Second
	r.cfg = cfg

	r.opts = Options{
		AgentPath:       exe,
		AgentEnv:        appliancetest.AgentEnv(),
		AgentArgs:       []string{"-log-level", "debug"},
		NamespacePrefix: "astara-st" + r.run + "-",
		Logger:          r.logger,
		OnApplianceExit: func(e Exit) {
			select {
			case r.exits <- e:
			default:
				r.logger.Error("test: too many exits")
			}
		},
	}
	r.bridgesBefore = map[string]bool{}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Type() == "bridge" {
			r.bridgesBefore[l.Attrs().Name] = true
		}
	}
	t.Cleanup(r.cleanup)
	return r
}

// cleanup runs once every System of the test is stopped (their cleanups
// run first): it purges, then fails the test if anything of the rig is
// left, deleting it.
func (r *rig) cleanup() {
	t := r.t
	if t.Failed() {
		r.dumpLogs()
	}
	if err := Purge(context.Background(), r.cfg, r.logger); err != nil {
		t.Errorf("purging after the test: %v", err)
	}
	for _, ns := range r.namespaces() {
		t.Errorf("namespace %s left after Purge", ns)
		nstest.Delete(ns)
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if l.Type() == "bridge" && !r.bridgesBefore[l.Attrs().Name] {
				t.Errorf("bridge %s left after Purge", l.Attrs().Name)
				_ = netlink.LinkDel(l)
			}
		}
	}
}

// dumpLogs logs the system's logs and the agents'.
func (r *rig) dumpLogs() {
	r.t.Logf("standalone logs:\n%s", r.log.String())
	infos, _ := local.ReadInstances(filepath.Join(r.cfg.StateDir, "local"))
	for _, in := range infos {
		b, _ := os.ReadFile(in.LogFile)
		r.t.Logf("agent of instance %s (%s):\n%s", in.ID, in.Name, b)
	}
}

// namespaces lists the network namespaces of the rig's appliances.
func (r *rig) namespaces() []string {
	out, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range out {
		if strings.HasPrefix(e.Name(), r.opts.NamespacePrefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// open opens a System on the rig's configuration; it is stopped when the
// test ends.
func (r *rig) open() *System {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := Open(ctx, r.cfg, r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			r.t.Errorf("stopping the system: %v", err)
		}
	})
	return s
}

func (r *rig) start(s *System) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) stop(s *System) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		r.t.Fatal(err)
	}
}

// bridge returns the management bridge, nil when it is missing.
func (r *rig) bridge() netlink.Link {
	r.t.Helper()
	l, err := netlink.LinkByName(r.cfg.Standalone.ManagementBridge)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

// checkBridge checks that the management bridge is up with the
// orchestrator's address on the management prefix.
func (r *rig) checkBridge() {
	r.t.Helper()
	br := r.bridge()
	if br == nil {
		r.t.Fatalf("no management bridge %s", r.cfg.Standalone.ManagementBridge)
	}
	if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
		r.t.Errorf("management bridge %s: type %s, flags %v; want an up bridge", br.Attrs().Name, br.Type(), br.Attrs().Flags)
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		r.t.Fatal(err)
	}
	want := netip.PrefixFrom(r.addr, 64)
	var got []string
	for _, a := range addrs {
		p, ok := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ok && netip.PrefixFrom(p.Unmap(), ones) == want {
			return
		}
		got = append(got, a.IPNet.String())
	}
	r.t.Errorf("management bridge addresses %v, want %s", got, want)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(t testing.TB, n int) string { return hex.EncodeToString(randomBytes(t, n)) }

// counter returns the value of the system's agent exit counter for result.
func counter(t *testing.T, s *System, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.exits.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestOpenStopOpenPurge(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()

	s := r.open()
	mgmt := s.ManagementNetworkID()
	if mgmt == "" {
		t.Fatal("no management network id")
	}
	r.checkBridge()
	if got := s.Compute().ManagementBridge(); got != r.cfg.Standalone.ManagementBridge {
		t.Errorf("the local provider's management bridge is %s, want %s", got, r.cfg.Standalone.ManagementBridge)
	}

	// What standalone mode decided is in the configuration in effect.
	cfg := s.Config()
	if cfg.ManagementNetworkID != mgmt || cfg.ManagementSubnetID == "" || cfg.ManagementAddress != r.addr {
		t.Errorf("configuration in effect: management network %q subnet %q address %v; want %s, a subnet, %s",
			cfg.ManagementNetworkID, cfg.ManagementSubnetID, cfg.ManagementAddress, mgmt, r.addr)
	}
	for name, f := range map[string]string{"tls_ca_file": cfg.Appliance.TLSCAFile, "tls_cert_file": cfg.Appliance.TLSCertFile,
		"tls_key_file": cfg.Appliance.TLSKeyFile} {
		if f == "" || !strings.HasPrefix(f, filepath.Join(r.cfg.StateDir, "pki")+"/") || !exists(t, f) {
			t.Errorf("[astara_appliance] %s in effect is %q, want a file under state_dir/pki", name, f)
		}
	}
	if cfg.Appliance.TLSServerName == "" {
		t.Error("no [astara_appliance] tls_server_name in effect")
	}
	if r.cfg.ManagementNetworkID != "" || r.cfg.Appliance.TLSCAFile != "" {
		t.Error("Open changed the caller's configuration")
	}
	if !exists(t, filepath.Join(r.cfg.StateDir, "netapi", netapi.DBFileName)) {
		t.Error("no network API database under state_dir/netapi")
	}
	caPEM, err := os.ReadFile(cfg.Appliance.TLSCAFile)
	if err != nil {
		t.Fatal(err)
	}

	// The embedded network API serves the management network.
	e := &embeddedAPI{t: t}
	if e.admin, err = neutron.NoAuthClient(s.NetworkURL(), Project, nil); err != nil {
		t.Fatal(err)
	}
	n, err := networks.Get(ctx, e.admin, mgmt).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != ManagementNetworkName {
		t.Errorf("management network named %q, want %q", n.Name, ManagementNetworkName)
	}
	subs := e.subnetsOf(mgmt)
	if len(subs) != 1 || subs[0].ID != cfg.ManagementSubnetID || subs[0].GatewayIP != r.addr.String() {
		t.Errorf("management subnets %+v, want one, %s, with gateway %s", subs, cfg.ManagementSubnetID, r.addr)
	}

	// Purge refuses while the system holds the state directory.
	if err := Purge(ctx, r.cfg, r.logger); err == nil {
		t.Error("Purge succeeded while the system runs")
	}
	r.checkBridge()
	if !exists(t, r.cfg.StateDir) {
		t.Fatal("a refused Purge removed the state directory")
	}

	r.start(s)
	if s.Orchestrator().APIAddr() == nil {
		t.Error("the orchestrator does not serve its management API")
	}
	url := s.NetworkURL()
	r.stop(s)
	if resp, err := http.Get(url + "/v2.0/networks"); err == nil {
		resp.Body.Close()
		t.Errorf("the network API still serves on %s after Stop", url)
	}
	r.checkBridge() // kept for the appliances, which outlive the orchestrator

	// Open again: the same management network, the same certificates.
	s2 := r.open()
	if got := s2.ManagementNetworkID(); got != mgmt {
		t.Errorf("management network %s after reopening, want %s", got, mgmt)
	}
	cfg2 := s2.Config()
	if cfg2.ManagementSubnetID != cfg.ManagementSubnetID {
		t.Errorf("management subnet %s after reopening, want %s", cfg2.ManagementSubnetID, cfg.ManagementSubnetID)
	}
	if b, err := os.ReadFile(cfg2.Appliance.TLSCAFile); err != nil || string(b) != string(caPEM) {
		t.Errorf("the CA changed on reopening (%v)", err)
	}
	if e.admin, err = neutron.NoAuthClient(s2.NetworkURL(), Project, nil); err != nil {
		t.Fatal(err)
	}
	if ns := e.networksNamed(ManagementNetworkName); len(ns) != 1 {
		t.Errorf("%d networks named %s after reopening, want 1", len(ns), ManagementNetworkName)
	}
	r.checkBridge()
	r.start(s2)
	r.stop(s2)

	if err := Purge(ctx, r.cfg, r.logger); err != nil {
		t.Fatal(err)
	}
	if br := r.bridge(); br != nil {
		t.Errorf("management bridge %s left after Purge", br.Attrs().Name)
	}
	if exists(t, r.cfg.StateDir) {
		t.Error("state directory left after Purge")
	}
	if err := Purge(ctx, r.cfg, r.logger); err != nil {
		t.Errorf("purging again: %v", err)
	}
	if exists(t, r.cfg.StateDir) || r.bridge() != nil {
		t.Error("purging again made something")
	}
}

func TestOpenWithoutTLS(t *testing.T) {
	r := newRig(t)
	r.cfg.Standalone.ApplianceTLS = false
	s := r.open()
	cfg := s.Config()
	if cfg.Appliance.TLSCAFile != "" || cfg.Appliance.TLSCertFile != "" || cfg.Appliance.TLSServerName != "" {
		t.Errorf("TLS options in effect without appliance_tls: %+v", cfg.Appliance)
	}
	if exists(t, filepath.Join(r.cfg.StateDir, "pki")) {
		t.Error("certificates made without appliance_tls")
	}
	r.checkBridge()
}

func TestOpenFailureReleasesEverything(t *testing.T) {
	// The orchestrator refuses a management API open to the network
	// without a token: Open fails after making the local provider, and
	// must release the state directory and stop the network API.
	r := newRig(t)
	r.cfg.APIListen = "0.0.0.0"
	_, err := Open(context.Background(), r.cfg, r.opts)
	wantErr(t, err, "auth_token")

	r.cfg.APIListen = "127.0.0.1"
	s := r.open() // would fail on the locks of the state directory
	r.checkBridge()
	r.start(s)
}

func TestOnApplianceExit(t *testing.T) {
	r := newRig(t)
	s := r.open()
	router := "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
	name := "ak-router-" + router

	// Not started: the start-up poll sees the router.
	s.onExit("instance-1", name)
	e := r.nextExit()
	if e.RouterID != router || e.InstanceID != "instance-1" || e.InstanceName != name || e.At.IsZero() ||
		!e.Polled.IsZero() || !errors.Is(e.Err, orchestrator.ErrNotRunning) {
		t.Errorf("exit before Start = %+v, want router %s not polled (orchestrator not running)", e, router)
	}
	if got := counter(t, s, "not_running"); got != 1 {
		t.Errorf("not_running exits = %v, want 1", got)
	}

	// An instance that is no router's.
	s.onExit("instance-2", "some-vm")
	if e := r.nextExit(); e.RouterID != "" || e.InstanceName != "some-vm" || e.Err == nil || !e.Polled.IsZero() {
		t.Errorf("exit of an instance that is no router's = %+v, want reported without a router", e)
	}
	if got := counter(t, s, "not_router"); got != 1 {
		t.Errorf("not_router exits = %v, want 1", got)
	}

	// Running, with no such router in the network API: gone.
	r.start(s)
	s.onExit("instance-3", name+"_0")
	e = r.nextExit()
	if e.RouterID != router || e.InstanceID != "instance-3" || !e.Polled.IsZero() || !errors.Is(e.Err, provider.ErrNotFound) {
		t.Errorf("exit of a router that does not exist = %+v, want router %s gone", e, router)
	}
	if got := counter(t, s, "gone"); got != 1 {
		t.Errorf("gone exits = %v, want 1", got)
	}
	if got := counter(t, s, "polled"); got != 0 {
		t.Errorf("polled exits = %v, want 0", got)
	}
}

// nextExit returns the next exit OnApplianceExit was told of.
func (r *rig) nextExit() Exit {
	r.t.Helper()
	select {
	case e := <-r.exits:
		return e
	case <-time.After(wait):
		r.t.Fatal("OnApplianceExit not called")
		return Exit{}
	}
}

// earlyFailureConfig is a configuration on which Open fails before it
// needs root (before the local provider): it checks that what Open
// started is released.
func earlyFailureConfig(t *testing.T) (*config.Config, Options) {
	t.Helper()
	cfg := testConfig(t)
	cfg.APIListen, cfg.APIPort = "127.0.0.1", 0
	cfg.Standalone.NetworkAPIListen = "127.0.0.1:0"
	cfg.Standalone.ManagementBridge = "st" + randomHex(t, 3) + "-early"
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // in case Open went as far as the local provider (root only)
		if nstest.Name() == "" {
			return
		}
		if err := Purge(context.Background(), cfg, discardLogger()); err != nil {
			t.Error(err)
		}
	})
	return cfg, Options{AgentPath: exe, AgentEnv: appliancetest.AgentEnv(), Logger: discardLogger(),
		NamespacePrefix: "astara-st" + randomHex(t, 3) + "-"}
}

// reopenNetworkAPI opens the network API's database as Open does: it
// fails (after bbolt's timeout) while a failed Open still holds it.
func reopenNetworkAPI(t *testing.T, cfg *config.Config) *netapi.Server {
	t.Helper()
	api, err := netapi.Open(netapi.Config{StateDir: filepath.Join(cfg.StateDir, "netapi"), Host: "standalone-test"})
	if err != nil {
		t.Fatalf("the network API's database is still held: %v", err)
	}
	t.Cleanup(func() {
		if err := api.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return api
}

func TestOpenMissingManagementNetwork(t *testing.T) {
	cfg, opts := earlyFailureConfig(t)
	cfg.ManagementNetworkID = "9a8b7c6d-0000-4000-8000-000000000000"
	s, err := Open(context.Background(), cfg, opts)
	if s != nil {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}
	wantErr(t, err, "management network", "management_network_id", cfg.ManagementNetworkID)
	reopenNetworkAPI(t, cfg)
}

func TestOpenAmbiguousUplink(t *testing.T) {
	cfg, opts := earlyFailureConfig(t)
	// Two networks named ext, made through a first API on the state
	// directory, closed before Open.
	api, err := netapi.Open(netapi.Config{StateDir: filepath.Join(cfg.StateDir, "netapi"), Host: "standalone-test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	c, err := neutron.NoAuthClient(srv.URL, Project, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := networks.Create(context.Background(), c, networks.CreateOpts{Name: "ext"}).Extract(); err != nil {
			t.Fatal(err)
		}
	}
	srv.Close()
	if err := api.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	cfg.Standalone.ExternalInterfaces = []string{"ext:eth9"}
	_, err = Open(context.Background(), cfg, opts)
	wantErr(t, err, "external_interfaces", "2 networks are named ext")
	reopenNetworkAPI(t, cfg)
}

func TestOpenNetworkAPIAddressInUse(t *testing.T) {
	cfg, opts := earlyFailureConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg.Standalone.NetworkAPIListen = ln.Addr().String()
	_, err = Open(context.Background(), cfg, opts)
	wantErr(t, err, "network_api_listen")
	reopenNetworkAPI(t, cfg)
}

func TestOpenChecksTheConfiguration(t *testing.T) {
	cfg, opts := earlyFailureConfig(t)
	cfg.Appliance.TLSCAFile = "/etc/astara/ca.pem"
	_, err := Open(context.Background(), cfg, opts)
	wantErr(t, err, "tls_ca_file")
	if exists(t, filepath.Join(cfg.StateDir, "netapi")) {
		t.Error("Open made the network API's database although the configuration is refused")
	}

	cfg, opts = earlyFailureConfig(t)
	opts.AgentPath = ""
	cfg.Standalone.ApplianceBinary = filepath.Join(t.TempDir(), "missing")
	_, err = Open(context.Background(), cfg, opts)
	wantErr(t, err, "appliance_binary")
}

// routerInstance returns the local instance serving the router, if any.
func routerInstance(t *testing.T, s *System, routerID string) (local.Info, bool) {
	t.Helper()
	infos, err := local.ReadInstances(filepath.Join(s.Config().StateDir, "local"))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if id, ok := router.ParseInstanceName(in.Name); ok && id == routerID {
			return in, true
		}
	}
	return local.Info{}, false
}

func TestRouterAppliance(t *testing.T) {
	// A router made in the embedded network API gets an appliance; when
	// its agent dies, the router is polled at once and repaired; when the
	// router is deleted, its appliance goes and so does the bridge of its
	// network.
	r := newRig(t)
	r.cfg.HealthCheckPeriod = time.Hour // only the poll on the agent's exit repairs
	s := r.open()
	r.start(s)
	ctx := context.Background()
	tenant, err := neutron.NoAuthClient(s.NetworkURL(), "demo-project", nil)
	if err != nil {
		t.Fatal(err)
	}
	status, err := neutron.NewNoAuth(s.NetworkURL(), Project, neutron.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := networks.Create(ctx, tenant, networks.CreateOpts{Name: "demo-net"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := subnets.Create(ctx, tenant, subnets.CreateOpts{NetworkID: n.ID, CIDR: "192.168.77.0/24",
		IPVersion: gophercloud.IPv4}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := routers.Create(ctx, tenant, routers.CreateOpts{Name: "demo-router"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := routers.AddInterface(ctx, tenant, rt.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract(); err != nil {
		t.Fatal(err)
	}

	active := func(oldPID int) func() bool {
		return func() bool {
			got, err := status.GetRouter(ctx, rt.ID)
			if err != nil || got.Status != "ACTIVE" {
				return false
			}
			in, ok := routerInstance(t, s, rt.ID)
			return ok && in.PID != oldPID && nstest.Alive(in.PID) && len(in.Ports) == 2
		}
	}
	nstest.WaitFor(t, wait, "the router's appliance to be ACTIVE", active(0))
	first, _ := routerInstance(t, s, rt.ID)
	if first.Ports[0].Bridge != r.cfg.Standalone.ManagementBridge || first.Ports[1].NetworkID != n.ID {
		t.Errorf("appliance ports %+v, want the management bridge then demo-net", first.Ports)
	}
	tenantBridge := first.Ports[1].Bridge
	if _, err := netlink.LinkByName(tenantBridge); err != nil {
		t.Fatalf("bridge of demo-net: %v", err)
	}

	// The agent dies: the router is polled at once, and repaired.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := r.nextExit()
	for e.InstanceID != first.ID {
		e = r.nextExit()
	}
	if e.RouterID != rt.ID || e.Err != nil || e.Polled.IsZero() || e.Polled.Before(e.At) {
		t.Errorf("exit of the killed agent = %+v, want router %s polled", e, rt.ID)
	}
	if got := counter(t, s, "polled"); got < 1 {
		t.Errorf("polled exits = %v, want at least 1", got)
	}
	nstest.WaitFor(t, wait, "the router's appliance to be repaired", active(first.PID))

	// The router goes: its appliance and the bridge of its network too.
	if _, err := routers.RemoveInterface(ctx, tenant, rt.ID, routers.RemoveInterfaceOpts{SubnetID: sub.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	if err := routers.Delete(ctx, tenant, rt.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, wait, "the appliance and the bridge of demo-net to be deleted", func() bool {
		_, ok := routerInstance(t, s, rt.ID)
		_, err := netlink.LinkByName(tenantBridge)
		return !ok && errors.As(err, new(netlink.LinkNotFoundError)) && len(r.namespaces()) == 0
	})
	r.checkBridge()
}
