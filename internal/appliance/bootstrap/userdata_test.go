package bootstrap

import (
	"bytes"
	"compress/gzip"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	mac6 = "fa:16:3e:4d:2e:05"
	addr = "fdca:3ba5:a17a:acda:f816:3eff:fe4d:2e05/64"
)

// originalUserData is what the original orchestrator's format_userdata
// produced (astara/api/nova.py), with a real-looking key.
const originalUserData = `#cloud-config

cloud_config_modules:
  - emit_upstart
  - set_hostname
  - locale
  - set-passwords
  - timezone
  - disable-ec2-metadata
  - runcmd

output: {all: '| tee -a /var/log/cloud-init-output.log'}

debug:
  - verbose: true

bootcmd:
  - /usr/local/bin/astara-configure-management fa:16:3e:4d:2e:05 fdca:3ba5:a17a:acda:f816:3eff:fe4d:2e05/64

users:
  - name: astara
    gecos: Astara
    groups: users
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock-passwd: true
    ssh-authorized-keys:
      - ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 astara@orchestrator

final_message: "Astara appliance is running"
`

func want(t *testing.T, mac, prefix string, mtu int) Management {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	return Management{MAC: hw, Address: netip.MustParsePrefix(prefix), MTU: mtu}
}

func equal(a, b Management) bool {
	return bytes.Equal(a.MAC, b.MAC) && a.Address == b.Address && a.MTU == b.MTU
}

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestParseUserData(t *testing.T) {
	v6 := want(t, mac6, addr, LegacyDefaultMTU)
	tests := []struct {
		name string
		data string
		want Management
	}{
		{"original orchestrator cloud-config", originalUserData, v6},
		{"CRLF line endings", strings.ReplaceAll(originalUserData, "\n", "\r\n"), v6},
		{"gzip compressed", gz(t, originalUserData), v6},
		{"double-quoted string with --mtu N", `#cloud-config
bootcmd:
  - "astara-configure-management fa:16:3e:4d:2e:05 192.168.99.5/24 --mtu 1450"
`, want(t, mac6, "192.168.99.5/24", 1450)},
		{"single-quoted string with --mtu=N", `#cloud-config
bootcmd:
    - 'astara-configure-management  fa:16:3e:4d:2e:05   fdca::5/64 --mtu=9000' # comment
`, want(t, mac6, "fdca::5/64", 9000)},
		{"flow list item", `#cloud-config
bootcmd:
  - [ /usr/local/bin/astara-configure-management, "fa:16:3e:4d:2e:05", 'fdca::5/64', --mtu, "1500" ]
`, want(t, mac6, "fdca::5/64", 1500)},
		{"block list item", `#cloud-config
bootcmd:
  - - astara-configure-management
    - fa:16:3e:4d:2e:05
    - "fdca::5/64"
`, want(t, mac6, "fdca::5/64", LegacyDefaultMTU)},
		{"block list item starting on the next line", `#cloud-config
bootcmd:
  -
    - astara-configure-management
    - fa:16:3e:4d:2e:05
    - fdca::5/64
    - --mtu
    - 1400
`, want(t, mac6, "fdca::5/64", 1400)},
		{"items at column 0, comments, other commands, sudo, legacy name, dashed MAC", `#cloud-config
hostname: ak-router
bootcmd:
- echo hello  # greet
# a comment line
- [ cloud-init-per, once, mymkfs, mkfs, /dev/vdb ]

- sudo /usr/local/bin/akanda-configure-management FA-16-3E-4D-2E-05 fdca::5/64 && echo done
runcmd:
- astara-configure-management 02:00:00:00:00:99 10.0.0.1/8
`, want(t, mac6, "fdca::5/64", LegacyDefaultMTU)},
		{"literal block scalar script", `#cloud-config
bootcmd:
  - |
    set -e
    /usr/local/bin/astara-configure-management \
      fa:16:3e:4d:2e:05 fdca::5/64 --mtu 1400
  - echo after
`, want(t, mac6, "fdca::5/64", 1400)},
		{"folded multi-line plain scalar", `#cloud-config
bootcmd:
  - /usr/local/bin/astara-configure-management
    fa:16:3e:4d:2e:05
    fdca::5/64
`, want(t, mac6, "fdca::5/64", LegacyDefaultMTU)},
		{"flow sequence on the key line", `#cloud-config
bootcmd: [ "astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64", [echo, hi] ]
`, want(t, mac6, "fdca::5/64", LegacyDefaultMTU)},
		{"multi-line flow sequence", `#cloud-config
bootcmd: [
  [ echo, hi ],  # first
  [ astara-configure-management,
    fa:16:3e:4d:2e:05,
    10.1.2.3/24 ]
]
`, want(t, mac6, "10.1.2.3/24", LegacyDefaultMTU)},
		{"sh -c list", `#cloud-config
bootcmd:
  - [ sh, -c, "astara-configure-management fa:16:3e:4d:2e:05 10.0.0.5/24 --mtu 1500 > /dev/console 2>&1" ]
`, want(t, mac6, "10.0.0.5/24", 1500)},
		{"double-quoted escapes", `#cloud-config
bootcmd:
  - "astara-configure-management\tfa:16:3e:4d:2e:05 \"fdca::5/64\""
`, want(t, mac6, "fdca::5/64", LegacyDefaultMTU)},
		{"json v6 with mtu", `{"astara": {"management": {"mac": "fa:16:3e:4d:2e:05", "address": "fdca:3ba5:a17a:acda::5/64", "mtu": 1500}}}`,
			want(t, mac6, "fdca:3ba5:a17a:acda::5/64", 1500)},
		{"json v4 without mtu, other keys, white space", "\n\t {\"other\": [1, 2], \"astara\": {\"version\": 2, \"management\": {\"address\": \"10.0.0.5/24\", \"mac\": \"FA:16:3E:4D:2E:05\"}}}\n",
			want(t, mac6, "10.0.0.5/24", 0)},
		{"json mtu null", `{"astara": {"management": {"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": null}}}`,
			want(t, mac6, "10.0.0.5/24", 0)},
		{"json gzip compressed", gz(t, `{"astara": {"management": {"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": 576}}}`),
			want(t, mac6, "10.0.0.5/24", 576)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUserData([]byte(tt.data))
			if err != nil {
				t.Fatalf("ParseUserData: %v", err)
			}
			if !equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseUserDataErrors(t *testing.T) {
	js := func(mgmt string) string { return `{"astara": {"management": ` + mgmt + `}}` }
	cc := func(cmd string) string { return "#cloud-config\nbootcmd:\n  - " + cmd + "\n" }
	tests := []struct {
		name string
		data string
		msg  string // the error must contain this (the field)
	}{
		{"empty", "  \n", "empty"},
		{"bad gzip", "\x1f\x8bnot gzip", "gzip"},
		{"invalid JSON", `{"astara": `, "invalid JSON"},
		{"no astara", `{"management": {}}`, "astara: required"},
		{"astara not an object", `{"astara": 5}`, "astara: must be an object"},
		{"no management", `{"astara": {}}`, "astara.management: required"},
		{"management null", `{"astara": {"management": null}}`, "astara.management: required"},
		{"management not an object", `{"astara": {"management": "x"}}`, "astara.management"},
		{"unknown key in management", js(`{"mac": "fa:16:3e:4d:2e:05", "adress": "10.0.0.5/24"}`), `astara.management: json: unknown field "adress"`},
		{"no mac", js(`{"address": "10.0.0.5/24"}`), "astara.management.mac: required"},
		{"mac not a string", js(`{"mac": 5, "address": "10.0.0.5/24"}`), "astara.management.mac: must be a string"},
		{"mac garbage", js(`{"mac": "zz:16:3e:4d:2e:05", "address": "10.0.0.5/24"}`), "astara.management.mac"},
		{"mac empty", js(`{"mac": "", "address": "10.0.0.5/24"}`), "astara.management.mac"},
		{"mac 64-bit", js(`{"mac": "fa:16:3e:4d:2e:05:00:01", "address": "10.0.0.5/24"}`), "astara.management.mac"},
		{"mac multicast", js(`{"mac": "01:00:5e:00:00:01", "address": "10.0.0.5/24"}`), "astara.management.mac"},
		{"mac zero", js(`{"mac": "00:00:00:00:00:00", "address": "10.0.0.5/24"}`), "astara.management.mac"},
		{"no address", js(`{"mac": "fa:16:3e:4d:2e:05"}`), "astara.management.address: required"},
		{"address without prefix", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "fdca::5"}`), "astara.management.address"},
		{"address garbage", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "router/64"}`), "astara.management.address"},
		{"address empty", js(`{"mac": "fa:16:3e:4d:2e:05", "address": ""}`), "astara.management.address"},
		{"address multicast", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "ff02::1/64"}`), "astara.management.address"},
		{"address link-local", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "fe80::1/64"}`), "astara.management.address"},
		{"address with zone", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "fdca::1%eth0/64"}`), "astara.management.address"},
		{"address /0", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/0"}`), "astara.management.address"},
		{"mtu string", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": "1500"}`), "astara.management.mtu"},
		{"mtu fraction", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": 1500.5}`), "astara.management.mtu"},
		{"mtu zero", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": 0}`), "astara.management.mtu"},
		{"mtu too small for IPv6", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "fdca::5/64", "mtu": 1279}`), "astara.management.mtu"},
		{"mtu too small", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": 67}`), "astara.management.mtu"},
		{"mtu too large", js(`{"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": 65536}`), "astara.management.mtu"},

		{"neither JSON nor cloud-config", "#!/bin/sh\necho hi\n", "no bootcmd"},
		{"bootcmd not a list", "#cloud-config\nbootcmd: astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64\n", "bootcmd: must be a list"},
		{"bootcmd without the command", "#cloud-config\nbootcmd:\n  - echo hi\nruncmd:\n  - astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64\n", "bootcmd: no astara-configure-management command"},
		{"bootcmd badly indented", "#cloud-config\nbootcmd:\n    - echo hi\n  - astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64\n", "bootcmd: line"},
		{"unterminated flow list", "#cloud-config\nbootcmd: [ [astara-configure-management, fa:16:3e:4d:2e:05\n", "bootcmd: unterminated list"},
		{"unterminated quote", cc(`"astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64`), "bootcmd: unterminated quoted string"},
		{"no arguments", cc("astara-configure-management"), "bootcmd: astara-configure-management: mac: required"},
		{"no address argument", cc("astara-configure-management fa:16:3e:4d:2e:05"), "bootcmd: astara-configure-management: address: required"},
		{"bad mac argument", cc("astara-configure-management fa:16:3e:4d:2e fdca::5/64"), "bootcmd: astara-configure-management: mac:"},
		{"bad address argument", cc("astara-configure-management fa:16:3e:4d:2e:05 fdca::5"), "bootcmd: astara-configure-management: address:"},
		{"--mtu without value", cc("astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64 --mtu"), "bootcmd: astara-configure-management: mtu:"},
		{"--mtu not a number", cc("astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64 --mtu abc"), "bootcmd: astara-configure-management: mtu:"},
		{"--mtu too small for IPv6", cc("astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64 --mtu=1000"), "bootcmd: astara-configure-management: mtu:"},
		{"unknown option", cc("astara-configure-management --verbose fa:16:3e:4d:2e:05 fdca::5/64"), `unknown option "--verbose"`},
		{"extra argument", cc("astara-configure-management fa:16:3e:4d:2e:05 fdca::5/64 extra"), `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseUserData([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseUserData accepted it: %+v", m)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "user data: ") {
				t.Errorf("error %q does not say it is about the user data", err)
			}
		})
	}
}

func writeDrive(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	latest := filepath.Join(dir, "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	if data != nil {
		if err := os.WriteFile(filepath.Join(latest, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFromConfigDrive(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Management
	}{
		{"cloud-config", originalUserData, want(t, mac6, addr, LegacyDefaultMTU)},
		{"json", `{"astara": {"management": {"mac": "fa:16:3e:4d:2e:05", "address": "10.0.0.5/24", "mtu": 1450}}}`,
			want(t, mac6, "10.0.0.5/24", 1450)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromConfigDrive(writeDrive(t, "user_data", []byte(tt.data)))
			if err != nil {
				t.Fatalf("FromConfigDrive: %v", err)
			}
			if !equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFromConfigDriveErrors(t *testing.T) {
	t.Run("no user data", func(t *testing.T) {
		dir := writeDrive(t, "meta_data.json", []byte(`{"uuid": "x"}`))
		_, err := FromConfigDrive(dir)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "openstack", "latest", "user_data")) {
			t.Errorf("error %v does not name the missing file", err)
		}
	})
	t.Run("invalid user data", func(t *testing.T) {
		dir := writeDrive(t, "user_data", []byte(`{"astara": {"management": {"mac": "fa:16:3e:4d:2e:05"}}}`))
		_, err := FromConfigDrive(dir)
		if err == nil || !strings.Contains(err.Error(), "user_data") || !strings.Contains(err.Error(), "astara.management.address: required") {
			t.Errorf("error %v does not name the file and the field", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		dir := writeDrive(t, "user_data", bytes.Repeat([]byte("#"), maxUserData+1))
		if _, err := FromConfigDrive(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("error %v, want a size error", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		if _, err := FromConfigDrive(filepath.Join(t.TempDir(), "absent")); err == nil {
			t.Error("FromConfigDrive read a drive that does not exist")
		}
	})
}

func TestValidate(t *testing.T) {
	good := want(t, mac6, "fdca::5/64", 1500)
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%+v): %v", good, err)
	}
	tests := []struct {
		name  string
		m     Management
		field string
	}{
		{"no mac", Management{Address: good.Address}, "mac: required"},
		{"short mac", Management{MAC: net.HardwareAddr{1, 2, 3}, Address: good.Address}, "mac:"},
		{"no address", Management{MAC: good.MAC}, "address: required"},
		{"v4-mapped address", Management{MAC: good.MAC, Address: netip.MustParsePrefix("::ffff:10.0.0.5/120")}, "address:"},
		{"negative mtu", Management{MAC: good.MAC, Address: good.Address, MTU: -1}, "mtu:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.field) {
				t.Errorf("Validate: %v, want an error starting with %q", err, tt.field)
			}
		})
	}
}

func TestShellCommands(t *testing.T) {
	got := shellCommands("a 'b c' \"d \\\"e\\\"\" f\\ g # comment\nx>out 2>&1 y; z | w && v < in\nlong \\\n  line")
	want := [][]string{{"a", "b c", `d "e"`, "f g"}, {"x", "y"}, {"z"}, {"w"}, {"v"}, {"long", "line"}}
	if len(got) != len(want) {
		t.Fatalf("shellCommands = %q, want %q", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("command %d = %q, want %q", i, got[i], want[i])
		}
	}
}
