package appliancetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/provider/memory"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// Runner is a memory.Runner whose instances are real appliances, run by
// the local compute provider: each is a network namespace running the
// astara-appliance agent (the test binary, see Main), with one veth per
// port carrying the port's MAC. The management veths are plugged into the
// bridge given to NewRunner, where the orchestrator (the test) has its
// management address; the other veths into a bridge per network. Every
// instance is deleted, and the bridges made for it, when the test ends.
type Runner struct {
	t       testing.TB
	compute *local.Compute

	mu   sync.Mutex
	ids  map[string]string // memory instance id → local instance id
	logs []string          // the logs of stopped agents
}

var _ memory.Runner = (*Runner)(nil)

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
	providerLog := &nstest.SyncBuffer{}
	c, err := local.New(local.Options{
		StateDir:         dir,
		AgentPath:        exe,
		AgentArgs:        append([]string{"-ssh-port", "0", "-log-level", "debug"}, flags...),
		AgentEnv:         AgentEnv(),
		ManagementBridge: bridge,
		NamespacePrefix:  "astara-" + hex.EncodeToString(b) + "-",
		Logger:           slog.New(slog.NewTextHandler(providerLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	r := &Runner{t: t, compute: c, ids: map[string]string{}}
	t.Cleanup(func() {
		ctx := context.Background()
		r.mu.Lock()
		ids := r.ids
		r.ids = map[string]string{}
		r.mu.Unlock()
		for _, id := range ids {
			r.keepLog(id)
			if err := c.Delete(ctx, id); err != nil {
				t.Errorf("appliancetest: %v", err)
			}
		}
		if err := c.Prune(ctx); err != nil {
			t.Errorf("appliancetest: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("appliancetest: %v", err)
		}
		if t.Failed() {
			t.Logf("local compute provider log:\n%s", providerLog.String())
			r.mu.Lock()
			for _, l := range r.logs {
				t.Log(l)
			}
			r.mu.Unlock()
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("appliancetest: %v", err)
		}
	})
	return r
}

// Compute returns the local compute provider that runs the instances.
func (r *Runner) Compute() *local.Compute { return r.compute }

// Start implements memory.Runner: it boots an instance of the local
// provider (named after the memory instance), whose agent boots in the
// background, as a VM does.
func (r *Runner) Start(ctx context.Context, spec memory.RunSpec) error {
	in, err := r.compute.Boot(ctx, provider.BootSpec{
		Name: spec.Instance.ID, ImageID: spec.Instance.ImageID,
		ManagementPort: spec.ManagementPort, Ports: spec.Ports, UserData: spec.UserData,
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ids[spec.Instance.ID] = in.ID
	r.mu.Unlock()
	return nil
}

// Stop implements memory.Runner: it deletes the instance (every process in
// its namespace, its devices, its namespace).
func (r *Runner) Stop(ctx context.Context, id string) error {
	r.mu.Lock()
	localID, ok := r.ids[id]
	delete(r.ids, id)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	r.keepLog(localID)
	return r.compute.Delete(ctx, localID)
}

// Attach implements memory.Runner.
func (r *Runner) Attach(ctx context.Context, id string, p provider.Port) error {
	localID, err := r.running(id)
	if err != nil {
		return err
	}
	return r.compute.AttachPort(ctx, localID, p)
}

// Detach implements memory.Runner.
func (r *Runner) Detach(ctx context.Context, id string, p provider.Port) error {
	localID, err := r.running(id)
	if err != nil {
		return err
	}
	return r.compute.DetachPort(ctx, localID, p.ID)
}

func (r *Runner) running(id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	localID, ok := r.ids[id]
	if !ok {
		return "", fmt.Errorf("instance %s is not running", id)
	}
	return localID, nil
}

// Namespace returns the namespace of a running instance ("" if it is not
// running).
func (r *Runner) Namespace(id string) string {
	localID, err := r.running(id)
	if err != nil {
		return ""
	}
	return r.compute.Namespace(localID)
}

// Log returns what the agent of a running instance logged so far.
func (r *Runner) Log(id string) string {
	localID, err := r.running(id)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(r.compute.LogFile(localID))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// keepLog keeps the log of an agent about to be deleted, to be logged if
// the test fails.
func (r *Runner) keepLog(localID string) {
	b, err := os.ReadFile(r.compute.LogFile(localID))
	if err != nil {
		b = []byte(err.Error())
	}
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf("agent log of %s:\n%s", r.compute.Namespace(localID), b))
	r.mu.Unlock()
}
