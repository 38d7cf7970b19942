package quickstart

import (
	"testing"
	"time"

	"github.com/astara-go/astara/internal/standalone"
)

// TestQuickstart is the README's first command, as a test: the scenario's
// own checks (leases, SNAT, floating IP, ACTIVE in both APIs) must pass.
func TestQuickstart(t *testing.T) {
	sys := newSystem(t)
	sys.up()
}

// TestKillAppliance kills every process of the router's appliance: the
// local provider sees its agent exit, the router is polled at once, a new
// appliance replaces it, and the router serves again (DHCP, SNAT,
// floating IP).
func TestKillAppliance(t *testing.T) {
	sys := newSystem(t)
	d := sys.up()
	ctx := sys.ctx()
	start := time.Now()
	killed, err := KillAppliance(sys.cfg.StateDir, d.RouterID)
	if err != nil {
		t.Fatal(err)
	}
	var e standalone.Exit
	select {
	case e = <-sys.exits:
	case <-ctx.Done():
		t.Fatal("the agent's exit was not seen")
	}
	if e.RouterID != d.RouterID || e.InstanceID != killed.ID || e.Err != nil {
		t.Fatalf("exit %+v, want instance %s of router %s polled", e, killed.ID, d.RouterID)
	}
	in, err := sys.scen.Client.WaitRepaired(ctx, sys.cfg.StateDir, d.RouterID, killed.ID)
	if err != nil {
		t.Fatal(err)
	}
	active := time.Now()
	if err := sys.scen.CheckSNAT(ctx, d, d.VM2NS); err != nil {
		t.Fatal(err)
	}
	forwarding := time.Now()
	if err := sys.scen.CheckFloatingIP(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.scen.PlugVM(ctx, d, "vm2", d.VM2); err != nil { // a fresh lease from the new dnsmasq
		t.Fatal(err)
	}
	t.Logf("appliance %s killed: detected after %v (agent exit), router polled after %v, "+
		"new appliance %s ACTIVE after %v, forwarding after %v",
		killed.ID, e.At.Sub(start).Round(time.Microsecond), e.Polled.Sub(start).Round(time.Microsecond),
		in.ID, active.Sub(start).Round(time.Millisecond), forwarding.Sub(start).Round(time.Millisecond))
}
