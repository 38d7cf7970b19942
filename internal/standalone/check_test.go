package standalone

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astara-go/astara/internal/config"
)

// fakeAgent writes an executable file named name in a new directory and
// returns its path.
func fakeAgent(t *testing.T, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

func TestCheckDefaults(t *testing.T) {
	// The default configuration is standalone mode's, but for the agent.
	if err := check(config.Default(), false, false); err != nil {
		t.Errorf("check(defaults) = %v", err)
	}
	cfg := config.Default()
	cfg.Standalone.ApplianceBinary = fakeAgent(t, "agent", 0o755)
	if err := Check(cfg); err != nil {
		t.Errorf("Check(defaults, appliance_binary %s) = %v", cfg.Standalone.ApplianceBinary, err)
	}
}

func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*config.Config)
		want []string
	}{
		{"keystone", func(c *config.Config) { c.KeystoneOptions = []string{"auth_url", "password"} },
			[]string{"[keystone_authtoken]", "not standalone mode"}},
		{"IPv6 /48", func(c *config.Config) { c.ManagementPrefix = netip.MustParsePrefix("fdca:3ba5:a17a::/48") },
			[]string{"management_prefix", "fdca:3ba5:a17a::/48", "/64"}},
		{"IPv6 /80", func(c *config.Config) { c.ManagementPrefix = netip.MustParsePrefix("fdca:3ba5:a17a:acda::/80") },
			[]string{"management_prefix", "/64"}},
		{"no prefix", func(c *config.Config) { c.ManagementPrefix = netip.Prefix{} },
			[]string{"management_prefix", "not a prefix"}},
		{"address outside", func(c *config.Config) { c.ManagementAddress = netip.MustParseAddr("fd00::1") },
			[]string{"management_address", "fd00::1", "fdca:3ba5:a17a:acda::/64"}},
		{"address of the network", func(c *config.Config) { c.ManagementAddress = netip.MustParseAddr("fdca:3ba5:a17a:acda::") },
			[]string{"management_address", "not a host address"}},
		{"IPv4 address outside", func(c *config.Config) {
			c.ManagementPrefix = netip.MustParsePrefix("10.1.2.0/24")
			c.ManagementAddress = netip.MustParseAddr("10.1.3.1")
		}, []string{"management_address", "10.1.3.1", "10.1.2.0/24"}},
		{"IPv6 address on an IPv4 prefix", func(c *config.Config) {
			c.ManagementPrefix = netip.MustParsePrefix("10.1.2.0/24")
			c.ManagementAddress = netip.MustParseAddr("fdca:3ba5:a17a:acda::1")
		}, []string{"management_address"}},
		{"tls_ca_file", func(c *config.Config) { c.Appliance.TLSCAFile = "/etc/ca.pem" },
			[]string{"[astara_appliance] tls_ca_file", "not used in standalone mode"}},
		{"tls_cert_file", func(c *config.Config) { c.Appliance.TLSCertFile = "/etc/cert.pem" },
			[]string{"[astara_appliance] tls_cert_file"}},
		{"tls_key_file", func(c *config.Config) { c.Appliance.TLSKeyFile = "/etc/key.pem" },
			[]string{"[astara_appliance] tls_key_file"}},
		{"tls_server_name", func(c *config.Config) { c.Appliance.TLSServerName = "appliance" },
			[]string{"[astara_appliance] tls_server_name"}},
		{"publish without broker", func(c *config.Config) { c.Standalone.PublishNotifications = true },
			[]string{"publish_notifications", "transport_url"}},
		{"long state_dir", func(c *config.Config) { c.StateDir = "/var/lib/" + strings.Repeat("x", 26) },
			[]string{"state_dir", "longer than 34 bytes", "socket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.set(cfg)
			err := check(cfg, false, false)
			wantErr(t, err, tc.want...)
			if err != nil {
				if got := strings.Count(err.Error(), "\n") + 1; got != 1 {
					t.Errorf("%d errors (%q), want 1", got, err)
				}
			}
		})
	}
}

func TestCheckReportsEveryError(t *testing.T) {
	cfg := config.Default()
	cfg.KeystoneOptions = []string{"auth_url"}
	cfg.ManagementPrefix = netip.MustParsePrefix("fdca:3ba5:a17a::/56")
	cfg.Appliance.TLSCAFile, cfg.Appliance.TLSCertFile = "/ca", "/cert"
	cfg.Appliance.TLSKeyFile, cfg.Appliance.TLSServerName = "/key", "name"
	cfg.Standalone.PublishNotifications = true
	cfg.Standalone.ApplianceBinary = filepath.Join(t.TempDir(), "missing")
	err := Check(cfg)
	wantErr(t, err, "[keystone_authtoken]", "appliance_binary", "management_prefix", "tls_ca_file", "tls_cert_file",
		"tls_key_file", "tls_server_name", "publish_notifications")
	if err != nil {
		if got := strings.Count(err.Error(), "\n") + 1; got != 8 {
			t.Errorf("%d errors, want 8: %v", got, err)
		}
	}
}

func TestCheckPublishWithBroker(t *testing.T) {
	for _, set := range []func(*config.Config){
		func(c *config.Config) { c.TransportURL = "rabbit://guest:guest@127.0.0.1:5672/" },
		func(c *config.Config) { c.Notifications.TransportURL = "rabbit://guest:guest@127.0.0.1:5672/" },
	} {
		cfg := config.Default()
		cfg.Standalone.PublishNotifications = true
		set(cfg)
		if err := check(cfg, false, false); err != nil {
			t.Errorf("check with publish_notifications and a broker = %v", err)
		}
	}
}

func TestCheckFindsTheAgentOnlyWhenAsked(t *testing.T) {
	cfg := config.Default()
	cfg.Standalone.ApplianceBinary = filepath.Join(t.TempDir(), "missing")
	if err := check(cfg, false, false); err != nil {
		t.Errorf("check without the agent = %v", err)
	}
	wantErr(t, Check(cfg), "appliance_binary", "missing")
}

func TestManagementAddress(t *testing.T) {
	for _, tc := range []struct {
		prefix, addr, want string
	}{
		{"fdca:3ba5:a17a:acda::/64", "", "fdca:3ba5:a17a:acda::1"},
		{"fdca:3ba5:a17a:acda::99/64", "", "fdca:3ba5:a17a:acda::1"}, // host bits ignored
		{"fdca:3ba5:a17a:acda::/64", "fdca:3ba5:a17a:acda::5", "fdca:3ba5:a17a:acda::5"},
		{"fdca:3ba5:a17a:acda::/64", "fdca:3ba5:a17a:acda:ffff:ffff:ffff:ffff", "fdca:3ba5:a17a:acda:ffff:ffff:ffff:ffff"},
		{"10.20.30.0/24", "", "10.20.30.1"},
		{"10.20.30.0/24", "10.20.30.254", "10.20.30.254"},
		{"172.16.0.0/12", "", "172.16.0.1"},
	} {
		cfg := config.Default()
		cfg.ManagementPrefix = netip.MustParsePrefix(tc.prefix)
		if tc.addr != "" {
			cfg.ManagementAddress = netip.MustParseAddr(tc.addr)
		}
		got, err := managementAddress(cfg)
		if err != nil || got.String() != tc.want {
			t.Errorf("managementAddress(prefix %s, address %q) = %v, %v; want %s", tc.prefix, tc.addr, got, err, tc.want)
		}
	}
}

func TestAgentPathConfigured(t *testing.T) {
	exe := fakeAgent(t, "my-agent", 0o755)
	cfg := config.Default()
	cfg.Standalone.ApplianceBinary = exe
	if got, err := agentPath(cfg); err != nil || got != exe {
		t.Errorf("agentPath(%s) = %q, %v", exe, got, err)
	}

	cfg.Standalone.ApplianceBinary = filepath.Join(t.TempDir(), "missing")
	_, err := agentPath(cfg)
	wantErr(t, err, "[standalone] appliance_binary", cfg.Standalone.ApplianceBinary)

	cfg.Standalone.ApplianceBinary = fakeAgent(t, "not-executable", 0o644)
	_, err = agentPath(cfg)
	wantErr(t, err, "[standalone] appliance_binary", "not-executable")

	cfg.Standalone.ApplianceBinary = t.TempDir() // a directory
	_, err = agentPath(cfg)
	wantErr(t, err, "[standalone] appliance_binary")
}

func TestAgentPathInPATH(t *testing.T) {
	// Not next to the test binary, so found in PATH (made of a directory
	// of the test's only); a name without a slash is looked up there too.
	exe := fakeAgent(t, ApplianceBinary, 0o755)
	other := fakeAgent(t, "other-agent", 0o755)
	t.Setenv("PATH", filepath.Dir(exe)+string(os.PathListSeparator)+filepath.Dir(other))
	cfg := config.Default()
	if got, err := agentPath(cfg); err != nil || got != exe {
		t.Errorf("agentPath with %s in PATH = %q, %v; want %s", ApplianceBinary, got, err, exe)
	}
	cfg.Standalone.ApplianceBinary = "other-agent"
	if got, err := agentPath(cfg); err != nil || got != other {
		t.Errorf("agentPath(other-agent) = %q, %v; want %s", got, err, other)
	}

	t.Setenv("PATH", t.TempDir())
	cfg.Standalone.ApplianceBinary = ""
	_, err := agentPath(cfg)
	wantErr(t, err, "[standalone] appliance_binary", "no "+ApplianceBinary)
}

func TestPrepareStateDir(t *testing.T) {
	// dnsmasq runs as nobody in the appliances and must search the state
	// directory.
	dir := filepath.Join(t.TempDir(), "a", "state")
	if err := prepareStateDir(dir, discardLogger()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o011 != 0o011 {
		t.Errorf("state directory mode %v, want a directory searchable by everyone", fi.Mode())
	}

	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := prepareStateDir(dir, discardLogger()); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o711 {
		t.Errorf("state directory 0700 became %o, want 0711", got)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr(t, prepareStateDir(file, discardLogger()), "state_dir")
}
