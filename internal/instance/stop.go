package instance

import (
	"context"
	"errors"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// Stop implements state.Instance: it deletes every instance of the router
// (waiting until they are gone) and then the appliance's ports. The state
// is Down, or Gone when the router is gone; stopping a stopped router
// changes nothing. When a deletion fails the state is Restart (the
// instance is still there and must go), and the error is logged.
func (m *Manager) Stop(ctx context.Context) state.InstanceState {
	final := state.Down
	if _, err := m.driver.Router(ctx); errors.Is(err, provider.ErrNotFound) {
		final = state.Gone
	} else if err != nil {
		// The router's fate is unknown: stop anyway, and say Down.
		m.log.Warn("reading the router failed; stopping its instance anyway", "err", err)
	}
	insts, err := m.instances(ctx)
	if err != nil {
		return m.stopFailed(ctx, err)
	}
	if err := m.deleteInstances(ctx, insts); err != nil {
		return m.stopFailed(ctx, err)
	}
	if err := m.driver.DeletePorts(ctx); err != nil {
		return m.stopFailed(ctx, err)
	}
	if len(insts) > 0 {
		m.log.Info("instance stopped", "instances", len(insts))
	}
	m.mu.Lock()
	m.instanceID = ""
	m.mu.Unlock()
	return m.set(ctx, final)
}

func (m *Manager) stopFailed(ctx context.Context, err error) state.InstanceState {
	if ctx.Err() != nil {
		return m.State()
	}
	m.log.Error("stopping the instance failed", "err", err)
	return m.set(ctx, state.Restart)
}
