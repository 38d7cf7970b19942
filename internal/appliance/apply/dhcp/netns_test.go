package dhcp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

// dhclient runs one DHCP exchange in a VM namespace. It never touches the
// host: its script only records the environment dhclient hands it, its lease
// and pid files are private, and it does not configure the interface.
type dhclient struct {
	dir string
	cmd *exec.Cmd
	out bytes.Buffer
}

func startDhclient(t *testing.T, ns, ifname string, v6 bool, timeout int) *dhclient {
	t.Helper()
	d := &dhclient{dir: t.TempDir()}
	script := filepath.Join(d.dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n# Record, atomically, what dhclient says; configure nothing.\nenv | sort > \""+d.dir+"/.$reason\" && mv \""+d.dir+"/.$reason\" \""+d.dir+"/$reason\"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(d.dir, "dhclient.conf")
	confText := fmt.Sprintf(`option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name-servers, host-name,
	interface-mtu, rfc3442-classless-static-routes, dhcp6.name-servers;
timeout %d;
initial-interval 1;
backoff-cutoff 2;
`, timeout)
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", ns, "dhclient", "-d", "-1", "-v",
		"-sf", script, "-cf", conf, "-lf", filepath.Join(d.dir, "leases"), "-pf", filepath.Join(d.dir, "pid")}
	if v6 {
		args = append(args, "-6", "-D", "LL")
	} else {
		args = append(args, "-4")
	}
	d.cmd = exec.Command("ip", append(args, ifname)...)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	return d
}

// stop kills dhclient (it is waited for by whoever started waiting).
func (d *dhclient) stop() { _ = d.cmd.Process.Signal(syscall.SIGKILL) }

// env returns what dhclient passed to its script for reason, or nil.
func (d *dhclient) env(reason string) map[string]string {
	b, err := os.ReadFile(filepath.Join(d.dir, reason))
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	return m
}

// lease runs dhclient until it is bound and returns the script's environment.
func lease(t *testing.T, ns, ifname string, v6 bool) map[string]string {
	t.Helper()
	reason := "BOUND"
	if v6 {
		reason = "BOUND6"
		// dhclient -6 gives up at once without a usable link-local address.
		nstest.WaitFor(t, 30*time.Second, "a link-local address on "+ifname, func() bool {
			out, err := exec.Command("ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "dev", ifname, "scope", "link").Output()
			return err == nil && strings.Contains(string(out), "inet6 fe80") && !strings.Contains(string(out), "tentative")
		})
	}
	d := startDhclient(t, ns, ifname, v6, 60)
	defer d.stop()
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	deadline := time.After(90 * time.Second)
	for interval := 20 * time.Millisecond; ; interval = min(interval*2, 250*time.Millisecond) {
		if env := d.env(reason); env != nil {
			return env
		}
		select {
		case <-exited:
			if env := d.env(reason); env != nil {
				return env
			}
			t.Fatalf("dhclient exited without a lease on %s in %s:\n%s", ifname, ns, d.out.String())
		case <-deadline:
			d.stop()
			<-exited
			t.Fatalf("no DHCP lease on %s in %s:\n%s", ifname, ns, d.out.String())
		case <-time.After(interval):
		}
	}
}

// noLease checks that dhclient gives up (dhclient's own timeout) without a lease.
func noLease(t *testing.T, ns, ifname string) {
	t.Helper()
	d := startDhclient(t, ns, ifname, false, 6)
	defer d.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("dhclient did not give up")
	}
	if env := d.env("BOUND"); env != nil {
		t.Fatalf("%s got a lease it must not get: %v", ifname, env)
	}
}

func setMAC(t *testing.T, ns, ifname, mac string) {
	t.Helper()
	nstest.Exec(t, ns, "ip", "link", "set", ifname, "down")
	nstest.Exec(t, ns, "ip", "link", "set", ifname, "address", mac)
	nstest.Exec(t, ns, "ip", "link", "set", ifname, "up")
}
