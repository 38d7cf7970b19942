package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// TestRouter drives one appliance through a router's life: it serves DHCP,
// NATs, maps a floating IP, proxies metadata, guards its API, refuses bad
// documents without disturbing traffic, and re-applies a document without
// touching the kernel.
func TestRouter(t *testing.T) {
	e := newEnv(t)
	l := e.lab
	doc := l.Document(e.meta.port)
	doc.Generation = 10
	e.mustPut(doc)

	upstreamPort := listen(t, l.Upstream, netip.AddrPortFrom(lab.Internet, 0).String())
	internet := netip.AddrPortFrom(lab.Internet, uint16(upstreamPort)).String()
	vm1Port := listen(t, l.VM1, ":0")
	fip := netip.AddrPortFrom(lab.FloatingIP, uint16(vm1Port)).String()

	t.Run("dhcp", func(t *testing.T) {
		l1 := e.lease(l.VM1)
		if l1.IP != lab.VM1IP.String() || l1.Mask != "255.255.255.0" || l1.Routers != "192.168.0.1" {
			t.Errorf("vm1 lease %+v, want 192.168.0.5/24 via 192.168.0.1", l1)
		}
		if l1.DNS != "192.0.2.53" || l1.MTU != "1450" {
			t.Errorf("vm1 lease %+v, want DNS 192.0.2.53 and MTU 1450", l1)
		}
		// Option 121: 10.10.0.0/16 via 192.168.0.254 (and the default route,
		// since clients ignore option 3 when 121 is present).
		if !strings.Contains(l1.Classless, "16 10 10 192 168 0 254") {
			t.Errorf("vm1 classless routes %q lack 10.10.0.0/16 via 192.168.0.254", l1.Classless)
		}
		if l2 := e.lease(l.VM2); l2.IP != lab.VM2IP.String() || l2.Routers != "10.1.0.1" {
			t.Errorf("vm2 lease %+v, want 10.1.0.5 via 10.1.0.1", l2)
		}
	})

	t.Run("snat", func(t *testing.T) {
		if got := seenAs(t, l.VM2, internet); got != lab.RouterExt.Addr().String() {
			t.Errorf("upstream saw vm2 as %s, want the router's external address %s", got, lab.RouterExt.Addr())
		}
		if got := seenAs(t, l.VM1, internet); got != lab.FloatingIP.String() {
			t.Errorf("upstream saw vm1 as %s, want its floating IP %s", got, lab.FloatingIP)
		}
	})

	t.Run("floating ip", func(t *testing.T) {
		if got := seenAs(t, l.Upstream, fip); got != lab.ExtGateway.String() {
			t.Errorf("vm1 saw the upstream host as %s, want %s", got, lab.ExtGateway)
		}
		// Hairpin: vm2 reaches vm1 through vm1's floating IP.
		if got := seenAs(t, l.VM2, fip); got != lab.RouterExt.Addr().String() {
			t.Errorf("vm1 saw vm2 (hairpin) as %s, want %s", got, lab.RouterExt.Addr())
		}
	})

	t.Run("metadata", func(t *testing.T) {
		c := lab.HTTPClient(l.VM1)
		resp, err := c.Post("http://169.254.169.254/openstack/latest/password?x=1", "text/plain", strings.NewReader("secret"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "instance-id: "+lab.VM1ID {
			t.Errorf("metadata answered %d %q", resp.StatusCode, body)
		}
		r, got := e.meta.last()
		if r == nil {
			t.Fatal("the metadata server saw no request")
		}
		for h, want := range map[string]string{
			"X-Forwarded-For": lab.VM1IP.String(), "X-Tenant-Id": lab.TenantID,
			"X-Instance-Id": lab.VM1ID, "X-Neutron-Network-Id": "int-net-id",
		} {
			if v := r.Header.Get(h); v != want {
				t.Errorf("header %s = %q, want %q", h, v, want)
			}
		}
		if r.Method != "POST" || got != "secret" || r.URL.RawQuery != "x=1" || r.URL.Path != "/openstack/latest/password" {
			t.Errorf("forwarded %s %s?%s body %q", r.Method, r.URL.Path, r.URL.RawQuery, got)
		}
	})

	t.Run("api closed to tenants", func(t *testing.T) {
		for _, a := range []netip.Addr{lab.RouterInt1.Addr(), lab.RouterExt.Addr(), l.ApplianceMgmt.Addr()} {
			unreachable(t, l.VM1, netip.AddrPortFrom(a, apiPort).String())
		}
		unreachable(t, l.Upstream, netip.AddrPortFrom(lab.RouterExt.Addr(), apiPort).String())
		// ...while the router still answers pings from them.
		e.exec(l.VM1, "ping", "-c1", "-W5", lab.RouterInt1.Addr().String())
	})

	t.Run("ipv6 and bgp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sock, err := l.StartUpstreamBGP(ctx, filepath.Join(e.dir, "upstream"))
		if err != nil {
			t.Fatal(err)
		}
		// The appliance announces its tenant prefix, and only that.
		nstest.WaitFor(t, 90*time.Second, "the upstream to learn 2001:db8:100::/64 over BGP", func() bool {
			out, _ := exec.Command("ip", "-n", l.Upstream, "-6", "route", "show", "proto", "bird").Output()
			return strings.Contains(string(out), "2001:db8:100::/64 via 2001:db8:77::2")
		})
		routes, _ := exec.Command("birdc", "-s", sock, "show", "route", "protocol", "appliance").CombinedOutput()
		if strings.Count(string(routes), "/64") != 1 {
			t.Errorf("the upstream learned more than the tenant prefix:\n%s", routes)
		}
		// BIRD's router advertisement gives vm1 a SLAAC address and a route.
		nstest.WaitFor(t, 60*time.Second, "a SLAAC address on vm1", func() bool {
			out, _ := exec.Command("ip", "-n", l.VM1, "-6", "addr", "show", "dev", "eth0", "scope", "global").Output()
			return strings.Contains(string(out), "2001:db8:100:")
		})
		nstest.WaitFor(t, 60*time.Second, "vm1 to reach the upstream over IPv6", func() bool {
			return exec.Command("ip", "netns", "exec", l.VM1, "ping", "-6", "-c1", "-W2", lab.ExtV6Gateway.String()).Run() == nil
		})
	})

	t.Run("invalid document changes nothing", func(t *testing.T) {
		bad := l.Document(e.meta.port)
		bad.Generation = 11
		bad.Networks[2].Interface.MTU = 99999
		code, body := e.put(bad)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "networks[2].interface.mtu") {
			t.Errorf("invalid PUT: %d %s, want 422 naming networks[2].interface.mtu", code, body)
		}
		missing := l.Document(e.meta.port)
		missing.Generation = 11
		missing.Networks[3].Interface.IfName = "ge9"
		code, body = e.put(missing)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "no interface ge9") {
			t.Errorf("PUT naming a missing interface: %d %s, want 422", code, body)
		}
		if got := seenAs(t, l.VM1, internet); got != lab.FloatingIP.String() {
			t.Errorf("after the invalid PUTs upstream saw vm1 as %s", got)
		}
		if got := e.generation(); got != 10 {
			t.Errorf("applied generation %d after invalid PUTs, want 10", got)
		}
	})

	t.Run("identical re-apply changes nothing", func(t *testing.T) {
		before := daemonPIDs(t, l.Appliance, "dnsmasq", "bird")
		if before["dnsmasq"] == 0 || before["bird"] == 0 {
			t.Fatalf("daemons running: %v, want dnsmasq and bird", before)
		}
		events := watchKernel(t, l.Appliance)
		e.mustPut(doc)
		if got := events.count(); len(got) != 0 {
			t.Errorf("re-applying the same document caused %d kernel notifications: %v", len(got), got)
		}
		if after := daemonPIDs(t, l.Appliance, "dnsmasq", "bird"); after["dnsmasq"] != before["dnsmasq"] || after["bird"] != before["bird"] {
			t.Errorf("daemons restarted: before %v, after %v", before, after)
		}
	})

	t.Run("stale generation", func(t *testing.T) {
		old := l.Document(e.meta.port)
		old.Generation = 9
		old.FloatingIPs = nil
		if code, body := e.put(old); code != http.StatusConflict {
			t.Errorf("PUT of generation 9 over 10: %d %s, want 409", code, body)
		}
	})

	t.Run("floating ip removed", func(t *testing.T) {
		next := l.Document(e.meta.port)
		next.Generation = 12
		next.FloatingIPs = nil
		events := watchKernel(t, l.Appliance)
		e.mustPut(next)
		if got := events.count(); len(got) == 0 {
			t.Errorf("removing a floating IP caused no kernel notification (is the watch blind?)")
		}
		unreachable(t, l.Upstream, fip)
		if got := seenAs(t, l.VM1, internet); got != lab.RouterExt.Addr().String() {
			t.Errorf("without its floating IP, upstream saw vm1 as %s, want %s", got, lab.RouterExt.Addr())
		}
	})
}

// generation returns the applied document's generation (GET /v1/info).
func (e *env) generation() uint64 {
	e.t.Helper()
	resp, err := e.client.Get(e.lab.APIURL(apiPort) + "/v1/info")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct{ Generation uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		e.t.Fatal(err)
	}
	return info.Generation
}

// TestAgentRestart kills the agent: the router keeps forwarding and serving
// DHCP without it, and a new agent restores the saved document and adopts
// the running daemons instead of restarting them.
func TestAgentRestart(t *testing.T) {
	e := newEnv(t)
	l := e.lab
	doc := l.Document(e.meta.port)
	doc.Generation = 3
	e.mustPut(doc)
	e.lease(l.VM2)
	port := listen(t, l.Upstream, netip.AddrPortFrom(lab.Internet, 0).String())
	internet := netip.AddrPortFrom(lab.Internet, uint16(port)).String()
	seenAs(t, l.VM2, internet)
	before := daemonPIDs(t, l.Appliance, "dnsmasq", "bird")

	_ = e.agent.Process.Kill()
	_ = e.agent.Wait()
	if got := seenAs(t, l.VM2, internet); got != lab.RouterExt.Addr().String() {
		t.Errorf("with the agent dead, upstream saw vm2 as %s", got)
	}
	if lease := e.lease(l.VM2); lease.IP != lab.VM2IP.String() {
		t.Errorf("with the agent dead, vm2's DHCP lease is %+v", lease)
	}

	// This time the agent learns its management interface from user data,
	// as in a VM booted by the orchestrator.
	userData := filepath.Join(e.dir, "user_data")
	ud := fmt.Sprintf(`{"astara": {"management": {"mac": %q, "address": %q}}}`, lab.MgmtMAC, l.ApplianceMgmt)
	if err := os.WriteFile(userData, []byte(ud), 0o644); err != nil {
		t.Fatal(err)
	}
	e.startAgent("-user-data", userData)
	if got := e.generation(); got != 3 {
		t.Errorf("restarted agent serves generation %d, want the saved 3", got)
	}
	if after := daemonPIDs(t, l.Appliance, "dnsmasq", "bird"); after["dnsmasq"] != before["dnsmasq"] || after["bird"] != before["bird"] {
		t.Errorf("daemons restarted across the agent restart: before %v, after %v", before, after)
	}
	if got := seenAs(t, l.VM2, internet); got != lab.RouterExt.Addr().String() {
		t.Errorf("after the restart, upstream saw vm2 as %s", got)
	}
}
