package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/testutil/appliancetest"
	"github.com/astara-go/astara/internal/testutil/nstest"
)

// TestMain runs the agent when the test binary is started as one, else
// the tests in a fresh network namespace (see appliancetest.Main).
func TestMain(m *testing.M) { appliancetest.Main(m) }

// TestStandaloneRouters runs the benchmark with 2 routers, the test binary
// as the agent and a short health poll, and checks the shape of the
// result (no timing thresholds).
func TestStandaloneRouters(t *testing.T) {
	nstest.Require(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := &nstest.SyncBuffer{}
	r, err := RunStandalone(ctx, StandaloneOptions{
		Routers: 2, Concurrent: true, Hung: 2,
		AgentPath: exe, AgentEnv: appliancetest.AgentEnv(),
		// The baseline's 60 s health poll would make the test slow.
		Tune:     func(_ bool, cfg *config.Config) { cfg.HealthCheckPeriod = 2 * time.Second },
		Progress: testWriter{t}, Log: log,
	})
	if err != nil {
		t.Fatalf("%v\nstandalone mode's log:\n%s", err, log.String())
	}
	for name, got := range map[string][]time.Duration{
		"ours bridge": r.Ours.Bridge, "ours create": r.Ours.Create, "ours concurrent": r.Ours.Concurrent,
		"ours kill polled": r.Ours.KillPolled, "ours kill active": r.Ours.KillActive, "ours kill forwarding": r.Ours.KillForwarding,
		"ours hung active": r.Ours.HungActive, "ours hung forwarding": r.Ours.HungForwarding,
		"baseline bridge": r.Baseline.Bridge, "baseline create": r.Baseline.Create, "baseline concurrent": r.Baseline.Concurrent,
		"baseline hung active": r.Baseline.HungActive, "baseline hung forwarding": r.Baseline.HungForwarding,
	} {
		if len(got) != 2 {
			t.Errorf("%s: %d samples %v, want 2", name, len(got), got)
		}
		for _, d := range got {
			if d <= 0 {
				t.Errorf("%s: sample %v", name, d)
			}
		}
	}
	if len(r.Baseline.KillActive) != 0 {
		t.Errorf("baseline kill samples %v: the baseline has no agent-exit path to measure", r.Baseline.KillActive)
	}
	if !strings.Contains(r.Ours.Settings, "boot_check_interval=50ms") ||
		!strings.Contains(r.Baseline.Settings, "boot_check_interval=5s") {
		t.Errorf("settings: ours %q, baseline %q", r.Ours.Settings, r.Baseline.Settings)
	}
	var out bytes.Buffer
	r.Print(&out, "test machine")
	for _, want := range []string{"create → first packet, one at a time", "create → first packet, 2 at once",
		"dead (killed) → forwarding", "unresponsive → forwarding", "p95 < 1s", "p95 < 5s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

func TestPercentile(t *testing.T) {
	var twenty []time.Duration
	for i := 20; i >= 1; i-- {
		twenty = append(twenty, time.Duration(i))
	}
	for _, c := range []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 95, 0},
		{twenty, 50, 10},
		{twenty, 95, 19},
		{twenty, 100, 20},
		{[]time.Duration{3, 1, 2}, 95, 3},
		{[]time.Duration{3, 1, 2}, 50, 2},
		{[]time.Duration{7}, 50, 7},
	} {
		if got := Percentile(c.samples, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.samples, c.p, got, c.want)
		}
	}
}

// testWriter logs each line written to it.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
