package bird

import (
	"net/netip"
	"testing"

	"github.com/astara-go/astara/internal/appliance/apply/daemon/memotest"
	"github.com/astara-go/astara/internal/appliance/model"
)

// The Spec memo compares every field, and keeps a copy that shares nothing
// with the caller's Spec.
func TestSpecEqualSeesEveryField(t *testing.T) {
	// Every pointer, slice and map filled (valid or not, it does not matter
	// here).
	subnet := func() model.Subnet {
		return model.Subnet{ID: "s1", CIDR: pfx("2001:db8:1::/64"), GatewayIP: addr("2001:db8:1::1"), DHCPEnabled: true,
			DNSNameservers: []netip.Addr{addr("2001:db8::53")},
			HostRoutes:     []model.HostRoute{{Destination: pfx("2001:db8:9::/64"), NextHop: addr("2001:db8:1::fe")}}}
	}
	sample := func() Spec {
		return Spec{
			RouterID: addr("192.0.2.1"), LocalASN: 64512, NeighborASN: 65000,
			External: &Uplink{Interface: "eth1", Subnets: []model.Subnet{subnet()}},
			Tenants:  []Tenant{{Interface: "eth2", MTU: 1450, Isolated: true, Subnets: []model.Subnet{subnet()}}},
		}
	}
	memotest.Check(t, sample, specEqual, cloneSpec)
}

// A Spec changed in place by the caller after an Apply (same slices) is a
// new Spec, validated and rendered again.
func TestSpecChangedInPlaceIsRenderedAgain(t *testing.T) {
	d := New(t.TempDir())
	defer d.Close()
	spec := fullSpec()
	a1, err := d.prepare(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if a2, err := d.prepare(&spec); err != nil || a2 != a1 {
		t.Fatalf("identical Spec: prepare = %p, %v; want the memo %p", a2, err, a1)
	}
	spec.Tenants[1].Subnets[2].DNSNameservers[0] = addr("2001:db8::99")
	a3, err := d.prepare(&spec)
	if err != nil || a3 == a1 || string(a3.conf) == string(a1.conf) {
		t.Fatalf("changed Spec: prepare = %p, %v; want a new rendering", a3, err)
	}
	spec.External.Interface = "bad name"
	if _, err := d.prepare(&spec); err == nil {
		t.Fatal("an invalid Spec changed in place passed")
	}
}
