package firewall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// kernelState is what the kernel holds in our table, as far as the diff
// needs it. It is either read from the kernel or maintained as a mirror of
// what we committed; genid is the ruleset generation it is valid at.
type kernelState struct {
	genid      uint32
	table      bool
	tableFlags uint32
	chains     map[string]*kchain
	sets       map[string]*kset
	// fipInverse: the fip_snat elements are exactly the inverse of the
	// fip_dnat ones. Not assumed after a kernel read; true after every
	// successful Apply (the kernel then holds the desired maps).
	fipInverse bool
}

type kchain struct {
	spec  chainSpec
	base  bool     // a base chain (has a hook); ours always are
	ids   []ruleID // rule ids in order; the zero id for rules that are not ours
	rules []*rule  // the rules themselves when known (after our commit)
}

type kset struct {
	spec   setSpec // id is always 0
	elems  *elemSet
	broken bool // holds elements we cannot represent (e.g. a catch-all): recreate
}

func newKernelState() *kernelState {
	return &kernelState{chains: map[string]*kchain{}, sets: map[string]*kset{}}
}

const maxReadAttempts = 5

// readKernel dumps the table; want are the sets Apply wants, whose elements
// are read if the kernel's sets match them. The dump is retried if the
// ruleset generation moved while it ran, so the result is a consistent
// snapshot at genid.
//
// The kernel dumps a set's elements in chunks, one per recvmsg, and starts
// each chunk by walking the set from its beginning and skipping as many
// elements as it has already sent. That is only sound while the walk order
// does not change, and a commit (which moves the generation, so we read
// again) is not the only thing that changes it:
//
//   - A set of our maps' kind without a size is an rhashtable
//     (nft_set_rhash), which a kernel worker resizes, with a new hash seed,
//     some time after it grew or shrank past a threshold: typically while
//     we read it right after our own transaction filled it, when the worker
//     ran late. A chunk after the resize repeats some elements and skips as
//     many others, while neither the generation nor NLM_F_DUMP_INTR tells.
//     Our maps therefore have a size (Spec.MaxFloatingIPs), which makes the
//     kernel back them by a fixed-size hash table (nft_set_hash_fast) that
//     never moves its elements; the interval set is an rbtree, walked in
//     key order. A map without our size is recreated anyway, so its
//     elements are not read.
//   - Another writer's transaction inserts its new elements when the kernel
//     receives it, before it commits, and removes them again if it aborts
//     (neither moves the generation). An element inserted before the
//     walk's position makes the next chunk repeat one: dumpElems refuses a
//     dump that lists a key twice, and the table is read again. One removed
//     before it makes the next chunk skip one, which nothing tells: that
//     takes a transaction on our sets that started before the dump and
//     aborted during it (nft has the same limit).
func (m *Manager) readKernel(ctx context.Context, want []setSpec) (*kernelState, error) {
	for attempt := 1; ; attempt++ {
		g1, err := m.sock.generation(ctx)
		if err != nil {
			return nil, err
		}
		k, err := m.dumpTable(ctx, want)
		if err != nil && !errors.Is(err, errDumpInterrupted) {
			return nil, fmt.Errorf("read table inet %s: %w", m.table, err)
		}
		if err == nil {
			g2, err := m.sock.generation(ctx)
			if err != nil {
				return nil, err
			}
			if g1 == g2 {
				k.genid = g1
				return k, nil
			}
		}
		if attempt == maxReadAttempts {
			return nil, fmt.Errorf("read table inet %s: ruleset kept changing during %d reads", m.table, attempt)
		}
		m.log.Debug("nftables ruleset changed while reading it, retrying", "attempt", attempt, "error", err)
	}
}

func (m *Manager) dumpTable(ctx context.Context, want []setSpec) (*kernelState, error) {
	s := m.sock
	k := newKernelState()
	err := s.request(ctx, nftType(unix.NFT_MSG_GETTABLE), 0, nfprotoInet,
		func(w *msgBuf) { w.str(unix.NFTA_TABLE_NAME, m.table) },
		func(msg nlMsg) error {
			it := newAttrIter(msg.data[nfgenLen:])
			for it.next() {
				if it.typ == unix.NFTA_TABLE_FLAGS {
					k.tableFlags = it.u32()
				}
			}
			k.table = true
			return nil
		})
	if errors.Is(err, unix.ENOENT) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get table: %w", err)
	}

	// Chains: the kernel does not filter chain dumps by table.
	err = s.request(ctx, nftType(unix.NFT_MSG_GETCHAIN), unix.NLM_F_DUMP, nfprotoInet, nil, func(msg nlMsg) error {
		if len(msg.data) < nfgenLen || msg.data[0] != nfprotoInet {
			return nil
		}
		var c kchain
		ours := false
		it := newAttrIter(msg.data[nfgenLen:])
		for it.next() {
			switch it.typ {
			case unix.NFTA_CHAIN_TABLE:
				ours = it.strEq(m.table)
			case unix.NFTA_CHAIN_NAME:
				c.spec.name = it.str()
			case unix.NFTA_CHAIN_HOOK:
				c.base = true
				h := newAttrIter(it.val)
				for h.next() {
					switch h.typ {
					case unix.NFTA_HOOK_HOOKNUM:
						c.spec.hook = h.u32()
					case unix.NFTA_HOOK_PRIORITY:
						c.spec.prio = int32(h.u32())
					}
				}
			case unix.NFTA_CHAIN_POLICY:
				c.spec.policy = it.u32()
			case unix.NFTA_CHAIN_TYPE:
				c.spec.typ = it.str()
			}
		}
		if ours {
			k.chains[c.spec.name] = &c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dump chains: %w", err)
	}

	// Rules: only their chain and our id from the user data; expressions
	// are not parsed (a rule is identified by the hash of its definition).
	err = s.request(ctx, nftType(unix.NFT_MSG_GETRULE), unix.NLM_F_DUMP, nfprotoInet,
		func(w *msgBuf) { w.str(unix.NFTA_RULE_TABLE, m.table) },
		func(msg nlMsg) error {
			var chainName string
			var id ruleID
			ours := false
			it := newAttrIter(msg.data[nfgenLen:])
			for it.next() {
				switch it.typ {
				case unix.NFTA_RULE_TABLE:
					ours = it.strEq(m.table)
				case unix.NFTA_RULE_CHAIN:
					chainName = it.str()
				case unix.NFTA_RULE_USERDATA:
					id, _ = ruleIDFromUserData(it.val)
				}
			}
			if !ours {
				return nil
			}
			c := k.chains[chainName]
			if c == nil { // the chain came after the chain dump: read again
				return fmt.Errorf("rule in unknown chain %q: %w", chainName, errDumpInterrupted)
			}
			c.ids = append(c.ids, id)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("dump rules: %w", err)
	}

	err = s.request(ctx, nftType(unix.NFT_MSG_GETSET), unix.NLM_F_DUMP, nfprotoInet,
		func(w *msgBuf) { w.str(unix.NFTA_SET_TABLE, m.table) },
		func(msg nlMsg) error {
			var sp setSpec
			ours := false
			it := newAttrIter(msg.data[nfgenLen:])
			for it.next() {
				switch it.typ {
				case unix.NFTA_SET_TABLE:
					ours = it.strEq(m.table)
				case unix.NFTA_SET_NAME:
					sp.name = it.str()
				case unix.NFTA_SET_FLAGS:
					sp.flags = it.u32()
				case unix.NFTA_SET_KEY_TYPE:
					sp.keyType = it.u32()
				case unix.NFTA_SET_KEY_LEN:
					sp.keyLen = it.u32()
				case unix.NFTA_SET_DATA_TYPE:
					sp.dataType = it.u32()
				case unix.NFTA_SET_DATA_LEN:
					sp.dataLen = it.u32()
				case unix.NFTA_SET_POLICY:
					sp.policy = it.u32()
				case unix.NFTA_SET_DESC:
					d := newAttrIter(it.val)
					for d.next() {
						if d.typ == unix.NFTA_SET_DESC_SIZE {
							sp.size = d.u32()
						}
					}
				}
			}
			// Anonymous sets belong to (foreign) rules and go with them.
			if ours && sp.flags&unix.NFT_SET_ANONYMOUS == 0 {
				k.sets[sp.name] = &kset{spec: sp}
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("dump sets: %w", err)
	}

	// Elements of our sets, if they are the ones wanted (else they are
	// deleted or recreated, and their elements do not matter: elems stays
	// nil). The kernel builds a dump in the context of the reader, so the
	// sets are read concurrently, each on its own socket: the two big maps
	// then cost the time of one.
	var names []string
	for _, w := range want {
		w.id = 0
		if ks := k.sets[w.name]; ks != nil && ks.spec == w {
			ks.elems = newElemSet(0)
			names = append(names, w.name)
		}
	}
	errs := make([]error, len(names))
	dump := func(i int, s *nlSock) {
		name := names[i]
		var hook func()
		if m.afterElemMsg != nil {
			hook = func() { m.afterElemMsg(name) }
		}
		errs[i] = dumpElems(ctx, s, m.table, name, k.sets[name], hook)
	}
	var wg sync.WaitGroup
	for i := 1; i < len(names); i++ {
		s, err := m.auxSock(i - 1)
		if err != nil {
			errs[i] = err
			continue
		}
		wg.Go(func() { dump(i, s) })
	}
	if len(names) > 0 {
		dump(0, m.sock)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("dump elements of %s: %w", names[i], err)
		}
	}
	return k, nil
}

// auxSock returns the i-th auxiliary socket for concurrent dumps. They are
// kept open: closing a netfilter netlink socket waits for the kernel's
// pending nf_tables clean-up (an RCU grace period, often milliseconds).
func (m *Manager) auxSock(i int) (*nlSock, error) {
	for len(m.aux) <= i {
		m.aux = append(m.aux, nil)
	}
	if m.aux[i] == nil {
		s, err := dialNetfilter()
		if err != nil {
			return nil, err
		}
		m.aux[i] = s
	}
	return m.aux[i], nil
}

// dumpElems reads every element of one of our sets (4-byte keys and data).
// A key listed twice means the kernel's walk order changed during the dump
// (see readKernel), so elements may be missing too: errDumpInterrupted.
// after, if not nil, runs after each message (tests).
func dumpElems(ctx context.Context, s *nlSock, table, set string, ks *kset, after func()) error {
	return s.request(ctx, nftType(unix.NFT_MSG_GETSETELEM), unix.NLM_F_DUMP, nfprotoInet,
		func(w *msgBuf) {
			w.str(unix.NFTA_SET_ELEM_LIST_TABLE, table)
			w.str(unix.NFTA_SET_ELEM_LIST_SET, set)
		},
		func(msg nlMsg) error {
			err := parseElems(msg.data[nfgenLen:], ks)
			if err == nil && after != nil {
				after()
			}
			return err
		})
}

// parseElems adds the elements of one NEWSETELEM message (its attributes)
// to ks.
func parseElems(attrs []byte, ks *kset) error {
	it := newAttrIter(attrs)
	for it.next() {
		if it.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		list := newAttrIter(it.val)
		for list.next() {
			if list.typ != unix.NFTA_LIST_ELEM {
				continue
			}
			var key, data, flags uint32
			var haveKey bool
			e := newAttrIter(list.val)
			for e.next() {
				switch e.typ {
				case unix.NFTA_SET_ELEM_KEY:
					key, haveKey = dataValue(e.val)
				case unix.NFTA_SET_ELEM_DATA:
					data, _ = dataValue(e.val)
				case unix.NFTA_SET_ELEM_FLAGS:
					flags = e.u32()
				}
			}
			if !haveKey {
				ks.broken = true
				continue
			}
			k := elemKey(key, flags&unix.NFT_SET_ELEM_INTERVAL_END)
			if _, dup := ks.elems.get(k); dup {
				return fmt.Errorf("element %s listed twice: %w", v4Addr(key), errDumpInterrupted)
			}
			ks.elems.put(k, data)
		}
	}
	return nil
}

// dataValue decodes a nested NFTA_DATA_VALUE of 4 bytes.
func dataValue(b []byte) (uint32, bool) {
	it := newAttrIter(b)
	for it.next() {
		if it.typ == unix.NFTA_DATA_VALUE && len(it.val) == 4 {
			return binary.BigEndian.Uint32(it.val), true
		}
	}
	return 0, false
}
