package local_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// TestMain runs the agent when the provider starts this binary as one
// (appliancetest.AgentEnv); otherwise it runs the tests in a fresh network
// namespace (as root), the host namespace of the instances they boot.
func TestMain(m *testing.M) { appliancetest.Main(m) }

// wait bounds every wait: agents built with the race detector start slowly
// on a loaded machine.
const wait = 2 * time.Minute

// world is one test's host: a provider whose namespaces and bridges carry
// a prefix of their own, the management network where the test is the
// orchestrator, and a client of the agents (mutual TLS).
type world struct {
	t      *testing.T
	run    string // random, in every name
	opts   local.Options
	c      *local.Compute
	prefix netip.Prefix // management network
	orch   netip.Addr   // the test's address on it
	client *client.Client
	log    *nstest.SyncBuffer
	macs   int
}

// newWorld makes a world; opts adjust the provider's options.
func newWorld(t *testing.T, opts ...func(*local.Options)) *world {
	t.Helper()
	nstest.Require(t)
	w := &world{t: t, run: randomHex(t, 2), log: &nstest.SyncBuffer{}}
	var ula [16]byte
	ula[0] = 0xfd
	copy(ula[1:8], randomBytes(t, 7))
	w.prefix = netip.PrefixFrom(netip.AddrFrom16(ula), 64)
	ula[15] = 1
	w.orch = netip.AddrFrom16(ula)

	// dnsmasq drops to "nobody", which must reach its files: not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "astara-local-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pki := appliancetest.NewPKI(t)
	w.opts = local.Options{
		StateDir:  dir,
		AgentPath: exe,
		AgentEnv:  appliancetest.AgentEnv(),
		AgentArgs: []string{"-ssh-port", "0", "-log-level", "debug"},
		TLSCert:   pki.ServerCert, TLSKey: pki.ServerKey, TLSClientCA: pki.CA,
		ManagementNetworkID: "mgmt-net",
		ManagementBridge:    w.bridgePrefix() + "mgmt",
		ManagementAddress:   netip.PrefixFrom(w.orch, 64),
		BridgeName: func(networkID string) string {
			sum := sha256.Sum256([]byte(networkID))
			return w.bridgePrefix() + hex.EncodeToString(sum[:4])
		},
		NamespacePrefix: "astara-lt" + w.run + "-",
		Logger:          slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&w.opts)
	}
	t.Cleanup(func() { w.cleanup(dir) })
	w.c = w.newCompute()
	w.client, err = client.New(client.Options{AliveTimeout: 10 * time.Second, TLS: &client.TLSOptions{
		CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: appliancetest.ServerName}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Close)
	return w
}

func (w *world) bridgePrefix() string { return "lt" + w.run + "-" }

// newCompute makes a provider on the world's state directory (as the
// orchestrator does when it starts again).
func (w *world) newCompute() *local.Compute {
	w.t.Helper()
	c, err := local.New(w.opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		if err := c.Close(); err != nil {
			w.t.Error(err)
		}
	})
	return c
}

// cleanup deletes every instance left, prunes the bridges, and then
// checks that nothing of the world is left, removing what is.
func (w *world) cleanup(dir string) {
	t := w.t
	ctx := context.Background()
	if t.Failed() {
		w.dumpLogs(dir)
	}
	c, err := local.New(w.opts)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	} else {
		insts, err := c.ListByPrefix(ctx, "")
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, in := range insts {
			if err := c.Delete(ctx, in.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := c.Prune(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), w.opts.NamespacePrefix) {
			t.Errorf("namespace %s left behind", e.Name())
			nstest.Delete(e.Name())
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		if !strings.HasPrefix(name, w.bridgePrefix()) {
			continue
		}
		if name != w.opts.ManagementBridge {
			t.Errorf("bridge %s left behind", name)
		}
		if err := netlink.LinkDel(l); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func (w *world) dumpLogs(dir string) {
	w.t.Logf("provider log:\n%s", w.log.String())
	logs, _ := filepath.Glob(filepath.Join(dir, "instances", "*", "agent.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		w.t.Logf("%s:\n%s", l, b)
	}
}

// port returns a port on a network, with a fresh MAC.
func (w *world) port(id, networkID string) provider.Port {
	w.macs++
	b := randomBytes(w.t, 2)
	return provider.Port{ID: id, NetworkID: networkID, MAC: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], w.macs)}
}

// spec returns a boot spec whose management port has address host on the
// management network.
func (w *world) spec(name string, host byte, ports ...provider.Port) provider.BootSpec {
	mgmt := w.port("mgmt-"+name, "mgmt-net")
	ud, err := json.Marshal(map[string]any{"astara": map[string]any{"management": map[string]any{
		"mac": mgmt.MAC, "address": w.mgmtAddr(host).String()}}})
	if err != nil {
		w.t.Fatal(err)
	}
	return provider.BootSpec{Name: name, ImageID: "astara-appliance", ManagementPort: mgmt, Ports: ports, UserData: ud}
}

func (w *world) mgmtAddr(host byte) netip.Prefix {
	b := w.prefix.Addr().As16()
	b[15] = host
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

func (w *world) boot(c *local.Compute, spec provider.BootSpec) *provider.Instance {
	w.t.Helper()
	in, err := c.Boot(context.Background(), spec)
	if err != nil {
		w.t.Fatal(err)
	}
	return in
}

func (w *world) waitStatus(c *local.Compute, id string, want provider.InstanceStatus) {
	w.t.Helper()
	var last provider.InstanceStatus
	nstest.WaitFor(w.t, wait, fmt.Sprintf("instance %s %s", id, want), func() bool {
		in, err := c.Get(context.Background(), id)
		if err != nil {
			w.t.Fatal(err)
		}
		last = in.Status
		return last == want
	})
}

// nics returns the MACs of the agent's NICs by generic name, as the agent
// reports them.
func (w *world) nics(addr netip.Addr) map[string]string {
	w.t.Helper()
	nics, err := w.client.Interfaces(context.Background(), addr)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nics {
		out[n.IfName] = n.LLAddr
	}
	return out
}

func (w *world) waitNICs(addr netip.Addr, want map[string]string) {
	w.t.Helper()
	var got map[string]string
	nstest.WaitFor(w.t, wait, fmt.Sprintf("NICs %v", want), func() bool {
		got = w.nics(addr)
		return sameMap(got, want)
	})
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// members lists the devices plugged into a bridge.
func members(t *testing.T, bridge string) []string {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatalf("bridge %s: %v", bridge, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	slices.Sort(out)
	return out
}

func linkExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func namespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// processes returns the processes in a namespace by pid, with their names.
func processes(ns string) map[int]string {
	out := map[int]string{}
	for _, pid := range nstest.Pids(ns) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil {
			out[pid] = strings.TrimSpace(string(b))
		}
	}
	return out
}

func mustBridge(t *testing.T, c *local.Compute, networkID string) string {
	t.Helper()
	br, err := c.Bridge(networkID)
	if err != nil {
		t.Fatal(err)
	}
	return br
}

// TestLifecycle boots an instance with the real agent (a management port
// and two ports), reaches its API from the host over the management
// bridge, hot-plugs and unplugs a port, pushes a configuration that starts
// dnsmasq and BIRD, finds the instance again from a new provider (an
// orchestrator restart), deletes it and checks that nothing is left; every
// call is repeated to check that it is idempotent.
func TestLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.c
	pa, pb := w.port("port-a", "net-a"), w.port("port-b", "net-b")
	spec := w.spec("ak-router-r1_0", 2, pa, pb)
	addr := w.mgmtAddr(2).Addr()

	in := w.boot(c, spec)
	if in.Name != spec.Name || in.ImageID != spec.ImageID || in.Created.IsZero() ||
		!slices.Equal(in.PortIDs, []string{spec.ManagementPort.ID, "port-a", "port-b"}) {
		t.Errorf("booted %+v", in)
	}
	if in.Status != provider.InstanceBuild && in.Status != provider.InstanceActive {
		t.Errorf("status after Boot: %s", in.Status)
	}
	ns := c.Namespace(in.ID)
	if !namespaceExists(ns) || !strings.HasPrefix(ns, w.opts.NamespacePrefix) {
		t.Fatalf("namespace %s", ns)
	}
	w.waitStatus(c, in.ID, provider.InstanceActive)
	for _, f := range []string{"instance.json", "user-data", "agent.log", "state"} {
		if _, err := os.Stat(filepath.Join(c.InstanceDir(in.ID), f)); err != nil {
			t.Errorf("instance directory: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.InstanceDir(in.ID), "user-data")); err != nil || string(b) != string(spec.UserData) {
		t.Errorf("user data %q, %v; want %q", b, err, spec.UserData)
	}

	// The agent sees one NIC per port, in order, with the port's MAC.
	want := map[string]string{"ge0": spec.ManagementPort.MAC, "ge1": pa.MAC, "ge2": pb.MAC}
	if got := w.nics(addr); !sameMap(got, want) {
		t.Errorf("NICs %v; want %v", got, want)
	}
	// Each host end is on its network's bridge; the management bridge has
	// the orchestrator's address.
	mgmtBr, brA, brB := w.opts.ManagementBridge, mustBridge(t, c, "net-a"), mustBridge(t, c, "net-b")
	for _, br := range []string{mgmtBr, brA, brB} {
		if m := members(t, br); len(m) != 1 {
			t.Errorf("bridge %s has ports %v; want one", br, m)
		}
	}
	if br, _ := netlink.LinkByName(mgmtBr); br != nil {
		addrs, err := netlink.AddrList(br, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(net.IP(w.orch.AsSlice())) }) {
			t.Errorf("management bridge addresses %v lack %s", addrs, w.orch)
		}
	}

	// Boot again: the same instance.
	again := w.boot(c, spec)
	if again.ID != in.ID {
		t.Errorf("second Boot made instance %s; want %s", again.ID, in.ID)
	}
	if list, err := c.ListByPrefix(ctx, "ak-router-"); err != nil || len(list) != 1 || list[0].ID != in.ID {
		t.Errorf("ListByPrefix = %+v, %v", list, err)
	}
	if list, err := c.ListByPrefix(ctx, "ak-lb-"); err != nil || len(list) != 0 {
		t.Errorf("ListByPrefix(ak-lb-) = %+v, %v", list, err)
	}

	// Hot-plug: ge3 appears, on net-a's bridge; twice is once.
	pc := w.port("port-c", "net-a")
	for range 2 {
		if err := c.AttachPort(ctx, in.ID, pc); err != nil {
			t.Fatal(err)
		}
	}
	want["ge3"] = pc.MAC
	w.waitNICs(addr, want)
	if m := members(t, brA); len(m) != 2 {
		t.Errorf("bridge %s has ports %v after the attach; want two", brA, m)
	}
	if got, _ := c.Get(ctx, in.ID); got == nil || !slices.Equal(got.PortIDs, []string{spec.ManagementPort.ID, "port-a", "port-b", "port-c"}) {
		t.Errorf("after the attach: %+v", got)
	}
	other := pc
	other.MAC = "fa:16:3e:ff:ff:ff"
	if err := c.AttachPort(ctx, in.ID, other); err == nil || !strings.Contains(err.Error(), "port-c") {
		t.Errorf("attaching port-c again with another MAC: %v", err)
	}
	// Unplug: ge3 disappears; twice is once; the management port stays.
	for range 2 {
		if err := c.DetachPort(ctx, in.ID, "port-c"); err != nil {
			t.Fatal(err)
		}
	}
	delete(want, "ge3")
	w.waitNICs(addr, want)
	if m := members(t, brA); len(m) != 1 {
		t.Errorf("bridge %s has ports %v after the detach; want one", brA, m)
	}
	if err := c.DetachPort(ctx, in.ID, spec.ManagementPort.ID); err == nil {
		t.Error("the management port was detached")
	}

	// A configuration with DHCP and IPv6 router advertisements: the agent
	// starts dnsmasq and BIRD, in sessions of their own.
	if _, err := w.client.PutConfig(ctx, addr, w.document(addr)); err != nil {
		t.Fatal(err)
	}
	var procs map[int]string
	nstest.WaitFor(t, wait, "dnsmasq and BIRD running in "+ns, func() bool {
		procs = processes(ns)
		names := slices.Collect(maps.Values(procs))
		return slices.Contains(names, "dnsmasq") && slices.Contains(names, "bird")
	})

	// An orchestrator restart: a new provider finds the running instance,
	// ACTIVE, and a Boot of its name returns it. Two providers cannot
	// share the state directory.
	if c3, err := local.New(w.opts); err == nil || !strings.Contains(err.Error(), "in use") {
		if err == nil {
			c3.Close()
		}
		t.Errorf("a second provider on the state directory: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, in.ID); err == nil {
		t.Error("a closed provider deleted an instance")
	}
	if _, err := c.Boot(ctx, w.spec("ak-router-r1_1", 9)); err == nil {
		t.Error("a closed provider booted an instance")
	}
	c2 := w.newCompute()
	got, err := c2.Get(ctx, in.ID)
	if err != nil || got.Status != provider.InstanceActive || got.Name != spec.Name || !got.Created.Equal(in.Created) ||
		!slices.Equal(got.PortIDs, in.PortIDs) {
		t.Errorf("Get after a restart: %+v, %v", got, err)
	}
	if list, err := c2.ListByPrefix(ctx, "ak-router-r1"); err != nil || len(list) != 1 || list[0].ID != in.ID {
		t.Errorf("ListByPrefix after a restart: %+v, %v", list, err)
	}
	if again := w.boot(c2, spec); again.ID != in.ID {
		t.Errorf("Boot after a restart made instance %s; want %s", again.ID, in.ID)
	}

	// Delete, twice: no process, namespace, device or directory is left.
	for range 2 {
		if err := c2.Delete(ctx, in.ID); err != nil {
			t.Fatal(err)
		}
	}
	for pid, name := range procs {
		if nstest.Alive(pid) {
			t.Errorf("%s (pid %d) survived the delete", name, pid)
		}
	}
	if namespaceExists(ns) {
		t.Errorf("namespace %s survived the delete", ns)
	}
	for _, br := range []string{mgmtBr, brA, brB} {
		if m := members(t, br); len(m) != 0 {
			t.Errorf("bridge %s still has ports %v", br, m)
		}
	}
	for _, l := range mustLinks(t) {
		if strings.HasPrefix(l, "ak"+strings.ReplaceAll(in.ID, "-", "")[:9]) {
			t.Errorf("host device %s survived the delete", l)
		}
	}
	if _, err := os.Stat(c2.InstanceDir(in.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("instance directory: %v", err)
	}
	if _, err := c2.Get(ctx, in.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get of a deleted instance: %v", err)
	}
	if err := c2.AttachPort(ctx, in.ID, pc); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("AttachPort to a deleted instance: %v", err)
	}
	if err := c2.DetachPort(ctx, in.ID, "port-a"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("DetachPort from a deleted instance: %v", err)
	}
	if list, err := c2.ListByPrefix(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("ListByPrefix after the delete: %+v, %v", list, err)
	}

	// Prune, twice: the networks' bridges go, the management bridge stays.
	for range 2 {
		if err := c2.Prune(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if linkExists(t, brA) || linkExists(t, brB) {
		t.Errorf("Prune left %s or %s", brA, brB)
	}
	if !linkExists(t, mgmtBr) {
		t.Errorf("Prune deleted the management bridge %s", mgmtBr)
	}
}

func mustLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	return out
}

// document is a router document for the lifecycle's instance: management
// on ge0, a tenant network on ge1 with DHCP (dnsmasq) and an IPv6 subnet
// (router advertisements: BIRD).
func (w *world) document(mgmt netip.Addr) *model.Document {
	p := netip.MustParsePrefix
	return &model.Document{
		TenantID: "tenant-1", Hostname: "ak-tenant-1", ASN: 64512, NeighborASN: 64512,
		Orchestrator: model.Orchestrator{Address: w.orch, MetadataPort: 9697, Host: "test"},
		Networks: []model.Network{
			{
				ID: "mgmt-net", Type: model.NetworkManagement, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge0", Addresses: []netip.Prefix{netip.PrefixFrom(mgmt, 64)}},
				Subnets:   []model.Subnet{{ID: "mgmt-subnet", CIDR: w.prefix, GatewayIP: w.orch}},
			},
			{
				ID: "net-a", Type: model.NetworkInternal, V4ConfService: "static", V6ConfService: "ra",
				Interface: model.Interface{IfName: "ge1", Addresses: []netip.Prefix{p("10.77.0.1/24"), p("2001:db8:77::1/64")}},
				Subnets: []model.Subnet{
					{ID: "subnet-a4", CIDR: p("10.77.0.0/24"), GatewayIP: netip.MustParseAddr("10.77.0.1"), DHCPEnabled: true},
					{ID: "subnet-a6", CIDR: p("2001:db8:77::/64"), GatewayIP: netip.MustParseAddr("2001:db8:77::1")},
				},
			},
		},
	}
}

// TestDeadInstances: an instance whose agent died, or whose namespace
// vanished, is in ERROR; Boot replaces a dead instance of its name, and
// Delete frees what is left of one. Concurrent Boots of one name boot one
// instance.
func TestDeadInstances(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.c
	spec := w.spec("ak-router-r2_0", 3, w.port("port-d", "net-d"))

	var wg sync.WaitGroup
	ids := make([]string, 3)
	for i := range ids {
		wg.Go(func() {
			in, err := c.Boot(ctx, spec)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = in.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatalf("concurrent Boots made instances %v", ids)
	}
	first := ids[0]
	w.waitStatus(c, first, provider.InstanceActive)

	// The agent dies: ERROR, in Get and in ListByPrefix.
	ns := c.Namespace(first)
	for pid := range processes(ns) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	w.waitStatus(c, first, provider.InstanceError)
	if list, err := c.ListByPrefix(ctx, "ak-router-r2"); err != nil || len(list) != 1 || list[0].Status != provider.InstanceError {
		t.Errorf("ListByPrefix of a dead instance: %+v, %v", list, err)
	}

	// Boot of its name replaces it.
	second := w.boot(c, spec)
	if second.ID == first {
		t.Fatalf("Boot returned the dead instance %s", first)
	}
	if _, err := c.Get(ctx, first); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("the dead instance remains: %v", err)
	}
	if namespaceExists(ns) {
		t.Errorf("the dead instance's namespace %s remains", ns)
	}
	w.waitStatus(c, second.ID, provider.InstanceActive)

	// Its namespace vanishes (with its processes): ERROR, and Delete
	// frees the rest.
	ns2 := c.Namespace(second.ID)
	nstest.Delete(ns2)
	w.waitStatus(c, second.ID, provider.InstanceError)
	if err := c.AttachPort(ctx, second.ID, w.port("port-e", "net-d")); err == nil {
		t.Error("a port was attached to an instance without a namespace")
	}
	if err := c.Delete(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.InstanceDir(second.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("instance directory: %v", err)
	}
	br := mustBridge(t, c, "net-d")
	nstest.WaitFor(t, wait, "bridge "+br+" empty", func() bool { return len(members(t, br)) == 0 })
	if err := c.Prune(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSharedNetwork: two instances with a port on one network reach each
// other over its bridge. Delete kills what ignores SIGTERM.
func TestSharedNetwork(t *testing.T) {
	w := newWorld(t, func(o *local.Options) { o.StopTimeout = 50 * time.Millisecond })
	c := w.c
	p1, p2 := w.port("port-1", "net-shared"), w.port("port-2", "net-shared")
	in1 := w.boot(c, w.spec("ak-router-r3_0", 4, p1))
	in2 := w.boot(c, w.spec("ak-router-r4_0", 5, p2))
	br := mustBridge(t, c, "net-shared")
	if m := members(t, br); len(m) != 2 {
		t.Fatalf("bridge %s has ports %v; want two", br, m)
	}
	ns1, ns2 := c.Namespace(in1.ID), c.Namespace(in2.ID)
	for _, s := range []struct{ ns, addr string }{{ns1, "10.99.0.1/24"}, {ns2, "10.99.0.2/24"}} {
		nstest.Exec(t, s.ns, "ip", "addr", "add", s.addr, "dev", "eth1")
		nstest.Exec(t, s.ns, "ip", "link", "set", "eth1", "up")
	}
	var out string
	nstest.WaitFor(t, wait, "10.99.0.2 answering 10.99.0.1", func() bool {
		b, err := execIn(ns1, "ping", "-c", "1", "-W", "1", "10.99.0.2")
		out = b
		return err == nil
	})
	if !strings.Contains(out, "1 received") {
		t.Errorf("ping: %s", out)
	}
	if mac := neighbour(t, ns1, "10.99.0.2"); mac != p2.MAC {
		t.Errorf("10.99.0.2 is at %s; want %s (port-2)", mac, p2.MAC)
	}

	stubborn := exec.Command("ip", "netns", "exec", ns1, "sh", "-c", "trap '' TERM; exec sleep 3600")
	stubborn.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- stubborn.Wait() }()
	nstest.WaitFor(t, wait, "sleep running in "+ns1, func() bool {
		return slices.Contains(slices.Collect(maps.Values(processes(ns1))), "sleep")
	})
	if err := c.Delete(context.Background(), in1.ID); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the process ignoring SIGTERM ended with %v; want killed", err)
	}
}

// TestUplink: an external network's bridge enslaves the host interface
// configured for it, so an instance reaches what is beyond it; Prune
// releases it.
func TestUplink(t *testing.T) {
	var uplink string
	w := newWorld(t, func(o *local.Options) {
		uplink = strings.TrimSuffix(o.ManagementBridge, "mgmt") + "uplink"
		o.Uplinks = map[string]string{"ext-net": uplink}
	})
	ctx := context.Background()
	upstream := nstest.NewNamespace(t, "lt"+w.run+"up")
	nstest.Veth(t, uplink, "up0", upstream, "")
	nstest.Exec(t, upstream, "ip", "addr", "add", "172.16.99.1/24", "dev", "up0")

	in := w.boot(w.c, w.spec("ak-router-r5_0", 8, w.port("port-ext", "ext-net")))
	br := mustBridge(t, w.c, "ext-net")
	if m := members(t, br); !slices.Contains(m, uplink) || len(m) != 2 {
		t.Errorf("bridge %s has ports %v; want the uplink %s and the instance's", br, m, uplink)
	}
	ns := w.c.Namespace(in.ID)
	nstest.Exec(t, ns, "ip", "addr", "add", "172.16.99.2/24", "dev", "eth1")
	nstest.Exec(t, ns, "ip", "link", "set", "eth1", "up")
	nstest.WaitFor(t, wait, "the upstream host answering", func() bool {
		_, err := execIn(ns, "ping", "-c", "1", "-W", "1", "172.16.99.1")
		return err == nil
	})

	if err := w.c.Delete(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, br) {
		t.Errorf("Prune left bridge %s", br)
	}
	if l, err := netlink.LinkByName(uplink); err != nil || l.Attrs().MasterIndex != 0 {
		t.Errorf("uplink after Prune: %v, %v", l, err)
	}
}

func execIn(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// neighbour returns the MAC a namespace resolved addr to.
func neighbour(t *testing.T, ns, addr string) string {
	t.Helper()
	f := strings.Fields(nstest.Exec(t, ns, "ip", "neigh", "show", addr))
	for i, s := range f {
		if s == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// TestBootRejectsBadSpecs: invalid specs fail with errors naming what is
// wrong, and leave nothing.
func TestBootRejectsBadSpecs(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	good := w.spec("ak-router-bad_0", 6, w.port("port-x", "net-x"))
	for _, tc := range []struct {
		name   string
		mutate func(*provider.BootSpec)
		want   string
	}{
		{"no name", func(s *provider.BootSpec) { s.Name = "" }, "name is required"},
		{"no management port", func(s *provider.BootSpec) { s.ManagementPort = provider.Port{} }, "management port is required"},
		{"bad MAC", func(s *provider.BootSpec) { s.Ports[0].MAC = "fa:16:3e" }, `port port-x: MAC "fa:16:3e"`},
		{"multicast MAC", func(s *provider.BootSpec) { s.Ports[0].MAC = "01:00:5e:00:00:01" }, "not a unicast address"},
		{"no network", func(s *provider.BootSpec) { s.Ports[0].NetworkID = "" }, "port port-x has no network"},
		{"management elsewhere", func(s *provider.BootSpec) { s.ManagementPort.NetworkID = "net-x" }, "not on the management network mgmt-net"},
		{"port twice", func(s *provider.BootSpec) { s.Ports = append(s.Ports, s.Ports[0]) }, "port port-x is given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			s.ManagementPort = good.ManagementPort
			s.Ports = slices.Clone(good.Ports)
			tc.mutate(&s)
			in, err := w.c.Boot(ctx, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Boot = %+v, %v; want an error with %q", in, err, tc.want)
			}
		})
	}

	// A boot that fails half-way (the network's bridge name is taken by
	// a device that is no bridge) leaves nothing; so does a failed attach.
	taken := mustBridge(t, w.c, "net-taken")
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: taken}, PeerName: w.bridgePrefix() + "peer"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	bad := w.spec("ak-router-bad_1", 7, w.port("port-y", "net-x"), w.port("port-z", "net-taken"))
	if in, err := w.c.Boot(ctx, bad); err == nil || !strings.Contains(err.Error(), "port port-z") || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("Boot on a taken bridge name = %+v, %v", in, err)
	}
	entries, err := os.ReadDir(filepath.Join(w.opts.StateDir, "instances"))
	if err != nil || len(entries) != 0 {
		t.Errorf("instance directories after a failed boot: %v, %v", entries, err)
	}
	if m := members(t, mustBridge(t, w.c, "net-x")); len(m) != 0 {
		t.Errorf("devices left on net-x's bridge after a failed boot: %v", m)
	}
	if ns, _ := filepath.Glob("/run/netns/" + w.opts.NamespacePrefix + "*"); len(ns) != 0 {
		t.Errorf("namespaces left after a failed boot: %v", ns)
	}
	in := w.boot(w.c, good)
	if err := w.c.AttachPort(ctx, in.ID, w.port("port-t", "net-taken")); err == nil || !strings.Contains(err.Error(), "port port-t") {
		t.Errorf("AttachPort on a taken bridge name: %v", err)
	}
	if got, err := w.c.Get(ctx, in.ID); err != nil || len(got.PortIDs) != 2 {
		t.Errorf("after a failed attach: %+v, %v", got, err)
	}
	if out := nstest.Exec(t, w.c.Namespace(in.ID), "ip", "-o", "link", "show"); strings.Contains(out, "eth2") {
		t.Errorf("a failed attach left eth2:\n%s", out)
	}
	if err := w.c.Delete(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	// Ids that cannot be instances': not found, and nothing to delete.
	for _, id := range []string{"", "../../etc", "not-an-id"} {
		if _, err := w.c.Get(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("Get(%q): %v", id, err)
		}
		if err := w.c.Delete(ctx, id); err != nil {
			t.Errorf("Delete(%q): %v", id, err)
		}
	}
}

// TestNewRejectsBadOptions needs no root: options are checked first.
func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts local.Options
		want string
	}{
		{"nothing", local.Options{}, "StateDir: required"},
		{"no agent", local.Options{StateDir: t.TempDir(), ManagementBridge: "br-mgmt"}, "AgentPath: required"},
		{"agent missing", local.Options{StateDir: t.TempDir(), AgentPath: "/nonexistent/astara-appliance", ManagementBridge: "br-mgmt"}, "AgentPath"},
		{"no management", local.Options{StateDir: t.TempDir(), AgentPath: "/bin/true"}, "ManagementBridge or ManagementNetworkID: required"},
		{"half TLS", local.Options{StateDir: t.TempDir(), AgentPath: "/bin/true", ManagementBridge: "br-mgmt", TLSCert: "c.pem"}, "TLSCert and TLSKey go together"},
		{"long bridge", local.Options{StateDir: t.TempDir(), AgentPath: "/bin/true", ManagementBridge: "br-mgmt",
			Bridges: map[string]string{"net-1": "a-bridge-name-too-long"}}, "Bridges[net-1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := local.New(tc.opts)
			if err == nil {
				c.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v; want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDefaultBridgeName(t *testing.T) {
	for id, want := range map[string]string{
		"6f1c0a2b-9d3e-4c1a-8b7f-0123456789ab": "br-6f1c0a2b9d3",
		"6F1C0A2B-9D3E-4C1A-8B7F-0123456789AB": "br-6f1c0a2b9d3",
	} {
		if got := local.DefaultBridgeName(id); got != want {
			t.Errorf("DefaultBridgeName(%s) = %s; want %s", id, got, want)
		}
	}
	a, b := local.DefaultBridgeName("ext-net"), local.DefaultBridgeName("int-net")
	if a == b || len(a) != 14 || !strings.HasPrefix(a, "br-") {
		t.Errorf("DefaultBridgeName of non-hex ids: %s, %s", a, b)
	}
	if local.DefaultBridgeName("abc") == local.DefaultBridgeName("abd") {
		t.Error("short ids share a bridge")
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(t testing.TB, n int) string { return hex.EncodeToString(randomBytes(t, n)) }

// TestCrashLeftovers: what an orchestrator crash can leave is found and
// freed by the next provider: a boot that never recorded its agent
// (ERROR, and Delete still stops it), an unreadable record (ERROR in Get,
// skipped by ListByPrefix, freed by Delete), and half-made or half-deleted
// directories (removed by New).
func TestCrashLeftovers(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.c
	half := w.boot(c, w.spec("ak-router-r6_0", 10, w.port("port-h", "net-h")))
	broken := w.boot(c, w.spec("ak-router-r7_0", 11, w.port("port-b", "net-h")))
	w.waitStatus(c, half.ID, provider.InstanceActive)
	w.waitStatus(c, broken.ID, provider.InstanceActive)
	procs := processes(c.Namespace(half.ID))
	for pid := range processes(c.Namespace(broken.ID)) {
		procs[pid] = "agent of the broken instance"
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// The crash: one record lost its pid, one is garbage, and two
	// directories were left mid-way.
	rec := filepath.Join(c.InstanceDir(half.ID), "instance.json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "pid")
	delete(m, "pid_start")
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.InstanceDir(broken.ID), "instance.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{filepath.Join(w.opts.StateDir, "instances", ".new-x"), filepath.Join(w.opts.StateDir, "instances", ".gone-y")}
	for _, d := range leftovers {
		if err := os.MkdirAll(filepath.Join(d, "state"), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	c2 := w.newCompute()
	for _, d := range leftovers {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s: %v", d, err)
		}
	}
	for _, id := range []string{half.ID, broken.ID} {
		if in, err := c2.Get(ctx, id); err != nil || in.Status != provider.InstanceError {
			t.Errorf("Get(%s) = %+v, %v; want ERROR", id, in, err)
		}
	}
	if list, err := c2.ListByPrefix(ctx, "ak-router-"); err != nil || len(list) != 1 || list[0].ID != half.ID {
		t.Errorf("ListByPrefix = %+v, %v; want the half-booted instance only", list, err)
	}
	for _, id := range []string{half.ID, broken.ID} {
		if err := c2.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if namespaceExists(c2.Namespace(id)) {
			t.Errorf("namespace of %s left", id)
		}
		if _, err := os.Stat(c2.InstanceDir(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("directory of %s: %v", id, err)
		}
	}
	for pid, name := range procs {
		if nstest.Alive(pid) {
			t.Errorf("%s (pid %d) survived the delete", name, pid)
		}
	}
	if m := members(t, mustBridge(t, c2, "net-h")); len(m) != 0 {
		t.Errorf("devices left on the bridge: %v", m)
	}
}

// TestOnExit: the provider says at once when an instance's agent exits,
// whether it started the agent or a previous provider did.
func TestOnExit(t *testing.T) {
	exits := make(chan string, 8)
	w := newWorld(t, func(o *local.Options) {
		o.OnExit = func(id, name string) { exits <- id + " " + name }
	})
	ctx := context.Background()
	in, err := w.c.Boot(ctx, w.spec("ak-router-r9_0", 9))
	if err != nil {
		t.Fatal(err)
	}
	w.waitStatus(w.c, in.ID, provider.InstanceActive)
	kill := func() {
		for pid := range processes(w.c.Namespace(in.ID)) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := in.ID + " ak-router-r9_0"
	expect := func(what string) {
		t.Helper()
		select {
		case got := <-exits:
			if got != want {
				t.Errorf("%s: OnExit(%s), want %s", what, got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no OnExit within 30s", what)
		}
	}
	kill()
	expect("an agent this provider started")

	// A new provider (the orchestrator restarted) watches the running agents.
	in2, err := w.c.Boot(ctx, w.spec("ak-router-r9_0", 9))
	if err != nil {
		t.Fatal(err)
	}
	in = in2
	want = in.ID + " ak-router-r9_0"
	w.waitStatus(w.c, in.ID, provider.InstanceActive)
	if err := w.c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-exits:
		t.Fatalf("OnExit(%s) after Close, before any agent died", got)
	default:
	}
	w.c = w.newCompute()
	kill()
	expect("an agent a previous provider started")
}

// ReadInstances shows what runs, from outside the provider that holds the
// state directory.
func TestReadInstances(t *testing.T) {
	w := newWorld(t)
	if got, err := local.ReadInstances(w.opts.StateDir); err != nil || len(got) != 0 {
		t.Fatalf("no instance: %+v, %v", got, err)
	}
	pa := w.port("port-a", "net-a")
	in := w.boot(w.c, w.spec("ak-router-r1_0", 2, pa))
	got, err := local.ReadInstances(w.opts.StateDir)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadInstances = %+v, %v", got, err)
	}
	i := got[0]
	if i.ID != in.ID || i.Name != "ak-router-r1_0" || i.Namespace != w.c.Namespace(in.ID) || !nstest.Alive(i.PID) ||
		i.LogFile != w.c.LogFile(in.ID) || !i.Created.Equal(in.Created) {
		t.Errorf("instance %+v; booted %+v", i, in)
	}
	if len(i.Ports) != 2 || i.Ports[0].Bridge != w.opts.ManagementBridge || i.Ports[1].ID != "port-a" ||
		i.Ports[1].MAC != pa.MAC || i.Ports[1].Device != "eth1" || i.Ports[1].Bridge != mustBridge(t, w.c, "net-a") {
		t.Errorf("ports %+v", i.Ports)
	}
}
