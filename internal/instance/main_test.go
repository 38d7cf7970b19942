package instance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/astara-go/astara/internal/appliance/agent"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// envAgent makes the test binary run as astara-appliance: the integration
// test starts the real agent from it, built with the test's flags (-race).
const envAgent = "ASTARA_INSTANCE_TEST_AGENT"

// TestMain runs the agent when asked to; otherwise it runs the tests in a
// fresh network namespace (as root), which takes the management bridge and
// the veths with it when the tests end.
func TestMain(m *testing.M) {
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
