// Package cloud assembles OpenStack mode: the orchestrator managing the
// routers of an OpenStack cloud's Neutron, fed by Neutron's notifications
// from RabbitMQ ([DEFAULT] transport_url), authenticated by Keystone
// ([keystone_authtoken]: a password, an application credential, or a
// clouds.yaml cloud) or, in test setups, by no one (auth_type none and
// the endpoint_override options).
//
// The appliances run where [DEFAULT] compute_provider says: as Nova
// servers booted from [router] image_uuid (the management port first, a
// config drive, user data telling the appliance its management MAC and
// address), or as network namespaces of this machine, plugged into one
// bridge per network exactly as in standalone mode (see standalone, whose
// Options.Neutron this uses).
package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/orchestrator"
	"github.com/astara-go/astara/internal/provider/neutron"
	"github.com/astara-go/astara/internal/provider/nova"
	"github.com/astara-go/astara/internal/standalone"
)

// NoAuthProject is the project requests claim with auth_type none when
// [keystone_authtoken] project_id is not set.
const NoAuthProject = "astara"

// Options adjust a System beyond its configuration; the zero value is the
// production setup.
type Options struct {
	// Local adjusts the appliances run on this machine (compute_provider
	// local): tests run the test binary as the agent. Its Logger,
	// LogLevel and Neutron are set by Open.
	Local standalone.Options
	// HTTPClient makes the requests to Keystone and the services (nil:
	// a default one, with [keystone_authtoken] cafile and insecure).
	HTTPClient *http.Client
	// Logger receives the logs (default slog.Default()); LogLevel, if set,
	// follows [DEFAULT] debug.
	Logger   *slog.Logger
	LogLevel *slog.LevelVar
}

// System is OpenStack mode, assembled: run it with Start and Stop, or Run.
type System struct {
	log   *slog.Logger
	local *standalone.System         // compute_provider local
	orch  *orchestrator.Orchestrator // compute_provider nova
}

// Check validates what OpenStack mode needs of cfg beyond what the
// orchestrator needs: how to authenticate and reach the services, a
// broker, and what the compute provider needs (the image and flavor for
// Nova, the agent for local appliances).
func Check(cfg *config.Config) error { return check(cfg, true) }

// check is Check; without checkLocal, what the local appliances need is
// left to standalone.Open.
func check(cfg *config.Config, checkLocal bool) error {
	var errs []error
	if cfg.StandaloneMode() {
		errs = append(errs, errors.New("no [keystone_authtoken]: standalone mode, not OpenStack mode"))
	}
	if err := checkAuth(cfg); err != nil {
		errs = append(errs, err)
	}
	if urls, err := cfg.BrokerURLs(); err == nil && len(urls) == 0 {
		errs = append(errs, errors.New("[DEFAULT] transport_url: required: Neutron's notifications come from its broker"))
	}
	switch cfg.ComputeProvider {
	case config.ComputeLocal:
		if !checkLocal {
			break
		}
		if err := standalone.CheckLocal(cfg); err != nil {
			errs = append(errs, err)
		}
	case config.ComputeNova:
		if cfg.Router.ImageUUID == "" {
			errs = append(errs, errors.New("[router] image_uuid: required with compute_provider nova"))
		}
		if cfg.Router.InstanceFlavor == "" {
			errs = append(errs, errors.New("[router] instance_flavor: required with compute_provider nova"))
		}
		if !cfg.ManagementAddress.IsValid() {
			errs = append(errs, errors.New("[DEFAULT] management_address: required with compute_provider nova "+
				"(the orchestrator's address on the management network, reachable by the appliances)"))
		}
	}
	return errors.Join(errs...)
}

// Open assembles OpenStack mode on cfg (which must pass Check and
// orchestrator.Check): it authenticates, makes the providers and the
// notification source, and the orchestrator, not started. With
// compute_provider local, it also checks the management network in
// Neutron and plugs this machine into it (see standalone.Open). ctx
// bounds Open.
func Open(ctx context.Context, cfg *config.Config, opts Options) (*System, error) {
	// standalone.Open checks what the local appliances need, knowing
	// Options.Local.
	if err := check(cfg, false); err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	s := &System{log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	clients, err := connect(ctx, cfg, opts.HTTPClient, s.log)
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	src, err := orchestrator.NewAMQPSource(cfg, s.log.With("component", "intake"))
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	if cfg.ComputeProvider == config.ComputeLocal {
		lopts := opts.Local
		lopts.Logger, lopts.LogLevel = s.log, opts.LogLevel
		lopts.Neutron = &standalone.Neutron{Client: clients.network, Source: src}
		if s.local, err = standalone.Open(ctx, cfg, lopts); err != nil {
			return nil, fmt.Errorf("cloud: %w", err)
		}
		s.log.Info("OpenStack mode ready: the appliances run on this machine", "neutron", clients.network.ResourceBaseURL())
		return s, nil
	}
	return s, s.openNova(cfg, clients, src, opts)
}

// openNova makes the orchestrator over Neutron and Nova.
func (s *System) openNova(cfg *config.Config, c *clients, src intake.Source, opts Options) error {
	network, err := neutron.New(c.network, neutron.Options{ManagementSubnetID: cfg.ManagementSubnetID, Logger: s.log})
	if err != nil {
		return fmt.Errorf("cloud: %w", err)
	}
	compute, err := nova.New(c.compute, nova.Options{Logger: s.log})
	if err != nil {
		return fmt.Errorf("cloud: %w", err)
	}
	s.orch, err = orchestrator.New(cfg, orchestrator.Deps{Network: network, Compute: compute, Source: src,
		Logger: s.log, LogLevel: opts.LogLevel})
	if err != nil {
		return fmt.Errorf("cloud: %w", err)
	}
	s.log.Info("OpenStack mode ready: the appliances are Nova servers", "neutron", c.network.ResourceBaseURL(),
		"nova", c.compute.ResourceBaseURL(), "image", cfg.Router.ImageUUID, "flavor", cfg.Router.InstanceFlavor)
	return nil
}

// Orchestrator returns the orchestrator.
func (s *System) Orchestrator() *orchestrator.Orchestrator {
	if s.local != nil {
		return s.local.Orchestrator()
	}
	return s.orch
}

// Local returns the appliances of this machine (nil with Nova).
func (s *System) Local() *standalone.System { return s.local }

// Start starts the orchestrator.
func (s *System) Start(ctx context.Context) error {
	if s.local != nil {
		return s.local.Start(ctx)
	}
	return s.orch.Start(ctx)
}

// Stop stops the orchestrator, finishing the work under way until ctx
// ends. The appliances keep running.
func (s *System) Stop(ctx context.Context) error {
	if s.local != nil {
		return s.local.Stop(ctx)
	}
	return s.orch.Stop(ctx)
}

// Run runs the orchestrator until ctx ends or a part of it fails for
// good, then stops it within [DEFAULT] shutdown_timeout.
func (s *System) Run(ctx context.Context) error {
	if s.local != nil {
		return s.local.Run(ctx)
	}
	return s.orch.Run(ctx)
}

// clients are the service clients of the cloud.
type clients struct {
	network *gophercloud.ServiceClient
	compute *gophercloud.ServiceClient // nil with compute_provider local
}
