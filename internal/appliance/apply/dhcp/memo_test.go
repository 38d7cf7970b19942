package dhcp

import (
	"net/netip"
	"testing"

	"github.com/astara-go/astara/internal/appliance/apply/daemon/memotest"
	"github.com/astara-go/astara/internal/appliance/model"
)

// The Spec memo compares every field, and keeps a copy that shares nothing
// with the caller's Spec.
func TestSpecMemoSeesEveryField(t *testing.T) {
	// Every slice and map filled (valid or not, it does not matter here).
	sample := func() Spec {
		return Spec{
			Networks: []Network{{
				Interface: "eth1",
				MTU:       1450,
				Subnets: []model.Subnet{{ID: "s1", CIDR: pfx("10.0.1.0/24"), GatewayIP: addr("10.0.1.1"), DHCPEnabled: true,
					DNSNameservers: addrs("10.0.1.53"),
					HostRoutes:     []model.HostRoute{{Destination: pfx("10.9.0.0/16"), NextHop: addr("10.0.1.254")}}}},
				Allocations: []model.Allocation{{MACAddress: "fa:16:3e:00:00:01", Hostname: "vm", DeviceID: "d1",
					IPAddresses: map[netip.Addr]bool{addr("10.0.1.5"): true}}},
			}},
			ExceptInterfaces: []string{"eth0"},
			Upstreams:        addrs("192.0.2.53"),
		}
	}
	matches := func(s, copied *Spec) bool { m := memoOf(copied); return m.matches(s) }
	clone := func(s *Spec) Spec { return memoOf(s).spec }
	memotest.Check(t, sample, matches, clone)
}

// A Spec changed in place by the caller after an Apply (same slices and
// maps) is a new Spec, validated and rendered again.
func TestSpecChangedInPlaceIsRenderedAgain(t *testing.T) {
	s := New(t.TempDir())
	defer s.Close()
	spec := fullSpec()
	a1, err := s.prepare(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if a2, err := s.prepare(&spec); err != nil || a2 != a1 {
		t.Fatalf("identical Spec: prepare = %p, %v; want the memo %p", a2, err, a1)
	}
	spec.Networks[0].Allocations[0].IPAddresses[addr("10.0.1.4")] = false
	a3, err := s.prepare(&spec)
	if err != nil || a3 == a1 || a3.r.hosts == a1.r.hosts {
		t.Fatalf("changed Spec: prepare = %p, %v; want a new rendering", a3, err)
	}
	spec.Networks[0].Allocations[0].Hostname = "bad,name"
	if _, err := s.prepare(&spec); err == nil {
		t.Fatal("an invalid Spec changed in place passed")
	}
}
