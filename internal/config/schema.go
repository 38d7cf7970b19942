package config

import (
	"net/netip"
	"time"
)

// options is every option, in the order of the sample. The table is never
// modified.
var options = schema{
	// Identity and state.
	strOpt(DefaultGroup, "host", func(c *Config) *string { return &c.Host },
		"The name of this orchestrator: the name of its AMQP notification queue "+
			"(astara.notifications.<host>), and the host in the orchestrator block of every appliance configuration.",
		sampleDefault("<the machine's host name>")),
	boolOpt(DefaultGroup, "debug", func(c *Config) *bool { return &c.Debug },
		"Log at debug level instead of info."),
	strOpt(DefaultGroup, "state_dir", func(c *Config) *string { return &c.StateDir },
		"The directory of the orchestrator's embedded database (debug modes, pending work such as accepted deletes). "+
			"Two orchestrators cannot share it. In standalone mode it also holds the network API's database (netapi/), "+
			"the appliances' instances (local/) and the certificates of the orchestrator and the appliances (pki/)."),
	secondsOpt(DefaultGroup, "shutdown_timeout", func(c *Config) *time.Duration { return &c.ShutdownTimeout }, 0,
		"How long a shutdown may take to finish the work under way. Work left is recorded in the state directory "+
			"and resumed at the next start; no accepted delete is lost."),

	// Management network.
	strOpt(DefaultGroup, "management_network_id", func(c *Config) *string { return &c.ManagementNetworkID },
		"The id of the network of the appliances' management ports. Required, except in standalone mode, "+
			"where it is the embedded network API's \"astara-management\" network (made, with an IPv6 SLAAC subnet on "+
			"management_prefix, if missing)."),
	strOpt(DefaultGroup, "management_subnet_id", func(c *Config) *string { return &c.ManagementSubnetID },
		"The id of the management network's subnet, where the orchestrator's own port takes its address "+
			"(used by the network providers)."),
	prefixOpt(DefaultGroup, "management_prefix", func(c *Config) *netip.Prefix { return &c.ManagementPrefix },
		"The management network's prefix: its length is given to appliances with their management address."),
	addrOpt(DefaultGroup, "management_address", func(c *Config) *netip.Addr { return &c.ManagementAddress },
		"The orchestrator's address on the management network, where appliances send metadata requests. "+
			"Empty: the network provider's local service port decides (the original always took it from that port); "+
			"in standalone mode, address 1 of management_prefix, on the management bridge."),

	// Workers.
	intOpt(DefaultGroup, "num_worker_processes", func(c *Config) *int { return &c.NumWorkerProcesses }, 1,
		"How many workers (shards) the tenants are spread over. Each runs num_worker_threads state machines at once."),
	intOpt(DefaultGroup, "num_worker_threads", func(c *Config) *int { return &c.NumWorkerThreads }, 1,
		"How many state machines each worker runs at once (goroutines)."),
	intOpt(DefaultGroup, "worker_queue_size", func(c *Config) *int { return &c.WorkerQueueSize }, 1,
		"How many events each worker queues before the event intake waits (back-pressure)."),
	intOpt(DefaultGroup, "queue_warning_threshold", func(c *Config) *int { return &c.QueueWarningThreshold }, 1,
		"Log a warning when a resource has more queued actions than this."),
	intOpt(DefaultGroup, "resource_history", func(c *Config) *int { return &c.ResourceHistory }, 0,
		"How many recent transitions are kept per resource, for the management API."),
	intOpt(DefaultGroup, "deleted_memory", func(c *Config) *int { return &c.DeletedMemory }, 0,
		"How many deleted resource ids each worker remembers, so that late events do not bring them back."),
	secondsOpt(DefaultGroup, "resolve_timeout", func(c *Config) *time.Duration { return &c.ResolveTimeout }, time.Millisecond,
		"How long resolving an event that names only a tenant (port, subnet, floating IP) to its routers may take."),
	secondsOpt(DefaultGroup, "resolve_ttl", func(c *Config) *time.Duration { return &c.ResolveTTL }, 0,
		"How long a tenant's resolved routers are trusted before events naming only the tenant resolve them again."),

	// State machines and instances.
	intOpt(DefaultGroup, "reboot_error_threshold", func(c *Config) *int { return &c.RebootErrorThreshold }, 1,
		"How many boots may fail in a row before the resource goes to ERROR."),
	secondsOpt(DefaultGroup, "error_state_cooldown", func(c *Config) *time.Duration { return &c.ErrorStateCooldown }, 0,
		"How long a resource in ERROR holds its events (polls are dropped) before it retries. "+
			"Operator commands (update, rebuild) do not wait.", standaloneDefault("5")),
	secondsOpt(DefaultGroup, "boot_timeout", func(c *Config) *time.Duration { return &c.BootTimeout }, time.Millisecond,
		"How long an instance may take to boot (answer) before it is replaced, and how long deleting one may take.",
		standaloneDefault("60")),
	secondsOpt(DefaultGroup, "boot_check_interval", func(c *Config) *time.Duration { return &c.BootCheckInterval }, time.Millisecond,
		"How often a booting instance is checked (a namespace boots in about 0.1 s, a VM in tens of seconds).",
		standaloneDefault("0.05")),
	secondsOpt(DefaultGroup, "retry_delay", func(c *Config) *time.Duration { return &c.RetryDelay }, time.Millisecond,
		"The delay between retries of a configuration push, and the first delay before retrying a failed step "+
			"(doubled on each failure, up to max_retry_delay).", standaloneDefault("0.2")),
	secondsOpt(DefaultGroup, "max_retry_delay", func(c *Config) *time.Duration { return &c.MaxRetryDelay }, time.Millisecond,
		"The longest delay before retrying a failed step.", standaloneDefault("5")),
	intOpt(DefaultGroup, "max_replugs", func(c *Config) *int { return &c.MaxReplugs }, 1,
		"How many replugs in a row may leave an instance's interfaces mismatched before it is replaced."),
	intOpt(DefaultGroup, "max_retries", func(c *Config) *int { return &c.MaxRetries }, 1,
		"How many liveness probes decide that an appliance is dead, and how many times a configuration is pushed."),
	secondsOpt(DefaultGroup, "alive_timeout", func(c *Config) *time.Duration { return &c.AliveTimeout }, time.Millisecond,
		"The timeout of one liveness probe of an appliance."),
	secondsOpt(DefaultGroup, "config_timeout", func(c *Config) *time.Duration { return &c.ConfigTimeout }, time.Millisecond,
		"The timeout of one configuration push to an appliance."),
	secondsOpt(DefaultGroup, "hotplug_timeout", func(c *Config) *time.Duration { return &c.HotplugTimeout }, time.Millisecond,
		"How long to wait for an appliance to see interfaces attached or detached."),
	secondsOpt(DefaultGroup, "health_check_period", func(c *Config) *time.Duration { return &c.HealthCheckPeriod }, time.Millisecond,
		"How often every managed resource is polled (with 10% jitter). A resource not seen for two periods is shown as stale. "+
			"(In standalone mode an appliance whose agent exits is polled at once.)", standaloneDefault("10")),

	// Router configuration.
	asnOpt(DefaultGroup, "asn", func(c *Config) *uint32 { return &c.ASN },
		"The BGP autonomous system number of the appliances."),
	asnOpt(DefaultGroup, "neighbor_asn", func(c *Config) *uint32 { return &c.NeighborASN },
		"The BGP autonomous system number of the appliances' neighbours."),
	portOpt(DefaultGroup, "astara_metadata_port", func(c *Config) *uint16 { return &c.AstaraMetadataPort },
		"The port of the orchestrator's metadata proxy, given to appliances."),
	strOpt(DefaultGroup, "provider_rules_path", func(c *Config) *string { return &c.ProviderRulesPath },
		"A JSON file whose \"labels\" (name → list of CIDRs) go into every router configuration. "+
			"A missing file means no labels."),
	listOpt(DefaultGroup, "enabled_drivers", func(c *Config) *[]string { return &c.EnabledDrivers },
		"The resource drivers to manage. Available: router."),

	// Management API.
	strOpt(DefaultGroup, "api_listen", func(c *Config) *string { return &c.APIListen },
		"The address the management API listens on. Without [api] auth_token it must be a loopback address.",
		standaloneDefault("127.0.0.1")),
	numOpt(DefaultGroup, "api_port", kindPort, func(c *Config) *uint16 { return &c.APIPort }, 0, 65535,
		"The port of the management API (0: any free port).", deprecatedName(DefaultGroup, "rug_api_port")),
	strOpt("api", "auth_token", func(c *Config) *string { return &c.API.AuthToken },
		"The bearer token every management API request that changes something must carry "+
			"(Authorization: Bearer <token>); at least 16 characters. Reads (GET) need none. "+
			"Without a token, the API must listen on a loopback address.", secret()),

	// Messaging.
	strOpt(DefaultGroup, "transport_url", func(c *Config) *string { return &c.TransportURL },
		"The broker of Neutron's notifications, as oslo.messaging writes it: "+
			"rabbit://user:pass@host:port[,user:pass@host:port]/vhost.", secret()),
	strOpt(DefaultGroup, "amqp_url", func(c *Config) *string { return &c.AMQPURL },
		"Deprecated: use transport_url. An AMQP URL (amqp://user:pass@host:port/vhost), used when transport_url is not set.",
		secret()),
	strOpt(DefaultGroup, "neutron_control_exchange", func(c *Config) *string { return &c.NeutronControlExchange },
		"The exchange of Neutron's notifications."),
	strOpt("oslo_messaging_notifications", "transport_url", func(c *Config) *string { return &c.Notifications.TransportURL },
		"The broker of notifications, when not [DEFAULT] transport_url.", secret()),
	listOpt("oslo_messaging_notifications", "topics", func(c *Config) *[]string { return &c.Notifications.Topics },
		"The notification topics consumed (their info priority: <topic>.info).",
		deprecatedName("rpc_notifier2", "topics"), deprecatedName(DefaultGroup, "notification_topics")),
	boolOpt("oslo_messaging_rabbit", "amqp_durable_queues", func(c *Config) *bool { return &c.Rabbit.AMQPDurableQueues },
		"Whether Neutron declares its exchanges durable: it must match Neutron's setting."),
	boolOpt("oslo_messaging_rabbit", "amqp_auto_delete", func(c *Config) *bool { return &c.Rabbit.AMQPAutoDelete },
		"Whether Neutron declares its exchanges auto-deleted: it must match Neutron's setting."),
	boolOpt("oslo_messaging_rabbit", "ssl", func(c *Config) *bool { return &c.Rabbit.SSL },
		"Connect to the broker with TLS (amqps).", deprecatedName("oslo_messaging_rabbit", "rabbit_use_ssl")),
	strOpt("oslo_messaging_rabbit", "ssl_ca_file", func(c *Config) *string { return &c.Rabbit.SSLCAFile },
		"The CA certificates (PEM) the broker's certificate is checked against; empty: the system's.",
		deprecatedName("oslo_messaging_rabbit", "kombu_ssl_ca_certs")),

	// Router driver.
	strOpt("router", "image_uuid", func(c *Config) *string { return &c.Router.ImageUUID },
		"The image routers' instances boot.", deprecatedName(DefaultGroup, "router_image_uuid")),
	strOpt("router", "instance_flavor", func(c *Config) *string { return &c.Router.InstanceFlavor },
		"The flavor routers' instances boot with.", deprecatedName(DefaultGroup, "router_instance_flavor")),
	portOpt("router", "mgt_service_port", func(c *Config) *uint16 { return &c.Router.MgtServicePort },
		"The port of the appliance API on routers' instances.", deprecatedName(DefaultGroup, "akanda_mgt_service_port")),
	boolOpt("router", "ipsec_vpn", func(c *Config) *bool { return &c.Router.IPsecVPN },
		"Handle the VPNaaS (IPsec) notifications."),

	// Appliances.
	secondsOpt("astara_appliance", "max_sleep", func(c *Config) *time.Duration { return &c.Appliance.MaxSleep }, time.Millisecond,
		"The longest delay between retries of the start-up listing of existing resources."),
	strOpt("astara_appliance", "tls_ca_file", func(c *Config) *string { return &c.Appliance.TLSCAFile },
		"Talk to appliances over HTTPS, checking their certificates against these CA certificates (PEM). "+
			"Empty, and no client certificate: plain HTTP."),
	strOpt("astara_appliance", "tls_cert_file", func(c *Config) *string { return &c.Appliance.TLSCertFile },
		"The client certificate (PEM) sent to appliances that require one; with tls_key_file."),
	strOpt("astara_appliance", "tls_key_file", func(c *Config) *string { return &c.Appliance.TLSKeyFile },
		"The key (PEM) of tls_cert_file."),
	strOpt("astara_appliance", "tls_server_name", func(c *Config) *string { return &c.Appliance.TLSServerName },
		"The name appliances' certificates are checked against; empty: their management address."),

	// The OpenStack cloud.
	choiceOpt(DefaultGroup, "compute_provider", func(c *Config) *string { return &c.ComputeProvider },
		[]string{ComputeNova, ComputeLocal},
		"Where the appliances run in OpenStack mode: nova (virtual machines booted from [router] image_uuid), or "+
			"local (network namespaces of this machine, as in standalone mode, plugged into the bridges of "+
			"the [standalone] options). Standalone mode always runs them locally.", standaloneDefault(ComputeLocal)),
	keystoneOpt("auth_type", func(k *Keystone) *string { return &k.AuthType },
		"How to authenticate: password (or v3password), v3applicationcredential, or none (no Keystone: requests "+
			"carry identity headers, as Neutron's noauth setups and test setups accept; needs the endpoint_override "+
			"options). Empty: v3applicationcredential when application_credential_* is set, else password."),
	keystoneOpt("auth_url", func(k *Keystone) *string { return &k.AuthURL },
		"Keystone's URL (v3), e.g. http://keystone:5000/v3. Any option of this group means OpenStack mode."),
	keystoneOpt("username", func(k *Keystone) *string { return &k.Username }, "The user (password auth)."),
	keystoneOpt("user_id", func(k *Keystone) *string { return &k.UserID }, "The user's id, instead of username."),
	keystoneOpt("password", func(k *Keystone) *string { return &k.Password }, "The user's password.", secret()),
	keystoneOpt("user_domain_name", func(k *Keystone) *string { return &k.UserDomainName }, "The user's domain."),
	keystoneOpt("user_domain_id", func(k *Keystone) *string { return &k.UserDomainID }, "The user's domain id, instead of its name."),
	keystoneOpt("project_name", func(k *Keystone) *string { return &k.ProjectName },
		"The project the token is scoped to (the service project; it owns the appliances' ports and servers)."),
	keystoneOpt("project_id", func(k *Keystone) *string { return &k.ProjectID },
		"The project's id, instead of project_name. With auth_type none: the project the requests claim "+
			"(default astara).", deprecatedName(keystoneGroup, "tenant_id")),
	keystoneOpt("project_domain_name", func(k *Keystone) *string { return &k.ProjectDomainName }, "The project's domain."),
	keystoneOpt("project_domain_id", func(k *Keystone) *string { return &k.ProjectDomainID }, "The project's domain id, instead of its name."),
	keystoneOpt("application_credential_id", func(k *Keystone) *string { return &k.ApplicationCredentialID },
		"An application credential's id (v3applicationcredential auth)."),
	keystoneOpt("application_credential_name", func(k *Keystone) *string { return &k.ApplicationCredentialName },
		"An application credential's name, with username or user_id, instead of its id."),
	keystoneOpt("application_credential_secret", func(k *Keystone) *string { return &k.ApplicationCredentialSecret },
		"The application credential's secret.", secret()),
	keystoneOpt("region_name", func(k *Keystone) *string { return &k.RegionName },
		"The region of the endpoints taken from the catalog; empty: any.", deprecatedName(DefaultGroup, "auth_region")),
	keystoneOpt("interface", func(k *Keystone) *string { return &k.Interface },
		"The endpoint interface taken from the catalog: public, internal or admin.", deprecatedName(DefaultGroup, "endpoint_type")),
	keystoneOpt("cafile", func(k *Keystone) *string { return &k.CAFile },
		"CA certificates (PEM) to check Keystone's and the services' HTTPS certificates against; empty: the system's."),
	boolOpt(keystoneGroup, "insecure", func(c *Config) *bool { return &c.Keystone.Insecure },
		"Do not check HTTPS certificates (test setups only)."),
	keystoneOpt("cloud", func(k *Keystone) *string { return &k.Cloud },
		"A cloud of clouds.yaml to take the authentication from, instead of the options above (which, when set, "+
			"override it)."),
	keystoneOpt("clouds_file", func(k *Keystone) *string { return &k.CloudsFile },
		"The clouds.yaml to read; empty: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, "+
			"/etc/openstack/clouds.yaml."),
	strOpt("neutron", "endpoint_override", func(c *Config) *string { return &c.Neutron.EndpointOverride },
		"Neutron's URL, instead of the catalog's (required with auth_type none), e.g. http://127.0.0.1:9696."),
	strOpt("nova", "endpoint_override", func(c *Config) *string { return &c.Nova.EndpointOverride },
		"Nova's compute API URL, instead of the catalog's (required with auth_type none and compute_provider nova)."),

	// Standalone mode.
	strOpt("standalone", "network_api_listen", func(c *Config) *string { return &c.Standalone.NetworkAPIListen },
		"Where the embedded network API (Neutron's v2.0 API, no authentication: keep it on loopback) listens, host:port."),
	strOpt("standalone", "management_bridge", func(c *Config) *string { return &c.Standalone.ManagementBridge },
		"The management network's bridge on this machine, made if missing: the appliances' management ports "+
			"are plugged into it and the orchestrator's management address is on it."),
	strOpt("standalone", "appliance_binary", func(c *Config) *string { return &c.Standalone.ApplianceBinary },
		"The astara-appliance agent run in each appliance's network namespace. Empty: astara-appliance next to "+
			"astara-orchestrator, else in PATH."),
	listOpt("standalone", "external_interfaces", func(c *Config) *[]string { return &c.Standalone.ExternalInterfaces },
		"Host interfaces to plug into the bridges of networks, as <network name or id>:<interface>, e.g. "+
			"public:eth1, so that an external network reaches beyond this machine. Other networks' bridges stay "+
			"local. A network named here that does not exist yet is found at the next start."),
	boolOpt("standalone", "appliance_tls", func(c *Config) *bool { return &c.Standalone.ApplianceTLS },
		"Mutual TLS between the orchestrator and the appliances' API, with a CA and certificates made once under "+
			"state_dir/pki. Off: plain HTTP on the management bridge."),
	boolOpt("standalone", "publish_notifications", func(c *Config) *bool { return &c.Standalone.PublishNotifications },
		"Also publish the embedded network API's notifications to the broker of [DEFAULT] transport_url, "+
			"on neutron_control_exchange, as Neutron does (for other consumers); the orchestrator itself "+
			"takes them in process."),
}

// unused are options of the original Astara that this orchestrator does
// not use (yet), by group; "" names the whole group. Finding one is logged,
// not warned about. The value says why.
var unused = map[string]map[string]string{
	DefaultGroup: {
		"admin_user": "keystone", "admin_password": "keystone", "admin_tenant_name": "keystone", "auth_url": "keystone",
		"auth_strategy":  "keystone",
		"ssh_public_key": "the compute providers", "instance_provider": "the compute providers",
		"astara_boot_command": "the compute providers", "astara_mgt_service_port": "unused in the original too",
		"default_instance_flavor": "unused in the original too", "interface_driver": "the network providers",
		"ovs_integration_bridge": "the network providers", "ovs_use_veth": "the network providers",
		"network_device_mtu": "the network providers", "neutron_port_security_extension_enabled": "the network providers",
		"legacy_fallback_mode": "retired", "hash_partition_exponent": "clustering",
		"incoming_notifications_exchange": "unused in the original too", "rpc_exchange": "unused in the original too",
		"router_id": "astara-debug-router", "ignored_router_directory": "unused in the original too",
		"nova_metadata_ip": "the metadata proxy", "nova_metadata_port": "the metadata proxy",
		"neutron_metadata_proxy_shared_secret": "the metadata proxy", "quantum_metadata_proxy_shared_secret": "the metadata proxy",
		"enable_byonf": "bring-your-own network function", "control_exchange": "neutron_control_exchange names the exchange",
		"rpc_backend": "transport_url", "verbose": "oslo.log; use debug", "log_file": "oslo.log; logs go to stderr",
		"log_dir": "oslo.log; logs go to stderr", "use_syslog": "oslo.log; logs go to stderr",
		"use_stderr": "oslo.log; logs go to stderr", "logging_context_format_string": "oslo.log",
		"default_log_levels": "oslo.log",
	},
	"agent":              {"": "the Neutron agent report (the network providers)"},
	"ceilometer":         {"": "metering is not implemented"},
	"coordination":       {"": "clustering"},
	"loadbalancer":       {"": "the load-balancer driver"},
	"pez":                {"": "the hot-standby pool"},
	"database":           {"": "the embedded database replaced it (state_dir)"},
	"keystone_authtoken": {"": "keystonemiddleware's options (the orchestrator authenticates with those listed in the sample)"},
	"functional":         {"": "the original's functional tests"},
}

// keystoneOpt is a string option of [keystone_authtoken].
func keystoneOpt(name string, field func(*Keystone) *string, help string, mods ...mod) *option {
	return strOpt(keystoneGroup, name, func(c *Config) *string { return field(&c.Keystone) }, help, mods...)
}

// schema is a table of options.
type schema []*option

// lookup returns the option a group and name designate, and whether that
// is a deprecated name of it.
func (s schema) lookup(group, name string) (*option, bool) {
	for _, o := range s {
		if o.group == group && o.name == name {
			return o, false
		}
	}
	for _, o := range s {
		for _, d := range o.deprecated {
			if d.group == group && d.name == name {
				return o, true
			}
		}
	}
	return nil, false
}
