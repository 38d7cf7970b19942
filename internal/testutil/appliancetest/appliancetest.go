// Package appliancetest runs real astara-appliance agents for tests: a
// memory.Runner whose instances are those of the local compute provider
// (network namespaces running the agent, one veth per port carrying the
// port's MAC, on a bridge per network), and the certificates for mutual
// TLS between the orchestrator and the agents.
//
// The agent is the test binary itself: a package using Runner (or the
// local provider with AgentEnv) calls Main from its TestMain, which runs
// the agent when the binary is started as one, and otherwise runs the
// tests in a fresh network namespace (nstest), as root.
package appliancetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/astara-go/astara/internal/appliance/agent"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// envAgent makes the test binary run as astara-appliance: Runner starts
// the real agent from it, built with the test's flags (-race).
const envAgent = "ASTARA_TEST_APPLIANCE_AGENT"

// AgentEnv is the environment that makes the test binary (os.Executable)
// run as the agent: give it to local.Options.AgentEnv.
func AgentEnv() []string { return []string{envAgent + "=1"} }

// Main runs the agent when the Runner asked for it; otherwise it runs the
// tests (in a fresh network namespace as root, see nstest.Main).
func Main(m *testing.M) {
	if os.Getenv(envAgent) != "" {
		os.Exit(runAgent())
	}
	nstest.Main(m)
}

func runAgent() int {
	cfg, err := agent.ParseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := agent.Run(ctx, cfg, log); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}

// IP runs ip(8) with args.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Bridge creates a Linux bridge with address addr (address/prefix) and
// brings it up: the management network, where the test is the
// orchestrator. It is deleted when the test ends.
func Bridge(t testing.TB, name, addr string) {
	t.Helper()
	ctx := context.Background()
	if err := IP(ctx, "link", "add", name, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = IP(context.Background(), "link", "del", name) })
	for _, args := range [][]string{
		{"addr", "add", addr, "dev", name, "nodad"},
		{"link", "set", name, "up"},
	} {
		if err := IP(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// Addrs returns the addresses of the namespace ns (ip -o addr show).
func Addrs(t testing.TB, ns string) string {
	t.Helper()
	return nstest.Run(t, "ip", "-n", ns, "-o", "addr", "show")
}

// NamespaceExists reports whether the network namespace ns exists.
func NamespaceExists(t testing.TB, ns string) bool {
	t.Helper()
	for _, l := range strings.Split(nstest.Run(t, "ip", "netns", "list"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == ns {
			return true
		}
	}
	return false
}
