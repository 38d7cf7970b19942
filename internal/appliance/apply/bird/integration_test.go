package bird

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newDaemon(t *testing.T, dir string) *Daemon {
	d := New(dir, WithLogger(testLogger()), WithRestartBackoff(100*time.Millisecond, time.Second))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
		d.Close()
	})
	return d
}

func apply(t *testing.T, d *Daemon, spec Spec, want Action) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := d.Apply(ctx, spec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Action != want {
		t.Fatalf("Apply did %q; want %q", res.Action, want)
	}
	return res
}

// upstream is a second BIRD, in its own namespace, playing the provider's
// router on the external network.
type upstream struct{ sock string }

func startUpstream(t *testing.T, ns string) *upstream {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "up.conf")
	text := fmt.Sprintf(`log %q all;
router id 192.0.2.254;
protocol device {}
protocol static provider_routes {
	ipv6;
	route 2001:db8:aaaa::/48 unreachable;
}
protocol bgp appliance {
	local as 65000;
	neighbor 2001:db8:ff::2 as 64512;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	ipv6 {
		import all;
		export where proto = "provider_routes";
	};
}
`, filepath.Join(dir, "up.log"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	u := &upstream{sock: filepath.Join(dir, "up.ctl")}
	cmd := exec.Command("ip", "netns", "exec", ns, "bird", "-f", "-c", conf, "-s", u.sock, "-P", filepath.Join(dir, "up.pid"))
	out, _ := os.Create(filepath.Join(dir, "up.out"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); out.Close() })
	nstest.WaitFor(t, 30*time.Second, "the upstream BIRD", func() bool { _, err := u.birdc("show", "status"); return err == nil })
	return u
}

func (u *upstream) birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", u.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// learned returns the prefixes the upstream learned from the appliance.
func (u *upstream) learned(t *testing.T) []netip.Prefix {
	t.Helper()
	out, err := u.birdc("show", "route", "protocol", "appliance")
	if err != nil {
		t.Fatalf("upstream birdc: %v: %s", err, out)
	}
	var got []netip.Prefix
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			got = append(got, p)
		}
	}
	slices.SortFunc(got, comparePrefix)
	return got
}

func countIn(t *testing.T, path, substr string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), substr)
}

func stat(t *testing.T, path string) (uint64, time.Time) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino, st.ModTime()
}

func birdSpec(extraTn0 ...model.Subnet) Spec {
	return Spec{
		RouterID: addr("203.0.113.2"), LocalASN: 64512, NeighborASN: 65000,
		External: &Uplink{Interface: "ext0", Subnets: []model.Subnet{
			{CIDR: pfx("203.0.113.0/24"), GatewayIP: addr("203.0.113.1")},
			{CIDR: pfx("2001:db8:ff::/64"), GatewayIP: addr("2001:db8:ff::1")},
		}},
		Tenants: []Tenant{
			{Interface: "tn0", MTU: 1400, Subnets: append([]model.Subnet{
				{CIDR: pfx("10.1.0.0/24"), GatewayIP: addr("10.1.0.1"), DHCPEnabled: true},
				{CIDR: pfx("2001:db8:1::/64"), GatewayIP: addr("2001:db8:1::1"), DNSNameservers: []netip.Addr{addr("2001:db8::53")}},
				{CIDR: pfx("2001:db8:2::/64"), GatewayIP: addr("2001:db8:2::1"), DHCPEnabled: true},
				{CIDR: pfx("fd00:99::/64"), GatewayIP: addr("fd00:99::1")},
			}, extraTn0...)},
			{Interface: "tn2", Isolated: true, Subnets: []model.Subnet{
				{CIDR: pfx("2001:db8:3::/64"), GatewayIP: addr("2001:db8:3::1")},
			}},
		},
	}
}

func TestBirdAdvertisesAndPeers(t *testing.T) {
	nstest.Require(t)
	up := nstest.NewNamespace(t, "astara-up")
	vm := nstest.NewNamespace(t, "astara-vm")
	nstest.Veth(t, "ext0", "up0", up, "")
	nstest.Veth(t, "tn0", "vm0", vm, "")
	nstest.Veth(t, "tn2", "vm2", vm, "")
	nstest.Run(t, "ip", "addr", "add", "2001:db8:ff::2/64", "dev", "ext0", "nodad")
	nstest.Exec(t, up, "ip", "addr", "add", "2001:db8:ff::1/64", "dev", "up0", "nodad")
	for _, a := range []string{"2001:db8:1::1/64", "2001:db8:2::1/64", "fd00:99::1/64", "2001:db8:4::1/64"} {
		nstest.Run(t, "ip", "addr", "add", a, "dev", "tn0", "nodad")
	}
	nstest.Run(t, "ip", "addr", "add", "2001:db8:3::1/64", "dev", "tn2", "nodad")
	// A route the router has that is no tenant prefix: never announced.
	nstest.Run(t, "ip", "-6", "route", "add", "2001:db8:bad::/64", "dev", "tn0")
	for _, ifname := range []string{"vm0", "vm2"} {
		nstest.Exec(t, vm, "sysctl", "-qw", "net.ipv6.conf."+ifname+".accept_ra=2", "net.ipv6.conf."+ifname+".autoconf=1")
	}
	ras := listenRA(t, vm)
	vm0, vm2 := ifindex(t, vm, "vm0"), ifindex(t, vm, "vm2")
	u := startUpstream(t, up)

	dir := t.TempDir()
	d := newDaemon(t, dir)
	ctx := t.Context()

	// 1. Start: the protocols are up.
	res := apply(t, d, birdSpec(), ActionStarted)
	pid := res.PID
	if !nstest.Alive(pid) {
		t.Fatalf("bird pid %d not running", pid)
	}
	protos, err := d.Show(ctx, "show", "protocols")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tenant_ra", "RAdv", "uplink_2001_db8_ff__1", "BGP", "kernel6", "tenant_nets"} {
		if !strings.Contains(protos, want) {
			t.Errorf("show protocols lacks %q:\n%s", want, protos)
		}
	}
	if _, err := d.Show(ctx, "configure"); err == nil {
		t.Error("Show accepted a non-show command")
	}

	// 2. Router advertisements reach the VM: DHCPv6 subnets managed and
	//    not autonomous, SLAAC ones autonomous, RDNSS, MTU.
	got := ras.next(t, vm0, func(r ra) bool { return len(r.prefixes) > 0 })
	wantPrefixes := map[netip.Prefix]bool{pfx("2001:db8:1::/64"): true, pfx("2001:db8:2::/64"): false, pfx("fd00:99::/64"): true}
	if !got.managed || !got.other || got.mtu != 1400 || !mapEq(got.prefixes, wantPrefixes) || !slices.Equal(got.rdnss, []netip.Addr{addr("2001:db8::53")}) {
		t.Errorf("RA on tn0: %v\nwant M=true O=true mtu=1400 prefixes=%v rdnss=[2001:db8::53]", got, wantPrefixes)
	}
	got = ras.next(t, vm2, func(r ra) bool { return len(r.prefixes) > 0 })
	if got.managed || got.other || !mapEq(got.prefixes, map[netip.Prefix]bool{pfx("2001:db8:3::/64"): true}) {
		t.Errorf("RA on tn2: %v", got)
	}
	// ... and the VM's kernel configures itself from them (SLAAC).
	nstest.WaitFor(t, 60*time.Second, "SLAAC addresses on vm0", func() bool {
		a := globalAddrs(t, vm, "vm0")
		return hasAddrIn(a, pfx("2001:db8:1::/64")) && hasAddrIn(a, pfx("fd00:99::/64"))
	})
	if a := globalAddrs(t, vm, "vm0"); hasAddrIn(a, pfx("2001:db8:2::/64")) {
		t.Errorf("vm0 autoconfigured an address in the DHCPv6 subnet: %v", a)
	}
	if out := nstest.Exec(t, vm, "ip", "-6", "route", "show", "default", "dev", "vm0"); !strings.Contains(out, "proto ra") {
		t.Errorf("no default route from the RA on vm0: %q", out)
	}

	// 3. BGP: the session comes up; the upstream learns exactly the routed
	//    tenant prefixes (not ULA, not the isolated network, not the
	//    router's other routes); the appliance installs what it learns.
	nstest.WaitFor(t, 90*time.Second, "the BGP session to be established", func() bool {
		out, err := d.Show(ctx, "show", "protocols", "uplink_2001_db8_ff__1")
		return err == nil && strings.Contains(out, "Established")
	})
	want := []netip.Prefix{pfx("2001:db8:1::/64"), pfx("2001:db8:2::/64")}
	nstest.WaitFor(t, 60*time.Second, fmt.Sprintf("the upstream to learn %v", want), func() bool { return slices.Equal(u.learned(t), want) })
	nstest.WaitFor(t, 60*time.Second, "the learned route in the kernel", func() bool {
		out := nstest.Run(t, "ip", "-6", "route", "show", "2001:db8:aaaa::/48")
		return strings.Contains(out, "via 2001:db8:ff::1") && strings.Contains(out, "proto bird")
	})

	// 4. The same spec again: no rewrite, no reconfiguration.
	ino, mtime := stat(t, d.conf)
	reconfigs := countIn(t, d.log, "Reconfiguring")
	res = apply(t, d, birdSpec(), ActionNone)
	if res.PID != pid || res.Changed {
		t.Errorf("identical Apply: pid %d -> %d, changed %v", pid, res.PID, res.Changed)
	}
	if ino2, mtime2 := stat(t, d.conf); ino2 != ino || !mtime2.Equal(mtime) {
		t.Error("identical Apply rewrote bird.conf")
	}
	if n := countIn(t, d.log, "Reconfiguring"); n != reconfigs {
		t.Errorf("identical Apply reconfigured BIRD (%d -> %d)", reconfigs, n)
	}

	// 5. A changed spec (a new routed subnet, another DNS server):
	//    reconfigured in place, same process, BGP and RA follow.
	spec2 := birdSpec(model.Subnet{CIDR: pfx("2001:db8:4::/64"), GatewayIP: addr("2001:db8:4::1"), DNSNameservers: []netip.Addr{addr("2001:db8::54")}})
	res = apply(t, d, spec2, ActionReconfigured)
	if res.PID != pid || !nstest.Alive(pid) || !res.Changed {
		t.Fatalf("reconfigure: pid %d -> %d (alive %v), changed %v", pid, res.PID, nstest.Alive(pid), res.Changed)
	}
	if n := countIn(t, d.log, "Reconfigured"); n != reconfigs+1 {
		t.Errorf("%d reconfigurations logged; want %d", n, reconfigs+1)
	}
	want = []netip.Prefix{pfx("2001:db8:1::/64"), pfx("2001:db8:2::/64"), pfx("2001:db8:4::/64")}
	nstest.WaitFor(t, 60*time.Second, fmt.Sprintf("the upstream to learn %v", want), func() bool { return slices.Equal(u.learned(t), want) })
	got = ras.next(t, vm0, func(r ra) bool { _, ok := r.prefixes[pfx("2001:db8:4::/64")]; return ok })
	if !slices.Equal(got.rdnss, []netip.Addr{addr("2001:db8::53"), addr("2001:db8::54")}) {
		t.Errorf("RDNSS after reconfiguration: %v", got.rdnss)
	}
	nstest.WaitFor(t, 60*time.Second, "a SLAAC address in the new prefix", func() bool {
		return hasAddrIn(globalAddrs(t, vm, "vm0"), pfx("2001:db8:4::/64"))
	})

	// 6. A configuration BIRD rejects never replaces the running one.
	ino, mtime = stat(t, d.conf)
	if _, err := d.install(ctx, "router id 1.2.3.4;\nprotocol bogus {}\n"); err == nil || !strings.Contains(err.Error(), "bird rejects the configuration") {
		t.Errorf("installing a broken config: %v", err)
	}
	if ino2, mtime2 := stat(t, d.conf); ino2 != ino || !mtime2.Equal(mtime) || d.PID() != pid {
		t.Error("a rejected config replaced bird.conf or touched the daemon")
	}
	apply(t, d, spec2, ActionNone)

	// 7. BIRD dies: the supervisor restarts it with the same configuration.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 60*time.Second, "the supervisor to restart BIRD", func() bool {
		n := d.PID()
		return n != 0 && n != pid && nstest.Alive(n)
	})
	pid = d.PID()
	nstest.WaitFor(t, 90*time.Second, "the new BIRD's BGP session", func() bool {
		out, err := d.Show(ctx, "show", "protocols", "uplink_2001_db8_ff__1")
		return err == nil && strings.Contains(out, "Established")
	})
	nstest.WaitFor(t, 60*time.Second, "the upstream to learn the prefixes again", func() bool { return slices.Equal(u.learned(t), want) })

	// 8. A new agent adopts the running BIRD.
	d.Close()
	d2 := newDaemon(t, dir)
	res = apply(t, d2, spec2, ActionNone)
	if res.PID != pid || d2.PID() != pid {
		t.Fatalf("second daemon: pid %d; want adoption of %d", res.PID, pid)
	}

	// 9. Nothing to do: BIRD stops, and withdraws what it installed.
	res = apply(t, d2, Spec{Tenants: []Tenant{{Interface: "tn0", Subnets: []model.Subnet{{CIDR: pfx("10.1.0.0/24")}}}}}, ActionStopped)
	if res.PID != 0 || nstest.Alive(pid) {
		t.Fatalf("bird %d still running", pid)
	}
	nstest.WaitFor(t, 30*time.Second, "BIRD's kernel routes to go", func() bool {
		return !strings.Contains(nstest.Run(t, "ip", "-6", "route", "show", "proto", "bird"), "2001:db8:aaaa::/48")
	})
}

func mapEq(a, b map[netip.Prefix]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
