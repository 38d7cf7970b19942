package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/provider"
)

// Runner runs what a booted instance is: nothing, a fake appliance, or a
// real agent in a network namespace whose NICs carry the ports' MACs.
type Runner interface {
	// Start starts the instance; an error leaves it in ERROR, as a failed
	// Nova boot does.
	Start(ctx context.Context, spec RunSpec) error
	// Stop stops the instance and frees what it holds; stopping one that is
	// not running is not an error.
	Stop(ctx context.Context, instanceID string) error
	// Attach hot-plugs a NIC for port.
	Attach(ctx context.Context, instanceID string, port provider.Port) error
	// Detach unplugs port's NIC.
	Detach(ctx context.Context, instanceID string, port provider.Port) error
}

// RunSpec is what a Runner starts.
type RunSpec struct {
	Instance provider.Instance
	// ManagementPort is the first NIC; Ports follow in order.
	ManagementPort provider.Port
	Ports          []provider.Port
	UserData       []byte
}

// NopRunner runs nothing: instances boot ACTIVE and never answer.
type NopRunner struct{}

// Start implements Runner.
func (NopRunner) Start(context.Context, RunSpec) error { return nil }

// Stop implements Runner.
func (NopRunner) Stop(context.Context, string) error { return nil }

// Attach implements Runner.
func (NopRunner) Attach(context.Context, string, provider.Port) error { return nil }

// Detach implements Runner.
func (NopRunner) Detach(context.Context, string, provider.Port) error { return nil }

// Compute is an in-memory provider.ComputeAPI. Boot hands the instance to
// the Runner synchronously: the instance is ACTIVE when Boot returns, or
// ERROR when the Runner failed. Deletes are immediate.
type Compute struct {
	faults
	runner Runner
	net    *Network
	now    func() time.Time

	mu        sync.Mutex
	instances []*instanceRecord
	boots     int
}

type instanceRecord struct {
	provider.Instance
	ports    []provider.Port
	userData []byte
}

var _ provider.ComputeAPI = (*Compute)(nil)

// NewCompute returns a compute API running instances with runner. When net
// is not nil, ports are bound to the instances they are attached to
// (device_id and device_owner "compute:nova"), as Nova does.
func NewCompute(runner Runner, net *Network) *Compute {
	if runner == nil {
		runner = NopRunner{}
	}
	return &Compute{runner: runner, net: net, now: time.Now}
}

// ComputeOwner is the device owner of ports bound to instances.
const ComputeOwner = "compute:nova"

// Fail makes the next times calls of op fail with err (times < 0: every
// call; nil err or zero times: clear). Ops are the ComputeAPI methods, and
// "Start": the instance is created but goes to ERROR without running.
func (c *Compute) Fail(op string, err error, times int) { c.faults.set(op, err, times) }

// Kill makes an instance die: its Runner stops it, but the compute API
// still reports it ACTIVE (a crashed or hung guest).
func (c *Compute) Kill(ctx context.Context, id string) error {
	c.mu.Lock()
	rec := c.record(id)
	c.mu.Unlock()
	if rec == nil {
		return fmt.Errorf("instance %s: %w", id, provider.ErrNotFound)
	}
	if err := c.runner.Stop(ctx, id); err != nil {
		return fmt.Errorf("killing instance %s: %w", id, err)
	}
	return nil
}

// SetStatus overrides an instance's status.
func (c *Compute) SetStatus(id string, s provider.InstanceStatus) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.record(id)
	if rec == nil {
		return fmt.Errorf("instance %s: %w", id, provider.ErrNotFound)
	}
	rec.Status = s
	return nil
}

// Boots counts the Boot calls that created an instance.
func (c *Compute) Boots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boots
}

// UserData returns the user data an instance was booted with.
func (c *Compute) UserData(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.record(id)
	if rec == nil {
		return nil, false
	}
	return slices.Clone(rec.userData), true
}

// Instances lists every instance, in boot order.
func (c *Compute) Instances() []provider.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]provider.Instance, len(c.instances))
	for i, r := range c.instances {
		out[i] = copyInstance(&r.Instance)
	}
	return out
}

// Boot implements provider.ComputeAPI.
func (c *Compute) Boot(ctx context.Context, spec provider.BootSpec) (*provider.Instance, error) {
	if err := c.check("Boot"); err != nil {
		return nil, err
	}
	if spec.Name == "" || spec.ManagementPort.ID == "" {
		return nil, errors.New("boot: the name and the management port are required")
	}
	ports := append([]provider.Port{spec.ManagementPort}, spec.Ports...)
	rec := &instanceRecord{
		Instance: provider.Instance{ID: newID(), Name: spec.Name, ImageID: spec.ImageID, Status: provider.InstanceBuild, Created: c.now()},
		ports:    ports,
		userData: slices.Clone(spec.UserData),
	}
	for _, p := range ports {
		rec.PortIDs = append(rec.PortIDs, p.ID)
	}
	if err := c.bind(ports, rec.ID); err != nil {
		return nil, fmt.Errorf("boot %s: %w", spec.Name, err)
	}
	c.mu.Lock()
	c.instances = append(c.instances, rec)
	c.boots++
	c.mu.Unlock()

	err := c.check("Start")
	if err == nil {
		err = c.runner.Start(ctx, RunSpec{Instance: copyInstance(&rec.Instance), ManagementPort: spec.ManagementPort,
			Ports: slices.Clone(spec.Ports), UserData: slices.Clone(spec.UserData)})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		rec.Status = provider.InstanceError
	} else if rec.Status == provider.InstanceBuild {
		rec.Status = provider.InstanceActive
	}
	out := copyInstance(&rec.Instance)
	return &out, nil
}

// Get implements provider.ComputeAPI.
func (c *Compute) Get(ctx context.Context, id string) (*provider.Instance, error) {
	if err := c.check("Get"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.record(id)
	if rec == nil {
		return nil, fmt.Errorf("instance %s: %w", id, provider.ErrNotFound)
	}
	out := copyInstance(&rec.Instance)
	return &out, nil
}

// ListByPrefix implements provider.ComputeAPI.
func (c *Compute) ListByPrefix(ctx context.Context, prefix string) ([]provider.Instance, error) {
	if err := c.check("ListByPrefix"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []provider.Instance{}
	for _, r := range c.instances {
		if strings.HasPrefix(r.Name, prefix) {
			out = append(out, copyInstance(&r.Instance))
		}
	}
	return out, nil
}

// Delete implements provider.ComputeAPI: the Runner stops the instance,
// its ports are unbound, and it is gone at once.
func (c *Compute) Delete(ctx context.Context, id string) error {
	if err := c.check("Delete"); err != nil {
		return err
	}
	c.mu.Lock()
	rec := c.record(id)
	c.mu.Unlock()
	if rec == nil {
		return nil
	}
	if err := c.runner.Stop(ctx, id); err != nil {
		return fmt.Errorf("deleting instance %s: %w", id, err)
	}
	c.mu.Lock()
	c.instances = slices.DeleteFunc(c.instances, func(r *instanceRecord) bool { return r.ID == id })
	ports := rec.ports
	c.mu.Unlock()
	return c.unbind(ports, id)
}

// AttachPort implements provider.ComputeAPI.
func (c *Compute) AttachPort(ctx context.Context, instanceID string, port provider.Port) error {
	if err := c.check("AttachPort"); err != nil {
		return err
	}
	c.mu.Lock()
	rec := c.record(instanceID)
	attached := rec != nil && slices.Contains(rec.PortIDs, port.ID)
	c.mu.Unlock()
	switch {
	case rec == nil:
		return fmt.Errorf("attaching port %s: instance %s: %w", port.ID, instanceID, provider.ErrNotFound)
	case attached:
		return fmt.Errorf("port %s is already attached to instance %s", port.ID, instanceID)
	}
	if err := c.runner.Attach(ctx, instanceID, port); err != nil {
		return fmt.Errorf("attaching port %s to instance %s: %w", port.ID, instanceID, err)
	}
	c.mu.Lock()
	rec.PortIDs = append(rec.PortIDs, port.ID)
	rec.ports = append(rec.ports, port)
	c.mu.Unlock()
	return c.bind([]provider.Port{port}, instanceID)
}

// DetachPort implements provider.ComputeAPI.
func (c *Compute) DetachPort(ctx context.Context, instanceID, portID string) error {
	if err := c.check("DetachPort"); err != nil {
		return err
	}
	c.mu.Lock()
	rec := c.record(instanceID)
	var port provider.Port
	i := -1
	if rec != nil {
		i = slices.IndexFunc(rec.ports, func(p provider.Port) bool { return p.ID == portID })
		if i >= 0 {
			port = rec.ports[i]
		}
	}
	c.mu.Unlock()
	switch {
	case rec == nil:
		return fmt.Errorf("detaching port %s: instance %s: %w", portID, instanceID, provider.ErrNotFound)
	case i < 0:
		return fmt.Errorf("port %s is not attached to instance %s: %w", portID, instanceID, provider.ErrNotFound)
	}
	if err := c.runner.Detach(ctx, instanceID, port); err != nil {
		return fmt.Errorf("detaching port %s from instance %s: %w", portID, instanceID, err)
	}
	c.mu.Lock()
	rec.ports = slices.DeleteFunc(rec.ports, func(p provider.Port) bool { return p.ID == portID })
	rec.PortIDs = slices.DeleteFunc(rec.PortIDs, func(id string) bool { return id == portID })
	c.mu.Unlock()
	return c.unbind([]provider.Port{port}, instanceID)
}

func (c *Compute) bind(ports []provider.Port, instanceID string) error {
	if c.net == nil {
		return nil
	}
	for _, p := range ports {
		if err := c.net.BindPort(p.ID, instanceID, ComputeOwner); err != nil {
			return err
		}
	}
	return nil
}

// unbind clears the device of ports still bound to the instance; ports
// deleted meanwhile are skipped.
func (c *Compute) unbind(ports []provider.Port, instanceID string) error {
	if c.net == nil {
		return nil
	}
	for _, p := range ports {
		cur, ok := c.net.Port(p.ID)
		if !ok || cur.DeviceID != instanceID {
			continue
		}
		if err := c.net.BindPort(p.ID, "", ""); err != nil && !errors.Is(err, provider.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (c *Compute) record(id string) *instanceRecord {
	for _, r := range c.instances {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func copyInstance(i *provider.Instance) provider.Instance {
	c := *i
	c.PortIDs = slices.Clone(i.PortIDs)
	return c
}
