package netapi

import (
	"net/http"
	"slices"
	"strings"
)

var networkAttrs = map[string]access{
	"id": never, "name": onBoth, "tenant_id": onPost, "project_id": onPost,
	"admin_state_up": onBoth, "status": never, "subnets": never, "shared": onBoth,
	"router:external": onBoth, "mtu": onBoth, "port_security_enabled": onBoth,
	"provider:network_type": onBoth, "provider:physical_network": onBoth,
	"provider:segmentation_id": onBoth, "description": onBoth,
	"availability_zone_hints": onPost, "availability_zones": never, "is_default": never,
	"ipv4_address_scope": never, "ipv6_address_scope": never, "tags": never,
	"created_at": never, "updated_at": never, "revision_number": never,
}

var networkCollection = collection{
	name: "networks",
	filters: attrSet("id", "name", "tenant_id", "project_id", "admin_state_up", "status", "subnets",
		"shared", "router:external", "mtu", "port_security_enabled", "provider:network_type",
		"provider:physical_network", "provider:segmentation_id", "description", "is_default",
		"revision_number", "availability_zone_hints"),
}

// Network types, their MTU (global_physnet_mtu 1500 less the overlay's
// header) and segmentation ranges, as ML2's type drivers.
const (
	typeFlat  = "flat"
	typeVLAN  = "vlan"
	typeVXLAN = "vxlan"
	typeLocal = "local"

	physnetMTU     = 1500
	vxlanMTU       = physnetMTU - 50
	maxVLAN        = 4094
	maxVNI         = 1<<24 - 1
	defaultNetType = typeVXLAN
)

func maxMTU(networkType string) int {
	if networkType == typeVXLAN {
		return vxlanMTU
	}
	return physnetMTU
}

// providerAttrs are the provider attributes of a request.
type providerAttrs struct {
	netType, physnet string
	seg              int
	hasType, hasPhys bool
	hasSeg           bool
}

func (b *body) provider() providerAttrs {
	var p providerAttrs
	if !b.isNull("provider:network_type") {
		p.hasType = b.str("provider:network_type", maxNameLen, &p.netType)
	}
	if !b.isNull("provider:physical_network") {
		p.hasPhys = b.str("provider:physical_network", 64, &p.physnet)
	}
	if !b.isNull("provider:segmentation_id") {
		p.hasSeg = b.integer("provider:segmentation_id", &p.seg)
	}
	return p
}

func (p providerAttrs) given() bool { return p.hasType || p.hasPhys || p.hasSeg }

// segment validates provider attributes (or picks a tenant segment) as
// ML2's type drivers do, against the networks that exist.
func (t *txn) segment(p providerAttrs) (netType, physnet string, seg *int, err error) {
	nets, err := t.networks()
	if err != nil {
		return "", "", nil, err
	}
	if !p.given() {
		p.netType = defaultNetType
	}
	if p.given() && !p.hasType {
		return "", "", nil, errInvalidInput("network_type required")
	}
	used := func(typ, phys string, id int) bool {
		return slices.ContainsFunc(nets, func(n *network) bool {
			return n.NetworkType == typ && n.PhysicalNetwork == phys && (n.SegmentationID != nil && *n.SegmentationID == id || typ == typeFlat)
		})
	}
	switch p.netType {
	case typeFlat:
		switch {
		case p.physnet == "":
			return "", "", nil, errInvalidInput("physical_network required for flat provider network")
		case p.hasSeg:
			return "", "", nil, errInvalidInput("%s prohibited for flat provider network", "segmentation_id")
		case used(typeFlat, p.physnet, 0):
			return "", "", nil, errConflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", p.physnet)
		}
		return typeFlat, p.physnet, nil, nil
	case typeVLAN:
		switch {
		case p.physnet == "":
			return "", "", nil, errInvalidInput("physical_network required for VLAN provider network")
		case !p.hasSeg:
			return "", "", nil, newError(http.StatusServiceUnavailable, "NoNetworkAvailable",
				"Unable to create the network. No tenant network is available for allocation.")
		case p.seg < 1 || p.seg > maxVLAN:
			return "", "", nil, errInvalidInput("segmentation_id out of range (1 through %d)", maxVLAN)
		case used(typeVLAN, p.physnet, p.seg):
			return "", "", nil, errConflict("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", p.seg, p.physnet)
		}
		seg := p.seg
		return typeVLAN, p.physnet, &seg, nil
	case typeVXLAN:
		switch {
		case p.physnet != "":
			return "", "", nil, errInvalidInput("provider:physical_network specified for %s network", "VXLAN")
		case p.hasSeg && (p.seg < 1 || p.seg > maxVNI):
			return "", "", nil, errInvalidInput("segmentation_id out of range (1 through %d)", maxVNI)
		case p.hasSeg && used(typeVXLAN, "", p.seg):
			return "", "", nil, errConflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", p.seg)
		}
		seg := p.seg
		if !p.hasSeg {
			for seg = 1; used(typeVXLAN, "", seg); seg++ {
			}
		}
		return typeVXLAN, "", &seg, nil
	case typeLocal:
		if p.physnet != "" || p.hasSeg {
			return "", "", nil, errInvalidInput("%s prohibited for local provider network", "physical_network and segmentation_id")
		}
		return typeLocal, "", nil, nil
	}
	return "", "", nil, errInvalidInput("network_type value '%s' not supported", p.netType)
}

// checkNetworkPolicy refuses attributes only admin may set, when given a
// value other than their default (as Neutron's attribute policies).
func checkNetworkPolicy(c *caller, b *body, action string, p providerAttrs, shared, external bool) error {
	if c.Admin {
		return nil
	}
	switch {
	case b.has("shared") && (shared || b.put):
		return errPolicyAttr(action, "shared")
	case b.has("router:external") && (external || b.put):
		return errPolicyAttr(action, "router:external")
	case p.hasType:
		return errPolicyAttr(action, "provider:network_type")
	case p.hasPhys:
		return errPolicyAttr(action, "provider:physical_network")
	case p.hasSeg:
		return errPolicyAttr(action, "provider:segmentation_id")
	}
	return nil
}

func (s *Server) listNetworks(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.list(r, networkCollection, func(t *txn) ([]object, error) {
		nets, err := t.networks()
		if err != nil {
			return nil, err
		}
		var objs []object
		for _, n := range nets {
			if canSeeNetwork(c, n) {
				objs = append(objs, renderNetwork(n, c, viewShow))
			}
		}
		return objs, nil
	})
}

func (s *Server) showNetwork(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	return s.show(r, "network", func(t *txn) (object, error) {
		n, err := t.network(pathID(r))
		if err != nil {
			return nil, err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return nil, errNetworkNotFound(pathID(r))
		}
		return renderNetwork(n, c, viewShow), nil
	})
}

// showBody is the response to a GET of one object, with ?fields= applied.
func showBody(r *http.Request, resource string, o object) (int, any, error) {
	if fields := nonEmpty(r.URL.Query()["fields"]); len(fields) > 0 {
		o = o.only(fields)
	}
	return http.StatusOK, object{{resource, o}}, nil
}

func (s *Server) prepareNetwork(c *caller, b *body) (applyFunc, error) {
	n := network{AdminStateUp: true, PortSecurity: true}
	var desc string
	var mtu int
	var azHints []string
	b.str("name", maxNameLen, &n.Name)
	b.str("description", maxDescLen, &desc)
	b.boolean("admin_state_up", &n.AdminStateUp)
	b.boolean("shared", &n.Shared)
	b.boolean("router:external", &n.External)
	b.boolean("port_security_enabled", &n.PortSecurity)
	hasMTU := b.integer("mtu", &mtu)
	p := b.provider()
	b.strList("availability_zone_hints", maxNameLen, &azHints)
	if b.err != nil {
		return nil, b.err
	}
	var err error
	if n.TenantID, err = b.project(c); err != nil {
		return nil, err
	}
	return func(t *txn) (object, error) {
		if err := checkNetworkPolicy(c, b, "create_network", p, n.Shared, n.External); err != nil {
			return nil, err
		}
		if len(azHints) > 0 {
			return nil, errNotFound("AvailabilityZoneNotFound", "AvailabilityZone %s could not be found.", azHints[0])
		}
		var err error
		if n.NetworkType, n.PhysicalNetwork, n.SegmentationID, err = t.segment(p); err != nil {
			return nil, err
		}
		n.MTU = maxMTU(n.NetworkType)
		if hasMTU {
			if err := checkMTU(mtu, n.NetworkType); err != nil {
				return nil, err
			}
			n.MTU = mtu
		}
		n.ID = newUUID()
		if n.standard, err = t.newStandard(desc, nil, 1); err != nil {
			return nil, err
		}
		n.Subnets = []string{}
		if err := put(t, bucketNetworks, &n); err != nil {
			return nil, err
		}
		return renderNetwork(&n, c, viewCreated), nil
	}, nil
}

func checkMTU(mtu int, networkType string) error {
	switch max := maxMTU(networkType); {
	case mtu < 68:
		return errInvalidAttr("mtu", "'"+itoa(mtu)+"' is too small - must be at least '68'")
	case mtu > max:
		return errInvalidInput("Requested MTU is too big, maximum is %d", max)
	}
	return nil
}

func (s *Server) updateNetwork(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	b, err := readBody(r, c, "network", networkAttrs)
	if err != nil {
		return 0, nil, err
	}
	var name, desc string
	var up, shared, external, portSec bool
	var mtu int
	hasName := b.str("name", maxNameLen, &name)
	hasDesc := b.str("description", maxDescLen, &desc)
	hasUp := b.boolean("admin_state_up", &up)
	hasShared := b.boolean("shared", &shared)
	hasExternal := b.boolean("router:external", &external)
	hasPortSec := b.boolean("port_security_enabled", &portSec)
	hasMTU := b.integer("mtu", &mtu)
	p := b.provider()
	if b.err != nil {
		return 0, nil, b.err
	}
	id := pathID(r)
	s.notifyStart(c, "network.update.start", startPayload("network", b.raw, id))
	var out object
	err = s.write(c, func(t *txn) error {
		n, err := t.network(id)
		if err != nil {
			return err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return errNetworkNotFound(id)
		}
		if !c.owns(n.TenantID) {
			return errPolicy("update_network")
		}
		if err := checkNetworkPolicy(c, b, "update_network", p, shared, external); err != nil {
			return err
		}
		if err := checkIfMatch(r, &n.standard); err != nil {
			return err
		}
		if (p.hasType && p.netType != n.NetworkType) || (p.hasPhys && p.physnet != n.PhysicalNetwork) ||
			(p.hasSeg && (n.SegmentationID == nil || *n.SegmentationID != p.seg)) {
			return errInvalidInput("Plugin does not support updating provider attributes")
		}
		ports, err := t.portsWhere(func(pt *port) bool { return pt.NetworkID == n.ID })
		if err != nil {
			return err
		}
		if hasExternal && !external && n.External && slices.ContainsFunc(ports, func(pt *port) bool { return pt.DeviceOwner == ownerRouterGateway }) {
			return errConflict("ExternalNetworkInUse", "External network %s cannot be updated to be made non-external, since it has existing gateway ports.", n.ID)
		}
		if hasShared && !shared && n.Shared && slices.ContainsFunc(ports, func(pt *port) bool { return pt.TenantID != n.TenantID && pt.TenantID != "" }) {
			return errConflict("InvalidSharedSetting", "Unable to reconfigure sharing settings for network %s. Multiple tenants are using it.", n.ID)
		}
		if hasMTU {
			if err := checkMTU(mtu, n.NetworkType); err != nil {
				return err
			}
			n.MTU = mtu
		}
		set(hasName, &n.Name, name)
		set(hasDesc, &n.Description, desc)
		set(hasUp, &n.AdminStateUp, up)
		set(hasShared, &n.Shared, shared)
		set(hasExternal, &n.External, external)
		set(hasPortSec, &n.PortSecurity, portSec)
		n.touch(t.now)
		if err := put(t, bucketNetworks, n); err != nil {
			return err
		}
		out = renderNetwork(n, c, viewUpdated)
		t.emit("network.update.end", object{{"network", out}})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"network", out}}, nil
}

func set[T any](given bool, dst *T, v T) {
	if given {
		*dst = v
	}
}

// autoDeleteOwners are the ports Neutron deletes with their network.
var autoDeleteOwners = []string{ownerDHCP, "network:router_ha_interface"}

func (s *Server) deleteNetwork(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := pathID(r)
	s.notifyStart(c, "network.delete.start", deletePayload("network", id, nil))
	err := s.write(c, func(t *txn) error {
		n, err := t.network(id)
		if err != nil {
			return err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return errNetworkNotFound(id)
		}
		if !c.owns(n.TenantID) {
			return errPolicy("delete_network")
		}
		ports, err := t.portsWhere(func(p *port) bool { return p.NetworkID == id })
		if err != nil {
			return err
		}
		var inUse []string
		for _, p := range ports {
			if !slices.Contains(autoDeleteOwners, p.DeviceOwner) {
				inUse = append(inUse, p.ID)
			}
		}
		if len(inUse) > 0 {
			return errConflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network, id for these ports is: %s.", id, strings.Join(inUse, ","))
		}
		deleted := renderNetwork(n, c, viewDeleted)
		for _, p := range ports {
			if err := t.savePort(p, nil); err != nil {
				return err
			}
		}
		for _, sid := range n.Subnets {
			if err := del(t, bucketSubnets, sid); err != nil {
				return err
			}
		}
		if err := del(t, bucketNetworks, id); err != nil {
			return err
		}
		t.emit("network.delete.end", deletePayload("network", id, deleted))
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
