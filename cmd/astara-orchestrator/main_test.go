package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "orchestrator.ini")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// good describes an OpenStack cloud whose Keystone does not answer.
const good = `[DEFAULT]
management_network_id = mgt-net
management_address = fdca:3ba5:a17a:acda::1
api_listen = 127.0.0.1
transport_url = rabbit://u:p@rabbit:5672/

[router]
image_uuid = appliance-image
instance_flavor = 1

[keystone_authtoken]
auth_url = http://127.0.0.1:1/v3
username = astara
password = secret
project_name = service
`

func TestPrintSampleConfig(t *testing.T) {
	code, out, _ := runCmd(t, "--print-sample-config")
	if code != 0 || !strings.Contains(out, "#health_check_period = 60\n") || !strings.Contains(out, "[router]\n") {
		t.Fatalf("exit %d, sample:\n%s", code, out)
	}
	// The sample, with the required option set, checks.
	p := writeFile(t, out+"\n[DEFAULT]\nmanagement_network_id = mgt-net\napi_listen = ::1\n[standalone]\nappliance_binary = /bin/true\n")
	if code, out, errOut := runCmd(t, "--config-file", p, "--check-config"); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Errorf("checking the sample: exit %d\n%s%s", code, out, errOut)
	}
}

func TestCheckConfig(t *testing.T) {
	base := writeFile(t, good)
	override := writeFile(t, "[DEFAULT]\nhealth_check_period = soon\n")
	if code, out, errOut := runCmd(t, "--config-file", base, "--check-config"); code != 0 {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := runCmd(t, "--config-file="+base, "--config-file", override, "--check-config")
	if code != 1 || !strings.Contains(errOut, "health_check_period") || !strings.Contains(errOut, override) {
		t.Errorf("invalid value: exit %d\n%s", code, errOut)
	}
	public := writeFile(t, "[DEFAULT]\nmanagement_network_id = m\napi_listen = 0.0.0.0\n[keystone_authtoken]\nauth_url = http://k/v3\n")
	if code, _, errOut := runCmd(t, "--config-file", public, "--check-config"); code != 1 || !strings.Contains(errOut, "auth_token") {
		t.Errorf("public API without a token: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCmd(t, "--config-file", filepath.Join(t.TempDir(), "nope.ini")); code != 1 || !strings.Contains(errOut, "nope.ini") {
		t.Errorf("missing file: exit %d\n%s", code, errOut)
	}
}

func TestRunOpenStackUnreachable(t *testing.T) {
	code, _, errOut := runCmd(t, "--config-file", writeFile(t, good))
	if code != 1 || !strings.Contains(errOut, "authenticating user") || !strings.Contains(errOut, "127.0.0.1:1/v3") ||
		strings.Contains(errOut, "secret") {
		t.Errorf("exit %d\n%s", code, errOut)
	}
}

func TestCheckOpenStack(t *testing.T) {
	if code, out, errOut := runCmd(t, "--config-file", writeFile(t, good), "--check-config"); code != 0 ||
		!strings.Contains(out, "OpenStack mode, compute provider nova") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct{ name, content, want string }{
		{"no password", "[keystone_authtoken]\nauth_url = http://k/v3\nusername = u\n", "password"},
		{"no image", strings.Replace(good, "image_uuid", "#", 1), "[router] image_uuid"},
		{"no broker", strings.Replace(good, "transport_url", "#", 1), "[DEFAULT] transport_url"},
		{"none without endpoint", "[keystone_authtoken]\nauth_type = none\n[DEFAULT]\ncompute_provider = local\n", "[neutron] endpoint_override"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "--config-file", writeFile(t, tc.content), "--check-config")
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want an error naming %s:\n%s", code, tc.want, errOut)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	if code, out, _ := runCmd(t, "--version"); code != 0 || !strings.HasPrefix(out, "astara-orchestrator ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if code, _, _ := runCmd(t, "--bogus"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code, _, _ := runCmd(t, "extra"); code != 2 {
		t.Errorf("argument: exit %d", code)
	}
}

func TestStandaloneCheck(t *testing.T) {
	ok := writeFile(t, "[standalone]\nappliance_binary = /bin/true\n")
	if code, out, errOut := runCmd(t, "--config-file", ok, "--check-config"); code != 0 || !strings.Contains(out, "standalone mode") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	missing := writeFile(t, "[standalone]\nappliance_binary = /nonexistent/astara-appliance\n")
	code, _, errOut := runCmd(t, "--config-file", missing, "--check-config")
	if code != 1 || !strings.Contains(errOut, "appliance_binary") {
		t.Errorf("missing agent: exit %d\n%s", code, errOut)
	}
	tls := writeFile(t, "[standalone]\nappliance_binary = /bin/true\n[astara_appliance]\ntls_ca_file = /etc/ca.pem\n")
	if code, _, errOut := runCmd(t, "--config-file", tls, "--check-config"); code != 1 || !strings.Contains(errOut, "tls_ca_file") {
		t.Errorf("tls option in standalone mode: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCmd(t, "--config-file", writeFile(t, good), "--purge"); code != 2 || !strings.Contains(errOut, "not standalone") {
		t.Errorf("--purge in OpenStack mode: exit %d\n%s", code, errOut)
	}
}
