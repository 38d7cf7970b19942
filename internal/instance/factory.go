package instance

import (
	"context"
	"errors"
	"fmt"

	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// Factory makes the instance managers of resources; its NewInstance has
// the shape of the worker's factory. Every manager shares the providers,
// the appliance client and the configuration.
type Factory struct {
	Network   provider.NetworkAPI
	Compute   provider.ComputeAPI
	Appliance Appliance
	// Router configures the router driver: management network, ASNs,
	// orchestrator address and metadata port, labels.
	Router router.Config
	// Config configures the managers: image, flavor, retries, timeouts.
	Config Config
}

// NewInstance returns the manager of resource r, in state Down: the caller
// calls UpdateState before acting on it (the worker does), which adopts an
// instance that already runs.
func (f *Factory) NewInstance(ctx context.Context, r event.Resource) (state.Instance, error) {
	if f.Network == nil || f.Compute == nil || f.Appliance == nil {
		return nil, errors.New("instance factory: the network, compute and appliance clients are required")
	}
	if r.Driver != router.ResourceName {
		return nil, fmt.Errorf("instance factory: no driver %q (only %q)", r.Driver, router.ResourceName)
	}
	if event.IsWildcard(r.ID) {
		return nil, fmt.Errorf("instance factory: %q is not a resource id", r.ID)
	}
	d, err := router.New(f.Network, f.Router, r.ID, f.Config.Logger)
	if err != nil {
		return nil, fmt.Errorf("instance factory: %w", err)
	}
	return New(d, f.Network, f.Compute, f.Appliance, f.Config), nil
}
