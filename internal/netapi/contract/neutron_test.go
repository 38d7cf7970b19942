package contract

import (
	"net/http"
	"testing"

	"github.com/astara-go/astara/internal/testutil/neutrontest"
)

// TestNeutron runs the suite against a real Neutron server when
// ASTARA_NEUTRON_URL names one (e.g. http://127.0.0.1:9696, as
// scripts/neutron.sh starts it); ASTARA_NEUTRON_AUTH says how it
// authenticates: "headers" (keystonecontext without Keystone: tenants by
// X-Project-Id) or "noauth" (the default: every request admin).
func TestNeutron(t *testing.T) {
	n := neutrontest.Find(t)
	target := Target{URL: n.URL}
	if n.Auth == "headers" {
		target.Admin = http.Header{"X-User-Id": {"contract-admin"}, "X-Project-Id": {randomHex(16)}, "X-Roles": {"admin,member,reader"}}
		target.Tenant = func(project string) http.Header {
			return http.Header{"X-User-Id": {"contract-" + project[:8]}, "X-Project-Id": {project}, "X-Roles": {"member,reader"}}
		}
	}
	Run(t, target)
}
