package contract

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// cleanup deletes, as admin, every object the suite created and that is
// still there, in an order the API accepts: floating IPs, routers (their
// interfaces and gateway first), ports, subnets, networks. It runs after
// the suite whatever its outcome (the test's context is done by then).
func (s *suite) cleanup(t *testing.T) {
	ctx := context.WithoutCancel(s.ctx)
	c := s.admin
	gone := func(what, id string, err error) {
		if err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup: delete %s %s: %v", what, id, err)
		}
	}
	for _, kind := range []string{"floatingip", "router", "port", "subnet", "network"} {
		for _, o := range slices.Backward(s.created) {
			if o.kind != kind {
				continue
			}
			switch kind {
			case "floatingip":
				gone(kind, o.id, floatingips.Delete(ctx, c, o.id).ExtractErr())
			case "router":
				s.unplug(ctx, t, o.id)
				gone(kind, o.id, routers.Delete(ctx, c, o.id).ExtractErr())
			case "port":
				gone(kind, o.id, ports.Delete(ctx, c, o.id).ExtractErr())
			case "subnet":
				gone(kind, o.id, subnets.Delete(ctx, c, o.id).ExtractErr())
			case "network":
				gone(kind, o.id, networks.Delete(ctx, c, o.id).ExtractErr())
			}
		}
	}
	s.created = nil
}

// unplug removes a router's interfaces and gateway, if it still exists.
func (s *suite) unplug(ctx context.Context, t *testing.T, router string) {
	c := s.admin
	if _, err := routers.Get(ctx, c, router).Extract(); err != nil {
		return
	}
	pages, err := ports.List(c, ports.ListOpts{DeviceID: router, DeviceOwner: "network:router_interface"}).AllPages(ctx)
	if err == nil {
		all, _ := ports.ExtractPorts(pages)
		for _, p := range all {
			if _, err := routers.RemoveInterface(ctx, c, router, routers.RemoveInterfaceOpts{PortID: p.ID}).Extract(); err != nil {
				t.Errorf("cleanup: remove interface %s of router %s: %v", p.ID, router, err)
			}
		}
	}
	if err := routers.Update(ctx, c, router, routers.UpdateOpts{GatewayInfo: &routers.GatewayInfo{}}).Err; err != nil {
		t.Errorf("cleanup: clear the gateway of router %s: %v", router, err)
	}
}
