package dhcp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply/daemon"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// benchSpec serves one dummy interface (v4 and DHCPv6) with ports static
// leases.
func benchSpec(ifname string, ports int) Spec {
	s := Spec{
		Networks: []Network{{
			Interface: ifname,
			MTU:       1450,
			Subnets: []model.Subnet{
				{ID: "v4", CIDR: pfx("10.100.0.0/16"), GatewayIP: addr("10.100.0.1"), DHCPEnabled: true,
					DNSNameservers: addrs("10.100.0.53")},
				{ID: "v6", CIDR: pfx("fd00:100::/64"), GatewayIP: addr("fd00:100::1"), DHCPEnabled: true},
			},
		}},
		ExceptInterfaces: []string{"bx0"},
	}
	for i := range ports {
		s.Networks[0].Allocations = append(s.Networks[0].Allocations, model.Allocation{
			MACAddress: fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256),
			Hostname:   fmt.Sprintf("vm-%d", i),
			DeviceID:   fmt.Sprintf("d%d", i),
			IPAddresses: map[netip.Addr]bool{
				netip.AddrFrom4([4]byte{10, 100, byte(1 + i/250), byte(1 + i%250)}):                true,
				netip.AddrFrom16([16]byte{0: 0xfd, 2: 0x01, 15: byte(i), 14: byte(i >> 8), 13: 1}): true,
			},
		})
	}
	return s
}

// BenchmarkApplyNoop measures an identical re-apply: with DHCP not needed
// (dnsmasq known stopped), and with dnsmasq running and nothing changed.
func BenchmarkApplyNoop(b *testing.B) {
	nstest.Require(b)
	ctx := context.Background()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	noop := func(b *testing.B, s *Server, spec Spec, pid int) {
		b.Helper()
		// Measure the steady state: files old enough for their stat to
		// vouch for them (see daemon.SettleTime).
		time.Sleep(daemon.SettleTime)
		for b.Loop() {
			res, err := s.Apply(ctx, spec)
			if err != nil || res.Action != ActionNone || res.PID != pid {
				b.Fatalf("Apply = %+v, %v; want no action, pid %d", res, err, pid)
			}
		}
	}

	b.Run("not_needed", func(b *testing.B) {
		s := New(searchableTempDir(b), quiet)
		defer s.Close()
		spec := benchSpec("bn0", 10)
		for i := range spec.Networks[0].Subnets {
			spec.Networks[0].Subnets[i].DHCPEnabled = false
		}
		noop(b, s, spec, 0)
	})

	for _, ports := range []int{10, 1000} {
		b.Run(fmt.Sprintf("running_unchanged/ports=%d", ports), func(b *testing.B) {
			const ifname = "bn1"
			nstest.Veth(b, ifname, ifname+"p", "", "")
			s := New(searchableTempDir(b), quiet)
			defer func() { _ = s.Stop(ctx); s.Close() }()
			spec := benchSpec(ifname, ports)
			res, err := s.Apply(ctx, spec)
			if err != nil || res.Action != ActionStarted {
				b.Fatalf("first Apply = %+v, %v", res, err)
			}
			noop(b, s, spec, res.PID)
		})
	}
}
