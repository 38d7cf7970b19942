package worker

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The memory measurement runs end to end on a small fleet and reports
// numbers that make sense: the orchestrator's own cost and a baseline.
func TestMeasureMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := MeasureMemory(ctx, 2000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Transitions != DefaultConfig().History || r.PerResource <= 0 || r.Baseline <= 0 || r.Fake <= 0 {
		t.Errorf("report %+v: want a full history and positive sizes", r)
	}
	var b bytes.Buffer
	r.Print(&b, "test machine")
	for _, want := range []string{"2000 resources", "machine: test machine", "baseline / astara", "target <= 2048"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := MeasureMemory(ctx, 0, 1); err == nil {
		t.Error("MeasureMemory(0 resources) succeeded")
	}
}
