// Package contract is a contract test suite of the Neutron v2.0 API, as
// Astara and its users use it: external and tenant networks, IPv4 and
// IPv6 (SLAAC) subnets, routers with a gateway and interfaces by subnet
// and by port, ports with device filters, the appliance's own ports,
// floating IPs with the router derived, tags, extra routes, list filters
// and pagination, Neutron's errors, and tenant isolation. Most calls go
// through gophercloud, as the orchestrator's; raw HTTP serves what
// gophercloud cannot express.
//
// The suite runs against the embedded network API (internal/netapi) and
// against a real Neutron server: it assumes nothing a real Neutron (Zed)
// does not do, compares what matters where the two legitimately differ
// (which free address is picked, statuses without agents, extensions),
// and creates everything under fresh projects and names, deleting it all
// at the end, so a shared server is left as it was found.
package contract

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// Target is the API under test and how to act on it as admin and as a
// project (tenant).
type Target struct {
	// URL is the API endpoint without the version, e.g. http://127.0.0.1:9696.
	URL string
	// Admin returns the headers that make a request admin (nil: none, as
	// with Neutron's stock noauth).
	Admin http.Header
	// Tenant returns the headers that make a request act as project (a
	// 32-hex project id). Nil when the API cannot tell tenants apart by
	// request (Neutron's stock noauth makes every request admin): objects
	// are then still created on the projects' behalf (project_id in the
	// body), but the checks of tenant isolation and of what only admin
	// sees are skipped.
	Tenant func(project string) http.Header
	// HTTPClient makes the requests (default: http.DefaultClient).
	HTTPClient *http.Client
}

// Run runs the suite against target. The steps run in order and share
// their objects; a failed step stops the suite. Whatever the outcome,
// every object the suite created is deleted.
func Run(t *testing.T, target Target) {
	s := newSuite(t, target)
	t.Cleanup(func() { s.cleanup(t) })
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"discovery", s.discovery},
		{"external network", s.externalNetwork},
		{"tenant networks and subnets", s.tenantNetworks},
		{"invalid subnets", s.invalidSubnets},
		{"invalid bodies", s.invalidBodies},
		{"router with gateway", s.routerGateway},
		{"interfaces by subnet", s.interfacesBySubnet},
		{"interface by port", s.interfaceByPort},
		{"ports", s.ports},
		{"appliance ports", s.appliancePorts},
		{"list filters", s.listFilters},
		{"pagination", s.pagination},
		{"floating IPs", s.floatingIPs},
		{"tags", s.tags},
		{"extra routes", s.extraRoutes},
		{"conflicts", s.conflicts},
		{"not found", s.notFound},
		{"address exhaustion", s.exhaustion},
		{"tenant isolation", s.isolation},
		{"teardown", s.teardown},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.fn) {
			t.Errorf("step %q failed: the steps after it depend on it and are not run", st.name)
			return
		}
	}
}

// suite is the state the steps share.
type suite struct {
	target       Target
	ctx          context.Context
	admin        *gophercloud.ServiceClient
	tenantA      *gophercloud.ServiceClient
	tenantB      *gophercloud.ServiceClient
	projA, projB string
	prefix       string // names of every object start with it
	tenantMode   bool   // per-request tenants: isolation is checked

	created []created // in creation order, for the final cleanup

	// The objects of the scenario.
	extNet, extSubnet             string
	netA, subnetA4, subnetA6      string
	netA2, subnetA2, portA2       string
	netA3, subnetA3               string
	router, gatewayPort           string
	ifaceA4Port, ifaceA6Port      string
	vmPort, vmMAC, vmIPv4, vmIPv6 string
	fixedPort                     string
}

type created struct{ kind, id string }

func newSuite(t *testing.T, target Target) *suite {
	s := &suite{
		target:     target,
		ctx:        t.Context(),
		projA:      randomHex(16),
		projB:      randomHex(16),
		tenantMode: target.Tenant != nil,
	}
	s.prefix = "contract-" + s.projA[:8] + "-"
	s.admin = s.client(target.Admin)
	if s.tenantMode {
		s.tenantA = s.client(target.Tenant(s.projA))
		s.tenantB = s.client(target.Tenant(s.projB))
	} else {
		s.tenantA, s.tenantB = s.admin, s.admin
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// client returns a gophercloud client of the network API sending headers
// (no token: the API under test needs none).
func (s *suite) client(headers http.Header) *gophercloud.ServiceClient {
	hc := http.DefaultClient
	if s.target.HTTPClient != nil {
		hc = s.target.HTTPClient
	}
	base := strings.TrimRight(s.target.URL, "/") + "/"
	c := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: *hc},
		Endpoint:       base,
		ResourceBase:   base + "v2.0/",
		Type:           "network",
		MoreHeaders:    map[string]string{},
	}
	for k, v := range headers {
		c.MoreHeaders[k] = strings.Join(v, ",")
	}
	return c
}

// headersOf returns the headers a client sends.
func headersOf(c *gophercloud.ServiceClient) http.Header {
	h := http.Header{}
	for k, v := range c.MoreHeaders {
		h.Set(k, v)
	}
	return h
}

func (s *suite) track(kind, id string) { s.created = append(s.created, created{kind, id}) }

// raw sends a request without gophercloud; body is JSON-encoded unless
// nil. It returns the status and the decoded JSON body (nil if none).
func (s *suite) raw(t *testing.T, c *gophercloud.ServiceClient, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encode %s %s: %v", method, path, err)
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(s.ctx, method, strings.TrimRight(s.target.URL, "/")+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header = headersOf(c)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := http.DefaultClient
	if s.target.HTTPClient != nil {
		hc = s.target.HTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var out map[string]any
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

// query encodes repeated query parameters: query("a", "1", "a", "2").
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// neutronError returns the type and message of a NeutronError body.
func neutronError(body map[string]any) (typ, msg string, ok bool) {
	e, ok := body["NeutronError"].(map[string]any)
	if !ok {
		return "", "", false
	}
	typ, _ = e["type"].(string)
	msg, _ = e["message"].(string)
	_, hasDetail := e["detail"]
	return typ, msg, typ != "" && msg != "" && hasDetail
}

// wantError checks that err is the API's answer status with a
// NeutronError body of one of types (any type if none is given).
func wantError(t *testing.T, what string, err error, status int, types ...string) {
	t.Helper()
	var e gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &e) {
		t.Errorf("%s: got %v, want a %d error", what, err, status)
		return
	}
	var body map[string]any
	_ = json.Unmarshal(e.Body, &body)
	checkError(t, what, e.Actual, body, status, types...)
}

func checkError(t *testing.T, what string, got int, body map[string]any, status int, types ...string) {
	t.Helper()
	if got != status {
		t.Errorf("%s: status %d (%v), want %d", what, got, body, status)
		return
	}
	typ, msg, ok := neutronError(body)
	if !ok {
		t.Errorf("%s: body %v is not {\"NeutronError\": {\"type\", \"message\", \"detail\"}}", what, body)
		return
	}
	if len(types) > 0 && !slices.Contains(types, typ) {
		t.Errorf("%s: NeutronError type %q (%s), want one of %v", what, typ, msg, types)
	}
}

// object returns the JSON object a gophercloud result holds under key.
func object(t *testing.T, what string, r gophercloud.Result, key string) map[string]any {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%s: %v", what, r.Err)
	}
	top, _ := r.Body.(map[string]any)
	o, ok := top[key].(map[string]any)
	if !ok {
		t.Fatalf("%s: response %v has no %q object", what, r.Body, key)
	}
	return o
}

// hasKeys checks that o has every key (with any value, null included).
func hasKeys(t *testing.T, what string, o map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := o[k]; !ok {
			t.Errorf("%s: no %q in %v", what, k, o)
		}
	}
}

// want checks o[k] == v (JSON numbers compare as float64).
func want(t *testing.T, what string, o map[string]any, k string, v any) {
	t.Helper()
	got, ok := o[k]
	if n, isInt := v.(int); isInt {
		v = float64(n)
	}
	if !ok || !equalJSON(got, v) {
		t.Errorf("%s: %s = %#v, want %#v", what, k, got, v)
	}
}

func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// number returns a JSON number (gophercloud decodes them as json.Number).
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return 0
}

func str(o map[string]any, k string) string { s, _ := o[k].(string); return s }

func list(o map[string]any, k string) []any { l, _ := o[k].([]any); return l }

// fixedIPs returns a port's (or gateway's) fixed IPs as subnet → addresses.
func fixedIPs(l []any) map[string][]string {
	out := map[string][]string{}
	for _, x := range l {
		f, _ := x.(map[string]any)
		out[str(f, "subnet_id")] = append(out[str(f, "subnet_id")], str(f, "ip_address"))
	}
	return out
}

func ids(l []any) []string {
	var out []string
	for _, x := range l {
		o, _ := x.(map[string]any)
		out = append(out, str(o, "id"))
	}
	slices.Sort(out)
	return out
}
