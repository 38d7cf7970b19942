package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// MaxDocumentSize bounds the size of a document the decoder accepts.
const MaxDocumentSize = 32 << 20

// The wire types mirror the JSON the orchestrator sends. Pointers tell a
// missing field from a zero value; addresses stay strings so that a bad one
// is reported with its path rather than as an opaque parse error.
type wireDocument struct {
	Generation       *wireNumber                `json:"generation"`
	TenantID         *string                    `json:"tenant_id"`
	Hostname         *string                    `json:"hostname"`
	ASN              *wireNumber                `json:"asn"`
	NeighborASN      *wireNumber                `json:"neighbor_asn"`
	DefaultV4Gateway *string                    `json:"default_v4_gateway"`
	HAResource       *bool                      `json:"ha_resource"`
	Networks         []wireNetwork              `json:"networks"`
	FloatingIPs      []wireFloatingIP           `json:"floating_ips"`
	Orchestrator     *wireOrchestrator          `json:"orchestrator"`
	StaticRoutes     [][]string                 `json:"static_routes"`
	Labels           map[string][]string        `json:"labels"`
	AddressBook      map[string][]string        `json:"address_book"`
	Anchors          []json.RawMessage          `json:"anchors"`
	Services         map[string]json.RawMessage `json:"services"`
	VPN              map[string]json.RawMessage `json:"vpn"`
}

type wireNetwork struct {
	ID            *string          `json:"network_id"`
	Name          string           `json:"name"`
	Type          *string          `json:"network_type"`
	V4ConfService *string          `json:"v4_conf_service"`
	V6ConfService *string          `json:"v6_conf_service"`
	MTU           *wireNumber      `json:"mtu"`
	Interface     *wireInterface   `json:"interface"`
	Subnets       []wireSubnet     `json:"subnets"`
	Allocations   []wireAllocation `json:"allocations"`
}

type wireInterface struct {
	IfName    *string     `json:"ifname"`
	Addresses []string    `json:"addresses"`
	MTU       *wireNumber `json:"mtu"`
	LLAddr    string      `json:"lladdr"`
}

type wireSubnet struct {
	ID             *string         `json:"id"`
	CIDR           *string         `json:"cidr"`
	GatewayIP      *string         `json:"gateway_ip"`
	DHCPEnabled    *bool           `json:"dhcp_enabled"`
	DNSNameservers []string        `json:"dns_nameservers"`
	HostRoutes     []wireHostRoute `json:"host_routes"`
}

type wireHostRoute struct {
	Destination *string `json:"destination"`
	NextHop     *string `json:"nexthop"`
}

type wireAllocation struct {
	MACAddress  *string         `json:"mac_address"`
	IPAddresses map[string]bool `json:"ip_addresses"`
	Hostname    *string         `json:"hostname"`
	DeviceID    *string         `json:"device_id"`
}

// wireNumber is a JSON number kept as its literal text. Unlike json.Number it
// refuses strings: with json.Number, "mtu": "big" failed with an error that
// named no field, and "mtu": "1500" was silently accepted. Anything but a
// number is reported as an *json.UnmarshalTypeError, to which the decoder
// adds the field's path.
type wireNumber string

func (n *wireNumber) UnmarshalJSON(b []byte) error {
	kind := "null" // b is one valid JSON value
	if len(b) > 0 {
		switch b[0] {
		case '"':
			kind = "string"
		case 't', 'f':
			kind = "bool"
		case '[':
			kind = "array"
		case '{':
			kind = "object"
		case 'n':
			return nil
		default:
			*n = wireNumber(b)
			return nil
		}
	}
	return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[json.Number]()}
}

type wireFloatingIP struct {
	FloatingIP *string `json:"floating_ip"`
	FixedIP    *string `json:"fixed_ip"`
}

type wireOrchestrator struct {
	Address      *string     `json:"address"`
	MetadataPort *wireNumber `json:"metadata_port"`
	Host         string      `json:"host"`
}

// EnabledServices are the advanced services this appliance provides.
var enabledServices = []string{"router"}

// Decode parses and validates a configuration document. It accepts the
// orchestrator's shape (top-level keys) and the {"configuration": {...}}
// wrapper. The error is a *ValidationError (invalid content) or an
// *UnsupportedError (an advanced service this appliance does not provide).
func Decode(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, &ValidationError{Errors: []FieldError{{Field: "(document)", Msg: fmt.Sprintf("larger than %d bytes", MaxDocumentSize)}}}
	}
	var top map[string]json.RawMessage
	if err := strictUnmarshal(data, &top); err != nil {
		return nil, syntaxError("", err)
	}
	if top == nil {
		return nil, &ValidationError{Errors: []FieldError{{Field: "(document)", Msg: "must be a JSON object"}}}
	}
	if inner, ok := top["configuration"]; ok {
		if len(top) != 1 {
			return nil, &ValidationError{Errors: []FieldError{{Field: "configuration", Msg: "the wrapper must be the only top-level key"}}}
		}
		data = inner
	}
	var w wireDocument
	if err := strictUnmarshal(data, &w); err != nil {
		return nil, syntaxError("", err)
	}
	if err := w.unsupported(); err != nil {
		return nil, err
	}
	var e errs
	doc := w.convert(&e)
	if err := e.err(); err != nil {
		return nil, err
	}
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	return doc, nil
}

// strictUnmarshal decodes exactly one JSON value, keeping numbers exact.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	// A trailing token that is not a value (e.g. "}") is caught here: More
	// reports false for it, and Token fails on it with an error other than EOF.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func syntaxError(prefix string, err error) error {
	field := "(document)"
	msg := err.Error()
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			field = prefix + te.Field
		}
		msg = fmt.Sprintf("must be %s, not JSON %s", jsonKind(te.Type.String()), te.Value)
	case errors.As(err, &se):
		msg = fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se.Error())
	}
	return &ValidationError{Errors: []FieldError{{Field: field, Msg: msg}}}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "model.wire"), strings.HasPrefix(goType, "*model.wire"):
		return "an object"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "Number"):
		return "a number"
	}
	return goType
}

func (w *wireDocument) unsupported() error {
	names := make([]string, 0, len(w.Services))
	for name := range w.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" {
			// Not a request for a service we lack: a malformed document.
			return &ValidationError{Errors: []FieldError{{Field: "services", Msg: "a service name must not be empty"}}}
		}
		if !slices.Contains(enabledServices, name) {
			return &UnsupportedError{Service: name}
		}
	}
	kinds := make([]string, 0, len(w.VPN))
	for kind := range w.VPN {
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		raw := w.VPN[kind]
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil && len(list) == 0 {
			continue
		}
		if string(raw) == "null" {
			continue
		}
		if kind == "" {
			return &ValidationError{Errors: []FieldError{{Field: "vpn", Msg: "a VPN kind must not be empty"}}}
		}
		return &UnsupportedError{Service: "vpn/" + kind}
	}
	return nil
}

func (w *wireDocument) convert(e *errs) *Document {
	d := &Document{
		TenantID: deref(w.TenantID),
		Hostname: deref(w.Hostname),
	}
	if w.Generation != nil {
		d.Generation = parseUint(e, "generation", *w.Generation, 0, math.MaxUint64)
	}
	d.ASN = DefaultASN
	if w.ASN != nil {
		d.ASN = uint32(parseUint(e, "asn", *w.ASN, 1, math.MaxUint32))
	}
	d.NeighborASN = d.ASN
	if w.NeighborASN != nil {
		d.NeighborASN = uint32(parseUint(e, "neighbor_asn", *w.NeighborASN, 1, math.MaxUint32))
	}
	if w.DefaultV4Gateway != nil && *w.DefaultV4Gateway != "" {
		d.DefaultV4Gateway = parseAddr(e, "default_v4_gateway", *w.DefaultV4Gateway)
	}
	if w.HAResource != nil {
		d.HAResource = *w.HAResource
	}
	d.Networks = make([]Network, 0, len(w.Networks))
	for i := range w.Networks {
		d.Networks = append(d.Networks, w.Networks[i].convert(e, idx("networks", i)))
	}
	d.FloatingIPs = make([]FloatingIP, 0, len(w.FloatingIPs))
	for i, f := range w.FloatingIPs {
		path := idx("floating_ips", i)
		d.FloatingIPs = append(d.FloatingIPs, FloatingIP{
			FloatingIP: requiredAddr(e, path+".floating_ip", f.FloatingIP),
			FixedIP:    requiredAddr(e, path+".fixed_ip", f.FixedIP),
		})
	}
	d.Orchestrator = Orchestrator{
		Address:      netip.MustParseAddr(DefaultOrchestratorAddress),
		MetadataPort: DefaultMetadataPort,
	}
	if o := w.Orchestrator; o != nil {
		if o.Address != nil && *o.Address != "" {
			d.Orchestrator.Address = parseAddr(e, "orchestrator.address", *o.Address)
		}
		if o.MetadataPort != nil {
			d.Orchestrator.MetadataPort = uint16(parseUint(e, "orchestrator.metadata_port", *o.MetadataPort, 1, math.MaxUint16))
		}
		d.Orchestrator.Host = o.Host
	}
	for i, r := range w.StaticRoutes {
		path := idx("static_routes", i)
		if len(r) != 2 {
			e.add(path, "must be a [destination, next hop] pair")
			continue
		}
		d.StaticRoutes = append(d.StaticRoutes, StaticRoute{
			Destination: parsePrefix(e, path+"[0]", r[0], true),
			NextHop:     parseAddr(e, path+"[1]", r[1]),
		})
	}
	d.Labels = convertCIDRMap(e, "labels", w.Labels)
	d.AddressBook = convertCIDRMap(e, "address_book", w.AddressBook)
	// Anchors are echoed: keep them in the form json.Marshal writes them
	// (compact, HTML-escaped) so that a decoded document round-trips.
	for _, a := range w.Anchors {
		b, err := json.Marshal(a)
		if err != nil {
			e.add(idx("anchors", len(d.Anchors)), "%v", err)
			continue
		}
		d.Anchors = append(d.Anchors, b)
	}
	return d
}

func (w *wireNetwork) convert(e *errs, path string) Network {
	n := Network{
		ID:            deref(w.ID),
		Name:          w.Name,
		Type:          NetworkIsolated,
		V4ConfService: "static",
		V6ConfService: "static",
	}
	if w.Type != nil {
		n.Type = NetworkType(*w.Type)
	}
	if w.V4ConfService != nil {
		n.V4ConfService = *w.V4ConfService
	}
	if w.V6ConfService != nil {
		n.V6ConfService = *w.V6ConfService
	}
	if w.MTU != nil {
		n.MTU = int(parseUint(e, path+".mtu", *w.MTU, 0, math.MaxUint16))
	}
	if w.Interface == nil {
		e.add(path+".interface", "required")
	} else {
		ip := path + ".interface"
		n.Interface.IfName = deref(w.Interface.IfName)
		n.Interface.LLAddr = w.Interface.LLAddr
		for i, a := range w.Interface.Addresses {
			n.Interface.Addresses = append(n.Interface.Addresses, parsePrefix(e, idx(ip+".addresses", i), a, false))
		}
		if w.Interface.MTU != nil {
			n.Interface.MTU = int(parseUint(e, ip+".mtu", *w.Interface.MTU, 0, math.MaxUint16))
		}
	}
	for i := range w.Subnets {
		n.Subnets = append(n.Subnets, w.Subnets[i].convert(e, idx(path+".subnets", i)))
	}
	for i := range w.Allocations {
		n.Allocations = append(n.Allocations, w.Allocations[i].convert(e, idx(path+".allocations", i)))
	}
	return n
}

func (w *wireSubnet) convert(e *errs, path string) Subnet {
	s := Subnet{ID: deref(w.ID)}
	if w.CIDR == nil {
		e.add(path+".cidr", "required")
	} else {
		s.CIDR = parsePrefix(e, path+".cidr", *w.CIDR, true)
	}
	if w.GatewayIP != nil && *w.GatewayIP != "" {
		s.GatewayIP = parseAddr(e, path+".gateway_ip", *w.GatewayIP)
	}
	if w.DHCPEnabled == nil {
		e.add(path+".dhcp_enabled", "required")
	} else {
		s.DHCPEnabled = *w.DHCPEnabled
	}
	for i, ns := range w.DNSNameservers {
		s.DNSNameservers = append(s.DNSNameservers, parseAddr(e, idx(path+".dns_nameservers", i), ns))
	}
	for i, r := range w.HostRoutes {
		rp := idx(path+".host_routes", i)
		s.HostRoutes = append(s.HostRoutes, HostRoute{
			Destination: requiredPrefix(e, rp+".destination", r.Destination),
			NextHop:     requiredAddr(e, rp+".nexthop", r.NextHop),
		})
	}
	return s
}

func (w *wireAllocation) convert(e *errs, path string) Allocation {
	a := Allocation{
		MACAddress: deref(w.MACAddress),
		Hostname:   deref(w.Hostname),
		DeviceID:   deref(w.DeviceID),
	}
	if w.MACAddress == nil {
		e.add(path+".mac_address", "required")
	}
	if w.IPAddresses == nil {
		e.add(path+".ip_addresses", "required")
	}
	if w.IPAddresses != nil {
		a.IPAddresses = make(map[netip.Addr]bool, len(w.IPAddresses))
		keys := make([]string, 0, len(w.IPAddresses))
		for k := range w.IPAddresses {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if addr := parseAddr(e, path+".ip_addresses["+k+"]", k); addr.IsValid() {
				a.IPAddresses[addr] = w.IPAddresses[k]
			}
		}
	}
	return a
}

func convertCIDRMap(e *errs, path string, in map[string][]string) map[string][]netip.Prefix {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string][]netip.Prefix, len(in))
	for name, cidrs := range in {
		list := make([]netip.Prefix, 0, len(cidrs))
		for i, c := range cidrs {
			list = append(list, parsePrefix(e, idx(path+"."+name, i), c, false))
		}
		out[name] = list
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func parseUint(e *errs, field string, n wireNumber, lo, hi uint64) uint64 {
	var v uint64
	if _, err := fmt.Sscan(string(n), &v); err != nil || string(n) != fmt.Sprint(v) || v < lo || v > hi {
		e.add(field, "must be an integer between %d and %d, not %s", lo, hi, n)
		return 0
	}
	return v
}

func requiredAddr(e *errs, field string, s *string) netip.Addr {
	if s == nil || *s == "" {
		e.add(field, "required")
		return netip.Addr{}
	}
	return parseAddr(e, field, *s)
}

func requiredPrefix(e *errs, field string, s *string) netip.Prefix {
	if s == nil || *s == "" {
		e.add(field, "required")
		return netip.Prefix{}
	}
	return parsePrefix(e, field, *s, true)
}

// parseAddr parses a plain IP address: no zone, no IPv4-mapped IPv6 form.
func parseAddr(e *errs, field, s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		e.add(field, "%q is not an IP address", s)
	case a.Zone() != "":
		e.add(field, "%q: zoned addresses are not allowed", s)
	case a.Is4In6():
		e.add(field, "%q: write IPv4 addresses in dotted form", s)
	default:
		return a
	}
	return netip.Addr{}
}

// parsePrefix parses "address/length". When network is set the address must
// be the network address (no host bits), as in a subnet CIDR.
func parsePrefix(e *errs, field, s string, network bool) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		e.add(field, "%q is not an address/prefix-length", s)
	case p.Addr().Is4In6():
		e.add(field, "%q: write IPv4 prefixes in dotted form", s)
	case network && p != p.Masked():
		e.add(field, "%q has host bits set (did you mean %s?)", s, p.Masked())
	default:
		return p
	}
	return netip.Prefix{}
}
