package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/provider"
)

// Providers are the cloud an orchestrator manages resources in.
type Providers struct {
	Network provider.NetworkAPI
	Compute provider.ComputeAPI
	// ManagementAddress is the orchestrator's address on the management
	// network, when the network provider plugs a local port (invalid:
	// [DEFAULT] management_address).
	ManagementAddress netip.Addr
}

// ErrNoProvider is returned by OpenProviders while no provider exists.
var ErrNoProvider = errors.New("no network or compute provider available")

// OpenProviders returns the network and compute providers the
// configuration describes. None exists yet: the OpenStack providers
// (Neutron and Nova, configured by [keystone_authtoken]) and the
// standalone ones (the embedded network API and local namespaces) come
// next; until then it always fails, saying so.
func OpenProviders(ctx context.Context, cfg *config.Config) (Providers, error) {
	return Providers{}, fmt.Errorf("%w: "+
		"the OpenStack providers (Neutron and Nova, configured in [keystone_authtoken]) and the standalone "+
		"providers (embedded network API, local namespaces) are not implemented in this version: "+
		"astara-orchestrator can only check a configuration (--check-config) and print a sample (--print-sample-config)", ErrNoProvider)
}
