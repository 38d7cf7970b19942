package netapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

var routerAttrs = map[string]access{
	"id": never, "name": onBoth, "tenant_id": onPost, "project_id": onPost,
	"admin_state_up": onBoth, "status": never, "external_gateway_info": onBoth,
	"description": onBoth, "routes": onPut, "distributed": onBoth, "ha": onBoth,
	"availability_zone_hints": onPost, "availability_zones": never, "flavor_id": onPost,
	"tags": never, "created_at": never, "updated_at": never, "revision_number": never,
}

var routerCollection = collection{
	name: "routers",
	filters: attrSet("id", "name", "tenant_id", "project_id", "admin_state_up", "status",
		"description", "distributed", "ha", "flavor_id", "revision_number"),
}

// maxRoutes is [DEFAULT]max_routes.
const maxExtraRoutes = 30

// gatewayInput is a requested external_gateway_info; nil clears the gateway.
type gatewayInput struct {
	networkID    string
	enableSNAT   bool
	hasSNAT      bool
	fixedIPs     []ipRequest
	hasFixedIPs  bool
	clearGateway bool
}

func (b *body) gateway() *gatewayInput {
	v, ok := b.attrs["external_gateway_info"]
	if !ok || b.err != nil {
		return nil
	}
	g := &gatewayInput{enableSNAT: true}
	if b.isNull("external_gateway_info") {
		g.clearGateway = true
		return g
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		b.fail("external_gateway_info", fmt.Sprintf("'%s' is not a dictionary", shown(v)))
		return nil
	}
	if len(m) == 0 {
		g.clearGateway = true
		return g
	}
	var unknown []string
	for k := range m {
		if k != "network_id" && k != "enable_snat" && k != "external_fixed_ips" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 || m["network_id"] == nil {
		slices.Sort(unknown)
		b.fail("external_gateway_info", fmt.Sprintf("Validation of dictionary's keys failed. Expected keys: {'network_id'} Provided keys: {'%s'}", strings.Join(mapKeys(m), "', '")))
		return nil
	}
	sub := &body{attrs: m}
	sub.uuid("network_id", &g.networkID)
	g.hasSNAT = sub.boolean("enable_snat", &g.enableSNAT)
	if !sub.isNull("external_fixed_ips") {
		g.fixedIPs, g.hasFixedIPs = sub.fixedIPs("external_fixed_ips")
	}
	if sub.err != nil {
		e, _ := asAPIError(sub.err)
		b.err = errBadRequest("Invalid input for external_gateway_info. Reason: %s", strings.TrimPrefix(e.Message, "Invalid input for "))
		return nil
	}
	return g
}

func mapKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// routerInput is what a router request gives.
type routerInput struct {
	name, desc                       string
	up, distributed, ha              bool
	gw                               *gatewayInput
	routes                           []hostRoute
	hasName, hasDesc, hasUp          bool
	hasDistributed, hasHA, hasRoutes bool
}

func readRouterInput(b *body) routerInput {
	in := routerInput{up: true}
	in.hasName = b.str("name", maxNameLen, &in.name)
	in.hasDesc = b.str("description", maxDescLen, &in.desc)
	in.hasUp = b.boolean("admin_state_up", &in.up)
	in.hasDistributed = b.boolean("distributed", &in.distributed)
	in.hasHA = b.boolean("ha", &in.ha)
	in.gw = b.gateway()
	in.routes, in.hasRoutes = b.hostRoutes("routes", "hostroute")
	var azHints []string
	if b.strList("availability_zone_hints", maxNameLen, &azHints) && len(azHints) > 0 && b.err == nil {
		b.err = errNotFound("AvailabilityZoneNotFound", "AvailabilityZone %s could not be found.", azHints[0])
	}
	var flavor string
	if !b.isNull("flavor_id") && b.uuid("flavor_id", &flavor) && b.err == nil {
		b.err = errNotFound("FlavorNotFound", "Flavor %s could not be found.", flavor)
	}
	return in
}

func checkRouterPolicy(c *caller, in *routerInput, action string) error {
	switch {
	case in.hasDistributed && in.distributed:
		if !c.Admin {
			return errPolicyAttr(action, "distributed")
		}
		return errBadResourceRequest("router", "distributed routers are not supported by the embedded network API")
	case in.hasHA && in.ha:
		if !c.Admin {
			return errPolicyAttr(action, "ha")
		}
		return errBadResourceRequest("router", "HA routers are not supported by the embedded network API")
	case c.Admin || in.gw == nil || (!in.gw.hasSNAT && !in.gw.hasFixedIPs):
		return nil
	}
	// Neutron checks the gateway's sub-attributes given, nested.
	gw := "rule:" + action + ":external_gateway_info"
	rules := []string{gw + ":network_id"}
	if in.gw.hasSNAT {
		rules = append(rules, gw+":enable_snat")
	}
	if in.gw.hasFixedIPs {
		rules = append(rules, gw+":external_fixed_ips")
	}
	return newError(http.StatusForbidden, "PolicyNotAuthorized", "(rule:%s and (%s and (%s))) is disallowed by policy",
		action, gw, strings.Join(rules, " and "))
}

// gatewayPort returns a router's gateway port (nil: none).
func (t *txn) gatewayPort(r *router) (*port, error) {
	if r.Gateway == nil || r.Gateway.PortID == "" {
		return nil, nil
	}
	return t.port(r.Gateway.PortID)
}

func (t *txn) renderRouter(r *router, c *caller, v view) (object, error) {
	gw, err := t.gatewayPort(r)
	if err != nil {
		return nil, err
	}
	return renderRouter(r, gw, c, v), nil
}

// routerPorts returns the ports whose device is r.
func (t *txn) routerPorts(r *router) ([]*port, error) {
	return t.portsWhere(func(p *port) bool { return p.DeviceID == r.ID && routerOwner(p.DeviceOwner) })
}

func (s *Server) listRouters(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.list(r, routerCollection, func(t *txn) ([]object, error) {
		routers, err := t.routers()
		if err != nil {
			return nil, err
		}
		var objs []object
		for _, rt := range routers {
			if c.owns(rt.TenantID) {
				o, err := t.renderRouter(rt, c, viewShow)
				if err != nil {
					return nil, err
				}
				objs = append(objs, o)
			}
		}
		return objs, nil
	})
}

// visibleRouter reads a router the caller owns; 404 otherwise.
func (t *txn) visibleRouter(c *caller, id string) (*router, error) {
	rt, err := t.router(id)
	if err != nil {
		return nil, err
	}
	if rt == nil || !c.owns(rt.TenantID) {
		return nil, errRouterNotFound(id)
	}
	return rt, nil
}

func (s *Server) showRouter(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.show(r, "router", func(t *txn) (object, error) {
		rt, err := t.visibleRouter(c, pathID(r))
		if err != nil {
			return nil, err
		}
		return t.renderRouter(rt, c, viewShow)
	})
}

func (s *Server) prepareRouter(c *caller, b *body) (applyFunc, error) {
	in := readRouterInput(b)
	if b.err != nil {
		return nil, b.err
	}
	tenant, err := b.project(c)
	if err != nil {
		return nil, err
	}
	return func(t *txn) (object, error) {
		if err := checkRouterPolicy(c, &in, "create_router"); err != nil {
			return nil, err
		}
		rt := &router{ID: newUUID(), Name: in.name, TenantID: tenant, AdminStateUp: in.up, Routes: []hostRoute{}}
		var err error
		if rt.standard, err = t.newStandard(in.desc, nil, 1); err != nil {
			return nil, err
		}
		if in.gw != nil && !in.gw.clearGateway {
			bumps, err := t.setGateway(c, rt, in.gw)
			if err != nil {
				return nil, err
			}
			rt.Revision += int64(bumps)
		}
		if err := put(t, bucketRouters, rt); err != nil {
			return nil, err
		}
		return t.renderRouter(rt, c, viewCreated)
	}, nil
}

// setGateway sets, changes or clears (g.clearGateway) a router's external
// gateway, as Neutron's _update_router_gw_info: the gateway port is a
// port of no project on the external network, owned by the router. It
// returns how many revisions the change takes, as measured on Neutron
// (Zed): a new gateway 2, a removed one 3, the same network again
// (addresses or SNAT changed or not) 1.
func (t *txn) setGateway(c *caller, rt *router, g *gatewayInput) (int, error) {
	bumps := 0
	old, err := t.gatewayPort(rt)
	if err != nil {
		return 0, err
	}
	var ext *network
	if !g.clearGateway {
		if ext, err = t.network(g.networkID); err != nil {
			return 0, err
		}
		if ext == nil || !canSeeNetwork(c, ext) {
			return 0, errNetworkNotFound(g.networkID)
		}
		if !ext.External {
			return 0, errBadResourceRequest("router", "Network %s is not an external network", ext.ID)
		}
		subs, err := t.subnetsOf(ext)
		if err != nil {
			return 0, err
		}
		for _, f := range g.fixedIPs {
			for _, sn := range subs {
				if f.IP.IsValid() && f.IP == sn.GatewayIP {
					return 0, errBadResourceRequest("router", "External IP %s is the same as the gateway IP", f.IP)
				}
			}
		}
	}
	sameNetwork := old != nil && ext != nil && old.NetworkID == ext.ID
	if sameNetwork {
		rt.Gateway.EnableSNAT, bumps = g.enableSNAT, 1
		if g.hasFixedIPs && len(g.fixedIPs) > 0 && externalIPsChanged(old, g.fixedIPs) {
			a, err := t.allocator(ext, old.ID)
			if err != nil {
				return 0, err
			}
			p := clonePort(old)
			if p.FixedIPs, err = a.forUpdate(p, g.fixedIPs, p.MAC); err != nil {
				return 0, err
			}
			p.touch(t.now)
			if err := t.savePort(old, p); err != nil {
				return 0, err
			}
		}
		return bumps, t.validateRoutes(rt, rt.Routes, nil)
	}
	if old != nil {
		if err := t.removeGateway(rt, old); err != nil {
			return 0, err
		}
		bumps += 3
	}
	if ext == nil {
		return bumps, t.validateRoutes(rt, rt.Routes, nil)
	}
	subs, err := t.subnetsOf(ext)
	if err != nil {
		return 0, err
	}
	if err := t.checkDuplicateRouterSubnets(rt, subs); err != nil {
		return 0, err
	}
	p := &port{ID: newUUID(), NetworkID: ext.ID, TenantID: "", AdminStateUp: true,
		DeviceID: rt.ID, DeviceOwner: ownerRouterGateway, PortSecurity: false,
		SecurityGroups: []string{}, VNICType: "normal", AddressPairs: []addressPair{}}
	if err := t.pickMAC(p, ""); err != nil {
		return 0, err
	}
	a, err := t.allocator(ext, p.ID)
	if err != nil {
		return 0, err
	}
	if p.FixedIPs, err = a.forNewPort(g.fixedIPs, g.hasFixedIPs && len(g.fixedIPs) > 0, p.DeviceOwner, p.MAC); err != nil {
		return 0, err
	}
	if p.standard, err = t.newStandard("", nil, 1); err != nil {
		return 0, err
	}
	if err := t.savePort(nil, p); err != nil {
		return 0, err
	}
	rt.Gateway = &gateway{NetworkID: ext.ID, EnableSNAT: g.enableSNAT, PortID: p.ID}
	return bumps + 2, t.validateRoutes(rt, rt.Routes, nil)
}

// removeGateway deletes a router's gateway port, unless floating IPs
// depend on it.
func (t *txn) removeGateway(rt *router, gw *port) error {
	fips, err := t.floatingIPs()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(fips, func(f *floatingIP) bool { return f.RouterID == rt.ID }) {
		return errConflict("RouterExternalGatewayInUseByFloatingIp",
			"Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.", rt.ID, gw.NetworkID)
	}
	if err := t.savePort(gw, nil); err != nil {
		return err
	}
	rt.Gateway = nil
	return nil
}

func externalIPsChanged(gw *port, want []ipRequest) bool {
	var haveSubnets, wantSubnets, haveIPs, wantIPs []string
	for _, f := range gw.FixedIPs {
		haveSubnets = append(haveSubnets, f.SubnetID)
		haveIPs = append(haveIPs, f.IP.String())
	}
	for _, r := range want {
		if r.SubnetID != "" {
			wantSubnets = append(wantSubnets, r.SubnetID)
		}
		if r.IP.IsValid() {
			wantIPs = append(wantIPs, r.IP.String())
		}
	}
	same := func(a, b []string) bool {
		a, b = slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b)))
		return slices.Equal(a, b)
	}
	return !same(haveSubnets, wantSubnets) || !same(haveIPs, wantIPs)
}

// checkDuplicateRouterSubnets refuses subnets a router already has a port
// on, or that overlap its other subnets (Neutron's
// _check_for_dup_router_subnets).
func (t *txn) checkDuplicateRouterSubnets(rt *router, newSubnets []*subnet) error {
	ports, err := t.routerPorts(rt)
	if err != nil {
		return err
	}
	var mine []*subnet
	for _, p := range ports {
		for _, f := range p.FixedIPs {
			if slices.ContainsFunc(newSubnets, func(s *subnet) bool { return s.ID == f.SubnetID }) {
				return errBadResourceRequest("router", "Router already has a port on subnet %s", f.SubnetID)
			}
		}
		if p.DeviceOwner == ownerRouterGateway {
			n, err := t.network(p.NetworkID)
			if err != nil {
				return err
			}
			if n != nil {
				subs, err := t.subnetsOf(n)
				if err != nil {
					return err
				}
				mine = append(mine, subs...)
			}
			continue
		}
		for _, f := range p.FixedIPs {
			sn, err := t.subnet(f.SubnetID)
			if err != nil {
				return err
			}
			if sn != nil {
				mine = append(mine, sn)
			}
		}
	}
	for _, m := range mine {
		for _, s := range newSubnets {
			if m.CIDR.Overlaps(s.CIDR) {
				return errBadResourceRequest("router", "Cidr %s of subnet %s overlaps with cidr %s of subnet %s", s.CIDR, s.ID, m.CIDR, m.ID)
			}
		}
	}
	return nil
}

// validateRoutes checks extra routes as Neutron's extraroute: each next
// hop on a subnet of the router's ports (skip: one being removed) and not
// one of the router's own addresses.
func (t *txn) validateRoutes(rt *router, routes []hostRoute, skip *port) error {
	if len(routes) == 0 {
		return nil
	}
	if len(routes) > maxExtraRoutes {
		return newError(http.StatusBadRequest, "RoutesExhausted", "Unable to complete operation for %s. The number of routes exceeds the maximum %d.", rt.ID, maxExtraRoutes)
	}
	ports, err := t.routerPorts(rt)
	if err != nil {
		return err
	}
	var cidrs []netip.Prefix
	var own []netip.Addr
	for _, p := range ports {
		if skip != nil && p.ID == skip.ID {
			continue
		}
		for _, f := range p.FixedIPs {
			sn, err := t.subnet(f.SubnetID)
			if err != nil {
				return err
			}
			if sn != nil {
				cidrs = append(cidrs, sn.CIDR)
			}
			own = append(own, f.IP)
		}
	}
	for _, r := range routes {
		if !slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(r.NextHop) }) {
			return newError(http.StatusBadRequest, "InvalidRoutes", "Invalid format for routes: %s, the nexthop is not connected with router", pyRoutes(routes))
		}
		if slices.Contains(own, r.NextHop) {
			return newError(http.StatusBadRequest, "InvalidRoutes", "Invalid format for routes: %s, the nexthop is used by router", pyRoutes(routes))
		}
	}
	return nil
}

func pyRoutes(routes []hostRoute) string {
	parts := make([]string, 0, len(routes))
	for _, r := range routes {
		parts = append(parts, fmt.Sprintf("{'destination': '%s', 'nexthop': '%s'}", r.Destination, r.NextHop))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (s *Server) updateRouter(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	b, err := readBody(r, c, "router", routerAttrs)
	if err != nil {
		return 0, nil, err
	}
	in := readRouterInput(b)
	if b.err != nil {
		return 0, nil, b.err
	}
	id := pathID(r)
	s.notifyStart(c, "router.update.start", startPayload("router", b.raw, id))
	if err := checkRouterPolicy(c, &in, "update_router"); err != nil {
		return 0, nil, err
	}
	var out object
	err = s.write(c, func(t *txn) error {
		rt, err := t.visibleRouter(c, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, &rt.standard); err != nil {
			return err
		}
		if err := t.updateRouter(c, rt, &in); err != nil {
			return err
		}
		if out, err = t.renderRouter(rt, c, viewUpdated); err != nil {
			return err
		}
		t.emit("router.update.end", object{{"router", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"router", out}}, nil
}

// updateRouter applies in to rt and stores it. Its revision goes up as
// on Neutron: once for its own attributes, and by what the gateway change
// takes (see setGateway).
func (t *txn) updateRouter(c *caller, rt *router, in *routerInput) error {
	bumps := 0
	if in.hasName || in.hasDesc || in.hasUp || in.hasRoutes {
		bumps = 1
	}
	set(in.hasName, &rt.Name, in.name)
	set(in.hasDesc, &rt.Description, in.desc)
	set(in.hasUp, &rt.AdminStateUp, in.up)
	if in.hasRoutes {
		if err := t.validateRoutes(rt, in.routes, nil); err != nil {
			return err
		}
		rt.Routes = in.routes
	}
	if in.gw != nil {
		n, err := t.setGateway(c, rt, in.gw)
		if err != nil {
			return err
		}
		bumps += n
	}
	if bumps > 0 {
		rt.Revision += int64(bumps)
		rt.UpdatedAt = t.now
	}
	return put(t, bucketRouters, rt)
}

// extraRoutes serves add_extraroutes and remove_extraroutes (extraroute-atomic).
func (s *Server) extraRoutes(add bool) handlerFunc {
	return func(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
		b, err := readBody(r, c, "router", map[string]access{"routes": onPut})
		if err != nil {
			return 0, nil, err
		}
		b.require("routes")
		routes, _ := b.hostRoutes("routes", "hostroute")
		if b.err != nil {
			return 0, nil, b.err
		}
		id := pathID(r)
		var out object
		err = s.write(c, func(t *txn) error {
			rt, err := t.visibleRouter(c, id)
			if err != nil {
				return err
			}
			next := slices.Clone(rt.Routes)
			for _, route := range routes {
				i := slices.Index(next, route)
				switch {
				case add && i < 0:
					next = append(next, route)
				case !add && i >= 0:
					next = slices.Delete(next, i, i+1)
				}
			}
			// A member action: Neutron sends no notification, and answers
			// with the plugin's router as it is.
			if !slices.Equal(next, rt.Routes) {
				if err := t.updateRouter(c, rt, &routerInput{routes: next, hasRoutes: true}); err != nil {
					return err
				}
			}
			out, err = t.renderRouter(rt, c, viewPlugin)
			return err
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, object{{"router", out}}, nil
	}
}

func (s *Server) deleteRouter(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	s.notifyStart(c, "router.delete.start", deletePayload("router", id, nil))
	err := s.write(c, func(t *txn) error {
		rt, err := t.visibleRouter(c, id)
		if err != nil {
			return err
		}
		ports, err := t.routerPorts(rt)
		if err != nil {
			return err
		}
		var attached []string
		for _, p := range ports {
			if p.DeviceOwner == ownerRouterInterface {
				attached = append(attached, p.ID)
			}
		}
		if len(attached) > 0 {
			return errConflict("RouterInUse", "Router %s has ports still attached: %s", id, strings.Join(attached, ", "))
		}
		deleted, err := t.renderRouter(rt, c, viewDeleted)
		if err != nil {
			return err
		}
		for _, p := range ports {
			if p.DeviceOwner == ownerRouterGateway {
				err = t.removeGateway(rt, p)
			} else {
				err = t.savePort(p, nil)
			}
			if err != nil {
				return err
			}
		}
		if err := del(t, bucketRouters, id); err != nil {
			return err
		}
		t.emit("router.delete.end", object{{"router_id", id}, {"router", deleted}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
