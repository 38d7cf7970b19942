package netif

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
)

// Protocol is the rtm_protocol of every route this package installs, so that
// it can tell its routes from the kernel's, BIRD's or an operator's.
const Protocol = 172

// Spec is the desired state of the appliance's interfaces and routes.
type Spec struct {
	Interfaces []Interface
	// Routes are default and host routes in the main table.
	Routes []Route
	// LocalAddrs are addresses the router answers for (ARP, local delivery)
	// without assigning them to an interface: floating IPs. They are kernel
	// local routes, which cost O(log n) to add where interface addresses cost
	// O(n) each (the kernel walks the interface's address list).
	LocalAddrs []LocalAddr
}

// Interface is the desired state of one managed link, by kernel name.
type Interface struct {
	Name string
	// Addresses are assigned exactly: others (except IPv6 link-local) are removed.
	Addresses []netip.Prefix
	// MTU is set when non-zero.
	MTU int
	// DisableDAD turns IPv6 duplicate address detection off (all but external).
	DisableDAD bool
}

// Route is a route in the main table; Dst 0.0.0.0/0 or ::/0 is a default route.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	Dev     string
}

// LocalAddr is an address owned by the router on a link without being an
// interface address.
type LocalAddr struct {
	Addr netip.Addr
	Dev  string
}

// Result says what an Apply did.
type Result struct {
	// Changes counts the kernel changes made (0 for an identical re-apply).
	Changes int
	// KernelRead is true when the kernel's state had to be read and diffed
	// (first apply, or the kernel changed behind our back).
	KernelRead bool
	// RemovedV4 are IPv4 addresses and local addresses that were removed;
	// their conntrack entries should be flushed once NAT rules are updated.
	RemovedV4 []netip.Addr
	// AddedLocal are local addresses newly added, to announce with GARP.
	AddedLocal []LocalAddr
	// AddedV4 are interface IPv4 addresses newly added, to announce with GARP.
	AddedV4 []LocalAddr
}

// Manager applies Specs to the kernel of the current network namespace.
type Manager struct {
	h     *netlink.Handle
	log   *slog.Logger
	watch *watcher
	batch *routeBatcher
	sys   sysctls

	mu sync.Mutex
	// verified is the kernel state as of the end of the last successful
	// Apply; nil means unknown. The watcher tells whether it still holds.
	verified *state
	// verifiedSpec is the spec verified was built from.
	verifiedSpec *Spec
}

// New returns a Manager for the current network namespace.
func New(log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	w, err := newWatcher()
	if err != nil {
		h.Close()
		return nil, err
	}
	b, err := newRouteBatcher()
	if err != nil {
		h.Close()
		w.close()
		return nil, err
	}
	return &Manager{h: h, log: log, watch: w, batch: b, sys: procSysctls{}}, nil
}

// Close releases the netlink sockets.
func (m *Manager) Close() error {
	m.h.Close()
	return errors.Join(m.watch.close(), m.batch.close())
}

// Handle returns the netlink handle, for listing links.
func (m *Manager) Handle() *netlink.Handle { return m.h }

// Invalidate forgets what is known of the kernel: the next Apply reads it.
func (m *Manager) Invalidate() {
	m.mu.Lock()
	m.verified, m.verifiedSpec = nil, nil
	m.mu.Unlock()
}

// Apply makes the kernel match spec, changing only what differs. When the
// kernel is known not to have changed since the last Apply (its netlink
// events all agree with what was applied), the diff is computed without
// reading the kernel back.
func (m *Manager) Apply(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.validate(); err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	consistent, err := m.watch.drain(m.verified)
	if err != nil {
		return Result{}, err
	}
	// Fast path: the same spec as last time, and the kernel's notifications
	// and the sysctls (which raise none) say nothing moved since.
	if consistent && m.verified != nil && m.verifiedSpec != nil && spec.equal(m.verifiedSpec) {
		held, err := m.sysctlsHold()
		if err != nil {
			return Result{}, err
		}
		if held {
			return Result{}, nil
		}
	}
	var total Result
	// A further round repairs side effects of the first, e.g. the kernel
	// deleting secondary addresses along with a primary one.
	for round := 0; round < 3; round++ {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var cur *state
		if consistent && m.verified != nil && m.verified.covers(spec) {
			if cur, err = m.verified.withSysctls(m.sys, spec); err != nil {
				return total, err
			}
		} else {
			if cur, err = readState(m.h, m.sys, spec); err != nil {
				return total, err
			}
			total.KernelRead = true
		}
		want, err := desiredState(spec, cur)
		if err != nil {
			return total, err
		}
		ops := diff(cur, want)
		m.verified, m.verifiedSpec = nil, nil
		res, err := m.execute(ctx, ops)
		total.merge(res)
		if err != nil {
			return total, err
		}
		// Our own changes' notifications must agree with want; anything
		// else (a side effect, a concurrent change) means another round.
		if consistent, err = m.watch.drain(want); err != nil {
			return total, err
		}
		if consistent {
			m.verified, m.verifiedSpec = want, spec.clone()
			break
		}
	}
	if total.Changes > 0 {
		m.log.Debug("interfaces applied", "changes", total.Changes, "kernel_read", total.KernelRead)
	}
	return total, nil
}

// sysctlsHold reports whether the verified per-link sysctls still hold.
func (m *Manager) sysctlsHold() (bool, error) {
	for _, l := range m.verified.links {
		for key, want := range l.sysctls {
			got, err := m.sys.get(l.name, key)
			if err != nil {
				return false, err
			}
			if got != want {
				return false, nil
			}
		}
	}
	return true, nil
}

// clone returns a deep copy of s: callers may reuse their slices.
func (s *Spec) clone() *Spec {
	c := &Spec{Interfaces: slices.Clone(s.Interfaces), Routes: slices.Clone(s.Routes), LocalAddrs: slices.Clone(s.LocalAddrs)}
	for i := range c.Interfaces {
		c.Interfaces[i].Addresses = slices.Clone(c.Interfaces[i].Addresses)
	}
	return c
}

// equal reports whether two specs are the same.
func (s *Spec) equal(o *Spec) bool {
	return slices.EqualFunc(s.Interfaces, o.Interfaces, func(a, b Interface) bool {
		return a.Name == b.Name && a.MTU == b.MTU && a.DisableDAD == b.DisableDAD && slices.Equal(a.Addresses, b.Addresses)
	}) && slices.Equal(s.Routes, o.Routes) && slices.Equal(s.LocalAddrs, o.LocalAddrs)
}

func (r *Result) merge(o Result) {
	r.Changes += o.Changes
	r.KernelRead = r.KernelRead || o.KernelRead
	r.RemovedV4 = append(r.RemovedV4, o.RemovedV4...)
	r.AddedLocal = append(r.AddedLocal, o.AddedLocal...)
	r.AddedV4 = append(r.AddedV4, o.AddedV4...)
}

func (s *Spec) validate() error {
	names := map[string]bool{}
	var errs []error
	for _, ifc := range s.Interfaces {
		if ifc.Name == "" || len(ifc.Name) > 15 {
			errs = append(errs, fmt.Errorf("interface name %q: must be 1-15 characters", ifc.Name))
		}
		if names[ifc.Name] {
			errs = append(errs, fmt.Errorf("interface %s listed twice", ifc.Name))
		}
		names[ifc.Name] = true
		for _, p := range ifc.Addresses {
			if !p.IsValid() {
				errs = append(errs, fmt.Errorf("interface %s: invalid address", ifc.Name))
			}
		}
		if ifc.MTU < 0 || ifc.MTU > 65535 {
			errs = append(errs, fmt.Errorf("interface %s: MTU %d out of range", ifc.Name, ifc.MTU))
		}
	}
	for _, r := range s.Routes {
		switch {
		case !names[r.Dev]:
			errs = append(errs, fmt.Errorf("route to %s: device %q is not a managed interface", r.Dst, r.Dev))
		case !r.Dst.IsValid() || !r.Gateway.IsValid():
			errs = append(errs, fmt.Errorf("route to %s via %s: invalid destination or gateway", r.Dst, r.Gateway))
		case r.Dst.Addr().Is4() != r.Gateway.Is4():
			errs = append(errs, fmt.Errorf("route to %s via %s: mixed IP versions", r.Dst, r.Gateway))
		}
	}
	for _, l := range s.LocalAddrs {
		if !names[l.Dev] || !l.Addr.IsValid() {
			errs = append(errs, fmt.Errorf("local address %s on %q: invalid address or unmanaged device", l.Addr, l.Dev))
		}
	}
	return errors.Join(errs...)
}
