package quickstart

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/astara-go/astara/internal/appliance/lab"
)

// pollInterval is how often waits look again.
const pollInterval = 50 * time.Millisecond

// PlugHost makes the network namespace ns stand for a machine on a
// network: its eth0 is a veth with mac (random if nil) whose peer, named
// ns too, is a port of bridge; addr, if valid, is set on eth0 and its
// gateway, if valid, is the default route. A namespace or device left by
// an earlier run under that name is removed first.
func PlugHost(ctx context.Context, ns, bridge string, mac net.HardwareAddr, addr netip.Prefix, gateway netip.Addr) error {
	if len(ns) > 15 {
		return fmt.Errorf("host %s: longer than an interface name (15 bytes)", ns)
	}
	if err := RemoveHost(ns); err != nil {
		return err
	}
	cmds := [][]string{
		{"netns", "add", ns},
		{"link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", ns, "link", "set", "lo", "up"},
	}
	if mac != nil {
		cmds = append(cmds, []string{"-n", ns, "link", "set", "eth0", "address", mac.String()})
	}
	cmds = append(cmds, []string{"-n", ns, "link", "set", "eth0", "up"},
		[]string{"link", "set", ns, "master", bridge, "up"})
	if addr.IsValid() {
		cmds = append(cmds, []string{"-n", ns, "addr", "add", addr.String(), "dev", "eth0"})
	}
	if gateway.IsValid() {
		cmds = append(cmds, []string{"-n", ns, "route", "add", "default", "via", gateway.String()})
	}
	for _, c := range cmds {
		if err := ip(ctx, c...); err != nil {
			return errors.Join(fmt.Errorf("host %s: %w", ns, err), RemoveHost(ns))
		}
	}
	return nil
}

// RemoveHost kills what runs in the namespace ns and deletes it and its
// veth; a missing one is not an error.
func RemoveHost(ns string) error {
	var errs []error
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
		lab.KillNamespace(ns)
		if err := ip(context.Background(), "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if l, err := netlink.LinkByName(ns); err == nil {
		// Deleting the namespace deletes the veth's host end too, but
		// not at once: it may vanish under LinkDel.
		if err := netlink.LinkDel(l); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", ns, err))
		}
	}
	return errors.Join(errs...)
}

// WaitLink waits until the host has the network device name (a bridge
// the local provider makes when it plugs a router's port).
func WaitLink(ctx context.Context, name string) error {
	return Wait(ctx, "device "+name, func() error {
		_, err := netlink.LinkByName(name)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return ErrNotYet
		}
		return err
	})
}

// Ping pings addr from namespace ns every 20 ms until one answer comes
// back (it returns then, so the time it returns is when the path first
// worked, within 20 ms) or ctx ends (default: within a minute). A ping
// that gives up early (a failed neighbour resolution) is started again.
func Ping(ctx context.Context, ns, addr string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	for {
		d, _ := ctx.Deadline()
		secs := fmt.Sprint(max(int(time.Until(d).Round(time.Second)/time.Second), 1))
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.02", "-c", "1", "-w", secs, addr).CombinedOutput()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ping from %s to %s: %w: %s", ns, addr, err, lastLine(out))
		case <-time.After(pollInterval): // a ping that fails at once must not spin
		}
	}
}

// PingOnce pings addr from namespace ns once, waiting a second for the
// answer.
func PingOnce(ctx context.Context, ns, addr string) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "1", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping from %s to %s: %w: %s", ns, addr, err, lastLine(out))
	}
	return nil
}

// Wait calls cond until it returns nil, or an error other than ErrNotYet,
// or ctx ends (then the last ErrNotYet says what was still missing).
func Wait(ctx context.Context, what string, cond func() error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil || !errors.Is(err, ErrNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
