package standalone

import (
	"context"
	"errors"
	"time"

	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/orchestrator"
	"github.com/astara-go/astara/internal/provider"
)

// errNotRouter is Exit.Err for an instance whose name is not a router
// appliance's.
var errNotRouter = errors.New("the instance is no router's appliance")

// exitPollTimeout bounds the dispatch of the poll that follows an agent's
// exit (the scheduler's queue may be full).
const exitPollTimeout = 30 * time.Second

// Exit is an appliance agent seen to exit, and what followed.
type Exit struct {
	InstanceID, InstanceName string
	// RouterID is the router the instance served ("" for an instance
	// that is no router's).
	RouterID string
	// At is when the exit was seen (the local provider sees it at once),
	// Polled when the router's POLL was dispatched (zero if it was not).
	At, Polled time.Time
	// Err says why the router was not polled: it is gone
	// (provider.ErrNotFound), the orchestrator is not running, ...
	Err error
}

// onExit is the local provider's OnExit: it polls the router whose agent
// exited, so that a dead appliance is repaired at once rather than at the
// next health poll. An exit the orchestrator caused itself (it deleted
// the instance) polls the router too, which then finds nothing to do.
func (s *System) onExit(instanceID, name string) {
	e := Exit{InstanceID: instanceID, InstanceName: name, At: time.Now()}
	id, ok := router.ParseInstanceName(name)
	if ok {
		e.RouterID = id
	}
	log := s.log.With("resource_id", e.RouterID, "instance_id", instanceID, "name", name)
	o := s.orch.Load()
	switch {
	case !ok:
		e.Err = errNotRouter
	case o == nil:
		e.Err = orchestrator.ErrNotRunning
	default:
		ctx, cancel := context.WithTimeout(s.ctx, exitPollTimeout)
		e.Err = o.PollRouter(ctx, id, "exit")
		cancel()
	}
	switch {
	case errors.Is(e.Err, errNotRouter):
		s.exits.WithLabelValues("not_router").Inc()
		log.Warn("an agent exited whose instance is no router's appliance")
	case e.Err == nil:
		e.Polled = time.Now()
		s.exits.WithLabelValues("polled").Inc()
		log.Info("appliance agent exited: router polled", "detected_to_polled", e.Polled.Sub(e.At).String())
	case errors.Is(e.Err, provider.ErrNotFound):
		s.exits.WithLabelValues("gone").Inc()
		log.Info("appliance agent exited; its router is gone")
	case errors.Is(e.Err, orchestrator.ErrNotRunning):
		s.exits.WithLabelValues("not_running").Inc()
		log.Info("appliance agent exited while the orchestrator is not running: its start-up poll sees it")
	default:
		s.exits.WithLabelValues("failed").Inc()
		log.Warn("appliance agent exited; polling its router failed: the health poll will", "err", e.Err)
	}
	if s.opts.OnApplianceExit != nil {
		s.opts.OnApplianceExit(e)
	}
}
