package firewall

// elemSet mirrors the elements of one set or map: element key (see elemKey)
// to data. Each element also carries a mark, so a diff can note the ones it
// finds (with the set's current epoch) without allocating, then collect the
// unmarked ones as deletions. Value and mark live in the map itself: one
// memory access per lookup.
type elemSet struct {
	m     map[uint64]elemVal
	epoch uint32
}

type elemVal struct {
	val  uint32
	mark uint32 // == epoch when marked in the current round; 0 never is
}

func newElemSet(n int) *elemSet { return &elemSet{m: make(map[uint64]elemVal, n)} }

func (e *elemSet) len() int { return len(e.m) }

func (e *elemSet) get(k uint64) (uint32, bool) {
	v, ok := e.m[k]
	return v.val, ok
}

// put inserts or updates an element.
func (e *elemSet) put(k uint64, v uint32) { e.m[k] = elemVal{val: v} }

func (e *elemSet) del(k uint64) { delete(e.m, k) }

// nextEpoch starts a new round of marking.
func (e *elemSet) nextEpoch() uint32 {
	e.epoch++
	if e.epoch == 0 {
		for k, v := range e.m {
			e.m[k] = elemVal{val: v.val}
		}
		e.epoch = 1
	}
	return e.epoch
}

// unmarked returns the keys of the elements not marked in this epoch.
func (e *elemSet) unmarked() []uint64 {
	var out []uint64
	for k, v := range e.m {
		if v.mark != e.epoch {
			out = append(out, k)
		}
	}
	return out
}

// elems returns the elements, in no particular order.
func (e *elemSet) elems() []kv {
	out := make([]kv, 0, len(e.m))
	for k, v := range e.m {
		out = append(out, kv{k, v.val})
	}
	return out
}

// equal reports whether the set holds exactly the elements of want.
func (e *elemSet) equal(want map[uint64]uint32) bool {
	if e.len() != len(want) {
		return false
	}
	for k, v := range want {
		if w, ok := e.get(k); !ok || w != v {
			return false
		}
	}
	return true
}

func elemSetOf(m map[uint64]uint32) *elemSet {
	e := newElemSet(len(m))
	for k, v := range m {
		e.put(k, v)
	}
	return e
}

// ---------------------------------------------------------------- floating IPs

type fipDiff struct {
	dnDels, snDels []uint64
	dnAdds, snAdds []kv
}

// diffFIPs computes the element changes of the two floating IP maps against
// their mirrors: at most two lookups per floating IP, and no allocation when
// nothing changed. Duplicate floating or fixed addresses are refused here,
// before anything is sent to the kernel (fips is only used to word that
// error).
//
// inverse says the mirror's snat map is known to be the exact inverse of its
// dnat map (true after every successful Apply). Then, if every desired pair
// is in dnat, with distinct floating IPs, and dnat holds nothing else, snat
// holds exactly the inverted pairs and their fixed IPs are distinct too: one
// lookup per floating IP proves there is nothing to do.
func diffFIPs(pairs []fipPair, fips []FloatingIP, dn, sn *elemSet, inverse bool) (fipDiff, error) {
	var out fipDiff
	n := len(pairs)
	if inverse && dn.len() == n && sn.len() == n {
		ep := dn.nextEpoch()
		match := 0
		for _, p := range pairs {
			v, ok := dn.m[uint64(p.f)]
			if !ok || v.val != p.x || v.mark == ep {
				break
			}
			dn.m[uint64(p.f)] = elemVal{val: v.val, mark: ep}
			match++
		}
		if match == n {
			return out, nil
		}
	}
	epD, epS := dn.nextEpoch(), sn.nextEpoch()
	var pendD, pendS []int32 // desired entries missing from each map
	matchD, matchS := 0, 0
	for i, p := range pairs {
		f, x := uint64(p.f), uint64(p.x)
		if v, ok := dn.m[f]; ok && v.val == uint32(x) {
			if v.mark == epD {
				return out, dupFIPError(fips)
			}
			dn.m[f] = elemVal{val: v.val, mark: epD}
			matchD++
		} else {
			pendD = append(pendD, int32(i))
		}
		if v, ok := sn.m[x]; ok && v.val == uint32(f) {
			if v.mark == epS {
				return out, dupFIPError(fips)
			}
			sn.m[x] = elemVal{val: v.val, mark: epS}
			matchS++
		} else {
			pendS = append(pendS, int32(i))
		}
	}
	collect := func(e *elemSet, epoch uint32, pend []int32, byFixed bool) ([]kv, error) {
		if len(pend) == 0 {
			return nil, nil
		}
		out := make([]kv, 0, len(pend))
		seen := make(map[uint64]bool, len(pend))
		for _, i := range pend {
			k, v := pairs[i].f, pairs[i].x
			if byFixed {
				k, v = v, k
			}
			// Another desired entry with this key, pending or found as is?
			if v, ok := e.m[uint64(k)]; seen[uint64(k)] || ok && v.mark == epoch {
				return nil, dupFIPError(fips)
			}
			seen[uint64(k)] = true
			out = append(out, kv{uint64(k), v})
		}
		return out, nil
	}
	var err error
	if out.dnAdds, err = collect(dn, epD, pendD, false); err != nil {
		return out, err
	}
	if out.snAdds, err = collect(sn, epS, pendS, true); err != nil {
		return out, err
	}
	// Everything not found as is goes (re-pointed entries are deleted and
	// added again).
	if matchD != dn.len() {
		out.dnDels = dn.unmarked()
	}
	if matchS != sn.len() {
		out.snDels = sn.unmarked()
	}
	return out, nil
}

func dupFIPError(fips []FloatingIP) error {
	if err := checkFIPDups(fips); err != nil {
		return err
	}
	return invalid("FloatingIPs: duplicate entries")
}

// checkFIPDups refuses two floating IPs with the same floating or fixed
// address (neither map could hold both).
func checkFIPDups(fips []FloatingIP) error {
	floating := make(map[uint32]int, len(fips))
	fixed := make(map[uint32]int, len(fips))
	for i, f := range fips {
		if j, ok := floating[v4(f.Floating)]; ok {
			return invalid("FloatingIPs[%d].Floating: %s already used by FloatingIPs[%d]", i, f.Floating, j)
		}
		floating[v4(f.Floating)] = i
		if j, ok := fixed[v4(f.Fixed)]; ok {
			return invalid("FloatingIPs[%d].Fixed: %s already has floating IP %s (FloatingIPs[%d])", i, f.Fixed, fips[j].Floating, j)
		}
		fixed[v4(f.Fixed)] = i
	}
	return nil
}
