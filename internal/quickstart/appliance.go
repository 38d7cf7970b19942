package quickstart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider/local"
)

// Appliance returns the local instance serving a router, from the state
// directory of standalone mode; found is false when there is none.
func Appliance(stateDir, routerID string) (in local.Info, found bool, err error) {
	insts, err := local.ReadInstances(filepath.Join(stateDir, "local"))
	if err != nil {
		return in, false, fmt.Errorf("reading the appliances: %w", err)
	}
	for _, i := range insts {
		if id, ok := router.ParseInstanceName(i.Name); ok && id == routerID {
			in, found = i, true // the last booted
		}
	}
	return in, found, nil
}

// KillAppliance kills, with SIGKILL, every process of a router's
// appliance (its agent, dnsmasq, BIRD, metadata proxy), as when the
// appliance crashes; the kernel state of its namespace stays. It returns
// the instance killed.
func KillAppliance(stateDir, routerID string) (local.Info, error) {
	in, found, err := Appliance(stateDir, routerID)
	if err != nil {
		return in, err
	}
	if !found {
		return in, fmt.Errorf("router %s has no appliance", routerID)
	}
	out, err := exec.Command("ip", "netns", "pids", in.Namespace).Output()
	if err != nil {
		return in, fmt.Errorf("listing the processes of %s: %w", in.Namespace, err)
	}
	pids := strings.Fields(string(out))
	if len(pids) == 0 {
		return in, fmt.Errorf("no process runs in %s", in.Namespace)
	}
	var errs []error
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil || pid == os.Getpid() {
			// This process, while one of its threads works in the
			// namespace (the local provider, in a test), is no
			// appliance's.
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing %d in %s: %w", pid, in.Namespace, err))
		}
	}
	return in, errors.Join(errs...)
}

// WaitRepaired waits until another instance than killed serves the router
// and the orchestrator published it ACTIVE, and returns it.
func (c *Client) WaitRepaired(ctx context.Context, stateDir, routerID, killed string) (local.Info, error) {
	var in local.Info
	err := Wait(ctx, "router "+routerID+" repaired", func() error {
		got, found, err := Appliance(stateDir, routerID)
		if err != nil {
			return err
		}
		if !found || got.ID == killed {
			return fmt.Errorf("%w: instance %s still serves the router", ErrNotYet, killed)
		}
		state, _, err := c.RouterState(ctx, routerID)
		if err != nil {
			return err
		}
		if state != "ACTIVE" {
			return fmt.Errorf("%w: new instance %s, router %s", ErrNotYet, got.ID, state)
		}
		in = got
		return nil
	})
	return in, err
}
