package standalone

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/provider/local"
)

// Purge removes what standalone mode made on this machine for cfg: every
// appliance (its processes, namespace and devices), the bridges made for
// them (releasing the host interfaces of [standalone]
// external_interfaces), the management bridge, and the whole state
// directory. The orchestrator must be stopped: Purge fails while it holds
// the state directory. Purging what is already gone does nothing.
func Purge(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Join(cfg.StateDir, "local")
	if _, err := os.Stat(dir); err == nil {
		if err := purgeInstances(ctx, cfg, dir, log); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("standalone: purge: %w", err)
	}
	if err := deleteLink(cfg.Standalone.ManagementBridge); err != nil {
		return fmt.Errorf("standalone: purge: management bridge %s: %w", cfg.Standalone.ManagementBridge, err)
	}
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		return fmt.Errorf("standalone: purge: %w", err)
	}
	log.Info("standalone mode purged", "state_dir", cfg.StateDir)
	return nil
}

// purgeInstances deletes every instance of the local provider in dir and
// the bridges it made.
func purgeInstances(ctx context.Context, cfg *config.Config, dir string, log *slog.Logger) error {
	self, err := os.Executable() // required by local.New; no agent starts
	if err != nil {
		return fmt.Errorf("standalone: purge: %w", err)
	}
	c, err := local.New(local.Options{StateDir: dir, AgentPath: self, ManagementBridge: cfg.Standalone.ManagementBridge,
		Logger: log.With("component", "local")})
	if err != nil {
		return fmt.Errorf("standalone: purge: %w", err)
	}
	insts, err := c.ListByPrefix(ctx, "")
	if err != nil {
		return errors.Join(fmt.Errorf("standalone: purge: %w", err), c.Close())
	}
	var errs []error
	for _, in := range insts {
		if err := c.Delete(ctx, in.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("appliance deleted", "instance_id", in.ID, "name", in.Name)
	}
	// Uplinks are released first: Prune keeps a bridge with anything but
	// its own instances' devices plugged in.
	byName, err := cfg.ExternalInterfaces()
	if err != nil {
		errs = append(errs, err)
	}
	for _, dev := range byName {
		if err := releaseUplink(dev); err != nil {
			errs = append(errs, fmt.Errorf("releasing uplink %s: %w", dev, err))
		}
	}
	if err := c.Prune(ctx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("standalone: purge: %w", err)
	}
	return nil
}

// releaseUplink takes the host interface dev out of the bridge it is a
// port of, if any.
func releaseUplink(dev string) error {
	l, err := netlink.LinkByName(dev)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Attrs().MasterIndex == 0 {
		return nil
	}
	master, err := netlink.LinkByIndex(l.Attrs().MasterIndex)
	if err != nil {
		return err
	}
	if master.Type() != "bridge" {
		return nil
	}
	return netlink.LinkSetNoMaster(l)
}

// deleteLink deletes the named link; a missing one is not an error.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err == nil {
		err = netlink.LinkDel(l)
	}
	return err
}
