package netapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

var subnetAttrs = map[string]access{
	"id": never, "name": onBoth, "tenant_id": onPost, "project_id": onPost, "network_id": onPost,
	"ip_version": onPost, "cidr": onPost, "prefixlen": onPost, "subnetpool_id": onPost,
	"use_default_subnetpool": onPost, "gateway_ip": onBoth, "allocation_pools": onBoth,
	"dns_nameservers": onBoth, "host_routes": onBoth, "enable_dhcp": onBoth,
	"ipv6_ra_mode": onPost, "ipv6_address_mode": onPost, "description": onBoth,
	"service_types": onBoth, "segment_id": onBoth, "tags": never,
	"created_at": never, "updated_at": never, "revision_number": never,
}

var subnetCollection = collection{
	name: "subnets",
	filters: attrSet("id", "name", "tenant_id", "project_id", "network_id", "ip_version", "cidr",
		"gateway_ip", "enable_dhcp", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id",
		"description", "service_types", "revision_number"),
}

var ipv6Modes = []string{modeSLAAC, modeStateful, modeStateless}

// subnetInput is what a subnet request gives.
type subnetInput struct {
	name, desc, raMode, addrMode string
	gateway                      netip.Addr
	dhcp                         bool
	pools                        []ipam.Range
	dns                          []netip.Addr
	routes                       []hostRoute
	serviceTypes                 []string

	hasName, hasDesc, hasGateway, noGateway, hasDHCP, hasPools bool
	hasDNS, hasRoutes, hasServiceTypes, hasRA, hasAddrMode     bool
}

func readSubnetInput(b *body) subnetInput {
	in := subnetInput{dhcp: true}
	in.hasName = b.str("name", maxNameLen, &in.name)
	in.hasDesc = b.str("description", maxDescLen, &in.desc)
	if b.isNull("gateway_ip") {
		in.hasGateway, in.noGateway = true, true
	} else {
		in.hasGateway = b.ip("gateway_ip", &in.gateway)
	}
	in.hasDHCP = b.boolean("enable_dhcp", &in.dhcp)
	for _, m := range []struct {
		k   string
		dst *string
		has *bool
	}{{"ipv6_ra_mode", &in.raMode, &in.hasRA}, {"ipv6_address_mode", &in.addrMode, &in.hasAddrMode}} {
		if b.isNull(m.k) {
			continue
		}
		if *m.has = b.str(m.k, maxNameLen, m.dst); *m.has && !slices.Contains(ipv6Modes, *m.dst) {
			b.fail(m.k, fmt.Sprintf("%s is not in valid_values", *m.dst))
		}
	}
	in.pools, in.hasPools = b.pools("allocation_pools")
	in.dns, in.hasDNS = b.nameservers("dns_nameservers")
	in.routes, in.hasRoutes = b.hostRoutes("host_routes", "hostroute")
	in.hasServiceTypes = b.strList("service_types", maxNameLen, &in.serviceTypes)
	for _, st := range in.serviceTypes {
		if !strings.HasPrefix(st, "network:") && !strings.HasPrefix(st, "compute:") {
			b.err = newError(http.StatusBadRequest, "InvalidSubnetServiceType", "Invalid input for operation: Subnet service type %s does not correspond to a valid device owner.", st)
		}
	}
	if b.has("segment_id") && !b.isNull("segment_id") {
		b.err = errInvalidInput("segment_id: routed networks are not supported by the embedded network API")
	}
	return in
}

func (b *body) pools(k string) ([]ipam.Range, bool) {
	var raw []map[string]json.RawMessage
	if !b.objects(k, "IP pool", &raw) {
		return nil, false
	}
	out := make([]ipam.Range, 0, len(raw))
	for _, m := range raw {
		var start, end string
		ok := len(m) == 2 && json.Unmarshal(m["start"], &start) == nil && json.Unmarshal(m["end"], &end) == nil
		if !ok {
			j, _ := json.Marshal(m)
			b.fail(k, fmt.Sprintf("Invalid data format for IP pool: '%s'", j))
			return nil, false
		}
		var r ipam.Range
		for _, x := range []struct {
			s   string
			dst *netip.Addr
		}{{start, &r.Start}, {end, &r.End}} {
			a, ok := parseIP(x.s)
			if !ok {
				b.fail(k, fmt.Sprintf("'%s' is not a valid IP address", x.s))
				return nil, false
			}
			*x.dst = a
		}
		out = append(out, r)
	}
	return out, true
}

func (b *body) nameservers(k string) ([]netip.Addr, bool) {
	var l []string
	if !b.decode(k, &l, "'%s' is not a list") {
		return nil, false
	}
	out := make([]netip.Addr, 0, len(l))
	for _, s := range l {
		a, ok := parseIP(s)
		if !ok {
			b.fail(k, fmt.Sprintf("'%s' is not a valid nameserver. '%s' is not a valid IP address", s, s))
			return nil, false
		}
		if slices.Contains(out, a) {
			b.fail(k, fmt.Sprintf("Duplicate nameserver '%s'", s))
			return nil, false
		}
		out = append(out, a)
	}
	return out, true
}

// hostRoutes reads host routes (a subnet's) or extra routes (a router's).
func (b *body) hostRoutes(k, what string) ([]hostRoute, bool) {
	var raw []map[string]json.RawMessage
	if !b.objects(k, what, &raw) {
		return nil, false
	}
	out := make([]hostRoute, 0, len(raw))
	for _, m := range raw {
		var dst, hop string
		ok := len(m) == 2 && json.Unmarshal(m["destination"], &dst) == nil && json.Unmarshal(m["nexthop"], &hop) == nil
		if !ok {
			j, _ := json.Marshal(m)
			b.fail(k, fmt.Sprintf("Invalid data format for %s: '%s'", what, j))
			return nil, false
		}
		p, reason := parseRouteCIDR(dst)
		if reason != "" {
			b.fail(k, reason)
			return nil, false
		}
		a, okIP := parseIP(hop)
		if !okIP {
			b.fail(k, fmt.Sprintf("'%s' is not a valid IP address", hop))
			return nil, false
		}
		r := hostRoute{Destination: p, NextHop: a}
		if slices.Contains(out, r) {
			b.fail(k, fmt.Sprintf("Duplicate %s '%s'", what, fmt.Sprintf("{'destination': '%s', 'nexthop': '%s'}", dst, hop)))
			return nil, false
		}
		out = append(out, r)
	}
	return out, true
}

func ipVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func versionMismatch(name, addr string, version int) *apiError {
	return errInvalidInput("%s '%s' does not match the ip_version '%d'", name, addr, version)
}

// validateSubnet checks what create and update share (Neutron's
// _validate_subnet); cur is the stored subnet of an update.
func validateSubnet(in *subnetInput, s *subnet, cur *subnet) error {
	v := s.IPVersion
	if in.hasDHCP && in.dhcp && (cur == nil || !cur.EnableDHCP) {
		if (v == 4 && s.CIDR.Bits() > 30) || (v == 6 && s.CIDR.Bits() > 126) {
			return errInvalidInput("Subnet has a prefix length that is incompatible with DHCP service enabled")
		}
		switch a := s.CIDR.Addr(); {
		case a.IsMulticast():
			return errInvalidInput("Multicast IP subnet is not supported if enable_dhcp is True")
		case a.IsLoopback():
			return errInvalidInput("Loopback IP subnet is not supported if enable_dhcp is True")
		case v == 4 && a == netip.IPv4Unspecified():
			return errInvalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.")
		}
	}
	if in.hasGateway && !in.noGateway {
		if ipVersion(in.gateway) != v {
			return versionMismatch("gateway_ip", in.gateway.String(), v)
		}
		if v == 4 && s.CIDR.Contains(in.gateway) && (in.gateway == ipam.First(s.CIDR) || in.gateway == ipam.Last(s.CIDR)) {
			return errInvalidInput("Gateway is not valid on subnet")
		}
	}
	if in.hasDNS {
		if len(in.dns) > maxDNS {
			return newError(http.StatusBadRequest, "DNSNameServersExhausted",
				"Unable to complete operation for %s. The number of DNS nameservers exceeds the limit %d.", subnetRef(cur), maxDNS)
		}
		for _, d := range in.dns {
			if ipVersion(d) != v {
				return versionMismatch("dns_nameserver", d.String(), v)
			}
		}
	}
	if in.hasRoutes {
		if len(in.routes) > maxRoutes {
			return newError(http.StatusBadRequest, "HostRoutesExhausted",
				"Unable to complete operation for %s. The number of host routes exceeds the limit %d.", subnetRef(cur), maxRoutes)
		}
		for _, r := range in.routes {
			if ipVersion(r.NextHop) != v {
				return versionMismatch("nexthop", r.NextHop.String(), v)
			}
			if ipVersion(r.Destination.Addr()) != v {
				return versionMismatch("destination", r.Destination.String(), v)
			}
		}
	}
	if v == 4 {
		if in.hasRA {
			return errInvalidInput("ipv6_ra_mode is not valid when ip_version is 4")
		}
		if in.hasAddrMode {
			return errInvalidInput("ipv6_address_mode is not valid when ip_version is 4")
		}
		return nil
	}
	if cur != nil {
		if in.hasDHCP && !in.dhcp && (cur.RAMode != "" || cur.AddressMode != "") {
			return errInvalidInput("Cannot disable enable_dhcp with ipv6 attributes set")
		}
		return nil
	}
	if (in.hasRA || in.hasAddrMode) && !s.EnableDHCP {
		return errInvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
	}
	if in.hasRA && in.hasAddrMode && in.raMode != in.addrMode {
		return errInvalidInput("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value", in.raMode, in.addrMode)
	}
	if (in.hasRA || in.hasAddrMode) && s.autoAddress() && s.CIDR.Bits() != 64 {
		return errInvalidInput("Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64", s.CIDR)
	}
	return nil
}

func subnetRef(cur *subnet) string {
	if cur == nil {
		return "new subnet"
	}
	return cur.ID
}

// poolError maps an ipam pool error to Neutron's.
func poolError(err error, cidr netip.Prefix) error {
	pe, ok := err.(*ipam.PoolError)
	if !ok {
		return err
	}
	switch pe.Kind {
	case ipam.OutOfBoundsAllocationPool:
		return newError(http.StatusBadRequest, string(pe.Kind), "The allocation pool %s spans beyond the subnet cidr %s.", pe.Pool, cidr)
	case ipam.OverlappingAllocationPools:
		return errConflict(string(pe.Kind), "Found overlapping allocation pools: %s %s for subnet %s.", pe.Pool, pe.Other, cidr)
	case ipam.GatewayConflictWithAllocationPools:
		return errConflict(string(pe.Kind), "Gateway ip %s conflicts with allocation pool %s.", pe.Gateway, pe.Pool)
	}
	return newError(http.StatusBadRequest, string(pe.Kind), "The allocation pool %s is not valid.", pe.Pool)
}

func (s *Server) listSubnets(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.list(r, subnetCollection, func(t *txn) ([]object, error) {
		subs, err := t.subnets()
		if err != nil {
			return nil, err
		}
		nets := networkCache{t: t}
		var objs []object
		for _, sn := range subs {
			n, err := nets.get(sn.NetworkID)
			if err != nil {
				return nil, err
			}
			if canSeeSubnet(c, sn, n) {
				objs = append(objs, renderSubnet(sn, n, viewShow))
			}
		}
		return objs, nil
	})
}

// visibleSubnet reads a subnet the caller can see; 404 otherwise.
func (t *txn) visibleSubnet(c *caller, id string) (*subnet, *network, error) {
	sn, err := t.subnet(id)
	if err != nil {
		return nil, nil, err
	}
	if sn == nil {
		return nil, nil, errSubnetNotFound(id)
	}
	n, err := t.network(sn.NetworkID)
	if err != nil {
		return nil, nil, err
	}
	if !canSeeSubnet(c, sn, n) {
		return nil, nil, errSubnetNotFound(id)
	}
	return sn, n, nil
}

func (s *Server) showSubnet(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.show(r, "subnet", func(t *txn) (object, error) {
		sn, n, err := t.visibleSubnet(c, pathID(r))
		if err != nil {
			return nil, err
		}
		return renderSubnet(sn, n, viewShow), nil
	})
}

func (s *Server) prepareSubnet(c *caller, b *body) (applyFunc, error) {
	var networkID string
	b.require("network_id")
	b.uuid("network_id", &networkID)
	b.require("ip_version")
	var version int
	if b.integer("ip_version", &version) && version != 4 && version != 6 {
		b.fail("ip_version", fmt.Sprintf("%d is not in valid_values", version))
	}
	var cidr netip.Prefix
	hasCIDR := b.subnetCIDR("cidr", &cidr)
	var poolID string
	if !b.isNull("subnetpool_id") {
		b.uuid("subnetpool_id", &poolID)
	}
	var useDefault bool
	b.boolean("use_default_subnetpool", &useDefault)
	var prefixlen int
	hasPrefixlen := b.integer("prefixlen", &prefixlen)
	in := readSubnetInput(b)
	if b.err != nil {
		return nil, b.err
	}
	tenant, err := b.project(c)
	if err != nil {
		return nil, err
	}
	if err := s.checkNetworkOwnership(c, "subnet", networkID, tenant); err != nil {
		return nil, err
	}
	return func(t *txn) (object, error) {
		switch {
		case hasCIDR && hasPrefixlen:
			return nil, errBadResourceRequest("subnets", "cidr and prefixlen must not be supplied together")
		case poolID != "":
			return nil, errNotFound("SubnetPoolNotFound", "Subnet pool %s could not be found.", poolID)
		case !hasCIDR:
			return nil, errBadResourceRequest("subnets", "a subnetpool must be specified in the absence of a cidr")
		case ipVersion(cidr.Addr()) != version:
			return nil, versionMismatch("cidr", cidr.String(), version)
		case cidr.Bits() == 0:
			return nil, errInvalidInput("0 is not allowed as CIDR prefix length")
		}
		sn := &subnet{IPVersion: version, CIDR: cidr, TenantID: tenant, Name: in.name, EnableDHCP: in.dhcp,
			RAMode: in.raMode, AddressMode: in.addrMode, DNS: orEmpty(in.dns), HostRoutes: orEmpty(in.routes),
			ServiceTypes: orEmpty(in.serviceTypes)}
		if !in.hasGateway {
			// Neutron's default: the first host of an IPv4 subnet, the
			// subnet-router anycast (network) address of an IPv6 one.
			sn.GatewayIP = ipam.First(cidr)
			if version == 4 {
				sn.GatewayIP = sn.GatewayIP.Next()
			}
		} else if !in.noGateway {
			sn.GatewayIP = in.gateway
		}
		if err := validateSubnet(&in, sn, nil); err != nil {
			return nil, err
		}
		if in.hasServiceTypes && len(in.serviceTypes) > 0 && !c.Admin {
			return nil, errPolicyAttr("create_subnet", "service_types")
		}
		if in.hasPools {
			if sn.Pools, err = ipam.ValidatePools(cidr, in.pools, sn.GatewayIP); err != nil {
				return nil, poolError(err, cidr)
			}
		} else {
			sn.Pools = ipam.GeneratePools(cidr, sn.GatewayIP)
		}
		n, err := t.network(networkID)
		if err != nil {
			return nil, err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return nil, errNetworkNotFound(networkID)
		}
		if !c.owns(n.TenantID) {
			return nil, errPolicy("create_subnet")
		}
		existing, err := t.subnetsOf(n)
		if err != nil {
			return nil, err
		}
		for _, o := range existing {
			if o.CIDR.Overlaps(cidr) {
				return nil, errInvalidInput("Requested subnet with cidr: %s for network: %s overlaps with another subnet", cidr, n.ID)
			}
		}
		sn.ID, sn.NetworkID = newUUID(), n.ID
		if sn.standard, err = t.newStandard(in.desc, nil, 0); err != nil {
			return nil, err
		}
		if err := put(t, bucketSubnets, sn); err != nil {
			return nil, err
		}
		n.Subnets = append(n.Subnets, sn.ID)
		n.touch(t.now)
		if err := put(t, bucketNetworks, n); err != nil {
			return nil, err
		}
		if sn.autoAddress() {
			if err := t.addAutoAddresses(n, sn); err != nil {
				return nil, err
			}
		}
		return renderSubnet(sn, n, viewCreated), nil
	}, nil
}

// addAutoAddresses gives the ports of n (router interfaces excepted) their
// EUI-64 address on a new SLAAC subnet, as Neutron does.
func (t *txn) addAutoAddresses(n *network, sn *subnet) error {
	ports, err := t.portsWhere(func(p *port) bool { return p.NetworkID == n.ID && !routerInterfaceOwner(p.DeviceOwner) })
	if err != nil {
		return err
	}
	for _, old := range ports {
		if len(sn.ServiceTypes) > 0 && !slices.Contains(sn.ServiceTypes, old.DeviceOwner) {
			continue
		}
		ip, err := ipam.EUI64(sn.CIDR, old.MAC)
		if err != nil {
			return err
		}
		if t.ipHolder(sn.ID, ip) != "" {
			continue
		}
		p := clonePort(old)
		p.FixedIPs = append(p.FixedIPs, fixedIP{SubnetID: sn.ID, IP: ip})
		p.touch(t.now)
		if err := t.savePort(old, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) updateSubnet(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	b, err := readBody(r, c, "subnet", subnetAttrs)
	if err != nil {
		return 0, nil, err
	}
	in := readSubnetInput(b)
	if b.err != nil {
		return 0, nil, b.err
	}
	id := pathID(r)
	s.notifyStart(c, "subnet.update.start", startPayload("subnet", b.raw, id))
	var out object
	err = s.write(c, func(t *txn) error {
		sn, n, err := t.visibleSubnet(c, id)
		if err != nil {
			return err
		}
		if !c.owns(n.TenantID) {
			return errPolicy("update_subnet")
		}
		if in.hasServiceTypes && !c.Admin {
			return errPolicyAttr("update_subnet", "service_types")
		}
		if err := checkIfMatch(r, &sn.standard); err != nil {
			return err
		}
		if err := validateSubnet(&in, sn, sn); err != nil {
			return err
		}
		gateway := sn.GatewayIP
		if in.hasGateway {
			gateway = in.gateway
			if in.noGateway {
				gateway = netip.Addr{}
			}
		}
		if gateway != sn.GatewayIP && sn.GatewayIP.IsValid() {
			if h := t.ipHolder(sn.ID, sn.GatewayIP); h != "" {
				if p, err := t.port(h); err != nil {
					return err
				} else if p != nil && routerOwner(p.DeviceOwner) {
					return errConflict("GatewayIpInUse", "Current gateway ip %s already in use by port %s. Unable to update.", sn.GatewayIP, h)
				}
			}
		}
		pools := sn.Pools
		if in.hasPools {
			pools = in.pools
		}
		if in.hasPools || gateway != sn.GatewayIP {
			if pools, err = ipam.ValidatePools(sn.CIDR, pools, gateway); err != nil {
				return poolError(err, sn.CIDR)
			}
		}
		sn.GatewayIP, sn.Pools = gateway, pools
		set(in.hasName, &sn.Name, in.name)
		set(in.hasDesc, &sn.Description, in.desc)
		set(in.hasDHCP, &sn.EnableDHCP, in.dhcp)
		set(in.hasDNS, &sn.DNS, in.dns)
		set(in.hasRoutes, &sn.HostRoutes, in.routes)
		set(in.hasServiceTypes, &sn.ServiceTypes, in.serviceTypes)
		sn.touch(t.now)
		if err := put(t, bucketSubnets, sn); err != nil {
			return err
		}
		n.touch(t.now)
		if err := put(t, bucketNetworks, n); err != nil {
			return err
		}
		out = renderSubnet(sn, n, viewUpdated)
		t.emit("subnet.update.end", object{{"subnet", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"subnet", out}}, nil
}

func (s *Server) deleteSubnet(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	s.notifyStart(c, "subnet.delete.start", deletePayload("subnet", id, nil))
	err := s.write(c, func(t *txn) error {
		sn, n, err := t.visibleSubnet(c, id)
		if err != nil {
			return err
		}
		if !c.owns(n.TenantID) {
			return errPolicy("delete_subnet")
		}
		ports, err := t.portsWhere(func(p *port) bool {
			return slices.ContainsFunc(p.FixedIPs, func(f fixedIP) bool { return f.SubnetID == id })
		})
		if err != nil {
			return err
		}
		inUse := errConflict("SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
		for _, p := range ports {
			if routerInterfaceOwner(p.DeviceOwner) {
				return inUse
			}
		}
		for _, p := range ports {
			if !sn.autoAddress() && !slices.Contains(autoDeleteOwners, p.DeviceOwner) {
				return inUse
			}
		}
		deleted := renderSubnet(sn, n, viewDeleted)
		for _, old := range ports {
			p := clonePort(old)
			p.FixedIPs = slices.DeleteFunc(p.FixedIPs, func(f fixedIP) bool { return f.SubnetID == id })
			p.touch(t.now)
			if err := t.savePort(old, p); err != nil {
				return err
			}
		}
		if err := del(t, bucketSubnets, id); err != nil {
			return err
		}
		n.Subnets = slices.DeleteFunc(n.Subnets, func(s string) bool { return s == id })
		n.touch(t.now)
		if err := put(t, bucketNetworks, n); err != nil {
			return err
		}
		t.emit("subnet.delete.end", object{{"subnet", deleted}, {"subnet_id", id}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
