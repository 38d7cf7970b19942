package instance

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// view is what the manager observes of its router at the start of an
// operation, read afresh every time.
type view struct {
	router *provider.Router
	// inst is the router's instance (nil when there is none); others are
	// further instances of the router (leftovers).
	inst   *provider.Instance
	others []provider.Instance
	// mgmt and vrrp are the instance's ports: management and VRRP.
	mgmt *provider.Port
	vrrp []provider.Port
	// addr is the management address (invalid when unknown).
	addr netip.Addr
	log  *slog.Logger
}

// observe reads the router, its instances and their ports. A router that
// is gone is an error wrapping errGone.
func (m *Manager) observe(ctx context.Context) (*view, error) {
	r, err := m.driver.Router(ctx)
	if err != nil {
		return nil, gone(err)
	}
	m.driver.RecordStatus(r.Status)
	v := &view{router: r, log: m.log}
	insts, err := m.instances(ctx)
	if err != nil {
		return nil, err
	}
	if len(insts) == 0 {
		return v, nil
	}
	// The instance is the one booted last (or seen last), else the newest.
	m.mu.Lock()
	known := m.instanceID
	m.mu.Unlock()
	cur := len(insts) - 1
	if i := slices.IndexFunc(insts, func(in provider.Instance) bool { return in.ID == known }); i >= 0 {
		cur = i
	}
	inst := insts[cur]
	v.inst = &inst
	v.others = slices.Delete(slices.Clone(insts), cur, cur+1)
	v.log = m.log.With("instance_id", inst.ID)
	m.mu.Lock()
	m.instanceID = inst.ID
	m.mu.Unlock()

	mgmt, vrrp, err := m.driver.ServicePorts(ctx)
	if err != nil {
		return nil, err
	}
	// Ports attached to the instance; a compute API that does not report
	// attachments leaves the router's service ports as they are.
	attached := func(p provider.Port) bool { return len(inst.PortIDs) == 0 || slices.Contains(inst.PortIDs, p.ID) }
	for _, p := range mgmt {
		if attached(p) {
			v.mgmt = &p
			break
		}
	}
	for _, p := range vrrp {
		if attached(p) {
			v.vrrp = append(v.vrrp, p)
		}
	}
	if v.mgmt != nil && len(v.mgmt.FixedIPs) > 0 {
		v.addr = v.mgmt.FixedIPs[0].Address
	}
	return v, nil
}

// reach observes the router and reads its appliance's NICs, for an
// operation (op names it in the logs: "configure", "replug") that needs
// the appliance to answer. When it cannot go on, ok is false and st is
// the state the operation returns: Gone when the router is gone; Up when
// the network or compute API cannot be read; Down without an instance, or
// when the appliance does not answer; Restart when the instance has no
// management port or address; the state as it was when ctx ended.
func (m *Manager) reach(ctx context.Context, op string) (v *view, nics []client.Interface, st state.InstanceState, ok bool) {
	v, err := m.observe(ctx)
	switch {
	case errors.Is(err, errGone):
		return nil, nil, m.set(ctx, state.Gone), false
	case ctx.Err() != nil:
		return nil, nil, m.State(), false
	case err != nil:
		m.log.Warn("cannot "+op+": reading the router failed", "err", err)
		return nil, nil, m.set(ctx, state.Up), false
	case v.inst == nil:
		return nil, nil, m.set(ctx, state.Down), false
	case v.mgmt == nil || !v.addr.IsValid():
		v.log.Warn("cannot " + op + ": the instance has no management port or address")
		return nil, nil, m.set(ctx, state.Restart), false
	}
	nics, err = m.app.Interfaces(ctx, v.addr)
	if ctx.Err() != nil {
		return nil, nil, m.State(), false
	}
	if err != nil {
		v.log.Warn("cannot "+op+": the appliance does not answer", "err", err)
		return nil, nil, m.set(ctx, state.Down), false
	}
	return v, nics, st, true
}

// instances lists the router's instances, oldest (lowest index) first.
func (m *Manager) instances(ctx context.Context) ([]provider.Instance, error) {
	all, err := m.compute.ListByPrefix(ctx, m.driver.Name())
	if err != nil {
		return nil, fmt.Errorf("listing the instances of router %s: %w", m.driver.ID(), err)
	}
	type indexed struct {
		provider.Instance
		n int
	}
	var mine []indexed
	for _, in := range all {
		if n, ok := m.driver.InstanceIndex(in.Name); ok {
			mine = append(mine, indexed{in, n})
		}
	}
	slices.SortStableFunc(mine, func(a, b indexed) int { return cmp.Or(cmp.Compare(a.n, b.n), a.Created.Compare(b.Created)) })
	out := make([]provider.Instance, len(mine))
	for i, in := range mine {
		out[i] = in.Instance
	}
	return out, nil
}

// ports returns the instance's ports, management first.
func (v *view) ports() []provider.Port {
	var out []provider.Port
	if v.mgmt != nil {
		out = append(out, *v.mgmt)
	}
	return append(out, v.vrrp...)
}

// alive probes the appliance up to AliveRetries times, back to back (each
// probe is bounded by the client's alive timeout).
func (m *Manager) alive(ctx context.Context, v *view) bool {
	var err error
	for range m.cfg.AliveRetries {
		if err = m.app.Alive(ctx, v.addr); err == nil {
			return true
		}
		if ctx.Err() != nil {
			break
		}
	}
	v.log.Debug("appliance not answering", "addr", v.addr.String(), "err", err)
	return false
}

// verify maps the appliance's NICs to networks and reports whether they
// are exactly the management network and the router's logical networks.
func verify(v *view, nics []client.Interface) (router.InterfaceMap, bool) {
	ifmap, err := router.MapInterfaces(nics, v.ports())
	if err != nil {
		v.log.Info("the appliance's NICs do not match its ports", "err", err)
		return ifmap, false
	}
	want := router.LogicalNetworks(v.router)
	if v.mgmt != nil {
		want = append(want, v.mgmt.NetworkID)
	}
	slices.Sort(want)
	if have := ifmap.Networks(); !slices.Equal(have, want) {
		v.log.Info("the appliance's networks differ from the router's", "have", have, "want", want)
		return ifmap, false
	}
	return ifmap, true
}

// runsCurrent reports whether the appliance already runs the document the
// router needs now (compared without the generation).
func (m *Manager) runsCurrent(ctx context.Context, v *view) bool {
	cur, err := m.app.GetConfig(ctx, v.addr)
	if err != nil || cur == nil {
		if err != nil {
			v.log.Info("reading the appliance's document failed", "err", err)
		}
		return false
	}
	nics, err := m.app.Interfaces(ctx, v.addr)
	if err != nil {
		v.log.Info("reading the appliance's interfaces failed", "err", err)
		return false
	}
	ifmap, ok := verify(v, nics)
	if !ok {
		return false
	}
	want, err := m.driver.BuildConfig(ctx, v.router, *v.mgmt, ifmap)
	if err != nil {
		v.log.Info("building the document failed", "err", err)
		return false
	}
	same, err := sameDocument(want, cur)
	if err != nil {
		v.log.Warn("comparing documents failed", "err", err)
		return false
	}
	if same {
		m.noteGeneration(cur.Generation)
	}
	return same
}

// sameDocument reports whether two documents say the same thing, whatever
// their generations and the order of their lists.
func sameDocument(a, b *model.Document) (bool, error) {
	ca, err := canonical(a)
	if err != nil {
		return false, err
	}
	cb, err := canonical(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ca, cb), nil
}

// canonical encodes a document as the appliance would hold it (decoded,
// defaults filled), without generation, lists sorted.
func canonical(d *model.Document) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	c, err := model.Decode(b)
	if err != nil {
		return nil, err
	}
	c.Generation = 0
	slices.SortFunc(c.Networks, func(x, y model.Network) int { return cmp.Compare(x.ID, y.ID) })
	for i := range c.Networks {
		n := &c.Networks[i]
		slices.SortFunc(n.Interface.Addresses, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
		slices.SortFunc(n.Subnets, func(x, y model.Subnet) int { return cmp.Compare(x.ID, y.ID) })
		slices.SortFunc(n.Allocations, func(x, y model.Allocation) int {
			return cmp.Or(cmp.Compare(x.MACAddress, y.MACAddress), cmp.Compare(x.DeviceID, y.DeviceID))
		})
	}
	slices.SortFunc(c.FloatingIPs, func(x, y model.FloatingIP) int { return x.FloatingIP.Compare(y.FloatingIP) })
	return json.Marshal(c)
}

// UpdateState implements state.Instance: Gone when the router is gone;
// Down without an instance, or when one that answered (Up, Configured)
// stopped answering, or is in ERROR in the compute API; Booting while it
// builds or does not answer yet; Configured when it answers and runs the
// document the router needs now (compared with GET /v1/system/config,
// ignoring the generation); Up when it answers otherwise. When the network
// or compute API cannot be read, or ctx ends, the state is unchanged.
func (m *Manager) UpdateState(ctx context.Context) state.InstanceState {
	v, err := m.observe(ctx)
	switch {
	case errors.Is(err, errGone):
		return m.set(ctx, state.Gone)
	case err != nil:
		m.log.Warn("cannot update the instance's state", "err", err)
		return m.State()
	case v.inst == nil:
		return m.set(ctx, state.Down)
	}
	prev := m.State()
	switch v.inst.Status {
	case provider.InstanceError:
		v.log.Warn("the instance is in ERROR in the compute API")
		return m.set(ctx, state.Down)
	case provider.InstanceBuild:
		return m.booting(ctx, v)
	}
	if !v.addr.IsValid() {
		v.log.Warn("the instance has no management address")
		return m.booting(ctx, v)
	}
	if !m.alive(ctx, v) {
		if ctx.Err() != nil {
			return prev
		}
		switch prev {
		case state.Up, state.Configured, state.Replug, state.Degraded:
			v.log.Warn("the appliance stopped answering", "addr", v.addr.String())
			return m.set(ctx, state.Down)
		}
		return m.booting(ctx, v)
	}
	// Level-triggered: every check compares what runs with what the
	// router needs now, so a lost notification only delays convergence
	// until the next poll.
	if !m.runsCurrent(ctx, v) {
		if ctx.Err() != nil {
			return prev
		}
		return m.set(ctx, state.Up)
	}
	m.markConfigured(v)
	return m.set(ctx, state.Configured)
}

// booting sets Booting, with the boot time of the instance if the manager
// did not boot it.
func (m *Manager) booting(ctx context.Context, v *view) state.InstanceState {
	m.mu.Lock()
	if m.state != state.Booting || m.bootStarted.IsZero() {
		m.bootStarted = v.inst.Created
		if m.bootStarted.IsZero() {
			m.bootStarted = m.cfg.Now()
		}
	}
	m.mu.Unlock()
	return m.set(ctx, state.Booting)
}

// markConfigured records that the instance runs the current document, and
// forgets failed boots.
func (m *Manager) markConfigured(v *view) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.configured != v.inst.ID {
		v.log.Info("instance configured", "since_boot", m.cfg.Now().Sub(v.inst.Created).Round(time.Millisecond).String())
	}
	m.configured = v.inst.ID
	m.bootAttempts = 0
}
