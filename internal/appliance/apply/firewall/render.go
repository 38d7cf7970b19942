package firewall

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// render writes the table in nft's list syntax: what `nft list table inet
// <name>` prints, except that set elements are sorted and one per line.
func render(table string, sets []setSpec, chains []*chain, elems func(name string) []kv) string {
	var b strings.Builder
	n := 0
	for _, s := range sets {
		n += 40 * len(elems(s.name))
	}
	b.Grow(n + 4096)
	b.WriteString("table inet ")
	b.WriteString(table)
	b.WriteString(" {\n")
	first := true
	sep := func() {
		if !first {
			b.WriteString("\n")
		}
		first = false
	}
	for _, s := range sets {
		sep()
		renderSet(&b, s, elems(s.name))
	}
	for _, c := range chains {
		sep()
		b.WriteString("\tchain ")
		b.WriteString(c.name)
		b.WriteString(" {\n\t\t")
		b.WriteString(chainHeader(c.chainSpec))
		b.WriteString("\n")
		for _, r := range c.rules {
			b.WriteString("\t\t")
			b.WriteString(r.text)
			b.WriteString("\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func hookName(h uint32) string {
	switch h {
	case hookPrerouting:
		return "prerouting"
	case hookInput:
		return "input"
	case hookForward:
		return "forward"
	case hookOutput:
		return "output"
	case hookPostrouting:
		return "postrouting"
	}
	return strconv.Itoa(int(h))
}

func chainHeader(c chainSpec) string {
	prio := strconv.Itoa(int(c.prio))
	switch {
	case c.prio == -300:
		prio = "raw"
	case c.prio == 0:
		prio = "filter"
	case c.prio == -100 && c.typ == "nat":
		prio = "dstnat"
	case c.prio == 100 && c.typ == "nat":
		prio = "srcnat"
	}
	policy := "accept"
	if c.policy == policyDrop {
		policy = "drop"
	}
	return "type " + c.typ + " hook " + hookName(c.hook) + " priority " + prio + "; policy " + policy + ";"
}

func renderSet(b *strings.Builder, s setSpec, elems []kv) {
	isMap := s.flags&unix.NFT_SET_MAP != 0
	if isMap {
		b.WriteString("\tmap " + s.name + " {\n\t\ttype ipv4_addr : ipv4_addr\n")
	} else {
		b.WriteString("\tset " + s.name + " {\n\t\ttype ipv4_addr\n")
	}
	if s.size > 0 {
		b.WriteString("\t\tsize " + strconv.FormatUint(uint64(s.size), 10) + "\n")
	}
	n := len(elems)
	if s.flags&unix.NFT_SET_INTERVAL != 0 {
		b.WriteString("\t\tflags interval\n")
		items := intervalStrings(elems)
		for i, it := range items {
			elemSep(b, i)
			b.WriteString(it)
		}
		n = len(items)
	} else {
		elems = slices.Clone(elems)
		slices.SortFunc(elems, func(a, b kv) int { return cmp.Compare(a.k, b.k) })
		var buf [40]byte
		for i, e := range elems {
			elemSep(b, i)
			key, _ := keyOf(e.k)
			line := v4Addr(key).AppendTo(buf[:0])
			if isMap {
				line = append(line, " : "...)
				line = v4Addr(e.v).AppendTo(line)
			}
			b.Write(line)
		}
	}
	if n > 0 {
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

func elemSep(b *strings.Builder, i int) {
	if i == 0 {
		b.WriteString("\t\telements = { ")
	} else {
		b.WriteString(",\n\t\t\t     ")
	}
}

// intervalStrings turns interval-set elements back into ranges, printed as
// prefixes when they are one.
func intervalStrings(elems []kv) []string {
	type edge struct {
		at  uint64
		end bool
	}
	edges := make([]edge, 0, len(elems))
	for _, e := range elems {
		key, flags := keyOf(e.k)
		edges = append(edges, edge{uint64(key), flags&unix.NFT_SET_ELEM_INTERVAL_END != 0})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		if a.end == b.end {
			return 0
		}
		if a.end {
			return -1 // an end closes the previous range before a start opens
		}
		return 1
	})
	var out []string
	for i := 0; i < len(edges); i++ {
		if edges[i].end {
			continue
		}
		lo, hi := edges[i].at, uint64(1)<<32 // hi exclusive
		if i+1 < len(edges) && edges[i+1].end {
			hi = edges[i+1].at
			i++
		}
		out = append(out, rangeString(lo, hi))
	}
	return out
}

func rangeString(lo, hi uint64) string {
	size := hi - lo
	if size&(size-1) == 0 && lo&(size-1) == 0 {
		plen := 32 - (bits.Len64(size) - 1)
		if plen == 32 {
			return v4Addr(uint32(lo)).String()
		}
		return netip.PrefixFrom(v4Addr(uint32(lo)), plen).String()
	}
	return v4Addr(uint32(lo)).String() + "-" + v4Addr(uint32(hi-1)).String()
}

func kvs(m map[uint64]uint32) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	return out
}

// fipElems builds the elements of the two floating IP maps.
func fipElems(fips []FloatingIP) (dnat, snat map[uint64]uint32) {
	dnat = make(map[uint64]uint32, len(fips))
	snat = make(map[uint64]uint32, len(fips))
	for _, f := range fips {
		dnat[uint64(v4(f.Floating))] = v4(f.Fixed)
		snat[uint64(v4(f.Fixed))] = v4(f.Floating)
	}
	return dnat, snat
}

// renderSpec renders the ruleset a Spec would produce (no kernel needed).
func renderSpec(table string, s Spec) (string, error) {
	pairs, err := validate(&s)
	if err != nil {
		return "", err
	}
	d, err := build(&s, pairs, nil)
	if err != nil {
		return "", err
	}
	if err := checkFIPDups(s.FloatingIPs); err != nil {
		return "", err
	}
	dn, sn := fipElems(s.FloatingIPs)
	return render(table, d.sets, d.chains, func(name string) []kv {
		switch name {
		case SetInternalV4:
			return kvs(d.intervals)
		case MapFIPDNAT:
			return kvs(dn)
		default:
			return kvs(sn)
		}
	}), nil
}
