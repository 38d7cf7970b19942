package netapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/event/eventtest"
)

// message decodes a notification's message object.
func message(t *testing.T, n event.Notification) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(n.Raw, &m); err != nil {
		t.Fatalf("%s: %v", n.EventType, err)
	}
	return m
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "list"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

// sameShape reports where got and want differ in shape: the keys of
// objects (recursively), the kinds of values, the shape of list items.
func sameShape(path string, got, want any) []string {
	if kind(got) != kind(want) {
		return []string{fmt.Sprintf("%s: %s, want %s", path, kind(got), kind(want))}
	}
	var diffs []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k := range w {
			if _, ok := g[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: no %q", path, k))
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: extra %q", path, k))
			}
		}
		for k := range w {
			if _, ok := g[k]; ok {
				diffs = append(diffs, sameShape(path+"."+k, g[k], w[k])...)
			}
		}
	case []any:
		g := got.([]any)
		if len(g) > 0 && len(w) > 0 {
			diffs = append(diffs, sameShape(path+"[0]", g[0], w[0])...)
		}
	}
	sort.Strings(diffs)
	return diffs
}

// The notifications of the noauth L3 scenario that produced the fixtures
// (neutron-exercise.sh, security groups aside) have the fixtures' event
// types, in the same order, and their shapes: the same message and
// context keys, .start payloads that are the request as sent, .end
// payloads with the same keys and kinds of values as Neutron's.
func TestNotificationsMatchNeutron(t *testing.T) {
	rec := newRecorder()
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{rec}})
	a := admin(t, ts)
	const project = "3f1b2c4d5e6f47a8b9c0d1e2f3a4b5c6"

	type step struct {
		fixtures []string // the fixtures the step's notifications are compared with, in order
		// run makes the request; it returns the body sent and, for an
		// update, the object's id (what the .start payload carries).
		run func() (request map[string]any, id string)
	}
	type obj = map[string]any
	var ext, extSubnet, net, sub, router, port, fip1, fip2 string
	post := func(path, key string, body func() obj, dst *string) func() (obj, string) {
		return func() (obj, string) {
			b := body()
			*dst = str(a.must(201, "POST", path, b, key), "id")
			return b, ""
		}
	}
	put := func(path func() string, body obj) func() (obj, string) {
		return func() (obj, string) {
			p := path()
			a.must(200, "PUT", p, body, "")
			return body, p[strings.LastIndex(p, "/")+1:]
		}
	}
	action := func(path func() string, body func() obj) func() (obj, string) {
		return func() (obj, string) {
			a.must(200, "PUT", path(), body(), "")
			return nil, ""
		}
	}
	del := func(path func() string) func() (obj, string) {
		return func() (obj, string) {
			a.must(204, "DELETE", path(), nil, "")
			return nil, ""
		}
	}
	steps := []step{
		{[]string{"network.create.start", "network.create.end"}, post("/v2.0/networks", "network", func() obj {
			return obj{"network": obj{"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "external", "shared": false}}
		}, &ext)},
		{[]string{"subnet.create.start", "subnet.create.end"}, post("/v2.0/subnets", "subnet", func() obj {
			return obj{"subnet": obj{"name": "public-v4", "network_id": ext, "ip_version": 4, "cidr": "203.0.113.0/24",
				"gateway_ip": "203.0.113.1", "enable_dhcp": false, "allocation_pools": []any{obj{"start": "203.0.113.10", "end": "203.0.113.200"}}}}
		}, &extSubnet)},
		{[]string{"network.create.start", "network.create.end--tenant-network"}, post("/v2.0/networks", "network", func() obj {
			return obj{"network": obj{"name": "tenant-net", "project_id": project}}
		}, &net)},
		{[]string{"network.update.start", "network.update.end"}, put(func() string { return "/v2.0/networks/" + net }, obj{"network": obj{"description": "updated by exercise"}})},
		{[]string{"subnet.create.start", "subnet.create.end"}, post("/v2.0/subnets", "subnet", func() obj {
			return obj{"subnet": obj{"name": "tenant-v4", "network_id": net, "ip_version": 4, "cidr": "198.51.100.0/24", "project_id": project}}
		}, &sub)},
		{[]string{"subnet.update.start", "subnet.update.end"}, put(func() string { return "/v2.0/subnets/" + sub }, obj{"subnet": obj{"dns_nameservers": []any{"192.0.2.53"}}})},
		{[]string{"router.create.start", "router.create.end"}, post("/v2.0/routers", "router", func() obj {
			return obj{"router": obj{"name": "tenant-router", "project_id": project}}
		}, &router)},
		{[]string{"router.update.start", "router.update.end"}, func() (obj, string) {
			return put(func() string { return "/v2.0/routers/" + router }, obj{"router": obj{"external_gateway_info": obj{"network_id": ext}}})()
		}},
		{[]string{"router.interface.create"}, action(func() string { return "/v2.0/routers/" + router + "/add_router_interface" }, func() obj { return obj{"subnet_id": sub} })},
		{[]string{"port.create.start", "port.create.end"}, post("/v2.0/ports", "port", func() obj {
			return obj{"port": obj{"name": "vm-port", "network_id": net, "project_id": project, "device_owner": "compute:nova", "device_id": "11111111-2222-3333-4444-555555555555"}}
		}, &port)},
		{[]string{"port.update.start", "port.update.end"}, put(func() string { return "/v2.0/ports/" + port }, obj{"port": obj{"name": "vm-port-renamed", "binding:host_id": "compute-1"}})},
		{[]string{"floatingip.create.start", "floatingip.create.end"}, post("/v2.0/floatingips", "floatingip", func() obj {
			return obj{"floatingip": obj{"floating_network_id": ext, "project_id": project}}
		}, &fip1)},
		{[]string{"floatingip.update.start", "floatingip.update.end"}, func() (obj, string) {
			return put(func() string { return "/v2.0/floatingips/" + fip1 }, obj{"floatingip": obj{"port_id": port}})()
		}},
		{[]string{"floatingip.update.start", "floatingip.update.end--disassociate"}, put(func() string { return "/v2.0/floatingips/" + fip1 }, obj{"floatingip": obj{"port_id": nil}})},
		{[]string{"floatingip.create.start", "floatingip.create.end--with-port"}, post("/v2.0/floatingips", "floatingip", func() obj {
			return obj{"floatingip": obj{"floating_network_id": ext, "port_id": port, "project_id": project}}
		}, &fip2)},
		{[]string{"floatingip.delete.start", "floatingip.delete.end"}, del(func() string { return "/v2.0/floatingips/" + fip2 })},
		{[]string{"floatingip.delete.start", "floatingip.delete.end"}, del(func() string { return "/v2.0/floatingips/" + fip1 })},
		{[]string{"port.delete.start", "port.delete.end"}, del(func() string { return "/v2.0/ports/" + port })},
		{[]string{"router.interface.delete"}, action(func() string { return "/v2.0/routers/" + router + "/remove_router_interface" }, func() obj { return obj{"subnet_id": sub} })},
		{[]string{"router.update.start", "router.update.end--gateway-cleared"}, put(func() string { return "/v2.0/routers/" + router }, obj{"router": obj{"external_gateway_info": obj{}}})},
		{[]string{"router.delete.start", "router.delete.end"}, del(func() string { return "/v2.0/routers/" + router })},
		{[]string{"subnet.delete.start", "subnet.delete.end"}, del(func() string { return "/v2.0/subnets/" + sub })},
		{[]string{"network.delete.start", "network.delete.end"}, del(func() string { return "/v2.0/networks/" + net })},
		{[]string{"subnet.delete.start", "subnet.delete.end"}, del(func() string { return "/v2.0/subnets/" + extSubnet })},
		{[]string{"network.delete.start", "network.delete.end"}, del(func() string { return "/v2.0/networks/" + ext })},
	}
	// These steps compare keys only, not kinds of values: the fixture shows
	// the same event for an object in another state (the deleted floating
	// IP associated, the deleted network not flat).
	keysOnly := map[int]bool{16: true, 24: true}
	total := 0
	type sent struct {
		request obj
		id      string
	}
	var requests []sent
	for _, st := range steps {
		body, id := st.run()
		requests = append(requests, sent{body, id})
		total += len(st.fixtures)
	}
	got := rec.waitCount(t, total)
	if len(got) != total {
		t.Fatalf("%d notifications, want %d", len(got), total)
	}
	i := 0
	for si, st := range steps {
		for _, name := range st.fixtures {
			n := got[i]
			i++
			f, err := eventtest.Named(name)
			if err != nil {
				t.Fatal(err)
			}
			if n.EventType != f.EventType {
				t.Errorf("notification %d: %s, want %s", i, n.EventType, f.EventType)
				continue
			}
			m := message(t, n)
			if d := sameShape(name+" message", withoutPayload(m), withoutPayload(f.Message)); len(d) > 0 {
				t.Errorf("%s", strings.Join(d, "\n"))
			}
			if strings.HasSuffix(n.EventType, ".start") && requests[si].request != nil {
				want := map[string]any{}
				for k, v := range requests[si].request {
					want[k] = v
				}
				if requests[si].id != "" {
					want["id"] = requests[si].id
				}
				if !jsonEqual(m["payload"], want) {
					t.Errorf("%s payload %v, want the request %v", name, m["payload"], want)
				}
				continue
			}
			if d := sameShape(name+" payload", m["payload"], f.Message["payload"]); len(d) > 0 && (!keysOnly[si] || keysDiffer(d)) {
				t.Errorf("%s", strings.Join(d, "\n"))
			}
		}
	}
	// The context is Neutron noauth's admin context.
	m := message(t, got[0])
	for k, v := range map[string]any{
		"_context_project_id": NoauthProject, "_context_tenant_id": NoauthProject, "_context_is_admin": true,
		"_context_user_id": nil, "_context_roles": []any{"admin"}, "_context_user_identity": "- fake_project_id - - -",
		"publisher_id": "network.netapi-test", "priority": "INFO",
	} {
		if !jsonEqual(m[k], v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if got[0].Envelope != "2.0" || got[0].Context.ProjectID != NoauthProject {
		t.Errorf("decoded notification: envelope %q, context %+v", got[0].Envelope, got[0].Context)
	}
}

// keysDiffer reports whether shape differences include key differences.
func keysDiffer(diffs []string) bool {
	return slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, ": no \"") || strings.Contains(d, ": extra \"") })
}

func withoutPayload(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != "payload" {
			out[k] = v
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// A tenant's request (headers mode) carries the tenant's context, and its
// .end payload is what the tenant sees (no provider attributes), as the
// fixture captured from Neutron with keystonecontext.
func TestNotificationsOfATenant(t *testing.T) {
	rec := newRecorder()
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{rec}})
	const project = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	alice := client{t, ts.URL, map[string][]string{"X-User-Id": {"alice"}, "X-Project-Id": {project}, "X-Roles": {"member,reader"}}}
	alice.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "alice-net"}}, "network")
	got := rec.waitCount(t, 2)
	f, err := eventtest.Named("network.create.end--headers-mode-tenant")
	if err != nil {
		t.Fatal(err)
	}
	m := message(t, got[1])
	if d := sameShape("message", m, f.Message); len(d) > 0 {
		t.Errorf("%s", strings.Join(d, "\n"))
	}
	for k, v := range map[string]any{
		"_context_user_id": "alice", "_context_user": "alice", "_context_project_id": project, "_context_tenant_id": project,
		"_context_is_admin": false, "_context_roles": []any{"member", "reader"}, "_context_user_identity": "alice " + project + " - - -",
	} {
		if !jsonEqual(m[k], v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if got[1].Context.UserID != "alice" || got[1].Context.TenantID != project {
		t.Errorf("decoded context %+v", got[1].Context)
	}
}

// A request refused after its body was read sends its .start and no .end,
// as Neutron does (fixtures *--rejected-403 and *--rejected-404); one
// refused for its body sends nothing.
func TestRejectedRequestsSendOnlyStart(t *testing.T) {
	rec := newRecorder()
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{rec}})
	a := tenant(t, ts, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	b := tenant(t, ts, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	for _, tc := range []struct {
		name    string
		c       client
		method  string
		path    string
		body    any
		status  int
		fixture string // "" when nothing is sent
	}{
		{"tenant creates an external network", a, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "x", "router:external": true}}, 403, "network.create.start--rejected-403"},
		{"other tenant updates a floating IP", b, "PUT", "/v2.0/floatingips/33547019-afa2-46aa-9bbc-43acd1f65ab1", map[string]any{"floatingip": map[string]any{"port_id": nil}}, 404, "floatingip.update.start--rejected-404"},
		{"unknown attribute", a, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"colour": "blue"}}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.all())
			status, body := tc.c.do(tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%d %v, want %d", status, body, tc.status)
			}
			// A marker change: everything queued before it is delivered first.
			a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "marker"}}, "network")
			got := rec.waitCount(t, before+2)
			got = got[before:]
			if tc.fixture == "" {
				if got[0].EventType != "network.create.start" || len(got) != 2 {
					t.Fatalf("sent %s before the marker", got[0].EventType)
				}
				return
			}
			got = rec.waitCount(t, before+3)[before:]
			f, err := eventtest.Named(tc.fixture)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].EventType != f.EventType || got[1].EventType != "network.create.start" {
				t.Fatalf("sent %s, %s; want %s then the marker's", got[0].EventType, got[1].EventType, f.EventType)
			}
			m := message(t, got[0])
			if !jsonEqual(m["payload"], f.Message["payload"]) {
				t.Errorf("payload %v, want %v", m["payload"], f.Message["payload"])
			}
		})
	}
}

// The orchestrator's own event mapping turns the notifications into the
// router events it acts on.
func TestNotificationsMapToRouterEvents(t *testing.T) {
	rec := newRecorder()
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{rec}})
	a := admin(t, ts)
	ext := str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "ext", "router:external": true}}, "network"), "id")
	a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": ext, "ip_version": 4, "cidr": "203.0.113.0/24"}}, "subnet")
	net := str(a.must(201, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}}, "network"), "id")
	sub := str(a.must(201, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}}, "subnet"), "id")
	router := str(a.must(201, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext}}}, "router"), "id")
	a.must(200, "PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"subnet_id": sub}, "")
	port := str(a.must(201, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net}}, "port"), "id")
	a.must(201, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext, "port_id": port}}, "floatingip")
	a.must(201, "PUT", "/v2.0/routers/"+router+"/tags/astara:state=ACTIVE", nil, "")

	want := map[string]event.Action{"router.create.end": event.Create, "router.interface.create": event.Update, "floatingip.create.end": event.Update}
	got := rec.waitFor(t, "the tag's notification", func(ns []event.Notification) bool {
		return len(ns) > 0 && ns[len(ns)-1].EventType == "tag.create.end"
	})
	seen := map[string]bool{}
	for _, n := range got {
		action, ok := want[n.EventType]
		if !ok {
			continue
		}
		seen[n.EventType] = true
		r, err := event.Normalize(&n)
		if err != nil || len(r.Events) != 1 {
			t.Errorf("%s: %+v, %v", n.EventType, r, err)
			continue
		}
		if ev := r.Events[0]; ev.Resource.ID != router || ev.Action != action || ev.Resource.Driver != event.DriverRouter {
			t.Errorf("%s maps to %s, want %s router/%s", n.EventType, ev, action, router)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("saw %v, want %v", seen, want)
	}
	last := message(t, got[len(got)-1])
	wantPayload := map[string]any{"parent_resource": "routers", "parent_resource_id": router, "tags": []any{"astara:state=ACTIVE"}}
	if !jsonEqual(last["payload"], wantPayload) {
		t.Errorf("tag.create.end payload %v, want %v", last["payload"], wantPayload)
	}
}

// A bulk create makes every object or none, with one .start carrying the
// request and one .end carrying the response, as Neutron's.
func TestBulkCreate(t *testing.T) {
	rec := newRecorder()
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{rec}})
	a := admin(t, ts)
	body := map[string]any{"networks": []any{map[string]any{"name": "one"}, map[string]any{"name": "two", "mtu": 1400}}}
	out := a.must(201, "POST", "/v2.0/networks", body, "")
	nets, _ := out["networks"].([]any)
	if len(nets) != 2 || nets[1].(map[string]any)["mtu"] != float64(1400) {
		t.Fatalf("bulk create: %v", out)
	}
	got := rec.waitCount(t, 2)
	if got[0].EventType != "network.create.start" || got[1].EventType != "network.create.end" {
		t.Fatalf("notifications %v", eventTypes(got))
	}
	if p := message(t, got[0])["payload"]; !jsonEqual(p, body) {
		t.Errorf("start payload %v, want the request %v", p, body)
	}
	if p := message(t, got[1])["payload"].(map[string]any); len(p["networks"].([]any)) != 2 {
		t.Errorf("end payload %v", p)
	}
	if r, err := event.Normalize(&got[1]); err != nil || r.Reason == "" {
		t.Errorf("the orchestrator's mapping of a bulk network.create.end: %+v, %v", r, err)
	}
}

// Tag operations send tag.<action>.start/.end about their parent, and the
// extraroute member actions send nothing, as captured from Neutron Zed.
func TestTagAndMemberActionNotifications(t *testing.T) {
	rec := newRecorder()
	_, ts := newTestServer(t, Config{Notifiers: []Notifier{rec}})
	a := admin(t, ts)
	r := str(a.must(201, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r"}}, "router"), "id")
	a.must(201, "PUT", "/v2.0/routers/"+r+"/tags/astara:state=ACTIVE", nil, "")
	a.must(200, "PUT", "/v2.0/routers/"+r+"/tags", map[string]any{"tags": []any{"a"}}, "")
	a.must(204, "DELETE", "/v2.0/routers/"+r+"/tags/a", nil, "")
	a.must(204, "DELETE", "/v2.0/routers/"+r+"/tags", nil, "")
	a.must(200, "PUT", "/v2.0/routers/"+r+"/add_extraroutes", map[string]any{"router": map[string]any{"routes": []any{}}}, "")
	a.must(204, "DELETE", "/v2.0/routers/"+r, nil, "")
	want := []string{"router.create.start", "router.create.end", "tag.create.start", "tag.create.end", "tag.update.start", "tag.update.end",
		"tag.delete.start", "tag.delete.end", "tag.delete_all.start", "tag.delete_all.end", "router.delete.start", "router.delete.end"}
	got := rec.waitCount(t, len(want))
	if !slices.Equal(eventTypes(got), want) {
		t.Fatalf("notifications %v, want %v", eventTypes(got), want)
	}
	for i, tags := range map[int]any{3: []any{"astara:state=ACTIVE"}, 5: []any{"a"}, 7: []any{"a"}} {
		p := message(t, got[i])["payload"]
		if w := map[string]any{"parent_resource": "routers", "parent_resource_id": r, "tags": tags}; !jsonEqual(p, w) {
			t.Errorf("%s payload %v, want %v", got[i].EventType, p, w)
		}
	}
	if p := message(t, got[9])["payload"]; !jsonEqual(p, map[string]any{"parent_resource": "routers", "parent_resource_id": r}) {
		t.Errorf("tag.delete_all.end payload %v", p)
	}
}
