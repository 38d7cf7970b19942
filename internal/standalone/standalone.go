// Package standalone assembles standalone mode: Astara on one machine
// without OpenStack. The orchestrator serves the embedded network API
// (Neutron's v2.0 API, see netapi) whose notifications reach its
// in-process event source (and, optionally, a RabbitMQ broker as Neutron
// publishes them); its network provider is that API, through gophercloud
// as for a real Neutron; its compute provider runs each appliance as a
// network namespace of this machine (see local), with mutual TLS between
// the orchestrator and the appliances' API.
//
// Open makes the management network in the embedded API when it is
// missing (an IPv6 SLAAC subnet on [DEFAULT] management_prefix), plugs the
// orchestrator into it (address 1 of the prefix on the bridge of
// [standalone] management_bridge) and polls a router at once when its appliance's agent
// exits, instead of at the next health poll.
//
// Under [DEFAULT] state_dir:
//
//	netapi/   the embedded network API's database
//	local/    the appliances' instances (see local)
//	pki/      the CA and certificates of the orchestrator and the appliances
//	*.db      the orchestrator's own store
//
// With Options.Neutron, the same machine runs the appliances of an
// OpenStack cloud's routers instead ([DEFAULT] compute_provider = local):
// the networks, the management network included, are an external
// Neutron's, whose notifications come from RabbitMQ, and there is no
// embedded network API.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/netapi"
	"github.com/astara-go/astara/internal/netapi/amqpnotify"
	"github.com/astara-go/astara/internal/orchestrator"
	"github.com/astara-go/astara/internal/pki"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/provider/neutron"
)

// Project is the project of the orchestrator's requests to the embedded
// network API (as admin): it owns the management network and the
// appliances' ports.
const Project = "astara"

// ApplianceBinary is the agent's file name, looked for next to the running
// program and in PATH when [standalone] appliance_binary is not set.
const ApplianceBinary = "astara-appliance"

// maxStateDir is the longest state directory whose appliances' BIRD
// control socket, local/instances/<id>/state/bird/bird.ctl below it, fits
// in a Unix socket address (107 bytes and a NUL).
const maxStateDir = 107 - len("/local/instances/") - 36 - len("/state/bird/bird.ctl")

// pkiValidity is how long the certificates Open makes are valid.
const pkiValidity = 10 * 365 * 24 * time.Hour

// Options adjust a System beyond its configuration; the zero value is
// the production setup.
type Options struct {
	// AgentPath, when set, replaces [standalone] appliance_binary, and
	// AgentEnv and AgentArgs are given to every agent (tests run the test
	// binary as the agent).
	AgentPath string
	AgentEnv  []string
	AgentArgs []string
	// NamespacePrefix starts the appliances' namespace names (default
	// local.DefaultNamespacePrefix).
	NamespacePrefix string
	// OnApplianceExit, when set, is told of every appliance agent that
	// exited, once its router was polled (tests and benchmarks time the
	// repair from there).
	OnApplianceExit func(Exit)
	// Logger receives the logs (default slog.Default()); LogLevel, if set,
	// follows [DEFAULT] debug.
	Logger   *slog.Logger
	LogLevel *slog.LevelVar
	// Neutron, when set, replaces the embedded network API with an
	// external Neutron (see the package documentation).
	Neutron *Neutron
}

// Neutron is the network side of a System whose networks are an external
// Neutron's.
type Neutron struct {
	// Client is a networking v2 client of Neutron, with admin rights.
	Client *gophercloud.ServiceClient
	// Source delivers Neutron's notifications (from RabbitMQ).
	Source intake.Source
}

// System is standalone mode, assembled: the embedded network API, serving
// from Open on; the providers; the orchestrator, run by Start or Run.
type System struct {
	cfg       *config.Config
	opts      Options
	log       *slog.Logger
	mgmtAddr  netip.Addr
	mgmt      management
	pki       *pki.Files
	agentPath string

	api       *netapi.Server // nil with Options.Neutron
	publisher *amqpnotify.Publisher
	src       intake.Source
	network   *neutron.Provider
	compute   *local.Compute
	orch      atomic.Pointer[orchestrator.Orchestrator]
	exits     *prometheus.CounterVec

	// ctx ends when the system stops: it bounds the polls of exited agents.
	ctx    context.Context
	cancel context.CancelFunc

	serveDone chan struct{} // closed when the API's Serve returned (nil: not serving)
	serveErr  error         // what Serve returned, once serveDone is closed

	closeOnce sync.Once
	closeErr  error
}

// Check validates what standalone mode needs of cfg beyond what the
// orchestrator needs (orchestrator.Check): standalone mode, the appliance
// binary, the management prefix and address, and no [astara_appliance]
// tls_* options (standalone mode makes the certificates).
func Check(cfg *config.Config) error { return check(cfg, true, false) }

// CheckLocal is Check for OpenStack mode with the appliances on this
// machine (Options.Neutron): [keystone_authtoken] is expected there.
func CheckLocal(cfg *config.Config) error { return check(cfg, true, true) }

// check is Check, without looking for the agent unless findAgent, for an
// external Neutron if external.
func check(cfg *config.Config, findAgent, external bool) error {
	var errs []error
	if !cfg.StandaloneMode() && !external {
		errs = append(errs, errors.New("[keystone_authtoken] is configured: not standalone mode"))
	}
	if external && cfg.ManagementNetworkID == "" {
		errs = append(errs, errors.New("[DEFAULT] management_network_id: required with an external Neutron"))
	}
	if findAgent {
		if _, err := agentPath(cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := managementAddress(cfg); err != nil {
		errs = append(errs, err)
	}
	if dir, err := filepath.Abs(cfg.StateDir); err == nil && len(dir) > maxStateDir {
		errs = append(errs, fmt.Errorf("[DEFAULT] state_dir %s: longer than %d bytes: the appliances' BIRD control "+
			"sockets, deep below it, would not fit in a socket address (108 bytes)", dir, maxStateDir))
	}
	a := cfg.Appliance
	for _, o := range []struct{ name, v string }{{"tls_ca_file", a.TLSCAFile}, {"tls_cert_file", a.TLSCertFile},
		{"tls_key_file", a.TLSKeyFile}, {"tls_server_name", a.TLSServerName}} {
		if o.v != "" {
			errs = append(errs, fmt.Errorf("[astara_appliance] %s: not used in standalone mode, which makes the "+
				"appliances' certificates under state_dir (see [standalone] appliance_tls)", o.name))
		}
	}
	if cfg.Standalone.PublishNotifications && !external {
		if urls, err := cfg.BrokerURLs(); err == nil && len(urls) == 0 {
			errs = append(errs, errors.New("[standalone] publish_notifications: no broker: set [DEFAULT] transport_url"))
		}
	}
	return errors.Join(errs...)
}

// agentPath finds the appliance agent: [standalone] appliance_binary, else
// ApplianceBinary next to the running program, else in PATH.
func agentPath(cfg *config.Config) (string, error) {
	if p := cfg.Standalone.ApplianceBinary; p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("[standalone] appliance_binary: %w", err)
		}
		return filepath.Abs(found)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), ApplianceBinary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(ApplianceBinary)
	if err != nil {
		return "", fmt.Errorf("[standalone] appliance_binary: no %s next to this program nor in PATH "+
			"(go build -o bin/ ./cmd/... builds it next to astara-orchestrator)", ApplianceBinary)
	}
	return filepath.Abs(p)
}

// managementAddress returns the orchestrator's management address:
// [DEFAULT] management_address, else address 1 of management_prefix.
func managementAddress(cfg *config.Config) (netip.Addr, error) {
	p := cfg.ManagementPrefix.Masked()
	if !p.IsValid() {
		return netip.Addr{}, fmt.Errorf("[DEFAULT] management_prefix %s: not a prefix", cfg.ManagementPrefix)
	}
	if p.Addr().Is6() && p.Bits() != 64 {
		return netip.Addr{}, fmt.Errorf("[DEFAULT] management_prefix %s: an IPv6 management network is a /64 (SLAAC)", p)
	}
	if a := cfg.ManagementAddress; a.IsValid() {
		if !p.Contains(a) || a == p.Addr() {
			return netip.Addr{}, fmt.Errorf("[DEFAULT] management_address %s: not a host address of management_prefix %s", a, p)
		}
		return a, nil
	}
	return p.Addr().Next(), nil
}

// Open assembles standalone mode on cfg (which must pass Check): it opens
// the embedded network API under state_dir and serves it on [standalone]
// network_api_listen, makes the management network in it if missing, and
// makes the providers and the orchestrator, not started. ctx bounds Open.
// When Open fails, nothing it started is left running.
func Open(ctx context.Context, cfg *config.Config, opts Options) (_ *System, err error) {
	if opts.Neutron != nil && (opts.Neutron.Client == nil || opts.Neutron.Source == nil) {
		return nil, errors.New("standalone: Options.Neutron needs a client and a notification source")
	}
	if err := check(cfg, opts.AgentPath == "", opts.Neutron != nil); err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	s := &System{cfg: cfg.Clone(), opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.exits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "astara_standalone_agent_exits_total",
		Help: "Appliance agents seen to exit, by what followed: polled (the router is repaired), gone (no such router), " +
			"not_running (the start-up poll sees it), failed (the health poll will), not_router.",
	}, []string{"result"})
	if s.mgmtAddr, err = managementAddress(cfg); err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	if s.agentPath = opts.AgentPath; s.agentPath == "" {
		if s.agentPath, err = agentPath(cfg); err != nil {
			return nil, fmt.Errorf("standalone: %w", err)
		}
	}
	defer func() {
		if err != nil {
			s.cancel()
			if cerr := s.close(context.Background()); cerr != nil {
				s.log.Error("closing after a failed start", "err", cerr)
			}
		}
	}()
	if err := prepareStateDir(cfg.StateDir, s.log); err != nil {
		return nil, err
	}
	if cfg.Standalone.ApplianceTLS {
		f, made, err := pki.Ensure(filepath.Join(cfg.StateDir, "pki"), pki.DefaultServerName, pkiValidity)
		if err != nil {
			return nil, fmt.Errorf("standalone: the appliances' certificates: %w", err)
		}
		if made {
			s.log.Info("certificates made for mutual TLS with the appliances", "dir", filepath.Dir(f.CA))
		}
		s.pki = &f
	}

	var admin *gophercloud.ServiceClient
	if n := opts.Neutron; n != nil {
		admin, s.src = n.Client, n.Source
	} else if admin, err = s.serveNetworkAPI(cfg); err != nil {
		return nil, err
	}
	if s.mgmt, err = bootstrap(ctx, admin, s.cfg, s.mgmtAddr, s.log); err != nil {
		return nil, fmt.Errorf("standalone: management network: %w", err)
	}
	s.applyDerived(s.cfg)
	byName, err := cfg.ExternalInterfaces()
	if err != nil {
		return nil, fmt.Errorf("standalone: [standalone] external_interfaces: %w", err)
	}
	uplinks, err := resolveUplinks(ctx, admin, byName, s.log)
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	s.network, err = neutron.New(admin, neutron.Options{ManagementSubnetID: s.mgmt.subnetID, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	lopts := local.Options{
		StateDir:            filepath.Join(cfg.StateDir, "local"),
		AgentPath:           s.agentPath,
		AgentPort:           cfg.Router.MgtServicePort,
		AgentArgs:           append([]string{"-ssh-port", "0"}, opts.AgentArgs...),
		AgentEnv:            opts.AgentEnv,
		ManagementNetworkID: s.mgmt.networkID,
		ManagementBridge:    cfg.Standalone.ManagementBridge,
		ManagementAddress:   netip.PrefixFrom(s.mgmtAddr, cfg.ManagementPrefix.Bits()),
		Uplinks:             uplinks,
		NamespacePrefix:     opts.NamespacePrefix,
		Logger:              s.log.With("component", "local"),
		OnExit:              s.onExit,
	}
	if s.pki != nil {
		lopts.TLSCert, lopts.TLSKey, lopts.TLSClientCA = s.pki.ServerCert, s.pki.ServerKey, s.pki.CA
	}
	if s.compute, err = local.New(lopts); err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	o, err := orchestrator.New(s.cfg, orchestrator.Deps{
		Network: s.network, Compute: pruningCompute{s.compute, s.log}, Source: s.src, ManagementAddress: s.mgmtAddr,
		Load: s.load, Logger: s.log, LogLevel: opts.LogLevel, Collectors: []prometheus.Collector{s.exits},
	})
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	s.orch.Store(o)
	s.log.Info("appliances of this machine ready", "network_api", admin.ResourceBaseURL(), "management_network_id", s.mgmt.networkID,
		"management_address", s.mgmtAddr.String(), "management_bridge", cfg.Standalone.ManagementBridge, "agent", s.agentPath,
		"appliance_tls", s.pki != nil, "state_dir", cfg.StateDir)
	return s, nil
}

// serveNetworkAPI opens the embedded network API, whose notifications go
// to the in-process source (and the broker, with [standalone]
// publish_notifications), serves it on [standalone] network_api_listen,
// and returns an admin client of it.
func (s *System) serveNetworkAPI(cfg *config.Config) (*gophercloud.ServiceClient, error) {
	src := intake.NewInProcessSource(intake.InProcessConfig{Normalizer: orchestrator.Normalizer(cfg), Logger: s.log})
	s.src = src
	notifiers := []netapi.Notifier{netapi.NotifierFunc(src.PublishNotification)}
	if cfg.Standalone.PublishNotifications {
		p, err := newPublisher(cfg, s.log)
		if err != nil {
			return nil, err
		}
		s.publisher = p
		notifiers = append(notifiers, p)
	}
	api, err := netapi.Open(netapi.Config{StateDir: filepath.Join(cfg.StateDir, "netapi"), Notifiers: notifiers,
		Host: cfg.Host, Logger: s.log.With("component", "netapi")})
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	s.api = api
	if err := api.Listen(cfg.Standalone.NetworkAPIListen); err != nil {
		return nil, fmt.Errorf("standalone: [standalone] network_api_listen: %w", err)
	}
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		s.serveErr = api.Serve()
	}()
	s.log.Info("embedded network API serving", "url", api.URL())
	admin, err := neutron.NoAuthClient(api.URL(), Project, nil)
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	return admin, nil
}

// applyDerived sets in cfg what standalone mode decides rather than the
// configuration files: the management network, the orchestrator's
// management address and the appliance client's certificates.
func (s *System) applyDerived(cfg *config.Config) {
	cfg.ManagementNetworkID, cfg.ManagementSubnetID = s.mgmt.networkID, s.mgmt.subnetID
	cfg.ManagementAddress = s.mgmtAddr
	if s.pki != nil {
		cfg.Appliance.TLSCAFile, cfg.Appliance.TLSCertFile, cfg.Appliance.TLSKeyFile = s.pki.CA, s.pki.ClientCert, s.pki.ClientKey
		cfg.Appliance.TLSServerName = s.pki.ServerName
	}
}

// load re-reads the configuration files for config-reload, with what
// standalone mode decided applied again.
func (s *System) load() (*config.Config, error) {
	cfg, err := config.Load(slices.Clone(s.cfg.Files), s.log)
	if err != nil {
		return nil, err
	}
	if cfg.StandaloneMode() != (s.opts.Neutron == nil) {
		return nil, errors.New("[keystone_authtoken] appeared or went: changing between standalone and OpenStack mode needs a restart")
	}
	if err := check(cfg, s.opts.AgentPath == "", s.opts.Neutron != nil); err != nil {
		return nil, err
	}
	s.applyDerived(cfg)
	return cfg, nil
}

// newPublisher returns the AMQP publisher of [standalone]
// publish_notifications: the first broker of transport_url, Neutron's
// exchange.
func newPublisher(cfg *config.Config, log *slog.Logger) (*amqpnotify.Publisher, error) {
	urls, err := cfg.BrokerURLs()
	if err != nil {
		return nil, fmt.Errorf("standalone: [DEFAULT] transport_url: %w", err)
	}
	tlsCfg, err := cfg.BrokerTLS()
	if err != nil {
		return nil, fmt.Errorf("standalone: %w", err)
	}
	p, err := amqpnotify.New(amqpnotify.Config{URL: urls[0], Exchange: cfg.NeutronControlExchange,
		ExchangeDurable: cfg.Rabbit.AMQPDurableQueues, TLS: tlsCfg, Logger: log.With("component", "amqpnotify")})
	if err != nil {
		return nil, fmt.Errorf("standalone: [standalone] publish_notifications: %w", err)
	}
	return p, nil
}

// prepareStateDir makes the state directory, searchable by everyone:
// dnsmasq, in each appliance, reads its files as nobody below it.
func prepareStateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("standalone: [DEFAULT] state_dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("standalone: [DEFAULT] state_dir: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o011 != 0o011 {
		if err := os.Chmod(dir, perm|0o011); err != nil {
			return fmt.Errorf("standalone: [DEFAULT] state_dir: %w", err)
		}
		log.Info("state directory made searchable by everyone, for the appliances' dnsmasq", "state_dir", dir)
	}
	return nil
}

// Config returns the configuration in effect, with what standalone mode
// decided: the management network, the orchestrator's management address,
// the appliance client's certificates.
func (s *System) Config() *config.Config { return s.cfg.Clone() }

// NetworkURL returns the embedded network API's URL, http://host:port
// ("" with an external Neutron).
func (s *System) NetworkURL() string {
	if s.api == nil {
		return ""
	}
	return s.api.URL()
}

// Orchestrator returns the orchestrator.
func (s *System) Orchestrator() *orchestrator.Orchestrator { return s.orch.Load() }

// Compute returns the local compute provider.
func (s *System) Compute() *local.Compute { return s.compute }

// ManagementNetworkID returns the management network's id.
func (s *System) ManagementNetworkID() string { return s.mgmt.networkID }

// Start starts the orchestrator (see orchestrator.Orchestrator.Start).
func (s *System) Start(ctx context.Context) error { return s.orch.Load().Start(ctx) }

// Stop stops the orchestrator (finishing the work under way until ctx
// ends), then the embedded network API and the providers. The appliances
// keep running: a System opened again on the state directory adopts them.
func (s *System) Stop(ctx context.Context) error {
	err := s.orch.Load().Stop(ctx)
	s.cancel()
	return errors.Join(err, s.close(ctx))
}

// Run starts the orchestrator and runs it until ctx ends or a part of the
// system fails for good (the intake, an API), then stops everything
// within [DEFAULT] shutdown_timeout. It returns the failure, if any.
func (s *System) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.serveDone != nil {
		go func() {
			select {
			case <-s.serveDone: // the network API failed
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	err := s.orch.Load().Run(ctx)
	s.cancel()
	sctx, scancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer scancel()
	return errors.Join(err, s.close(sctx))
}

// close shuts the network API down (once its notifications are delivered,
// or ctx ends) and releases the providers. Calling it again returns the
// first result.
func (s *System) close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.api != nil {
			if err := s.api.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("standalone: %w", err))
			}
			if s.serveDone != nil {
				<-s.serveDone
				if s.serveErr != nil {
					errs = append(errs, fmt.Errorf("standalone: embedded network API: %w", s.serveErr))
				}
			}
		}
		if s.publisher != nil {
			if err := s.publisher.Close(); err != nil {
				errs = append(errs, fmt.Errorf("standalone: %w", err))
			}
		}
		if s.compute != nil {
			if err := s.compute.Close(); err != nil {
				errs = append(errs, fmt.Errorf("standalone: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
