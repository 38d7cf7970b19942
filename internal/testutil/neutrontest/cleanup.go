package neutrontest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// CleanupProjects deletes every floating IP, router, port, subnet and
// network the projects own in the server (as admin, in an order Neutron
// accepts), at once (what a test killed earlier left) and when the test
// ends, whatever its outcome, so that a test leaves the shared server as it
// found it. A failed delete fails the test.
func CleanupProjects(t testing.TB, s Server, projects ...string) {
	t.Helper()
	pc := &gophercloud.ProviderClient{}
	c := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: s.URL + "/", ResourceBase: s.URL + "/v2.0/",
		MoreHeaders: map[string]string{"X-User-Id": "neutrontest", "X-Project-Id": "neutrontest", "X-Roles": "admin"}}
	purge := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, p := range projects {
			cleanupProject(ctx, t, c, p)
		}
	}
	purge()
	t.Cleanup(purge)
}

func cleanupProject(ctx context.Context, t testing.TB, c *gophercloud.ServiceClient, project string) {
	gone := func(what, id string, err error) {
		if err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup of project %s: delete %s %s: %v", project, what, id, err)
		}
	}
	if pages, err := floatingips.List(c, floatingips.ListOpts{ProjectID: project}).AllPages(ctx); err == nil {
		all, _ := floatingips.ExtractFloatingIPs(pages)
		for _, f := range all {
			gone("floating IP", f.ID, floatingips.Delete(ctx, c, f.ID).ExtractErr())
		}
	}
	if pages, err := routers.List(c, routers.ListOpts{ProjectID: project}).AllPages(ctx); err == nil {
		all, _ := routers.ExtractRouters(pages)
		for _, r := range all {
			// Extra routes hold interfaces (RouterInterfaceInUseByRoute).
			if len(r.Routes) > 0 {
				_, err := routers.Update(ctx, c, r.ID, routers.UpdateOpts{Routes: &[]routers.Route{}}).Extract()
				gone("routes of router", r.ID, err)
			}
			if pages, err := ports.List(c, ports.ListOpts{DeviceID: r.ID, DeviceOwner: "network:router_interface"}).AllPages(ctx); err == nil {
				ifs, _ := ports.ExtractPorts(pages)
				for _, p := range ifs {
					_, err := routers.RemoveInterface(ctx, c, r.ID, routers.RemoveInterfaceOpts{PortID: p.ID}).Extract()
					gone("interface of router "+r.ID, p.ID, err)
				}
			}
			gone("router", r.ID, routers.Delete(ctx, c, r.ID).ExtractErr())
		}
	}
	if pages, err := networks.List(c, networks.ListOpts{ProjectID: project}).AllPages(ctx); err == nil {
		all, _ := networks.ExtractNetworks(pages)
		for _, n := range all {
			// Ports of other projects on it (say, an orchestrator's) go too.
			if pages, err := ports.List(c, ports.ListOpts{NetworkID: n.ID}).AllPages(ctx); err == nil {
				ps, _ := ports.ExtractPorts(pages)
				for _, p := range ps {
					switch p.DeviceOwner {
					case "network:router_gateway", "network:router_interface", "network:floatingip":
						continue // they go with their router or floating IP
					}
					gone("port", p.ID, ports.Delete(ctx, c, p.ID).ExtractErr())
				}
			}
			gone("network", n.ID, networks.Delete(ctx, c, n.ID).ExtractErr())
		}
	}
	if pages, err := ports.List(c, ports.ListOpts{ProjectID: project}).AllPages(ctx); err == nil {
		ps, _ := ports.ExtractPorts(pages)
		for _, p := range ps {
			gone("port", p.ID, ports.Delete(ctx, c, p.ID).ExtractErr())
		}
	}
	if pages, err := subnets.List(c, subnets.ListOpts{ProjectID: project}).AllPages(ctx); err == nil {
		ss, _ := subnets.ExtractSubnets(pages)
		for _, s := range ss {
			gone("subnet", s.ID, subnets.Delete(ctx, c, s.ID).ExtractErr())
		}
	}
}
