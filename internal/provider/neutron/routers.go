package neutron

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/astara-go/astara/internal/provider"
)

// StatusTagPrefix prefixes the router tag that carries the state Astara
// publishes when the API has no dhrouterstatus extension:
// astara:state=<STATUS>.
const StatusTagPrefix = "astara:state="

// ErrStatusUnsupported means the network API offers no way to publish a
// router's status: no dhrouterstatus extension and no router tags.
var ErrStatusUnsupported = errors.New("the network API has neither the dhrouterstatus extension nor router tags")

// GetRouter implements provider.NetworkAPI: the router, its gateway and
// interface ports (its ports by device_id) and its floating IPs (by
// router_id). A router whose gateway port is not listed gets one made
// from external_gateway_info (without id or MAC).
//
// Without the dhrouterstatus extension, Status is the state last
// published as a tag (StatusTagPrefix), or "" when there is none (or
// several): that is what SetRouterStatus compares against, while the
// router's own status stays whatever Neutron says (ACTIVE).
func (p *Provider) GetRouter(ctx context.Context, id string) (*provider.Router, error) {
	if err := sanitize("router", id); err != nil {
		return nil, fmt.Errorf("getting router: %w", err)
	}
	exts, err := p.extensions(ctx)
	if err != nil {
		return nil, fmt.Errorf("getting router %s: %w", id, err)
	}
	var w wireRouter
	err = p.do(ctx, "GetRouter", idempotent, func(ctx context.Context) error {
		return routers.Get(ctx, p.client, id).ExtractIntoStructPtr(&w, "router")
	})
	if err != nil {
		return nil, fmt.Errorf("getting router %s: %w", id, notFound(err))
	}
	ports, err := p.listPorts(ctx, "ListRouterPorts", provider.PortFilter{DeviceID: id})
	if err != nil {
		return nil, fmt.Errorf("listing the ports of router %s: %w", id, err)
	}
	fips, err := p.listFloatingIPs(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("listing the floating IPs of router %s: %w", id, err)
	}

	r := &provider.Router{
		ID:           w.ID,
		Name:         w.Name,
		TenantID:     project(w.ProjectID, w.TenantID),
		Status:       w.Status,
		AdminStateUp: w.AdminStateUp,
		HA:           w.HA,
		FloatingIPs:  fips,
	}
	if w.Tags != nil {
		r.Tags = append([]string{}, *w.Tags...)
		if !exts.has(extRouterStatus) {
			r.Status = publishedStatus(*w.Tags)
		}
	}
	for _, port := range ports {
		switch port.DeviceOwner {
		case provider.OwnerRouterGateway:
			if r.GatewayPort == nil {
				gw := port
				r.GatewayPort = &gw
			}
		case provider.OwnerRouterInterface, provider.OwnerHARouterInterface:
			r.Interfaces = append(r.Interfaces, port)
		}
	}
	if r.GatewayPort == nil && w.Gateway != nil && w.Gateway.NetworkID != "" {
		c := converter{ctx, p.log}
		r.GatewayPort = &provider.Port{
			NetworkID:   w.Gateway.NetworkID,
			FixedIPs:    c.fixedIPs("gateway of router "+id, w.Gateway.ExternalFixedIPs),
			DeviceID:    id,
			DeviceOwner: provider.OwnerRouterGateway,
		}
		p.log.DebugContext(ctx, "router gateway port not listed: using external_gateway_info", "router_id", id)
	}
	return r, nil
}

// publishedStatus returns the status a single StatusTagPrefix tag carries;
// "" when there is no such tag, or more than one.
func publishedStatus(tags []string) string {
	status, n := "", 0
	for _, t := range tags {
		if s, ok := strings.CutPrefix(t, StatusTagPrefix); ok {
			status, n = s, n+1
		}
	}
	if n != 1 {
		return ""
	}
	return status
}

// ListRouters implements provider.NetworkAPI.
func (p *Provider) ListRouters(ctx context.Context) ([]provider.RouterRef, error) {
	refs, err := p.listRouters(ctx, "ListRouters", "")
	if err != nil {
		return nil, fmt.Errorf("listing routers: %w", err)
	}
	return refs, nil
}

// RoutersOfTenant implements provider.NetworkAPI (project_id filter).
func (p *Provider) RoutersOfTenant(ctx context.Context, tenantID string) ([]provider.RouterRef, error) {
	if tenantID == "" {
		return nil, errors.New("listing the routers of a tenant: empty tenant id")
	}
	refs, err := p.listRouters(ctx, "RoutersOfTenant", tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing the routers of tenant %s: %w", tenantID, err)
	}
	return refs, nil
}

func (p *Provider) listRouters(ctx context.Context, op, tenantID string) ([]provider.RouterRef, error) {
	ws, err := listAll[wireRouter](ctx, p, op, func() pagination.Pager {
		return routers.List(p.client, routers.ListOpts{ProjectID: tenantID, Limit: p.opts.PageSize})
	}, routers.ExtractRoutersInto)
	if err != nil {
		return nil, err
	}
	refs := []provider.RouterRef{}
	for _, w := range ws {
		ref := provider.RouterRef{ID: w.ID, TenantID: project(w.ProjectID, w.TenantID)}
		// A server that ignores the filter must not hand out other tenants' routers.
		if tenantID == "" || ref.TenantID == tenantID {
			refs = append(refs, ref)
		}
	}
	return refs, nil
}

func (p *Provider) listFloatingIPs(ctx context.Context, routerID string) ([]provider.FloatingIP, error) {
	ws, err := listAll[wireFloatingIP](ctx, p, "ListFloatingIPs", func() pagination.Pager {
		return floatingips.List(p.client, floatingips.ListOpts{RouterID: routerID, Limit: p.opts.PageSize})
	}, floatingips.ExtractFloatingIPsInto)
	if err != nil {
		return nil, err
	}
	c := converter{ctx, p.log}
	var out []provider.FloatingIP
	for _, w := range ws {
		if w.RouterID != routerID {
			continue
		}
		if f, ok := c.floatingIP(w); ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// SetRouterStatus implements provider.NetworkAPI. With the dhrouterstatus
// extension listed, it PUTs /dhrouterstatus/<id> as the original did.
// Otherwise the status becomes the router tag astara:state=<status>: the
// tag is added unless present, then any other astara:state=* tag is
// removed, one tag at a time so that other tags are never overwritten; a
// router already carrying exactly that tag is left alone.
func (p *Provider) SetRouterStatus(ctx context.Context, id, status string) error {
	if err := sanitize("router", id); err != nil {
		return fmt.Errorf("publishing a router status: %w", err)
	}
	if status == "" || strings.ContainsAny(status, "/,?#% ") {
		return fmt.Errorf("publishing the status of router %s: bad status %q", id, status)
	}
	exts, err := p.extensions(ctx)
	if err != nil {
		return fmt.Errorf("publishing status %s of router %s: %w", status, id, err)
	}
	if exts.has(extRouterStatus) {
		err = p.putRouterStatus(ctx, id, status)
	} else {
		err = p.tagRouterStatus(ctx, id, status)
	}
	if err != nil {
		return fmt.Errorf("publishing status %s of router %s: %w", status, id, err)
	}
	return nil
}

func (p *Provider) putRouterStatus(ctx context.Context, id, status string) error {
	body := map[string]any{"routerstatus": map[string]string{"status": status}}
	err := p.do(ctx, "PutRouterStatus", update, func(ctx context.Context) error {
		_, err := p.client.Put(ctx, p.client.ServiceURL("dhrouterstatus", id), body, nil,
			&gophercloud.RequestOpts{OkCodes: []int{http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent}})
		return err
	})
	return notFound(err)
}

func (p *Provider) tagRouterStatus(ctx context.Context, id, status string) error {
	var tags []string
	err := p.do(ctx, "ListRouterTags", idempotent, func(ctx context.Context) (err error) {
		tags, err = attributestags.List(ctx, p.client, "routers", id).Extract()
		return err
	})
	if is404(err) {
		return p.tagsMissing(ctx, id, err)
	}
	if err != nil {
		return err
	}
	want := StatusTagPrefix + status
	present := false
	var stale []string
	for _, t := range tags {
		switch {
		case t == want:
			present = true
		case strings.HasPrefix(t, StatusTagPrefix):
			stale = append(stale, t)
		}
	}
	if !present {
		err := p.do(ctx, "AddRouterTag", update, func(ctx context.Context) error {
			return attributestags.Add(ctx, p.client, "routers", id, want).ExtractErr()
		})
		if err != nil {
			return fmt.Errorf("tagging %s: %w", want, notFound(err))
		}
	}
	for _, t := range stale {
		err := p.do(ctx, "DeleteRouterTag", update, func(ctx context.Context) error {
			return attributestags.Delete(ctx, p.client, "routers", id, t).ExtractErr()
		})
		if err != nil && !is404(err) {
			return fmt.Errorf("removing tag %s: %w", t, err)
		}
	}
	if !present || len(stale) > 0 {
		p.log.DebugContext(ctx, "router status tagged", "router_id", id, "tag", want, "removed", stale)
	}
	return nil
}

// tagsMissing explains a 404 on a router's tags: the router is gone, or
// the API has no tags.
func (p *Provider) tagsMissing(ctx context.Context, id string, tagErr error) error {
	err := p.do(ctx, "GetRouter", idempotent, func(ctx context.Context) error {
		return routers.Get(ctx, p.client, id).Err
	})
	switch {
	case is404(err):
		return notFound(err)
	case err != nil:
		return fmt.Errorf("reading the tags: %w; then reading the router: %w", tagErr, err)
	}
	return fmt.Errorf("%w: %w", ErrStatusUnsupported, tagErr)
}

// listAll lists every page (following next links) into a []T, retrying
// the whole listing on transient failures. extract is one of gophercloud's
// Extract*Into functions.
func listAll[T any](ctx context.Context, p *Provider, op string, pager func() pagination.Pager,
	extract func(pagination.Page, any) error) ([]T, error) {
	var all []T
	err := p.do(ctx, op, idempotent, func(ctx context.Context) error {
		all = all[:0]
		return pager().EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
			var items []T
			if err := extract(page, &items); err != nil {
				return false, err
			}
			all = append(all, items...)
			return true, nil
		})
	})
	return all, err
}
