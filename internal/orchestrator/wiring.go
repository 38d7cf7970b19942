package orchestrator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/instance"
	"github.com/astara-go/astara/internal/mgmt"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/worker"
)

// Check validates what an orchestrator needs of cfg, without starting
// anything: the management network, the management API's token rule, the
// provider rules file, the appliance client's TLS files and the broker
// URLs. The management address may come from the network provider, so it
// is not required here (New requires it); in standalone mode, neither is
// the management network (standalone mode makes it).
func Check(cfg *config.Config) error {
	var errs []error
	if cfg.ManagementNetworkID == "" && !cfg.StandaloneMode() {
		errs = append(errs, errors.New("[DEFAULT] management_network_id: required"))
	}
	if err := mgmt.CheckBinding(cfg.APIAddress(), cfg.API.AuthToken); err != nil {
		errs = append(errs, err)
	}
	if _, err := loadLabels(cfg.ProviderRulesPath, nil); err != nil {
		errs = append(errs, err)
	}
	if c, err := newApplianceClient(cfg); err != nil {
		errs = append(errs, err)
	} else {
		c.Close()
	}
	if _, err := cfg.BrokerURLs(); err != nil {
		errs = append(errs, fmt.Errorf("[DEFAULT] transport_url: %w", err))
	}
	if err := workerConfig(cfg).Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// workerConfig returns the workers' configuration.
func workerConfig(cfg *config.Config) worker.Config {
	return worker.Config{
		Threads:        cfg.NumWorkerThreads,
		QueueSize:      cfg.WorkerQueueSize,
		QueueWarning:   cfg.QueueWarningThreshold,
		History:        cfg.ResourceHistory,
		Deleted:        cfg.DeletedMemory,
		ResolveTimeout: cfg.ResolveTimeout,
		ResolveTTL:     cfg.ResolveTTL,
		State: state.Config{
			RebootErrorThreshold: cfg.RebootErrorThreshold,
			ErrorStateCooldown:   cfg.ErrorStateCooldown,
			BootTimeout:          cfg.BootTimeout,
			BootCheckInterval:    cfg.BootCheckInterval,
			RetryDelay:           cfg.RetryDelay,
			MaxRetryDelay:        cfg.MaxRetryDelay,
			MaxReplugs:           cfg.MaxReplugs,
		},
	}
}

// routerConfig returns the router driver's configuration.
func routerConfig(cfg *config.Config, mgmtAddr netip.Addr, log *slog.Logger) (router.Config, error) {
	labels, err := loadLabels(cfg.ProviderRulesPath, log)
	if err != nil {
		return router.Config{}, err
	}
	return router.Config{
		ManagementNetworkID: cfg.ManagementNetworkID,
		ASN:                 cfg.ASN,
		NeighborASN:         cfg.NeighborASN,
		Orchestrator:        model.Orchestrator{Address: mgmtAddr, MetadataPort: cfg.AstaraMetadataPort, Host: cfg.Host},
		Labels:              labels,
	}, nil
}

// instanceConfig returns the instance managers' configuration.
func instanceConfig(cfg *config.Config, log *slog.Logger) instance.Config {
	return instance.Config{
		ImageID:        cfg.Router.ImageUUID,
		FlavorID:       cfg.Router.InstanceFlavor,
		AliveRetries:   cfg.MaxRetries,
		ConfigRetries:  cfg.MaxRetries,
		RetryDelay:     cfg.RetryDelay,
		HotplugTimeout: cfg.HotplugTimeout,
		DeleteTimeout:  cfg.BootTimeout, // the original's boot_timeout bounded deletes
		Logger:         log,
	}
}

// newApplianceClient returns the client of the appliances' API.
func newApplianceClient(cfg *config.Config) (*client.Client, error) {
	opts := client.Options{Port: cfg.Router.MgtServicePort, AliveTimeout: cfg.AliveTimeout, ConfigTimeout: cfg.ConfigTimeout}
	a := cfg.Appliance
	if a.TLSCAFile != "" || a.TLSCertFile != "" {
		opts.TLS = &client.TLSOptions{CAFile: a.TLSCAFile, CertFile: a.TLSCertFile, KeyFile: a.TLSKeyFile, ServerName: a.TLSServerName}
	}
	c, err := client.New(opts)
	if err != nil {
		return nil, fmt.Errorf("[astara_appliance] tls_*: %w", err)
	}
	return c, nil
}

// providerRules is the part of provider_rules.json the orchestrator uses.
type providerRules struct {
	Labels map[string][]string `json:"labels"`
}

// loadLabels reads the labels of the provider rules file; a missing file
// means none (as in the original), a malformed one is an error.
func loadLabels(path string, log *slog.Logger) (map[string][]netip.Prefix, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if log != nil {
			log.Info("no provider rules file: no labels in router configurations", "provider_rules_path", path)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("[DEFAULT] provider_rules_path: %w", err)
	}
	var rules providerRules
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("[DEFAULT] provider_rules_path %s: %w", path, err)
	}
	labels := make(map[string][]netip.Prefix, len(rules.Labels))
	for name, cidrs := range rules.Labels {
		for _, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("[DEFAULT] provider_rules_path %s: label %q: %q is not a CIDR", path, name, c)
			}
			labels[name] = append(labels[name], p)
		}
	}
	return labels, nil
}

// resourceStatus is the status a resource in instance state st has in
// the network API, for the management API.
func resourceStatus(r event.Resource, st state.InstanceState) (string, bool) {
	if r.Driver != event.DriverRouter {
		return "", false
	}
	return router.Status(st)
}
