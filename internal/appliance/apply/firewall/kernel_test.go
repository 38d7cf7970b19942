package firewall

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/astara-go/astara/internal/testutil/nstest"
	"golang.org/x/sys/unix"
)

func TestKernelMatchesRuleset(t *testing.T) {
	for name, s := range goldenSpecs() {
		t.Run(name, func(t *testing.T) {
			m := newManager(t, DefaultTable)
			res := apply(t, m, s)
			if !res.Changed || !res.TableCreated || res.ChainsCreated != 6 || res.SetsCreated != 3 {
				t.Errorf("first Apply = %+v", res)
			}
			checkKernel(t, m, s)
			if m.Ruleset() != golden[name] {
				t.Error("Ruleset() is not the golden text")
			}
			converged(t, m, s)
		})
	}
}

func TestIdenticalReapply(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fullSpec()
	apply(t, m, s)
	g := kernelGen(t)
	for range 3 {
		res := apply(t, m, fullSpec()) // a new but equal Spec value
		if res.Changed || res.KernelRead || res.Messages != 0 {
			t.Errorf("identical re-apply = %+v", res)
		}
		if res.Generation != g {
			t.Errorf("result generation %d, kernel %d", res.Generation, g)
		}
	}
	if g2 := kernelGen(t); g2 != g {
		t.Errorf("identical re-apply moved the generation %d -> %d", g, g2)
	}
	// Same floating IPs in another order: still nothing to do.
	slices.Reverse(s.FloatingIPs)
	if res := apply(t, m, s); res.Changed {
		t.Errorf("reordered floating IPs = %+v", res)
	}
	checkKernel(t, m, s)
}

func TestInvalidateReadsKernelWithoutTransaction(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fipSpec(500)
	apply(t, m, s)
	m.Invalidate()
	g := kernelGen(t)
	res := apply(t, m, s)
	if !res.KernelRead || res.Changed || res.Messages != 0 {
		t.Errorf("Invalidate + Apply = %+v", res)
	}
	if g2 := kernelGen(t); g2 != g {
		t.Errorf("generation moved %d -> %d", g, g2)
	}
	// A second Manager (an agent restart) finds nothing to do either, and
	// learns the ruleset text.
	m2, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Ruleset() != "" {
		t.Error("Ruleset before Apply not empty")
	}
	res = apply(t, m2, s)
	if !res.KernelRead || res.Changed {
		t.Errorf("new Manager Apply = %+v", res)
	}
	if m2.Ruleset() != m.Ruleset() {
		t.Error("new Manager renders another ruleset")
	}
}

func TestAddRemoveOneFloatingIP(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fipSpec(1000)
	apply(t, m, s)
	g := kernelGen(t)

	s.FloatingIPs = append(s.FloatingIPs, FloatingIP{Floating: ap("198.51.100.7"), Fixed: ap("10.200.0.7")})
	res := apply(t, m, s)
	want := Result{Changed: true, ElementsAdded: 2, Messages: 2, Generation: g + 1}
	if res.Duration = 0; res != want {
		t.Errorf("add one = %+v, want %+v", res, want)
	}
	if got := nft(t, "get", "element", "inet", "astara", "fip_dnat", "{ 198.51.100.7 }"); !strings.Contains(got, "198.51.100.7 : 10.200.0.7") {
		t.Errorf("added element not in the kernel:\n%s", got)
	}
	if got := nft(t, "get", "element", "inet", "astara", "fip_snat", "{ 10.200.0.7 }"); !strings.Contains(got, "10.200.0.7 : 198.51.100.7") {
		t.Errorf("added element not in the kernel:\n%s", got)
	}

	// Remove one in the middle.
	gone := s.FloatingIPs[500]
	s.FloatingIPs = slices.Delete(s.FloatingIPs, 500, 501)
	res = apply(t, m, s)
	want = Result{Changed: true, ElementsRemoved: 2, Messages: 2, Generation: g + 2}
	if res.Duration = 0; res != want {
		t.Errorf("remove one = %+v, want %+v", res, want)
	}
	if out, err := exec.Command("nft", "get", "element", "inet", "astara", "fip_dnat", "{ "+gone.Floating.String()+" }").CombinedOutput(); err == nil {
		t.Errorf("removed element still in the kernel:\n%s", out)
	}

	// Re-point one floating IP to another fixed IP.
	s.FloatingIPs[0].Fixed = ap("10.200.0.8")
	res = apply(t, m, s)
	if res.ElementsAdded != 2 || res.ElementsRemoved != 2 || res.ChainsRewritten != 0 {
		t.Errorf("re-point = %+v", res)
	}
	checkKernel(t, m, s)
	converged(t, m, s)
}

func TestSpecChangesRewriteOnlyWhatChanged(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fullSpec()
	apply(t, m, s)

	// A new management port: only the input chain is rewritten.
	s.ManagementTCPPorts = append(s.ManagementTCPPorts, 9697)
	res := apply(t, m, s)
	if res.ChainsRewritten != 1 || res.ChainsCreated != 0 || res.ElementsAdded+res.ElementsRemoved != 0 {
		t.Errorf("new port = %+v", res)
	}
	checkKernel(t, m, s)

	// A new SNAT address: only nat_postrouting.
	s.External.SNATAddr = ap("172.16.0.20")
	if res = apply(t, m, s); res.ChainsRewritten != 1 || res.RulesRewritten != 4 {
		t.Errorf("new SNAT address = %+v", res)
	}
	checkKernel(t, m, s)

	// A new internal subnet: only the interval set (flushed and refilled;
	// 10.1.0.0/24 and 10.1.1.0/24 merge, so still 5 elements).
	s.Tenants[1].V4Subnets = append(s.Tenants[1].V4Subnets, pp("10.1.1.0/24"))
	if res = apply(t, m, s); res.ChainsRewritten != 0 || res.ElementsRemoved != 5 || res.ElementsAdded != 5 || res.Messages != 2 {
		t.Errorf("new subnet = %+v", res)
	}
	checkKernel(t, m, s)

	// Dropping the external network: floating IPs go, NAT and mark chains
	// are emptied, input loses the BGP rules.
	s.External, s.FloatingIPs = nil, nil
	if res = apply(t, m, s); res.ElementsRemoved != 4 || res.ChainsRewritten != 5 {
		t.Errorf("no external = %+v", res)
	}
	checkKernel(t, m, s)

	// Back to the full spec, then an empty one.
	apply(t, m, fullSpec())
	checkKernel(t, m, fullSpec())
	apply(t, m, Spec{})
	checkKernel(t, m, Spec{})
	converged(t, m, Spec{})
}

// handleOf finds the handle of the first rule of chain whose text contains
// substr, from nft -a.
func handleOf(t *testing.T, chain, substr string) string {
	t.Helper()
	for _, l := range strings.Split(nft(t, "-a", "list", "chain", "inet", "astara", chain), "\n") {
		if strings.Contains(l, substr) {
			if m := regexp.MustCompile(`# handle (\d+)`).FindStringSubmatch(l); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no rule %q in chain %s", substr, chain)
	return ""
}

func TestRepairsExternalChanges(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fullSpec()
	apply(t, m, s)

	cases := []struct {
		name   string
		break_ func(t *testing.T)
		check  func(t *testing.T, r Result) bool
	}{
		{"element deleted", func(t *testing.T) {
			nft(t, "delete", "element", "inet", "astara", "fip_dnat", "{ 172.16.0.10 }")
		}, func(t *testing.T, r Result) bool {
			return r.ElementsAdded == 1 && r.ElementsRemoved == 0 && r.ChainsRewritten == 0
		}},
		{"element added", func(t *testing.T) {
			nft(t, "add", "element", "inet", "astara", "fip_snat", "{ 10.0.0.66 : 172.16.0.66 }")
		}, func(t *testing.T, r Result) bool { return r.ElementsRemoved == 1 && r.ElementsAdded == 0 }},
		{"element re-pointed", func(t *testing.T) {
			nft(t, "delete", "element", "inet", "astara", "fip_dnat", "{ 172.16.0.11 }")
			nft(t, "add", "element", "inet", "astara", "fip_dnat", "{ 172.16.0.11 : 10.0.0.99 }")
		}, func(t *testing.T, r Result) bool { return r.ElementsRemoved == 1 && r.ElementsAdded == 1 }},
		{"interval element deleted", func(t *testing.T) {
			nft(t, "delete", "element", "inet", "astara", "internal_v4", "{ 10.1.0.0/24 }")
		}, func(t *testing.T, r Result) bool { return r.ElementsAdded == 5 && r.ChainsRewritten == 0 }},
		{"rule deleted", func(t *testing.T) {
			nft(t, "delete", "rule", "inet", "astara", "input", "handle", handleOf(t, "input", "dport 22"))
		}, func(t *testing.T, r Result) bool { return r.ChainsRewritten == 1 && r.ElementsAdded == 0 }},
		{"foreign rule opening the agent port", func(t *testing.T) {
			nft(t, "insert", "rule", "inet", "astara", "input", "tcp", "dport", "5000", "accept")
		}, func(t *testing.T, r Result) bool { return r.ChainsRewritten == 1 }},
		{"foreign rule with anonymous set", func(t *testing.T) {
			nft(t, "add", "rule", "inet", "astara", "nat_postrouting", "tcp", "dport", "{ 1, 2 }", "accept")
		}, func(t *testing.T, r Result) bool { return r.ChainsRewritten == 1 && r.SetsDeleted == 0 }},
		{"rules reordered", func(t *testing.T) {
			h := handleOf(t, "nat_postrouting", "meta mark")
			nft(t, "delete", "rule", "inet", "astara", "nat_postrouting", "handle", h)
			nft(t, "add", "rule", "inet", "astara", "nat_postrouting", "meta", "mark", "0x0000acda", "return")
		}, func(t *testing.T, r Result) bool { return r.ChainsRewritten == 1 && r.RulesRewritten == 4 }},
		{"chain policy changed", func(t *testing.T) {
			nft(t, "add", "chain", "inet", "astara", "input", "{ type filter hook input priority filter; policy accept; }")
		}, func(t *testing.T, r Result) bool { return r.ChainsCreated == 1 && r.ChainsRewritten == 1 }},
		{"chain priority changed", func(t *testing.T) {
			nft(t, "delete", "chain", "inet", "astara", "forward")
			nft(t, "add", "chain", "inet", "astara", "forward", "{ type filter hook forward priority 10; policy accept; }")
		}, func(t *testing.T, r Result) bool { return r.ChainsCreated == 1 }},
		{"chain deleted", func(t *testing.T) {
			nft(t, "flush", "chain", "inet", "astara", "mark_output")
			nft(t, "delete", "chain", "inet", "astara", "mark_output")
		}, func(t *testing.T, r Result) bool { return r.ChainsCreated == 1 && r.RulesRewritten == 1 }},
		{"foreign chain and set", func(t *testing.T) {
			nft(t, "add", "set", "inet", "astara", "evil", "{ type ipv4_addr; }")
			nft(t, "add", "chain", "inet", "astara", "evil_chain")
			nft(t, "add", "rule", "inet", "astara", "evil_chain", "ip", "saddr", "@evil", "accept")
			nft(t, "add", "rule", "inet", "astara", "input", "jump", "evil_chain")
		}, func(t *testing.T, r Result) bool { return r.ChainsDeleted == 1 && r.SetsDeleted == 1 }},
		{"map with another type", func(t *testing.T) {
			nft(t, "flush", "chain", "inet", "astara", "nat_prerouting")
			nft(t, "delete", "map", "inet", "astara", "fip_dnat")
			nft(t, "add", "map", "inet", "astara", "fip_dnat", "{ type ipv4_addr : inet_service; }")
		}, func(t *testing.T, r Result) bool {
			return r.SetsCreated == 1 && r.ElementsAdded == 2 && r.ChainsRewritten == 6
		}},
		{"map without size (as older versions made them)", func(t *testing.T) {
			nft(t, "flush", "chain", "inet", "astara", "nat_postrouting")
			nft(t, "delete", "map", "inet", "astara", "fip_snat")
			nft(t, "add", "map", "inet", "astara", "fip_snat", "{ type ipv4_addr : ipv4_addr; }")
			nft(t, "add", "element", "inet", "astara", "fip_snat", "{ 10.0.0.4 : 172.16.0.10, 10.0.0.5 : 172.16.0.11 }")
		}, func(t *testing.T, r Result) bool {
			return r.SetsCreated == 1 && r.ElementsAdded == 2 && r.ChainsRewritten == 6
		}},
		{"map with another size", func(t *testing.T) {
			nft(t, "flush", "chain", "inet", "astara", "nat_prerouting")
			nft(t, "delete", "map", "inet", "astara", "fip_dnat")
			nft(t, "add", "map", "inet", "astara", "fip_dnat", "{ type ipv4_addr : ipv4_addr; size 2; }")
			nft(t, "add", "element", "inet", "astara", "fip_dnat", "{ 172.16.0.10 : 10.0.0.4, 172.16.0.11 : 10.0.0.5 }")
		}, func(t *testing.T, r Result) bool {
			return r.SetsCreated == 1 && r.ElementsAdded == 2 && r.ChainsRewritten == 6
		}},
		{"map with memory policy", func(t *testing.T) {
			nft(t, "flush", "chain", "inet", "astara", "nat_prerouting")
			nft(t, "delete", "map", "inet", "astara", "fip_dnat")
			nft(t, "add", "map", "inet", "astara", "fip_dnat", "{ type ipv4_addr : ipv4_addr; size 16384; policy memory; }")
		}, func(t *testing.T, r Result) bool {
			return r.SetsCreated == 1 && r.ElementsAdded == 2 && r.ChainsRewritten == 6
		}},
		{"catch-all element", func(t *testing.T) {
			nft(t, "add", "element", "inet", "astara", "fip_snat", "{ * : 1.2.3.4 }")
		}, func(t *testing.T, r Result) bool { return r.SetsCreated == 1 && r.ElementsAdded == 2 }},
		{"table flushed", func(t *testing.T) { // rules only, not elements
			nft(t, "flush", "table", "inet", "astara")
		}, func(t *testing.T, r Result) bool { return r.ChainsRewritten == 5 && r.ElementsAdded == 0 }},
		{"set flushed", func(t *testing.T) {
			nft(t, "flush", "map", "inet", "astara", "fip_snat")
		}, func(t *testing.T, r Result) bool { return r.ElementsAdded == 2 && r.Messages == 1 }},
		{"table dormant", func(t *testing.T) {
			nft(t, "add", "table", "inet", "astara", "{ flags dormant; }")
		}, func(t *testing.T, r Result) bool { return r.Messages == 1 && !r.TableCreated }},
		{"table deleted", func(t *testing.T) {
			nft(t, "delete", "table", "inet", "astara")
		}, func(t *testing.T, r Result) bool { return r.TableCreated && r.ChainsCreated == 6 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.break_(t)
			before := kernelGen(t)
			res := apply(t, m, s)
			if !res.KernelRead || !res.Changed || res.Generation != before+1 {
				t.Errorf("Apply after %s = %+v, want a kernel read and one transaction", c.name, res)
			}
			if !c.check(t, res) {
				t.Errorf("Apply after %s did not repair as expected: %+v", c.name, res)
			}
			checkKernel(t, m, s)
			if res := apply(t, m, s); res.Changed || res.KernelRead {
				t.Errorf("Apply after repair = %+v", res)
			}
		})
	}
	if out := nft(t, "list", "table", "inet", "astara"); strings.Contains(out, "dormant") {
		t.Errorf("table still dormant:\n%s", out)
	}
}

// The transaction is a compare-and-swap on the ruleset generation: a plan
// computed against an older generation is refused as a whole.
func TestTransactionRefusedOnStaleGeneration(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fipSpec(10)
	apply(t, m, s)
	m.mu.Lock()
	stale := *m.cache
	stale.sets = map[string]*kset{}
	for name, ks := range m.cache.sets {
		c := *ks
		m := map[uint64]uint32{}
		for _, e := range ks.elems.elems() {
			m[e.k] = e.v
		}
		c.elems = elemSetOf(m)
		stale.sets[name] = &c
	}
	m.mu.Unlock()

	nft(t, "add", "element", "inet", "astara", "fip_dnat", "{ 1.1.1.1 : 10.128.0.99 }")
	s2 := fipSpec(10)
	s2.FloatingIPs = append(s2.FloatingIPs, FloatingIP{Floating: ap("1.1.1.2"), Fixed: ap("10.128.0.98")})
	d := buildSpec(t, s2)
	m.mu.Lock()
	p, err := m.plan(&stale, d)
	if err == nil {
		err = m.sock.commit(context.Background(), p.b)
	}
	m.resetSock()
	m.mu.Unlock()
	if !errors.Is(err, unix.ERESTART) {
		t.Fatalf("commit against a stale generation: %v, want ERESTART", err)
	}
	if out, err := exec.Command("nft", "get", "element", "inet", "astara", "fip_dnat", "{ 1.1.1.2 }").CombinedOutput(); err == nil {
		t.Fatalf("refused transaction applied:\n%s", out)
	}
	// Apply itself recovers: reads the kernel, removes the foreign element.
	res := apply(t, m, s)
	if !res.KernelRead || res.ElementsRemoved != 1 {
		t.Errorf("Apply = %+v", res)
	}
	checkKernel(t, m, s)
}

// Someone commits between our plan and our transaction: the kernel refuses
// it, Apply reads the kernel again and succeeds on the next attempt.
func TestApplyRetriesWhenOvertaken(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fipSpec(100)
	apply(t, m, s)
	s.FloatingIPs = s.FloatingIPs[1:]
	intrusions := 0
	m.beforeCommit = func() {
		if intrusions < 2 { // twice: the retry must handle a second one too
			intrusions++
			nft(t, "add", "element", "inet", "astara", "fip_dnat", fmt.Sprintf("{ 203.0.113.%d : 10.128.9.9 }", intrusions))
		}
	}
	res := apply(t, m, s)
	if res.Retries != 2 || !res.KernelRead || !res.Changed {
		t.Errorf("Apply = %+v, want 2 retries then success", res)
	}
	// The foreign elements are gone with the removed floating IP.
	if res.ElementsRemoved != 2+2 {
		t.Errorf("removed %d elements, want 4", res.ElementsRemoved)
	}
	m.beforeCommit = nil
	checkKernel(t, m, s)
	converged(t, m, s)

	// Overtaken on every attempt: Apply gives up with the kernel's error.
	m.beforeCommit = func() {
		nft(t, "add", "element", "inet", "astara", "fip_dnat", "{ 203.0.113.99 : 10.128.9.8 }")
		nft(t, "flush", "map", "inet", "astara", "fip_dnat")
	}
	s.FloatingIPs = s.FloatingIPs[1:]
	if _, err := m.Apply(context.Background(), s); !errors.Is(err, unix.ERESTART) {
		t.Errorf("Apply overtaken every time = %v, want ERESTART", err)
	}
	m.beforeCommit = nil
	apply(t, m, s)
	checkKernel(t, m, s)
}

// Netlink sequence numbers wrap around in the middle of a transaction.
func TestSequenceWrapAround(t *testing.T) {
	m := newManager(t, DefaultTable)
	m.mu.Lock()
	if err := m.ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A few requests read the (absent) table, then a batch of some 30
	// messages starts just before the wrap.
	m.sock.seq = ^uint32(0) - 12
	m.mu.Unlock()
	s := fipSpec(10)
	if res := apply(t, m, s); res.Messages < 20 {
		t.Fatalf("Apply = %+v", res)
	}
	m.mu.Lock()
	if seq := m.sock.seq; seq > 100 {
		t.Errorf("sequence did not wrap during the Apply (now %d)", seq)
	}
	m.mu.Unlock()
	checkKernel(t, m, s)
}

func TestInvalidSpecTouchesNothing(t *testing.T) {
	m := newManager(t, DefaultTable)
	apply(t, m, fullSpec())
	g := kernelGen(t)
	text := m.Ruleset()
	bad := fullSpec()
	bad.FloatingIPs = append(bad.FloatingIPs, FloatingIP{Floating: ap("172.16.0.10"), Fixed: ap("10.0.0.77")})
	for _, s := range []Spec{bad, {Management: []string{"waytoolonginterfacename"}}} {
		if _, err := m.Apply(context.Background(), s); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Apply(invalid) = %v", err)
		}
	}
	if g2 := kernelGen(t); g2 != g {
		t.Errorf("invalid spec moved the generation")
	}
	if m.Ruleset() != text {
		t.Error("invalid spec changed Ruleset()")
	}
}

func TestTenThousandFloatingIPs(t *testing.T) {
	m := newManager(t, DefaultTable)
	s := fipSpec(10000)
	res := apply(t, m, s)
	// 2 maps x 10000 elements in messages of at most 1000.
	if res.ElementsAdded != 20000+3 || res.Messages < 20 {
		t.Errorf("first Apply = %+v", res)
	}
	g := kernelGen(t)
	if res := apply(t, m, s); res.Changed || res.KernelRead {
		t.Errorf("re-apply = %+v", res)
	}
	if kernelGen(t) != g {
		t.Error("re-apply moved the generation")
	}
	checkKernel(t, m, s)
	converged(t, m, s)
	if n := len(regexp.MustCompile(`\d : \d`).FindAllString(m.Ruleset(), -1)); n != 20000 {
		t.Errorf("Ruleset() lists %d map elements", n)
	}
}

func TestRemove(t *testing.T) {
	m := newManager(t, DefaultTable)
	apply(t, m, fullSpec())
	if err := m.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "list", "table", "inet", "astara").CombinedOutput(); err == nil {
		t.Fatalf("table still there:\n%s", out)
	}
	if m.Ruleset() != "" {
		t.Error("Ruleset() after Remove not empty")
	}
	if err := m.Remove(context.Background()); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	// The Manager is still usable.
	res := apply(t, m, fullSpec())
	if !res.TableCreated {
		t.Errorf("Apply after Remove = %+v", res)
	}
	checkKernel(t, m, fullSpec())
}

func TestOtherTablesUntouched(t *testing.T) {
	nstest.Require(t)
	nft(t, "add", "table", "inet", "other")
	nft(t, "add", "chain", "inet", "other", "input", "{ type filter hook input priority 10; policy accept; }")
	nft(t, "add", "rule", "inet", "other", "input", "tcp", "dport", "1234", "accept")
	nft(t, "add", "set", "inet", "other", "s", "{ type ipv4_addr; }")
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", "other").Run() })
	before := nft(t, "list", "table", "inet", "other")

	m := newManager(t, "fw_test")
	s := fullSpec()
	apply(t, m, s)
	checkKernel(t, m, s)
	converged(t, m, s)
	if after := nft(t, "list", "table", "inet", "other"); after != before {
		t.Errorf("other table changed:\n%s", after)
	}
	if !strings.HasPrefix(m.Ruleset(), "table inet fw_test {") {
		t.Error("custom table name not used")
	}
	// A change elsewhere moves the generation: the next Apply reads the
	// kernel, finds our table intact and commits nothing.
	nft(t, "add", "element", "inet", "other", "s", "{ 1.2.3.4 }")
	if res := apply(t, m, s); !res.KernelRead || res.Changed {
		t.Errorf("Apply after a change in another table = %+v", res)
	}
}

func TestConcurrentApply(t *testing.T) {
	m := newManager(t, DefaultTable)
	specs := []Spec{fullSpec(), fipSpec(300), fipSpec(50), {}}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			if _, err := m.Apply(context.Background(), specs[i%len(specs)]); err != nil {
				errs <- err
			}
			_ = m.Ruleset()
			if i%7 == 0 {
				m.Invalidate()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Whatever ran last, the mirror matches the kernel.
	s := fipSpec(300)
	apply(t, m, s)
	checkKernel(t, m, s)
	converged(t, m, s)
}

// Random walks over specs: after every Apply the kernel must hold exactly
// the spec, and reading the kernel afresh must find nothing to change.
func TestRandomSpecSequence(t *testing.T) {
	m := newManager(t, DefaultTable)
	rng := rand.New(rand.NewPCG(1, 2))
	pool := manyFIPs(400)
	for step := range 25 {
		s := Spec{Management: []string{"mgt0"}, ManagementTCPPorts: []uint16{22}}
		if rng.IntN(4) > 0 {
			s.External = &External{IfName: "ext0"}
			if rng.IntN(2) == 0 {
				s.External.SNATAddr = addU32(ap("192.0.2.0"), uint32(rng.IntN(3)+1))
			}
			for _, f := range pool {
				if rng.IntN(3) == 0 {
					s.FloatingIPs = append(s.FloatingIPs, f)
				}
			}
			rng.Shuffle(len(s.FloatingIPs), func(i, j int) { s.FloatingIPs[i], s.FloatingIPs[j] = s.FloatingIPs[j], s.FloatingIPs[i] })
			if len(s.FloatingIPs) > 0 && rng.IntN(3) == 0 {
				s.FloatingIPs[0].Fixed = addU32(ap("10.250.0.0"), uint32(step))
			}
		}
		for i := range rng.IntN(4) {
			tn := Tenant{IfName: fmt.Sprintf("int%d", i), Internal: rng.IntN(3) > 0, DHCPv4: rng.IntN(2) == 0, DNS: rng.IntN(2) == 0}
			for range rng.IntN(3) {
				tn.V4Subnets = append(tn.V4Subnets, netip.PrefixFrom(addU32(ap("10.0.0.0"), uint32(rng.IntN(64))<<8), 23+rng.IntN(3)))
			}
			if tn.Internal && rng.IntN(2) == 0 {
				tn.Metadata = netip.AddrPortFrom(addU32(ap("10.0.0.1"), uint32(i)<<8), uint16(9600+i))
			}
			s.Tenants = append(s.Tenants, tn)
		}
		res := apply(t, m, s)
		t.Logf("step %d: %d fips, %d tenants: %+v", step, len(s.FloatingIPs), len(s.Tenants), res)
		checkKernel(t, m, s)
		if step%5 == 4 {
			converged(t, m, s)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestClosed(t *testing.T) {
	nstest.Require(t)
	m, err := New(Options{Table: "closed_test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(context.Background(), Spec{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v", err)
	}
	if err := m.Remove(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close = %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m2 := newManager(t, "ctx_test")
	if _, err := m2.Apply(ctx, Spec{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with canceled context = %v", err)
	}
}
