package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// Command carries out an operator command (the original's astara-ctl
// commands, reference §1.7):
//
//   - poll: POLL every resource.
//   - workers-debug: log every worker's status and the debug modes.
//   - config-reload: re-read the configuration (Options.Reload) and apply
//     it to the workers.
//   - global-debug (Enabled, Reason): leave every resource alone, or
//     manage them again (then POLL them all).
//   - tenant-debug / tenant-manage (TenantID, Reason): the same for one
//     tenant.
//   - resource-debug / resource-manage (ResourceID, Reason), and the
//     router-debug / router-manage aliases: the same for one resource. A
//     managed-again resource is POLLed, which carries out a DELETE it
//     received meanwhile.
//   - resource-update / resource-rebuild (ResourceID, ImageID for a
//     rebuild), and the router-update / router-rebuild aliases: UPDATE or
//     REBUILD the resource, "*" for all, "error" for those in ERROR. They
//     reach the worker owning TenantID if given, else every worker; they
//     bypass debug modes and the error cooldown. The router aliases start
//     managing a router not yet known if TenantID is given.
//
// Debug-mode changes are persisted before Command returns. Malformed
// commands fail with ErrInvalid and change nothing; an update or rebuild of
// one resource that no worker manages fails with ErrNotManaged.
func (s *Scheduler) Command(ctx context.Context, c event.CommandArgs) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w command %s: %s", ErrInvalid, c.Name, fmt.Sprintf(format, args...))
	}
	tenant := c.TenantID
	if tenant == "" {
		tenant = event.All
	}
	logCmd := func() {
		s.log.Info("command", "command", string(c.Name), "resource", c.ResourceID, "tenant", c.TenantID,
			"reason", c.Reason, "enabled", c.Enabled, "image", c.ImageID)
	}
	switch c.Name {
	case event.CmdPoll:
		return s.enqueue(ctx, event.Event{Resource: event.Resource{Driver: event.All, ID: event.All, TenantID: event.All},
			Action: event.Poll, Source: "command"})

	case event.CmdWorkersDebug:
		s.reportStatus()
		return nil

	case event.CmdConfigReload:
		// A configuration that cannot be reloaded is a permanent failure of
		// this command (ErrInvalid): redelivering it would not help.
		if s.reload == nil {
			return fmt.Errorf("command %s: %w: no configuration source to reload", c.Name, ErrInvalid)
		}
		cfg, err := s.reload(ctx)
		if err != nil {
			return fmt.Errorf("command %s: %w: %w", c.Name, ErrInvalid, err)
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("command %s: %w: %w", c.Name, ErrInvalid, err)
		}
		for _, w := range s.workers {
			if err := w.SetConfig(cfg); err != nil {
				return fmt.Errorf("command %s: %w", c.Name, err)
			}
		}
		logCmd()
		return nil

	case event.CmdGlobalDebug:
		logCmd()
		if c.Enabled {
			return s.changeDebug(s.store.EnableGlobalDebug(c.Reason))
		}
		if err := s.changeDebug(s.store.DisableGlobalDebug()); err != nil {
			return err
		}
		return s.resync(ctx, event.Resource{Driver: event.All, ID: event.All, TenantID: event.All})

	case event.CmdTenantDebug, event.CmdTenantManage:
		if c.TenantID == "" || event.IsWildcard(c.TenantID) {
			return bad("tenant_id: a tenant id is required (wildcards are not allowed)")
		}
		logCmd()
		if c.Name == event.CmdTenantDebug {
			return s.changeDebug(s.store.EnableTenantDebug(c.TenantID, c.Reason))
		}
		if err := s.changeDebug(s.store.DisableTenantDebug(c.TenantID)); err != nil {
			return err
		}
		return s.resync(ctx, event.Resource{Driver: event.All, ID: event.All, TenantID: c.TenantID})

	case event.CmdResourceDebug, event.CmdRouterDebug, event.CmdResourceManage, event.CmdRouterManage:
		if c.ResourceID == "" || event.IsWildcard(c.ResourceID) {
			return bad("resource_id: a resource id is required (wildcards are not allowed)")
		}
		logCmd()
		if c.Name == event.CmdResourceDebug || c.Name == event.CmdRouterDebug {
			return s.changeDebug(s.store.EnableResourceDebug(c.ResourceID, c.Reason))
		}
		if err := s.changeDebug(s.store.DisableResourceDebug(c.ResourceID)); err != nil {
			return err
		}
		return s.resync(ctx, event.Resource{Driver: event.All, ID: c.ResourceID, TenantID: tenant})

	case event.CmdResourceUpdate, event.CmdRouterUpdate, event.CmdResourceRebuild, event.CmdRouterRebuild:
		if c.ResourceID == "" {
			return bad("resource_id: a resource id, %q or %q is required", event.All, event.Errored)
		}
		action, driver := event.Update, event.All
		if c.Name == event.CmdResourceRebuild || c.Name == event.CmdRouterRebuild {
			action = event.Rebuild
		}
		if c.Name == event.CmdRouterUpdate || c.Name == event.CmdRouterRebuild {
			driver = event.DriverRouter
		}
		logCmd()
		args := c
		ev := event.Event{Resource: event.Resource{Driver: driver, ID: c.ResourceID, TenantID: tenant},
			Action: action, Command: &args, Source: "command"}
		n := 0
		for _, w := range s.targets(ev.Resource) {
			reached, err := w.Command(ctx, ev)
			if err != nil {
				return fmt.Errorf("command %s %s: %w", c.Name, c.ResourceID, err)
			}
			n += reached
		}
		if n == 0 && !event.IsWildcard(c.ResourceID) {
			return fmt.Errorf("command %s: %w: %s", c.Name, ErrNotManaged, c.ResourceID)
		}
		return nil

	case "":
		return bad("command: missing")
	default:
		return bad("command: unknown")
	}
}

// changeDebug refreshes the debug modes from the store after a change
// (err is the change's result).
func (s *Scheduler) changeDebug(err error) error {
	if errors.Is(err, store.ErrInvalid) {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return err
	}
	dm, err := s.store.DebugModes()
	if err != nil {
		return err
	}
	s.debug.set(dm)
	return nil
}

// resync POLLs resources managed again after a debug mode: they re-read
// what changed meanwhile, and carry out a DELETE they kept.
func (s *Scheduler) resync(ctx context.Context, r event.Resource) error {
	return s.enqueue(ctx, event.Event{Resource: r, Action: event.Poll, Source: "command"})
}

// reportStatus logs every worker's status and the debug modes
// (workers-debug).
func (s *Scheduler) reportStatus() {
	dm := s.debug.snapshot()
	global := ""
	if dm.Global != nil {
		global = dm.Global.Reason
	}
	s.log.Info("workers-debug", "workers", len(s.workers), "global_debug", dm.Global != nil, "global_debug_reason", global,
		"tenants_in_debug", len(dm.Tenants), "resources_in_debug", len(dm.Resources))
	for _, ws := range s.Workers() {
		busy := make([]string, 0, len(ws.Busy))
		for _, b := range ws.Busy {
			busy = append(busy, b.ID)
		}
		s.log.Info("workers-debug: worker", "worker", ws.ID, "goroutines", ws.Goroutines, "input_queue", ws.InputQueue,
			"run_queue", ws.RunQueue, "resources", ws.Resources, "sleeping", ws.Sleeping, "busy", busy)
	}
	for id, d := range dm.Tenants {
		s.log.Info("workers-debug: tenant in debug mode", "tenant", id, "reason", d.Reason, "since", d.Since)
	}
	for id, d := range dm.Resources {
		s.log.Info("workers-debug: resource in debug mode", "resource", id, "reason", d.Reason, "since", d.Since)
	}
}

var _ worker.DebugFilter = (*debugModes)(nil)
