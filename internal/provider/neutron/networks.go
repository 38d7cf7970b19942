package neutron

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/astara-go/astara/internal/provider"
)

// GetNetwork implements provider.NetworkAPI: the network (MTU,
// router:external) and its subnets, in the order the API lists them.
// Subnets with a malformed CIDR are skipped, as the original did.
func (p *Provider) GetNetwork(ctx context.Context, id string) (*provider.Network, error) {
	if err := sanitize("network", id); err != nil {
		return nil, fmt.Errorf("getting network: %w", err)
	}
	var w wireNetwork
	err := p.do(ctx, "GetNetwork", idempotent, func(ctx context.Context) error {
		return networks.Get(ctx, p.client, id).ExtractInto(&w)
	})
	if err != nil {
		return nil, fmt.Errorf("getting network %s: %w", id, notFound(err))
	}
	subs, err := p.listSubnets(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("listing the subnets of network %s: %w", id, err)
	}
	return &provider.Network{
		ID:       w.ID,
		Name:     w.Name,
		TenantID: project(w.ProjectID, w.TenantID),
		MTU:      w.MTU,
		External: w.External,
		Subnets:  subs,
	}, nil
}

func (p *Provider) listSubnets(ctx context.Context, networkID string) ([]provider.Subnet, error) {
	ws, err := listAll[wireSubnet](ctx, p, "ListSubnets", func() pagination.Pager {
		return subnets.List(p.client, subnets.ListOpts{NetworkID: networkID, Limit: p.opts.PageSize})
	}, func(page pagination.Page, v any) error {
		sp, ok := page.(subnets.SubnetPage)
		if !ok {
			return fmt.Errorf("unexpected page type %T", page)
		}
		return sp.ExtractIntoSlicePtr(v, "subnets")
	})
	if err != nil {
		return nil, err
	}
	c := converter{ctx, p.log}
	var out []provider.Subnet
	for _, w := range ws {
		if w.NetworkID != networkID {
			continue
		}
		if s, ok := c.subnet(w); ok {
			out = append(out, s)
		}
	}
	return out, nil
}
