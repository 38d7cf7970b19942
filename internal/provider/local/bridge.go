package local

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bridgeMarker is what <StateDir>/bridges/<name> holds: a bridge this
// provider created, which Prune may delete.
type bridgeMarker struct {
	Name      string `json:"name"`
	NetworkID string `json:"network_id"`
}

// hostHandle opens a netlink handle in the host namespace.
func (c *Compute) hostHandle() (*netlink.Handle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	h, err := netlink.NewHandleAt(c.hostNS)
	if err != nil {
		return nil, fmt.Errorf("netlink in the host namespace: %w", err)
	}
	return h, nil
}

func (c *Compute) ensureManagementBridge() error {
	h, err := c.hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := c.ensureBridge(h, c.mgmtBr, c.opts.ManagementNetworkID, false)
	if err != nil {
		return err
	}
	if !c.opts.ManagementAddress.IsValid() {
		return nil
	}
	p := c.opts.ManagementAddress
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}}
	if p.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD // usable at once: the orchestrator listens on it
	}
	if err := h.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("adding %s: %w", p, err)
	}
	return nil
}

// ensureBridge makes the bridge name exist and be up, with the network's
// uplink enslaved if it has one. A bridge it creates gets a fixed MAC (a
// bridge otherwise takes its ports' lowest MAC, and its addresses' MAC
// would change as instances come and go), no multicast snooping (VRRP and
// IPv6 neighbour discovery flood as on a hub), and, when prunable, a
// marker that lets Prune delete it.
func (c *Compute) ensureBridge(h *netlink.Handle, name, networkID string, prunable bool) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		mac, merr := randomMAC()
		if merr != nil {
			return nil, merr
		}
		snooping := false
		err = h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}, MulticastSnooping: &snooping})
		switch {
		case errors.Is(err, unix.EEXIST): // made meanwhile by another caller
		case err != nil:
			return nil, fmt.Errorf("creating bridge %s: %w", name, err)
		default:
			c.log.Info("bridge created", "bridge", name, "network_id", networkID)
			if prunable {
				if err := writeFileAtomic(filepath.Join(c.bridgesDir(), name), bridgeMarker{Name: name, NetworkID: networkID}); err != nil {
					return nil, fmt.Errorf("recording bridge %s: %w", name, err)
				}
			}
		}
		l, err = h.LinkByName(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return nil, fmt.Errorf("%s is a %s, not a bridge", name, l.Type())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("bringing bridge %s up: %w", name, err)
		}
	}
	if dev := c.opts.Uplinks[networkID]; dev != "" && networkID != "" {
		if err := c.enslaveUplink(h, l, dev); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// enslaveUplink makes the host interface dev a port of bridge br, up.
func (c *Compute) enslaveUplink(h *netlink.Handle, br netlink.Link, dev string) error {
	ul, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("uplink %s of bridge %s: %w", dev, br.Attrs().Name, err)
	}
	switch m := ul.Attrs().MasterIndex; {
	case m == br.Attrs().Index:
	case m != 0:
		return fmt.Errorf("uplink %s of bridge %s is a port of another device (index %d)", dev, br.Attrs().Name, m)
	default:
		if err := h.LinkSetMaster(ul, br); err != nil {
			return fmt.Errorf("enslaving uplink %s to bridge %s: %w", dev, br.Attrs().Name, err)
		}
		c.log.Info("uplink enslaved", "bridge", br.Attrs().Name, "uplink", dev)
	}
	if ul.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(ul); err != nil {
			return fmt.Errorf("bringing uplink %s up: %w", dev, err)
		}
	}
	return nil
}

// Prune deletes the bridges this provider created for networks that no
// instance uses any more, when nothing but their uplink is plugged into
// them (the uplink is released). The management bridge, and bridges it
// did not create, are kept. Calling it again does nothing more.
func (c *Compute) Prune(ctx context.Context) error {
	if err := c.checkOpen(); err != nil {
		return fmt.Errorf("pruning bridges: %w", err)
	}
	c.bridgeMu.Lock()
	defer c.bridgeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	recs, err := c.records()
	if err != nil {
		return fmt.Errorf("pruning bridges: %w", err)
	}
	used := map[string]bool{c.mgmtBr: true}
	for _, r := range recs {
		for _, p := range r.Ports {
			used[p.Bridge] = true
		}
	}
	entries, err := os.ReadDir(c.bridgesDir())
	if err != nil {
		return fmt.Errorf("pruning bridges: %w", err)
	}
	h, err := c.hostHandle()
	if err != nil {
		return fmt.Errorf("pruning bridges: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, e := range entries {
		if e.IsDir() || e.Name()[0] == '.' || used[e.Name()] {
			continue
		}
		if err := c.pruneBridge(h, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Compute) pruneBridge(h *netlink.Handle, name string) error {
	marker := filepath.Join(c.bridgesDir(), name)
	b, err := os.ReadFile(marker)
	if err != nil {
		return fmt.Errorf("pruning bridge %s: %w", name, err)
	}
	var m bridgeMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("pruning bridge %s: %s is corrupt: %w", name, marker, err)
	}
	br, err := h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return removeIfExists(marker)
	}
	if err != nil {
		return fmt.Errorf("pruning bridge %s: %w", name, err)
	}
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("pruning bridge %s: listing links: %w", name, err)
	}
	var uplink netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex != br.Attrs().Index {
			continue
		}
		if l.Attrs().Name != c.opts.Uplinks[m.NetworkID] {
			c.log.Info("bridge kept: a device is plugged into it", "bridge", name, "device", l.Attrs().Name)
			return nil
		}
		uplink = l
	}
	if uplink != nil {
		if err := h.LinkSetNoMaster(uplink); err != nil {
			return fmt.Errorf("pruning bridge %s: releasing uplink %s: %w", name, uplink.Attrs().Name, err)
		}
	}
	if err := h.LinkDel(br); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) {
		return fmt.Errorf("pruning bridge %s: %w", name, err)
	}
	c.log.Info("bridge pruned", "bridge", name, "network_id", m.NetworkID)
	return removeIfExists(marker)
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("generating a MAC: %w", err)
	}
	mac[0] = mac[0]&0xfe | 0x02
	return mac, nil
}
