package nova

import (
	"context"
	"fmt"
	"slices"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/attachinterfaces"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/retry"
)

// interfaces lists the ids of the ports attached to a server.
func (p *Provider) interfaces(ctx context.Context, serverID string) ([]string, error) {
	var ids []string
	err := p.do(ctx, "ListInterfaces", retry.Idempotent, func(ctx context.Context) error {
		page, err := attachinterfaces.List(p.client, serverID).AllPages(ctx)
		if err != nil {
			return err
		}
		ifaces, err := attachinterfaces.ExtractInterfaces(page)
		ids = nil
		for _, i := range ifaces {
			ids = append(ids, i.PortID)
		}
		return err
	})
	return ids, err
}

// AttachPort implements provider.ComputeAPI: it attaches the port to the
// server (os-interface), then waits until the server lists it (at most
// InterfaceWait). The attach is retried only when it surely was not sent.
// A missing server is an error wrapping provider.ErrNotFound.
func (p *Provider) AttachPort(ctx context.Context, instanceID string, port provider.Port) error {
	if err := checkID("server", instanceID); err != nil {
		return fmt.Errorf("attaching port %s: %w", port.ID, err)
	}
	if err := checkID("port", port.ID); err != nil {
		return fmt.Errorf("attaching a port to server %s: %w", instanceID, err)
	}
	err := p.do(ctx, "AttachInterface", retry.NotSent, func(ctx context.Context) error {
		return attachinterfaces.Create(ctx, p.client, instanceID, attachinterfaces.CreateOpts{PortID: port.ID}).Err
	})
	if err != nil {
		return fmt.Errorf("attaching port %s to server %s: %w", port.ID, instanceID, err)
	}
	err = p.awaitInterfaces(ctx, instanceID, func(ids []string) bool { return slices.Contains(ids, port.ID) }, false)
	if err != nil {
		return fmt.Errorf("attaching port %s to server %s: waiting for it to be listed: %w", port.ID, instanceID, err)
	}
	p.log.InfoContext(ctx, "port attached", "instance_id", instanceID, "port_id", port.ID, "network_id", port.NetworkID)
	return nil
}

// DetachPort implements provider.ComputeAPI: it detaches the port from the
// server, then waits until the server no longer lists it (at most
// InterfaceWait). A port not attached, or a server gone, is not an error.
func (p *Provider) DetachPort(ctx context.Context, instanceID, portID string) error {
	if err := checkID("server", instanceID); err != nil {
		return fmt.Errorf("detaching port %s: %w", portID, err)
	}
	if err := checkID("port", portID); err != nil {
		return fmt.Errorf("detaching a port from server %s: %w", instanceID, err)
	}
	err := p.do(ctx, "DetachInterface", retry.Idempotent, func(ctx context.Context) error {
		return attachinterfaces.Delete(ctx, p.client, instanceID, portID).ExtractErr()
	})
	switch {
	case is404(err):
		p.log.DebugContext(ctx, "port not attached", "instance_id", instanceID, "port_id", portID, "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("detaching port %s from server %s: %w", portID, instanceID, err)
	}
	err = p.awaitInterfaces(ctx, instanceID, func(ids []string) bool { return !slices.Contains(ids, portID) }, true)
	if err != nil {
		return fmt.Errorf("detaching port %s from server %s: waiting for it to leave: %w", portID, instanceID, err)
	}
	p.log.InfoContext(ctx, "port detached", "instance_id", instanceID, "port_id", portID)
	return nil
}

// awaitInterfaces lists a server's ports until done says so, for at most
// InterfaceWait. A server gone (404) is done when goneOK, else an error.
func (p *Provider) awaitInterfaces(ctx context.Context, serverID string, done func([]string) bool, goneOK bool) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.InterfaceWait)
	defer cancel()
	return poll(ctx, p.opts.PollInterval, func(ctx context.Context) (bool, error) {
		ids, err := p.interfaces(ctx, serverID)
		switch {
		case is404(err) && goneOK:
			return true, nil
		case err != nil:
			return false, err
		}
		return done(ids), nil
	})
}
