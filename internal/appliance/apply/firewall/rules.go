package firewall

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the objects in the table. They are part of the contract with
// operators (nft list table inet astara) and with tests.
const (
	// SetInternalV4 is the interval set of the internal networks' IPv4 subnets.
	SetInternalV4 = "internal_v4"
	// MapFIPDNAT maps floating IPs to fixed IPs (ipv4_addr : ipv4_addr).
	MapFIPDNAT = "fip_dnat"
	// MapFIPSNAT maps fixed IPs to floating IPs (ipv4_addr : ipv4_addr).
	MapFIPSNAT = "fip_snat"

	// ChainInput filters traffic to the router itself (policy drop).
	ChainInput = "input"
	// ChainForward is the forward hook (policy accept, no rules).
	ChainForward = "forward"
	// ChainMarkPrerouting marks incoming packets that must not be SNATed.
	ChainMarkPrerouting = "mark_prerouting"
	// ChainMarkOutput marks router-originated packets (never SNATed).
	ChainMarkOutput = "mark_output"
	// ChainNATPrerouting does floating IP (incl. hairpin) and metadata DNAT.
	ChainNATPrerouting = "nat_prerouting"
	// ChainNATPostrouting does floating IP and default SNAT.
	ChainNATPostrouting = "nat_postrouting"

	// NoNATMark is the packet mark meaning "do not SNAT", as in the original.
	NoNATMark = 0xACDA
)

// Kernel datatype ids of nft's ipv4_addr (TYPE_IPADDR).
const typeIPv4Addr = 7

// Netfilter hook numbers and verdicts used by the chains.
const (
	hookPrerouting  = unix.NF_INET_PRE_ROUTING
	hookInput       = unix.NF_INET_LOCAL_IN
	hookForward     = unix.NF_INET_FORWARD
	hookOutput      = unix.NF_INET_LOCAL_OUT
	hookPostrouting = unix.NF_INET_POST_ROUTING
	policyDrop      = 0 // NF_DROP
	policyAccept    = 1 // NF_ACCEPT
)

// metadataAddr is the address VMs ask for metadata (169.254.169.254).
func metadataAddr() netip.Addr { return netip.AddrFrom4([4]byte{169, 254, 169, 254}) }

// chainSpec is what identifies a chain besides its rules: recreated when any
// of it differs in the kernel.
type chainSpec struct {
	name   string
	typ    string // "filter" or "nat"
	hook   uint32
	prio   int32
	policy uint32
}

// ruleID identifies a rule by a hash of its definition; it is stored in the
// rule's user data.
type ruleID [16]byte

// rule is one rule: its nft text and its encoded expressions.
type rule struct {
	text  string
	exprs []byte // NFTA_LIST_ELEM attributes: the content of NFTA_RULE_EXPRESSIONS
	id    ruleID
	err   error // why the expressions could not be encoded (a bug)
}

type chain struct {
	chainSpec
	rules []*rule
}

// setSpec is a named set or map; recreated when any field differs.
type setSpec struct {
	name     string
	id       uint32 // NFTA_SET_ID: names the set inside one transaction
	flags    uint32
	keyType  uint32
	keyLen   uint32
	dataType uint32
	dataLen  uint32
	// size is the maximum number of elements (NFTA_SET_DESC_SIZE), 0 for
	// none. Given a size, the kernel backs a map with 4-byte keys by a
	// fixed-size hash table (nft_set_hash_fast) instead of a resizable
	// rhashtable (nft_set_rhash), and only the former can be dumped
	// reliably: see readKernel.
	size uint32
	// policy is NFTA_SET_POLICY; ours are NFT_SET_POL_PERFORMANCE (0), the
	// kernel's default. With "memory" the kernel may pick another backend.
	policy uint32
}

// desired is the ruleset computed from a Spec, elements apart: the interval
// set's elements are listed, the floating IP maps are derived from fips.
type desired struct {
	chains    []*chain
	sets      []setSpec
	intervals map[uint64]uint32 // elements of SetInternalV4 (see elemKey)
	pairs     []fipPair         // the floating IPs, validated
	fips      []FloatingIP      // the same, for error messages
}

// ruleMemo remembers encoded rules by chain and text, so that an Apply
// whose rules did not change does not encode and hash them again.
type ruleMemo map[string]*rule

const maxMemo = 4096

// ourSets lists the table's sets and maps, in the order they are rendered.
// The floating IP maps have room for fipCap elements.
func ourSets(fipCap uint32) [3]setSpec {
	return [...]setSpec{
		{name: SetInternalV4, id: 1, flags: unix.NFT_SET_INTERVAL, keyType: typeIPv4Addr, keyLen: 4},
		{name: MapFIPDNAT, id: 2, flags: unix.NFT_SET_MAP, keyType: typeIPv4Addr, keyLen: 4, dataType: typeIPv4Addr, dataLen: 4, size: fipCap},
		{name: MapFIPSNAT, id: 3, flags: unix.NFT_SET_MAP, keyType: typeIPv4Addr, keyLen: 4, dataType: typeIPv4Addr, dataLen: 4, size: fipCap},
	}
}

// setByName returns one of our sets without its size (what a rule needs to
// reference it: name, id, flags).
func setByName(name string) setSpec {
	for _, s := range ourSets(0) {
		if s.name == name {
			return s
		}
	}
	panic("unknown set " + name)
}

// isOurSet reports whether name is one of our sets or maps.
func isOurSet(name string) bool {
	for _, s := range ourSets(0) {
		if s.name == name {
			return true
		}
	}
	return false
}

// set returns the desired spec of one of our sets.
func (d *desired) set(name string) setSpec {
	for _, s := range d.sets {
		if s.name == name {
			return s
		}
	}
	panic("unknown set " + name)
}

// elemKey packs an IPv4 element key (as a big-endian uint32) and its
// element flags (NFT_SET_ELEM_INTERVAL_END) into a map key.
func elemKey(key uint32, flags uint32) uint64 { return uint64(flags)<<32 | uint64(key) }

func keyOf(k uint64) (key uint32, flags uint32) { return uint32(k), uint32(k >> 32) }

func v4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func v4Addr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// build computes the desired ruleset of a validated Spec; memo may be nil.
func build(s *Spec, pairs []fipPair, memo ruleMemo) (*desired, error) {
	all := ourSets(fipCapacity(s))
	d := &desired{sets: all[:], pairs: pairs, fips: s.FloatingIPs}
	if len(memo) > maxMemo {
		clear(memo)
	}
	add := func(c *chain, r *ruleBuilder) { c.rules = append(c.rules, r.finish(c.name, memo)) }
	ext := s.External

	// input: policy drop.
	in := &chain{chainSpec: chainSpec{name: ChainInput, typ: "filter", hook: hookInput, prio: 0, policy: policyDrop}}
	add(in, newRule().iifname("lo").accept())
	add(in, newRule().ctEstablished().accept())
	add(in, newRule().icmpEcho().accept())
	add(in, newRule().icmpv6().accept())
	for _, m := range s.Management {
		for _, p := range s.ManagementTCPPorts {
			add(in, newRule().iifname(m).dport(unix.IPPROTO_TCP, p).accept())
		}
	}
	for _, t := range s.Tenants {
		if t.DHCPv4 {
			add(in, newRule().iifname(t.IfName).dport(unix.IPPROTO_UDP, 67).accept())
		}
		if t.DHCPv6 {
			add(in, newRule().iifname(t.IfName).dport(unix.IPPROTO_UDP, 547).accept())
		}
		if t.DNS {
			add(in, newRule().iifname(t.IfName).dport(unix.IPPROTO_UDP, 53).accept())
			add(in, newRule().iifname(t.IfName).dport(unix.IPPROTO_TCP, 53).accept())
		}
		if t.Internal && t.Metadata.IsValid() {
			add(in, newRule().iifname(t.IfName).ipAddr(false, t.Metadata.Addr()).dport(unix.IPPROTO_TCP, t.Metadata.Port()).accept())
		}
	}
	if ext != nil {
		for _, p := range ext.BGPPeers {
			add(in, newRule().iifname(ext.IfName).ipAddr(true, p).dport(unix.IPPROTO_TCP, 179).accept())
		}
	}

	fwd := &chain{chainSpec: chainSpec{name: ChainForward, typ: "filter", hook: hookForward, prio: 0, policy: policyAccept}}

	// Marks (raw priority, before conntrack and DNAT, so they see the
	// original destination): traffic entering from outside or to internal
	// networks, and router-originated traffic, is never SNATed.
	markPre := &chain{chainSpec: chainSpec{name: ChainMarkPrerouting, typ: "filter", hook: hookPrerouting, prio: -300, policy: policyAccept}}
	markOut := &chain{chainSpec: chainSpec{name: ChainMarkOutput, typ: "filter", hook: hookOutput, prio: -300, policy: policyAccept}}
	dnat := &chain{chainSpec: chainSpec{name: ChainNATPrerouting, typ: "nat", hook: hookPrerouting, prio: -100, policy: policyAccept}}
	snat := &chain{chainSpec: chainSpec{name: ChainNATPostrouting, typ: "nat", hook: hookPostrouting, prio: 100, policy: policyAccept}}

	for _, t := range s.Tenants {
		if t.Internal && t.Metadata.IsValid() {
			add(dnat, newRule().iifname(t.IfName).ipAddr(false, metadataAddr()).dport(unix.IPPROTO_TCP, 80).dnatTo(t.Metadata))
		}
	}
	if ext != nil {
		add(markPre, newRule().iifname(ext.IfName).nfproto4().setMark())
		add(markPre, newRule().ipInSet(false, SetInternalV4).setMark())
		add(markOut, newRule().nfproto4().setMark())

		add(dnat, newRule().iifname(ext.IfName).natMap(true))
		for _, t := range s.Tenants {
			if t.Internal { // hairpin: VMs reaching other VMs by floating IP
				add(dnat, newRule().iifname(t.IfName).natMap(true))
			}
		}

		add(snat, newRule().markIs().ret())
		for _, m := range s.Management {
			add(snat, newRule().oifname(m).ret())
		}
		add(snat, newRule().ipInSet(true, SetInternalV4).natMap(false))
		if ext.SNATAddr.IsValid() {
			add(snat, newRule().ipInSet(true, SetInternalV4).snatTo(ext.SNATAddr))
		}
	}
	d.chains = []*chain{in, fwd, markPre, markOut, dnat, snat}
	for _, c := range d.chains {
		for _, r := range c.rules {
			if r.err != nil {
				return nil, fmt.Errorf("encode rule %q of chain %s: %w", r.text, c.name, r.err)
			}
		}
	}

	var nets []netip.Prefix
	for _, t := range s.Tenants {
		if t.Internal {
			nets = append(nets, t.V4Subnets...)
		}
	}
	d.intervals = intervalElems(nets)
	return d, nil
}

// intervalElems turns IPv4 prefixes into the elements of an interval set as
// nft itself would write them: overlapping and adjacent ranges merged, each
// range [a, b] as a start element a and an end element b+1 flagged
// INTERVAL_END (none if b is the last address), plus an end element at
// 0.0.0.0 when the first range does not start there.
func intervalElems(prefixes []netip.Prefix) map[uint64]uint32 {
	type rng struct{ lo, hi uint64 } // hi exclusive
	rs := make([]rng, 0, len(prefixes))
	for _, p := range prefixes {
		p = p.Masked()
		lo := uint64(v4(p.Addr()))
		rs = append(rs, rng{lo, lo + 1<<(32-p.Bits())})
	}
	slices.SortFunc(rs, func(a, b rng) int { return cmp.Compare(a.lo, b.lo) })
	var merged []rng
	for _, r := range rs {
		if n := len(merged); n > 0 && r.lo <= merged[n-1].hi {
			merged[n-1].hi = max(merged[n-1].hi, r.hi)
			continue
		}
		merged = append(merged, r)
	}
	out := make(map[uint64]uint32, 2*len(merged)+1)
	if len(merged) > 0 && merged[0].lo != 0 {
		out[elemKey(0, unix.NFT_SET_ELEM_INTERVAL_END)] = 0
	}
	for _, r := range merged {
		out[elemKey(uint32(r.lo), 0)] = 0
		if r.hi <= 0xffffffff {
			out[elemKey(uint32(r.hi), unix.NFT_SET_ELEM_INTERVAL_END)] = 0
		}
	}
	return out
}

// ---------------------------------------------------------------- rule builder

// ruleBuilder accumulates a rule's expressions and its nft text together, so
// the two cannot drift apart (a kernel test compares the text with nft's).
type ruleBuilder struct {
	exprs []expr.Any
	words []string
}

func newRule() *ruleBuilder { return &ruleBuilder{} }

func (r *ruleBuilder) say(w ...string) *ruleBuilder { r.words = append(r.words, w...); return r }

func (r *ruleBuilder) e(x ...expr.Any) *ruleBuilder { r.exprs = append(r.exprs, x...); return r }

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func (r *ruleBuilder) iifname(n string) *ruleBuilder {
	return r.e(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)}).say("iifname", strconv.Quote(n))
}

func (r *ruleBuilder) oifname(n string) *ruleBuilder {
	return r.e(&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)}).say("oifname", strconv.Quote(n))
}

func (r *ruleBuilder) nfproto(p byte) *ruleBuilder {
	return r.e(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}})
}

func (r *ruleBuilder) l4proto(p byte) *ruleBuilder {
	return r.e(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}})
}

// nfproto4 is an explicit "meta nfproto ipv4" (nft prints it only when no
// later IPv4 expression implies it).
func (r *ruleBuilder) nfproto4() *ruleBuilder {
	return r.nfproto(unix.NFPROTO_IPV4).say("meta", "nfproto", "ipv4")
}

func (r *ruleBuilder) ctEstablished() *ruleBuilder {
	mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return r.e(&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}).say("ct", "state", "established,related")
}

func (r *ruleBuilder) icmpEcho() *ruleBuilder {
	return r.nfproto(unix.NFPROTO_IPV4).l4proto(unix.IPPROTO_ICMP).e(
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{8}}).say("icmp", "type", "echo-request")
}

func (r *ruleBuilder) icmpv6() *ruleBuilder {
	return r.l4proto(unix.IPPROTO_ICMPV6).say("meta", "l4proto", "ipv6-icmp")
}

func (r *ruleBuilder) dport(proto byte, port uint16) *ruleBuilder {
	name := map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp"}[proto]
	return r.l4proto(proto).e(
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)}).
		say(name, "dport", strconv.Itoa(int(port)))
}

// ipAddr matches the source (src) or destination address, IPv4 or IPv6.
func (r *ruleBuilder) ipAddr(src bool, a netip.Addr) *ruleBuilder {
	dir := map[bool]string{true: "saddr", false: "daddr"}[src]
	if a.Is4() {
		off := map[bool]uint32{true: 12, false: 16}[src]
		return r.nfproto(unix.NFPROTO_IPV4).e(
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()}).say("ip", dir, a.String())
	}
	off := map[bool]uint32{true: 8, false: 24}[src]
	return r.nfproto(unix.NFPROTO_IPV6).e(
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 16},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()}).say("ip6", dir, a.String())
}

func (r *ruleBuilder) loadIP4(src bool) *ruleBuilder {
	off := map[bool]uint32{true: 12, false: 16}[src]
	return r.e(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4})
}

// ipInSet matches "ip saddr|daddr @set".
func (r *ruleBuilder) ipInSet(src bool, set string) *ruleBuilder {
	dir := map[bool]string{true: "saddr", false: "daddr"}[src]
	return r.nfproto(unix.NFPROTO_IPV4).loadIP4(src).e(
		&expr.Lookup{SourceRegister: 1, SetName: set, SetID: setByName(set).id}).say("ip", dir, "@"+set)
}

func (r *ruleBuilder) setMark() *ruleBuilder {
	return r.e(&expr.Immediate{Register: 1, Data: binary.NativeEndian.AppendUint32(nil, NoNATMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}).
		say("meta", "mark", "set", fmt.Sprintf("0x%08x", NoNATMark))
}

func (r *ruleBuilder) markIs() *ruleBuilder {
	return r.e(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, NoNATMark)}).
		say("meta", "mark", fmt.Sprintf("0x%08x", NoNATMark))
}

// natMap is "dnat ip to ip daddr map @fip_dnat" (dst) or
// "snat ip to ip saddr map @fip_snat": a failed lookup ends the rule.
func (r *ruleBuilder) natMap(dst bool) *ruleBuilder {
	m, typ, kw, dir := MapFIPSNAT, expr.NATTypeSourceNAT, "snat", "saddr"
	if dst {
		m, typ, kw, dir = MapFIPDNAT, expr.NATTypeDestNAT, "dnat", "daddr"
	}
	return r.nfproto(unix.NFPROTO_IPV4).loadIP4(!dst).e(
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m, SetID: setByName(m).id},
		&expr.NAT{Type: typ, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}).
		say(kw, "ip", "to", "ip", dir, "map", "@"+m)
}

func (r *ruleBuilder) dnatTo(ap netip.AddrPort) *ruleBuilder {
	return r.e(&expr.Immediate{Register: 1, Data: ap.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, ap.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true}).
		say("dnat", "ip", "to", ap.String())
}

func (r *ruleBuilder) snatTo(a netip.Addr) *ruleBuilder {
	return r.e(&expr.Immediate{Register: 1, Data: a.AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}).
		say("snat", "ip", "to", a.String())
}

func (r *ruleBuilder) verdict(k expr.VerdictKind, word string) *ruleBuilder {
	return r.e(&expr.Verdict{Kind: k}).say(word)
}

func (r *ruleBuilder) accept() *ruleBuilder { return r.verdict(expr.VerdictAccept, "accept") }
func (r *ruleBuilder) ret() *ruleBuilder    { return r.verdict(expr.VerdictReturn, "return") }

// finish encodes the expressions and derives the rule id from the chain
// name, the encoded expressions and the text.
func (r *ruleBuilder) finish(chainName string, memo ruleMemo) *rule {
	text := strings.Join(r.words, " ")
	key := chainName + "\x00" + text
	if hit, ok := memo[key]; ok {
		return hit
	}
	out := &rule{text: text}
	var w msgBuf
	for _, x := range r.exprs {
		b, err := expr.Marshal(unix.NFPROTO_INET, x)
		if err != nil {
			out.err = fmt.Errorf("marshal %T: %w", x, err)
			return out // reported by build, not memoized
		}
		off := w.nest(unix.NFTA_LIST_ELEM)
		w.b = append(w.b, b...)
		w.pad()
		w.endNest(off)
	}
	if w.err != nil {
		out.err = w.err
		return out
	}
	out.exprs = w.b
	h := sha256.New()
	h.Write([]byte(chainName))
	h.Write([]byte{0})
	h.Write(out.exprs)
	h.Write([]byte{0})
	h.Write([]byte(out.text))
	copy(out.id[:], h.Sum(nil))
	if memo != nil {
		memo[key] = out
	}
	return out
}

// User data of our rules: one TLV of this type holding the rule id. nft
// ignores TLV types it does not know, so it prints no comment for it.
const udataRuleID = 0xAD

func (r *rule) userData() []byte {
	return append([]byte{udataRuleID, byte(len(r.id))}, r.id[:]...)
}

// ruleIDFromUserData extracts our rule id; ok is false for foreign rules.
func ruleIDFromUserData(b []byte) (id ruleID, ok bool) {
	for len(b) >= 2 {
		t, l := b[0], int(b[1])
		if 2+l > len(b) {
			return id, false
		}
		if t == udataRuleID && l == len(id) {
			copy(id[:], b[2:2+l])
			return id, true
		}
		b = b[2+l:]
	}
	return id, false
}
