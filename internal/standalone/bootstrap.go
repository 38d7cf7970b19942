package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/astara-go/astara/internal/config"
)

// ManagementNetworkName names the management network standalone mode makes
// in the embedded network API when [DEFAULT] management_network_id is not
// set.
const ManagementNetworkName = "astara-management"

// management is the management network in the embedded network API.
type management struct {
	networkID, subnetID string
}

// bootstrap finds the management network (management_network_id, else the
// service project's network named ManagementNetworkName, made if missing)
// and its subnet on management_prefix (management_subnet_id, else the one
// with that CIDR, made if missing: IPv6 SLAAC, or IPv4 without DHCP, with
// the orchestrator's address as its gateway).
func bootstrap(ctx context.Context, c *gophercloud.ServiceClient, cfg *config.Config, orchestrator netip.Addr, log *slog.Logger) (management, error) {
	var m management
	if id := cfg.ManagementNetworkID; id != "" {
		n, err := networks.Get(ctx, c, id).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return m, fmt.Errorf("[DEFAULT] management_network_id %s: no such network in the network API", id)
		}
		if err != nil {
			return m, fmt.Errorf("reading the management network %s: %w", id, err)
		}
		m.networkID = n.ID
	} else {
		pages, err := networks.List(c, networks.ListOpts{Name: ManagementNetworkName, ProjectID: Project}).AllPages(ctx)
		if err != nil {
			return m, fmt.Errorf("listing the management networks: %w", err)
		}
		found, err := networks.ExtractNetworks(pages)
		if err != nil {
			return m, fmt.Errorf("listing the management networks: %w", err)
		}
		switch len(found) {
		case 0:
			up := true
			n, err := networks.Create(ctx, c, networks.CreateOpts{Name: ManagementNetworkName, AdminStateUp: &up,
				Description: "The management network of Astara's appliances (standalone mode)"}).Extract()
			if err != nil {
				return m, fmt.Errorf("making the management network: %w", err)
			}
			log.Info("management network made", "network_id", n.ID, "name", ManagementNetworkName)
			m.networkID = n.ID
		case 1:
			m.networkID = found[0].ID
		default:
			return m, fmt.Errorf("%d networks named %s in project %s: set [DEFAULT] management_network_id", len(found), ManagementNetworkName, Project)
		}
	}

	pages, err := subnets.List(c, subnets.ListOpts{NetworkID: m.networkID}).AllPages(ctx)
	if err != nil {
		return m, fmt.Errorf("listing the subnets of the management network %s: %w", m.networkID, err)
	}
	subs, err := subnets.ExtractSubnets(pages)
	if err != nil {
		return m, fmt.Errorf("listing the subnets of the management network %s: %w", m.networkID, err)
	}
	prefix := cfg.ManagementPrefix.Masked()
	for _, s := range subs {
		p, err := netip.ParsePrefix(s.CIDR)
		switch {
		case cfg.ManagementSubnetID != "" && s.ID == cfg.ManagementSubnetID:
			if err != nil || p.Masked() != prefix {
				return m, fmt.Errorf("[DEFAULT] management_subnet_id %s is on %s, not on [DEFAULT] management_prefix %s", s.ID, s.CIDR, prefix)
			}
			m.subnetID = s.ID
		case cfg.ManagementSubnetID == "" && err == nil && p.Masked() == prefix:
			m.subnetID = s.ID
		}
	}
	switch {
	case m.subnetID != "":
		return m, nil
	case cfg.ManagementSubnetID != "":
		return m, fmt.Errorf("[DEFAULT] management_subnet_id %s: not a subnet of the management network %s", cfg.ManagementSubnetID, m.networkID)
	case len(subs) > 0:
		return m, fmt.Errorf("the management network %s has no subnet on [DEFAULT] management_prefix %s (it has %s): "+
			"set management_prefix or management_subnet_id", m.networkID, prefix, subs[0].CIDR)
	}
	gw := orchestrator.String()
	opts := subnets.CreateOpts{NetworkID: m.networkID, Name: ManagementNetworkName, CIDR: prefix.String(), GatewayIP: &gw}
	if prefix.Addr().Is6() {
		opts.IPVersion, opts.IPv6AddressMode, opts.IPv6RAMode = gophercloud.IPv6, "slaac", "slaac"
	} else {
		off := false
		opts.IPVersion, opts.EnableDHCP = gophercloud.IPv4, &off
	}
	s, err := subnets.Create(ctx, c, opts).Extract()
	if err != nil {
		return m, fmt.Errorf("making the management subnet %s: %w", prefix, err)
	}
	log.Info("management subnet made", "network_id", m.networkID, "subnet_id", s.ID, "cidr", s.CIDR, "gateway_ip", s.GatewayIP)
	m.subnetID = s.ID
	return m, nil
}

// resolveUplinks maps [standalone] external_interfaces to network ids: a
// network named that is missing is left for the next start (with a
// warning), one named ambiguously is an error.
func resolveUplinks(ctx context.Context, c *gophercloud.ServiceClient, byName map[string]string, log *slog.Logger) (map[string]string, error) {
	out := map[string]string{}
	for ref, dev := range byName {
		n, err := networks.Get(ctx, c, ref).Extract()
		if err == nil {
			if err := setUplink(out, n.ID, dev); err != nil {
				return nil, err
			}
			continue
		}
		if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return nil, fmt.Errorf("[standalone] external_interfaces: network %s: %w", ref, err)
		}
		pages, err := networks.List(c, networks.ListOpts{Name: ref}).AllPages(ctx)
		if err != nil {
			return nil, fmt.Errorf("[standalone] external_interfaces: listing networks named %s: %w", ref, err)
		}
		found, err := networks.ExtractNetworks(pages)
		if err != nil {
			return nil, fmt.Errorf("[standalone] external_interfaces: listing networks named %s: %w", ref, err)
		}
		switch len(found) {
		case 0:
			log.Warn("[standalone] external_interfaces: no such network yet; its interface is plugged at the next start",
				"network", ref, "interface", dev)
		case 1:
			if err := setUplink(out, found[0].ID, dev); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("[standalone] external_interfaces: %d networks are named %s: give its id", len(found), ref)
		}
	}
	for id, dev := range out {
		for other, d := range out {
			if other != id && d == dev {
				return nil, errors.New("[standalone] external_interfaces: interface " + dev + " is given for two networks")
			}
		}
	}
	return out, nil
}

// setUplink records dev as network id's uplink, unless the network was
// given another one (by its name and its id).
func setUplink(out map[string]string, id, dev string) error {
	if d, ok := out[id]; ok && d != dev {
		return fmt.Errorf("[standalone] external_interfaces: network %s is given two interfaces, %s and %s", id, d, dev)
	}
	out[id] = dev
	return nil
}
