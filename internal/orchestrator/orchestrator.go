// Package orchestrator assembles a running orchestrator from its
// configuration and its providers: the embedded store under state_dir, the
// scheduler and its workers driving instance managers, the event intake
// feeding the scheduler (a notification is acknowledged once the scheduler
// accepted its events), the start-up poll of every existing router (which
// adopts running instances without reconfiguring them), the periodic
// health poll, and the management API.
//
// Stop (and Run, when its context ends) stops the intake first, so that
// nothing new is accepted; then the scheduler, which finishes the work it
// can within [DEFAULT] shutdown_timeout and records what is left, above
// all accepted DELETEs, for the next start; then the management API.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/health"
	"github.com/astara-go/astara/internal/instance"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/mgmt"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// Deps are what an orchestrator runs on, besides its configuration.
type Deps struct {
	// Network and Compute are the cloud; required.
	Network provider.NetworkAPI
	Compute provider.ComputeAPI
	// Source delivers the notifications; required.
	Source intake.Source
	// ManagementAddress is the orchestrator's address on the management
	// network, as the network provider's local port has it; invalid means
	// [DEFAULT] management_address.
	ManagementAddress netip.Addr
	// Appliance talks to the appliances; nil: a client configured by
	// [router] mgt_service_port, alive_timeout, config_timeout and
	// [astara_appliance] tls_*.
	Appliance instance.Appliance
	// Factory replaces the instance managers (tests); nil: the instance
	// package's, over Network, Compute and Appliance.
	Factory worker.Factory
	// Load re-reads the configuration for config-reload; nil:
	// config.Load of the files the configuration was read from.
	Load func() (*config.Config, error)
	// Logger receives the logs; nil: slog.Default(). LogLevel, if set,
	// follows [DEFAULT] debug, at the start and on config-reload.
	Logger   *slog.Logger
	LogLevel *slog.LevelVar
	// Collectors are more metrics for the management API's /metrics
	// (those of the providers, say).
	Collectors []prometheus.Collector
}

// Orchestrator is one running orchestrator.
type Orchestrator struct {
	deps     Deps
	log      *slog.Logger
	metrics  *metrics
	app      instance.Appliance
	closeApp func()
	mgmtAddr netip.Addr

	cfgMu sync.Mutex
	cfg   *config.Config

	factory atomic.Pointer[instance.Factory]

	// Set by Start.
	db        *store.DB
	sched     *scheduler.Scheduler
	api       *mgmt.Server
	inspector *health.Inspector
	live      atomic.Pointer[scheduler.Scheduler] // set while running, for PollRouter
	apiAddr   atomic.Value                        // net.Addr, once listening
	cancel    context.CancelFunc                  // stops the intake, populate and health
	producers sync.WaitGroup
	serving   chan struct{} // closed when the API's Serve returned
	fatal     chan error

	stateMu sync.Mutex
	started bool // Start was called
	running bool // Start succeeded and Stop was not called
}

// New checks the configuration and the dependencies and returns an
// orchestrator, not started.
func New(cfg *config.Config, deps Deps) (*Orchestrator, error) {
	if cfg == nil {
		return nil, errors.New("orchestrator: no configuration")
	}
	if deps.Network == nil || deps.Compute == nil {
		return nil, errors.New("orchestrator: the network and compute providers are required")
	}
	if deps.Source == nil {
		return nil, errors.New("orchestrator: no notification source")
	}
	if err := Check(cfg); err != nil {
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	if cfg.ManagementNetworkID == "" {
		return nil, errors.New("orchestrator: [DEFAULT] management_network_id: required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	o := &Orchestrator{deps: deps, log: log, metrics: newMetrics(), cfg: cfg.Clone(), fatal: make(chan error, 2),
		serving: make(chan struct{})}
	o.setLevel(cfg)
	o.mgmtAddr = deps.ManagementAddress
	if !o.mgmtAddr.IsValid() {
		o.mgmtAddr = cfg.ManagementAddress
	}
	if !o.mgmtAddr.IsValid() {
		return nil, errors.New("orchestrator: no management address: the network provider gives none and " +
			"[DEFAULT] management_address is not set")
	}
	if deps.Appliance != nil {
		o.app, o.closeApp = deps.Appliance, func() {}
	} else {
		c, err := newApplianceClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("orchestrator: %w", err)
		}
		o.app, o.closeApp = c, c.Close
	}
	o.app = timedAppliance{Appliance: o.app, h: o.metrics.appliance}
	f, err := o.newFactory(cfg)
	if err != nil {
		o.closeApp()
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	o.factory.Store(f)
	return o, nil
}

// newFactory returns the instance managers' factory for cfg.
func (o *Orchestrator) newFactory(cfg *config.Config) (*instance.Factory, error) {
	rc, err := routerConfig(cfg, o.mgmtAddr, o.log)
	if err != nil {
		return nil, err
	}
	return &instance.Factory{Network: o.deps.Network, Compute: o.deps.Compute, Appliance: o.app,
		Router: rc, Config: instanceConfig(cfg, o.log)}, nil
}

// setLevel makes the log level follow [DEFAULT] debug.
func (o *Orchestrator) setLevel(cfg *config.Config) {
	if o.deps.LogLevel == nil {
		return
	}
	if cfg.Debug {
		o.deps.LogLevel.Set(slog.LevelDebug)
	} else {
		o.deps.LogLevel.Set(slog.LevelInfo)
	}
}

// Config returns the configuration in effect (the last one reloaded).
func (o *Orchestrator) Config() *config.Config {
	o.cfgMu.Lock()
	defer o.cfgMu.Unlock()
	return o.cfg.Clone()
}

// APIAddr returns the address the management API listens on (nil before
// it listens).
func (o *Orchestrator) APIAddr() net.Addr {
	a, _ := o.apiAddr.Load().(net.Addr)
	return a
}

// Start starts the orchestrator: it opens the store, starts the scheduler
// (which replays the work a previous run left), the intake, the start-up
// poll of every router, the health poll and the management API. ctx bounds
// the start only. If Start fails, what it started is stopped.
func (o *Orchestrator) Start(ctx context.Context) (err error) {
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	if o.started {
		return errors.New("orchestrator: already started")
	}
	o.started = true
	cfg := o.Config()

	o.db, err = store.Open(cfg.StateDir)
	if err != nil {
		return fmt.Errorf("orchestrator: [DEFAULT] state_dir: %w", err)
	}
	defer func() {
		if err != nil {
			o.db.Close()
		}
	}()
	factory := o.deps.Factory
	if factory == nil {
		factory = worker.FactoryFunc(func(ctx context.Context, r event.Resource) (state.Instance, error) {
			return o.factory.Load().NewInstance(ctx, r)
		})
	}
	o.sched, err = scheduler.New(scheduler.Options{
		Workers:  cfg.NumWorkerProcesses,
		Worker:   workerConfig(cfg),
		Factory:  factory,
		Resolver: worker.NetworkResolver{API: o.deps.Network},
		Store:    o.db,
		Reload:   o.reload,
		Logger:   o.log,
	})
	if err != nil {
		return fmt.Errorf("orchestrator: %w", err)
	}
	o.inspector = health.NewInspector(countingSink{next: o.sched, origin: "health", m: o.metrics}, cfg.HealthCheckPeriod, o.log)
	o.api, err = mgmt.New(mgmt.Options{
		Scheduler:    o.sched,
		Addr:         cfg.APIAddress(),
		Token:        cfg.API.AuthToken,
		RouterTenant: o.routerTenant,
		StaleAfter:   func() time.Duration { return health.StaleAfter(o.inspector.Period()) },
		Status:       resourceStatus,
		Collectors: append([]prometheus.Collector{o.metrics.events, o.metrics.appliance,
			newIntakeCollector(o.deps.Source), newHealthCollector(o.inspector)}, o.deps.Collectors...),
		Logger: o.log,
	})
	if err != nil {
		return fmt.Errorf("orchestrator: %w", err)
	}
	addr, err := o.api.Listen()
	if err != nil {
		return fmt.Errorf("orchestrator: [DEFAULT] api_listen/api_port: %w", err)
	}
	if err = o.sched.Start(ctx); err != nil {
		if serr := o.api.Shutdown(context.Background()); serr != nil {
			o.log.Error("closing the management API after a failed start", "err", serr)
		}
		if serr := o.sched.Stop(context.Background()); serr != nil {
			o.log.Error("stopping the scheduler after a failed start", "err", serr)
		}
		return fmt.Errorf("orchestrator: %w", err)
	}

	run, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	sink := countingSink{next: intake.Rejecting(o.sched, scheduler.ErrInvalid, scheduler.ErrNotManaged), origin: "intake", m: o.metrics}
	o.producers.Go(func() {
		if err := o.deps.Source.Run(run, sink); err != nil {
			o.log.Error("the notification intake stopped", "err", err)
			o.fatal <- fmt.Errorf("orchestrator: intake: %w", err)
		}
	})
	o.producers.Go(func() { o.populate(run, countingSink{next: o.sched, origin: "populate", m: o.metrics}) })
	o.producers.Go(func() { o.inspector.Run(run) })
	go func() {
		defer close(o.serving)
		if err := o.api.Serve(); err != nil {
			o.fatal <- fmt.Errorf("orchestrator: %w", err)
		}
	}()
	o.running = true
	o.live.Store(o.sched)
	o.apiAddr.Store(addr)
	o.log.Info("orchestrator started", "host", cfg.Host, "api", addr.String(), "state_dir", cfg.StateDir,
		"workers", cfg.NumWorkerProcesses, "health_check_period", cfg.HealthCheckPeriod, "management_address", o.mgmtAddr.String())
	return nil
}

// routerTenant looks a router's tenant up, for the management API's
// deprecated router commands.
func (o *Orchestrator) routerTenant(ctx context.Context, id string) (string, error) {
	r, err := o.deps.Network.GetRouter(ctx, id)
	if err != nil {
		return "", err
	}
	return r.TenantID, nil
}

// ErrNotRunning is returned by PollRouter when the orchestrator is not
// running (the start-up poll covers what happened before it started).
var ErrNotRunning = errors.New("orchestrator: not running")

// PollRouter dispatches a POLL of a router now, for whoever learns first
// that its appliance died (the local compute provider sees its agent exit)
// rather than wait for the health poll; origin names it in the metrics.
// The tenant is the one the router is managed under, else the network
// API's. A router that is gone is not polled: the error wraps
// provider.ErrNotFound.
func (o *Orchestrator) PollRouter(ctx context.Context, id, origin string) error {
	sched := o.live.Load()
	if sched == nil {
		return ErrNotRunning
	}
	tenant := ""
	if st, ok := sched.Resource(id); ok {
		tenant = st.Resource.TenantID
	} else {
		t, err := o.routerTenant(ctx, id)
		if err != nil {
			return fmt.Errorf("orchestrator: polling router %s: %w", id, err)
		}
		tenant = t
	}
	ev := event.Event{Resource: event.Resource{Driver: event.DriverRouter, ID: id, TenantID: tenant},
		Action: event.Poll, Source: origin}
	if err := (countingSink{next: sched, origin: origin, m: o.metrics}).Dispatch(ctx, ev); err != nil {
		return fmt.Errorf("orchestrator: polling router %s: %w", id, err)
	}
	return nil
}

// Stop stops the orchestrator: the intake, the start-up poll and the health
// poll first (nothing new is accepted); then the scheduler, which finishes
// what it can until ctx ends and records what is left for the next start;
// then the management API (commands get 503 meanwhile). It closes the
// store last.
func (o *Orchestrator) Stop(ctx context.Context) error {
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	if !o.running {
		return nil
	}
	o.running = false
	o.live.Store(nil)
	var errs []error
	o.cancel()
	o.producers.Wait()
	o.log.Info("intake stopped; stopping the workers")
	if err := o.sched.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := o.api.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	<-o.serving
	if err := o.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("orchestrator: close the store: %w", err))
	}
	o.closeApp()
	if err := errors.Join(errs...); err != nil {
		o.log.Error("orchestrator stopped with errors", "err", err)
		return err
	}
	o.log.Info("orchestrator stopped")
	return nil
}

// Run starts the orchestrator, runs it until ctx ends or a part of it fails
// for good (the intake, the API), then stops it within [DEFAULT]
// shutdown_timeout. It returns the failure, if any.
func (o *Orchestrator) Run(ctx context.Context) error {
	if err := o.Start(ctx); err != nil {
		return err
	}
	var failed error
	select {
	case <-ctx.Done():
		o.log.Info("shutting down")
	case failed = <-o.fatal:
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.Config().ShutdownTimeout)
	defer cancel()
	return errors.Join(failed, o.Stop(sctx))
}
