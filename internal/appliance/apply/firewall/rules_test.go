package firewall

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRenderGolden(t *testing.T) {
	specs := goldenSpecs()
	if len(specs) != len(golden) {
		t.Fatalf("%d golden specs, %d golden rulesets", len(specs), len(golden))
	}
	for name, s := range specs {
		t.Run(name, func(t *testing.T) {
			got, err := renderSpec("astara", s)
			if err != nil {
				t.Fatal(err)
			}
			if want := golden[name]; got != want {
				t.Errorf("ruleset differs from golden\n--- got\n%s\n--- want\n%s\n--- diff\n%s", got, want, lineDiff(want, got))
			}
		})
	}
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Semantic checks on top of the golden text, so a careless golden update
// cannot silently drop a security property.
func TestRulesetProperties(t *testing.T) {
	text, err := renderSpec("astara", fullSpec())
	if err != nil {
		t.Fatal(err)
	}
	in := chainBlock(text, ChainInput)
	if !strings.Contains(in, "policy drop;") {
		t.Error("input chain must drop by default")
	}
	for _, l := range strings.Split(in, "\n") {
		// Management ports only on the management interface.
		if strings.Contains(l, "dport 5000") || strings.Contains(l, "dport 22 ") {
			if !strings.HasPrefix(strings.TrimSpace(l), `iifname "eth0" `) {
				t.Errorf("management port opened beyond the management interface: %q", l)
			}
		}
		// No blanket accept on an interface (the original accepted all on
		// internal interfaces, letting VMs reach the agent API).
		if f := strings.Fields(l); len(f) == 3 && f[0] == "iifname" && f[1] != `"lo"` && f[2] == "accept" {
			t.Errorf("blanket accept: %q", l)
		}
	}
	if strings.Contains(in, "eth4\" ip daddr") || strings.Contains(chainBlock(text, ChainNATPrerouting), `"eth4"`) {
		t.Error("isolated tenant eth4 must get no metadata/NAT rules")
	}
	if strings.Contains(text, "10.9.0.0") {
		t.Error("isolated subnet must not be in internal_v4")
	}
	if strings.Contains(text, "ip6 daddr") || strings.Contains(text, "snat ip6") || strings.Contains(text, "dnat ip6") {
		t.Error("no IPv6 NAT expected")
	}
	post := chainBlock(text, ChainNATPostrouting)
	if i, j := strings.Index(post, "meta mark 0x0000acda return"), strings.Index(post, "snat ip to"); i < 0 || j < 0 || i > j {
		t.Error("no-NAT mark must be checked before any SNAT")
	}
	if i, j := strings.Index(post, "map @fip_snat"), strings.Index(post, "snat ip to 172.16.0.2"); i < 0 || j < 0 || i > j {
		t.Error("floating IP SNAT must come before the default SNAT")
	}
}

func chainBlock(text, name string) string {
	i := strings.Index(text, "\tchain "+name+" {")
	if i < 0 {
		return ""
	}
	j := strings.Index(text[i:], "\n\t}\n")
	return text[i : i+j+4]
}

func TestValidate(t *testing.T) {
	mod := func(f func(*Spec)) Spec { s := fullSpec(); f(&s); return s }
	cases := map[string]struct {
		spec Spec
		want string // substring of the error
	}{
		"empty mgmt name":     {mod(func(s *Spec) { s.Management = []string{""} }), "Management[0]: empty"},
		"long name":           {mod(func(s *Spec) { s.Tenants[1].IfName = "abcdefghijklmnop" }), "Tenants[1].IfName: interface name \"abcdefghijklmnop\" longer than 15"},
		"slash in name":       {mod(func(s *Spec) { s.External.IfName = "eth/2" }), "External.IfName: invalid character"},
		"space in name":       {mod(func(s *Spec) { s.Management[0] = "eth 0" }), "invalid character"},
		"quote in name":       {mod(func(s *Spec) { s.Management[0] = `eth"0` }), "invalid character"},
		"dup ifname":          {mod(func(s *Spec) { s.Tenants[0].IfName = "eth2" }), "Tenants[0].IfName: interface \"eth2\" already used by External.IfName"},
		"port 0":              {mod(func(s *Spec) { s.ManagementTCPPorts = []uint16{0} }), "ManagementTCPPorts[0]: port 0"},
		"dup port":            {mod(func(s *Spec) { s.ManagementTCPPorts = []uint16{22, 22} }), "ManagementTCPPorts[1]: duplicate port 22"},
		"v6 snat":             {mod(func(s *Spec) { s.External.SNATAddr = ap("2001:db8::2") }), "External.SNATAddr: 2001:db8::2 is not an IPv4"},
		"mapped snat":         {mod(func(s *Spec) { s.External.SNATAddr = ap("::ffff:1.2.3.4") }), "not an IPv4"},
		"invalid bgp peer":    {mod(func(s *Spec) { s.External.BGPPeers = []netip.Addr{{}} }), "External.BGPPeers[0]: missing address"},
		"dup bgp peer":        {mod(func(s *Spec) { s.External.BGPPeers = []netip.Addr{ap("1.2.3.4"), ap("1.2.3.4")} }), "BGPPeers[1]: duplicate"},
		"v6 subnet":           {mod(func(s *Spec) { s.Tenants[0].V4Subnets = []netip.Prefix{pp("fd00::/64")} }), "Tenants[0].V4Subnets[0]: fd00::/64 is not an IPv4 prefix"},
		"zero prefix":         {mod(func(s *Spec) { s.Tenants[0].V4Subnets = []netip.Prefix{pp("0.0.0.0/0")} }), "would cover every address"},
		"invalid prefix":      {mod(func(s *Spec) { s.Tenants[0].V4Subnets = []netip.Prefix{{}} }), "invalid prefix"},
		"metadata isolated":   {mod(func(s *Spec) { s.Tenants[2].Metadata = netip.MustParseAddrPort("10.9.0.1:9604") }), "Tenants[2].Metadata: metadata DNAT is only set up on internal networks"},
		"metadata v6":         {mod(func(s *Spec) { s.Tenants[0].Metadata = netip.MustParseAddrPort("[fd00::1]:9601") }), "Tenants[0].Metadata: fd00::1 is not an IPv4"},
		"metadata port 0":     {mod(func(s *Spec) { s.Tenants[0].Metadata = netip.MustParseAddrPort("10.0.0.1:0") }), "Tenants[0].Metadata: port 0"},
		"fip without ext":     {mod(func(s *Spec) { s.External = nil }), "FloatingIPs: 2 floating IPs but no external network"},
		"fip v6":              {mod(func(s *Spec) { s.FloatingIPs[0].Fixed = ap("fd00::5") }), "FloatingIPs[0].Fixed: fd00::5 is not an IPv4"},
		"fip missing":         {mod(func(s *Spec) { s.FloatingIPs[1].Floating = netip.Addr{} }), "FloatingIPs[1].Floating: missing address"},
		"fip unspecified":     {mod(func(s *Spec) { s.FloatingIPs[1].Floating = ap("0.0.0.0") }), "not a unicast"},
		"fip is snat address": {mod(func(s *Spec) { s.FloatingIPs[1].Floating = ap("172.16.0.2") }), "is the router's SNAT address"},
		"dup floating": {mod(func(s *Spec) {
			s.FloatingIPs = append(s.FloatingIPs, FloatingIP{Floating: ap("172.16.0.10"), Fixed: ap("10.0.0.99")})
		}), "FloatingIPs[2].Floating: 172.16.0.10 already used by FloatingIPs[1]"},
		"dup fixed": {mod(func(s *Spec) {
			s.FloatingIPs = append(s.FloatingIPs, FloatingIP{Floating: ap("172.16.0.99"), Fixed: ap("10.0.0.4")})
		}), "FloatingIPs[2].Fixed: 10.0.0.4 already has floating IP 172.16.0.10"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := renderSpec("astara", c.spec)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("error %v does not wrap ErrInvalidSpec", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
	if _, err := renderSpec("astara", fullSpec()); err != nil {
		t.Fatalf("full spec refused: %v", err)
	}
}

func TestIntervalElems(t *testing.T) {
	end := uint32(unix.NFT_SET_ELEM_INTERVAL_END)
	a := func(s string) uint32 { return v4(ap(s)) }
	cases := []struct {
		in    []string
		elems []uint64
		text  []string
	}{
		{nil, nil, nil},
		{[]string{"10.0.0.0/24"}, []uint64{elemKey(0, end), elemKey(a("10.0.0.0"), 0), elemKey(a("10.0.1.0"), end)}, []string{"10.0.0.0/24"}},
		// adjacent and overlapping prefixes merge, host bits are ignored
		{[]string{"10.0.1.9/24", "10.0.0.0/24", "10.0.0.128/25"}, []uint64{elemKey(0, end), elemKey(a("10.0.0.0"), 0), elemKey(a("10.0.2.0"), end)}, []string{"10.0.0.0/23"}},
		{[]string{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"}, nil, []string{"10.0.0.0-10.0.2.255"}},
		// a range at 0.0.0.0 needs no leading end element; one at the top no closing one
		{[]string{"0.0.0.0/8", "255.0.0.0/8"}, []uint64{elemKey(0, 0), elemKey(a("1.0.0.0"), end), elemKey(a("255.0.0.0"), 0)}, []string{"0.0.0.0/8", "255.0.0.0/8"}},
		{[]string{"192.168.1.1/32", "10.0.0.0/8"}, nil, []string{"10.0.0.0/8", "192.168.1.1"}},
	}
	for _, c := range cases {
		var ps []netip.Prefix
		for _, s := range c.in {
			ps = append(ps, pp(s))
		}
		got := intervalElems(ps)
		if c.elems != nil {
			want := map[uint64]uint32{}
			for _, e := range c.elems {
				want[e] = 0
			}
			if !sameElems(got, want) {
				t.Errorf("%v: elements %x, want %x", c.in, keysOf(got), c.elems)
			}
		}
		if txt := intervalStrings(kvs(got)); !slices.Equal(txt, c.text) {
			t.Errorf("%v: rendered %q, want %q", c.in, txt, c.text)
		}
	}
}

func sameElems(a, b map[uint64]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keysOf(m map[uint64]uint32) []uint64 {
	var ks []uint64
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestRuleIDs(t *testing.T) {
	d1 := buildSpec(t, fullSpec())
	memo := ruleMemo{}
	s0 := fullSpec()
	pairs, _ := validate(&s0)
	d2, err := build(&s0, pairs, memo)
	if err != nil {
		t.Fatal(err)
	}
	if d2again, _ := build(&s0, pairs, memo); d2again.chains[0].rules[0] != d2.chains[0].rules[0] {
		t.Error("memo not used")
	}
	seen := map[ruleID]string{}
	for ci, c := range d1.chains {
		for ri, r := range c.rules {
			if r.id != d2.chains[ci].rules[ri].id {
				t.Errorf("rule id of %q not deterministic", r.text)
			}
			if prev, ok := seen[r.id]; ok {
				t.Errorf("rules %q and %q share an id", prev, r.text)
			}
			seen[r.id] = r.text
			id, ok := ruleIDFromUserData(r.userData())
			if !ok || id != r.id {
				t.Errorf("user data of %q does not round-trip", r.text)
			}
		}
	}
	// The same rule text in two chains gets two ids; a changed rule a new id.
	s := fullSpec()
	s.External.SNATAddr = ap("172.16.0.3")
	d3, _ := build(&s, pairs, memo)
	post1, post3 := d1.chains[5].rules, d3.chains[5].rules
	if post1[len(post1)-1].id == post3[len(post3)-1].id {
		t.Error("changed SNAT rule kept its id")
	}
	if post1[0].id != post3[0].id {
		t.Error("unchanged rule changed id")
	}
	if _, ok := ruleIDFromUserData([]byte{0, 5, 'h', 'e', 'l', 'l', 'o'}); ok {
		t.Error("a comment TLV was taken for a rule id")
	}
	if id, ok := ruleIDFromUserData(append([]byte{0, 2, 'x', 0}, d1.chains[0].rules[0].userData()...)); !ok || id != d1.chains[0].rules[0].id {
		t.Error("rule id after another TLV not found")
	}
}

func TestDiffFIPs(t *testing.T) {
	fips := []FloatingIP{{ap("1.0.0.1"), ap("10.0.0.1")}, {ap("1.0.0.2"), ap("10.0.0.2")}}
	diff := func(fips []FloatingIP, dn, sn *elemSet, inverse bool) (fipDiff, error) {
		s := Spec{External: &External{IfName: "e"}, FloatingIPs: fips}
		pairs, err := validate(&s)
		if err != nil {
			t.Fatal(err)
		}
		return diffFIPs(pairs, fips, dn, sn, inverse)
	}
	mirror := func() (*elemSet, *elemSet) { dn, sn := fipElems(fips); return elemSetOf(dn), elemSetOf(sn) }
	dn, sn := mirror()
	for i := range 6 { // the epochs must not leak from one diff into the next
		d, err := diff(fips, dn, sn, i%2 == 0)
		if err != nil || len(d.dnAdds)+len(d.dnDels)+len(d.snAdds)+len(d.snDels) != 0 {
			t.Fatalf("identical: %+v %v", d, err)
		}
	}
	// Duplicates are refused whichever way they arise.
	for name, bad := range map[string][]FloatingIP{
		"same entry twice":         append(slices.Clone(fips), fips[0]),
		"floating twice, known":    append(slices.Clone(fips), FloatingIP{ap("1.0.0.1"), ap("10.0.0.9")}),
		"floating twice, new":      append(slices.Clone(fips), FloatingIP{ap("1.0.0.7"), ap("10.0.0.8")}, FloatingIP{ap("1.0.0.7"), ap("10.0.0.9")}),
		"fixed twice, known first": {{ap("1.0.0.9"), ap("10.0.0.1")}, fips[0], fips[1]},
		"fixed twice, new":         append(slices.Clone(fips), FloatingIP{ap("1.0.0.7"), ap("10.0.0.8")}, FloatingIP{ap("1.0.0.8"), ap("10.0.0.8")}),
	} {
		dn, sn := mirror()
		for _, inverse := range []bool{false, true} {
			if _, err := diff(bad, dn, sn, inverse); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("%s (inverse %v): %v", name, inverse, err)
			}
		}
	}
	// Re-pointing a floating IP: delete + add in dnat; snat loses the old
	// fixed and gains the new one.
	dn, sn = mirror()
	moved := []FloatingIP{{ap("1.0.0.1"), ap("10.0.0.9")}, fips[1]}
	d, err := diff(moved, dn, sn, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.dnDels, []uint64{uint64(v4(ap("1.0.0.1")))}) || len(d.dnAdds) != 1 || d.dnAdds[0].v != v4(ap("10.0.0.9")) {
		t.Errorf("dnat diff %+v", d)
	}
	if !slices.Equal(d.snDels, []uint64{uint64(v4(ap("10.0.0.1")))}) || len(d.snAdds) != 1 || d.snAdds[0].k != uint64(v4(ap("10.0.0.9"))) {
		t.Errorf("snat diff %+v", d)
	}
	// Removing everything.
	dn, sn = mirror()
	d, _ = diff(nil, dn, sn, true)
	if len(d.dnDels) != 2 || len(d.snDels) != 2 || len(d.dnAdds)+len(d.snAdds) != 0 {
		t.Errorf("remove all: %+v", d)
	}
	// A snat map that is not the inverse (say, after an external edit) is
	// repaired when inverse is false; with inverse the caller vouches for it.
	dn, sn = mirror()
	sn.put(uint64(v4(ap("10.0.0.77"))), v4(ap("1.0.0.77")))
	sn.del(uint64(v4(ap("10.0.0.1"))))
	d, _ = diff(fips, dn, sn, false)
	if len(d.snDels) != 1 || len(d.snAdds) != 1 || len(d.dnAdds)+len(d.dnDels) != 0 {
		t.Errorf("snat repair: %+v", d)
	}
	// From empty maps.
	d, _ = diff(fips, newElemSet(0), newElemSet(0), false)
	if len(d.dnAdds) != 2 || len(d.snAdds) != 2 || len(d.dnDels)+len(d.snDels) != 0 {
		t.Errorf("from empty: %+v", d)
	}
}

func TestElemSet(t *testing.T) {
	e := newElemSet(0)
	for i := range uint64(10) {
		e.put(i, uint32(i))
	}
	e.del(3)
	e.del(7)
	e.put(100, 1)
	e.put(5, 55) // update
	if e.len() != 9 {
		t.Errorf("len %d", e.len())
	}
	if v, ok := e.get(5); !ok || v != 55 {
		t.Errorf("get(5) = %d %v", v, ok)
	}
	if _, ok := e.get(3); ok {
		t.Error("deleted element found")
	}
	got := map[uint64]uint32{}
	for _, x := range e.elems() {
		got[x.k] = x.v
	}
	if !e.equal(got) || len(got) != 9 || got[100] != 1 {
		t.Errorf("elems %v", got)
	}
	ep := e.nextEpoch()
	for _, k := range []uint64{0, 1, 2, 4, 5, 6, 8} {
		e.m[k] = elemVal{val: e.m[k].val, mark: ep}
	}
	if u := e.unmarked(); !slices.Equal(slices.Sorted(slices.Values(u)), []uint64{9, 100}) {
		t.Errorf("unmarked %v", u)
	}
	// A new epoch unmarks everything; wrap-around resets the marks
	// instead of colliding with old ones.
	e.nextEpoch()
	if len(e.unmarked()) != 9 {
		t.Error("marks leaked into the next epoch")
	}
	e.epoch = ^uint32(0)
	e.m[1] = elemVal{val: 1, mark: 1}
	if ep := e.nextEpoch(); ep != 1 || len(e.unmarked()) != 9 {
		t.Errorf("wrap: epoch %d, unmarked %d", ep, len(e.unmarked()))
	}
}

func TestNetlinkEncoding(t *testing.T) {
	var w msgBuf
	off := w.begin(nftType(unix.NFT_MSG_NEWSET), unix.NLM_F_REQUEST, 7, nfprotoInet, 0)
	w.str(unix.NFTA_SET_NAME, "abc")
	w.u32(unix.NFTA_SET_FLAGS, 0x0a0b0c0d)
	n := w.nest(unix.NFTA_SET_DESC)
	w.u32(1, 42)
	w.endNest(n)
	w.end(off)
	if w.err != nil || len(w.b)%4 != 0 {
		t.Fatalf("err %v len %d", w.err, len(w.b))
	}
	var msgs int
	_, err := splitMsgs(w.b, func(m nlMsg) (bool, error) {
		msgs++
		if m.seq != 7 || m.typ != nftType(unix.NFT_MSG_NEWSET) || m.data[0] != nfprotoInet {
			t.Errorf("header %+v", m)
		}
		it := newAttrIter(m.data[nfgenLen:])
		var got []string
		for it.next() {
			switch it.typ {
			case unix.NFTA_SET_NAME:
				got = append(got, it.str())
			case unix.NFTA_SET_FLAGS:
				if it.u32() != 0x0a0b0c0d {
					t.Errorf("u32 %x", it.u32())
				}
				got = append(got, "flags")
			case unix.NFTA_SET_DESC:
				in := newAttrIter(it.val)
				if !in.next() || in.u32() != 42 {
					t.Error("nested attribute lost")
				}
				got = append(got, "desc")
			}
		}
		if !slices.Equal(got, []string{"abc", "flags", "desc"}) {
			t.Errorf("attributes %q", got)
		}
		return false, nil
	})
	if err != nil || msgs != 1 {
		t.Fatalf("split: %d msgs, %v", msgs, err)
	}
	// Oversized attributes are reported, not truncated.
	w = msgBuf{}
	n = w.nest(1)
	w.b = append(w.b, make([]byte, 70000)...)
	w.endNest(n)
	if w.err == nil {
		t.Error("nest over 64 KiB not reported")
	}
	// A malformed message length is an error.
	if _, err := splitMsgs([]byte{200, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, func(nlMsg) (bool, error) { return false, nil }); err == nil {
		t.Error("malformed length accepted")
	}
}

func TestParseError(t *testing.T) {
	// nlmsgerr with -EEXIST, capped, with an extended ack message.
	var w msgBuf
	w.b = append(w.b, 0xef, 0xff, 0xff, 0xff) // -17
	w.b = append(w.b, make([]byte, nlmsgHdrLen)...)
	w.str(unix.NLMSGERR_ATTR_MSG, "set exists")
	err := parseError(nlMsg{flags: unix.NLM_F_CAPPED | unix.NLM_F_ACK_TLVS, data: w.b})
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "set exists") {
		t.Errorf("got %v", err)
	}
	if err := parseError(nlMsg{data: make([]byte, 20)}); err != nil {
		t.Errorf("ack parsed as %v", err)
	}
}

func TestNewRefusesBadTableNames(t *testing.T) {
	for _, name := range []string{"with space", `qu"ote`, strings.Repeat("x", 256), "tab\t"} {
		if m, err := New(Options{Table: name}); err == nil {
			m.Close()
			t.Errorf("table name %q accepted", name)
		}
	}
}
