package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

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

// OpenProviders returns the network and compute providers of the OpenStack
// cloud the configuration describes ([keystone_authtoken]): Neutron and
// Nova. They are not implemented yet: it always fails, saying so.
// Standalone mode (no [keystone_authtoken]) has its own providers, which
// the standalone package assembles.
func OpenProviders(ctx context.Context, cfg *config.Config) (Providers, error) {
	if cfg.StandaloneMode() {
		return Providers{}, fmt.Errorf("%w: the configuration describes standalone mode (no [keystone_authtoken]): "+
			"run it with the standalone package", ErrNoProvider)
	}
	return Providers{}, fmt.Errorf("%w: [keystone_authtoken] is configured (%s), but the OpenStack providers "+
		"(Neutron and Nova) are not implemented in this version: remove [keystone_authtoken] to run standalone mode "+
		"(the embedded network API and appliances in local network namespaces)", ErrNoProvider,
		strings.Join(cfg.KeystoneOptions, ", "))
}
