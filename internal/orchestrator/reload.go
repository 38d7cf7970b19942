package orchestrator

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/mgmt"
	"github.com/astara-go/astara/internal/worker"
)

// restartOnly lists the options a config-reload cannot change in a
// running orchestrator: reloaded, they take effect at the next start.
var restartOnly = []struct {
	name string
	get  func(*config.Config) any
}{
	{"[DEFAULT] host", func(c *config.Config) any { return c.Host }},
	{"[DEFAULT] state_dir", func(c *config.Config) any { return c.StateDir }},
	{"[DEFAULT] management_network_id", func(c *config.Config) any { return c.ManagementNetworkID }},
	{"[DEFAULT] management_subnet_id", func(c *config.Config) any { return c.ManagementSubnetID }},
	{"[DEFAULT] management_prefix", func(c *config.Config) any { return c.ManagementPrefix }},
	{"[DEFAULT] management_address", func(c *config.Config) any { return c.ManagementAddress }},
	{"[DEFAULT] num_worker_processes", func(c *config.Config) any { return c.NumWorkerProcesses }},
	{"[DEFAULT] num_worker_threads", func(c *config.Config) any { return c.NumWorkerThreads }},
	{"[DEFAULT] worker_queue_size", func(c *config.Config) any { return c.WorkerQueueSize }},
	{"[DEFAULT] resource_history", func(c *config.Config) any { return c.ResourceHistory }},
	{"[DEFAULT] deleted_memory", func(c *config.Config) any { return c.DeletedMemory }},
	{"[DEFAULT] enabled_drivers", func(c *config.Config) any { return c.EnabledDrivers }},
	{"[DEFAULT] api_listen", func(c *config.Config) any { return c.APIListen }},
	{"[DEFAULT] api_port", func(c *config.Config) any { return c.APIPort }},
	{"[DEFAULT] alive_timeout", func(c *config.Config) any { return c.AliveTimeout }},
	{"[DEFAULT] config_timeout", func(c *config.Config) any { return c.ConfigTimeout }},
	{"[DEFAULT] transport_url", func(c *config.Config) any { return c.TransportURL }},
	{"[DEFAULT] amqp_url", func(c *config.Config) any { return c.AMQPURL }},
	{"[DEFAULT] neutron_control_exchange", func(c *config.Config) any { return c.NeutronControlExchange }},
	{"[oslo_messaging_notifications]", func(c *config.Config) any { return c.Notifications }},
	{"[oslo_messaging_rabbit]", func(c *config.Config) any { return c.Rabbit }},
	{"[router] mgt_service_port", func(c *config.Config) any { return c.Router.MgtServicePort }},
	{"[router] ipsec_vpn", func(c *config.Config) any { return c.Router.IPsecVPN }},
	{"[astara_appliance] tls_*", func(c *config.Config) any {
		a := c.Appliance
		return [4]string{a.TLSCAFile, a.TLSCertFile, a.TLSKeyFile, a.TLSServerName}
	}},
}

// newManagersOnly lists the options that reach the instance managers of
// the resources managed from then on: a manager keeps the configuration it
// was created with until the orchestrator restarts.
var newManagersOnly = []struct {
	name string
	get  func(*config.Config) any
}{
	{"[router] image_uuid", func(c *config.Config) any { return c.Router.ImageUUID }},
	{"[router] instance_flavor", func(c *config.Config) any { return c.Router.InstanceFlavor }},
	{"[DEFAULT] asn", func(c *config.Config) any { return c.ASN }},
	{"[DEFAULT] neighbor_asn", func(c *config.Config) any { return c.NeighborASN }},
	{"[DEFAULT] astara_metadata_port", func(c *config.Config) any { return c.AstaraMetadataPort }},
	{"[DEFAULT] provider_rules_path", func(c *config.Config) any { return c.ProviderRulesPath }},
	{"[DEFAULT] max_retries", func(c *config.Config) any { return c.MaxRetries }},
	{"[DEFAULT] hotplug_timeout", func(c *config.Config) any { return c.HotplugTimeout }},
}

// reload carries out config-reload: it re-reads the configuration files
// and applies what can change at run time. The state machines' options
// (thresholds, cooldown, timeouts, retry delays, queue warning) apply to
// every resource, as do health_check_period, [api] auth_token and debug;
// image, flavor, ASNs and the other instance options apply to resources
// managed from now on. Anything invalid changes nothing.
func (o *Orchestrator) reload(ctx context.Context) (worker.Config, error) {
	next, err := o.load()
	if err != nil {
		return worker.Config{}, fmt.Errorf("config-reload: %w (the configuration in effect is unchanged)", err)
	}
	cur := o.Config()
	wc := workerConfig(next)
	if err := wc.Validate(); err != nil {
		return worker.Config{}, fmt.Errorf("config-reload: %w (the configuration in effect is unchanged)", err)
	}
	if err := mgmt.CheckBinding(cur.APIAddress(), next.API.AuthToken); err != nil {
		return worker.Config{}, fmt.Errorf("config-reload: %w (the configuration in effect is unchanged)", err)
	}
	f, err := o.newFactory(next)
	if err != nil {
		return worker.Config{}, fmt.Errorf("config-reload: %w (the configuration in effect is unchanged)", err)
	}

	// Everything is valid: apply.
	if err := o.api.SetToken(next.API.AuthToken); err != nil {
		return worker.Config{}, fmt.Errorf("config-reload: %w", err)
	}
	o.inspector.SetPeriod(next.HealthCheckPeriod)
	o.factory.Store(f)
	o.setLevel(next)
	for _, opt := range restartOnly {
		if a, b := opt.get(cur), opt.get(next); !reflect.DeepEqual(a, b) {
			o.log.Warn("config-reload: option changed; it takes effect at the next restart", "option", opt.name)
		}
	}
	for _, opt := range newManagersOnly {
		if a, b := opt.get(cur), opt.get(next); !reflect.DeepEqual(a, b) {
			o.log.Warn("config-reload: option changed; it applies to the resources managed from now on, "+
				"and to all after a restart", "option", opt.name)
		}
	}
	o.cfgMu.Lock()
	o.cfg = next.Clone()
	o.cfgMu.Unlock()
	o.log.Info("configuration reloaded", "files", next.Files, "health_check_period", next.HealthCheckPeriod,
		"warnings", len(next.Warnings))
	return wc, nil
}

// load re-reads the configuration.
func (o *Orchestrator) load() (*config.Config, error) {
	if o.deps.Load != nil {
		return o.deps.Load()
	}
	cur := o.Config()
	return config.Load(slices.Clone(cur.Files), o.log)
}
