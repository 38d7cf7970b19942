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

// readBody decodes {"<resource>": {...}} and checks every member against
// the resource's attributes: unknown ones and read-only ones are refused
// as Neutron's API layer refuses them.
func readBody(r *http.Request, resource string, attrs map[string]access) (*body, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, newError(http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge", "Request body larger than %d bytes", maxBodyBytes)
		}
		return nil, errBadRequest("Malformed request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errBadRequest("Resource body required")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, errBadRequest("Malformed request body")
	}
	if _, ok := top[resource+"s"]; ok && top[resource] == nil {
		return nil, errBadRequest("Bulk operation not supported")
	}
	raw, ok := top[resource]
	var members map[string]json.RawMessage
	if !ok || json.Unmarshal(raw, &members) != nil || members == nil {
		return nil, errBadRequest("Unable to find '%s' in request body", resource)
	}
	b := &body{put: r.Method == http.MethodPut, raw: compact(raw), attrs: members}
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
	b.fail(k, fmt.Sprintf("'%s' cannot be converted to boolean", shown(v)))
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
	b.fail(k, fmt.Sprintf("'%s' is not an integer", shown(v)))
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

// parseCIDR parses a route destination as Neutron's validate_subnet: a
// prefix (host bits allowed, and kept), not a bare address; reason is
// Neutron's when it is not one.
func parseCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		if a, ok := parseIP(s); ok {
			return netip.Prefix{}, fmt.Sprintf("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, netip.PrefixFrom(a, a.BitLen()))
		}
		return netip.Prefix{}, fmt.Sprintf("'%s' is not a valid IP subnet", s)
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

// project reads the tenant_id and project_id of a POST: admin may name any
// project, others only their own; both must agree.
func (b *body) project(c *caller) (string, error) {
	var tenant, project string
	b.str("tenant_id", maxNameLen, &tenant)
	b.str("project_id", maxNameLen, &project)
	if b.err != nil {
		return "", b.err
	}
	if tenant != "" && project != "" && tenant != project {
		return "", errBadRequest("'project_id' and 'tenant_id' do not match")
	}
	p := cmpOr(project, tenant)
	switch {
	case p == "":
		return c.ProjectID, nil
	case p != c.ProjectID && !c.Admin:
		return "", errBadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges")
	}
	return p, nil
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
