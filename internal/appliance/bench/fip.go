// Package bench measures the appliance: how long applying router documents
// with many floating IPs takes, against the original's approach (one
// iptables-restore of per-floating-IP DNAT and SNAT rules) measured in the
// same run on the same machine.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply"
	"github.com/astara-go/astara/internal/appliance/model"
)

// FIPResult is one row of the floating-IP benchmark.
type FIPResult struct {
	FloatingIPs int
	// Apply is the first apply of the document (empty kernel state).
	Apply time.Duration
	// Reapply is an identical re-apply (kernel state vouched for by its
	// change notifications and the nftables generation).
	Reapply time.Duration
	// ReapplyChanges counts kernel changes made by the re-apply (want 0).
	ReapplyChanges int
	// AddOne and RemoveOne change one floating IP among FloatingIPs.
	AddOne, RemoveOne time.Duration
	// Baseline is iptables-restore of the original's NAT rules for the same
	// floating IPs, in a fresh namespace; BaselineRules counts those rules.
	Baseline      time.Duration
	BaselineRules int
}

// FIPDocument returns a router document with n floating IPs: an external
// /16 and two internal networks, as the orchestrator would send it.
func FIPDocument(n int) *model.Document {
	doc := &model.Document{
		TenantID: "bench", Hostname: "ak-bench", ASN: model.DefaultASN, NeighborASN: model.DefaultASN,
		DefaultV4Gateway: netip.MustParseAddr("172.16.255.1"),
		Orchestrator:     model.Orchestrator{Address: netip.MustParseAddr(model.DefaultOrchestratorAddress), MetadataPort: model.DefaultMetadataPort},
		Networks: []model.Network{
			{ID: "ext", Type: model.NetworkExternal, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge0", Addresses: []netip.Prefix{netip.MustParsePrefix("172.16.255.254/16")}},
				Subnets:   []model.Subnet{{ID: "ext-v4", CIDR: netip.MustParsePrefix("172.16.0.0/16"), GatewayIP: netip.MustParseAddr("172.16.255.1")}}},
			{ID: "int1", Type: model.NetworkInternal, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge1", Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.255.254/16")}},
				Subnets:   []model.Subnet{{ID: "int1-v4", CIDR: netip.MustParsePrefix("10.0.0.0/16"), GatewayIP: netip.MustParseAddr("10.0.255.254")}}},
			{ID: "int2", Type: model.NetworkInternal, V4ConfService: "static", V6ConfService: "static",
				Interface: model.Interface{IfName: "ge2", Addresses: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}},
				Subnets:   []model.Subnet{{ID: "int2-v4", CIDR: netip.MustParsePrefix("10.1.0.0/24"), GatewayIP: netip.MustParseAddr("10.1.0.1")}}},
		},
	}
	for i := range n {
		doc.FloatingIPs = append(doc.FloatingIPs, model.FloatingIP{FloatingIP: fipAddr(i), FixedIP: fixedAddr(i)})
	}
	return doc
}

func fipAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{172, 16, byte(i / 250), byte(i%250 + 1)})
}
func fixedAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i%250 + 1)})
}

// RunFIPInNamespace measures one size. It must run inside a fresh network
// namespace that has the links eth1, eth2, eth3 (see Setup).
func RunFIPInNamespace(ctx context.Context, n int, stateDir string) (FIPResult, error) {
	r := FIPResult{FloatingIPs: n}
	a, err := apply.New(ctx, apply.Config{StateDir: stateDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return r, err
	}
	defer a.Close(ctx)
	doc := FIPDocument(n)
	if err := doc.Validate(); err != nil {
		return r, err
	}
	// Each apply gets its document as the agent does: decoded from the JSON
	// the orchestrator sends (decoding is not timed).
	timed := func(d *model.Document) (time.Duration, error) {
		body, err := json.Marshal(d)
		if err != nil {
			return 0, err
		}
		if d, err = model.Decode(body); err != nil {
			return 0, err
		}
		start := time.Now()
		err = a.ApplyEncoded(ctx, d, body)
		elapsed := time.Since(start)
		if os.Getenv("ASTARA_BENCH_STEPS") != "" {
			fmt.Fprintf(os.Stderr, "%d fips, %v: %v\n", n, elapsed, a.Stats().LastSteps)
		}
		return elapsed, err
	}
	if r.Apply, err = timed(doc); err != nil {
		return r, fmt.Errorf("apply: %w", err)
	}
	stats := a.Stats()
	if path := os.Getenv("ASTARA_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return r, err
		}
		_ = pprof.StartCPUProfile(f)
		for range 200 {
			_ = a.Apply(ctx, doc)
		}
		pprof.StopCPUProfile()
		f.Close()
	}
	// Every apply gets a document of its own, as one decoded from a PUT.
	if r.Reapply, err = timed(FIPDocument(n)); err != nil {
		return r, fmt.Errorf("re-apply: %w", err)
	}
	r.ReapplyChanges = a.Stats().KernelChanges - stats.KernelChanges

	more := FIPDocument(n)
	more.FloatingIPs = append(more.FloatingIPs, model.FloatingIP{FloatingIP: fipAddr(n), FixedIP: fixedAddr(n)})
	if r.AddOne, err = timed(more); err != nil {
		return r, fmt.Errorf("add one: %w", err)
	}
	if r.RemoveOne, err = timed(FIPDocument(n)); err != nil {
		return r, fmt.Errorf("remove one: %w", err)
	}
	return r, nil
}

// OriginalNATRules renders the nat table the original appliance wrote for
// doc's floating IPs (astara-appliance drivers/iptables.py): a DNAT on the
// external interface and one per internal interface (hairpin), and an SNAT
// in PUBLIC_SNAT, for every floating IP.
func OriginalNATRules(doc *model.Document, ext string, internal []string) (string, int) {
	var b strings.Builder
	rules := 0
	b.WriteString("*nat\n:PUBLIC_SNAT - [0:0]\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	b.WriteString("-A PUBLIC_SNAT -m mark --mark 0xACDA -j RETURN\n")
	for _, f := range doc.FloatingIPs {
		fmt.Fprintf(&b, "-A PUBLIC_SNAT -s %s -j SNAT --to %s\n", f.FixedIP, f.FloatingIP)
		rules++
	}
	b.WriteString("-A PUBLIC_SNAT ! -o eth0 -j SNAT --to 172.16.255.254\n")
	for _, f := range doc.FloatingIPs {
		fmt.Fprintf(&b, "-A PREROUTING -i %s -d %s -j DNAT --to-destination %s\n", ext, f.FloatingIP, f.FixedIP)
		rules++
		for _, in := range internal {
			fmt.Fprintf(&b, "-A PREROUTING -i %s -d %s -j DNAT --to-destination %s\n", in, f.FloatingIP, f.FixedIP)
			rules++
		}
	}
	b.WriteString("-A POSTROUTING -s 10.0.0.0/16 -j PUBLIC_SNAT\n-A POSTROUTING -s 10.1.0.0/24 -j PUBLIC_SNAT\n")
	fmt.Fprintf(&b, "-A POSTROUTING -o %s -j MASQUERADE\nCOMMIT\n", ext)
	return b.String(), rules
}

// RunBaselineInNamespace times iptables-restore of the original's rules
// for n floating IPs; it must run in a fresh network namespace.
func RunBaselineInNamespace(ctx context.Context, n int, dir string) (time.Duration, int, error) {
	rules, count := OriginalNATRules(FIPDocument(n), "eth1", []string{"eth2", "eth3"})
	path := filepath.Join(dir, fmt.Sprintf("rules-%d.v4", n))
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		return 0, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "iptables-restore")
	cmd.Stdin = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("iptables-restore: %w: %s", err, stderr.String())
	}
	return time.Since(start), count, nil
}

// Print writes the results as a table with the ratios to the baseline.
func Print(w io.Writer, machine string, rows []FIPResult) {
	fmt.Fprintf(w, "appliance floating-IP apply benchmark (%s)\n", machine)
	fmt.Fprintf(w, "%8s %12s %12s %8s %12s %12s | %18s %9s %14s\n",
		"fips", "apply", "re-apply", "changes", "add one", "remove one", "iptables-restore", "(rules)", "apply speedup")
	for _, r := range rows {
		fmt.Fprintf(w, "%8d %12s %12s %8d %12s %12s | %18s %9d %13.1fx\n",
			r.FloatingIPs, ms(r.Apply), ms(r.Reapply), r.ReapplyChanges, ms(r.AddOne), ms(r.RemoveOne),
			ms(r.Baseline), r.BaselineRules, float64(r.Baseline)/float64(r.Apply))
	}
	fmt.Fprintln(w, "targets at 10000: apply < 200 ms, add/remove one < 10 ms, identical re-apply < 5 ms with 0 changes")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
