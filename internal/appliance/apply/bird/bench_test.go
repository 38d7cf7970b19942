package bird

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply/daemon"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// BenchmarkApplyNoop measures an identical re-apply: with BIRD not needed
// (known stopped), and with BIRD running and nothing changed.
func BenchmarkApplyNoop(b *testing.B) {
	nstest.Require(b)
	ctx := context.Background()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	noop := func(b *testing.B, d *Daemon, spec Spec, pid int) {
		b.Helper()
		// Measure the steady state: files old enough for their stat to
		// vouch for them (see daemon.SettleTime).
		time.Sleep(daemon.SettleTime)
		for b.Loop() {
			res, err := d.Apply(ctx, spec)
			if err != nil || res.Action != ActionNone || res.PID != pid {
				b.Fatalf("Apply = %+v, %v; want no action, pid %d", res, err, pid)
			}
		}
	}

	b.Run("not_needed", func(b *testing.B) {
		d := New(b.TempDir(), quiet)
		defer d.Close()
		spec := Spec{RouterID: addr("192.0.2.1"), Tenants: []Tenant{{Interface: "bt0", Subnets: []model.Subnet{{CIDR: pfx("10.1.0.0/24")}}}}}
		noop(b, d, spec, 0)
	})

	b.Run("running_unchanged", func(b *testing.B) {
		const ifname = "bt1"
		nstest.Veth(b, ifname, ifname+"p", "", "")
		d := New(b.TempDir(), quiet)
		defer func() { _ = d.Stop(ctx); d.Close() }()
		spec := Spec{RouterID: addr("192.0.2.1"), LocalASN: 64512, NeighborASN: 65000,
			External: &Uplink{Interface: "bx1", Subnets: []model.Subnet{{CIDR: pfx("2001:db8:ff::/64"), GatewayIP: addr("2001:db8:ff::1")}}}}
		for i := range 20 {
			spec.Tenants = append(spec.Tenants, Tenant{Interface: fmt.Sprintf("bt%d", i+1), Subnets: []model.Subnet{
				{CIDR: pfx(fmt.Sprintf("2001:db8:%x::/64", i+1)), GatewayIP: addr(fmt.Sprintf("2001:db8:%x::1", i+1))},
			}})
		}
		res, err := d.Apply(ctx, spec)
		if err != nil || res.Action != ActionStarted {
			b.Fatalf("first Apply = %+v, %v", res, err)
		}
		noop(b, d, spec, res.PID)
	})
}
