package neutron

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

var _ router.PortDeleter = (*Provider)(nil)

// TestRouterDriver runs the router driver, the provider's user, over the
// fake Neutron: it makes the appliance's ports, deletes one, publishes the
// status as the instance manager does (recording what GetRouter reports
// first), and deletes the ports.
func TestRouterDriver(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	d, err := router.New(p, router.Config{ManagementNetworkID: mgmtNet,
		Orchestrator: model.Orchestrator{Address: netip.MustParseAddr("fdca:3ba5:a17a:acda::10")}}, router1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r, err := d.Router(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt, vrrp, err := d.MakePorts(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(mgmt.FixedIPs) != 1 || mgmt.FixedIPs[0].SubnetID != mgmtV6 {
		t.Errorf("management port %+v", mgmt)
	}
	var nets []string
	for _, v := range vrrp {
		nets = append(nets, v.NetworkID)
	}
	if !slices.Equal(nets, []string{publicNet, tenantNet}) {
		t.Errorf("VRRP ports on %v, want the gateway's and the interfaces' networks", nets)
	}
	if err := d.DeletePort(ctx, vrrp[0].ID); err != nil || f.object("ports", vrrp[0].ID) != nil {
		t.Errorf("DeletePort: %v", err)
	}

	for _, step := range []struct {
		s    state.InstanceState
		want string
	}{{state.Booting, "BUILD"}, {state.Configured, "ACTIVE"}, {state.Configured, "ACTIVE"}} {
		r, err := d.Router(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d.RecordStatus(r.Status)
		if err := d.SyncStatus(ctx, step.s); err != nil {
			t.Fatal(err)
		}
		if got := tagsOfRouter(f, router1); !slices.Equal(got, []string{"env=test", StatusTagPrefix + step.want}) {
			t.Errorf("after %s: tags %v", step.s, got)
		}
	}

	if err := d.DeletePorts(ctx); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{provider.LabelManagement, provider.LabelVRRP} {
		if left := f.named("ports", provider.ServicePortName(label, router1)); len(left) != 0 {
			t.Errorf("%s ports left: %v", label, left)
		}
	}
}
