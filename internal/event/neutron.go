package event

import (
	"errors"
	"fmt"
	"strings"
)

// DriverRouter is the Resource.Driver of routers.
const DriverRouter = "router"

// ErrUnmappable marks a well-formed notification that cannot be mapped to
// events: an unknown event type, or a payload without what its type needs.
var ErrUnmappable = errors.New("unmappable notification")

// Result is what a notification means to the orchestrator.
type Result struct {
	Events []Event
	// Reason says why the notification needs no event; empty when Events
	// is set.
	Reason string
}

func ignored(reason string) (Result, error) { return Result{Reason: reason}, nil }

func unmappable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnmappable, fmt.Sprintf(format, args...))
}

// A Driver maps notifications to the events of one resource type: the
// router driver today, a load-balancer driver later.
type Driver interface {
	// Map returns the events n means for the driver's resources; a Result
	// with only a Reason when n concerns the driver but needs nothing; the
	// zero Result when the driver does not know n's event type or RPC
	// method. Errors wrap ErrUnmappable.
	Map(n *Notification) (Result, error)
}

// Normalizer maps notifications to events: it handles what every driver
// shares (priorities, .start events, operator commands) and asks each
// driver for the rest.
type Normalizer struct {
	drivers []Driver
}

// NewNormalizer returns a Normalizer asking drivers, in order.
func NewNormalizer(drivers ...Driver) *Normalizer {
	return &Normalizer{drivers: append([]Driver(nil), drivers...)}
}

var routerOnly = Normalizer{drivers: []Driver{RouterDriver{}}}

// Normalize maps n with the router driver alone (IPsec VPN off).
func Normalize(n *Notification) (Result, error) { return routerOnly.Normalize(n) }

// Normalize maps n to events. A notification that needs nothing gets a
// Result with a Reason and no error; one that cannot be mapped gets an
// error wrapping ErrUnmappable. If a driver fails, the whole notification
// fails: bad input changes nothing.
func (z *Normalizer) Normalize(n *Notification) (Result, error) {
	if !n.IsRPC() {
		et := n.EventType
		switch {
		case et == "":
			return Result{}, unmappable("no event type")
		case n.Priority != "" && !strings.EqualFold(n.Priority, "INFO"):
			return ignored("priority " + n.Priority + ": only INFO notifications are acted on")
		case strings.HasSuffix(et, ".start"):
			return ignored("a .start notification announces a change that may still fail; its .end triggers")
		case strings.HasPrefix(et, "astara.command"):
			return mapCommand(n)
		}
	}
	var out Result
	for _, d := range z.drivers {
		r, err := d.Map(n)
		if err != nil {
			return Result{}, err
		}
		if out.Events == nil {
			out.Events = r.Events
		} else {
			out.Events = append(out.Events, r.Events...)
		}
		if out.Reason == "" {
			out.Reason = r.Reason
		}
	}
	switch {
	case len(out.Events) > 0:
		out.Reason = ""
		return out, nil
	case out.Reason != "":
		return out, nil
	case n.IsRPC():
		return Result{}, unmappable("no driver maps RPC method %q", n.Method)
	default:
		return Result{}, unmappable("no driver maps event type %q", n.EventType)
	}
}

// RouterDriver maps notifications to router events. Its table is the
// original's (reference §1.5) corrected for what Neutron really sends:
// updates are *.update.end (never *.change.end), router interfaces come as
// router.interface.create/delete with the router id in
// payload.router_interface.id, deletes come as {"<res>_id": id} or
// {"<res>_id": id, "<res>": {...}}, floating IPs name their router and
// router-owned ports name it as device_id. Port, subnet, network and most
// floating-IP changes name no router: they become events with an empty
// Resource.ID and the tenant set, which the worker resolves to the
// tenant's routers.
type RouterDriver struct {
	// IPsecVPN maps the VPNaaS notifications too ([router]ipsec_vpn).
	IPsecVPN bool
}

// idFrom says where a rule finds the router id.
type idFrom uint8

const (
	fromSelf      idFrom = iota // <key>.id: the resource is the router
	fromDeleted                 // <key>_id, else <key>.id: a router delete, both shapes
	fromInterface               // router_interface.id is the router's id
	fromPort                    // device_id of a router-owned port, else none
	fromRouterID                // <key>.router_id, else none
	fromNone                    // none: the tenant's routers
)

type routerRule struct {
	action Action
	key    string // payload key of the resource: "router", "port", ...
	plural string // payload key of a bulk operation: "routers", "ports", ...
	idKey  string // payload key of a delete's id: "router_id", "port_id", ...
	from   idFrom
	vpn    bool   // only with IPsecVPN
	ignore string // set: the notification needs nothing, for this reason
}

func rule(a Action, key string, from idFrom) routerRule {
	return routerRule{action: a, key: key, plural: key + "s", idKey: key + "_id", from: from}
}

func vpnRule(key string, from idFrom) routerRule {
	r := rule(Update, key, from)
	r.vpn = true
	return r
}

func ignoreRule(reason string) routerRule { return routerRule{ignore: reason} }

const (
	reasonSecurityGroups = "security groups are not enforced by the appliance (its ports run without port security)"
	reasonNetworkCreate  = "a new network has no router interface yet; router.interface.create follows"
	reasonNetworkDelete  = "Neutron deletes no network a router is plugged into; removing the interface already triggered an update"
	reasonOwnPort        = "the orchestrator's own appliance port (ASTARA:*)"
	reasonRouterStatus   = "the orchestrator's own router status report"
	reasonVPNDisabled    = "IPsec VPN is disabled ([router]ipsec_vpn)"
)

// routerRules decides every Neutron event type the router driver knows
// (the .start ones are dropped before).
var routerRules = map[string]routerRule{
	"router.create.end":       rule(Create, "router", fromSelf),
	"router.update.end":       rule(Update, "router", fromSelf),
	"router.delete.end":       rule(Delete, "router", fromDeleted),
	"router.interface.create": rule(Update, "router_interface", fromInterface),
	"router.interface.delete": rule(Update, "router_interface", fromInterface),

	"port.create.end":       rule(Update, "port", fromPort),
	"port.update.end":       rule(Update, "port", fromPort),
	"port.delete.end":       rule(Update, "port", fromPort),
	"subnet.create.end":     rule(Update, "subnet", fromNone),
	"subnet.update.end":     rule(Update, "subnet", fromNone),
	"subnet.delete.end":     rule(Update, "subnet", fromNone),
	"floatingip.create.end": rule(Update, "floatingip", fromRouterID),
	"floatingip.update.end": rule(Update, "floatingip", fromRouterID),
	"floatingip.delete.end": rule(Update, "floatingip", fromRouterID),
	// The appliance's config carries each network's MTU.
	"network.update.end": rule(Update, "network", fromNone),
	"network.create.end": ignoreRule(reasonNetworkCreate),
	"network.delete.end": ignoreRule(reasonNetworkDelete),

	"security_group.create.end":      ignoreRule(reasonSecurityGroups),
	"security_group.update.end":      ignoreRule(reasonSecurityGroups),
	"security_group.delete.end":      ignoreRule(reasonSecurityGroups),
	"security_group_rule.create.end": ignoreRule(reasonSecurityGroups),
	"security_group_rule.update.end": ignoreRule(reasonSecurityGroups),
	"security_group_rule.delete.end": ignoreRule(reasonSecurityGroups),

	"vpnservice.create.end":            vpnRule("vpnservice", fromRouterID),
	"vpnservice.update.end":            vpnRule("vpnservice", fromRouterID),
	"vpnservice.delete.end":            vpnRule("vpnservice", fromRouterID),
	"ipsec_site_connection.create.end": vpnRule("ipsec_site_connection", fromNone),
	"ipsec_site_connection.update.end": vpnRule("ipsec_site_connection", fromNone),
	"ipsec_site_connection.delete.end": vpnRule("ipsec_site_connection", fromNone),
	"ikepolicy.update.end":             vpnRule("ikepolicy", fromNone),
	"ipsecpolicy.update.end":           vpnRule("ipsecpolicy", fromNone),
}

// routerOwners are the device owners of ports whose device_id is a router.
var routerOwners = map[string]bool{
	"network:router_interface":               true,
	"network:ha_router_replicated_interface": true,
	"network:router_interface_distributed":   true,
	"network:router_gateway":                 true,
	"network:router_centralized_snat":        true,
	"network:router_ha_interface":            true,
}

// Map implements Driver.
func (d RouterDriver) Map(n *Notification) (Result, error) {
	if n.IsRPC() {
		return d.mapRPC(n)
	}
	if strings.HasPrefix(n.EventType, "routerstatus.update") {
		return ignored(reasonRouterStatus)
	}
	r, ok := routerRules[n.EventType]
	switch {
	case !ok:
		return Result{}, nil
	case r.ignore != "":
		return ignored(r.ignore)
	case r.vpn && !d.IPsecVPN:
		return ignored(reasonVPNDisabled)
	}
	var single, bulk, deletedID []byte
	if m, ok := objectMembers(n.Payload); ok {
		for {
			k, v, ok := m.next()
			if !ok {
				break
			}
			switch {
			case keyIs(k, r.key):
				single = v
			case keyIs(k, r.plural):
				bulk = v
			case keyIs(k, r.idKey):
				deletedID = v
			}
		}
		if m.err != nil {
			return Result{}, unmappable("payload: %v", m.err)
		}
	} else if len(n.Payload) > 0 && string(n.Payload) != "null" {
		return Result{}, unmappable("payload is %s, want an object", kind(n.Payload))
	}
	var out Result
	add := func(obj neutronObject, field string) error {
		ev, skip, err := r.event(n, obj, field)
		if err != nil {
			return err
		}
		if skip != "" {
			if out.Reason == "" {
				out.Reason = skip
			}
			return nil
		}
		for _, e := range out.Events {
			if e.Resource == ev.Resource {
				return nil
			}
		}
		out.Events = append(out.Events, ev)
		return nil
	}
	switch {
	case single != nil && string(single) != "null":
		obj, err := parseObject(single, r.key)
		if err != nil {
			return Result{}, err
		}
		if deletedID != nil && r.from == fromDeleted {
			if obj.ID, err = deletedIDValue(n, r, deletedID); err != nil {
				return Result{}, err
			}
		}
		if err := add(obj, r.key); err != nil {
			return Result{}, err
		}
	case bulk != nil:
		elems, ok := arrayElements(bulk)
		if !ok {
			return Result{}, unmappable("payload.%s is %s, want an array", r.plural, kind(bulk))
		}
		for i := 0; ; i++ {
			v, ok := elems.next()
			if !ok {
				break
			}
			field := fmt.Sprintf("%s[%d]", r.plural, i)
			obj, err := parseObject(v, field)
			if err != nil {
				return Result{}, err
			}
			if err := add(obj, field); err != nil {
				return Result{}, err
			}
		}
		if elems.err != nil {
			return Result{}, unmappable("payload.%s: %v", r.plural, elems.err)
		}
	case deletedID != nil:
		// The older delete shape: only the id, so the tenant comes from
		// the context.
		id, err := deletedIDValue(n, r, deletedID)
		if err != nil {
			return Result{}, err
		}
		var obj neutronObject
		if r.from == fromDeleted {
			obj.ID = id
		}
		if err := add(obj, r.idKey); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, unmappable("%s: payload has no %q, %q or %q", n.EventType, r.key, r.plural, r.idKey)
	}
	if len(out.Events) > 0 {
		out.Reason = ""
	}
	return out, nil
}

// deletedIDValue reads the payload's <res>_id.
func deletedIDValue(n *Notification, r routerRule, raw []byte) (string, error) {
	id, err := stringValue(raw)
	if err != nil {
		return "", unmappable("%s: payload.%s is %s, want a string", n.EventType, r.idKey, kind(raw))
	}
	if !validID(id) {
		return "", unmappable("%s: payload.%s: invalid id %q", n.EventType, r.idKey, id)
	}
	return id, nil
}

// event builds the event for one resource of the payload (named field in
// errors), or says why it needs none.
func (r routerRule) event(n *Notification, obj neutronObject, field string) (ev Event, skip string, err error) {
	var id, idKey string // idKey names the id's field in errors only: no allocation on the way
	switch r.from {
	case fromSelf, fromDeleted, fromInterface:
		id, idKey = obj.ID, "id"
		if id == "" {
			return Event{}, "", unmappable("%s: payload.%s.id is missing", n.EventType, field)
		}
	case fromPort:
		if strings.HasPrefix(obj.Name, "ASTARA:") {
			return Event{}, reasonOwnPort, nil
		}
		if routerOwners[obj.DeviceOwner] {
			id, idKey = obj.DeviceID, "device_id"
		}
	case fromRouterID:
		id, idKey = obj.RouterID, "router_id"
	}
	tenant, tenantKey := obj.ProjectID, "project_id"
	switch {
	case tenant != "":
	case obj.TenantID != "":
		tenant, tenantKey = obj.TenantID, "tenant_id"
	case n.Context.ProjectID != "":
		tenant, tenantKey = n.Context.ProjectID, ""
	default:
		tenant, tenantKey = n.Context.TenantID, ""
	}
	if id != "" && !validID(id) {
		return Event{}, "", unmappable("%s: payload.%s.%s: invalid id %q", n.EventType, field, idKey, id)
	}
	if tenant != "" && !validID(tenant) {
		where := "payload." + field + "." + tenantKey
		if tenantKey == "" {
			where = "the context's project or tenant"
		}
		return Event{}, "", unmappable("%s: %s: invalid tenant id %q", n.EventType, where, tenant)
	}
	if id == "" && tenant == "" {
		return Event{}, "", unmappable("%s: neither a router id nor a tenant (payload.%s.project_id, .tenant_id, _context_project_id, _context_tenant_id)", n.EventType, field)
	}
	return Event{
		Resource: Resource{Driver: DriverRouter, ID: id, TenantID: tenant},
		Action:   r.action,
		Source:   n.EventType,
	}, "", nil
}

// mapRPC maps the l3_agent RPC casts Neutron sends to L3 agents, which the
// orchestrator may consume as the original did.
func (d RouterDriver) mapRPC(n *Notification) (Result, error) {
	if n.Method != "router_deleted" {
		return ignored("l3_agent RPC " + n.Method + " is not used")
	}
	var id string
	m, ok := objectMembers(n.Args)
	if !ok {
		return Result{}, unmappable("router_deleted: args is %s, want an object", kind(n.Args))
	}
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		if keyIs(k, "router_id") {
			var err error
			if id, err = stringValue(v); err != nil {
				return Result{}, unmappable("router_deleted: args.router_id is %s, want a string", kind(v))
			}
		}
	}
	if m.err != nil {
		return Result{}, unmappable("router_deleted: args: %v", m.err)
	}
	if !validID(id) {
		return Result{}, unmappable("router_deleted: args.router_id: invalid id %q", id)
	}
	tenant := n.Context.ProjectID
	if tenant == "" {
		tenant = n.Context.TenantID
	}
	if tenant != "" && !validID(tenant) {
		return Result{}, unmappable("router_deleted: invalid tenant id %q in the context", tenant)
	}
	return Result{Events: []Event{{
		Resource: Resource{Driver: DriverRouter, ID: id, TenantID: tenant},
		Action:   Delete,
		Source:   "l3_agent." + n.Method,
	}}}, nil
}

// neutronObject is the part of a Neutron resource the mapping reads.
type neutronObject struct {
	ID, ProjectID, TenantID, RouterID, DeviceOwner, DeviceID, Name string
}

func parseObject(raw []byte, field string) (neutronObject, error) {
	var o neutronObject
	m, ok := objectMembers(raw)
	if !ok {
		return o, unmappable("payload.%s is %s, want an object", field, kind(raw))
	}
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		var dst *string
		switch {
		case keyIs(k, "id"):
			dst = &o.ID
		case keyIs(k, "project_id"):
			dst = &o.ProjectID
		case keyIs(k, "tenant_id"):
			dst = &o.TenantID
		case keyIs(k, "router_id"):
			dst = &o.RouterID
		case keyIs(k, "device_owner"):
			dst = &o.DeviceOwner
		case keyIs(k, "device_id"):
			dst = &o.DeviceID
		case keyIs(k, "name"):
			dst = &o.Name
		default:
			continue
		}
		s, err := stringValue(v)
		if err != nil {
			return o, unmappable("payload.%s.%s is %s, want a string", field, k, kind(v))
		}
		*dst = s
	}
	if m.err != nil {
		return o, unmappable("payload.%s: %v", field, m.err)
	}
	return o, nil
}

// validID reports whether s can be a Neutron or Keystone id: 1 to 255
// letters, digits, '-', '_', '.' or ':', and no wildcard, so that no
// notification can address every resource.
func validID(s string) bool {
	if s == "" || len(s) > 255 || IsWildcard(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// mapCommand maps an astara.command notification (reference §1.4, §1.7):
// "poll" becomes a POLL of everything; every other command a Command event
// addressed to the payload's resource and tenant (All when absent, which
// reaches every worker). Wildcards are allowed here: operators use them.
func mapCommand(n *Notification) (Result, error) {
	var (
		c                          CommandArgs
		name, resourceID, routerID string
		resourceImage, routerImage string
		enabled                    []byte
	)
	m, ok := objectMembers(n.Payload)
	if !ok {
		return Result{}, unmappable("%s: payload is %s, want an object", n.EventType, kind(n.Payload))
	}
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		var dst *string
		switch {
		case keyIs(k, "command"):
			dst = &name
		case keyIs(k, "resource_id"):
			dst = &resourceID
		case keyIs(k, "router_id"):
			dst = &routerID
		case keyIs(k, "tenant_id"):
			dst = &c.TenantID
		case keyIs(k, "reason"):
			dst = &c.Reason
		case keyIs(k, "resource_image_uuid"):
			dst = &resourceImage
		case keyIs(k, "router_image_uuid"):
			dst = &routerImage
		case keyIs(k, "enabled"):
			enabled = v
			continue
		default:
			continue
		}
		s, err := stringValue(v)
		if err != nil {
			return Result{}, unmappable("%s: payload.%s is %s, want a string", n.EventType, k, kind(v))
		}
		*dst = s
	}
	if m.err != nil {
		return Result{}, unmappable("%s: payload: %v", n.EventType, m.err)
	}
	c.Name = CommandName(name)
	if c.Name == CmdPoll {
		return Result{Events: []Event{{
			Resource: Resource{Driver: All, ID: All, TenantID: All},
			Action:   Poll,
			Source:   n.EventType,
		}}}, nil
	}
	c.ResourceID = resourceID
	if c.ResourceID == "" {
		c.ResourceID = routerID
	}
	c.ImageID = resourceImage
	if c.ImageID == "" {
		c.ImageID = routerImage
	}
	switch c.Name {
	case CmdWorkersDebug, CmdConfigReload:
	case CmdGlobalDebug:
		on, err := parseEnabled(enabled)
		if err != nil {
			return Result{}, unmappable("%s: %s: payload.enabled: %v", n.EventType, c.Name, err)
		}
		c.Enabled = on
	case CmdTenantDebug, CmdTenantManage:
		if c.TenantID == "" {
			return Result{}, unmappable("%s: %s: payload.tenant_id is missing", n.EventType, c.Name)
		}
	case CmdResourceDebug, CmdResourceManage, CmdResourceUpdate, CmdResourceRebuild,
		CmdRouterDebug, CmdRouterManage, CmdRouterUpdate, CmdRouterRebuild:
		if c.ResourceID == "" {
			return Result{}, unmappable("%s: %s: payload.resource_id (or router_id) is missing", n.EventType, c.Name)
		}
	case "":
		return Result{}, unmappable("%s: payload.command is missing", n.EventType)
	default:
		return Result{}, unmappable("%s: unknown command %q", n.EventType, name)
	}
	if c.ResourceID != "" && !IsWildcard(c.ResourceID) && !validID(c.ResourceID) {
		return Result{}, unmappable("%s: invalid resource id %q", n.EventType, c.ResourceID)
	}
	if c.TenantID != "" && !IsWildcard(c.TenantID) && !validID(c.TenantID) {
		return Result{}, unmappable("%s: invalid tenant id %q", n.EventType, c.TenantID)
	}
	res := Resource{Driver: All, ID: c.ResourceID, TenantID: c.TenantID}
	if res.ID == "" {
		res.ID = All
	}
	if res.TenantID == "" {
		res.TenantID = All
	}
	return Result{Events: []Event{{Resource: res, Action: Command, Command: &c, Source: n.EventType}}}, nil
}

// parseEnabled reads global-debug's switch: astara-ctl sends 1 or 0.
func parseEnabled(raw []byte) (bool, error) {
	switch strings.Trim(string(raw), `"`) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	case "":
		return false, errors.New("missing")
	}
	return false, fmt.Errorf("%s is not 1 or 0", raw)
}
