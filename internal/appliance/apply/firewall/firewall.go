// Package firewall owns the appliance's firewall and NAT: one nftables table
// (default "inet astara") in the process's current network namespace, made
// to match a desired Spec in one atomic transaction per Apply that touches
// the kernel only where it differs.
//
// Apply diffs the desired ruleset against the kernel. The kernel's state is
// read by netlink dumps (table, chains, rules, sets, every map element) and
// then mirrored in memory together with the nftables ruleset generation id.
// While the kernel's generation still equals the mirror's, nobody else has
// committed anything and the diff is computed against the mirror in
// O(changes); otherwise (first Apply, someone ran nft or iptables-nft,
// Invalidate) the kernel is read again. Every transaction carries the
// generation it was computed against (NFNL_BATCH_GENID), so the kernel
// refuses it if the ruleset moved in between, and Apply starts over.
//
// Rules are identified by a hash of their definition stored in their user
// data; a chain whose sequence of rule ids differs is flushed and refilled.
// Set and map elements are added and deleted one by one, at most 1000 per
// netlink message, all in the one transaction.
//
// # The ruleset
//
// The original appliance wrote iptables-restore files; this is its
// behaviour in nftables, with its holes fixed (see Spec for the inputs):
//
//   - chain input (filter, policy drop): accepts lo, established/related,
//     ICMP echo-request and all ICMPv6; the ManagementTCPPorts on the
//     management interfaces only; DHCP (udp 67), DHCPv6 (udp 547, the
//     server port; the original opened 546) and DNS (udp+tcp 53) on the
//     tenant interfaces that ask for it; TCP to the metadata proxy
//     (Tenant.Metadata) on its interface; TCP 179 from the BGP peers on the
//     external interface. Unlike the original, tenant interfaces are not
//     accepted wholesale: a VM cannot reach the agent API.
//   - chain forward (filter, policy accept, no rules).
//   - chains mark_prerouting and mark_output (filter, priority raw) set the
//     packet mark 0xACDA ("do not SNAT", as in the original) on IPv4
//     traffic entering from the external interface, traffic whose original
//     destination (before DNAT) is an internal subnet, and router-originated
//     traffic. Without an external network these chains, like the floating IP
//     and SNAT rules, stay empty.
//   - chain nat_prerouting (nat, dstnat): metadata DNAT of
//     169.254.169.254:80 per internal interface, and floating IP DNAT
//     through map fip_dnat on the external and every internal interface
//     (hairpin).
//   - chain nat_postrouting (nat, srcnat): returns for marked traffic and
//     traffic leaving by a management interface; then, for sources in set
//     internal_v4, SNAT through map fip_snat (a failed lookup ends the
//     rule) and else to External.SNATAddr.
//   - set internal_v4 (ipv4_addr, interval): the internal networks'
//     subnets, merged; maps fip_dnat and fip_snat (ipv4_addr : ipv4_addr,
//     size Spec.MaxFloatingIPs: fixed-size hash tables, see readKernel).
//
// No IPv6 NAT. Interfaces are matched by name (iifname/oifname), so the
// ruleset may be applied before the interfaces exist.
package firewall

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultTable is the name of the inet table used when Options.Table is empty.
const DefaultTable = "astara"

// maxElemsPerMsg bounds the elements of one NEWSETELEM/DELSETELEM message:
// netlink attribute lengths are 16 bits.
const maxElemsPerMsg = 1000

// maxCommitAttempts bounds how often Apply starts over when another writer
// committed between our read of the ruleset and our transaction.
const maxCommitAttempts = 5

// ErrClosed is returned by methods of a closed Manager.
var ErrClosed = errors.New("firewall manager closed")

// Options configures a Manager.
type Options struct {
	// Table is the name of the inet table to own; DefaultTable if empty.
	Table string
	// Logger receives debug logs; nothing is logged if nil.
	Logger *slog.Logger
}

// Result says what an Apply did.
type Result struct {
	// Changed is true when a transaction was committed.
	Changed bool
	// KernelRead is true when the kernel's ruleset was read (slow path):
	// no valid mirror, or the ruleset generation had moved.
	KernelRead bool
	// TableCreated is true when the table did not exist.
	TableCreated bool
	// ChainsCreated counts chains created, including recreated ones.
	ChainsCreated int
	// ChainsDeleted counts chains deleted that are not ours (or obsolete).
	ChainsDeleted int
	// ChainsRewritten counts chains flushed and refilled (or filled anew).
	ChainsRewritten int
	// RulesRewritten counts the rules written by those chain rewrites.
	RulesRewritten int
	// SetsCreated counts sets and maps created, including recreated ones.
	SetsCreated int
	// SetsDeleted counts sets and maps deleted that are not ours.
	SetsDeleted int
	// ElementsAdded counts set and map elements added.
	ElementsAdded int
	// ElementsRemoved counts set and map elements deleted (or flushed).
	ElementsRemoved int
	// Messages is the number of netlink messages in the transaction.
	Messages int
	// Retries counts transactions the kernel refused because another
	// writer changed the ruleset first.
	Retries int
	// Generation is the nftables ruleset generation the table is known to
	// match after Apply.
	Generation uint32
	// Duration is the wall time of Apply.
	Duration time.Duration
}

// Manager owns one nftables table. Its methods are safe for concurrent use;
// Apply, Remove and Invalidate are serialized.
type Manager struct {
	table string
	log   *slog.Logger

	mu     sync.Mutex
	sock   *nlSock
	aux    []*nlSock    // for concurrent dumps (see readKernel)
	cache  *kernelState // mirror of the kernel's table; nil when unknown
	memo   ruleMemo
	closed bool

	// beforeCommit, if set (by tests), runs between planning and committing.
	beforeCommit func()
	// afterElemMsg, if set (by tests), runs after each message of a dump of
	// a set's elements, with the set's name; concurrently for several sets.
	afterElemMsg func(set string)

	snap atomic.Pointer[snapshot]
}

// snapshot is an applied state, rendered to text at most once, on demand.
// It references the desired state the kernel was made to match, which
// nothing modifies after build.
type snapshot struct {
	table string
	d     *desired
	once  sync.Once
	text  string
}

func (s *snapshot) render() string {
	s.once.Do(func() {
		s.text = render(s.table, s.d.sets, s.d.chains, func(name string) []kv {
			switch name {
			case SetInternalV4:
				return kvs(s.d.intervals)
			}
			out := make([]kv, len(s.d.pairs))
			for i, p := range s.d.pairs {
				if name == MapFIPDNAT {
					out[i] = kv{uint64(p.f), p.x}
				} else {
					out[i] = kv{uint64(p.x), p.f}
				}
			}
			return out
		})
	})
	return s.text
}

// New returns a Manager for the current network namespace. It opens a
// netfilter netlink socket and checks that nftables answers; it does not
// touch the ruleset.
func New(opts Options) (*Manager, error) {
	table := opts.Table
	if table == "" {
		table = DefaultTable
	}
	if len(table) > 255 || !validObjName(table) {
		return nil, fmt.Errorf("firewall: invalid table name %q", table)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{table: table, log: log.With("table", "inet "+table), memo: ruleMemo{}}
	var err error
	if m.sock, err = dialNetfilter(); err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.sock.generation(ctx); err != nil {
		_ = m.sock.close()
		return nil, fmt.Errorf("firewall: nftables unavailable: %w", err)
	}
	return m, nil
}

func validObjName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Table returns the name of the inet table the Manager owns.
func (m *Manager) Table() string { return m.table }

// Ruleset returns the applied ruleset in nft syntax ("" before any Apply and
// after Remove). Apply keeps a snapshot of what it applied; the text is
// rendered from it on the first call and cached, so polling is cheap. It
// does not wait for a running Apply and does not touch the kernel.
func (m *Manager) Ruleset() string {
	if s := m.snap.Load(); s != nil {
		return s.render()
	}
	return ""
}

// Invalidate forgets what the Manager knows of the kernel: the next Apply
// reads the kernel's ruleset.
func (m *Manager) Invalidate() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache = nil
}

// Close releases the netlink socket. The table stays in the kernel.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.cache = nil
	var errs []error
	for _, s := range append([]*nlSock{m.sock}, m.aux...) {
		if s != nil {
			errs = append(errs, s.close())
		}
	}
	m.sock, m.aux = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("firewall: close netlink sockets: %w", err)
	}
	return nil
}

// ready checks the Manager is usable and (re)opens the socket if a failed
// operation dropped it.
func (m *Manager) ready(ctx context.Context) error {
	if m.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.sock == nil {
		s, err := dialNetfilter()
		if err != nil {
			return err
		}
		m.sock = s
	}
	return nil
}

// resetSock drops the sockets after a failure: replies still in flight must
// not be read by the next operation. The mirror is dropped too.
func (m *Manager) resetSock() {
	m.cache = nil
	if m.sock != nil {
		_ = m.sock.close()
		m.sock = nil
	}
	for _, s := range m.aux {
		if s != nil {
			_ = s.close()
		}
	}
	m.aux = nil
}

// Remove deletes the table (and so every rule, set and map in it).
func (m *Manager) Remove(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ready(ctx); err != nil {
		return fmt.Errorf("firewall: remove table inet %s: %w", m.table, err)
	}
	b := m.sock.newBatch(0)
	w := b.add(m.sock, unix.NFT_MSG_DELTABLE, 0, "delete table inet "+m.table)
	w.str(unix.NFTA_TABLE_NAME, m.table)
	b.done()
	err := m.sock.commit(ctx, b)
	m.cache = nil
	m.snap.Store(nil)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		m.resetSock()
		return fmt.Errorf("firewall: remove table inet %s: %w", m.table, err)
	}
	m.log.Debug("table removed")
	return nil
}

// Apply makes the table match s, in at most one committed transaction.
// An invalid Spec is refused (wrapping ErrInvalidSpec) before anything is
// sent to the kernel.
func (m *Manager) Apply(ctx context.Context, s Spec) (Result, error) {
	start := time.Now()
	pairs, err := validate(&s)
	if err != nil {
		return Result{}, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := build(&s, pairs, m.memo)
	if err != nil {
		return Result{}, fmt.Errorf("firewall: %w", err)
	}
	var res Result
	for attempt := 1; ; attempt++ {
		if err := m.ready(ctx); err != nil {
			return res, fmt.Errorf("firewall: apply: %w", err)
		}
		gen, err := m.sock.generation(ctx)
		if err != nil {
			m.resetSock()
			return res, fmt.Errorf("firewall: apply: %w", err)
		}
		if m.cache == nil || m.cache.genid != gen {
			if m.cache != nil {
				m.log.Debug("nftables ruleset changed by someone else, reading it", "known", m.cache.genid, "now", gen)
			}
			t0 := time.Now()
			k, err := m.readKernel(ctx, d.sets)
			if err != nil {
				m.resetSock()
				return res, fmt.Errorf("firewall: apply: %w", err)
			}
			m.cache = k
			res.KernelRead = true
			m.log.Debug("read kernel ruleset", "generation", k.genid, "chains", len(k.chains), "sets", len(k.sets), "took", time.Since(t0))
		}

		p, err := m.plan(m.cache, d)
		if err != nil {
			return res, fmt.Errorf("firewall: apply: %w", err)
		}
		if p.b.len() == 0 {
			m.cache.fipInverse = true // the maps are the desired ones
			res.Generation = m.cache.genid
			if m.snap.Load() == nil {
				m.storeSnapshot(d)
			}
			res.Duration = time.Since(start)
			m.log.Debug("firewall up to date", "generation", res.Generation, "kernel_read", res.KernelRead, "took", res.Duration)
			return res, nil
		}

		if m.beforeCommit != nil {
			m.beforeCommit()
		}
		err = m.sock.commit(ctx, p.b)
		if err != nil {
			m.resetSock()
			if errors.Is(err, unix.ERESTART) && attempt < maxCommitAttempts {
				res.Retries++
				m.log.Debug("nftables ruleset changed before our transaction, starting over", "attempt", attempt)
				continue
			}
			return res, fmt.Errorf("firewall: apply: %w", err)
		}
		m.install(p)
		p.counts.KernelRead, p.counts.Retries = res.KernelRead, res.Retries
		res = p.counts
		res.Changed = true
		res.Messages = p.b.len()
		res.Generation = m.cache.genid
		m.storeSnapshot(d)
		res.Duration = time.Since(start)
		m.log.Debug("firewall applied", "generation", res.Generation, "messages", res.Messages,
			"chains_rewritten", res.ChainsRewritten, "elements_added", res.ElementsAdded,
			"elements_removed", res.ElementsRemoved, "kernel_read", res.KernelRead, "took", res.Duration)
		return res, nil
	}
}

// storeSnapshot records the applied state for Ruleset: the kernel now holds
// exactly d.
func (m *Manager) storeSnapshot(d *desired) { m.snap.Store(&snapshot{table: m.table, d: d}) }

// ---------------------------------------------------------------- planning

// plan is a transaction and how to update the mirror once it committed.
type plan struct {
	b      *batch
	counts Result

	delChains []string
	setChains []*chain // chains whose rules are now exactly these
	delSets   []string
	sets      []setChange
}

type setChange struct {
	spec  setSpec
	fresh bool // the set was created or flushed: start from empty
	dels  []uint64
	adds  []kv
}

type kv struct {
	k uint64
	v uint32
}

// action is what a plan does to one chain or set.
type action int

const (
	keep     action = iota
	create          // absent: create (and fill)
	recreate        // differs in type/hook/priority/policy/key: delete, create, fill
	rewrite         // a chain whose rules differ: flush and refill
)

// plan computes the transaction turning k into d.
func (m *Manager) plan(k *kernelState, d *desired) (*plan, error) {
	s := m.sock
	p := &plan{b: s.newBatch(k.genid)}
	b := p.b
	tbl := m.table

	if !k.table || k.tableFlags != 0 {
		w := b.add(s, unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, "add table inet "+tbl)
		w.str(unix.NFTA_TABLE_NAME, tbl)
		w.u32(unix.NFTA_TABLE_FLAGS, 0)
		b.done()
		p.counts.TableCreated = !k.table
	}

	// Sets: unknown ones go; ours are recreated if their type differs.
	// Dropping or recreating a set requires that no rule uses it, so then
	// every chain is flushed first (and refilled).
	flushAll := false
	var delSets []string
	setAct := make(map[string]action, len(d.sets))
	for name := range k.sets {
		if !isOurSet(name) {
			delSets = append(delSets, name)
			flushAll = true
		}
	}
	slices.Sort(delSets)
	for _, sp := range d.sets {
		ks := k.sets[sp.name]
		want := sp
		want.id = 0
		switch {
		case ks == nil:
			setAct[sp.name] = create
		case ks.spec != want || ks.broken || ks.elems == nil:
			// elems is nil when they were not read (the set differed
			// from the one wanted then): their state is unknown.
			setAct[sp.name] = recreate
			flushAll = true
		default:
			setAct[sp.name] = keep
		}
	}

	var delChains []string
	for name := range k.chains {
		if !slices.ContainsFunc(d.chains, func(c *chain) bool { return c.name == name }) {
			delChains = append(delChains, name)
		}
	}
	slices.Sort(delChains)
	act := make([]action, len(d.chains))
	for i, c := range d.chains {
		kc := k.chains[c.name]
		switch {
		case kc == nil:
			act[i] = create
		case !kc.base || kc.spec != c.chainSpec:
			act[i] = recreate
		case flushAll || !sameIDs(kc.ids, c.rules):
			act[i] = rewrite
		}
	}

	// 1. Flush every chain that is deleted, recreated or rewritten.
	flush := func(name string) {
		w := b.add(s, unix.NFT_MSG_DELRULE, 0, "flush chain "+name)
		w.str(unix.NFTA_RULE_TABLE, tbl)
		w.str(unix.NFTA_RULE_CHAIN, name)
		b.done()
	}
	for _, name := range delChains {
		if len(k.chains[name].ids) > 0 {
			flush(name)
		}
	}
	for i, c := range d.chains {
		if (act[i] == recreate || act[i] == rewrite) && len(k.chains[c.name].ids) > 0 {
			flush(c.name)
		}
	}
	// 2. Delete chains and sets.
	delChain := func(name string) {
		w := b.add(s, unix.NFT_MSG_DELCHAIN, 0, "delete chain "+name)
		w.str(unix.NFTA_CHAIN_TABLE, tbl)
		w.str(unix.NFTA_CHAIN_NAME, name)
		b.done()
	}
	for _, name := range delChains {
		delChain(name)
		p.counts.ChainsDeleted++
	}
	for i, c := range d.chains {
		if act[i] == recreate {
			delChain(c.name)
		}
	}
	delSet := func(name string) {
		w := b.add(s, unix.NFT_MSG_DELSET, 0, "delete set "+name)
		w.str(unix.NFTA_SET_TABLE, tbl)
		w.str(unix.NFTA_SET_NAME, name)
		b.done()
	}
	for _, name := range delSets {
		delSet(name)
		p.counts.SetsDeleted++
	}
	for _, sp := range d.sets {
		if setAct[sp.name] == recreate {
			delSet(sp.name)
		}
	}
	// 3. Create sets and chains.
	for _, sp := range d.sets {
		if a := setAct[sp.name]; a == create || a == recreate {
			w := b.add(s, unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, "add set "+sp.name)
			w.str(unix.NFTA_SET_TABLE, tbl)
			w.str(unix.NFTA_SET_NAME, sp.name)
			w.u32(unix.NFTA_SET_FLAGS, sp.flags)
			w.u32(unix.NFTA_SET_KEY_TYPE, sp.keyType)
			w.u32(unix.NFTA_SET_KEY_LEN, sp.keyLen)
			if sp.flags&unix.NFT_SET_MAP != 0 {
				w.u32(unix.NFTA_SET_DATA_TYPE, sp.dataType)
				w.u32(unix.NFTA_SET_DATA_LEN, sp.dataLen)
			}
			if sp.size > 0 {
				desc := w.nest(unix.NFTA_SET_DESC)
				w.u32(unix.NFTA_SET_DESC_SIZE, sp.size)
				w.endNest(desc)
			}
			w.u32(unix.NFTA_SET_ID, sp.id)
			b.done()
			p.counts.SetsCreated++
		}
	}
	for i, c := range d.chains {
		if act[i] == create || act[i] == recreate {
			w := b.add(s, unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add chain "+c.name)
			w.str(unix.NFTA_CHAIN_TABLE, tbl)
			w.str(unix.NFTA_CHAIN_NAME, c.name)
			h := w.nest(unix.NFTA_CHAIN_HOOK)
			w.u32(unix.NFTA_HOOK_HOOKNUM, c.hook)
			w.u32(unix.NFTA_HOOK_PRIORITY, uint32(c.prio))
			w.endNest(h)
			w.u32(unix.NFTA_CHAIN_POLICY, c.policy)
			w.str(unix.NFTA_CHAIN_TYPE, c.typ)
			b.done()
			p.counts.ChainsCreated++
		}
	}

	// 4. Elements.
	current := func(name string) *elemSet {
		if setAct[name] == keep {
			return k.sets[name].elems
		}
		return newElemSet(0)
	}
	// The interval set is small: refill it whole when it differs.
	if cur := current(SetInternalV4); !cur.equal(d.intervals) {
		sc := setChange{spec: d.set(SetInternalV4), fresh: true}
		if cur.len() > 0 {
			w := b.add(s, unix.NFT_MSG_DELSETELEM, 0, "flush set "+SetInternalV4)
			w.str(unix.NFTA_SET_ELEM_LIST_TABLE, tbl)
			w.str(unix.NFTA_SET_ELEM_LIST_SET, SetInternalV4)
			b.done()
			p.counts.ElementsRemoved += cur.len()
		}
		sc.adds = make([]kv, 0, len(d.intervals))
		for key := range d.intervals {
			sc.adds = append(sc.adds, kv{k: key})
		}
		// In address order, an interval's end before the next one's start,
		// as nft sends them (the kernel checks overlaps as they arrive).
		slices.SortFunc(sc.adds, func(a, b kv) int {
			ka, fa := keyOf(a.k)
			kb, fb := keyOf(b.k)
			if ka != kb {
				return cmp.Compare(ka, kb)
			}
			return cmp.Compare(fb, fa)
		})
		m.elemMsgs(b, sc.spec, unix.NFT_MSG_NEWSETELEM, sc.adds)
		p.counts.ElementsAdded += len(sc.adds)
		p.sets = append(p.sets, sc)
	} else if setAct[SetInternalV4] != keep {
		p.sets = append(p.sets, setChange{spec: d.set(SetInternalV4), fresh: true})
	}
	// The floating IP maps: only the difference.
	fd, err := diffFIPs(d.pairs, d.fips, current(MapFIPDNAT), current(MapFIPSNAT), k.fipInverse)
	if err != nil {
		return nil, err
	}
	for _, c := range []setChange{
		{spec: d.set(MapFIPDNAT), dels: fd.dnDels, adds: fd.dnAdds, fresh: setAct[MapFIPDNAT] != keep},
		{spec: d.set(MapFIPSNAT), dels: fd.snDels, adds: fd.snAdds, fresh: setAct[MapFIPSNAT] != keep},
	} {
		dels := make([]kv, len(c.dels))
		for i, key := range c.dels {
			dels[i] = kv{k: key}
		}
		m.elemMsgs(b, c.spec, unix.NFT_MSG_DELSETELEM, dels)
		m.elemMsgs(b, c.spec, unix.NFT_MSG_NEWSETELEM, c.adds)
		p.counts.ElementsRemoved += len(c.dels)
		p.counts.ElementsAdded += len(c.adds)
		p.sets = append(p.sets, c)
	}

	// 5. Fill the chains.
	for i, c := range d.chains {
		if act[i] == keep {
			continue
		}
		for _, r := range c.rules {
			w := b.add(s, unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, "add rule "+c.name+" "+r.text)
			w.str(unix.NFTA_RULE_TABLE, tbl)
			w.str(unix.NFTA_RULE_CHAIN, c.name)
			e := w.nest(unix.NFTA_RULE_EXPRESSIONS)
			w.b = append(w.b, r.exprs...)
			w.endNest(e)
			w.attr(unix.NFTA_RULE_USERDATA, r.userData())
			b.done()
		}
		p.counts.ChainsRewritten++
		p.counts.RulesRewritten += len(c.rules)
		p.setChains = append(p.setChains, c)
	}
	p.delChains, p.delSets = delChains, delSets
	if b.w.err != nil {
		return nil, fmt.Errorf("encode transaction: %w", b.w.err)
	}
	return p, nil
}

func sameIDs(ids []ruleID, rules []*rule) bool {
	if len(ids) != len(rules) {
		return false
	}
	for i, r := range rules {
		if ids[i] != r.id {
			return false
		}
	}
	return true
}

// elemMsgs adds or deletes elements, at most maxElemsPerMsg per message.
// Every element has the same layout, so it is written from a template.
func (m *Manager) elemMsgs(b *batch, sp setSpec, msg int, elems []kv) {
	verb := map[int]string{unix.NFT_MSG_NEWSETELEM: "add", unix.NFT_MSG_DELSETELEM: "delete"}[msg]
	var flags uint16
	if msg == unix.NFT_MSG_NEWSETELEM {
		flags = unix.NLM_F_CREATE
	}
	withData := sp.flags&unix.NFT_SET_MAP != 0 && msg == unix.NFT_MSG_NEWSETELEM
	// LIST_ELEM { KEY { VALUE u32 } [DATA { VALUE u32 }] [FLAGS u32] }
	var tmpl msgBuf
	el := tmpl.nest(unix.NFTA_LIST_ELEM)
	kn := tmpl.nest(unix.NFTA_SET_ELEM_KEY)
	tmpl.u32(unix.NFTA_DATA_VALUE, 0)
	keyOff := len(tmpl.b) - 4
	tmpl.endNest(kn)
	dataOff := -1
	if withData {
		dn := tmpl.nest(unix.NFTA_SET_ELEM_DATA)
		tmpl.u32(unix.NFTA_DATA_VALUE, 0)
		dataOff = len(tmpl.b) - 4
		tmpl.endNest(dn)
	}
	tmpl.endNest(el)
	plain := tmpl.b
	for len(elems) > 0 {
		chunk := elems[:min(len(elems), maxElemsPerMsg)]
		elems = elems[len(chunk):]
		w := b.add(m.sock, msg, flags, fmt.Sprintf("%s %d elements of %s", verb, len(chunk), sp.name))
		w.str(unix.NFTA_SET_ELEM_LIST_TABLE, m.table)
		w.str(unix.NFTA_SET_ELEM_LIST_SET, sp.name)
		w.u32(unix.NFTA_SET_ELEM_LIST_SET_ID, sp.id)
		l := w.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		for _, e := range chunk {
			key, eflags := keyOf(e.k)
			if eflags != 0 { // interval ends: rare, written in full
				off := w.nest(unix.NFTA_LIST_ELEM)
				n := w.nest(unix.NFTA_SET_ELEM_KEY)
				w.u32(unix.NFTA_DATA_VALUE, key)
				w.endNest(n)
				w.u32(unix.NFTA_SET_ELEM_FLAGS, eflags)
				w.endNest(off)
				continue
			}
			at := len(w.b)
			w.b = append(w.b, plain...)
			binary.BigEndian.PutUint32(w.b[at+keyOff:], key)
			if dataOff >= 0 {
				binary.BigEndian.PutUint32(w.b[at+dataOff:], e.v)
			}
		}
		w.endNest(l)
		b.done()
	}
}

// install updates the mirror after the plan's transaction committed.
func (m *Manager) install(p *plan) {
	k := m.cache
	k.table, k.tableFlags = true, 0
	for _, name := range p.delChains {
		delete(k.chains, name)
	}
	for _, c := range p.setChains {
		ids := make([]ruleID, len(c.rules))
		for i, r := range c.rules {
			ids[i] = r.id
		}
		k.chains[c.name] = &kchain{spec: c.chainSpec, base: true, ids: ids, rules: c.rules}
	}
	for _, name := range p.delSets {
		delete(k.sets, name)
	}
	for _, sc := range p.sets {
		ks := k.sets[sc.spec.name]
		if sc.fresh {
			spec := sc.spec
			spec.id = 0
			ks = &kset{spec: spec, elems: newElemSet(len(sc.adds))}
			k.sets[sc.spec.name] = ks
		}
		for _, key := range sc.dels {
			ks.elems.del(key)
		}
		for _, e := range sc.adds {
			ks.elems.put(e.k, e.v)
		}
	}
	k.genid = nextGen(k.genid)
	k.fipInverse = true
}

// nextGen is the generation after one commit: the kernel skips 0.
func nextGen(g uint32) uint32 {
	g++
	if g == 0 {
		g++
	}
	return g
}
