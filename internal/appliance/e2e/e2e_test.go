// Package e2e tests the real astara-appliance agent in a lab of network
// namespaces: real dnsmasq, BIRD, nftables and kernel routing, asserted with
// real traffic from VMs (namespaces) to an upstream host and back.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/agent"
	"github.com/astara-go/astara/internal/appliance/lab"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// The test binary doubles as the agent: run with envAgent set, it is
// astara-appliance (so the agent under test is built with the test's flags,
// -race included).
const envAgent = "ASTARA_E2E_RUN_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(envAgent) != "" {
		runAgent()
		return
	}
	os.Exit(m.Run())
}

func runAgent() {
	cfg, err := agent.ParseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := agent.Run(ctx, cfg, log); err != nil {
		log.Error("agent failed", "err", err)
		os.Exit(1)
	}
}

const apiPort = 5000

// env is one lab with a running agent and a metadata server.
type env struct {
	t        *testing.T
	lab      *lab.Lab
	dir      string
	agentLog *nstest.SyncBuffer
	agent    *exec.Cmd
	meta     *metadataServer
	client   *http.Client
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to build namespaces (CI runs as root)")
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// dnsmasq drops to "nobody", which must reach its files: not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "astara-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, lab: l, dir: dir, agentLog: &nstest.SyncBuffer{}, client: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		l.Close()
		if t.Failed() {
			t.Logf("agent log:\n%s", e.agentLog.String())
		}
	})
	e.meta = newMetadataServer(t, l.Orchestrator)
	e.startAgent()
	return e
}

// startAgent starts the agent in the appliance namespace; by default it is
// told its management interface with flags, otherwise with bootstrap args
// (e.g. -user-data FILE, as the orchestrator boots a VM).
func (e *env) startAgent(bootstrap ...string) {
	e.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	if len(bootstrap) == 0 {
		bootstrap = []string{"-mgmt-mac", lab.MgmtMAC, "-mgmt-address", e.lab.ApplianceMgmt.String()}
	}
	args := append([]string{"netns", "exec", e.lab.Appliance, exe}, bootstrap...)
	args = append(args, "-state-dir", filepath.Join(e.dir, "state"), "-port", fmt.Sprint(apiPort),
		"-probe-v4", lab.Internet.String(), "-log-level", "debug")
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), envAgent+"=1")
	cmd.Stdout, cmd.Stderr = e.agentLog, e.agentLog
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.agent = cmd
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	nstest.WaitFor(e.t, 60*time.Second, "the agent API", func() bool {
		resp, err := e.client.Get(e.lab.APIURL(apiPort) + "/v1/firewall/rules")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// put sends a document and returns the status code and body.
func (e *env) put(doc any) (int, string) {
	e.t.Helper()
	body, err := json.Marshal(doc)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", e.lab.APIURL(apiPort)+"/v1/system/config", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) mustPut(doc *model.Document) {
	e.t.Helper()
	if code, body := e.put(doc); code != 200 {
		e.t.Fatalf("PUT config: %d %s", code, body)
	}
}

func (e *env) exec(ns string, args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.lab.Exec(ctx, ns, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) lease(ns string) lab.Lease {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l, err := e.lab.DHCP(ctx, ns, filepath.Join(e.dir, ns))
	if err != nil {
		e.t.Fatalf("DHCP in %s: %v\ndnsmasq log:\n%s", ns, err, e.dnsmasqLog())
	}
	return l
}

func (e *env) dnsmasqLog() string {
	var out strings.Builder
	_ = filepath.WalkDir(filepath.Join(e.dir, "state"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
			b, _ := os.ReadFile(p)
			fmt.Fprintf(&out, "== %s\n%s\n", p, b)
		}
		return nil
	})
	return out.String()
}

// metadataServer stands for the orchestrator's metadata service: it listens
// on the root namespace's management address and records requests.
type metadataServer struct {
	port uint16
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func newMetadataServer(t *testing.T, addr netip.Addr) *metadataServer {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	m := &metadataServer{port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.reqs = append(m.reqs, r)
		m.body = append(m.body, string(b))
		m.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "instance-id: %s", r.Header.Get("X-Instance-ID"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *metadataServer) last() (*http.Request, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.reqs) == 0 {
		return nil, ""
	}
	return m.reqs[len(m.reqs)-1], m.body[len(m.body)-1]
}
