package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/store"
)

// Factory creates the instance manager of a resource the worker starts
// managing. It is called on a worker goroutine, never while holding a lock,
// the first time the resource's machine runs; the worker then calls
// UpdateState before anything else, so a healthy instance that survived a
// restart is adopted as it is.
type Factory interface {
	NewInstance(ctx context.Context, r event.Resource) (state.Instance, error)
}

// FactoryFunc adapts a function to Factory.
type FactoryFunc func(ctx context.Context, r event.Resource) (state.Instance, error)

// NewInstance calls f.
func (f FactoryFunc) NewInstance(ctx context.Context, r event.Resource) (state.Instance, error) {
	return f(ctx, r)
}

// Resolver finds the resources of a tenant, for events that name only the
// tenant (Resource.ID == ""): port, subnet and floating-IP notifications.
type Resolver interface {
	// ResourcesOfTenant returns the ids of every resource of one driver
	// that a tenant owns.
	ResourcesOfTenant(ctx context.Context, driver, tenantID string) ([]string, error)
}

// NetworkResolver resolves routers through the network API. Every router
// of the tenant gets the event (the original picked the first one).
type NetworkResolver struct {
	API provider.NetworkAPI
}

// ResourcesOfTenant implements Resolver for the router driver.
func (r NetworkResolver) ResourcesOfTenant(ctx context.Context, driver, tenantID string) ([]string, error) {
	if driver != event.DriverRouter {
		return nil, fmt.Errorf("resolve resources of tenant %s: no resolver for driver %q", tenantID, driver)
	}
	refs, err := r.API.RoutersOfTenant(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("resolve routers of tenant %s: %w", tenantID, err)
	}
	ids := make([]string, 0, len(refs))
	for _, ref := range refs {
		ids = append(ids, ref.ID)
	}
	return ids, nil
}

// DebugFilter says which resources are in debug mode (global, tenant or
// resource), that is, left alone by the orchestrator.
type DebugFilter interface {
	InDebug(tenantID, resourceID string) bool
}

// Journal is the durable record of pending work; *store.DB implements it.
type Journal interface {
	// PutPending records work left when the worker stops.
	PutPending(p ...store.Pending) error
	// DeletePending forgets a resource's pending work: its machine exited,
	// so an accepted DELETE has been carried out.
	DeletePending(resourceID string) error
}

// Config is a worker's configuration.
type Config struct {
	// Threads is how many goroutines run state machines (the original's
	// num_worker_threads).
	Threads int
	// QueueSize bounds the input queue: Enqueue blocks while it is full.
	QueueSize int
	// QueueWarning is the queue length above which a resource's queue is
	// logged (queue_warning_threshold).
	QueueWarning int
	// History is how many transitions are kept per resource.
	History int
	// Deleted is how many deleted resource ids are remembered, so that
	// late events do not bring them back.
	Deleted int
	// ResolveTimeout bounds a resolution of an id-less event.
	ResolveTimeout time.Duration
	// ResolveTTL is how long a tenant's resolved resources are trusted
	// before id-less events resolve them again.
	ResolveTTL time.Duration
	// State configures the state machines.
	State state.Config
}

// DefaultConfig returns the defaults (the original's where it had them).
func DefaultConfig() Config {
	return Config{
		Threads:        4,
		QueueSize:      1024,
		QueueWarning:   100,
		History:        16,
		Deleted:        50,
		ResolveTimeout: 10 * time.Second,
		ResolveTTL:     5 * time.Minute,
		State:          state.DefaultConfig(),
	}
}

// Validate reports every invalid field, by option name.
func (c Config) Validate() error {
	var errs []error
	atLeast := func(name string, v, min int) {
		if v < min {
			errs = append(errs, fmt.Errorf("%s: must be at least %d, got %d", name, min, v))
		}
	}
	atLeast("num_worker_threads", c.Threads, 1)
	atLeast("worker_queue_size", c.QueueSize, 1)
	atLeast("queue_warning_threshold", c.QueueWarning, 1)
	atLeast("resource_history", c.History, 0)
	atLeast("deleted_memory", c.Deleted, 0)
	if c.ResolveTimeout <= 0 {
		errs = append(errs, fmt.Errorf("resolve_timeout: must be positive, got %s", c.ResolveTimeout))
	}
	if c.ResolveTTL < 0 {
		errs = append(errs, fmt.Errorf("resolve_ttl: must not be negative, got %s", c.ResolveTTL))
	}
	if err := c.State.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
