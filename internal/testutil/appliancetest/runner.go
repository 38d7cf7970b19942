package appliancetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// Runner is a memory.Runner whose instances are real appliances: each is
// a network namespace running the astara-appliance agent (the test
// binary, see Main), with one veth per port carrying the port's MAC. The
// management veth's other end is on a bridge of the test's namespace,
// where the orchestrator (the test) has its management address; the other
// veths' ends stay in the test's namespace, unplugged. Every instance is
// stopped, and its namespace deleted, when the test ends.
type Runner struct {
	t      testing.TB
	exe    string
	dir    string
	bridge string
	flags  []string // extra agent flags (TLS)
	id     string

	mu    sync.Mutex
	seq   int
	insts map[string]*nsInstance
	all   []*nsInstance // every instance started, for the logs
}

var _ memory.Runner = (*Runner)(nil)

type nsInstance struct {
	ns   string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *nstest.SyncBuffer
	next int               // next ethN
	nics map[string]string // port id → link name in the namespace
	once sync.Once
}

// NewRunner returns a runner plugging management NICs into bridge and
// starting agents with the extra flags (e.g. PKI.AgentFlags). When the test
// fails, the agents' logs are logged.
func NewRunner(t testing.TB, bridge string, flags []string) *Runner {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// dnsmasq drops to "nobody", which must reach its files: not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "astara-appliance-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	r := &Runner{t: t, exe: exe, dir: dir, bridge: bridge, flags: flags, id: hex.EncodeToString(b), insts: map[string]*nsInstance{}}
	t.Cleanup(func() {
		r.mu.Lock()
		all := r.all
		r.insts = map[string]*nsInstance{}
		r.mu.Unlock()
		for _, in := range all {
			in.stop()
			if t.Failed() {
				t.Logf("agent log of %s:\n%s", in.ns, in.log.String())
			}
		}
		os.RemoveAll(dir)
	})
	return r
}

// veth creates a veth pair: host stays here, peer goes into ns as name with mac.
func veth(ctx context.Context, host, ns, name, mac string) error {
	return IP(ctx, "link", "add", host, "type", "veth", "peer", "name", name, "netns", ns, "address", mac)
}

// hostName names a veth's end in the test's namespace (at most 15 bytes).
func (r *Runner) hostName() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return fmt.Sprintf("v%s%d", r.id, r.seq)
}

// Start implements memory.Runner: it creates the namespace and its NICs
// and starts the agent, which boots in the background, as a VM does.
func (r *Runner) Start(ctx context.Context, spec memory.RunSpec) (err error) {
	r.mu.Lock()
	r.seq++
	ns := fmt.Sprintf("astara-%s-%d", r.id, r.seq)
	r.mu.Unlock()
	in := &nsInstance{ns: ns, dir: filepath.Join(r.dir, ns), done: make(chan struct{}), log: &nstest.SyncBuffer{}, nics: map[string]string{}}
	if err := IP(ctx, "netns", "add", ns); err != nil {
		return err
	}
	r.mu.Lock()
	r.insts[spec.Instance.ID] = in
	r.all = append(r.all, in)
	r.mu.Unlock()
	defer func() {
		if err != nil {
			r.mu.Lock()
			delete(r.insts, spec.Instance.ID)
			r.mu.Unlock()
			in.stop()
		}
	}()
	if err := IP(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	mgmt := r.hostName()
	if err := veth(ctx, mgmt, ns, "eth0", spec.ManagementPort.MAC); err != nil {
		return err
	}
	if err := IP(ctx, "link", "set", mgmt, "master", r.bridge, "up"); err != nil {
		return err
	}
	r.mu.Lock()
	in.nics[spec.ManagementPort.ID] = "eth0"
	in.next = 1
	r.mu.Unlock()
	for _, p := range spec.Ports {
		if err := r.plug(ctx, in, p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(in.dir, 0o755); err != nil {
		return err
	}
	ud := filepath.Join(in.dir, "user-data")
	if err := os.WriteFile(ud, spec.UserData, 0o644); err != nil {
		return err
	}
	args := append([]string{"netns", "exec", ns, r.exe, "-user-data", ud, "-state-dir", filepath.Join(in.dir, "state"),
		"-port", "5000", "-ssh-port", "0", "-log-level", "debug"}, r.flags...)
	in.cmd = exec.Command("ip", args...)
	in.cmd.Env = append(os.Environ(), envAgent+"=1")
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		return fmt.Errorf("starting the agent: %w", err)
	}
	go func() {
		_ = in.cmd.Wait()
		close(in.done)
	}()
	return nil
}

// plug adds a NIC for port to the instance: the next ethN, so that a
// hot-plugged NIC sorts last among the appliance's generic names.
func (r *Runner) plug(ctx context.Context, in *nsInstance, p provider.Port) error {
	host := r.hostName()
	r.mu.Lock()
	name := fmt.Sprintf("eth%d", in.next)
	in.next++
	r.mu.Unlock()
	if err := veth(ctx, host, in.ns, name, p.MAC); err != nil {
		return err
	}
	if err := IP(ctx, "link", "set", host, "up"); err != nil {
		return err
	}
	r.mu.Lock()
	in.nics[p.ID] = name
	r.mu.Unlock()
	return nil
}

// Stop implements memory.Runner: it kills everything in the namespace and
// deletes it.
func (r *Runner) Stop(ctx context.Context, id string) error {
	r.mu.Lock()
	in := r.insts[id]
	delete(r.insts, id)
	r.mu.Unlock()
	if in != nil {
		in.stop()
	}
	return nil
}

// Attach implements memory.Runner.
func (r *Runner) Attach(ctx context.Context, id string, p provider.Port) error {
	r.mu.Lock()
	in := r.insts[id]
	r.mu.Unlock()
	if in == nil {
		return fmt.Errorf("instance %s is not running", id)
	}
	return r.plug(ctx, in, p)
}

// Detach implements memory.Runner.
func (r *Runner) Detach(ctx context.Context, id string, p provider.Port) error {
	r.mu.Lock()
	in := r.insts[id]
	var name string
	if in != nil {
		name = in.nics[p.ID]
		delete(in.nics, p.ID)
	}
	r.mu.Unlock()
	if in == nil || name == "" {
		return fmt.Errorf("instance %s has no NIC for port %s", id, p.ID)
	}
	return IP(ctx, "-n", in.ns, "link", "del", name)
}

// Namespace returns the namespace of a running instance ("" if it is not
// running).
func (r *Runner) Namespace(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in := r.insts[id]; in != nil {
		return in.ns
	}
	return ""
}

// Log returns what the agent of a running instance logged so far.
func (r *Runner) Log(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in := r.insts[id]; in != nil {
		return in.log.String()
	}
	return ""
}

// stop kills everything in the namespace (the agent, dnsmasq, BIRD) and
// deletes it, which deletes its veths and their peers.
func (in *nsInstance) stop() {
	in.once.Do(func() {
		nstest.Delete(in.ns)
		if in.cmd != nil && in.cmd.Process != nil {
			_ = in.cmd.Process.Kill()
			<-in.done
		}
	})
}
