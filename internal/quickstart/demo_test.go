package quickstart

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

// TestUpDown runs the quickstart command's Up and Down with the real
// binaries, as the README's first command does: the orchestrator runs in
// the background, the scenario passes, and Down leaves nothing behind.
func TestUpDown(t *testing.T) {
	nstest.Require(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/astara-orchestrator", "../../cmd/astara-appliance")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	// Short and world-searchable: dnsmasq reads its files as nobody, and
	// BIRD's sockets must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "asq-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opts := Options{Dir: filepath.Join(dir, "qs"), Orchestrator: filepath.Join(bin, "astara-orchestrator"), Out: &out}
	ctx := context.Background()
	t.Cleanup(func() {
		if err := Down(ctx, opts); err != nil {
			t.Errorf("down: %v", err)
		}
		os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	})
	if err := Up(ctx, opts); err != nil {
		b, _ := os.ReadFile(filepath.Join(opts.Dir, logName))
		t.Fatalf("up: %v\nthe orchestrator's log:\n%s", err, b)
	}
	for _, want := range []string{"DHCP lease", "(SNAT)", "floating IP", "ACTIVE in GET /v2.0/routers/", "ACTIVE in the management API", "./scripts/quickstart.sh stop"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output does not say %q", want)
		}
	}
	pid, ok := running(opts.Dir)
	if !ok {
		t.Fatal("the orchestrator does not run after Up")
	}
	if err := Up(ctx, opts); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second Up: %v, want already running", err)
	}

	if err := Down(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("the orchestrator (pid %d) runs after Down", pid)
	}
	if _, err := os.Stat(opts.Dir); !os.IsNotExist(err) {
		t.Errorf("%s after Down: %v", opts.Dir, err)
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), HostPrefix) {
			t.Errorf("namespace %s left after Down", e.Name())
		}
	}
	if err := Down(ctx, opts); err != nil {
		t.Errorf("a second Down: %v", err)
	}
}
