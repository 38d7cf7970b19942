package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	fxTenant = "3f1b2c4d5e6f47a8b9c0d1e2f3a4b5c6"
	fxRouter = "d21c0ae3-c23f-4e3b-8d4a-284a0392c352"
)

func routerEvent(a Action, id, tenant, source string) Event {
	return Event{Resource: Resource{Driver: DriverRouter, ID: id, TenantID: tenant}, Action: a, Source: source}
}

// TestNormalizeFixtures gives every captured notification its decided
// outcome: the events, or the reason it needs none.
func TestNormalizeFixtures(t *testing.T) {
	const start = "a .start notification"
	want := map[string]struct {
		events []Event
		reason string // a prefix of the reason, when no events
	}{
		"floatingip.create.end--with-port":                   {events: []Event{routerEvent(Update, fxRouter, fxTenant, "floatingip.create.end")}},
		"floatingip.create.end":                              {events: []Event{routerEvent(Update, "", fxTenant, "floatingip.create.end")}},
		"floatingip.create.start":                            {reason: start},
		"floatingip.delete.end":                              {events: []Event{routerEvent(Update, fxRouter, fxTenant, "floatingip.delete.end")}},
		"floatingip.delete.start":                            {reason: start},
		"floatingip.update.end--disassociate":                {events: []Event{routerEvent(Update, "", fxTenant, "floatingip.update.end")}},
		"floatingip.update.end":                              {events: []Event{routerEvent(Update, fxRouter, fxTenant, "floatingip.update.end")}},
		"floatingip.update.start--rejected-404":              {reason: start},
		"floatingip.update.start":                            {reason: start},
		"network.create.end--headers-mode-tenant":            {reason: reasonNetworkCreate},
		"network.create.end--tenant-network":                 {reason: reasonNetworkCreate},
		"network.create.end":                                 {reason: reasonNetworkCreate},
		"network.create.start--rejected-403":                 {reason: start},
		"network.create.start":                               {reason: start},
		"network.delete.end":                                 {reason: reasonNetworkDelete},
		"network.delete.start":                               {reason: start},
		"network.update.end":                                 {events: []Event{routerEvent(Update, "", fxTenant, "network.update.end")}},
		"network.update.start":                               {reason: start},
		"port.create.end":                                    {events: []Event{routerEvent(Update, "", fxTenant, "port.create.end")}},
		"port.create.start":                                  {reason: start},
		"port.delete.end":                                    {events: []Event{routerEvent(Update, "", fxTenant, "port.delete.end")}},
		"port.delete.start":                                  {reason: start},
		"port.update.end":                                    {events: []Event{routerEvent(Update, "", fxTenant, "port.update.end")}},
		"port.update.start":                                  {reason: start},
		"router.create.end":                                  {events: []Event{routerEvent(Create, fxRouter, fxTenant, "router.create.end")}},
		"router.create.start":                                {reason: start},
		"router.delete.end":                                  {events: []Event{routerEvent(Delete, fxRouter, fxTenant, "router.delete.end")}},
		"router.delete.start":                                {reason: start},
		"router.interface.create":                            {events: []Event{routerEvent(Update, fxRouter, fxTenant, "router.interface.create")}},
		"router.interface.delete":                            {events: []Event{routerEvent(Update, fxRouter, fxTenant, "router.interface.delete")}},
		"router.update.end--gateway-cleared":                 {events: []Event{routerEvent(Update, fxRouter, fxTenant, "router.update.end")}},
		"router.update.end":                                  {events: []Event{routerEvent(Update, fxRouter, fxTenant, "router.update.end")}},
		"router.update.start":                                {reason: start},
		"rpc.l3_agent_fanout.fipnamespace_delete_on_ext_net": {reason: "l3_agent RPC fipnamespace_delete_on_ext_net is not used"},
		"rpc.l3_agent_fanout.router_deleted": {events: []Event{
			routerEvent(Delete, "4a0f2fee-7ed9-4920-ace7-9a95bca52881", "fake_project_id", "l3_agent.router_deleted")}},
		"security_group.create.end":        {reason: reasonSecurityGroups},
		"security_group.create.start":      {reason: start},
		"security_group.delete.end":        {reason: reasonSecurityGroups},
		"security_group.delete.start":      {reason: start},
		"security_group_rule.create.end":   {reason: reasonSecurityGroups},
		"security_group_rule.create.start": {reason: start},
		"security_group_rule.delete.end":   {reason: reasonSecurityGroups},
		"security_group_rule.delete.start": {reason: start},
		// The admin's external subnet: the admin tenant's routers.
		"subnet.create.end":   {events: []Event{routerEvent(Update, "", "fake_project_id", "subnet.create.end")}},
		"subnet.create.start": {reason: start},
		"subnet.delete.end":   {events: []Event{routerEvent(Update, "", fxTenant, "subnet.delete.end")}},
		"subnet.delete.start": {reason: start},
		"subnet.update.end":   {events: []Event{routerEvent(Update, "", fxTenant, "subnet.update.end")}},
		"subnet.update.start": {reason: start},
	}
	seen := map[string]bool{}
	for _, f := range fixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			seen[f.Name] = true
			w, ok := want[f.Name]
			if !ok {
				t.Fatalf("no decided outcome for fixture %s: add it to the table", f.Name)
			}
			n, err := Decode(f.Body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Normalize(&n)
			if err != nil {
				t.Fatalf("unmappable: %v", err)
			}
			if !reflect.DeepEqual(got.Events, w.events) {
				t.Errorf("events %v, want %v", got.Events, w.events)
			}
			if w.events == nil && (got.Reason == "" || !strings.HasPrefix(got.Reason, w.reason)) {
				t.Errorf("reason %q, want %q", got.Reason, w.reason)
			}
			if w.events != nil && got.Reason != "" {
				t.Errorf("reason %q with events", got.Reason)
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("table entry %s has no fixture", name)
		}
	}
}

// note builds a notification as Decode would.
func note(eventType, payload string) *Notification {
	n := &Notification{EventType: eventType, Priority: "INFO", Context: Context{ProjectID: "ctxproject", TenantID: "ctxtenant"}}
	if payload != "" {
		n.Payload = json.RawMessage(payload)
	}
	return n
}

func TestNormalizeShapes(t *testing.T) {
	const r, p, tn = "11111111-2222-3333-4444-555555555555", "projectp", "tenantt"
	for _, tc := range []struct {
		name  string
		n     *Notification
		drv   RouterDriver
		want  []Event
		why   string // reason prefix when no events
		error string // error substring: unmappable
	}{
		// Deletes, in both shapes.
		{name: "router delete, id only", n: note("router.delete.end", `{"router_id": "`+r+`"}`),
			want: []Event{routerEvent(Delete, r, "ctxproject", "router.delete.end")}},
		{name: "router delete, id and dict", n: note("router.delete.end", `{"router_id": "`+r+`", "router": {"id": "`+r+`", "tenant_id": "`+tn+`"}}`),
			want: []Event{routerEvent(Delete, r, tn, "router.delete.end")}},
		{name: "router delete, dict only", n: note("router.delete.end", `{"router": {"id": "`+r+`", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Delete, r, p, "router.delete.end")}},
		{name: "port delete, id only", n: note("port.delete.end", `{"port_id": "x"}`),
			want: []Event{routerEvent(Update, "", "ctxproject", "port.delete.end")}},
		{name: "floating IP delete, id only", n: note("floatingip.delete.end", `{"floatingip_id": "x"}`),
			want: []Event{routerEvent(Update, "", "ctxproject", "floatingip.delete.end")}},
		{name: "subnet delete, id and dict", n: note("subnet.delete.end", `{"subnet_id": "s", "subnet": {"id": "s", "tenant_id": "`+tn+`"}}`),
			want: []Event{routerEvent(Update, "", tn, "subnet.delete.end")}},
		{name: "delete id not a string", n: note("router.delete.end", `{"router_id": 5}`), error: "payload.router_id is a number"},
		{name: "delete id a wildcard", n: note("router.delete.end", `{"router_id": "*"}`), error: `payload.router_id: invalid id "*"`},

		// Tenant precedence: payload project_id, tenant_id, context project, context tenant.
		{name: "tenant from project_id", n: note("router.update.end", `{"router": {"id": "`+r+`", "tenant_id": "`+tn+`", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, r, p, "router.update.end")}},
		{name: "tenant from tenant_id", n: note("router.update.end", `{"router": {"id": "`+r+`", "tenant_id": "`+tn+`"}}`),
			want: []Event{routerEvent(Update, r, tn, "router.update.end")}},
		{name: "tenant from context project", n: note("router.update.end", `{"router": {"id": "`+r+`", "project_id": null}}`),
			want: []Event{routerEvent(Update, r, "ctxproject", "router.update.end")}},
		{name: "tenant from context tenant", n: func() *Notification {
			n := note("router.update.end", `{"router": {"id": "`+r+`"}}`)
			n.Context.ProjectID = ""
			return n
		}(), want: []Event{routerEvent(Update, r, "ctxtenant", "router.update.end")}},
		{name: "no tenant, router id", n: func() *Notification {
			n := note("router.update.end", `{"router": {"id": "`+r+`"}}`)
			n.Context = Context{}
			return n
		}(), want: []Event{routerEvent(Update, r, "", "router.update.end")}},
		{name: "no tenant, no router id", n: func() *Notification {
			n := note("subnet.create.end", `{"subnet": {"id": "s"}}`)
			n.Context = Context{}
			return n
		}(), error: "neither a router id nor a tenant"},
		{name: "tenant a wildcard", n: note("subnet.create.end", `{"subnet": {"project_id": "*"}}`), error: `payload.subnet.project_id: invalid tenant id "*"`},
		{name: "tenant with a space", n: note("subnet.create.end", `{"subnet": {"tenant_id": "a b"}}`), error: `payload.subnet.tenant_id: invalid tenant id`},

		// Router interfaces: the router_interface key, whose id is the router's.
		{name: "interface, current shape", n: note("router.interface.create", `{"router_interface": {"id": "`+r+`", "project_id": "`+p+`", "port_id": "x", "subnet_id": "s"}}`),
			want: []Event{routerEvent(Update, r, p, "router.interface.create")}},
		{name: "interface, 2016 shape", n: note("router.interface.delete", `{"router_interface": {"id": "`+r+`", "tenant_id": "`+tn+`", "port_id": "x"}}`),
			want: []Event{routerEvent(Update, r, tn, "router.interface.delete")}},
		{name: "interface, the original's dotted key", n: note("router.interface.create", `{"router.interface": {"id": "`+r+`"}}`),
			error: `payload has no "router_interface"`},
		{name: "interface without id", n: note("router.interface.create", `{"router_interface": {"port_id": "x"}}`),
			error: "payload.router_interface.id is missing"},

		// Ports: router-owned ones name their router.
		{name: "router interface port", n: note("port.update.end", `{"port": {"id": "x", "device_owner": "network:router_interface", "device_id": "`+r+`", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, r, p, "port.update.end")}},
		{name: "router gateway port", n: note("port.create.end", `{"port": {"id": "x", "device_owner": "network:router_gateway", "device_id": "`+r+`", "tenant_id": ""}}`),
			want: []Event{routerEvent(Update, r, "ctxproject", "port.create.end")}},
		{name: "HA interface port", n: note("port.delete.end", `{"port_id": "x", "port": {"device_owner": "network:ha_router_replicated_interface", "device_id": "`+r+`", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, r, p, "port.delete.end")}},
		{name: "floating IP port: device_id is no router", n: note("port.create.end", `{"port": {"device_owner": "network:floatingip", "device_id": "fip", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, "", p, "port.create.end")}},
		{name: "compute port", n: note("port.create.end", `{"port": {"device_owner": "compute:nova", "device_id": "vm", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, "", p, "port.create.end")}},
		{name: "router port with a bad device_id", n: note("port.create.end", `{"port": {"device_owner": "network:router_interface", "device_id": "a/b"}}`),
			error: `payload.port.device_id: invalid id "a/b"`},
		{name: "own appliance port", n: note("port.create.end", `{"port": {"name": "ASTARA:VRRP:`+r+`", "device_owner": "network:astara", "project_id": "svc"}}`),
			why: reasonOwnPort},
		{name: "bulk ports", n: note("port.create.end", `{"ports": [
				{"device_owner": "compute:nova", "project_id": "`+p+`"},
				{"device_owner": "compute:nova", "project_id": "`+p+`"},
				{"device_owner": "network:router_interface", "device_id": "`+r+`", "project_id": "`+p+`"},
				{"name": "ASTARA:MGT:x"}]}`),
			want: []Event{routerEvent(Update, "", p, "port.create.end"), routerEvent(Update, r, p, "port.create.end")}},
		{name: "bulk of own ports only", n: note("port.create.end", `{"ports": [{"name": "ASTARA:MGT:x"}]}`), why: reasonOwnPort},
		{name: "bulk not an array", n: note("port.create.end", `{"ports": {"id": "x"}}`), error: "payload.ports is an object, want an array"},
		{name: "bulk element not an object", n: note("subnet.create.end", `{"subnets": ["x"]}`), error: "payload.subnets[0] is a string, want an object"},

		// Floating IPs name their router when associated.
		{name: "floating IP associated", n: note("floatingip.update.end", `{"floatingip": {"id": "f", "router_id": "`+r+`", "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, r, p, "floatingip.update.end")}},
		{name: "floating IP disassociated", n: note("floatingip.update.end", `{"floatingip": {"id": "f", "router_id": null, "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, "", p, "floatingip.update.end")}},
		{name: "floating IP router_id not a string", n: note("floatingip.update.end", `{"floatingip": {"router_id": 1}}`),
			error: "payload.floatingip.router_id is a number, want a string"},

		// Bad or missing payloads.
		{name: "router create without id", n: note("router.create.end", `{"router": {"name": "x"}}`), error: "payload.router.id is missing"},
		{name: "router create, router not an object", n: note("router.create.end", `{"router": "x"}`), error: "payload.router is a string, want an object"},
		{name: "router create, id a wildcard", n: note("router.create.end", `{"router": {"id": "*"}}`), error: `payload.router.id: invalid id "*"`},
		{name: "router create, id 'error'", n: note("router.create.end", `{"router": {"id": "error"}}`), error: `invalid id "error"`},
		{name: "router create, no payload", n: note("router.create.end", ""), error: `payload has no "router"`},
		{name: "router create, payload null", n: note("router.create.end", "null"), error: `payload has no "router"`},
		{name: "router create, payload an array", n: note("router.create.end", `[1]`), error: "payload is an array, want an object"},
		{name: "router create, bad JSON", n: note("router.create.end", `{"router": {"id": "x"`), error: "invalid JSON"},

		// Event types.
		{name: "change.end is never sent", n: note("router.change.end", `{"router": {"id": "`+r+`"}}`), error: `no driver maps event type "router.change.end"`},
		{name: "unknown event type", n: note("qos_policy.update.end", `{}`), error: `no driver maps event type "qos_policy.update.end"`},
		{name: "no event type", n: note("", `{}`), error: "no event type"},
		{name: "start", n: note("router.create.start", `{"router": {}}`), why: "a .start notification"},
		{name: "router status, our own", n: note("routerstatus.update", `{"router": {"id": "`+r+`"}}`), why: reasonRouterStatus},
		{name: "router status end, our own", n: note("routerstatus.update.end", `{}`), why: reasonRouterStatus},
		{name: "priority ERROR", n: func() *Notification {
			n := note("router.update.end", `{"router": {"id": "`+r+`"}}`)
			n.Priority = "ERROR"
			return n
		}(), why: "priority ERROR"},
		{name: "priority lower case", n: func() *Notification {
			n := note("router.update.end", `{"router": {"id": "`+r+`"}}`)
			n.Priority = "info"
			return n
		}(), want: []Event{routerEvent(Update, r, "ctxproject", "router.update.end")}},
		{name: "network update", n: note("network.update.end", `{"network": {"id": "n", "mtu": 1400, "project_id": "`+p+`"}}`),
			want: []Event{routerEvent(Update, "", p, "network.update.end")}},
		{name: "security group update", n: note("security_group.update.end", `{}`), why: reasonSecurityGroups},

		// VPN, only when enabled.
		{name: "VPN off", n: note("vpnservice.update.end", `{"vpnservice": {"router_id": "`+r+`"}}`), why: reasonVPNDisabled},
		{name: "VPN service", drv: RouterDriver{IPsecVPN: true}, n: note("vpnservice.update.end", `{"vpnservice": {"id": "v", "router_id": "`+r+`", "tenant_id": "`+tn+`"}}`),
			want: []Event{routerEvent(Update, r, tn, "vpnservice.update.end")}},
		{name: "IPsec connection", drv: RouterDriver{IPsecVPN: true}, n: note("ipsec_site_connection.create.end", `{"ipsec_site_connection": {"id": "c", "tenant_id": "`+tn+`"}}`),
			want: []Event{routerEvent(Update, "", tn, "ipsec_site_connection.create.end")}},

		// RPC casts.
		{name: "rpc router_deleted", n: &Notification{Method: "router_deleted", Args: json.RawMessage(`{"router_id": "` + r + `"}`), Context: Context{TenantID: tn}},
			want: []Event{routerEvent(Delete, r, tn, "l3_agent.router_deleted")}},
		{name: "rpc router_deleted without id", n: &Notification{Method: "router_deleted", Args: json.RawMessage(`{}`)}, error: `args.router_id: invalid id ""`},
		{name: "rpc router_deleted, args not an object", n: &Notification{Method: "router_deleted", Args: json.RawMessage(`"x"`)}, error: "args is a string"},
		{name: "rpc routers_updated", n: &Notification{Method: "routers_updated", Args: json.RawMessage(`{}`)}, why: "l3_agent RPC routers_updated is not used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewNormalizer(tc.drv).Normalize(tc.n)
			if tc.error != "" {
				if err == nil || !errors.Is(err, ErrUnmappable) || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("got %+v, %v; want an unmappable error containing %q", got, err, tc.error)
				}
				if got.Events != nil {
					t.Errorf("events %v with the error", got.Events)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Events, tc.want) {
				t.Errorf("events %v, want %v", got.Events, tc.want)
			}
			if tc.want == nil && (tc.why == "" || !strings.HasPrefix(got.Reason, tc.why)) {
				t.Errorf("reason %q, want %q", got.Reason, tc.why)
			}
		})
	}
}

func command(payload string) *Notification {
	return &Notification{EventType: "astara.command", Priority: "INFO", Payload: json.RawMessage(payload)}
}

func TestCommands(t *testing.T) {
	const r, tn = "11111111-2222-3333-4444-555555555555", "tenantt"
	cmd := func(res Resource, c CommandArgs) []Event {
		return []Event{{Resource: res, Action: Command, Command: &c, Source: "astara.command"}}
	}
	all := Resource{Driver: All, ID: All, TenantID: All}
	for _, tc := range []struct {
		name, payload string
		want          []Event
		error         string
	}{
		{"poll", `{"command": "poll"}`, []Event{{Resource: all, Action: Poll, Source: "astara.command"}}, ""},
		{"workers-debug", `{"command": "workers-debug"}`, cmd(all, CommandArgs{Name: CmdWorkersDebug}), ""},
		{"config-reload", `{"command": "config-reload"}`, cmd(all, CommandArgs{Name: CmdConfigReload}), ""},
		{"global-debug on", `{"command": "global-debug", "enabled": 1, "reason": "upgrade"}`,
			cmd(all, CommandArgs{Name: CmdGlobalDebug, Enabled: true, Reason: "upgrade"}), ""},
		{"global-debug off", `{"command": "global-debug", "enabled": 0}`, cmd(all, CommandArgs{Name: CmdGlobalDebug}), ""},
		{"global-debug true", `{"command": "global-debug", "enabled": true}`, cmd(all, CommandArgs{Name: CmdGlobalDebug, Enabled: true}), ""},
		{"global-debug without enabled", `{"command": "global-debug"}`, nil, "payload.enabled: missing"},
		{"global-debug enabled 2", `{"command": "global-debug", "enabled": 2}`, nil, "2 is not 1 or 0"},
		{"tenant-debug", `{"command": "tenant-debug", "tenant_id": "` + tn + `", "reason": "r"}`,
			cmd(Resource{Driver: All, ID: All, TenantID: tn}, CommandArgs{Name: CmdTenantDebug, TenantID: tn, Reason: "r"}), ""},
		{"tenant-manage without tenant", `{"command": "tenant-manage"}`, nil, "payload.tenant_id is missing"},
		{"resource-debug", `{"command": "resource-debug", "resource_id": "` + r + `", "tenant_id": "*", "reason": "x"}`,
			cmd(Resource{Driver: All, ID: r, TenantID: All}, CommandArgs{Name: CmdResourceDebug, ResourceID: r, TenantID: All, Reason: "x"}), ""},
		{"resource-rebuild with image", `{"command": "resource-rebuild", "resource_id": "` + r + `", "resource_image_uuid": "img"}`,
			cmd(Resource{Driver: All, ID: r, TenantID: All}, CommandArgs{Name: CmdResourceRebuild, ResourceID: r, ImageID: "img"}), ""},
		{"router-rebuild error routers", `{"command": "router-rebuild", "router_id": "error", "router_image_uuid": "img"}`,
			cmd(Resource{Driver: All, ID: Errored, TenantID: All}, CommandArgs{Name: CmdRouterRebuild, ResourceID: Errored, ImageID: "img"}), ""},
		{"router-update", `{"command": "router-update", "router_id": "` + r + `", "tenant_id": "` + tn + `"}`,
			cmd(Resource{Driver: All, ID: r, TenantID: tn}, CommandArgs{Name: CmdRouterUpdate, ResourceID: r, TenantID: tn}), ""},
		{"resource-update without id", `{"command": "resource-update"}`, nil, "payload.resource_id (or router_id) is missing"},
		{"bad resource id", `{"command": "resource-update", "resource_id": "a b"}`, nil, `invalid resource id "a b"`},
		{"unknown command", `{"command": "self-destruct"}`, nil, `unknown command "self-destruct"`},
		{"no command", `{}`, nil, "payload.command is missing"},
		{"command not a string", `{"command": 1}`, nil, "payload.command is a number"},
		{"payload not an object", `[]`, nil, "payload is an array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalize(command(tc.payload))
			if tc.error != "" {
				if err == nil || !errors.Is(err, ErrUnmappable) || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("got %+v, %v; want an unmappable error containing %q", got, err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Events, tc.want) {
				t.Errorf("events %v, want %v", got.Events, tc.want)
				for _, e := range got.Events {
					t.Logf("command %+v", e.Command)
				}
			}
		})
	}
}

// lbDriver stands for the load-balancer driver to come.
type lbDriver struct{ fail bool }

func (d lbDriver) Map(n *Notification) (Result, error) {
	switch {
	case d.fail && strings.HasPrefix(n.EventType, "port."):
		return Result{}, unmappable("lb says no")
	case n.EventType == "loadbalancer.create.end":
		return Result{Events: []Event{{Resource: Resource{Driver: "loadbalancer", ID: "lb", TenantID: "t"}, Action: Create}}}, nil
	case strings.HasPrefix(n.EventType, "port."):
		return Result{Events: []Event{{Resource: Resource{Driver: "loadbalancer", TenantID: "t"}, Action: Update}}}, nil
	case strings.HasPrefix(n.EventType, "security_group."):
		return Result{Reason: "lb: not mine either"}, nil
	}
	return Result{}, nil
}

func TestNormalizerDrivers(t *testing.T) {
	z := NewNormalizer(RouterDriver{}, lbDriver{})
	got, err := z.Normalize(note("port.update.end", `{"port": {"project_id": "t"}}`))
	if err != nil || len(got.Events) != 2 || got.Events[0].Resource.Driver != DriverRouter || got.Events[1].Resource.Driver != "loadbalancer" {
		t.Errorf("one port event for both drivers: %v, %v", got, err)
	}
	if got, err := z.Normalize(note("loadbalancer.create.end", `{}`)); err != nil || len(got.Events) != 1 {
		t.Errorf("an event type only the lb driver knows: %v, %v", got, err)
	}
	if got, err := z.Normalize(note("security_group.create.end", `{}`)); err != nil || got.Reason != reasonSecurityGroups {
		t.Errorf("ignored by both: %v, %v", got, err)
	}
	if _, err := NewNormalizer(RouterDriver{}, lbDriver{fail: true}).Normalize(note("port.update.end", `{"port": {"project_id": "t"}}`)); !errors.Is(err, ErrUnmappable) {
		t.Errorf("a failing driver fails the notification: %v", err)
	}
	if _, err := NewNormalizer().Normalize(note("router.update.end", `{}`)); !errors.Is(err, ErrUnmappable) {
		t.Errorf("no drivers: %v", err)
	}
}
