package neutron

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/astara-go/astara/internal/provider"
)

// LegacyPrefix is the name prefix of service ports made by Akanda, the
// original's former name; DeleteServicePorts deletes those too.
const LegacyPrefix = "AKANDA:"

// ListPorts implements provider.NetworkAPI. The filters are sent to the
// API and applied again to what it returns.
func (p *Provider) ListPorts(ctx context.Context, f provider.PortFilter) ([]provider.Port, error) {
	out, err := p.listPorts(ctx, "ListPorts", f)
	if err != nil {
		return nil, fmt.Errorf("listing ports (network %q, device %q, name %q): %w", f.NetworkID, f.DeviceID, f.Name, err)
	}
	return out, nil
}

func (p *Provider) listPorts(ctx context.Context, op string, f provider.PortFilter) ([]provider.Port, error) {
	ws, err := p.listWirePorts(ctx, op, f)
	if err != nil {
		return nil, err
	}
	c := converter{ctx, p.log}
	out := make([]provider.Port, 0, len(ws))
	for _, w := range ws {
		out = append(out, c.port(w))
	}
	return out, nil
}

func (p *Provider) listWirePorts(ctx context.Context, op string, f provider.PortFilter) ([]wirePort, error) {
	ws, err := listAll[wirePort](ctx, p, op, func() pagination.Pager {
		return ports.List(p.client, ports.ListOpts{NetworkID: f.NetworkID, DeviceID: f.DeviceID, Name: f.Name, Limit: p.opts.PageSize})
	}, ports.ExtractPortsInto)
	if err != nil {
		return nil, err
	}
	// A server that ignores a filter must not make us touch other ports.
	out := ws[:0]
	for _, w := range ws {
		if (f.NetworkID == "" || w.NetworkID == f.NetworkID) && (f.DeviceID == "" || w.DeviceID == f.DeviceID) &&
			(f.Name == "" || w.Name == f.Name) {
			out = append(out, w)
		}
	}
	return out, nil
}

// CreateServicePort implements provider.NetworkAPI: a port named
// ASTARA:<label>:<resourceID>, administratively up, with no security
// group and port security off (when the API refuses that attribute, the
// port is made without it, and the attribute is not sent again).
//
// VRRP and LB ports (any label but MGT) are made with "fixed_ips": [], so
// they get no address (IPv6 auto-address subnets excepted: Neutron always
// adds those). A management port asks for one address on the management
// subnet: Options.ManagementSubnetID, else the network's IPv6 SLAAC (or
// DHCPv6-stateless) subnet, else its first IPv4 subnet. On a SLAAC subnet
// Neutron computes the EUI-64 address it would have assigned anyway (the
// original sent "fixed_ips": [] and relied on that); naming the subnet
// also gives an address on IPv4 or DHCPv6-stateful management networks,
// and exactly one, on the subnet chosen.
//
// A create that fails in a way that leaves its outcome unknown (5xx,
// reset connection) is retried only when the API can tag the port with a
// request id in its description: the retry then adopts the port if the
// failed attempt made it. Otherwise only requests that surely were not
// processed (connection refused, 429) are retried.
func (p *Provider) CreateServicePort(ctx context.Context, label, resourceID, networkID string) (*provider.Port, error) {
	name := provider.ServicePortName(label, resourceID)
	if label == "" || strings.Contains(label, ":") || resourceID == "" {
		return nil, fmt.Errorf("creating port %q: bad label %q or resource id %q", name, label, resourceID)
	}
	if err := sanitize("network", networkID); err != nil {
		return nil, fmt.Errorf("creating port %s: %w", name, err)
	}
	exts, err := p.extensions(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating port %s on network %s: %w", name, networkID, err)
	}
	opts := ports.CreateOpts{
		NetworkID:      networkID,
		Name:           name,
		AdminStateUp:   gophercloud.Enabled,
		FixedIPs:       []ports.IP{},
		SecurityGroups: &[]string{},
	}
	if label == provider.LabelManagement {
		subnetID, err := p.managementSubnet(ctx, networkID)
		if err != nil {
			return nil, fmt.Errorf("creating port %s on network %s: %w", name, networkID, err)
		}
		opts.FixedIPs = []ports.IP{{SubnetID: subnetID}}
	}
	retry := retryIf(func(k errKind) bool { return k == unsent })
	if exts.has(extDescription) {
		opts.Description = "astara service port, request " + rand.Text()
		retry = idempotent
	}
	portSecurity := exts.mayHave(extPortSecurity)

	var created *wirePort
	attempts := 0
	err = p.do(ctx, "CreatePort", retry, func(ctx context.Context) error {
		attempts++
		if attempts > 1 && opts.Description != "" {
			w, err := p.findCreated(ctx, opts)
			if err != nil || w != nil {
				created = w
				return err
			}
		}
		w, err := p.postPort(ctx, opts, portSecurity)
		created = w
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating port %s on network %s: %w", name, networkID, notFound(err))
	}
	if created == nil || created.ID == "" {
		return nil, fmt.Errorf("creating port %s on network %s: the API returned no port", name, networkID)
	}
	port := converter{ctx, p.log}.port(*created)
	p.log.DebugContext(ctx, "service port created", "port_id", port.ID, "name", name, "network_id", networkID, "mac", port.MAC)
	return &port, nil
}

// postPort creates a port, with port_security_enabled false unless
// portSecurity is false or the API refused the attribute before; a refusal
// now is remembered, and the port made without it.
func (p *Provider) postPort(ctx context.Context, opts ports.CreateOpts, portSecurity bool) (*wirePort, error) {
	var w wirePort
	if portSecurity && !p.noPortSecurity.Load() {
		err := ports.Create(ctx, p.client, portsecurity.PortCreateOptsExt{
			CreateOptsBuilder:   opts,
			PortSecurityEnabled: gophercloud.Disabled,
		}).ExtractInto(&w)
		if !refusesPortSecurity(err) {
			return &w, err
		}
		p.noPortSecurity.Store(true)
		p.log.WarnContext(ctx, "the network API refuses port_security_enabled: service ports keep the network's port security", "err", err)
	}
	err := ports.Create(ctx, p.client, opts).ExtractInto(&w)
	return &w, err
}

// refusesPortSecurity reports whether err is a 400 about
// port_security_enabled (an API without the port-security extension
// driver answers "Unrecognized attribute(s) 'port_security_enabled'").
func refusesPortSecurity(err error) bool {
	var code gophercloud.ErrUnexpectedResponseCode
	return errors.As(err, &code) && code.Actual == http.StatusBadRequest &&
		strings.Contains(string(code.Body), "port_security_enabled")
}

// findCreated returns the port a failed attempt made with opts (same
// name, network and request description), or nil.
func (p *Provider) findCreated(ctx context.Context, opts ports.CreateOpts) (*wirePort, error) {
	ws, err := p.listWirePorts(ctx, "FindCreatedPort", provider.PortFilter{NetworkID: opts.NetworkID, Name: opts.Name})
	if err != nil {
		return nil, fmt.Errorf("looking for the port a failed create made: %w", err)
	}
	for _, w := range ws {
		if w.Description == opts.Description {
			p.log.InfoContext(ctx, "adopting the port a failed create made", "port_id", w.ID, "name", w.Name)
			return &w, nil
		}
	}
	return nil, nil
}

// managementSubnet returns the subnet of networkID a management port gets
// its address on (see CreateServicePort).
func (p *Provider) managementSubnet(ctx context.Context, networkID string) (string, error) {
	if p.opts.ManagementSubnetID != "" {
		return p.opts.ManagementSubnetID, nil
	}
	subs, err := p.listSubnets(ctx, networkID)
	if err != nil {
		return "", fmt.Errorf("listing the subnets of the management network: %w", err)
	}
	for _, s := range subs {
		if isAutoAddress(s) {
			return s.ID, nil
		}
	}
	for _, s := range subs {
		if s.CIDR.Addr().Is4() {
			return s.ID, nil
		}
	}
	if len(subs) > 0 {
		return subs[0].ID, nil
	}
	// No subnet: is there a network at all?
	err = p.do(ctx, "GetNetwork", idempotent, func(ctx context.Context) error {
		return networks.Get(ctx, p.client, networkID).Err
	})
	if err != nil {
		return "", fmt.Errorf("reading the management network: %w", notFound(err))
	}
	return "", errors.New("the management network has no subnet to give the management port an address")
}

// DeleteServicePorts implements provider.NetworkAPI: it deletes every port
// named ASTARA:<label>:<resourceID>, or AKANDA:<label>:<resourceID> (the
// legacy name). Ports already gone are not an error; a failure to delete
// one port does not keep the others from being deleted.
func (p *Provider) DeleteServicePorts(ctx context.Context, label, resourceID string) error {
	name := provider.ServicePortName(label, resourceID)
	if label == "" || resourceID == "" {
		return fmt.Errorf("deleting ports %q: empty label or resource id", name)
	}
	legacy := LegacyPrefix + strings.TrimPrefix(name, "ASTARA:")
	var errs []error
	for _, n := range []string{name, legacy} {
		found, err := p.listPorts(ctx, "ListServicePorts", provider.PortFilter{Name: n})
		if err != nil {
			errs = append(errs, fmt.Errorf("listing ports %s: %w", n, err))
			continue
		}
		for _, port := range found {
			if err := p.DeletePort(ctx, port.ID); err != nil {
				errs = append(errs, fmt.Errorf("deleting port %s: %w", n, err))
			}
		}
	}
	return errors.Join(errs...)
}

// DeletePort deletes one port by id; a port already gone (404) is not an
// error.
func (p *Provider) DeletePort(ctx context.Context, id string) error {
	if err := sanitize("port", id); err != nil {
		return fmt.Errorf("deleting port: %w", err)
	}
	err := p.do(ctx, "DeletePort", idempotent, func(ctx context.Context) error {
		return ports.Delete(ctx, p.client, id).ExtractErr()
	})
	switch {
	case is404(err):
		p.log.DebugContext(ctx, "port already deleted", "port_id", id)
	case err != nil:
		return fmt.Errorf("deleting port %s: %w", id, err)
	}
	return nil
}
