package instance

import (
	"context"
	"errors"
	"slices"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// Replug implements state.Instance: it makes the instance's VRRP ports
// match the router's networks, attaching a new port for each network
// without one and detaching the ports of networks the router left (and
// second ports on one network), waits until the appliance sees the NICs
// change, then deletes exactly the detached ports (the original deleted
// the last port it looked at, whichever it was). The result is Replug
// (configure next) when done; Restart when the instance's NICs disagree
// with its ports, or an attach, a detach or the hot-plug failed; Down when
// the appliance does not answer; Gone when the router is gone; Up when the
// network or compute API cannot be read. When ctx ends, the state is left
// as it was.
func (m *Manager) Replug(ctx context.Context) state.InstanceState {
	v, nics, st, ok := m.reach(ctx, "replug")
	if !ok {
		return st
	}
	// Every NIC must be one of the instance's ports; a port whose NIC has
	// not appeared yet is waited for below.
	_, err := router.MapInterfaces(nics, v.ports())
	var mm *router.Mismatch
	if errors.As(err, &mm) && len(mm.Unknown) > 0 {
		v.log.Warn("cannot replug: the appliance has NICs that are none of its ports", "err", err)
		return m.set(ctx, state.Restart)
	}

	want := router.LogicalNetworks(v.router)
	var keep, detach []provider.Port
	for _, p := range v.vrrp {
		if slices.Contains(want, p.NetworkID) && !slices.ContainsFunc(keep, func(k provider.Port) bool { return k.NetworkID == p.NetworkID }) {
			keep = append(keep, p)
		} else {
			detach = append(detach, p)
		}
	}
	var attach []string
	for _, net := range want {
		if !slices.ContainsFunc(keep, func(k provider.Port) bool { return k.NetworkID == net }) {
			attach = append(attach, net)
		}
	}
	for _, net := range attach {
		p, err := m.driver.CreateVRRPPort(ctx, net)
		if err != nil {
			if ctx.Err() != nil {
				return m.State()
			}
			v.log.Warn("cannot replug: creating a port failed", "network_id", net, "err", err)
			return m.set(ctx, state.Up)
		}
		if err := m.compute.AttachPort(ctx, v.inst.ID, p); err != nil {
			v.log.Error("attaching a port failed", "port_id", p.ID, "network_id", net, "err", err)
			m.deletePort(ctx, v, p)
			return m.set(ctx, state.Restart)
		}
		v.log.Info("port attached", "port_id", p.ID, "network_id", net, "mac", p.MAC)
		keep = append(keep, p)
	}
	for _, p := range detach {
		if err := m.compute.DetachPort(ctx, v.inst.ID, p.ID); err != nil {
			v.log.Error("detaching a port failed", "port_id", p.ID, "network_id", p.NetworkID, "err", err)
			return m.set(ctx, state.Restart)
		}
		v.log.Info("port detached", "port_id", p.ID, "network_id", p.NetworkID, "mac", p.MAC)
	}
	// Wait even with nothing attached or detached now: a port attached
	// earlier may not have reached the appliance yet.
	if err := m.waitForNICs(ctx, v, append([]provider.Port{*v.mgmt}, keep...)); err != nil {
		if ctx.Err() != nil {
			return m.State()
		}
		v.log.Error("the appliance did not see its NICs change", "err", err)
		return m.set(ctx, state.Restart)
	}
	for _, p := range detach {
		m.deletePort(ctx, v, p)
	}
	return m.set(ctx, state.Replug)
}

// waitForNICs polls the appliance's interfaces until its NICs are exactly
// ports (at most HotplugTimeout).
func (m *Manager) waitForNICs(ctx context.Context, v *view, ports []provider.Port) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HotplugTimeout)
	defer cancel()
	var last error
	for {
		var nics []client.Interface
		nics, last = m.app.Interfaces(ctx, v.addr)
		if last == nil {
			if _, last = router.MapInterfaces(nics, ports); last == nil {
				return nil
			}
		}
		if err := wait(ctx, m.cfg.PollInterval); err != nil {
			return errors.Join(err, last)
		}
	}
}

// deletePort deletes one appliance port. A provider that cannot delete a
// single port leaves it to the deletion of all the router's ports (Stop,
// or the next Boot); it is detached and carries no address meanwhile.
func (m *Manager) deletePort(ctx context.Context, v *view, p provider.Port) {
	err := m.driver.DeletePort(ctx, p.ID)
	switch {
	case err == nil:
		v.log.Info("port deleted", "port_id", p.ID, "network_id", p.NetworkID)
	case errors.Is(err, router.ErrCannotDeletePort):
		v.log.Warn("port left until the router's ports are deleted", "port_id", p.ID, "err", err)
	default:
		v.log.Error("deleting a port failed; it goes with the router's ports", "port_id", p.ID, "err", err)
	}
}
