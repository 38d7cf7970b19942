package quickstart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/provider/local"
	"github.com/astara-go/astara/internal/standalone"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

func TestMain(m *testing.M) { appliancetest.Main(m) }

// timeout bounds each test's waits: agents built with the race detector
// start slowly on a loaded machine.
const timeout = 3 * time.Minute

// system is standalone mode run by a test, in the test binary's own
// network namespace (nstest), with the test binary as the appliances'
// agent.
type system struct {
	t       *testing.T
	cfg     *config.Config
	run     string
	log     *nstest.SyncBuffer
	s       *standalone.System
	exits   chan standalone.Exit
	scen    *Scenario
	cancel  context.CancelFunc
	runDone chan error
}

func newSystem(t *testing.T) *system {
	t.Helper()
	nstest.Require(t)
	b := make([]byte, 8)
	rand.Read(b)
	sys := &system{t: t, run: hex.EncodeToString(b[:2]), log: &nstest.SyncBuffer{}, exits: make(chan standalone.Exit, 64)}
	cfg, err := config.Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// dnsmasq drops to "nobody", which must reach its files: not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "astara-qs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = filepath.Join(dir, "state")
	var ula [16]byte
	ula[0] = 0xfd
	copy(ula[1:8], b[1:8])
	cfg.ManagementPrefix = netip.PrefixFrom(netip.AddrFrom16(ula), 64)
	cfg.APIPort = 0
	sys.cfg = cfg
	t.Cleanup(func() {
		sys.stop()
		if err := standalone.Purge(context.Background(), cfg, nil); err != nil {
			t.Errorf("purge: %v", err)
		}
		os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("standalone mode's log:\n%s", sys.log.String())
			if insts, err := local.ReadInstances(filepath.Join(cfg.StateDir, "local")); err == nil {
				for _, in := range insts {
					if b, err := os.ReadFile(in.LogFile); err == nil {
						t.Logf("agent of %s:\n%s", in.Name, b)
					}
				}
			}
		}
	})
	sys.start()
	c, err := NewClient(sys.s.NetworkURL(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	sys.scen = &Scenario{Client: c, ManagementURL: "http://" + sys.s.Orchestrator().APIAddr().String(),
		Prefix: "q" + sys.run + "-", Dir: filepath.Join(dir, "hosts"),
		Progress: func(format string, args ...any) { t.Logf(format, args...) }}
	return sys
}

// start opens standalone mode on the state directory and runs it.
func (sys *system) start() {
	t := sys.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s, err := standalone.Open(ctx, sys.cfg, standalone.Options{
		AgentPath: exe, AgentEnv: appliancetest.AgentEnv(), AgentArgs: []string{"-log-level", "debug"},
		NamespacePrefix: "astara-q" + sys.run + "-",
		OnApplianceExit: func(e standalone.Exit) {
			select {
			case sys.exits <- e:
			default:
			}
		},
		Logger: slog.New(slog.NewTextHandler(sys.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	sys.s = s
	runCtx, runCancel := context.WithCancel(context.Background())
	sys.cancel, sys.runDone = runCancel, make(chan error, 1)
	started := make(chan error, 1)
	go func() {
		if err := s.Start(runCtx); err != nil {
			started <- err
			sys.runDone <- s.Stop(context.Background())
			return
		}
		started <- nil
		<-runCtx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		sys.runDone <- s.Stop(sctx)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if sys.scen != nil {
		sys.scen.ManagementURL = "http://" + s.Orchestrator().APIAddr().String()
	}
}

// stop stops standalone mode (the appliances keep running).
func (sys *system) stop() {
	if sys.cancel == nil {
		return
	}
	sys.cancel()
	if err := <-sys.runDone; err != nil {
		sys.t.Errorf("stopping standalone mode: %v", err)
	}
	sys.cancel = nil
}

// ctx returns a context bounded by timeout, ended with the test.
func (sys *system) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	sys.t.Cleanup(cancel)
	return ctx
}

// up runs the quickstart scenario; its hosts are removed with the test.
func (sys *system) up() *Demo {
	t := sys.t
	t.Helper()
	d, err := sys.scen.Up(sys.ctx())
	t.Cleanup(func() {
		if err := d.RemoveHosts(); err != nil {
			t.Errorf("removing the hosts: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (sys *system) instances() []local.Info {
	sys.t.Helper()
	insts, err := local.ReadInstances(filepath.Join(sys.cfg.StateDir, "local"))
	if err != nil {
		sys.t.Fatal(err)
	}
	return insts
}

var _ = fmt.Sprint
