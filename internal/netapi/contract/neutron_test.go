package contract

import (
	"net/http"
	"os"
	"testing"
)

// TestNeutron runs the suite against a real Neutron server when
// ASTARA_NEUTRON_URL names one (e.g. http://127.0.0.1:9696, as
// neutron-up.sh starts it); ASTARA_NEUTRON_AUTH says how it
// authenticates: "headers" (keystonecontext without Keystone: tenants by
// X-Project-Id) or "noauth" (the default: every request admin).
func TestNeutron(t *testing.T) {
	url := os.Getenv("ASTARA_NEUTRON_URL")
	if url == "" {
		t.Skip("ASTARA_NEUTRON_URL is not set: no Neutron server to run the contract against")
	}
	target := Target{URL: url}
	switch mode := os.Getenv("ASTARA_NEUTRON_AUTH"); mode {
	case "", "noauth":
	case "headers":
		target.Admin = http.Header{"X-User-Id": {"contract-admin"}, "X-Project-Id": {randomHex(16)}, "X-Roles": {"admin,member,reader"}}
		target.Tenant = func(project string) http.Header {
			return http.Header{"X-User-Id": {"contract-" + project[:8]}, "X-Project-Id": {project}, "X-Roles": {"member,reader"}}
		}
	default:
		t.Fatalf("ASTARA_NEUTRON_AUTH=%q: want headers or noauth", mode)
	}
	Run(t, target)
}
