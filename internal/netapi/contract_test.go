package netapi

import (
	"net/http"
	"testing"

	"github.com/astara-go/astara/internal/netapi/contract"
)

// The contract suite passes against the embedded API, with tenants told
// apart by headers (like Neutron with keystonecontext) and without (like
// Neutron's stock noauth, every request admin).
func TestContract(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(url string) contract.Target
	}{
		{"tenants by headers", func(url string) contract.Target {
			return contract.Target{URL: url, Admin: http.Header{"X-Roles": {"admin"}}, Tenant: tenantHeaders}
		}},
		{"noauth", func(url string) contract.Target { return contract.Target{URL: url} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newTestServer(t, Config{})
			contract.Run(t, tc.target(ts.URL))
		})
	}
}
