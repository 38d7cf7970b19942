package firewall

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// perfOps measures each Apply scenario for n floating IPs; every run also
// checks what the Apply did, so the numbers are of the right work.
func perfOps(t testing.TB, m *Manager, n, runs int) map[string]time.Duration {
	ctx := context.Background()
	base := fipSpec(n)
	plus := fipSpec(n)
	plus.FloatingIPs = append(plus.FloatingIPs, FloatingIP{Floating: ap("198.51.100.1"), Fixed: ap("10.255.0.1")})
	timed := func(s Spec, check func(Result) bool) time.Duration {
		start := time.Now()
		res, err := m.Apply(ctx, s)
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if !check(res) {
			t.Fatalf("%d fips: unexpected result %+v", n, res)
		}
		return d
	}
	samples := map[string][]time.Duration{}
	for range runs {
		if err := m.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		samples["from empty"] = append(samples["from empty"], timed(base, func(r Result) bool {
			return r.TableCreated && r.ElementsAdded == 2*n+3
		}))
		samples["identical"] = append(samples["identical"], timed(base, func(r Result) bool {
			return !r.Changed && !r.KernelRead
		}))
		m.Invalidate()
		samples["kernel read"] = append(samples["kernel read"], timed(base, func(r Result) bool {
			return !r.Changed && r.KernelRead
		}))
		samples["add one"] = append(samples["add one"], timed(plus, func(r Result) bool {
			return r.ElementsAdded == 2 && r.ElementsRemoved == 0 && r.Messages == 2 && !r.KernelRead
		}))
		samples["remove one"] = append(samples["remove one"], timed(base, func(r Result) bool {
			return r.ElementsRemoved == 2 && r.ElementsAdded == 0 && r.Messages == 2 && !r.KernelRead
		}))
	}
	out := map[string]time.Duration{}
	for op, s := range samples {
		slices.Sort(s)
		out[op] = s[len(s)/2]
	}
	return out
}

var perfOrder = []string{"from empty", "identical", "kernel read", "add one", "remove one"}

// TestTimings runs each Apply scenario for 10 to 10,000 floating IPs, checks
// what every Apply did, and logs the median times (go test -v shows them).
// It asserts behaviour only, never a duration: BenchmarkApply is the place
// to measure.
func TestTimings(t *testing.T) {
	m := newManager(t, DefaultTable)
	var b strings.Builder
	fmt.Fprintf(&b, "%8s", "fips")
	for _, op := range perfOrder {
		fmt.Fprintf(&b, " %12s", op)
	}
	b.WriteString("\n")
	for _, n := range []int{10, 100, 1000, 10000} {
		medians := perfOps(t, m, n, 7)
		fmt.Fprintf(&b, "%8d", n)
		for _, op := range perfOrder {
			fmt.Fprintf(&b, " %12s", medians[op].Round(time.Microsecond))
		}
		b.WriteString("\n")
	}
	t.Logf("median Apply times (race detector: %v):\n%s", raceEnabled, b.String())
}

func BenchmarkApply(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		m := newManager(b, fmt.Sprintf("bench%d", n))
		ctx := context.Background()
		base, plus := fipSpec(n), fipSpec(n)
		plus.FloatingIPs = append(plus.FloatingIPs, FloatingIP{Floating: ap("198.51.100.1"), Fixed: ap("10.255.0.1")})
		must := func(_ Result, err error) {
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("fips=%d/from_empty", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if err := m.Remove(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				must(m.Apply(ctx, base))
			}
		})
		must(m.Apply(ctx, base))
		b.Run(fmt.Sprintf("fips=%d/identical", n), func(b *testing.B) {
			for b.Loop() {
				must(m.Apply(ctx, base))
			}
		})
		b.Run(fmt.Sprintf("fips=%d/kernel_read", n), func(b *testing.B) {
			for b.Loop() {
				m.Invalidate()
				must(m.Apply(ctx, base))
			}
		})
		b.Run(fmt.Sprintf("fips=%d/add_one", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				must(m.Apply(ctx, base))
				b.StartTimer()
				must(m.Apply(ctx, plus))
			}
		})
		b.Run(fmt.Sprintf("fips=%d/remove_one", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				must(m.Apply(ctx, plus))
				b.StartTimer()
				must(m.Apply(ctx, base))
			}
		})
		b.Run(fmt.Sprintf("fips=%d/ruleset", n), func(b *testing.B) {
			for b.Loop() {
				_ = m.Ruleset()
			}
		})
	}
}

// BenchmarkDiff10k measures the pure-Go part of an identical re-apply of
// 10,000 floating IPs: validation, build and the diff against the mirror.
func BenchmarkDiff10k(b *testing.B) {
	s := fipSpec(10000)
	pairs, err := validate(&s)
	if err != nil {
		b.Fatal(err)
	}
	dnm, snm := fipElems(s.FloatingIPs)
	dn, sn := elemSetOf(dnm), elemSetOf(snm)
	memo := ruleMemo{}
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if _, err := validate(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if _, err := build(&s, pairs, memo); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, inverse := range []bool{true, false} {
		b.Run(fmt.Sprintf("diff/inverse=%v", inverse), func(b *testing.B) {
			for b.Loop() {
				d, err := diffFIPs(pairs, s.FloatingIPs, dn, sn, inverse)
				if err != nil || len(d.dnAdds) > 0 {
					b.Fatal(err)
				}
			}
		})
	}
}
