package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/state"
)

// Boot implements state.Instance. It counts the attempt, deletes the
// router's leftover instances and appliance ports, makes new ports
// (management first, one VRRP port per network), and boots an instance
// named ak-router-<id>_<n> whose user data gives the appliance its
// management MAC and address. The state is then Booting; on failure it is
// Down (Gone if the router is gone) and the ports made are deleted.
func (m *Manager) Boot(ctx context.Context) error {
	m.mu.Lock()
	m.bootAttempts++
	attempt, image := m.bootAttempts, m.image
	m.mu.Unlock()
	if image == "" {
		image = m.cfg.ImageID
	}
	log := m.log.With("attempt", attempt)

	r, err := m.driver.Router(ctx)
	if err != nil {
		if errors.Is(err, provider.ErrNotFound) {
			m.set(ctx, state.Gone)
		} else {
			m.set(ctx, state.Down)
		}
		return fmt.Errorf("boot: %w", err)
	}
	insts, err := m.instances(ctx)
	if err != nil {
		m.set(ctx, state.Down)
		return fmt.Errorf("boot: %w", err)
	}
	next := 0
	for _, in := range insts {
		if n, _ := m.driver.InstanceIndex(in.Name); n >= next {
			next = n + 1
		}
	}
	// The original kept a same-named instance in BUILD and otherwise
	// deleted it and failed the attempt; this deletes leftovers and boots.
	if err := m.deleteInstances(ctx, insts); err != nil {
		m.set(ctx, state.Down)
		return fmt.Errorf("boot: deleting the leftover instances: %w", err)
	}
	if err := m.driver.DeletePorts(ctx); err != nil {
		m.set(ctx, state.Down)
		return fmt.Errorf("boot: deleting the leftover ports: %w", err)
	}
	mgmt, vrrp, err := m.driver.MakePorts(ctx, r)
	if err != nil {
		m.set(ctx, state.Down)
		return fmt.Errorf("boot: %w", err)
	}
	fail := func(err error) error {
		if derr := m.driver.DeletePorts(ctx); derr != nil {
			err = errors.Join(err, derr)
		}
		m.set(ctx, state.Down)
		return fmt.Errorf("boot: %w", err)
	}
	ud, err := m.userData(ctx, mgmt)
	if err != nil {
		return fail(err)
	}
	name := m.driver.InstanceName(next)
	inst, err := m.compute.Boot(ctx, provider.BootSpec{
		Name: name, ImageID: image, FlavorID: m.cfg.FlavorID,
		ManagementPort: mgmt, Ports: vrrp, UserData: ud,
	})
	if err != nil {
		return fail(fmt.Errorf("booting %s: %w", name, err))
	}
	log = log.With("instance_id", inst.ID)
	if inst.Status == provider.InstanceError {
		// Left for the next boot (or Stop) to delete, with its ports.
		m.set(ctx, state.Down)
		log.Warn("the instance went to ERROR at boot", "name", name)
		return fmt.Errorf("boot: instance %s (%s) went to ERROR", name, inst.ID)
	}
	m.mu.Lock()
	m.instanceID = inst.ID
	m.bootStarted = m.cfg.Now()
	m.mu.Unlock()
	log.Info("instance booted", "name", name, "image", image, "management_address", mgmt.FixedIPs[0].Address.String())
	m.set(ctx, state.Booting)
	return nil
}

// userData is the instance's user data: the JSON form the appliance's
// bootstrap reads, {"astara": {"management": {"mac", "address", "mtu"}}}.
func (m *Manager) userData(ctx context.Context, mgmt provider.Port) ([]byte, error) {
	nw, err := m.net.GetNetwork(ctx, mgmt.NetworkID)
	if err != nil {
		return nil, fmt.Errorf("reading the management network %s: %w", mgmt.NetworkID, err)
	}
	var addr netip.Prefix
	for _, f := range mgmt.FixedIPs {
		for _, s := range nw.Subnets {
			if s.ID == f.SubnetID && s.CIDR.Contains(f.Address) {
				addr = netip.PrefixFrom(f.Address, s.CIDR.Bits())
			}
		}
		if addr.IsValid() {
			break
		}
	}
	if !addr.IsValid() {
		return nil, fmt.Errorf("management port %s has no address on a subnet of network %s", mgmt.ID, nw.ID)
	}
	type management struct {
		MAC     string `json:"mac"`
		Address string `json:"address"`
		MTU     int    `json:"mtu,omitempty"`
	}
	var ud struct {
		Astara struct {
			Management management `json:"management"`
		} `json:"astara"`
	}
	ud.Astara.Management = management{MAC: mgmt.MAC, Address: addr.String(), MTU: nw.MTU}
	b, err := json.Marshal(ud)
	if err != nil {
		return nil, fmt.Errorf("encoding the user data: %w", err)
	}
	return b, nil
}

// deleteInstances deletes instances and waits until the compute API no
// longer has them (at most DeleteTimeout).
func (m *Manager) deleteInstances(ctx context.Context, insts []provider.Instance) error {
	if len(insts) == 0 {
		return nil
	}
	var errs []error
	pending := map[string]string{}
	for _, in := range insts {
		if err := m.compute.Delete(ctx, in.ID); err != nil {
			errs = append(errs, fmt.Errorf("deleting instance %s (%s): %w", in.Name, in.ID, err))
			continue
		}
		m.log.Info("instance deleted", "instance_id", in.ID, "name", in.Name)
		pending[in.ID] = in.Name
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DeleteTimeout)
	defer cancel()
	for len(pending) > 0 {
		for id := range pending {
			_, err := m.compute.Get(ctx, id)
			switch {
			case errors.Is(err, provider.ErrNotFound):
				delete(pending, id)
			case err != nil && ctx.Err() == nil:
				m.log.Warn("checking a deleted instance failed", "instance_id", id, "err", err)
			}
		}
		if len(pending) == 0 {
			break
		}
		if err := wait(ctx, m.cfg.PollInterval); err != nil {
			for id, name := range pending {
				errs = append(errs, fmt.Errorf("instance %s (%s) still exists: %w", name, id, err))
			}
			break
		}
	}
	m.mu.Lock()
	for _, in := range insts {
		if _, still := pending[in.ID]; !still && m.instanceID == in.ID {
			m.instanceID = ""
		}
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}
