package netapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/astara-go/astara/internal/netapi/ipam"
)

// maxBodyBytes bounds request bodies.
const maxBodyBytes = 1 << 20

// Attribute length limits, as Neutron's.
const (
	maxNameLen   = 255
	maxDescLen   = 255
	maxDeviceLen = 255
	maxTagLen    = 255
	maxDNS       = 5  // [DEFAULT]max_dns_nameservers
	maxRoutes    = 20 // [DEFAULT]max_subnet_host_routes
	maxFixedIPs  = 5  // [DEFAULT]max_fixed_ips_per_port
	maxTags      = 50
)

// access says when an attribute may be given.
type access uint8

const (
	onPost access = 1 << iota
	onPut
	onBoth = onPost | onPut
	never  = 0 // known, read-only
)

// body is a decoded request body: the members of its resource object.
type body struct {
	put   bool
	raw   json.RawMessage // the resource object as sent, for .start
	attrs map[string]json.RawMessage
	err   error // the first attribute error
}

// readTop reads a request body: a JSON object.
func readTop(r *http.Request) (map[string]json.RawMessage, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, newError(http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge", "Request body larger than %d bytes", maxBodyBytes)
		}
		return nil, errBadRequest("Body contains invalid data")
	}
	top := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) > 0 && json.Unmarshal(data, &top) != nil {
		return nil, errBadRequest("Body contains invalid data")
	}
	return top, nil
}

// readBody decodes the body of a PUT, {"<resource>": {...}}, and checks it
// (see newBody).
func readBody(r *http.Request, c *caller, resource string, attrs map[string]access) (*body, error) {
	top, err := readTop(r)
	if err != nil {
		return nil, err
	}
	raw, ok := top[resource]
	if !ok {
		return nil, errBadRequest("Unable to find '%s' in request body", resource)
	}
	return newBody(c, raw, r.Method == http.MethodPut, resource, attrs)
}

// readCreate decodes the body of a POST: one object, {"<resource>": {...}},
// or several (bulk), {"<resource>s": [{...}, ...]}. It returns the bodies
// and the .start payload (the request as sent).
func readCreate(r *http.Request, c *caller, resource string, attrs map[string]access) ([]*body, object, bool, error) {
	top, err := readTop(r)
	if err != nil {
		return nil, nil, false, err
	}
	if raw, ok := top[resource]; ok {
		b, err := newBody(c, raw, false, resource, attrs)
		if err != nil {
			return nil, nil, false, err
		}
		return []*body{b}, startPayload(resource, b.raw, ""), false, nil
	}
	var items []json.RawMessage
	if raw, ok := top[resource+"s"]; !ok || json.Unmarshal(raw, &items) != nil || len(items) == 0 {
		return nil, nil, false, errBadRequest("Unable to find '%s' in request body", resource)
	}
	var bodies []*body
	var raws []json.RawMessage
	for _, raw := range items {
		b, err := newBody(c, raw, false, resource, attrs)
		if err != nil {
			return nil, nil, false, err
		}
		bodies = append(bodies, b)
		raws = append(raws, b.raw)
	}
	return bodies, object{{resource + "s", raws}}, true, nil
}

// newBody checks a resource object as Neutron's API layer does, in its
// order: the project it names (only admin may name another), unknown
// attributes, then the attributes a POST or a PUT may not give.
func newBody(c *caller, raw json.RawMessage, put bool, resource string, attrs map[string]access) (*body, error) {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil || members == nil {
		return nil, errBadRequest("Unable to find '%s' in request body", resource)
	}
	b := &body{put: put, raw: compact(raw), attrs: members}
	if _, err := b.project(c); err != nil {
		return nil, err
	}
	var unknown []string
	for k := range members {
		if _, ok := attrs[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, errBadRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := attrs[k]
		switch {
		case b.put && a&onPut == 0:
			return nil, errBadRequest("Cannot update read-only attribute %s", k)
		case !b.put && a&onPost == 0:
			return nil, errBadRequest("Attribute '%s' not allowed in POST", k)
		}
	}
	return b, nil
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// has reports whether the body gives attribute k.
func (b *body) has(k string) bool { _, ok := b.attrs[k]; return ok }

// isNull reports whether the body gives k as null.
func (b *body) isNull(k string) bool {
	v, ok := b.attrs[k]
	return ok && string(bytes.TrimSpace(v)) == "null"
}

// require fails unless the body gives k.
func (b *body) require(k string) {
	if b.err == nil && !b.has(k) {
		b.err = errBadRequest("Failed to parse request. Required attribute '%s' not specified", k)
	}
}

func (b *body) fail(k, reason string) {
	if b.err == nil {
		b.err = errInvalidAttr(k, reason)
	}
}

// convertFail records the failure of a conversion (Neutron's convert_to
// functions raise InvalidInput, unlike its validators).
func (b *body) convertFail(msg string) {
	if b.err == nil {
		b.err = errInvalidInput("%s", msg)
	}
}

// shown renders a JSON value as Neutron's messages quote it.
func shown(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	v = bytes.TrimSpace(v)
	if string(v) == "null" {
		return "None"
	}
	return string(v)
}

// decode unmarshals attribute k into dst; false (and the error recorded)
// when absent, already failed, or of the wrong JSON type.
func (b *body) decode(k string, dst any, reason string) bool {
	v, ok := b.attrs[k]
	if !ok || b.err != nil {
		return false
	}
	if err := json.Unmarshal(v, dst); err != nil || string(bytes.TrimSpace(v)) == "null" {
		b.fail(k, fmt.Sprintf(reason, shown(v)))
		return false
	}
	return true
}

// str reads a string of at most max bytes.
func (b *body) str(k string, max int, dst *string) bool {
	var s string
	if !b.decode(k, &s, "'%s' is not a valid string") {
		return false
	}
	if max > 0 && len(s) > max {
		b.fail(k, fmt.Sprintf("'%s' exceeds maximum length of %d", s, max))
		return false
	}
	*dst = s
	return true
}

// boolean reads a boolean as Neutron's convert_to_boolean: JSON booleans,
// 0 and 1, and the strings oslo's bool_from_string accepts.
func (b *body) boolean(k string, dst *bool) bool {
	v, ok := b.attrs[k]
	if !ok || b.err != nil {
		return false
	}
	var x any
	_ = json.Unmarshal(v, &x)
	switch t := x.(type) {
	case bool:
		*dst = t
		return true
	case float64:
		if t == 0 || t == 1 {
			*dst = t == 1
			return true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "1", "t", "true", "on", "y", "yes":
			*dst = true
			return true
		case "0", "f", "false", "off", "n", "no":
			*dst = false
			return true
		}
	}
	b.convertFail(fmt.Sprintf("'%s' cannot be converted to boolean", shown(v)))
	return false
}

// integer reads an integer (or a string holding one), as convert_to_int.
func (b *body) integer(k string, dst *int) bool {
	v, ok := b.attrs[k]
	if !ok || b.err != nil {
		return false
	}
	var x any
	_ = json.Unmarshal(v, &x)
	switch t := x.(type) {
	case float64:
		if t == float64(int(t)) {
			*dst = int(t)
			return true
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(t)); err == nil {
			*dst = n
			return true
		}
	}
	b.convertFail(fmt.Sprintf("'%s' is not an integer", shown(v)))
	return false
}

// uuid reads a UUID.
func (b *body) uuid(k string, dst *string) bool {
	var s string
	if !b.decode(k, &s, "'%s' is not a valid UUID") {
		return false
	}
	if !isUUID(s) {
		b.fail(k, fmt.Sprintf("'%s' is not a valid UUID", s))
		return false
	}
	*dst = s
	return true
}

// strList reads a list of strings of at most max bytes each.
func (b *body) strList(k string, max int, dst *[]string) bool {
	var l []string
	if !b.decode(k, &l, "'%s' is not a list") {
		return false
	}
	for _, s := range l {
		if len(s) > max {
			b.fail(k, fmt.Sprintf("'%s' exceeds maximum length of %d", s, max))
			return false
		}
	}
	*dst = orEmpty(l)
	return true
}

// ip reads an IP address.
func (b *body) ip(k string, dst *netip.Addr) bool {
	var s string
	if !b.decode(k, &s, "'%s' is not a valid IP address") {
		return false
	}
	a, ok := parseIP(s)
	if !ok {
		b.fail(k, fmt.Sprintf("'%s' is not a valid IP address", s))
		return false
	}
	*dst = a
	return true
}

// subnetCIDR reads a subnet's cidr as Neutron does: converted as
// netaddr.IPNetwork reads it (a bare address is a /32 or /128; anything
// else unreadable is InvalidInput), host bits then cleared.
func (b *body) subnetCIDR(k string, dst *netip.Prefix) bool {
	v, ok := b.attrs[k]
	if !ok || b.err != nil {
		return false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		b.err = errInvalidInput("%s is not in a CIDR format", shown(v))
		return false
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		a, ok := parseIP(strings.TrimSpace(s))
		if !ok {
			b.err = errInvalidInput("%s is not in a CIDR format", s)
			return false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	*dst = p.Masked()
	return true
}

// parseRouteCIDR parses a route destination as Neutron's
// validate_route_cidr: a prefix without host bits, not a loopback one;
// reason is Neutron's when it is not one.
func parseRouteCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		if a, ok := parseIP(s); ok {
			return netip.Prefix{}, fmt.Sprintf("'%s' is not a recognized CIDR, '%s' is recommended", s, netip.PrefixFrom(a, a.BitLen()))
		}
		return netip.Prefix{}, fmt.Sprintf("'%s' is not a valid CIDR", s)
	}
	switch {
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Sprintf("'%s' is not a recognized CIDR, '%s' is recommended", s, p.Masked())
	case p.Addr().IsLoopback():
		return netip.Prefix{}, fmt.Sprintf("'%s' is not a routable CIDR", s)
	}
	return p, ""
}

// parseIP parses an address without a zone; IPv4-mapped IPv6 addresses
// are refused, as netaddr's strict parsing does.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, false
	}
	return a, true
}

// mac reads a MAC address.
func (b *body) mac(k string, dst *string) bool {
	var s string
	if !b.decode(k, &s, "'%s' is not a valid MAC address") {
		return false
	}
	m, err := ipam.NormalizeMAC(s)
	if err != nil {
		b.fail(k, fmt.Sprintf("'%s' is not a valid MAC address", s))
		return false
	}
	*dst = m
	return true
}

// objects reads a list of JSON objects.
func (b *body) objects(k, what string, dst *[]map[string]json.RawMessage) bool {
	if !b.decode(k, dst, "'%s' is not a list") {
		return false
	}
	for _, o := range *dst {
		if o == nil {
			b.fail(k, fmt.Sprintf("Invalid data format for %s: 'None'", what))
			return false
		}
	}
	return true
}

// project returns the project a body names (tenant_id or project_id),
// or the caller's: admin may name any project, others only their own, and
// both attributes must agree.
func (b *body) project(c *caller) (string, error) {
	var names []string
	for _, k := range []string{"project_id", "tenant_id"} {
		v, ok := b.attrs[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", errInvalidAttr(k, fmt.Sprintf("'%s' is not a valid string", shown(v)))
		}
		names = append(names, s)
	}
	switch {
	case len(names) == 0:
		return c.ProjectID, nil
	case len(names) == 2 && names[0] != names[1]:
		return "", errBadRequest("'project_id' and 'tenant_id' do not match")
	case names[0] != c.ProjectID && !c.Admin:
		return "", errBadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges")
	case len(names[0]) > maxNameLen:
		return "", errInvalidAttr("project_id", fmt.Sprintf("'%s' exceeds maximum length of %d", names[0], maxNameLen))
	}
	return names[0], nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// isUUID reports whether s is a UUID in its canonical form or as 32 hex digits.
func isUUID(s string) bool {
	h := s
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return false
		}
		h = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	if len(h) != 32 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
