package firewall

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

// newManager returns a Manager on a fresh table; the table is removed when
// the test ends.
func newManager(t testing.TB, table string) *Manager {
	t.Helper()
	nstest.Require(t)
	m, err := New(Options{Table: table, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	// Start from nothing, whatever an earlier test left.
	if err := m.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Remove(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return m
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func apply(t testing.TB, m *Manager, s Spec) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := m.Apply(ctx, s)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// kernelGen reads the ruleset generation on a socket of its own.
func kernelGen(t testing.TB) uint32 {
	t.Helper()
	s, err := dialNetfilter()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	g, err := s.generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// nft runs nft and returns its output; it fails the test if nft fails.
func nft(t testing.TB, args ...string) string {
	t.Helper()
	return nstest.Run(t, append([]string{"nft"}, args...)...)
}

// chainsText cuts the chain blocks out of a ruleset listing, sorted by name
// (nft lists chains in creation order, and a repair recreates some).
func chainsText(listing string) string {
	var blocks []string
	for _, b := range strings.Split(listing, "\n\n") {
		if i := strings.Index(b, "\tchain "); i >= 0 {
			b = strings.TrimSuffix(strings.TrimSuffix(b[i:], "\n"), "\n}")
			blocks = append(blocks, b+"\n")
		}
	}
	slices.Sort(blocks)
	return strings.Join(blocks, "")
}

// nftElems lists the elements of every set and map of the table as nft -j
// reports them, in the string form render uses, sorted.
func nftElems(t testing.TB, table string) map[string][]string {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nft(t, "-j", "list", "table", "inet", table)), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["set"]
		if !ok {
			raw, ok = obj["map"]
		}
		if !ok {
			continue
		}
		var set struct {
			Name string            `json:"name"`
			Elem []json.RawMessage `json:"elem"`
		}
		if err := json.Unmarshal(raw, &set); err != nil {
			t.Fatal(err)
		}
		elems := []string{}
		for _, e := range set.Elem {
			elems = append(elems, jsonElem(t, e))
		}
		slices.Sort(elems)
		out[set.Name] = elems
	}
	return out
}

func jsonElem(t testing.TB, e json.RawMessage) string {
	var s string
	if json.Unmarshal(e, &s) == nil {
		return s
	}
	var pair []json.RawMessage
	if json.Unmarshal(e, &pair) == nil && len(pair) == 2 {
		return jsonElem(t, pair[0]) + " : " + jsonElem(t, pair[1])
	}
	var obj struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(e, &obj); err != nil {
		t.Fatalf("element %s: %v", e, err)
	}
	switch {
	case obj.Prefix != nil:
		return fmt.Sprintf("%s/%d", obj.Prefix.Addr, obj.Prefix.Len)
	case len(obj.Range) == 2:
		return obj.Range[0] + "-" + obj.Range[1]
	}
	t.Fatalf("unknown element %s", e)
	return ""
}

// wantElems is what nftElems should report for a spec.
func wantElems(t testing.TB, s Spec) map[string][]string {
	t.Helper()
	d := buildSpec(t, s)
	dn, sn := fipElems(s.FloatingIPs)
	out := map[string][]string{SetInternalV4: intervalStrings(kvs(d.intervals))}
	for name, m := range map[string]map[uint64]uint32{MapFIPDNAT: dn, MapFIPSNAT: sn} {
		l := []string{}
		for k, v := range m {
			l = append(l, v4Addr(uint32(k)).String()+" : "+v4Addr(v).String())
		}
		out[name] = l
	}
	for _, l := range out {
		slices.Sort(l)
	}
	if out[SetInternalV4] == nil {
		out[SetInternalV4] = []string{}
	}
	return out
}

// buildSpec validates and builds a spec.
func buildSpec(t testing.TB, s Spec) *desired {
	t.Helper()
	pairs, err := validate(&s)
	if err != nil {
		t.Fatal(err)
	}
	d, err := build(&s, pairs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkKernel verifies the kernel holds exactly what s asks for: chains as
// nft prints them equal the rendered golden form, and every element.
func checkKernel(t testing.TB, m *Manager, s Spec) {
	t.Helper()
	want, err := renderSpec(m.table, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Ruleset(); got != want {
		t.Errorf("Ruleset() differs from the spec's rendering:\n%s", lineDiff(want, got))
	}
	listing := nft(t, "list", "table", "inet", m.table)
	if got, want := chainsText(listing), chainsText(want); got != want {
		t.Errorf("kernel chains (nft list) differ from the rendered ones:\n%s", lineDiff(want, got))
	}
	gotElems, wantE := nftElems(t, m.table), wantElems(t, s)
	for name, w := range wantE {
		if g := gotElems[name]; !slices.Equal(g, w) {
			t.Errorf("set %s: kernel has %d elements %v, want %d %v", name, len(g), head(g), len(w), head(w))
		}
	}
	if len(gotElems) != len(wantE) {
		t.Errorf("kernel has sets %v", keys(gotElems))
	}
}

// converged checks that the mirror was right: reading the kernel afresh
// finds nothing to change.
func converged(t testing.TB, m *Manager, s Spec) {
	t.Helper()
	m.Invalidate()
	g := kernelGen(t)
	res := apply(t, m, s)
	if res.Changed || !res.KernelRead {
		t.Errorf("after Invalidate, Apply = %+v, want a kernel read and no change", res)
	}
	if g2 := kernelGen(t); g2 != g {
		t.Errorf("generation moved %d -> %d", g, g2)
	}
}

func head(l []string) []string {
	if len(l) > 6 {
		return append(slices.Clone(l[:6]), "...")
	}
	return l
}

func keys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// manyFIPs returns n floating IPs 100.64.0.0+i -> 10.128.0.0+i (fixed IPs
// inside 10.128.0.0/9, the internal subnet of fipSpec).
func manyFIPs(n int) []FloatingIP {
	out := make([]FloatingIP, n)
	for i := range out {
		out[i] = FloatingIP{Floating: addU32(ap("100.64.0.0"), uint32(i)+1), Fixed: addU32(ap("10.128.0.0"), uint32(i)+1)}
	}
	return out
}

func addU32(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+n)
	return netip.AddrFrom4(b)
}

func fipSpec(n int) Spec {
	return Spec{
		Management:         []string{"mgt0"},
		ManagementTCPPorts: []uint16{22, 5000},
		External:           &External{IfName: "ext0", SNATAddr: ap("192.0.2.1")},
		Tenants:            []Tenant{{IfName: "int0", Internal: true, V4Subnets: []netip.Prefix{pp("10.128.0.0/9")}, DHCPv4: true}},
		FloatingIPs:        manyFIPs(n),
	}
}
