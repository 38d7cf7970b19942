package instance

import (
	"context"
	"errors"
	"maps"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/state"
)

// Configure implements state.Instance: it checks the appliance's NICs
// against the router's networks (Replug when they differ), builds the
// document and pushes it with a new generation. The result:
//
//   - Configured when the appliance applied it;
//   - Replug when the NICs do not match the networks;
//   - Gone when the router is gone; Down without an instance, or when the
//     appliance does not answer;
//   - Error when the router's data cannot make a valid document, or the
//     appliance rejects the document (retrying cannot help until the data
//     changes; SetError's cooldown applies);
//   - Restart when the appliance failed to apply it ConfigRetries times,
//     or the instance has no management port;
//   - Up (not configured) when the network or compute API cannot be read.
//
// When ctx ends, the state is left as it was.
func (m *Manager) Configure(ctx context.Context) state.InstanceState {
	v, nics, st, ok := m.reach(ctx, "configure")
	if !ok {
		return st
	}
	ifmap, ok := verify(v, nics)
	if !ok {
		return m.set(ctx, state.Replug)
	}
	for attempt := 1; ; attempt++ {
		doc, err := m.driver.BuildConfig(ctx, v.router, *v.mgmt, ifmap)
		var cerr *router.ConfigError
		switch {
		case errors.As(err, &cerr):
			v.log.Error("the router's data cannot make a valid document", "err", err)
			m.SetError(ctx)
			return state.Error
		case ctx.Err() != nil:
			return m.State()
		case err != nil:
			v.log.Warn("cannot configure: reading the router's networks failed", "err", err)
			return m.set(ctx, state.Up)
		}
		doc.Generation = m.nextGeneration()
		_, err = m.app.PutConfig(ctx, v.addr, doc)
		if err == nil {
			v.log.Info("document applied", "generation", doc.Generation)
			m.markConfigured(v)
			return m.set(ctx, state.Configured)
		}
		if ctx.Err() != nil {
			// Shutting down: what the appliance applied is unknown.
			return m.State()
		}
		if attempt >= m.cfg.ConfigRetries {
			v.log.Error("the appliance failed to apply the document", "attempts", attempt, "err", err)
			return m.set(ctx, state.Restart)
		}
		var (
			stale    *client.StaleError
			rejected *client.RejectedError
		)
		switch {
		case errors.As(err, &stale):
			// Another orchestrator (or a clock that went back) pushed a
			// newer generation: go above it.
			info, ierr := m.app.Info(ctx, v.addr)
			if ierr != nil {
				v.log.Warn("reading the appliance's generation failed", "err", ierr)
				return m.set(ctx, state.Down)
			}
			v.log.Warn("the appliance holds a newer generation", "refused", doc.Generation, "applied", info.Generation)
			m.noteGeneration(info.Generation)
		case errors.As(err, &rejected):
			// A hot-plug may have renumbered the NICs since they were
			// read (the lladdr of each interface guards against that).
			nics, ierr := m.app.Interfaces(ctx, v.addr)
			if ierr != nil {
				v.log.Warn("cannot configure: the appliance does not answer", "err", ierr)
				return m.set(ctx, state.Down)
			}
			now, ok := verify(v, nics)
			if !ok {
				return m.set(ctx, state.Replug)
			}
			if maps.EqualFunc(now, ifmap, func(a, b router.Attachment) bool { return a.IfName == b.IfName && a.MAC == b.MAC }) {
				v.log.Error("the appliance rejected the document", "err", err)
				m.SetError(ctx)
				return state.Error
			}
			v.log.Info("the appliance's NICs were renumbered; rebuilding the document")
			ifmap = now
		default:
			v.log.Warn("pushing the document failed; retrying", "attempt", attempt, "err", err)
			if wait(ctx, m.cfg.RetryDelay) != nil {
				return m.State()
			}
		}
	}
}
