package neutron

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeNeutron is a small Neutron v2.0 API over the objects of
// testdata/neutron.json (shaped like the Neutron API bodies of the
// notification fixtures): lists with filters and limit/marker pagination,
// shows, port create and delete, router tags, dhrouterstatus and
// extensions. Faults make requests fail on demand.
type fakeNeutron struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// objs holds the collections: networks, subnets, ports, routers,
	// floatingips; each object is its JSON body.
	objs map[string][]map[string]any
	// extensions are the aliases GET /v2.0/extensions lists; nil: 404.
	extensions []string
	// pageSize, when positive, pages every list even without a limit.
	pageSize int
	// ignoreFilters makes lists ignore their filters (as an API that does
	// not support one would).
	ignoreFilters bool
	// noPortSecurity refuses port_security_enabled as Neutron does without
	// the port_security extension driver.
	noPortSecurity bool
	// noTags answers 404 on router tag URLs (no tag extension).
	noTags bool
	// requireHeaders answers 401 without X-User-Id (the headers mode).
	requireHeaders bool
	faults         []*fault
	requests       []request
	statuses       map[string][]string // dhrouterstatus PUTs per router
	macs           int
}

type request struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         map[string]any
}

// faultMode tells how a fault fails a request.
type faultMode int

const (
	failBefore  faultMode = iota // answer status without processing
	failAfter                    // process, then answer status
	resetBefore                  // close the connection without processing
	resetAfter                   // process, then close the connection
)

type fault struct {
	method, path string // path prefix
	query        string // a substring of the raw query, if set
	status       int
	times        int
	mode         faultMode
}

var allExtensions = []string{"router", "external-net", "extraroute", "l3-ha", "port-security",
	"standard-attr-description", "standard-attr-tag", "standard-attr-revisions", "binding", "security-group", "quotas"}

func newFake(t *testing.T) *fakeNeutron {
	t.Helper()
	b, err := os.ReadFile("testdata/neutron.json")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNeutron{t: t, extensions: slices.Clone(allExtensions), statuses: map[string][]string{}}
	if err := json.Unmarshal(b, &f.objs); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2.0/extensions", f.listExtensions)
	for _, c := range []string{"networks", "subnets", "ports", "routers", "floatingips"} {
		mux.HandleFunc("GET /v2.0/"+c, func(w http.ResponseWriter, r *http.Request) { f.list(w, r, c) })
		mux.HandleFunc("GET /v2.0/"+c+"/{id}", func(w http.ResponseWriter, r *http.Request) { f.show(w, r, c) })
	}
	mux.HandleFunc("POST /v2.0/ports", f.createPort)
	mux.HandleFunc("DELETE /v2.0/ports/{id}", f.deletePort)
	mux.HandleFunc("GET /v2.0/routers/{id}/tags", f.listTags)
	mux.HandleFunc("PUT /v2.0/routers/{id}/tags/{tag}", f.addTag)
	mux.HandleFunc("DELETE /v2.0/routers/{id}/tags/{tag}", f.deleteTag)
	mux.HandleFunc("PUT /v2.0/dhrouterstatus/{id}", f.putStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		neutronError(w, http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
	})
	f.srv = httptest.NewServer(f.middleware(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// provider returns a Provider for the fake with quick retries.
func (f *fakeNeutron) provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	if opts.Retry == (RetryPolicy{}) {
		opts.Retry = RetryPolicy{Attempts: 4, BaseDelay: 1, MaxDelay: 1}
	}
	p, err := NewNoAuth(f.srv.URL, "fake_project_id", opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fail makes the next times requests matching method and path prefix fail.
func (f *fakeNeutron) fail(method, path string, status, times int, mode faultMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault{method: method, path: path, status: status, times: times, mode: mode})
}

// take returns the fault for r, if any, and counts it.
func (f *fakeNeutron) take(r *http.Request) *fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.faults {
		if ft.times != 0 && ft.method == r.Method && strings.HasPrefix(r.URL.Path, ft.path) &&
			strings.Contains(r.URL.RawQuery, ft.query) {
			ft.times--
			return ft
		}
	}
	return nil
}

func (f *fakeNeutron) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &rec.Body); err != nil {
				neutronError(w, http.StatusBadRequest, "HTTPBadRequest", "malformed JSON")
				return
			}
		}
		f.mu.Lock()
		f.requests = append(f.requests, rec)
		requireHeaders := f.requireHeaders
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if requireHeaders && (r.Header.Get("X-User-Id") == "" || r.Header.Get("X-Project-Id") == "") {
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
		ft := f.take(r)
		if ft == nil {
			next.ServeHTTP(w, r)
			return
		}
		if ft.mode == failAfter || ft.mode == resetAfter {
			next.ServeHTTP(httptest.NewRecorder(), r)
		}
		if ft.mode == resetBefore || ft.mode == resetAfter {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				f.t.Errorf("hijack: %v", err)
				return
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, not an orderly close
			}
			conn.Close()
			return
		}
		neutronError(w, ft.status, "InjectedFault", fmt.Sprintf("injected %d", ft.status))
	})
}

// requestsTo returns the requests made with method to paths starting with path.
func (f *fakeNeutron) requestsTo(method, path string) []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.requests {
		if r.Method == method && strings.HasPrefix(r.Path, path) {
			out = append(out, r)
		}
	}
	return out
}

// all returns every request made since the last resetRequests.
func (f *fakeNeutron) all() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeNeutron) resetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

// object returns a copy of an object's body, or nil.
func (f *fakeNeutron) object(coll, id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.find(coll, id); o != nil {
		b, _ := json.Marshal(o)
		var c map[string]any
		json.Unmarshal(b, &c)
		return c
	}
	return nil
}

// named returns the objects of coll with the given name.
func (f *fakeNeutron) named(coll, name string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, o := range f.objs[coll] {
		if o["name"] == name {
			out = append(out, o)
		}
	}
	return out
}

func (f *fakeNeutron) add(coll string, o map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[coll] = append(f.objs[coll], o)
}

func (f *fakeNeutron) remove(coll, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[coll] = slices.DeleteFunc(f.objs[coll], func(o map[string]any) bool { return o["id"] == id })
}

func (f *fakeNeutron) set(fn func(f *fakeNeutron)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// find returns the object (f.mu held).
func (f *fakeNeutron) find(coll, id string) map[string]any {
	for _, o := range f.objs[coll] {
		if o["id"] == id {
			return o
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func neutronError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"NeutronError": map[string]any{"type": typ, "message": msg, "detail": ""}})
}

func singular(coll string) string {
	if coll == "floatingips" {
		return "floatingip"
	}
	return strings.TrimSuffix(coll, "s")
}

func notFoundType(coll string) string {
	switch coll {
	case "floatingips":
		return "FloatingIPNotFound"
	}
	s := singular(coll)
	return strings.ToUpper(s[:1]) + s[1:] + "NotFound"
}

func (f *fakeNeutron) listExtensions(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.extensions == nil {
		neutronError(w, http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
		return
	}
	var exts []map[string]any
	for _, a := range f.extensions {
		exts = append(exts, map[string]any{"name": a, "alias": a, "description": "extension " + a,
			"updated": "2013-02-03T10:00:00-00:00", "links": []any{}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"extensions": exts})
}

func (f *fakeNeutron) list(w http.ResponseWriter, r *http.Request, coll string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	var match []map[string]any
	for _, o := range f.objs[coll] {
		ok := true
		for k, vs := range q {
			switch k {
			case "limit", "marker", "fields", "sort_key", "sort_dir":
				continue
			}
			if f.ignoreFilters {
				continue
			}
			if v, _ := o[k].(string); !slices.Contains(vs, v) {
				ok = false
			}
		}
		if ok {
			match = append(match, o)
		}
	}
	limit := f.pageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			neutronError(w, http.StatusBadRequest, "HTTPBadRequest", "bad limit")
			return
		}
		limit = n
	}
	start := 0
	if m := q.Get("marker"); m != "" {
		i := slices.IndexFunc(match, func(o map[string]any) bool { return o["id"] == m })
		if i < 0 {
			neutronError(w, http.StatusNotFound, notFoundType(coll), "marker "+m+" not found")
			return
		}
		start = i + 1
	}
	page := match[start:]
	body := map[string]any{}
	if limit > 0 && len(page) > limit {
		page = page[:limit]
		next := url.Values{}
		for k, vs := range q {
			next[k] = vs
		}
		next.Set("limit", strconv.Itoa(limit))
		next.Set("marker", page[len(page)-1]["id"].(string))
		body[coll+"_links"] = []map[string]any{{"rel": "next", "href": f.srv.URL + r.URL.Path + "?" + next.Encode()}}
	}
	if page == nil {
		page = []map[string]any{}
	}
	body[coll] = page
	writeJSON(w, http.StatusOK, body)
}

func (f *fakeNeutron) show(w http.ResponseWriter, r *http.Request, coll string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	o := f.find(coll, id)
	if o == nil {
		neutronError(w, http.StatusNotFound, notFoundType(coll), fmt.Sprintf("%s %s could not be found.", singular(coll), id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{singular(coll): o})
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (f *fakeNeutron) createPort(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Port map[string]any `json:"port"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Port == nil {
		neutronError(w, http.StatusBadRequest, "HTTPBadRequest", "Resource body required")
		return
	}
	in := body.Port
	f.mu.Lock()
	defer f.mu.Unlock()
	has := func(ext string) bool { return slices.Contains(f.extensions, ext) }
	for _, attr := range []string{"port_security_enabled", "description"} {
		ext := map[string]string{"port_security_enabled": "port-security", "description": "standard-attr-description"}[attr]
		if _, ok := in[attr]; ok && ((attr == "port_security_enabled" && f.noPortSecurity) || (f.extensions != nil && !has(ext))) {
			neutronError(w, http.StatusBadRequest, "HTTPBadRequest", fmt.Sprintf("Unrecognized attribute(s) '%s'", attr))
			return
		}
	}
	netID, _ := in["network_id"].(string)
	nw := f.find("networks", netID)
	if nw == nil {
		neutronError(w, http.StatusNotFound, "NetworkNotFound", fmt.Sprintf("Network %s could not be found.", netID))
		return
	}
	f.macs++
	mac := fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", 0xa0, f.macs>>8, f.macs&0xff)
	var subnets []map[string]any
	for _, s := range f.objs["subnets"] {
		if s["network_id"] == netID {
			subnets = append(subnets, s)
		}
	}
	auto := func(s map[string]any) bool {
		return s["ipv6_address_mode"] == "slaac" || s["ipv6_address_mode"] == "dhcpv6-stateless" ||
			s["ipv6_ra_mode"] == "slaac" || s["ipv6_ra_mode"] == "dhcpv6-stateless"
	}
	var fixed []map[string]any
	add := func(s map[string]any) {
		cidr := netip.MustParsePrefix(s["cidr"].(string))
		var a netip.Addr
		if auto(s) {
			hw, _ := net.ParseMAC(mac)
			b := cidr.Addr().As16()
			copy(b[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
			a = netip.AddrFrom16(b)
		} else {
			a = cidr.Addr()
			for range 100 + f.macs {
				a = a.Next()
			}
		}
		fixed = append(fixed, map[string]any{"subnet_id": s["id"], "ip_address": a.String()})
	}
	requested, specified := in["fixed_ips"].([]any)
	if specified {
		for _, x := range requested {
			sid, _ := x.(map[string]any)["subnet_id"].(string)
			i := slices.IndexFunc(subnets, func(s map[string]any) bool { return s["id"] == sid })
			if i < 0 {
				neutronError(w, http.StatusBadRequest, "InvalidInput", fmt.Sprintf("Invalid input for operation: Failed to create port on network %s, because fixed_ips included invalid subnet %s.", netID, sid))
				return
			}
			add(subnets[i])
		}
	} else {
		// No fixed_ips: one address of each IP version.
		for _, v := range []float64{4, 6} {
			if i := slices.IndexFunc(subnets, func(s map[string]any) bool { return s["ip_version"] == v && !auto(s) }); i >= 0 {
				add(subnets[i])
			}
		}
	}
	// Neutron always adds the auto-address (SLAAC) subnets' addresses to
	// ports that are not router ports.
	for _, s := range subnets {
		if auto(s) && !slices.ContainsFunc(fixed, func(x map[string]any) bool { return x["subnet_id"] == s["id"] }) {
			add(s)
		}
	}
	project := r.Header.Get("X-Project-Id")
	ps := true
	if v, ok := in["port_security_enabled"].(bool); ok {
		ps = v
	}
	sgs := []any{"2c4158ce-edb7-4211-bd6e-78de38208a81"}
	if v, ok := in["security_groups"].([]any); ok {
		sgs = v
	}
	str := func(k string) string { s, _ := in[k].(string); return s }
	adminUp := true
	if v, ok := in["admin_state_up"].(bool); ok {
		adminUp = v
	}
	port := map[string]any{
		"id": newUUID(), "name": str("name"), "network_id": netID, "tenant_id": project, "project_id": project,
		"mac_address": mac, "admin_state_up": adminUp, "status": "DOWN", "device_id": str("device_id"),
		"device_owner": str("device_owner"), "fixed_ips": fixed, "port_security_enabled": ps, "security_groups": sgs,
		"binding:vnic_type": "normal", "binding:profile": map[string]any{}, "binding:host_id": "",
		"binding:vif_type": "unbound", "binding:vif_details": map[string]any{}, "allowed_address_pairs": []any{},
		"extra_dhcp_opts": []any{}, "description": str("description"), "tags": []any{},
		"created_at": "2026-11-21T19:12:44Z", "updated_at": "2026-11-21T19:12:44Z", "revision_number": 1,
	}
	f.objs["ports"] = append(f.objs["ports"], port)
	writeJSON(w, http.StatusCreated, map[string]any{"port": port})
}

func (f *fakeNeutron) deletePort(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if f.find("ports", id) == nil {
		neutronError(w, http.StatusNotFound, "PortNotFound", fmt.Sprintf("Port %s could not be found.", id))
		return
	}
	f.objs["ports"] = slices.DeleteFunc(f.objs["ports"], func(o map[string]any) bool { return o["id"] == id })
	w.WriteHeader(http.StatusNoContent)
}

// router returns the router of a tag or status request, answering 404
// itself when there is none (f.mu held).
func (f *fakeNeutron) router(w http.ResponseWriter, r *http.Request) map[string]any {
	if f.noTags && strings.Contains(r.URL.Path, "/tags") {
		neutronError(w, http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
		return nil
	}
	id := r.PathValue("id")
	o := f.find("routers", id)
	if o == nil {
		neutronError(w, http.StatusNotFound, "RouterNotFound", fmt.Sprintf("Router %s could not be found", id))
	}
	return o
}

func tagsOf(o map[string]any) []any {
	t, _ := o["tags"].([]any)
	return t
}

func (f *fakeNeutron) listTags(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.router(w, r); o != nil {
		writeJSON(w, http.StatusOK, map[string]any{"tags": tagsOf(o)})
	}
}

func (f *fakeNeutron) addTag(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.router(w, r); o != nil {
		tag := r.PathValue("tag")
		if !slices.Contains(tagsOf(o), any(tag)) {
			o["tags"] = append(tagsOf(o), tag)
		}
		w.WriteHeader(http.StatusCreated)
	}
}

func (f *fakeNeutron) deleteTag(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.router(w, r); o != nil {
		tag := r.PathValue("tag")
		if !slices.Contains(tagsOf(o), any(tag)) {
			neutronError(w, http.StatusNotFound, "TagNotFound", "Tag "+tag+" could not be found")
			return
		}
		o["tags"] = slices.DeleteFunc(tagsOf(o), func(t any) bool { return t == tag })
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeNeutron) putStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.extensions, extRouterStatus) {
		neutronError(w, http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
		return
	}
	var body struct {
		RouterStatus struct {
			Status string `json:"status"`
		} `json:"routerstatus"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.RouterStatus.Status == "" {
		neutronError(w, http.StatusBadRequest, "HTTPBadRequest", "routerstatus.status required")
		return
	}
	if o := f.router(w, r); o != nil {
		o["status"] = body.RouterStatus.Status
		f.statuses[r.PathValue("id")] = append(f.statuses[r.PathValue("id")], body.RouterStatus.Status)
		writeJSON(w, http.StatusOK, map[string]any{"routerstatus": map[string]any{"id": o["id"], "status": o["status"]}})
	}
}
