package netif

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SendGratuitousARP announces that this host now answers for addrs on link
// ifname: one ARP reply per address, broadcast, with sender and target both
// set to the address (as the original astara-gratuitous-arp did), so that
// neighbours update their caches at once instead of after they expire.
// IPv6 addresses are skipped (unsolicited neighbour advertisements are the
// kernel's job).
func SendGratuitousARP(ctx context.Context, ifname string, addrs []netip.Addr) error {
	link, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("gratuitous ARP on %s: %w", ifname, err)
	}
	if len(link.HardwareAddr) != 6 {
		return fmt.Errorf("gratuitous ARP on %s: no Ethernet address", ifname)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("gratuitous ARP socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  link.Index,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	frame := make([]byte, 42)
	for i, a := range addrs {
		if !a.Is4() {
			continue
		}
		if i%512 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		buildGARP(frame, link.HardwareAddr, a)
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("gratuitous ARP for %s on %s: %w", a, ifname, err)
		}
	}
	return nil
}

// buildGARP writes an Ethernet broadcast ARP reply for addr into frame (42 bytes).
func buildGARP(frame []byte, mac net.HardwareAddr, addr netip.Addr) {
	ip := addr.As4()
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], mac)
	binary.BigEndian.PutUint16(frame[12:14], unix.ETH_P_ARP)
	binary.BigEndian.PutUint16(frame[14:16], 1)      // htype Ethernet
	binary.BigEndian.PutUint16(frame[16:18], 0x0800) // ptype IPv4
	frame[18], frame[19] = 6, 4
	binary.BigEndian.PutUint16(frame[20:22], 2) // reply
	copy(frame[22:28], mac)
	copy(frame[28:32], ip[:])
	copy(frame[32:38], mac)
	copy(frame[38:42], ip[:])
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// FlushConntrack deletes the connection-tracking entries of IPv4 addresses
// the router no longer owns, so that established flows through a removed
// address or floating IP stop instead of being NATed by stale entries.
func (m *Manager) FlushConntrack(ctx context.Context, addrs []netip.Addr) (uint, error) {
	f := addrFilter{}
	for _, a := range addrs {
		if a.Is4() {
			f[a] = true
		}
	}
	if len(f) == 0 || conntrackEmpty() {
		return 0, ctx.Err()
	}
	n, err := m.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f)
	if err != nil {
		return n, fmt.Errorf("flushing conntrack entries: %w", err)
	}
	if n > 0 {
		m.log.Debug("conntrack entries flushed", "count", n, "addresses", len(f))
	}
	return n, nil
}

// conntrackEmpty reports whether this namespace tracks no connection, which
// spares a dump of the table.
func conntrackEmpty() bool {
	b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

// addrFilter matches flows originally sent to one of its addresses (DNAT,
// local) or whose replies go to one (SNAT).
type addrFilter map[netip.Addr]bool

func (f addrFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	for _, ip := range []net.IP{flow.Forward.DstIP, flow.Reverse.DstIP} {
		if a, ok := netip.AddrFromSlice(ip); ok && f[a.Unmap()] {
			return true
		}
	}
	return false
}
