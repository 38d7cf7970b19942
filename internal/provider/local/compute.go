package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/astara-go/astara/internal/provider"
)

// cleanupTimeout bounds the clean-up of a failed Boot or AttachPort, which
// runs even when the caller's context has ended.
const cleanupTimeout = time.Minute

// enterTimeout bounds how long Boot waits for the agent to enter its
// namespace (ip netns exec does it before anything else).
const enterTimeout = 30 * time.Second

// Boot implements provider.ComputeAPI. It is idempotent by name: when an
// instance of that name runs (BUILD or ACTIVE), Boot returns it; a dead
// one (ERROR) is deleted and replaced. Otherwise it creates the namespace
// and the veths (the management port first, as eth0, then spec.Ports as
// eth1, eth2, ...), writes spec.UserData for the agent and starts the
// agent, in a session of its own, to outlive the orchestrator. It returns
// once the agent runs in the namespace, BUILD until its API listens. When
// it fails, nothing of the instance is left.
func (c *Compute) Boot(ctx context.Context, spec provider.BootSpec) (*provider.Instance, error) {
	if spec.Name == "" {
		return nil, errors.New("booting an instance: the name is required")
	}
	in, err := c.boot(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("booting instance %s: %w", spec.Name, err)
	}
	return in, nil
}

func (c *Compute) boot(ctx context.Context, spec provider.BootSpec) (*provider.Instance, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	if spec.ManagementPort.ID == "" {
		return nil, errors.New("the management port is required")
	}
	var ports []portRecord
	for i, p := range append([]provider.Port{spec.ManagementPort}, spec.Ports...) {
		pr, err := c.newPort(p, i, i == 0)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(ports, func(q portRecord) bool { return q.ID == pr.ID }) {
			return nil, fmt.Errorf("port %s is given twice", pr.ID)
		}
		ports = append(ports, pr)
	}
	unlockName, err := c.locks.lock(ctx, "name/"+spec.Name)
	if err != nil {
		return nil, err
	}
	defer unlockName()
	recs, err := c.records()
	if err != nil {
		return nil, err
	}
	tags := map[string]bool{}
	for _, r := range recs {
		tags[hostTag(r.ID)] = true
		if r.Name != spec.Name {
			continue
		}
		in := c.instance(r)
		if in.Status != provider.InstanceError {
			if len(r.Ports) == 0 || r.Ports[0].ID != spec.ManagementPort.ID {
				return nil, fmt.Errorf("instance %s of that name runs with another management port", r.ID)
			}
			c.log.Debug("instance already booted", "instance_id", r.ID, "name", r.Name, "status", in.Status)
			return &in, nil
		}
		c.log.Warn("deleting a dead instance of the name booted again", "instance_id", r.ID, "name", r.Name)
		if err := c.Delete(ctx, r.ID); err != nil {
			return nil, err
		}
	}

	var id string
	for id == "" || tags[hostTag(id)] {
		if id, err = newID(); err != nil {
			return nil, err
		}
	}
	r := &record{ID: id, Name: spec.Name, ImageID: spec.ImageID, FlavorID: spec.FlavorID,
		Created: time.Now().UTC().Truncate(time.Millisecond), Namespace: c.Namespace(id), Ports: ports}
	for i := range r.Ports {
		r.Ports[i].HostDevice = hostDevice(id, i)
	}
	log := c.log.With("instance_id", id, "name", spec.Name)

	unlockID, err := c.locks.lock(ctx, "id/"+id)
	if err != nil {
		return nil, err
	}
	defer unlockID()
	c.setBooting(id, true)
	defer c.setBooting(id, false)
	// The record comes first: whatever a crash leaves, Delete finds it.
	if err := c.publish(r); err != nil {
		return nil, err
	}
	if err := c.start(ctx, r, spec.UserData, log); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := c.destroy(cctx, r, log); derr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
		}
		return nil, fmt.Errorf("instance %s: %w", id, err)
	}
	log.Info("instance booted", "namespace", r.Namespace, "pid", r.PID, "ports", len(r.Ports))
	in := c.instance(r)
	return &in, nil
}

func (c *Compute) setBooting(id string, b bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b {
		c.booting[id] = true
	} else {
		delete(c.booting, id)
	}
}

// newPort validates a port to plug as ethN, and finds its bridge; the
// caller names the host end (hostDevice).
func (c *Compute) newPort(p provider.Port, n int, management bool) (portRecord, error) {
	if p.ID == "" {
		return portRecord{}, errors.New("a port has no id")
	}
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 {
		return portRecord{}, fmt.Errorf("port %s: MAC %q is not an Ethernet address", p.ID, p.MAC)
	}
	if mac[0]&1 != 0 || bytes.Equal(mac, make(net.HardwareAddr, 6)) {
		return portRecord{}, fmt.Errorf("port %s: MAC %s is not a unicast address", p.ID, mac)
	}
	if p.NetworkID == "" {
		return portRecord{}, fmt.Errorf("port %s has no network", p.ID)
	}
	br := c.mgmtBr
	if management {
		if want := c.opts.ManagementNetworkID; want != "" && p.NetworkID != want {
			return portRecord{}, fmt.Errorf("management port %s is on network %s, not on the management network %s", p.ID, p.NetworkID, want)
		}
	} else if br, err = c.Bridge(p.NetworkID); err != nil {
		return portRecord{}, fmt.Errorf("port %s: %w", p.ID, err)
	}
	return portRecord{ID: p.ID, NetworkID: p.NetworkID, MAC: mac.String(), Device: "eth" + strconv.Itoa(n),
		Bridge: br, Management: management}, nil
}

// start makes the instance's namespace and devices and starts its agent.
func (c *Compute) start(ctx context.Context, r *record, userData []byte, log *slog.Logger) error {
	if err := createNamespace(ctx, r.Namespace); err != nil {
		return err
	}
	ns, err := statNS(nsPath(r.Namespace))
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", r.Namespace, err)
	}
	if err := c.plugAll(ctx, r); err != nil {
		return err
	}
	dir := c.InstanceDir(r.ID)
	ud := filepath.Join(dir, "user-data")
	if err := os.WriteFile(ud, userData, 0o600); err != nil {
		return fmt.Errorf("writing the user data: %w", err)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("making the agent's state directory: %w", err)
	}
	exited, err := c.startAgent(r, ud, state, log)
	if err != nil {
		return err
	}
	if err := c.save(r); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, enterTimeout)
	defer cancel()
	err = poll(wctx, func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("the agent exited at once: %s", tail(c.LogFile(r.ID)))
		default:
			return inNamespace(r.PID, ns), nil
		}
	})
	if err != nil {
		return fmt.Errorf("waiting for the agent (pid %d) to enter namespace %s: %w", r.PID, r.Namespace, err)
	}
	return nil
}

// plugAll brings up the namespace's loopback and plugs every port.
func (c *Compute) plugAll(ctx context.Context, r *record) error {
	c.bridgeMu.RLock()
	defer c.bridgeMu.RUnlock()
	h, err := c.hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	nsh, nh, err := openNamespace(r.Namespace)
	if err != nil {
		return err
	}
	defer nsh.Close()
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err == nil {
		err = nh.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bringing lo up in namespace %s: %w", r.Namespace, err)
	}
	for _, p := range r.Ports {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.plug(h, nsh, nh, p); err != nil {
			return fmt.Errorf("port %s: %w", p.ID, err)
		}
	}
	return nil
}

// startAgent starts the agent in the instance's namespace, in a session of
// its own and without a parent-death signal: it outlives the orchestrator.
// The channel is closed when it exits (while this process is its parent).
func (c *Compute) startAgent(r *record, userData, state string, log *slog.Logger) (<-chan struct{}, error) {
	args := []string{"netns", "exec", r.Namespace, c.opts.AgentPath,
		"-user-data", userData, "-state-dir", state, "-port", strconv.Itoa(int(c.opts.AgentPort))}
	if c.opts.TLSCert != "" {
		args = append(args, "-tls-cert", c.opts.TLSCert, "-tls-key", c.opts.TLSKey)
	}
	if c.opts.TLSClientCA != "" {
		args = append(args, "-tls-client-ca", c.opts.TLSClientCA)
	}
	args = append(args, c.opts.AgentArgs...)
	logf, err := os.OpenFile(c.LogFile(r.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening the agent's log: %w", err)
	}
	defer logf.Close()
	// Not CommandContext: the agent outlives the call.
	cmd := exec.Command(c.ipPath, args...)
	cmd.Env = append(os.Environ(), c.opts.AgentEnv...)
	cmd.Dir = c.InstanceDir(r.ID)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the agent %s: %w", c.opts.AgentPath, err)
	}
	r.PID = cmd.Process.Pid
	r.PIDStart, _ = procStart(r.PID) // an agent already dead is seen below
	exited := make(chan struct{})
	go func() {
		// Reap the agent while this process is its parent.
		err := cmd.Wait()
		log.Info("agent exited", "pid", r.PID, "err", err)
		close(exited)
		c.notifyExit(r)
	}()
	log.Debug("agent started", "pid", r.PID, "args", args)
	return exited, nil
}

// plug makes the veth of port p: ethN with the port's MAC in the
// namespace, its peer in the host namespace up on the network's bridge.
// What already exists is kept, so plugging again repairs.
func (c *Compute) plug(h *netlink.Handle, nsh netns.NsHandle, nh *netlink.Handle, p portRecord) error {
	mac, err := net.ParseMAC(p.MAC)
	if err != nil {
		return fmt.Errorf("MAC %q: %w", p.MAC, err)
	}
	dev, err := nh.LinkByName(p.Device)
	switch {
	case err == nil:
		if dev.Type() != "veth" || !bytes.Equal(dev.Attrs().HardwareAddr, mac) {
			return fmt.Errorf("%s exists in the namespace: a %s with MAC %s", p.Device, dev.Type(), dev.Attrs().HardwareAddr)
		}
	case errors.As(err, new(netlink.LinkNotFoundError)):
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.HostDevice}, PeerName: p.Device,
			PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(nsh))}
		if err := h.LinkAdd(veth); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("creating veth %s/%s: host device %s exists already", p.HostDevice, p.Device, p.HostDevice)
			}
			return fmt.Errorf("creating veth %s/%s: %w", p.HostDevice, p.Device, err)
		}
	default:
		return fmt.Errorf("device %s: %w", p.Device, err)
	}
	host, err := h.LinkByName(p.HostDevice)
	if err != nil {
		return fmt.Errorf("host end %s of %s: %w", p.HostDevice, p.Device, err)
	}
	br, err := c.ensureBridge(h, p.Bridge, p.NetworkID, p.Bridge != c.mgmtBr)
	if err != nil {
		return err
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
			return fmt.Errorf("plugging %s into bridge %s: %w", p.HostDevice, p.Bridge, err)
		}
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		// A bridge port needs no IPv6 address: none is generated, so it
		// sends nothing of its own to the network.
		if err := h.LinkSetIP6AddrGenMode(host, 1 /* IN6_ADDR_GEN_MODE_NONE */); err != nil {
			c.log.Warn("cannot turn IPv6 address generation off", "device", p.HostDevice, "err", err)
		}
		if err := h.LinkSetUp(host); err != nil {
			return fmt.Errorf("bringing %s up: %w", p.HostDevice, err)
		}
	}
	return nil
}

// unplug deletes the veth of port p (nh nil: the namespace is gone).
func unplug(h, nh *netlink.Handle, p portRecord) error {
	if nh != nil {
		if err := deleteLink(nh, p.Device); err != nil {
			return fmt.Errorf("deleting %s: %w", p.Device, err)
		}
	}
	if err := deleteLink(h, p.HostDevice); err != nil {
		return fmt.Errorf("deleting %s: %w", p.HostDevice, err)
	}
	return nil
}

// deleteLink deletes the named link; a missing one is not an error.
func deleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err == nil {
		err = h.LinkDel(l)
	}
	if err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

// openNamespace opens the named namespace and a netlink handle in it.
func openNamespace(name string) (netns.NsHandle, *netlink.Handle, error) {
	if _, err := statNS(nsPath(name)); err != nil {
		return 0, nil, fmt.Errorf("network namespace %s: %w", name, err)
	}
	nsh, err := netns.GetFromName(name)
	if err != nil {
		return 0, nil, fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	nh, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		return 0, nil, fmt.Errorf("netlink in namespace %s: %w", name, err)
	}
	return nsh, nh, nil
}

// Get implements provider.ComputeAPI. An instance whose record cannot be
// read is reported in ERROR, so that it gets deleted.
func (c *Compute) Get(ctx context.Context, id string) (*provider.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := c.load(id)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		return nil, err
	case err != nil:
		c.log.Warn("instance record unreadable", "instance_id", id, "err", err)
		return &provider.Instance{ID: id, Status: provider.InstanceError}, nil
	}
	in := c.instance(r)
	return &in, nil
}

// ListByPrefix implements provider.ComputeAPI, in boot order.
func (c *Compute) ListByPrefix(ctx context.Context, prefix string) ([]provider.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, err := c.records()
	if err != nil {
		return nil, err
	}
	out := []provider.Instance{}
	for _, r := range recs {
		if strings.HasPrefix(r.Name, prefix) {
			out = append(out, c.instance(r))
		}
	}
	return out, nil
}

// Delete implements provider.ComputeAPI: it stops every process in the
// instance's namespace (the agent, dnsmasq, BIRD: SIGTERM, then SIGKILL
// after Options.StopTimeout), deletes its devices (their host ends go with
// them), its namespace and its directory. Deleting a missing instance is
// not an error. Bridges stay (see Prune).
func (c *Compute) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return nil // no instance has that id
	}
	if err := c.checkOpen(); err != nil {
		return fmt.Errorf("deleting instance %s: %w", id, err)
	}
	unlock, err := c.locks.lock(ctx, "id/"+id)
	if err != nil {
		return fmt.Errorf("deleting instance %s: %w", id, err)
	}
	defer unlock()
	if _, err := os.Stat(c.InstanceDir(id)); isNotExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("deleting instance %s: %w", id, err)
	}
	r, err := c.load(id)
	if err != nil {
		c.log.Warn("deleting an instance whose record cannot be read", "instance_id", id, "err", err)
		r = &record{ID: id, Namespace: c.Namespace(id)}
	}
	log := c.log.With("instance_id", id, "name", r.Name)
	if err := c.destroy(ctx, r, log); err != nil {
		return fmt.Errorf("deleting instance %s (%s): %w", id, r.Name, err)
	}
	log.Info("instance deleted")
	return nil
}

// destroy frees everything of an instance: processes, devices, namespace,
// directory.
func (c *Compute) destroy(ctx context.Context, r *record, log *slog.Logger) error {
	if err := c.killAll(ctx, r, log); err != nil {
		return err
	}
	h, err := c.hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	// Deleting a device in the namespace deletes its host end at once
	// (the kernel frees an unmounted namespace's devices later).
	if nsh, nh, err := openNamespace(r.Namespace); err == nil {
		links, lerr := nh.LinkList()
		for _, l := range links {
			if l.Attrs().Flags&net.FlagLoopback == 0 {
				if err := deleteLink(nh, l.Attrs().Name); err != nil {
					lerr = errors.Join(lerr, fmt.Errorf("deleting %s in namespace %s: %w", l.Attrs().Name, r.Namespace, err))
				}
			}
		}
		nh.Close()
		nsh.Close()
		if lerr != nil {
			return lerr
		}
	} else if !isNotExist(err) {
		return err
	}
	// Host ends left behind, recorded or not (named after the instance).
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("listing host devices: %w", err)
	}
	prefix := hostDevicePrefix(r.ID)
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, prefix) {
			if err := deleteLink(h, name); err != nil {
				return fmt.Errorf("deleting host device %s: %w", name, err)
			}
		}
	}
	if err := deleteNamespace(r.Namespace); err != nil {
		return err
	}
	return c.unpublish(r.ID)
}

// killAll stops every process in the instance's namespace, and its agent
// wherever it is: SIGTERM, then SIGKILL after StopTimeout, until none is
// left.
func (c *Compute) killAll(ctx context.Context, r *record, log *slog.Logger) error {
	host, err := c.hostNSID()
	if err != nil {
		return err
	}
	ns, nsErr := statNS(nsPath(r.Namespace))
	if nsErr == nil && ns == host {
		return fmt.Errorf("%s is the host's network namespace", nsPath(r.Namespace))
	}
	if nsErr != nil && r.PID > 0 && sameProcess(r.PID, r.PIDStart) {
		// The namespace was unmounted behind our back, but the agent
		// keeps it alive, with its daemons: find them through it.
		if agentNS, err := statNS("/proc/" + strconv.Itoa(r.PID) + "/ns/net"); err == nil && agentNS != host {
			ns, nsErr = agentNS, nil
		}
	}
	pids := func() ([]int, error) {
		var out []int
		if nsErr == nil {
			var err error
			if out, err = namespacePids(ns); err != nil {
				return nil, err
			}
		}
		if r.PID > 0 && !slices.Contains(out, r.PID) && sameProcess(r.PID, r.PIDStart) {
			out = append(out, r.PID)
		}
		return out, nil
	}
	left, err := pids()
	if err != nil || len(left) == 0 {
		return err
	}
	log.Info("stopping the instance's processes", "pids", left)
	// Processes that start meanwhile (a daemon the agent restarts) are
	// asked to stop too.
	termed := map[int]bool{}
	gone := func() (bool, error) {
		var err error
		if left, err = pids(); err != nil {
			return false, err
		}
		for _, pid := range left {
			if !termed[pid] {
				if err := signal(pid, syscall.SIGTERM); err != nil {
					return false, err
				}
				termed[pid] = true
			}
		}
		return len(left) == 0, nil
	}
	tctx, cancel := context.WithTimeout(ctx, c.opts.StopTimeout)
	defer cancel()
	switch err := poll(tctx, gone); {
	case err == nil:
		return nil
	case ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("stopping processes %v: %w", left, err)
	}
	log.Warn("killing the processes that did not stop", "pids", left, "timeout", c.opts.StopTimeout)
	err = poll(ctx, func() (bool, error) {
		var err error
		if left, err = pids(); err != nil {
			return false, err
		}
		for _, pid := range left {
			if err := signal(pid, syscall.SIGKILL); err != nil {
				return false, err
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("killing processes %v: %w", left, err)
	}
	return nil
}

// errClosed is returned by the calls of a closed Compute.
var errClosed = errors.New("the local compute provider is closed")

// checkOpen fails once Close was called.
func (c *Compute) checkOpen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	return nil
}

// hostNSID identifies the host namespace.
func (c *Compute) hostNSID() (nsID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nsID{}, errClosed
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(c.hostNS), &st); err != nil {
		return nsID{}, fmt.Errorf("host network namespace: %w", err)
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// AttachPort implements provider.ComputeAPI: a new veth with the port's
// MAC, the next ethN in the namespace (after the others), its host end on
// the network's bridge. Attaching an attached port again repairs its veth
// if needed and is otherwise a no-op.
func (c *Compute) AttachPort(ctx context.Context, instanceID string, port provider.Port) error {
	if err := c.attach(ctx, instanceID, port); err != nil {
		return fmt.Errorf("attaching port %s to instance %s: %w", port.ID, instanceID, err)
	}
	return nil
}

func (c *Compute) attach(ctx context.Context, id string, port provider.Port) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	unlock, err := c.locks.lock(ctx, "id/"+id)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := c.load(id)
	if err != nil {
		return err
	}
	if _, err := statNS(nsPath(r.Namespace)); err != nil {
		return fmt.Errorf("the instance is in ERROR: %w", err)
	}
	log := c.log.With("instance_id", id, "name", r.Name, "port_id", port.ID)
	if i := r.port(port.ID); i >= 0 {
		p := r.Ports[i]
		if mac, err := net.ParseMAC(port.MAC); err != nil || mac.String() != p.MAC || port.NetworkID != p.NetworkID {
			return fmt.Errorf("the port is attached with MAC %s on network %s", p.MAC, p.NetworkID)
		}
		return c.plugOne(ctx, r, p)
	}
	n, err := r.nextDevice()
	if err != nil {
		return err
	}
	p, err := c.newPort(port, n, false)
	if err != nil {
		return err
	}
	p.HostDevice = hostDevice(id, n)
	// Recorded first: whatever a crash leaves, Delete and DetachPort find.
	r.Ports = append(r.Ports, p)
	if err := c.save(r); err != nil {
		return err
	}
	if err := c.plugOne(ctx, r, p); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := c.detach(cctx, r, p); derr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
		}
		return err
	}
	log.Info("port attached", "device", p.Device, "host_device", p.HostDevice, "bridge", p.Bridge, "mac", p.MAC)
	return nil
}

func (c *Compute) plugOne(ctx context.Context, r *record, p portRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.bridgeMu.RLock()
	defer c.bridgeMu.RUnlock()
	h, err := c.hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	nsh, nh, err := openNamespace(r.Namespace)
	if err != nil {
		return err
	}
	defer nsh.Close()
	defer nh.Close()
	return c.plug(h, nsh, nh, p)
}

// DetachPort implements provider.ComputeAPI: it deletes the port's veth.
// Detaching a port that is not attached is a no-op; the management port
// cannot be detached.
func (c *Compute) DetachPort(ctx context.Context, instanceID, portID string) error {
	if err := c.detachPort(ctx, instanceID, portID); err != nil {
		return fmt.Errorf("detaching port %s from instance %s: %w", portID, instanceID, err)
	}
	return nil
}

func (c *Compute) detachPort(ctx context.Context, id, portID string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	unlock, err := c.locks.lock(ctx, "id/"+id)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := c.load(id)
	if err != nil {
		return err
	}
	i := r.port(portID)
	switch {
	case i < 0:
		return nil
	case r.Ports[i].Management:
		return errors.New("the management port cannot be detached")
	}
	p := r.Ports[i]
	if err := c.detach(ctx, r, p); err != nil {
		return err
	}
	c.log.Info("port detached", "instance_id", id, "name", r.Name, "port_id", portID, "device", p.Device)
	return nil
}

// detach deletes p's veth and forgets p.
func (c *Compute) detach(ctx context.Context, r *record, p portRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := c.hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	nsh, nh, err := openNamespace(r.Namespace)
	switch {
	case err == nil:
		defer nsh.Close()
		defer nh.Close()
	case isNotExist(err): // only the host end can be left
	default:
		return err
	}
	if err := unplug(h, nh, p); err != nil {
		return err
	}
	r.Ports = slices.DeleteFunc(r.Ports, func(q portRecord) bool { return q.ID == p.ID })
	return c.save(r)
}

// tail returns the end of a file, for an error message.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", path, err)
	}
	defer f.Close()
	const n = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return fmt.Sprintf("(log %s: %v)", path, err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", path, err)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return "(log " + path + " is empty)"
}
