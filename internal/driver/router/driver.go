// Package router is the router driver: how a Neutron router maps onto its
// appliance. It names the router's instances, makes and deletes the
// appliance's own ports (ASTARA:MGT and ASTARA:VRRP), maps the appliance's
// NICs to networks by MAC, builds the configuration document exactly as
// the original's config builder did (astara/api/config/router.py), and
// publishes the router's status.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// ResourceName is the driver's name, as in instance names and events.
const ResourceName = "router"

// Config is the driver's configuration, shared by every router.
type Config struct {
	// ManagementNetworkID is the network of the appliances' management
	// ports (management_network_id). Required.
	ManagementNetworkID string
	// ASN and NeighborASN go into every document (asn, neighbor_asn);
	// zero means model.DefaultASN.
	ASN, NeighborASN uint32
	// Orchestrator is where appliances send metadata requests: the
	// orchestrator's management address (required), its metadata port
	// (zero means model.DefaultMetadataPort) and host name.
	Orchestrator model.Orchestrator
	// Labels are the provider rules' address labels (provider_rules.json).
	Labels map[string][]netip.Prefix
}

// withDefaults validates c and fills its defaults.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.ManagementNetworkID == "" {
		errs = append(errs, errors.New("management network id: required"))
	}
	if !c.Orchestrator.Address.IsValid() {
		errs = append(errs, errors.New("orchestrator address: required"))
	}
	if c.ASN == 0 {
		c.ASN = model.DefaultASN
	}
	if c.NeighborASN == 0 {
		c.NeighborASN = model.DefaultASN
	}
	if c.Orchestrator.MetadataPort == 0 {
		c.Orchestrator.MetadataPort = model.DefaultMetadataPort
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("router driver: %w", err)
	}
	return c, nil
}

// Driver is the router driver for one router. Its methods may be called
// from several goroutines.
type Driver struct {
	net provider.NetworkAPI
	cfg Config
	id  string
	log *slog.Logger

	mu         sync.Mutex
	lastStatus string // the status last published, or last seen on the router
}

// New returns the driver of router id; it fails when cfg is incomplete.
func New(net provider.NetworkAPI, cfg Config, id string, log *slog.Logger) (*Driver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("router driver: empty router id")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Driver{net: net, cfg: cfg, id: id, log: log.With("resource_id", id)}, nil
}

// ID returns the router's id.
func (d *Driver) ID() string { return d.id }

// Config returns the driver's configuration, defaults filled.
func (d *Driver) Config() Config { return d.cfg }

// Name returns the name prefix of the router's instances, ak-router-<id>.
func (d *Driver) Name() string { return "ak-" + ResourceName + "-" + d.id }

// InstanceName returns the name of the router's instance number n,
// ak-router-<id>_<n>.
func (d *Driver) InstanceName(n int) string { return d.Name() + "_" + strconv.Itoa(n) }

// InstanceIndex returns n for an instance named ak-router-<id>_<n>, and
// whether name is one of the router's instances (a bare ak-router-<id> is,
// with index 0).
func (d *Driver) InstanceIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, d.Name())
	if !ok {
		return 0, false
	}
	if rest == "" {
		return 0, true
	}
	digits, ok := strings.CutPrefix(rest, "_")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}

// ParseInstanceName returns the id of the router whose instance is named
// name (ak-router-<id>_<n>, or a bare ak-router-<id>), and whether name is
// a router instance's name at all.
func ParseInstanceName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "ak-"+ResourceName+"-")
	if !ok {
		return "", false
	}
	if i := strings.LastIndexByte(rest, '_'); i > 0 {
		if _, ok := (&Driver{id: rest[:i]}).InstanceIndex(name); ok {
			return rest[:i], true
		}
	}
	return rest, rest != "" // a bare ak-router-<id>
}

// Router reads the router; provider.ErrNotFound when it is gone.
func (d *Driver) Router(ctx context.Context) (*provider.Router, error) {
	r, err := d.net.GetRouter(ctx, d.id)
	if err != nil {
		return nil, fmt.Errorf("reading router %s: %w", d.id, err)
	}
	return r, nil
}

// LogicalPorts returns the router's own ports the appliance needs NICs
// for: the gateway port, then the internal router interface ports.
func LogicalPorts(r *provider.Router) []provider.Port {
	var out []provider.Port
	if r.GatewayPort != nil {
		out = append(out, *r.GatewayPort)
	}
	for _, p := range r.Interfaces {
		if isInterface(p) {
			out = append(out, p)
		}
	}
	return out
}

// LogicalNetworks returns the distinct networks of the logical ports, in
// order: the appliance gets one NIC (one VRRP port) per network.
func LogicalNetworks(r *provider.Router) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range LogicalPorts(r) {
		if !seen[p.NetworkID] {
			seen[p.NetworkID] = true
			out = append(out, p.NetworkID)
		}
	}
	return out
}

func isInterface(p provider.Port) bool {
	return p.DeviceOwner == provider.OwnerRouterInterface || p.DeviceOwner == provider.OwnerHARouterInterface
}

// MakePorts creates the appliance's ports for r: the management port
// first, then one VRRP port per logical network (the original made one per
// logical port, so two router interfaces on one network got two NICs).
// When a creation fails, the ports made so far are deleted.
func (d *Driver) MakePorts(ctx context.Context, r *provider.Router) (mgmt provider.Port, vrrp []provider.Port, err error) {
	defer func() {
		if err != nil {
			if derr := d.DeletePorts(ctx); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
			}
		}
	}()
	m, err := d.net.CreateServicePort(ctx, provider.LabelManagement, d.id, d.cfg.ManagementNetworkID)
	if err != nil {
		return provider.Port{}, nil, fmt.Errorf("creating the management port of router %s: %w", d.id, err)
	}
	if len(m.FixedIPs) == 0 {
		return provider.Port{}, nil, fmt.Errorf("management port %s of router %s has no address: the management network needs a subnet that assigns one", m.ID, d.id)
	}
	for _, netID := range LogicalNetworks(r) {
		p, err := d.CreateVRRPPort(ctx, netID)
		if err != nil {
			return provider.Port{}, nil, err
		}
		vrrp = append(vrrp, p)
	}
	return *m, vrrp, nil
}

// CreateVRRPPort creates an appliance port ASTARA:VRRP:<id> on a network.
func (d *Driver) CreateVRRPPort(ctx context.Context, networkID string) (provider.Port, error) {
	p, err := d.net.CreateServicePort(ctx, provider.LabelVRRP, d.id, networkID)
	if err != nil {
		return provider.Port{}, fmt.Errorf("creating the VRRP port of router %s on network %s: %w", d.id, networkID, err)
	}
	return *p, nil
}

// ServicePorts lists the appliance's ports: management and VRRP.
func (d *Driver) ServicePorts(ctx context.Context) (mgmt, vrrp []provider.Port, err error) {
	mgmt, err = d.net.ListPorts(ctx, provider.PortFilter{Name: provider.ServicePortName(provider.LabelManagement, d.id)})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the management ports of router %s: %w", d.id, err)
	}
	vrrp, err = d.net.ListPorts(ctx, provider.PortFilter{Name: provider.ServicePortName(provider.LabelVRRP, d.id)})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the VRRP ports of router %s: %w", d.id, err)
	}
	return mgmt, vrrp, nil
}

// DeletePorts deletes every appliance port of the router (VRRP and
// management). Deleting ports that do not exist is not an error.
func (d *Driver) DeletePorts(ctx context.Context) error {
	var errs []error
	for _, label := range []string{provider.LabelVRRP, provider.LabelManagement} {
		if err := d.net.DeleteServicePorts(ctx, label, d.id); err != nil {
			errs = append(errs, fmt.Errorf("deleting the %s ports of router %s: %w", label, d.id, err))
		}
	}
	return errors.Join(errs...)
}

// PortDeleter is implemented by network providers that can delete one
// port by id. NetworkAPI itself deletes service ports only by name.
type PortDeleter interface {
	DeletePort(ctx context.Context, id string) error
}

// ErrCannotDeletePort means the network provider cannot delete a single
// port: the port stays until DeletePorts deletes the router's ports.
var ErrCannotDeletePort = errors.New("the network provider cannot delete a single port")

// DeletePort deletes one appliance port by id (a detached VRRP port).
// A port already gone is not an error.
func (d *Driver) DeletePort(ctx context.Context, id string) error {
	pd, ok := d.net.(PortDeleter)
	if !ok {
		return fmt.Errorf("deleting port %s of router %s: %w", id, d.id, ErrCannotDeletePort)
	}
	if err := pd.DeletePort(ctx, id); err != nil && !errors.Is(err, provider.ErrNotFound) {
		return fmt.Errorf("deleting port %s of router %s: %w", id, d.id, err)
	}
	return nil
}

// Status returns the Neutron status of a router whose instance is in
// state s (the original's STATUS_MAP), and false for states that publish
// nothing (restart, replug, gone; the original PUT None for them).
func Status(s state.InstanceState) (string, bool) {
	switch s {
	case state.Down:
		return "DOWN", true
	case state.Booting, state.Up, state.Degraded:
		return "BUILD", true
	case state.Configured:
		return "ACTIVE", true
	case state.Error:
		return "ERROR", true
	}
	return "", false
}

// RecordStatus records the status the network API reports for the router
// (read with it), so that SyncStatus publishes only what differs from it:
// a restarted orchestrator does not re-publish every router's status.
func (d *Driver) RecordStatus(status string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastStatus = status
}

// SyncStatus publishes the router's status for state s through the
// network API, only when it differs from the last one published or
// recorded. A failed publication is retried by the next call.
func (d *Driver) SyncStatus(ctx context.Context, s state.InstanceState) error {
	status, ok := Status(s)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if status == d.lastStatus {
		return nil
	}
	if err := d.net.SetRouterStatus(ctx, d.id, status); err != nil {
		return fmt.Errorf("publishing status %s of router %s: %w", status, d.id, err)
	}
	d.log.Debug("router status published", "status", status, "state", s.String())
	d.lastStatus = status
	return nil
}
