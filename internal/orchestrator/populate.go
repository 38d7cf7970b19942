package orchestrator

import (
	"context"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/intake"
)

// populate POLLs every existing router once, at the start (the original's
// pre-populate): each gets a state machine, whose instance manager adopts
// a running appliance as it is (Configured when it runs the current
// configuration, which is then not pushed again). Listing the routers is
// retried, 1 s doubling up to [astara_appliance] max_sleep, until it works
// or ctx ends.
func (o *Orchestrator) populate(ctx context.Context, sink intake.Sink) {
	delay, maxDelay := time.Second, o.Config().Appliance.MaxSleep
	for {
		refs, err := o.deps.Network.ListRouters(ctx)
		if err == nil {
			n := 0
			for _, r := range refs {
				ev := event.Event{Resource: event.Resource{Driver: event.DriverRouter, ID: r.ID, TenantID: r.TenantID},
					Action: event.Poll, Source: "populate"}
				if err := sink.Dispatch(ctx, ev); err != nil {
					if ctx.Err() != nil {
						return
					}
					o.log.Warn("start-up poll of a router not dispatched: the health poll will find it",
						"resource_id", r.ID, "tenant_id", r.TenantID, "err", err)
					continue
				}
				n++
			}
			o.log.Info("existing routers polled", "routers", n)
			return
		}
		if ctx.Err() != nil {
			return
		}
		o.log.Warn("cannot list the routers; retrying", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, max(maxDelay, time.Second))
	}
}
