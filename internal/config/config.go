// Package config reads the orchestrator's configuration: oslo.config-style
// INI files, given with --config-file (repeatable; later files override
// earlier ones), with the original Astara option names, groups and
// defaults where they still mean something, and the options this
// implementation added.
//
// Values are parsed as oslo.config parses them: booleans true/false (also
// yes/no, on/off, 1/0, any case), lists comma-separated, multi-valued
// options repeated, durations in seconds. Deprecated names and groups are
// accepted with a warning; unknown options are logged and ignored; an
// invalid value is an error naming the file, group, option and value, and
// Load then returns no configuration at all.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultGroup is the group of options outside any section.
const DefaultGroup = "DEFAULT"

// DriverRouter names the router driver, the only one enabled_drivers
// accepts so far.
const DriverRouter = "router"

// Config is the orchestrator's configuration. Field comments give the
// option's group and name; see the sample (WriteSample) for their help.
type Config struct {
	// Files are the configuration files read, in order.
	Files []string
	// Warnings are what Load warned about: unknown options, deprecated
	// names, values ignored.
	Warnings []string
	// KeystoneOptions are the options given in [keystone_authtoken]: any
	// means an OpenStack cloud, none standalone mode (StandaloneMode).
	KeystoneOptions []string
	// set holds the options the files set (the others have their
	// default), by "[group] name".
	set map[string]bool

	Host                string        // [DEFAULT] host
	Debug               bool          // [DEFAULT] debug
	StateDir            string        // [DEFAULT] state_dir
	ShutdownTimeout     time.Duration // [DEFAULT] shutdown_timeout
	ManagementNetworkID string        // [DEFAULT] management_network_id
	ManagementSubnetID  string        // [DEFAULT] management_subnet_id
	ManagementPrefix    netip.Prefix  // [DEFAULT] management_prefix
	ManagementAddress   netip.Addr    // [DEFAULT] management_address

	NumWorkerProcesses    int           // [DEFAULT] num_worker_processes
	NumWorkerThreads      int           // [DEFAULT] num_worker_threads
	WorkerQueueSize       int           // [DEFAULT] worker_queue_size
	QueueWarningThreshold int           // [DEFAULT] queue_warning_threshold
	ResourceHistory       int           // [DEFAULT] resource_history
	DeletedMemory         int           // [DEFAULT] deleted_memory
	ResolveTimeout        time.Duration // [DEFAULT] resolve_timeout
	ResolveTTL            time.Duration // [DEFAULT] resolve_ttl

	RebootErrorThreshold int           // [DEFAULT] reboot_error_threshold
	ErrorStateCooldown   time.Duration // [DEFAULT] error_state_cooldown
	BootTimeout          time.Duration // [DEFAULT] boot_timeout
	BootCheckInterval    time.Duration // [DEFAULT] boot_check_interval
	RetryDelay           time.Duration // [DEFAULT] retry_delay
	MaxRetryDelay        time.Duration // [DEFAULT] max_retry_delay
	MaxReplugs           int           // [DEFAULT] max_replugs
	MaxRetries           int           // [DEFAULT] max_retries
	AliveTimeout         time.Duration // [DEFAULT] alive_timeout
	ConfigTimeout        time.Duration // [DEFAULT] config_timeout
	HotplugTimeout       time.Duration // [DEFAULT] hotplug_timeout
	HealthCheckPeriod    time.Duration // [DEFAULT] health_check_period

	ASN                uint32   // [DEFAULT] asn
	NeighborASN        uint32   // [DEFAULT] neighbor_asn
	AstaraMetadataPort uint16   // [DEFAULT] astara_metadata_port
	ProviderRulesPath  string   // [DEFAULT] provider_rules_path
	EnabledDrivers     []string // [DEFAULT] enabled_drivers

	APIListen string // [DEFAULT] api_listen
	APIPort   uint16 // [DEFAULT] api_port

	TransportURL           string // [DEFAULT] transport_url
	AMQPURL                string // [DEFAULT] amqp_url (deprecated)
	NeutronControlExchange string // [DEFAULT] neutron_control_exchange

	ComputeProvider string // [DEFAULT] compute_provider

	Keystone      Keystone
	Neutron       Endpoint // [neutron]
	Nova          Endpoint // [nova]
	API           API
	Router        Router
	Appliance     Appliance
	Rabbit        Rabbit
	Notifications Notifications
	Standalone    Standalone
}

// Standalone is the [standalone] group: standalone mode, where the
// orchestrator serves the network API itself and runs appliances in
// network namespaces of this machine.
type Standalone struct {
	NetworkAPIListen     string   // network_api_listen
	ManagementBridge     string   // management_bridge
	ApplianceBinary      string   // appliance_binary
	ExternalInterfaces   []string // external_interfaces: <network name or id>:<host interface>
	ApplianceTLS         bool     // appliance_tls
	PublishNotifications bool     // publish_notifications
}

// Compute providers ([DEFAULT] compute_provider).
const (
	ComputeNova  = "nova"
	ComputeLocal = "local"
)

// Keystone is the [keystone_authtoken] group: how the orchestrator
// authenticates to the OpenStack cloud, with keystoneauth's option names.
type Keystone struct {
	AuthType                    string // auth_type: password, v3password, v3applicationcredential, none
	AuthURL                     string // auth_url
	Username                    string // username
	UserID                      string // user_id
	Password                    string // password
	UserDomainName              string // user_domain_name
	UserDomainID                string // user_domain_id
	ProjectName                 string // project_name
	ProjectID                   string // project_id
	ProjectDomainName           string // project_domain_name
	ProjectDomainID             string // project_domain_id
	ApplicationCredentialID     string // application_credential_id
	ApplicationCredentialName   string // application_credential_name
	ApplicationCredentialSecret string // application_credential_secret
	RegionName                  string // region_name
	Interface                   string // interface
	CAFile                      string // cafile
	Insecure                    bool   // insecure
	Cloud                       string // cloud
	CloudsFile                  string // clouds_file
}

// AuthNone is [keystone_authtoken] auth_type for a cloud without Keystone.
const AuthNone = "none"

// Endpoint is the [neutron] or [nova] group: a service's endpoint.
type Endpoint struct {
	EndpointOverride string // endpoint_override
}

// DefaultNetworkAPIListen is where standalone mode serves the network API
// by default: Neutron's port, on loopback.
const DefaultNetworkAPIListen = "127.0.0.1:9696"

// DefaultManagementBridge is the management network's bridge in
// standalone mode.
const DefaultManagementBridge = "astara-mgmt"

// API is the [api] group: the management API.
type API struct {
	// AuthToken is the bearer token required by every request that
	// changes something (auth_token).
	AuthToken string
}

// Router is the [router] group: the router driver.
type Router struct {
	ImageUUID      string // image_uuid
	InstanceFlavor string // instance_flavor
	MgtServicePort uint16 // mgt_service_port
	IPsecVPN       bool   // ipsec_vpn
}

// Appliance is the [astara_appliance] group: how the orchestrator talks to
// appliances.
type Appliance struct {
	MaxSleep      time.Duration // max_sleep
	TLSCAFile     string        // tls_ca_file
	TLSCertFile   string        // tls_cert_file
	TLSKeyFile    string        // tls_key_file
	TLSServerName string        // tls_server_name
}

// Rabbit is the [oslo_messaging_rabbit] group: the AMQP connection and
// the flags of Neutron's notification exchange.
type Rabbit struct {
	AMQPDurableQueues bool   // amqp_durable_queues
	AMQPAutoDelete    bool   // amqp_auto_delete
	SSL               bool   // ssl
	SSLCAFile         string // ssl_ca_file
}

// Notifications is the [oslo_messaging_notifications] group.
type Notifications struct {
	// TransportURL, when set, is the broker of notifications instead of
	// [DEFAULT] transport_url.
	TransportURL string
	// Topics are the notification topics consumed ("<topic>.info").
	Topics []string
}

// Default returns the configuration with every option at its default.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Host:                  host,
		StateDir:              "/var/lib/astara",
		ShutdownTimeout:       60 * time.Second,
		ManagementPrefix:      netip.MustParsePrefix("fdca:3ba5:a17a:acda::/64"),
		NumWorkerProcesses:    16,
		NumWorkerThreads:      4,
		WorkerQueueSize:       1024,
		QueueWarningThreshold: 100,
		ResourceHistory:       16,
		DeletedMemory:         50,
		ResolveTimeout:        10 * time.Second,
		ResolveTTL:            5 * time.Minute,

		RebootErrorThreshold: 5,
		ErrorStateCooldown:   30 * time.Second,
		BootTimeout:          600 * time.Second,
		BootCheckInterval:    5 * time.Second,
		RetryDelay:           time.Second,
		MaxRetryDelay:        time.Minute,
		MaxReplugs:           3,
		MaxRetries:           3,
		AliveTimeout:         3 * time.Second,
		ConfigTimeout:        90 * time.Second,
		HotplugTimeout:       10 * time.Second,
		HealthCheckPeriod:    60 * time.Second,

		ASN:                64512,
		NeighborASN:        64512,
		AstaraMetadataPort: 9697,
		ProviderRulesPath:  "/etc/astara/provider_rules.json",
		EnabledDrivers:     []string{DriverRouter},

		APIListen: "0.0.0.0",
		APIPort:   44250,

		NeutronControlExchange: "neutron",
		ComputeProvider:        ComputeNova,
		Keystone:               Keystone{UserDomainName: "Default", ProjectDomainName: "Default", Interface: "public"},

		Router:        Router{MgtServicePort: 5000},
		Appliance:     Appliance{MaxSleep: 15 * time.Second},
		Notifications: Notifications{Topics: []string{"notifications"}},
		Standalone:    Standalone{NetworkAPIListen: DefaultNetworkAPIListen, ManagementBridge: DefaultManagementBridge, ApplianceTLS: true},
	}
}

// StandaloneMode reports whether the configuration describes standalone
// mode: no OpenStack cloud ([keystone_authtoken]) is configured. Load then
// gives the options their standalone defaults (see the sample).
func (c *Config) StandaloneMode() bool { return len(c.KeystoneOptions) == 0 }

// IsSet reports whether the configuration files set the option [group]
// name (its current name or a deprecated one); otherwise it has its
// default.
func (c *Config) IsSet(group, name string) bool { return c.set[optName{group, name}.String()] }

// ExternalInterfaces parses [standalone] external_interfaces: the host
// interface to enslave to the bridge of each network, by network name or
// id.
func (c *Config) ExternalInterfaces() (map[string]string, error) {
	out := map[string]string{}
	for _, item := range c.Standalone.ExternalInterfaces {
		i := strings.LastIndexByte(item, ':')
		if i <= 0 || i == len(item)-1 {
			return nil, fmt.Errorf("%q is not <network name or id>:<host interface>", item)
		}
		network, dev := strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:])
		if network == "" || dev == "" || len(dev) > 15 || strings.ContainsAny(dev, "/: \t") {
			return nil, fmt.Errorf("%q: %q is not an interface name", item, dev)
		}
		if _, dup := out[network]; dup {
			return nil, fmt.Errorf("network %q is given twice", network)
		}
		out[network] = dev
	}
	return out, nil
}

// APIAddress returns the management API's listen address, host:port.
func (c *Config) APIAddress() string {
	return net.JoinHostPort(c.APIListen, fmt.Sprint(c.APIPort))
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	d := *c
	d.Files = slices.Clone(c.Files)
	d.Warnings = slices.Clone(c.Warnings)
	d.KeystoneOptions = slices.Clone(c.KeystoneOptions)
	d.set = maps.Clone(c.set)
	d.Standalone.ExternalInterfaces = slices.Clone(c.Standalone.ExternalInterfaces)
	d.EnabledDrivers = slices.Clone(c.EnabledDrivers)
	d.Notifications.Topics = slices.Clone(c.Notifications.Topics)
	return &d
}

// validate checks what no single option can: the relations between
// options. from says where an option was set, for the errors.
func (c *Config) validate(from func(optName) string) error {
	var errs []error
	bad := func(n optName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", from(n), n, fmt.Sprintf(format, args...)))
	}
	def := func(name string) optName { return optName{DefaultGroup, name} }
	if strings.TrimSpace(c.Host) == "" {
		bad(def("host"), "must not be empty")
	}
	if strings.TrimSpace(c.StateDir) == "" {
		bad(def("state_dir"), "must not be empty")
	}
	if strings.TrimSpace(c.APIListen) == "" {
		bad(def("api_listen"), "must not be empty (an IP address or host name)")
	}
	if c.MaxRetryDelay < c.RetryDelay {
		bad(def("max_retry_delay"), "%s seconds is shorter than retry_delay (%s seconds)",
			FormatSeconds(c.MaxRetryDelay), FormatSeconds(c.RetryDelay))
	}
	if len(c.EnabledDrivers) == 0 {
		bad(def("enabled_drivers"), "no driver enabled (available: %s)", DriverRouter)
	}
	for _, d := range c.EnabledDrivers {
		if d != DriverRouter {
			bad(def("enabled_drivers"), "driver %q is not available (available: %s)", d, DriverRouter)
		}
	}
	if t := c.API.AuthToken; t != "" && (len(t) < 16 || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
		bad(optName{"api", "auth_token"}, "must be at least 16 characters, without spaces or control characters")
	}
	if (c.Appliance.TLSCertFile == "") != (c.Appliance.TLSKeyFile == "") {
		bad(optName{"astara_appliance", "tls_cert_file"}, "tls_cert_file and tls_key_file go together")
	}
	if _, _, err := net.SplitHostPort(c.Standalone.NetworkAPIListen); err != nil {
		bad(optName{"standalone", "network_api_listen"}, "%q is not host:port", c.Standalone.NetworkAPIListen)
	}
	if _, err := c.ExternalInterfaces(); err != nil {
		bad(optName{"standalone", "external_interfaces"}, "%v", err)
	}
	if b := c.Standalone.ManagementBridge; b == "" || len(b) > 15 || strings.ContainsAny(b, "/: \t\n\x00") || b == "." || b == ".." {
		bad(optName{"standalone", "management_bridge"}, "%q is not an interface name (1 to 15 bytes, no '/', ':' or spaces)", b)
	}
	if c.StandaloneMode() && c.IsSet(DefaultGroup, "compute_provider") && c.ComputeProvider != ComputeLocal {
		bad(def("compute_provider"), "standalone mode (no [keystone_authtoken]) runs the appliances on this machine: only %s", ComputeLocal)
	}
	for _, n := range []struct {
		name, url string
	}{{"neutron", c.Neutron.EndpointOverride}, {"nova", c.Nova.EndpointOverride}} {
		if n.url == "" {
			continue
		}
		if u, err := url.Parse(n.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(optName{n.name, "endpoint_override"}, "%q is not an http(s) URL", n.url)
		}
	}
	if _, err := c.BrokerURLs(); err != nil {
		n := def("transport_url")
		if c.Notifications.TransportURL != "" {
			n = optName{"oslo_messaging_notifications", "transport_url"}
		} else if c.TransportURL == "" {
			n = def("amqp_url")
		}
		bad(n, "%v", err)
	}
	return errors.Join(errs...)
}
