package metadata

import (
	"fmt"
	"net/netip"

	"github.com/astara-go/astara/internal/appliance/model"
)

// SpecFromDocument derives the proxy's Spec from a validated router document:
// one listener per tenant (internal or isolated) network, on the lowest IPv4
// address of its interface and port 9600+N for interface geN, mapping every
// allocated address on the network to its device id. Tenant networks without
// an IPv4 address get no listener: the DNAT that feeds the proxy is IPv4 only.
func SpecFromDocument(d *model.Document) (Spec, error) {
	s := Spec{
		TenantID: d.TenantID,
		Upstream: netip.AddrPortFrom(d.Orchestrator.Address, d.Orchestrator.MetadataPort),
	}
	for i := range d.Networks {
		n := &d.Networks[i]
		if !n.IsTenant() {
			continue
		}
		v4, ok := n.Interface.FirstV4()
		if !ok {
			continue
		}
		port, ok := model.MetadataPort(n.Interface.IfName)
		if !ok {
			return Spec{}, fmt.Errorf("metadata: networks[%d].interface.ifname: %q is not a generic interface name geN", i, n.Interface.IfName)
		}
		instances := map[netip.Addr]string{}
		for _, a := range n.Allocations {
			for ip := range a.IPAddresses {
				instances[ip] = a.DeviceID
			}
		}
		s.Networks = append(s.Networks, Network{
			ID:        n.ID,
			Listen:    netip.AddrPortFrom(v4.Addr(), port),
			Instances: instances,
		})
	}
	return s, nil
}
