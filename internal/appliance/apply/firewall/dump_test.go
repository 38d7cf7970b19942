package firewall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The kernel dumps a set's elements in chunks (one per recvmsg), each
// starting with a walk of the set from its beginning that skips what was
// sent already. Maps without a size are rhashtables, which the kernel
// resizes, with a new hash seed, behind the reader's back: a chunk after
// that repeats some elements and misses as many others, and neither the
// ruleset generation nor NLM_F_DUMP_INTR tells. That is how a kernel read
// right after filling both maps from empty (the resize worker still
// pending) once found 183 of 2000 elements missing, and how it could miss
// an element that had to be deleted.
//
// Here the resize is forced between every two chunks of a map's dump:
// another writer's transaction inserts four times the elements the map
// holds (an rhashtable rehashes into bigger tables) and is aborted (so the
// generation does not move). With the maps' fixed-size hash tables the
// walk order does not change, and every kernel read finds exactly what
// Apply wrote, at the first attempt.
func TestKernelReadWhileMapsRehash(t *testing.T) {
	m := newManager(t, DefaultTable)
	const n = 5000
	s := fipSpec(n)
	s.MaxFloatingIPs = 5 * n // room for the other writer's elements
	apply(t, m, s)

	var mu sync.Mutex
	msgs := map[string]int{}
	m.afterElemMsg = func(set string) { // on the goroutine reading set
		mu.Lock()
		msgs[set]++
		mu.Unlock()
		if set == MapFIPDNAT || set == MapFIPSNAT {
			if err := abortedInsert(m.table, set, 4*n); err != nil {
				t.Error(err)
			}
		}
	}
	for range 3 {
		clear(msgs)
		m.Invalidate()
		g := kernelGen(t)
		res := apply(t, m, s)
		if res.Changed || !res.KernelRead {
			t.Errorf("kernel read while the maps rehash: Apply = %+v, want a kernel read and no change", res)
		}
		if g2 := kernelGen(t); g2 != g {
			t.Errorf("generation moved %d -> %d", g, g2)
		}
		// One dump of each map, in several chunks (else nothing was tested).
		for _, set := range []string{MapFIPDNAT, MapFIPSNAT} {
			if msgs[set] < 3 {
				t.Fatalf("%s dumped in %d messages (%v): want one dump of several", set, msgs[set], msgs)
			}
		}
	}
	m.afterElemMsg = nil
	checkKernel(t, m, s)
}

// abortedInsert sends a transaction that adds n elements to a map of table
// and then fails (it deletes an element that is not there), so the kernel
// inserts the elements and removes them again, without a commit.
func abortedInsert(table, set string, n int) error {
	s, err := dialNetfilter()
	if err != nil {
		return err
	}
	defer s.close()
	m := &Manager{table: table, sock: s}
	sp := setByName(set)
	adds := make([]kv, n)
	for i := range adds {
		adds[i] = kv{k: uint64(v4(ap("198.18.0.0")) + uint32(i)), v: v4(ap("192.0.2.99"))}
	}
	b := s.newBatch(0)
	m.elemMsgs(b, sp, unix.NFT_MSG_NEWSETELEM, adds)
	m.elemMsgs(b, sp, unix.NFT_MSG_DELSETELEM, []kv{{k: uint64(v4(ap("192.0.2.250")))}})
	err = s.commit(context.Background(), b)
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "delete 1 elements") {
		return fmt.Errorf("aborted insert into %s: %v, want ENOENT from its last message", set, err)
	}
	return nil
}

// A dump that lists an element twice went wrong (the set's walk order
// changed under it): it is refused, and so read again.
func TestDumpRefusesRepeatedElement(t *testing.T) {
	msg := func(keys ...string) []byte {
		var w msgBuf
		l := w.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		for _, k := range keys {
			e := w.nest(unix.NFTA_LIST_ELEM)
			kn := w.nest(unix.NFTA_SET_ELEM_KEY)
			w.u32(unix.NFTA_DATA_VALUE, v4(ap(k)))
			w.endNest(kn)
			dn := w.nest(unix.NFTA_SET_ELEM_DATA)
			w.u32(unix.NFTA_DATA_VALUE, v4(ap("10.0.0.1")))
			w.endNest(dn)
			w.endNest(e)
		}
		w.endNest(l)
		return w.b
	}
	ks := &kset{elems: newElemSet(0)}
	if err := parseElems(msg("192.0.2.1", "192.0.2.2"), ks); err != nil {
		t.Fatal(err)
	}
	if err := parseElems(msg("192.0.2.3"), ks); err != nil {
		t.Fatal(err)
	}
	if ks.elems.len() != 3 {
		t.Errorf("parsed %d elements, want 3", ks.elems.len())
	}
	// Again in a later message, as after a shift of the walk.
	if err := parseElems(msg("192.0.2.4", "192.0.2.2"), ks); !errors.Is(err, errDumpInterrupted) {
		t.Errorf("repeated element: %v, want errDumpInterrupted", err)
	}
	// Twice in one message.
	ks = &kset{elems: newElemSet(0)}
	if err := parseElems(msg("192.0.2.7", "192.0.2.7"), ks); !errors.Is(err, errDumpInterrupted) {
		t.Errorf("repeated element: %v, want errDumpInterrupted", err)
	}
}

// nftMapSizes returns the size nft reports for each map of the table (0
// for none).
func nftMapSizes(t *testing.T, table string) map[string]int {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nft(t, "-j", "list", "table", "inet", table)), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["map"]; ok {
			var m struct {
				Name string `json:"name"`
				Size int    `json:"size"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			out[m.Name] = m.Size
		}
	}
	return out
}

func TestFloatingIPCapacity(t *testing.T) {
	m := newManager(t, DefaultTable)
	ctx := context.Background()
	wantSizes := func(size int) {
		t.Helper()
		if got := nftMapSizes(t, m.table); got[MapFIPDNAT] != size || got[MapFIPSNAT] != size || len(got) != 2 {
			t.Errorf("kernel map sizes %v, want %d", got, size)
		}
	}

	s := fipSpec(10)
	apply(t, m, s)
	wantSizes(DefaultMaxFloatingIPs)
	if !strings.Contains(m.Ruleset(), fmt.Sprintf("\t\tsize %d\n", DefaultMaxFloatingIPs)) {
		t.Errorf("Ruleset() does not show the maps' size:\n%s", m.Ruleset())
	}

	// A new capacity recreates both maps, and so rewrites every chain, in
	// one transaction.
	s.MaxFloatingIPs = 10
	g := kernelGen(t)
	res := apply(t, m, s)
	if res.SetsCreated != 2 || res.ChainsRewritten != 6 || res.ElementsAdded != 20 || res.ElementsRemoved != 0 || res.Generation != g+1 {
		t.Errorf("capacity change = %+v", res)
	}
	wantSizes(10)
	checkKernel(t, m, s)
	converged(t, m, s)

	// Full: every floating IP replaced by another in one transaction.
	full := s
	full.FloatingIPs = manyFIPs(20)[10:]
	res = apply(t, m, full)
	if res.ElementsAdded != 20 || res.ElementsRemoved != 20 || res.SetsCreated != 0 || res.ChainsRewritten != 0 {
		t.Errorf("replace all at capacity = %+v", res)
	}
	checkKernel(t, m, full)

	// Beyond the capacity, or out of range: refused, nothing touched.
	g = kernelGen(t)
	over := full
	over.FloatingIPs = manyFIPs(11)
	for _, bad := range []Spec{over, {MaxFloatingIPs: -1}, {MaxFloatingIPs: MaxFloatingIPsLimit + 1}} {
		_, err := m.Apply(ctx, bad)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "MaxFloatingIPs") {
			t.Errorf("Apply(MaxFloatingIPs %d, %d floating IPs) = %v, want an invalid spec naming MaxFloatingIPs",
				bad.MaxFloatingIPs, len(bad.FloatingIPs), err)
		}
	}
	if g2 := kernelGen(t); g2 != g {
		t.Errorf("refused specs moved the generation %d -> %d", g, g2)
	}

	// Back to the default.
	full.MaxFloatingIPs = 0
	res = apply(t, m, full)
	if res.SetsCreated != 2 {
		t.Errorf("back to the default capacity = %+v", res)
	}
	wantSizes(DefaultMaxFloatingIPs)
	checkKernel(t, m, full)
	converged(t, m, full)
}
