package bootstrap

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// veth creates a veth pair name/name+"p" in the test's namespace, with the
// given MAC on name, and removes it when the test ends. peerUp gives name a
// carrier once it is up.
func veth(t *testing.T, name, mac string, peerUp bool) netlink.Link {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr = name, hw
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(&netlink.Veth{LinkAttrs: la}); err != nil {
			t.Errorf("delete veth %s: %v", name, err)
		}
	})
	if peerUp {
		if err := netlink.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "p"}}); err != nil {
			t.Fatalf("set %sp up: %v", name, err)
		}
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// linkState is what Configure may change on a link.
type linkState struct {
	MTU       int
	Up        bool
	AcceptDAD string
	Addrs     []string // "ip/len flags" of non-link-local addresses
}

func stateOf(t *testing.T, name string) linkState {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	dad, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/accept_dad")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	s := linkState{MTU: l.Attrs().MTU, Up: l.Attrs().Flags&net.FlagUp != 0, AcceptDAD: strings.TrimSpace(string(dad))}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		var flags []string
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			flags = append(flags, "tentative")
		}
		if a.Flags&unix.IFA_F_DADFAILED != 0 {
			flags = append(flags, "dadfailed")
		}
		s.Addrs = append(s.Addrs, strings.TrimSpace(a.IPNet.String()+" "+strings.Join(flags, ",")))
	}
	slices.Sort(s.Addrs)
	return s
}

// canBind checks that a socket can be bound to the address right now.
func canBind(t *testing.T, p netip.Prefix) {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(p.Addr(), 5000).String())
	if err != nil {
		t.Fatalf("binding %s right after Configure: %v", p.Addr(), err)
	}
	ln.Close()
}

// noAddressEvents runs fn and fails if it removed the address p or changed
// its prefix length or flags: it watches the kernel's address notifications
// until a sentinel change made after fn arrives. (The kernel re-announces
// unchanged addresses on its own, e.g. when a link gains its carrier, so an
// identical RTM_NEWADDR is not a change.)
func noAddressEvents(t *testing.T, link string, p netip.Prefix, fn func()) {
	t.Helper()
	before := addrFlags(t, link, p)
	ch := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	errs := make(chan error, 16)
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-done: // the subscription ends with an error
			case errs <- err:
			default:
			}
		},
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(done)
		for range ch { // until the subscription goroutine is gone
		}
	}()
	fn()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	sentinelIP := netip.MustParseAddr("127.0.0.77")
	sentinel := &netlink.Addr{IPNet: &net.IPNet{IP: sentinelIP.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrAdd(lo, sentinel); err != nil {
		t.Fatalf("add sentinel address: %v", err)
	}
	defer func() {
		if err := netlink.AddrDel(lo, sentinel); err != nil {
			t.Errorf("remove sentinel address: %v", err)
		}
	}()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case u := <-ch:
			got, _ := netip.AddrFromSlice(u.LinkAddress.IP)
			if got.Unmap() == sentinelIP {
				return
			}
			ones, _ := u.LinkAddress.Mask.Size()
			if got.Unmap() == p.Addr() && (!u.NewAddr || ones != p.Bits() || u.Flags != before) {
				t.Errorf("second Configure changed the address (flags before %#x): %+v", before, u)
			}
		case err := <-errs:
			t.Fatalf("address subscription: %v", err)
		case <-timeout:
			t.Fatal("no notification for the sentinel address")
		}
	}
}

// addrFlags returns the flags of the address p on the link.
func addrFlags(t *testing.T, link string, p netip.Prefix) int {
	t.Helper()
	l, err := netlink.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, _ := netip.AddrFromSlice(a.IP); ip.Unmap() == p.Addr() {
			return a.Flags
		}
	}
	t.Fatalf("%s has no address %s", link, p)
	return 0
}

func TestConfigureIPv6(t *testing.T) {
	nstest.Require(t)
	veth(t, "mgmt6", "fa:16:3e:00:00:06", true)
	m := want(t, "fa:16:3e:00:00:06", "fdca:3ba5:a17a:acda::5/64", 1450)
	if s := stateOf(t, "mgmt6"); s.AcceptDAD == "0" || s.Up {
		t.Fatalf("unexpected starting state %+v", s)
	}

	name, err := Configure(ctx(t), m)
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	canBind(t, m.Address)
	if name != "mgmt6" {
		t.Errorf("Configure returned %q, want mgmt6", name)
	}
	wantState := linkState{MTU: 1450, Up: true, AcceptDAD: "0", Addrs: []string{"fdca:3ba5:a17a:acda::5/64"}}
	got := stateOf(t, "mgmt6")
	if !equalState(got, wantState) {
		t.Errorf("after Configure: %+v, want %+v", got, wantState)
	}

	noAddressEvents(t, "mgmt6", m.Address, func() {
		if name, err := Configure(ctx(t), m); err != nil || name != "mgmt6" {
			t.Errorf("second Configure: %q, %v", name, err)
		}
	})
	if again := stateOf(t, "mgmt6"); !equalState(again, got) {
		t.Errorf("second Configure changed the link: %+v, was %+v", again, got)
	}
}

func TestConfigureIPv4(t *testing.T) {
	nstest.Require(t)
	veth(t, "mgmt4", "fa:16:3e:00:00:04", true)
	m := want(t, "FA:16:3E:00:00:04", "192.168.77.5/24", 0)

	name, err := Configure(ctx(t), m)
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	canBind(t, m.Address)
	if name != "mgmt4" {
		t.Errorf("Configure returned %q, want mgmt4", name)
	}
	got := stateOf(t, "mgmt4")
	if got.MTU != 1500 || !got.Up || !slices.Equal(got.Addrs, []string{"192.168.77.5/24"}) {
		t.Errorf("after Configure: %+v, want MTU untouched (1500), up, 192.168.77.5/24", got)
	}
	l, err := netlink.LinkByName("mgmt4")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || !addrs[0].Broadcast.Equal(net.IPv4(192, 168, 77, 255)) {
		t.Errorf("addresses %+v, want one with broadcast 192.168.77.255", addrs)
	}

	noAddressEvents(t, "mgmt4", m.Address, func() {
		if _, err := Configure(ctx(t), m); err != nil {
			t.Errorf("second Configure: %v", err)
		}
	})
	if again := stateOf(t, "mgmt4"); !equalState(again, got) {
		t.Errorf("second Configure changed the link: %+v, was %+v", again, got)
	}
}

func TestConfigureReplacesTentativeAddress(t *testing.T) {
	nstest.Require(t)
	// No carrier and DAD on: an address added by someone else stays tentative.
	l := veth(t, "mgmtt", "fa:16:3e:00:00:07", false)
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	stale := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("fdca::7"), Mask: net.CIDRMask(64, 128)}}
	if err := netlink.AddrAdd(l, stale); err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, "mgmtt"); !slices.Equal(s.Addrs, []string{"fdca::7/64 tentative"}) {
		t.Fatalf("setup: %+v, want a tentative address", s)
	}
	m := want(t, "fa:16:3e:00:00:07", "fdca::7/64", 0)
	if _, err := Configure(ctx(t), m); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	canBind(t, m.Address)
	if s := stateOf(t, "mgmtt"); !slices.Equal(s.Addrs, []string{"fdca::7/64"}) || s.AcceptDAD != "0" {
		t.Errorf("after Configure: %+v, want fdca::7/64 usable and DAD off", s)
	}
}

func TestConfigureFixesPrefixLength(t *testing.T) {
	nstest.Require(t)
	l := veth(t, "mgmtp", "fa:16:3e:00:00:08", true)
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 9, 0, 5), Mask: net.CIDRMask(16, 32)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Configure(ctx(t), want(t, "fa:16:3e:00:00:08", "10.9.0.5/24", 1400)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if s := stateOf(t, "mgmtp"); !slices.Equal(s.Addrs, []string{"10.9.0.5/24"}) || s.MTU != 1400 {
		t.Errorf("after Configure: %+v, want only 10.9.0.5/24 and MTU 1400", s)
	}
}

func TestConfigurePrefersTheDeviceOverItsUpperLink(t *testing.T) {
	nstest.Require(t)
	parent := veth(t, "mgmtv", "fa:16:3e:00:00:09", true)
	// A macvlan on it with the same MAC (as a VLAN would have); it goes
	// away with its parent.
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex, la.HardwareAddr = "mgmtv-mv", parent.Attrs().Index, parent.Attrs().HardwareAddr
	if err := netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		t.Fatalf("add macvlan: %v", err)
	}
	name, err := Configure(ctx(t), want(t, "fa:16:3e:00:00:09", "10.8.0.5/24", 0))
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if name != "mgmtv" {
		t.Errorf("Configure chose %q, want the device mgmtv, not the macvlan on it", name)
	}
}

func TestConfigureUnknownMAC(t *testing.T) {
	nstest.Require(t)
	veth(t, "mgmtu", "fa:16:3e:00:00:0a", true)
	_, err := Configure(ctx(t), want(t, "fa:16:3e:00:00:ff", "10.7.0.5/24", 0))
	if err == nil {
		t.Fatal("Configure found an interface for a MAC nobody has")
	}
	for _, s := range []string{"fa:16:3e:00:00:ff", "mgmtu=fa:16:3e:00:00:0a"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestConfigureInvalid(t *testing.T) {
	_, err := Configure(t.Context(), Management{Address: netip.MustParsePrefix("10.0.0.5/24")})
	if err == nil || !strings.Contains(err.Error(), "mac: required") {
		t.Errorf("Configure without a MAC: %v, want an error naming mac", err)
	}
}

func equalState(a, b linkState) bool {
	return a.MTU == b.MTU && a.Up == b.Up && a.AcceptDAD == b.AcceptDAD && slices.Equal(a.Addrs, b.Addrs)
}

func TestConfigurePrefersTheBridgeOverItsPort(t *testing.T) {
	nstest.Require(t)
	port := veth(t, "mgmtb", "fa:16:3e:00:00:0b", true)
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr = "mgmtbr", port.Attrs().HardwareAddr
	br := &netlink.Bridge{LinkAttrs: la}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(br); err != nil {
			t.Errorf("delete bridge: %v", err)
		}
	})
	if err := netlink.LinkSetMaster(port, br); err != nil {
		t.Fatal(err)
	}
	name, err := Configure(ctx(t), want(t, "fa:16:3e:00:00:0b", "10.6.0.5/24", 0))
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if name != "mgmtbr" {
		t.Errorf("Configure chose %q, want the bridge mgmtbr, not its port", name)
	}
	canBind(t, netip.MustParsePrefix("10.6.0.5/24"))
}
