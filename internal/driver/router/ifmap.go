package router

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/appliance/client"
	"github.com/astara-go/astara/internal/provider"
)

// Attachment is one of the appliance's NICs with the port behind it.
type Attachment struct {
	// IfName is the NIC's generic name (geN) as the appliance reports it.
	IfName string
	// MAC is the NIC's lladdr, which is the port's MAC.
	MAC string
	// Port is the appliance's port (ASTARA:MGT or ASTARA:VRRP).
	Port provider.Port
}

// InterfaceMap maps a network id to the appliance's NIC on that network.
type InterfaceMap map[string]Attachment

// Networks returns the mapped network ids, sorted.
func (m InterfaceMap) Networks() []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Mismatch says how an appliance's NICs differ from its ports.
type Mismatch struct {
	// Unplugged are ports no NIC carries.
	Unplugged []provider.Port
	// Unknown are NICs whose MAC is no port's.
	Unknown []client.Interface
	// Duplicate are further ports on a network that already has a NIC.
	Duplicate []provider.Port
}

func (m *Mismatch) Error() string {
	var parts []string
	for _, p := range m.Unplugged {
		parts = append(parts, fmt.Sprintf("port %s (%s, network %s) has no NIC", p.ID, p.MAC, p.NetworkID))
	}
	for _, n := range m.Unknown {
		parts = append(parts, fmt.Sprintf("NIC %s (%s) is no port of the appliance", n.IfName, n.LLAddr))
	}
	for _, p := range m.Duplicate {
		parts = append(parts, fmt.Sprintf("port %s (%s) is a second NIC on network %s", p.ID, p.MAC, p.NetworkID))
	}
	return "the appliance's NICs do not match its ports: " + strings.Join(parts, "; ")
}

// MapInterfaces matches the appliance's NICs to its ports (management and
// VRRP) by MAC, and so to networks. It returns what matched, and a
// *Mismatch when some port has no NIC, some NIC has no port, or a network
// has more than one.
func MapInterfaces(nics []client.Interface, ports []provider.Port) (InterfaceMap, error) {
	byMAC := make(map[string]client.Interface, len(nics))
	var mm Mismatch
	for _, n := range nics {
		byMAC[normalMAC(n.LLAddr)] = n
	}
	m := make(InterfaceMap, len(ports))
	matched := map[string]bool{}
	for _, p := range ports {
		mac := normalMAC(p.MAC)
		nic, ok := byMAC[mac]
		switch {
		case !ok || mac == "":
			mm.Unplugged = append(mm.Unplugged, p)
			continue
		case m[p.NetworkID].IfName != "":
			mm.Duplicate = append(mm.Duplicate, p)
		default:
			m[p.NetworkID] = Attachment{IfName: nic.IfName, MAC: mac, Port: p}
		}
		matched[mac] = true
	}
	for _, n := range nics {
		if !matched[normalMAC(n.LLAddr)] {
			mm.Unknown = append(mm.Unknown, n)
		}
	}
	if len(mm.Unplugged)+len(mm.Unknown)+len(mm.Duplicate) > 0 {
		return m, &mm
	}
	return m, nil
}

// normalMAC returns a MAC in lower-case colon form ("" when unparsable).
func normalMAC(s string) string {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return ""
	}
	return hw.String()
}
