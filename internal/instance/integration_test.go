package instance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/driver/router"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// The management network of newWorld: the test is the orchestrator at ::1.
const (
	mgmtBridge  = "br-astara-mgt"
	orchestrAdr = "fdca:3ba5:a17a:acda::1/64"
)

// TestRealAppliance drives the real astara-appliance agent, one network
// namespace per instance, through the memory providers: boot, configure,
// an orchestrator restart, hot-plugged and unplugged interfaces, the
// instance dying and being replaced, and stop. The agent requires a client
// certificate (mutual TLS), as it can in production.
func TestRealAppliance(t *testing.T) {
	nstest.Require(t)
	ctx := context.Background()
	if err := ipCmd(ctx, "link", "add", mgmtBridge, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ipCmd(context.Background(), "link", "del", mgmtBridge) })
	for _, args := range [][]string{
		{"addr", "add", orchestrAdr, "dev", mgmtBridge, "nodad"},
		{"link", "set", mgmtBridge, "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	pki := newPKI(t)
	runner := newNSRunner(t, mgmtBridge, []string{"-tls-cert", pki.serverCert, "-tls-key", pki.serverKey, "-tls-client-ca", pki.ca})
	e := &env{t: t, ctx: ctx, net: newWorld(t)}
	e.compute = memory.NewCompute(runner, e.net)
	t.Cleanup(func() {
		// Whatever happened, no instance outlives the test.
		for _, in := range e.compute.Instances() {
			_ = e.compute.Delete(context.Background(), in.ID)
		}
	})
	var err error
	e.client, err = client.New(client.Options{TLS: &client.TLSOptions{
		CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "appliance.astara"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.Close)
	log := testLogger(t)
	if e.driver, err = router.New(e.net, routerConfig, routerID, log); err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{ImageID: "img-1", RetryDelay: 200 * time.Millisecond, PollInterval: 100 * time.Millisecond,
		HotplugTimeout: time.Minute, DeleteTimeout: time.Minute, Logger: log}

	m := e.manager()
	e.expect("no instance", m.UpdateState(ctx), state.Down)

	// Boot: the agent configures its management interface from the user
	// data and starts answering.
	if err := m.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	e.expect("after Boot", m.State(), state.Booting)
	e.expect("boot", untilBooted(t, m), state.Up)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	inst := e.compute.Instances()[0]
	ns := runner.namespace(inst.ID)
	gen := e.checkApplied(ns, "192.168.0.1/24", "10.1.0.1/24", "172.16.77.2/24")

	// An orchestrator restart: the new manager finds it Configured and
	// pushes nothing.
	m2 := Open(ctx, mustDriver(e), e.net, e.compute, e.client, e.cfg)
	e.expect("after an orchestrator restart", m2.State(), state.Configured)
	if info := e.info(); info.Generation != gen {
		t.Errorf("the restarted manager pushed: generation %d, was %d", info.Generation, gen)
	}
	m = m2

	// A new router interface: a NIC is hot-plugged into the namespace, the
	// agent sees it, and the document uses it.
	ifc, err := e.net.AddRouterInterface(routerID, provider.Port{NetworkID: "int3-net", FixedIPs: []provider.FixedIP{{Address: a("10.3.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	e.expect("new interface", m.UpdateState(ctx), state.Up)
	e.expect("Configure", m.Configure(ctx), state.Replug)
	e.expect("Replug", m.Replug(ctx), state.Replug)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	e.checkApplied(ns, "10.3.0.1/24")

	// The interface goes: its NIC is unplugged and its port deleted.
	_, before := e.servicePorts()
	if err := e.net.DeletePort(ctx, ifc.ID); err != nil {
		t.Fatal(err)
	}
	e.expect("Configure", m.Configure(ctx), state.Replug)
	e.expect("Replug", m.Replug(ctx), state.Replug)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	e.checkApplied(ns, "192.168.0.1/24", "10.1.0.1/24")
	if addrs := nsAddrs(t, ns); strings.Contains(addrs, "10.3.0.1") {
		t.Errorf("10.3.0.1 is still in the namespace:\n%s", addrs)
	}
	_, after := e.servicePorts()
	if len(after) != len(before)-1 || slices.Contains(networksOf(after), "int3-net") {
		t.Errorf("VRRP ports on %v, were on %v", networksOf(after), networksOf(before))
	}

	// The instance dies: Down, then a new one boots and is configured.
	if err := e.compute.Kill(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	e.expect("dead instance", m.UpdateState(ctx), state.Down)
	if err := m.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	e.expect("boot again", untilBooted(t, m), state.Up)
	e.expect("Configure", m.Configure(ctx), state.Configured)
	insts := e.compute.Instances()
	if len(insts) != 1 || insts[0].ID == inst.ID || insts[0].Name != "ak-router-router-1_1" {
		t.Fatalf("instances after the reboot: %+v", insts)
	}
	ns2 := runner.namespace(insts[0].ID)
	if namespaceExists(t, ns) {
		t.Errorf("the dead instance's namespace %s remains", ns)
	}
	e.checkApplied(ns2, "192.168.0.1/24", "10.1.0.1/24", "172.16.77.2/24")

	// Stop: the namespace, the instance and the ports go.
	e.expect("Stop", m.Stop(ctx), state.Down)
	if namespaceExists(t, ns2) {
		t.Errorf("namespace %s remains after Stop", ns2)
	}
	if len(e.compute.Instances()) != 0 {
		t.Errorf("instances after Stop: %v", e.compute.Instances())
	}
	if mgmt, vrrp := e.servicePorts(); len(mgmt)+len(vrrp) != 0 {
		t.Errorf("ports after Stop: %v %v", mgmt, vrrp)
	}
	if h := e.net.StatusHistory(routerID); !slices.Equal(h, []string{"DOWN", "BUILD", "ACTIVE", "DOWN", "BUILD", "ACTIVE", "DOWN"}) {
		t.Errorf("published statuses %v", h)
	}
}

// untilBooted polls UpdateState while the instance boots (at most two
// minutes: the agent is built with the race detector) and returns the
// first other state.
func untilBooted(t *testing.T, m *Manager) state.InstanceState {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := m.UpdateState(context.Background())
		if st != state.Booting || time.Now().After(deadline) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkApplied checks that the appliance runs the document the router
// needs (GET /v1/system/config), that its generation is the applied one,
// and that the kernel of its namespace has the addresses; it returns the
// generation.
func (e *env) checkApplied(ns string, addrs ...string) uint64 {
	e.t.Helper()
	ctx := e.ctx
	mgmt, vrrp := e.servicePorts()
	addr := mgmt[0].FixedIPs[0].Address
	nics, err := e.client.Interfaces(ctx, addr)
	if err != nil {
		e.t.Fatal(err)
	}
	ifmap, err := router.MapInterfaces(nics, append(mgmt, vrrp...))
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := e.driver.Router(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	want, err := e.driver.BuildConfig(ctx, r, mgmt[0], ifmap)
	if err != nil {
		e.t.Fatal(err)
	}
	got, err := e.client.GetConfig(ctx, addr)
	if err != nil || got == nil {
		e.t.Fatalf("GET /v1/system/config: %v, %v", got, err)
	}
	if same, err := sameDocument(want, got); err != nil || !same {
		e.t.Errorf("the appliance runs another document (%v):\nwant %+v\ngot  %+v", err, want, got)
	}
	if info := e.info(); info.Generation != got.Generation || !info.Configured {
		e.t.Errorf("GET /v1/info: %+v, document generation %d", info, got.Generation)
	}
	have := nsAddrs(e.t, ns)
	for _, a := range addrs {
		if !strings.Contains(have, " "+a) {
			e.t.Errorf("%s is not in namespace %s:\n%s", a, ns, have)
		}
	}
	return got.Generation
}

func (e *env) info() *client.Info {
	e.t.Helper()
	mgmt, _ := e.servicePorts()
	info, err := e.client.Info(e.ctx, mgmt[0].FixedIPs[0].Address)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func nsAddrs(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s addr: %v: %s", ns, err, out)
	}
	return string(out)
}

func namespaceExists(t *testing.T, ns string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == ns {
			return true
		}
	}
	return false
}

// pki holds the files of a CA, the appliances' certificate (for the name
// appliance.astara) and the orchestrator's client certificate.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := issue(t, "astara-ca", nil, nil, 0)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leaf := func(name string, usage x509.ExtKeyUsage) (string, string) {
		key, _, der := issue(t, name, caCert, caKey, usage)
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("appliance.astara", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("orchestrator", x509.ExtKeyUsageClientAuth)
	return p
}

// issue makes a CA (parent nil) or a certificate for name signed by parent.
func issue(t *testing.T, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: parent == nil,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		tmpl.ExtKeyUsage, tmpl.DNSNames = []x509.ExtKeyUsage{usage}, []string{name}
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}
