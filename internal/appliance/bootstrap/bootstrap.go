// Package bootstrap configures an appliance's management interface before its
// REST API starts.
//
// The orchestrator boots each appliance with the management port's MAC and
// address in its user data: either our JSON form
//
//	{"astara": {"management": {"mac": "fa:16:3e:12:34:56", "address": "fdca:3ba5:a17a:acda::5/64", "mtu": 1500}}}
//
// or the original's cloud-config, whose bootcmd runs
// "astara-configure-management <MAC> <IP>/<prefix> [--mtu N]". ParseUserData
// and FromConfigDrive read either; Configure finds the interface by MAC and
// gives it the address, so that the API can bind to it at once.
package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// LegacyDefaultMTU is the MTU astara-configure-management set when the
// command line gave none; the JSON form leaves the MTU alone instead.
const LegacyDefaultMTU = 1280

const (
	minMTU   = 68
	minMTUv6 = 1280 // the kernel removes IPv6 from a link with a smaller MTU
	maxMTU   = 65535
)

// Management is the management interface's identity and address.
type Management struct {
	// MAC identifies the interface.
	MAC net.HardwareAddr
	// Address is the interface's address with its prefix length.
	Address netip.Prefix
	// MTU is set on the interface when non-zero.
	MTU int
}

// Validate checks m; the error names the offending field.
func (m Management) Validate() error {
	if err := checkMAC(m.MAC); err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	if err := checkAddress(m.Address); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if err := checkMTU(m.MTU, m.Address); err != nil {
		return fmt.Errorf("mtu: %w", err)
	}
	return nil
}

func checkMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) == 0:
		return errors.New("required")
	case len(mac) != 6:
		return fmt.Errorf("%s is not a 48-bit Ethernet address", mac)
	case mac[0]&1 == 1:
		return fmt.Errorf("%s is a multicast address, not an interface's", mac)
	case [6]byte(mac) == [6]byte{}:
		return fmt.Errorf("%s is not an interface's address", mac)
	}
	return nil
}

func checkAddress(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("required, as address/prefix-length")
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%s: a zone is not allowed", p)
	case a.Is4In6():
		return fmt.Errorf("%s: use the plain IPv4 form", p)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast():
		return fmt.Errorf("%s is not a routable unicast address", p)
	case p.Bits() == 0:
		return fmt.Errorf("%s: prefix length 0 is not an interface address", p)
	}
	return nil
}

func checkMTU(mtu int, addr netip.Prefix) error {
	if mtu == 0 {
		return nil
	}
	lo := minMTU
	if addr.Addr().Is6() {
		lo = minMTUv6
	}
	if mtu < lo || mtu > maxMTU {
		return fmt.Errorf("must be between %d and %d, not %d", lo, maxMTU, mtu)
	}
	return nil
}
