// Package bench measures standalone mode end to end, on this machine:
// how long a router takes from its creation to forwarding a VM's first
// packet, and a dead appliance from its death to being replaced and
// forwarding again, against the original Astara's behaviour measured in
// the same run.
//
// Standalone mode runs in this process (see standalone), its appliances
// are namespaces of this machine (see local); the VMs and the external
// network's upstream router are namespaces too (see quickstart), made
// under names of the run's own and removed, with the appliances, their
// bridges and the state directory, when the benchmark ends, even on
// failure or cancellation. Nothing is configured on the host's own
// interfaces, routes or firewall.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/quickstart"
	"github.com/astara-go/astara/internal/standalone"
)

// The benchmark's addresses: one external network shared by every router,
// its gateway the upstream host; tenant network i is 10.i.0.0/24 (the
// warm-up router's is 10.0.0.0/24).
const (
	ExternalCIDR = "172.24.0.0/16"
	UpstreamIP   = "172.24.0.1"
)

// Defaults of StandaloneOptions.
const (
	DefaultRouters    = 20
	DefaultHung       = 3
	maxRouters        = 120 // tenant networks 10.1-240.0.0/24 (one at a time, then at once)
	stepTimeout       = 2 * time.Minute
	linkPollInterval  = 5 * time.Millisecond
	cleanupTimeout    = 2 * time.Minute
	maxStateDirLength = 34 // standalone refuses longer: the appliances' BIRD sockets
)

// StandaloneOptions configure RunStandalone. Zero values take the
// defaults.
type StandaloneOptions struct {
	// Routers are made one at a time in our system (default 20), and as
	// many again all at once when Concurrent.
	Routers int
	// BaselineRouters are made one at a time (and at once, when
	// Concurrent) in the baseline system; default Routers.
	BaselineRouters int
	// Concurrent adds the measurement of Routers routers made at once.
	Concurrent bool
	// SharedTenant makes every router, network and port in one project;
	// by default each router has a project of its own (the orchestrator
	// sends an event that names only a project, as a port's does, to
	// every router of the project).
	SharedTenant bool
	// Hung is how many appliances are made unresponsive (at once) in each
	// system: the baseline's repair measurement; default 3.
	Hung int
	// AgentPath is the astara-appliance agent; default: next to the
	// running program, else in PATH. AgentEnv and AgentArgs are given to
	// every agent (tests run the test binary as the agent).
	AgentPath string
	AgentEnv  []string
	AgentArgs []string
	// Tune, when set, adjusts each system's configuration last (tests
	// shorten the health poll); baseline tells which system it is.
	Tune func(baseline bool, cfg *config.Config)
	// Progress, when set, receives a line per step.
	Progress io.Writer
	// Log receives standalone mode's logs; default: a file in the
	// temporary directory, removed unless the benchmark fails (other
	// than by cancellation).
	Log io.Writer
}

// StandaloneResult is what RunStandalone measured.
type StandaloneResult struct {
	Ours, Baseline StandaloneRun
	// LogFile is standalone mode's log when it was kept (RunStandalone
	// failed, other than by cancellation); empty otherwise.
	LogFile string
}

// StandaloneRun is the measurements of one system. Each sample is one
// router's.
type StandaloneRun struct {
	// Settings are the timing options in effect, as name=value.
	Settings string
	// SharedTenant: every router was in one project.
	SharedTenant bool
	// Bridge is router create → its tenant network's bridge made (the
	// appliance's port plugged); Create is router create → the VM's first
	// ping of the upstream host answered: routers made one at a time.
	Bridge, Create []time.Duration
	// Concurrent is Create for routers made all at once; ConcurrentWall
	// the time until the last one forwarded.
	Concurrent     []time.Duration
	ConcurrentWall time.Duration
	// KillPolled, KillActive and KillForwarding time the repair of an
	// appliance whose processes were all killed (SIGKILL), one at a time:
	// to the router's poll dispatched on the agent's exit, to the new
	// appliance published ACTIVE, to the VM's first ping answered after
	// that. Only measured in our system.
	KillPolled, KillActive, KillForwarding []time.Duration
	// OldNamespaceLeft counts repairs after which the killed appliance's
	// namespace still existed when the new one was ACTIVE (its kernel
	// state could then still forward).
	OldNamespaceLeft int
	// HungActive and HungForwarding time the repair of appliances made
	// unresponsive on the management network, all at once (their agent
	// keeps running: nothing exits, the health poll must find them).
	HungActive, HungForwarding []time.Duration
}

// RunStandalone runs the benchmark: our system (standalone mode as
// configured by default), then the baseline system (the same with the
// original Astara's timing defaults), each on a state directory, bridges
// and namespaces of its own, removed before it returns.
func RunStandalone(ctx context.Context, opts StandaloneOptions) (res *StandaloneResult, err error) {
	if opts.Routers == 0 {
		opts.Routers = DefaultRouters
	}
	if opts.BaselineRouters == 0 {
		opts.BaselineRouters = opts.Routers
	}
	if opts.Hung == 0 {
		opts.Hung = min(DefaultHung, opts.Routers, opts.BaselineRouters)
	}
	if opts.Routers < 1 || opts.Routers > maxRouters || opts.BaselineRouters < 1 || opts.BaselineRouters > maxRouters {
		return nil, fmt.Errorf("routers: %d and %d: want 1..%d", opts.Routers, opts.BaselineRouters, maxRouters)
	}
	if opts.Hung < 1 || opts.Hung > opts.Routers || opts.Hung > opts.BaselineRouters {
		return nil, fmt.Errorf("hung: %d: want 1..the number of routers", opts.Hung)
	}
	if opts.AgentPath == "" {
		if opts.AgentPath, err = findAgent(); err != nil {
			return nil, err
		}
	}
	res = &StandaloneResult{}
	if opts.Log == nil {
		f, ferr := os.CreateTemp("", "astara-bench-standalone-*.log")
		if ferr != nil {
			return nil, ferr
		}
		opts.Log = f
		defer func() {
			f.Close()
			if err != nil && !errors.Is(err, context.Canceled) {
				res.LogFile = f.Name()
				err = fmt.Errorf("%w (standalone mode's log: %s)", err, f.Name())
			} else {
				os.Remove(f.Name())
			}
		}()
	}
	run := randomHex(2)
	if err := runSystem(ctx, opts, run, false, &res.Ours); err != nil {
		return res, fmt.Errorf("ours: %w", err)
	}
	if err := runSystem(ctx, opts, run, true, &res.Baseline); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	return res, nil
}

// findAgent looks for astara-appliance next to the running program, then
// in PATH.
func findAgent() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), standalone.ApplianceBinary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(standalone.ApplianceBinary)
	if err != nil {
		return "", fmt.Errorf("the appliance agent %s is neither next to this program nor in PATH "+
			"(go build -o bin/ ./cmd/... builds it next to astara-bench)", standalone.ApplianceBinary)
	}
	return filepath.Abs(p)
}

// OriginalTiming sets the options whose standalone defaults differ from
// the original Astara's back to the original's (config.Default): how
// often a booting appliance is checked, retry delays, the health poll,
// the error cooldown and the boot timeout.
func OriginalTiming(cfg *config.Config) {
	d := config.Default()
	cfg.BootCheckInterval = d.BootCheckInterval
	cfg.RetryDelay = d.RetryDelay
	cfg.MaxRetryDelay = d.MaxRetryDelay
	cfg.HealthCheckPeriod = d.HealthCheckPeriod
	cfg.ErrorStateCooldown = d.ErrorStateCooldown
	cfg.BootTimeout = d.BootTimeout
}

func timingSettings(cfg *config.Config) string {
	return fmt.Sprintf("boot_check_interval=%v retry_delay=%v max_retry_delay=%v health_check_period=%v "+
		"alive_timeout=%v max_retries=%d error_state_cooldown=%v boot_timeout=%v",
		cfg.BootCheckInterval, cfg.RetryDelay, cfg.MaxRetryDelay, cfg.HealthCheckPeriod,
		cfg.AliveTimeout, cfg.MaxRetries, cfg.ErrorStateCooldown, cfg.BootTimeout)
}

// system is one standalone system under measurement.
type system struct {
	opts     StandaloneOptions
	baseline bool
	name     string // ours, baseline
	prefix   string // of the hosts' namespaces (8 bytes)
	cfg      *config.Config
	s        *standalone.System
	client   *quickstart.Client
	url      string
	ext      quickstart.Network
	upstream string

	mu    sync.Mutex
	hosts []string
	exits map[string]standalone.Exit // by instance id
}

// vm is a router under measurement and the VM behind it.
type vm struct {
	index    int
	client   *quickstart.Client
	routerID string
	tenant   quickstart.Network
	port     quickstart.Port
	ns       string
}

func (sys *system) progress(format string, args ...any) {
	if sys.opts.Progress != nil {
		fmt.Fprintf(sys.opts.Progress, "%s %-8s %s\n", time.Now().Format("15:04:05.000"), sys.name, fmt.Sprintf(format, args...))
	}
}

// runSystem opens, measures and removes one system.
func runSystem(ctx context.Context, opts StandaloneOptions, run string, baseline bool, out *StandaloneRun) (err error) {
	sys := &system{opts: opts, baseline: baseline, name: "ours", exits: map[string]standalone.Exit{}}
	kind := "o"
	if baseline {
		sys.name, kind = "baseline", "b"
	}
	sys.prefix = "asb" + run + kind
	defer func() {
		// Cleaning up must not be cut short by the cancellation that
		// may be why it runs.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if cerr := sys.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
	}()
	if err := sys.open(ctx); err != nil {
		return err
	}
	out.Settings, out.SharedTenant = timingSettings(sys.cfg), opts.SharedTenant
	return sys.measure(ctx, out)
}

// open makes the configuration and state directory, and opens and starts
// standalone mode.
func (sys *system) open(ctx context.Context) error {
	cfg, err := config.Load(nil, nil)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "asb-")
	if err == nil && len(dir) > maxStateDirLength {
		os.Remove(dir)
		dir, err = os.MkdirTemp("/tmp", "asb-")
	}
	if err != nil {
		return err
	}
	cfg.StateDir = dir
	sys.cfg = cfg // from here on, close purges
	// dnsmasq, in the appliances, reads its files below as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	var ula [16]byte
	ula[0] = 0xfd
	if _, err := rand.Read(ula[1:8]); err != nil {
		return err
	}
	cfg.ManagementPrefix = netip.PrefixFrom(netip.AddrFrom16(ula), 64)
	cfg.APIPort = 0
	cfg.Standalone.NetworkAPIListen = "127.0.0.1:0"
	cfg.Standalone.ManagementBridge = sys.prefix + "-mgmt"
	if sys.baseline {
		OriginalTiming(cfg)
	}
	if sys.opts.Tune != nil {
		sys.opts.Tune(sys.baseline, cfg)
	}
	s, err := standalone.Open(ctx, cfg, standalone.Options{
		AgentPath: sys.opts.AgentPath, AgentEnv: sys.opts.AgentEnv, AgentArgs: sys.opts.AgentArgs,
		NamespacePrefix: sys.prefix + "-",
		OnApplianceExit: func(e standalone.Exit) {
			sys.mu.Lock()
			sys.exits[e.InstanceID] = e
			sys.mu.Unlock()
		},
		Logger: slog.New(slog.NewTextHandler(sys.opts.Log, nil)).With("system", sys.name),
	})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		if serr := s.Stop(context.WithoutCancel(ctx)); serr != nil {
			err = errors.Join(err, serr)
		}
		return err
	}
	sys.s = s
	sys.cfg = s.Config()
	sys.url = s.NetworkURL()
	sys.client, err = quickstart.NewClient(sys.url, "bench")
	if err != nil {
		return err
	}
	sys.progress("standalone mode started: network API %s, state %s, appliance namespaces %s-*", s.NetworkURL(), dir, sys.prefix)
	return nil
}

// close removes the hosts, stops standalone mode and purges what it made.
func (sys *system) close(ctx context.Context) error {
	var errs []error
	sys.mu.Lock()
	hosts := sys.hosts
	sys.hosts = nil
	sys.mu.Unlock()
	for _, ns := range hosts {
		errs = append(errs, removeHost(ns))
	}
	if sys.s != nil {
		errs = append(errs, sys.s.Stop(ctx))
		sys.s = nil
	}
	if sys.cfg != nil {
		errs = append(errs, standalone.Purge(ctx, sys.cfg, slog.New(slog.DiscardHandler)))
		sys.cfg = nil
	}
	err := errors.Join(errs...)
	if err == nil {
		sys.progress("removed: hosts, appliances, bridges, state")
	}
	return err
}

func (sys *system) addHost(ns string) {
	sys.mu.Lock()
	sys.hosts = append(sys.hosts, ns)
	sys.mu.Unlock()
}

// measure runs the scenario: a warm-up router (which also brings the
// external network's bridge up, where the upstream host is plugged),
// routers one at a time, at once, then the repairs.
func (sys *system) measure(ctx context.Context, out *StandaloneRun) error {
	step, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var err error
	if sys.ext, err = sys.client.External(step, "public", ExternalCIDR, UpstreamIP); err != nil {
		return err
	}
	warm, err := sys.prepare(step, 0)
	if err != nil {
		return err
	}
	if _, _, err := sys.createAndForward(step, warm, func() error { return sys.plugUpstream(step) }); err != nil {
		return fmt.Errorf("warm-up router: %w", err)
	}
	sys.progress("warm-up router %s forwards; upstream host %s on bridge %s", warm.routerID, sys.upstream,
		local.DefaultBridgeName(sys.ext.ID))

	n := sys.opts.Routers
	if sys.baseline {
		n = sys.opts.BaselineRouters
	}
	var seq, conc []*vm
	for i := 1; i <= n; i++ {
		v, err := sys.stepPrepare(ctx, i)
		if err != nil {
			return err
		}
		step, cancel := context.WithTimeout(ctx, stepTimeout)
		bridge, create, err := sys.createAndForward(step, v, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("router %d: %w", i, err)
		}
		out.Bridge, out.Create = append(out.Bridge, bridge), append(out.Create, create)
		seq = append(seq, v)
		sys.progress("router %d/%d: bridge after %s, first packet after %s", i, n, fmtDur(bridge), fmtDur(create))
	}

	if sys.opts.Concurrent {
		for i := n + 1; i <= 2*n; i++ {
			v, err := sys.stepPrepare(ctx, i)
			if err != nil {
				return err
			}
			conc = append(conc, v)
		}
		step, cancel := context.WithTimeout(ctx, stepTimeout)
		out.Concurrent = make([]time.Duration, n)
		start := time.Now()
		err := parallel(len(conc), func(i int) error {
			_, d, err := sys.createAndForward(step, conc[i], nil)
			out.Concurrent[i] = d
			return err
		})
		out.ConcurrentWall = time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("%d routers at once: %w", n, err)
		}
		sys.progress("%d routers at once: all forward after %s", n, fmtDur(out.ConcurrentWall))
	}

	if !sys.baseline {
		for i, v := range seq {
			step, cancel := context.WithTimeout(ctx, stepTimeout)
			err := sys.kill(step, v, out)
			cancel()
			if err != nil {
				return fmt.Errorf("killing the appliance of router %d: %w", v.index, err)
			}
			sys.progress("router %d/%d killed: polled after %s, ACTIVE after %s, forwarding after %s", i+1, len(seq),
				fmtDur(out.KillPolled[i]), fmtDur(out.KillActive[i]), fmtDur(out.KillForwarding[i]))
		}
	}

	// The hung appliances are the first of those made at once (untouched
	// so far), else of those made one at a time.
	victims := seq
	if len(conc) > 0 {
		victims = conc
	}
	victims = victims[:sys.opts.Hung]
	// A health period, the probes, a boot, a configuration: generous.
	hctx, hcancel := context.WithTimeout(ctx, stepTimeout+2*sys.cfg.HealthCheckPeriod+
		time.Duration(sys.cfg.MaxRetries+1)*sys.cfg.AliveTimeout)
	defer hcancel()
	if err := sys.hang(hctx, victims, out); err != nil {
		return err
	}
	for i := range victims {
		sys.progress("appliance of router %d unresponsive: replaced, ACTIVE after %s, forwarding after %s", victims[i].index,
			fmtDur(out.HungActive[i]), fmtDur(out.HungForwarding[i]))
	}
	return nil
}

func (sys *system) stepPrepare(ctx context.Context, i int) (*vm, error) {
	step, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := sys.prepare(step, i)
	if err != nil {
		return nil, fmt.Errorf("router %d: %w", i, err)
	}
	return v, nil
}

// prepare makes tenant network i (10.i.0.0/24), a VM's port on it and the
// VM: a namespace whose eth0 has the port's MAC and address and a default
// route via the subnet's gateway, its peer not yet on any bridge (the
// network's bridge appears when an appliance is plugged into it). No
// DHCP: the measurement is of forwarding.
func (sys *system) prepare(ctx context.Context, i int) (*vm, error) {
	v := &vm{index: i, ns: fmt.Sprintf("%sv%d", sys.prefix, i), client: sys.client}
	var err error
	if !sys.opts.SharedTenant {
		if v.client, err = quickstart.NewClient(sys.url, fmt.Sprintf("bench-%d", i)); err != nil {
			return nil, err
		}
	}
	if v.tenant, err = v.client.Tenant(ctx, fmt.Sprintf("net%d", i), fmt.Sprintf("10.%d.0.0/24", i)); err != nil {
		return nil, err
	}
	if v.port, err = v.client.VMPort(ctx, fmt.Sprintf("vm%d", i), v.tenant.ID); err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(v.port.IP)
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", v.port.ID, err)
	}
	gw, err := netip.ParseAddr(v.tenant.GatewayIP)
	if err != nil {
		return nil, fmt.Errorf("subnet %s: gateway: %w", v.tenant.SubnetID, err)
	}
	sys.addHost(v.ns)
	if err := makeHost(ctx, v.ns, v.port.MAC, netip.PrefixFrom(addr, 24), gw); err != nil {
		return nil, err
	}
	return v, nil
}

// createAndForward times router create (gateway on the external network,
// an interface on the VM's network) → the VM's network bridge made, and →
// the first answer to the VM's ping of the upstream host. beforePing,
// when set, runs once the VM is attached (the warm-up plugs the upstream
// host then).
func (sys *system) createAndForward(ctx context.Context, v *vm, beforePing func() error) (bridge, first time.Duration, err error) {
	br := local.DefaultBridgeName(v.tenant.ID)
	start := time.Now()
	if v.routerID, err = v.client.Router(ctx, fmt.Sprintf("router%d", v.index), sys.ext.ID); err != nil {
		return 0, 0, err
	}
	if err := v.client.AddInterface(ctx, v.routerID, v.tenant.SubnetID); err != nil {
		return 0, 0, err
	}
	if err := waitLink(ctx, br); err != nil {
		return 0, 0, err
	}
	bridge = time.Since(start)
	if err := attach(v.ns, br); err != nil {
		return 0, 0, err
	}
	if beforePing != nil {
		if err := beforePing(); err != nil {
			return 0, 0, err
		}
	}
	if err := ping(ctx, v.ns, UpstreamIP); err != nil {
		return 0, 0, err
	}
	return bridge, time.Since(start), nil
}

// plugUpstream plugs the upstream host into the external network's bridge.
func (sys *system) plugUpstream(ctx context.Context) error {
	br := local.DefaultBridgeName(sys.ext.ID)
	if err := waitLink(ctx, br); err != nil {
		return err
	}
	sys.upstream = sys.prefix + "up"
	sys.addHost(sys.upstream)
	addr := netip.PrefixFrom(netip.MustParseAddr(UpstreamIP), netip.MustParsePrefix(ExternalCIDR).Bits())
	return quickstart.PlugHost(ctx, sys.upstream, br, nil, addr, netip.Addr{})
}

// kill kills every process of the router's appliance and times its
// repair.
func (sys *system) kill(ctx context.Context, v *vm, out *StandaloneRun) error {
	start := time.Now()
	killed, err := quickstart.KillAppliance(sys.cfg.StateDir, v.routerID)
	if err != nil {
		return err
	}
	if _, err := v.client.WaitRepaired(ctx, sys.cfg.StateDir, v.routerID, killed.ID); err != nil {
		return err
	}
	active := time.Since(start)
	if _, err := os.Stat(filepath.Join("/run/netns", killed.Namespace)); err == nil {
		out.OldNamespaceLeft++
	}
	if err := ping(ctx, v.ns, UpstreamIP); err != nil {
		return fmt.Errorf("after the repair: %w", err)
	}
	forwarding := time.Since(start)
	sys.mu.Lock()
	e, seen := sys.exits[killed.ID]
	sys.mu.Unlock()
	if !seen || e.Polled.IsZero() {
		return fmt.Errorf("the exit of the agent of instance %s was not seen, or its router not polled (%+v)", killed.ID, e)
	}
	out.KillPolled = append(out.KillPolled, e.Polled.Sub(start))
	out.KillActive = append(out.KillActive, active)
	out.KillForwarding = append(out.KillForwarding, forwarding)
	return nil
}

// hang makes the appliances of the routers unresponsive at once, as
// crashed VMs are to the original: their management port's host end is
// set down, so the orchestrator's probes go unanswered, while every
// process keeps running (no exit to see). It times their repair: the
// health poll finds them, the orchestrator replaces them.
func (sys *system) hang(ctx context.Context, victims []*vm, out *StandaloneRun) error {
	type target struct {
		instance, device string
	}
	targets := make([]target, len(victims))
	for i, v := range victims {
		in, found, err := quickstart.Appliance(sys.cfg.StateDir, v.routerID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("router %s has no appliance", v.routerID)
		}
		targets[i].instance = in.ID
		for _, p := range in.Ports {
			if p.Bridge == sys.cfg.Standalone.ManagementBridge {
				targets[i].device = p.HostDevice
			}
		}
		if targets[i].device == "" {
			return fmt.Errorf("instance %s has no port on the management bridge %s", in.ID, sys.cfg.Standalone.ManagementBridge)
		}
	}
	out.HungActive = make([]time.Duration, len(victims))
	out.HungForwarding = make([]time.Duration, len(victims))
	start := time.Now()
	for _, t := range targets {
		l, err := netlink.LinkByName(t.device)
		if err == nil {
			err = netlink.LinkSetDown(l)
		}
		if err != nil {
			return fmt.Errorf("setting %s down: %w", t.device, err)
		}
	}
	sys.progress("%d appliances unresponsive on the management network (health_check_period %v)", len(victims), sys.cfg.HealthCheckPeriod)
	return parallel(len(victims), func(i int) error {
		v := victims[i]
		if _, err := v.client.WaitRepaired(ctx, sys.cfg.StateDir, v.routerID, targets[i].instance); err != nil {
			return err
		}
		out.HungActive[i] = time.Since(start)
		if err := ping(ctx, v.ns, UpstreamIP); err != nil {
			return fmt.Errorf("after the repair: %w", err)
		}
		out.HungForwarding[i] = time.Since(start)
		return nil
	})
}

// ping pings addr from namespace ns until an answer comes back or ctx
// ends. quickstart.Ping returns at the first error the network reports
// too: once ARP for the gateway failed (3 s), the host is unreachable.
func ping(ctx context.Context, ns, addr string) error {
	for {
		start := time.Now()
		err := quickstart.Ping(ctx, ns, addr)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Since(start) < 20*time.Millisecond {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// removeHost removes a host (quickstart.RemoveHost). Deleting the
// namespace deletes the veth's host end too, but not at once: RemoveHost
// may then find it and fail to delete it (ENODEV); what is gone is fine.
func removeHost(ns string) error {
	err := quickstart.RemoveHost(ns)
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(filepath.Join("/run/netns", ns)); serr == nil {
		return err
	}
	for range 50 {
		if _, lerr := netlink.LinkByName(ns); errors.As(lerr, new(netlink.LinkNotFoundError)) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// makeHost makes namespace ns standing for a VM: eth0 with mac, addr and
// a default route via gateway; its veth peer, named ns, stays down and out
// of any bridge until attach.
func makeHost(ctx context.Context, ns string, mac net.HardwareAddr, addr netip.Prefix, gateway netip.Addr) error {
	if len(ns) > 15 {
		return fmt.Errorf("host %s: longer than an interface name", ns)
	}
	if err := removeHost(ns); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", "eth0", "address", mac.String()},
		{"-n", ns, "addr", "add", addr.String(), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", gateway.String()},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("host %s: ip %s: %w: %s", ns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// attach puts the host end of a host's veth on bridge and brings it up.
func attach(ns, bridge string) error {
	l, err := netlink.LinkByName(ns)
	if err != nil {
		return fmt.Errorf("host %s: %w", ns, err)
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if err := netlink.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("host %s on bridge %s: %w", ns, bridge, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("host %s up: %w", ns, err)
	}
	return nil
}

// waitLink waits until the host has the device name; it looks more often
// than quickstart.WaitLink, as the time it returns is measured.
func waitLink(ctx context.Context, name string) error {
	t := time.NewTicker(linkPollInterval)
	defer t.Stop()
	for {
		_, err := netlink.LinkByName(name)
		if err == nil {
			return nil
		}
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for device %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// parallel runs f(0..n-1) at once and returns their errors.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
