package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Targets of the issue: router create → first packet forwarded, and dead
// appliance → repaired and forwarding, at the 95th percentile.
const (
	CreateTarget = time.Second
	RepairTarget = 5 * time.Second
)

// Percentile returns the p-th percentile (0 < p ≤ 100) of samples, by
// nearest rank (with 20 samples the 95th is the 19th smallest, with 3 the
// largest); 0 for none.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(float64(len(s)) * p / 100))
	return s[min(max(rank, 1), len(s))-1]
}

// StandaloneRow is one line of the table: a metric of ours against the
// baseline's.
type StandaloneRow struct {
	Metric         string
	Ours, Baseline []time.Duration
	// Target is the target for Ours' p95 (0: none).
	Target time.Duration
}

// Rows returns the table's lines.
func (r *StandaloneResult) Rows() []StandaloneRow {
	o, b := &r.Ours, &r.Baseline
	return []StandaloneRow{
		{Metric: "create → tenant bridge, one at a time", Ours: o.Bridge, Baseline: b.Bridge},
		{Metric: "create → first packet, one at a time", Ours: o.Create, Baseline: b.Create, Target: CreateTarget},
		{Metric: fmt.Sprintf("create → first packet, %d at once", len(o.Concurrent)), Ours: o.Concurrent, Baseline: b.Concurrent,
			Target: CreateTarget},
		{Metric: "dead (killed) → router polled", Ours: o.KillPolled},
		{Metric: "dead (killed) → ACTIVE  [b: unresp.]", Ours: o.KillActive, Baseline: b.HungActive},
		{Metric: "dead (killed) → forwarding  [b: unresp.]", Ours: o.KillForwarding, Baseline: b.HungForwarding, Target: RepairTarget},
		{Metric: "unresponsive → ACTIVE", Ours: o.HungActive, Baseline: b.HungActive},
		{Metric: "unresponsive → forwarding", Ours: o.HungForwarding, Baseline: b.HungForwarding},
	}
}

// Print writes the result: what each system is, then a table of p50, p95
// and max of each metric, the baseline's p50 and p95, and the ratios
// baseline / ours.
func (r *StandaloneResult) Print(w io.Writer, machine string) {
	fmt.Fprintf(w, "standalone routers benchmark (%s)\n", machine)
	fmt.Fprintf(w, "ours:     standalone mode as configured by default: %s;\n", r.Ours.Settings)
	fmt.Fprintln(w, "          an appliance agent's exit polls its router at once")
	fmt.Fprintf(w, "baseline: the same orchestrator and namespace appliances with the original Astara's defaults: %s;\n", r.Baseline.Settings)
	fmt.Fprintln(w, "          not included: the tens of seconds the original spent booting a VM. The original sees no agent exit")
	fmt.Fprintln(w, "          (its appliances are VMs): its health poll finds a dead appliance, so the baseline's dead appliances")
	fmt.Fprintln(w, "          are made unresponsive instead (management port down, as a crashed VM) [b: unresp.]")
	fmt.Fprintln(w, "create: router with gateway + interface → its tenant bridge / the VM's first ping of upstream answered (SNAT)")
	projects := "a project per router"
	if r.Ours.SharedTenant {
		projects = "every router in one project (its port events go to all its routers)"
	}
	fmt.Fprintf(w, "        (%s; VMs: namespaces, static address from their port; one warm-up router per system not counted)\n", projects)
	fmt.Fprintln(w, "dead (killed): SIGKILL of every process of the appliance, one router at a time → poll dispatched, new")
	fmt.Fprintln(w, "        appliance ACTIVE, the VM's first ping answered after that; unresponsive: several at once, nothing exits")
	fmt.Fprintln(w, "p50/p95 by nearest rank (of 3 samples the p95 is the max); pings every 20 ms; ratio = baseline / ours")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-42s %3s %9s %9s %9s | %3s %9s %9s | %7s %7s | %s\n",
		"metric", "n", "p50", "p95", "max", "n", "base p50", "base p95", "x p50", "x p95", "target (ours)")
	for _, row := range r.Rows() {
		if len(row.Ours) == 0 {
			continue
		}
		op50, op95 := Percentile(row.Ours, 50), Percentile(row.Ours, 95)
		line := fmt.Sprintf("%-42s %3d %9s %9s %9s |", pad(row.Metric, 42), len(row.Ours), fmtDur(op50), fmtDur(op95),
			fmtDur(slices.Max(row.Ours)))
		if len(row.Baseline) > 0 {
			bp50, bp95 := Percentile(row.Baseline, 50), Percentile(row.Baseline, 95)
			line += fmt.Sprintf(" %3d %9s %9s | %6.1fx %6.1fx |", len(row.Baseline), fmtDur(bp50), fmtDur(bp95),
				ratio(bp50, op50), ratio(bp95, op95))
		} else {
			line += fmt.Sprintf(" %3s %9s %9s | %7s %7s |", "-", "-", "-", "-", "-")
		}
		if row.Target > 0 {
			met := "met"
			if op95 >= row.Target {
				met = "MISSED"
			}
			line += fmt.Sprintf(" p95 < %v: %s", row.Target, met)
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Ours.Concurrent) > 0 {
		fmt.Fprintf(w, "%d routers at once: all forwarding after %s (baseline: %d after %s)\n", len(r.Ours.Concurrent),
			fmtDur(r.Ours.ConcurrentWall), len(r.Baseline.Concurrent), fmtDur(r.Baseline.ConcurrentWall))
	}
	if r.Ours.OldNamespaceLeft > 0 {
		fmt.Fprintf(w, "note: %d of %d killed appliances still had their namespace when the new one was ACTIVE\n",
			r.Ours.OldNamespaceLeft, len(r.Ours.KillActive))
	}
}

// pad pads s to n runes (fmt pads by bytes; the arrows are 3).
func pad(s string, n int) string {
	if k := n - len([]rune(s)); k > 0 {
		return s + strings.Repeat(" ", k)
	}
	return s
}

func ratio(base, ours time.Duration) float64 {
	if ours <= 0 {
		return 0
	}
	return float64(base) / float64(ours)
}

// fmtDur writes d in seconds: ms precision below 10 s.
func fmtDur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
