// Package instance is the instance manager: it boots, checks, configures,
// replugs and deletes the service instance of one resource, over the
// compute and network providers, the resource's driver and the appliance
// client, and implements the state machine's state.Instance.
//
// Nothing is persisted: every operation re-reads the compute API (the
// instances named ak-router-<id>_<n>), the network API (the router, the
// appliance's ASTARA:MGT and ASTARA:VRRP ports) and the appliance. An
// orchestrator that restarts finds a running, configured appliance
// Configured, and pushes nothing.
//
// One instance per router for now. The observation of the resource (view)
// is where an HA pair's second member would be added: required count 2,
// Degraded when one is missing, the document pushed to each.
package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// Appliance is what the manager needs of the appliance REST API;
// *client.Client implements it.
type Appliance interface {
	Alive(ctx context.Context, addr netip.Addr) error
	Interfaces(ctx context.Context, addr netip.Addr) ([]client.Interface, error)
	PutConfig(ctx context.Context, addr netip.Addr, doc *model.Document) (*model.Document, error)
	GetConfig(ctx context.Context, addr netip.Addr) (*model.Document, error)
	Info(ctx context.Context, addr netip.Addr) (*client.Info, error)
}

var _ Appliance = (*client.Client)(nil)

// Defaults of Config, after the original's options.
const (
	DefaultAliveRetries   = 3                // max_retries
	DefaultConfigRetries  = 3                // max_retries
	DefaultRetryDelay     = time.Second      // retry_delay
	DefaultHotplugTimeout = 10 * time.Second // hotplug_timeout
	DefaultDeleteTimeout  = 10 * time.Minute // boot_timeout, which bounded deletes
	DefaultPollInterval   = time.Second
)

// Config configures a Manager. Zero values take the defaults.
type Config struct {
	// ImageID and FlavorID are what instances boot with ([router]
	// image_uuid and instance_flavor); SetImage overrides the image.
	ImageID, FlavorID string
	// AliveRetries is how many liveness probes UpdateState makes, back to
	// back, before it calls the appliance dead.
	AliveRetries int
	// ConfigRetries is how many times Configure pushes a document the
	// appliance failed to apply, RetryDelay apart.
	ConfigRetries int
	RetryDelay    time.Duration
	// HotplugTimeout bounds how long Replug waits for the appliance to
	// see its NICs change.
	HotplugTimeout time.Duration
	// DeleteTimeout bounds how long deleting an instance may take.
	DeleteTimeout time.Duration
	// PollInterval is the interval of the hot-plug and delete polls.
	PollInterval time.Duration
	// Now returns the time (time.Now when nil): boot times and generations.
	Now func() time.Time
	// Logger logs (slog.Default when nil).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.AliveRetries <= 0 {
		c.AliveRetries = DefaultAliveRetries
	}
	if c.ConfigRetries <= 0 {
		c.ConfigRetries = DefaultConfigRetries
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.HotplugTimeout <= 0 {
		c.HotplugTimeout = DefaultHotplugTimeout
	}
	if c.DeleteTimeout <= 0 {
		c.DeleteTimeout = DefaultDeleteTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Manager manages the service instance of one router. Its operations are
// meant to run on one goroutine at a time (the state machine's); its
// accessors (State, BootAttempts, ...) may be called from any goroutine.
type Manager struct {
	driver  *router.Driver
	net     provider.NetworkAPI
	compute provider.ComputeAPI
	app     Appliance
	cfg     Config
	log     *slog.Logger

	mu           sync.Mutex
	state        state.InstanceState
	bootAttempts int
	bootStarted  time.Time // zero unless Booting
	lastError    time.Time
	image        string
	// instanceID is the instance last booted or seen; configured is the
	// last instance found Configured (to log its boot time once).
	instanceID string
	configured string
	// generation is the highest generation pushed or seen.
	generation uint64
}

var _ state.Instance = (*Manager)(nil)

// New returns the manager of driver's router, in state Down. Call
// UpdateState before acting on its state (Open does both): only then does
// it know whether an instance already runs.
func New(driver *router.Driver, net provider.NetworkAPI, compute provider.ComputeAPI, app Appliance, cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{
		driver: driver, net: net, compute: compute, app: app, cfg: cfg,
		log:   cfg.Logger.With("resource_id", driver.ID()),
		state: state.Down,
	}
}

// Open returns a manager whose state reflects the running instance, if
// any: New followed by UpdateState. An instance that survived an
// orchestrator restart and runs the current document is Configured.
func Open(ctx context.Context, driver *router.Driver, net provider.NetworkAPI, compute provider.ComputeAPI, app Appliance, cfg Config) *Manager {
	m := New(driver, net, compute, app, cfg)
	m.UpdateState(ctx)
	return m
}

// State implements state.Instance.
func (m *Manager) State() state.InstanceState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// BootAttempts implements state.Instance.
func (m *Manager) BootAttempts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bootAttempts
}

// ResetBootCounter implements state.Instance.
func (m *Manager) ResetBootCounter() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bootAttempts = 0
}

// BootStarted implements state.Instance.
func (m *Manager) BootStarted() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bootStarted
}

// LastError is when SetError last put the resource in error (zero if never).
func (m *Manager) LastError() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastError
}

// SetImage implements state.Instance.
func (m *Manager) SetImage(image string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.image = image
}

// SetError implements state.Instance: the state is Error, published as ERROR.
func (m *Manager) SetError(ctx context.Context) {
	m.mu.Lock()
	m.lastError = m.cfg.Now()
	m.mu.Unlock()
	m.log.Warn("router in error", "boot_attempts", m.BootAttempts())
	m.set(ctx, state.Error)
}

// ClearError implements state.Instance: the boot counter is reset and the
// state is Down.
func (m *Manager) ClearError(ctx context.Context) {
	m.ResetBootCounter()
	m.set(ctx, state.Down)
}

// set records the state and publishes the router's status when it changed.
func (m *Manager) set(ctx context.Context, s state.InstanceState) state.InstanceState {
	m.mu.Lock()
	prev := m.state
	m.state = s
	if s != state.Booting {
		m.bootStarted = time.Time{}
	}
	// An instance that runs a document and merely needs an update still
	// serves the router: it stays ACTIVE (no ACTIVE, BUILD, ACTIVE flicker
	// on every change, which the original did not have either).
	publish := s
	if s == state.Up && m.configured != "" && m.configured == m.instanceID {
		publish = state.Configured
	}
	m.mu.Unlock()
	if prev != s {
		m.log.Info("instance state", "from", prev.String(), "to", s.String())
	}
	if s == state.Gone {
		return s
	}
	if err := m.driver.SyncStatus(ctx, publish); err != nil {
		if errors.Is(err, provider.ErrNotFound) {
			m.log.Debug("router status not published: the router is gone", "err", err)
		} else {
			m.log.Warn("router status not published", "err", err)
		}
	}
	return s
}

// nextGeneration returns a generation above every one pushed so far,
// derived from the clock so that it keeps increasing across restarts.
func (m *Manager) nextGeneration() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := uint64(m.cfg.Now().UnixMicro())
	if g <= m.generation {
		g = m.generation + 1
	}
	m.generation = g
	return g
}

// noteGeneration raises the generation floor to g (seen on an appliance).
func (m *Manager) noteGeneration(g uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.generation = max(m.generation, g)
}

// wait sleeps d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errGone marks an observation of a router that no longer exists.
var errGone = errors.New("the router is gone")

func gone(err error) error {
	if errors.Is(err, provider.ErrNotFound) {
		return fmt.Errorf("%w: %w", errGone, err)
	}
	return err
}
