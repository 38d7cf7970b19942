package config

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// write writes a configuration file in the test's directory.
func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// logs returns a logger and what it logged.
func logs() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func load(t *testing.T, files ...string) *Config {
	t.Helper()
	c, err := Load(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// same compares configurations but for the files read, the warnings and
// what the files set.
func same(a, b *Config) bool {
	a, b = a.Clone(), b.Clone()
	a.Files, b.Files, a.Warnings, b.Warnings = nil, nil, nil, nil
	a.KeystoneOptions, b.KeystoneOptions, a.set, b.set = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

// standaloneDefaults is the configuration without any file: the defaults
// of standalone mode.
func standaloneDefaults(t *testing.T) *Config {
	t.Helper()
	c, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keystone is a file that configures an OpenStack cloud: not standalone.
const keystone = "[keystone_authtoken]\nauth_url = http://keystone:5000/v3\n"

// cloudDefaults is the configuration of keystone: the defaults, with its
// auth_url.
func cloudDefaults() *Config {
	c := Default()
	c.Keystone.AuthURL = "http://keystone:5000/v3"
	return c
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	c := load(t, write(t, "empty.ini", "# nothing\n[DEFAULT]\n"))
	if !same(c, standaloneDefaults(t)) || !c.StandaloneMode() {
		t.Errorf("config of an empty file:\n%+v\nwant the standalone defaults\n%+v", c, standaloneDefaults(t))
	}
	if c = load(t, write(t, "cloud.ini", keystone)); !same(c, cloudDefaults()) || c.StandaloneMode() {
		t.Errorf("config of a cloud:\n%+v\nwant the defaults\n%+v", c, cloudDefaults())
	}
	if !slices.Equal(c.Files, c.Files[:1]) || len(c.Warnings) != 0 {
		t.Errorf("files %v, warnings %v", c.Files, c.Warnings)
	}
	// The original's defaults.
	d := Default()
	if d.HealthCheckPeriod != 60*time.Second || d.RebootErrorThreshold != 5 || d.ErrorStateCooldown != 30*time.Second ||
		d.BootTimeout != 600*time.Second || d.AliveTimeout != 3*time.Second || d.ConfigTimeout != 90*time.Second ||
		d.MaxRetries != 3 || d.RetryDelay != time.Second || d.HotplugTimeout != 10*time.Second ||
		d.QueueWarningThreshold != 100 || d.NumWorkerProcesses != 16 || d.NumWorkerThreads != 4 ||
		d.ASN != 64512 || d.NeighborASN != 64512 || d.AstaraMetadataPort != 9697 || d.APIPort != 44250 ||
		d.APIListen != "0.0.0.0" || d.Router.MgtServicePort != 5000 || d.Appliance.MaxSleep != 15*time.Second ||
		d.ManagementPrefix != netip.MustParsePrefix("fdca:3ba5:a17a:acda::/64") || d.NeutronControlExchange != "neutron" ||
		!slices.Equal(d.EnabledDrivers, []string{"router"}) || d.Host == "" {
		t.Errorf("defaults differ from the original's: %+v", d)
	}
}

func TestEveryType(t *testing.T) {
	c := load(t, write(t, "all.ini", `
[DEFAULT]
host = node-7
debug = True
management_network_id = "mgt-net"
management_prefix = fdca:3ba5:a17a:acda::/64
management_address = fdca:3ba5:a17a:acda::1
num_worker_threads = 8
health_check_period = 0.5
error_state_cooldown: 120
enabled_drivers = [ router ]
asn = 4200000000
api_port = 8080
transport_url = rabbit://u:p#ss@rabbit:5672/
provider_rules_path = /etc/astara/rules.json  # not a comment

[router]
image_uuid = 'img-1'
ipsec_vpn = 1

[oslo_messaging_rabbit]
ssl = yes
amqp_durable_queues = OFF

[oslo_messaging_notifications]
topics = notifications, other ,
`+keystone))
	want := cloudDefaults()
	want.Host, want.Debug, want.ManagementNetworkID = "node-7", true, "mgt-net"
	want.ManagementAddress = netip.MustParseAddr("fdca:3ba5:a17a:acda::1")
	want.NumWorkerThreads, want.HealthCheckPeriod, want.ErrorStateCooldown = 8, 500*time.Millisecond, 2*time.Minute
	want.ASN, want.APIPort = 4200000000, 8080
	want.TransportURL = "rabbit://u:p#ss@rabbit:5672/"
	want.ProviderRulesPath = "/etc/astara/rules.json  # not a comment"
	want.Router.ImageUUID, want.Router.IPsecVPN = "img-1", true
	want.Rabbit.SSL = true
	want.Notifications.Topics = []string{"notifications", "other"}
	if !same(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	urls, err := c.BrokerURLs()
	if err != nil || !slices.Equal(urls, []string{"amqps://u:p%23ss@rabbit:5672/"}) {
		t.Errorf("broker URLs %v, %v", urls, err)
	}
}

func TestBooleans(t *testing.T) {
	for v, want := range map[string]bool{"True": true, "true": true, "1": true, "yes": true, "ON": true,
		"False": false, "false": false, "0": false, "no": false, "off": false} {
		c := load(t, write(t, "b.ini", "[router]\nipsec_vpn = "+v+"\n"))
		if c.Router.IPsecVPN != want {
			t.Errorf("ipsec_vpn = %s: %v, want %v", v, c.Router.IPsecVPN, want)
		}
	}
}

func TestMultilineValue(t *testing.T) {
	c := load(t, write(t, "m.ini", "[DEFAULT]\nenabled_drivers = router,\n    router\nhost = h\n"))
	if !slices.Equal(c.EnabledDrivers, []string{"router", "router"}) || c.Host != "h" {
		t.Errorf("enabled_drivers %q, host %q", c.EnabledDrivers, c.Host)
	}
}

func TestLaterFilesOverride(t *testing.T) {
	base := write(t, "base.ini", `
[DEFAULT]
health_check_period = 30
reboot_error_threshold = 2
num_worker_threads = 9
num_worker_threads = 7
[router]
image_uuid = img-old
`)
	local := write(t, "local.ini", `
[DEFAULT]
health_check_period = 10
[router]
image_uuid = img-new
instance_flavor = small
`)
	c := load(t, base, local)
	if c.HealthCheckPeriod != 10*time.Second || c.RebootErrorThreshold != 2 || c.NumWorkerThreads != 7 ||
		c.Router.ImageUUID != "img-new" || c.Router.InstanceFlavor != "small" {
		t.Errorf("merged: %+v", c)
	}
	if !slices.Equal(c.Files, []string{base, local}) {
		t.Errorf("files %v", c.Files)
	}
	// A name repeated in a file keeps its last value, even empty.
	c = load(t, base, write(t, "blank.ini", "[router]\nimage_uuid = img-x\nimage_uuid =\n"))
	if c.Router.ImageUUID != "" {
		t.Errorf("image_uuid %q, want the last value (empty)", c.Router.ImageUUID)
	}
	c = load(t, local, base)
	if c.HealthCheckPeriod != 30*time.Second || c.Router.ImageUUID != "img-old" || c.Router.InstanceFlavor != "small" {
		t.Errorf("merged the other way: %+v", c)
	}
}

// testSchema adds a multi-valued option (a MultiStrOpt) to the options.
func testSchema() schema {
	sc := slices.Clone(options)
	return append(sc, multiOpt("test", "topic", func(c *Config) *[]string { return &c.Notifications.Topics },
		"A multi-valued option.", deprecatedName("test", "old_topic")))
}

func TestMultiValued(t *testing.T) {
	sc := testSchema()
	a := write(t, "a.ini", "[test]\ntopic = a1\ntopic = a2\n")
	b := write(t, "b.ini", "[test]\ntopic = b1\n")
	c, err := sc.load([]string{a, b}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a1", "a2", "b1"}; !slices.Equal(c.Notifications.Topics, want) {
		t.Errorf("values %q, want %q: every value of every file, in order", c.Notifications.Topics, want)
	}
	// The current name wins over a deprecated one in the same file.
	d := write(t, "d.ini", "[test]\nold_topic = x\ntopic = y\nold_topic = z\n")
	c, err = sc.load([]string{d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Notifications.Topics, []string{"y"}) || len(c.Warnings) != 1 {
		t.Errorf("values %q, warnings %q", c.Notifications.Topics, c.Warnings)
	}
	var out bytes.Buffer
	if err := sc.writeSample(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "[test]\n\n# A multi-valued option. (multi valued)\n# Deprecated group/name - [test]/old_topic\n#topic = notifications\n") {
		t.Errorf("sample of a multi-valued option:\n%s", out.String())
	}
}

func TestDeprecatedNames(t *testing.T) {
	log, logged := logs()
	path := write(t, "old.ini", `
[DEFAULT]
rug_api_port = 9999
router_image_uuid = img-old
router_instance_flavor = tiny
[router]
image_uuid = img-current
`)
	c, err := Load([]string{path}, log)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIPort != 9999 || c.Router.InstanceFlavor != "tiny" {
		t.Errorf("deprecated names not honoured: api_port %d, instance_flavor %q", c.APIPort, c.Router.InstanceFlavor)
	}
	if c.Router.ImageUUID != "img-current" {
		t.Errorf("image_uuid %q: the current name must win in the same file", c.Router.ImageUUID)
	}
	for _, w := range []string{"[DEFAULT] rug_api_port is deprecated: use [DEFAULT] api_port",
		"[DEFAULT] router_image_uuid is deprecated: use [router] image_uuid",
		"[DEFAULT] router_instance_flavor is deprecated: use [router] instance_flavor"} {
		if !slices.ContainsFunc(c.Warnings, func(s string) bool { return strings.Contains(s, w) && strings.Contains(s, path) }) {
			t.Errorf("no warning %q in %q", w, c.Warnings)
		}
		if !strings.Contains(logged.String(), "level=WARN") {
			t.Errorf("nothing logged at WARN:\n%s", logged)
		}
	}
	// A deprecated name in a later file overrides the current name in an
	// earlier one.
	c = load(t, write(t, "a.ini", "[router]\nimage_uuid = a\n"), write(t, "b.ini", "[DEFAULT]\nrouter_image_uuid = b\n"))
	if c.Router.ImageUUID != "b" {
		t.Errorf("image_uuid %q, want the later file's", c.Router.ImageUUID)
	}
}

func TestUnknownOptions(t *testing.T) {
	log, logged := logs()
	c, err := Load([]string{write(t, "u.ini", `
[DEFAULT]
no_such_option = 1
auth_region = RegionOne
verbose = true
[keystone_authtoken]
auth_url = http://keystone
[nowhere]
x = y
`)}, log)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(c.Warnings, "\n")
	if len(c.Warnings) != 3 || !strings.Contains(all, "unknown option [DEFAULT] no_such_option") ||
		!strings.Contains(all, "unknown option [nowhere] x") ||
		!strings.Contains(all, "[DEFAULT] auth_region is deprecated: use [keystone_authtoken] region_name") {
		t.Errorf("warnings %q", c.Warnings)
	}
	if c.Keystone.RegionName != "RegionOne" || c.Keystone.AuthURL != "http://keystone" {
		t.Errorf("keystone %+v", c.Keystone)
	}
	for _, want := range []string{"option=auth_region", "option=verbose"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logged)
		}
	}
}

func TestInvalidValues(t *testing.T) {
	good := write(t, "good.ini", "[DEFAULT]\nhealth_check_period = 5\n")
	for _, tc := range []struct {
		name, content string
		want          []string // in the error
	}{
		{"int", "[DEFAULT]\nnum_worker_threads = many\n", []string{"[DEFAULT] num_worker_threads", `"many"`, "not an integer"}},
		{"min", "[DEFAULT]\nreboot_error_threshold = 0\n", []string{"[DEFAULT] reboot_error_threshold", `"0"`, "at least 1"}},
		{"bool", "[router]\nipsec_vpn = maybe\n", []string{"[router] ipsec_vpn", `"maybe"`, "not a boolean"}},
		{"seconds", "[DEFAULT]\nhealth_check_period = soon\n", []string{"[DEFAULT] health_check_period", `"soon"`}},
		{"negative", "[DEFAULT]\nerror_state_cooldown = -1\n", []string{"[DEFAULT] error_state_cooldown", `"-1"`}},
		{"port", "[DEFAULT]\napi_port = 70000\n", []string{"[DEFAULT] api_port", `"70000"`, "between 0 and 65535"}},
		{"deprecated port", "[DEFAULT]\nrug_api_port = x\n", []string{"[DEFAULT] rug_api_port", `"x"`}},
		{"addr", "[DEFAULT]\nmanagement_address = fe80::1%eth0\n", []string{"[DEFAULT] management_address"}},
		{"prefix", "[DEFAULT]\nmanagement_prefix = fdca::1\n", []string{"[DEFAULT] management_prefix", `"fdca::1"`}},
		{"driver", "[DEFAULT]\nenabled_drivers = router,loadbalancer\n", []string{"[DEFAULT] enabled_drivers", `"loadbalancer"`}},
		{"no driver", "[DEFAULT]\nenabled_drivers =\n", []string{"[DEFAULT] enabled_drivers", "no driver"}},
		{"retry delays", "[DEFAULT]\nretry_delay = 10\nmax_retry_delay = 5\n", []string{"[DEFAULT] max_retry_delay", "retry_delay"}},
		{"tls pair", "[astara_appliance]\ntls_cert_file = /c.pem\n", []string{"tls_key_file"}},
		{"transport", "[DEFAULT]\ntransport_url = kafka://u:hunter2@h/\n", []string{"[DEFAULT] transport_url", "kafka"}},
		{"short token", "[api]\nauth_token = hunter2\n", []string{"[api] auth_token", "16 characters"}},
		{"syntax", "[DEFAULT\nhost = x\n", []string{"config file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, "bad.ini", tc.content)
			c, err := Load([]string{good, path}, nil)
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("a configuration came with the error")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
	// Every invalid value is reported at once.
	_, err := Load([]string{write(t, "two.ini", "[DEFAULT]\nasn = x\nneighbor_asn = y\n")}, nil)
	if err == nil || !strings.Contains(err.Error(), "[DEFAULT] asn") || !strings.Contains(err.Error(), "[DEFAULT] neighbor_asn") {
		t.Errorf("error %v: want both options", err)
	}
}

func TestMissingFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.ini")
	if _, err := Load([]string{missing}, nil); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSample(t *testing.T) {
	var out bytes.Buffer
	if err := WriteSample(&out); err != nil {
		t.Fatal(err)
	}
	sample := out.String()
	// Every option is there, with its help and type.
	for _, o := range options {
		if !strings.Contains(sample, "\n#"+o.name+" =") {
			t.Errorf("the sample lacks %s", o.optName)
		}
		first := wrap(o.help, 70)[0]
		if !strings.Contains(sample, "# "+first) {
			t.Errorf("the sample lacks the help of %s", o.optName)
		}
		for _, d := range o.deprecated {
			if !strings.Contains(sample, "# Deprecated group/name - ["+d.group+"]/"+d.name+"\n") {
				t.Errorf("the sample lacks the deprecated name %s of %s", d, o.optName)
			}
		}
	}
	for _, s := range []string{"[DEFAULT]\n", "[api]\n", "[router]\n", "#health_check_period = 60\n",
		"#api_listen = 0.0.0.0\n", "# Deprecated group/name - [DEFAULT]/rug_api_port\n", "(integer value)\n# Minimum value: 1\n",
		"#enabled_drivers = router\n", "#host = <the machine's host name>\n", "#auth_token =\n",
		"# Standalone mode default: 127.0.0.1\n#api_listen = 0.0.0.0\n", "[standalone]\n", "#network_api_listen = 127.0.0.1:9696\n"} {
		if !strings.Contains(sample, s) {
			t.Errorf("the sample lacks %q", s)
		}
	}
	// As printed, every option is commented: the defaults.
	if c := load(t, write(t, "sample.ini", sample)); !same(c, standaloneDefaults(t)) {
		t.Errorf("the sample does not parse to the (standalone) defaults")
	}
	if c := load(t, write(t, "sample.ini", sample+keystone)); !same(c, cloudDefaults()) {
		t.Errorf("the sample of a cloud does not parse to the defaults")
	}
	// Uncommented, each line sets the default again.
	var lines []string
	n := 0
	for _, l := range strings.Split(sample, "\n") {
		if strings.HasPrefix(l, "#") && strings.Contains(l, " =") && !strings.HasPrefix(l, "# ") && !strings.Contains(l, "<") {
			l = l[1:]
			n++
		}
		lines = append(lines, l)
	}
	if n < len(options)-1 {
		t.Fatalf("only %d option lines uncommented, %d options", n, len(options))
	}
	log, logged := logs()
	c, err := Load([]string{write(t, "uncommented.ini", strings.Join(lines, "\n"))}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !same(c, Default()) {
		t.Errorf("the uncommented sample parses to\n%+v\nwant the defaults\n%+v", c, Default())
	}
	if len(c.Warnings) != 0 || strings.Contains(logged.String(), "level=WARN") {
		t.Errorf("the sample is warned about: %q\n%s", c.Warnings, logged)
	}
}

func TestBrokerURLs(t *testing.T) {
	for _, tc := range []struct {
		cfg  string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"[DEFAULT]\ntransport_url = rabbit://stackrabbit:secret@10.0.0.5:5672/", []string{"amqp://stackrabbit:secret@10.0.0.5:5672/"}, ""},
		{"[DEFAULT]\ntransport_url = rabbit://a:p1@h1,b:p2@h2:5673/nova", []string{"amqp://a:p1@h1:5672/nova", "amqp://b:p2@h2:5673/nova"}, ""},
		{"[DEFAULT]\ntransport_url = rabbit://u:p@[fd00::5]:5672/\n[oslo_messaging_rabbit]\nssl = true", []string{"amqps://u:p@[fd00::5]:5672/"}, ""},
		{"[DEFAULT]\namqp_url = amqp://u:p@old:5672/", []string{"amqp://u:p@old:5672/"}, ""},
		{"[DEFAULT]\ntransport_url = rabbit://h/\n[oslo_messaging_notifications]\ntransport_url = rabbit://n/", []string{"amqp://n:5672/"}, ""},
		{"[DEFAULT]\ntransport_url = rabbit:///", nil, "no broker host"},
	} {
		path := write(t, "t.ini", tc.cfg)
		c, err := Load([]string{path}, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.cfg, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.cfg, err)
			continue
		}
		got, err := c.BrokerURLs()
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, %v; want %q", tc.cfg, got, err, tc.want)
		}
	}
}

func TestDeprecatedAMQPURLWarns(t *testing.T) {
	c := load(t, write(t, "a.ini", "[DEFAULT]\nnotification_topics = a,b\n"))
	if !slices.Equal(c.Notifications.Topics, []string{"a", "b"}) || len(c.Warnings) != 1 {
		t.Errorf("topics %q, warnings %q", c.Notifications.Topics, c.Warnings)
	}
}

func TestStandaloneMode(t *testing.T) {
	c := standaloneDefaults(t)
	if !c.StandaloneMode() || len(c.Files) != 0 {
		t.Fatalf("no file: standalone %v, files %v", c.StandaloneMode(), c.Files)
	}
	// Standalone defaults where the original's are too slow for one machine.
	if c.APIListen != "127.0.0.1" || c.BootCheckInterval != 50*time.Millisecond || c.HealthCheckPeriod != 10*time.Second ||
		c.BootTimeout != time.Minute || c.RetryDelay != 200*time.Millisecond || c.ErrorStateCooldown != 5*time.Second ||
		c.Standalone.NetworkAPIListen != "127.0.0.1:9696" || !c.Standalone.ApplianceTLS || c.StateDir != "/var/lib/astara" {
		t.Errorf("standalone defaults: %+v", c)
	}
	// Options set in a file win over the standalone defaults.
	c = load(t, write(t, "s.ini", "[DEFAULT]\nboot_check_interval = 2\napi_listen = ::1\n[standalone]\nexternal_interfaces = public:eth1, 0b5e:veth-up\n"))
	if !c.StandaloneMode() || c.BootCheckInterval != 2*time.Second || c.APIListen != "::1" || c.HealthCheckPeriod != 10*time.Second {
		t.Errorf("explicit options: %+v", c)
	}
	if !c.IsSet("DEFAULT", "boot_check_interval") || c.IsSet("DEFAULT", "health_check_period") {
		t.Errorf("IsSet: boot_check_interval %v, health_check_period %v", c.IsSet("DEFAULT", "boot_check_interval"), c.IsSet("DEFAULT", "health_check_period"))
	}
	ifs, err := c.ExternalInterfaces()
	if err != nil || len(ifs) != 2 || ifs["public"] != "eth1" || ifs["0b5e"] != "veth-up" {
		t.Errorf("external interfaces %v, %v", ifs, err)
	}
	// Any [keystone_authtoken] option means a cloud, with the original's defaults.
	log, logged := logs()
	c, err = Load([]string{write(t, "k.ini", "[keystone_authtoken]\nusername = astara\n")}, log)
	if err != nil {
		t.Fatal(err)
	}
	if c.StandaloneMode() || !slices.Equal(c.KeystoneOptions, []string{"username"}) || c.BootCheckInterval != 5*time.Second ||
		c.APIListen != "0.0.0.0" || c.Keystone.Username != "astara" || c.ComputeProvider != ComputeNova {
		t.Errorf("cloud: standalone %v, keystone options %v, %+v", c.StandaloneMode(), c.KeystoneOptions, c)
	}
	// keystonemiddleware's own options are known to be ignored.
	if _, err := Load([]string{write(t, "km.ini", "[keystone_authtoken]\nmemcached_servers = m:11211\n")}, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "group=keystone_authtoken") {
		t.Errorf("keystonemiddleware's options are not logged:\n%s", logged)
	}
}

func TestStandaloneInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"listen", "[standalone]\nnetwork_api_listen = 9696\n", []string{"[standalone] network_api_listen", `"9696"`}},
		{"interface", "[standalone]\nexternal_interfaces = public\n", []string{"[standalone] external_interfaces", `"public"`}},
		{"long interface", "[standalone]\nexternal_interfaces = public:a-very-long-interface\n", []string{"[standalone] external_interfaces"}},
		{"twice", "[standalone]\nexternal_interfaces = public:eth1,public:eth2\n", []string{"[standalone] external_interfaces", "twice"}},
		{"nova standalone", "[DEFAULT]\ncompute_provider = nova\n", []string{"[DEFAULT] compute_provider", "standalone mode"}},
		{"compute provider", "[DEFAULT]\ncompute_provider = xen\n", []string{"[DEFAULT] compute_provider", "nova, local"}},
		{"endpoint", keystone + "[neutron]\nendpoint_override = 127.0.0.1:9696\n", []string{"[neutron] endpoint_override", "http(s) URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, "bad.ini", tc.content)
			_, err := Load([]string{path}, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
