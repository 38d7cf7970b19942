package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed marks a message body that is not an oslo.messaging message.
// Every error Decode returns wraps it.
var ErrMalformed = errors.New("malformed oslo.messaging message")

// The oslo.messaging v2 envelope: {"oslo.version": "2.0", "oslo.message":
// "<the message, JSON-encoded as a string>"}.
const (
	envelopeVersionKey = "oslo.version"
	envelopeMessageKey = "oslo.message"
	envelopeVersion    = "2.0"
	contextPrefix      = "_context_"
)

// Notification is one decoded oslo.messaging message: a notification
// (EventType and Payload set) or an RPC cast (Method and Args set), such
// as the l3_agent fanout's router_deleted.
type Notification struct {
	// Envelope is the envelope version, "2.0"; empty for a v1 body, which
	// is the message itself.
	Envelope    string
	MessageID   string
	UniqueID    string
	EventType   string
	Priority    string
	PublisherID string
	// Timestamp is when the notifier sent the message, in UTC. It is only
	// informational, so it is read leniently: zero when absent or unreadable.
	Timestamp time.Time
	Payload   json.RawMessage
	// Context holds the request-context fields the orchestrator uses; see
	// ContextMap for all of them.
	Context Context
	Method  string
	Args    json.RawMessage
	// Raw is the message object itself (the inner JSON of a v2 envelope).
	Raw json.RawMessage
}

// Context is the request context oslo.messaging flattens into the message
// as _context_<key> fields.
type Context struct {
	ProjectID       string
	TenantID        string
	UserID          string
	RequestID       string
	GlobalRequestID string
}

// IsRPC reports whether n is an RPC cast rather than a notification.
func (n *Notification) IsRPC() bool { return n.Method != "" }

// DedupKey is the key that identifies a message across redeliveries: the
// _unique_id oslo.messaging adds to every message, else the message_id;
// empty when the message has neither.
func (n *Notification) DedupKey() string {
	if n.UniqueID != "" {
		return n.UniqueID
	}
	return n.MessageID
}

// ContextMap decodes every _context_<key> field of the message, keyed by
// <key>. It is for logs and debugging; the hot path uses Context.
func (n *Notification) ContextMap() (map[string]any, error) {
	out := map[string]any{}
	m, ok := objectMembers(n.Raw)
	if !ok {
		return out, nil
	}
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		if !bytes.HasPrefix(k, []byte(contextPrefix)) {
			continue
		}
		key, err := unescape(nil, k)
		if err != nil {
			return nil, fmt.Errorf("context key %q: %w", k, err)
		}
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out[strings.TrimPrefix(string(key), contextPrefix)] = val
	}
	if m.err != nil {
		return nil, fmt.Errorf("message: %w", m.err)
	}
	return out, nil
}

// Decode decodes a raw AMQP message body: a v2 envelope (the message
// double-encoded as a JSON string), or a v1 body, the message itself. It
// checks the body fully and names the first offending field; errors wrap
// ErrMalformed. The result does not alias body.
func Decode(body []byte) (Notification, error) {
	var n Notification
	inner, version, err := openEnvelope(body)
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	n.Envelope = version
	if err := n.decodeMessage(inner); err != nil {
		return Notification{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return n, nil
}

// openEnvelope returns the message object inside body (a copy: the result
// never aliases body) and the envelope version ("" for v1).
func openEnvelope(body []byte) (msg []byte, version string, err error) {
	if msg, version, ok, err := fastEnvelope(body); ok || err != nil {
		return msg, version, err
	}
	if !json.Valid(body) {
		return nil, "", errors.New("body is not valid JSON")
	}
	m, ok := objectMembers(body)
	if !ok {
		return nil, "", fmt.Errorf("body is %s, want an object", kind(bytes.TrimSpace(body)))
	}
	var rawVersion, rawMessage []byte
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		switch {
		case keyIs(k, envelopeVersionKey):
			rawVersion = v
		case keyIs(k, envelopeMessageKey):
			rawMessage = v
		}
	}
	if m.err != nil {
		return nil, "", m.err
	}
	if rawVersion == nil || rawMessage == nil {
		// oslo.messaging's deserialize_msg: without both keys, the body is
		// the message (the v1 "messaging" driver).
		return bytes.Clone(body), "", nil
	}
	version, err = stringValue(rawVersion)
	if err != nil {
		return nil, "", fmt.Errorf("%s is %s, want a string", envelopeVersionKey, kind(rawVersion))
	}
	if err := checkVersion(version); err != nil {
		return nil, "", err
	}
	s, err := stringValue(rawMessage)
	if err != nil || string(rawMessage) == "null" {
		return nil, "", fmt.Errorf("%s is %s, want a string", envelopeMessageKey, kind(rawMessage))
	}
	return []byte(s), version, nil
}

// fastEnvelope reads the common shape {"oslo.version": "...",
// "oslo.message": "..."} in a single pass that validates what it reads.
// ok is false (and err nil) when body has another shape; the caller then
// takes the general path.
func fastEnvelope(body []byte) (msg []byte, version string, ok bool, err error) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, "", false, nil
	}
	var haveVersion bool
	for i = skipSpace(body, i+1); ; {
		if i >= len(body) || body[i] != '"' {
			return nil, "", false, nil
		}
		kend := stringEnd(body, i)
		if kend < 0 {
			return nil, "", false, nil
		}
		key := body[i+1 : kend-1]
		i = skipSpace(body, kend)
		if i >= len(body) || body[i] != ':' {
			return nil, "", false, nil
		}
		i = skipSpace(body, i+1)
		if i >= len(body) || body[i] != '"' {
			return nil, "", false, nil
		}
		vend := stringEnd(body, i)
		if vend < 0 {
			return nil, "", false, nil
		}
		val := body[i+1 : vend-1]
		switch string(key) {
		case envelopeVersionKey:
			if haveVersion {
				return nil, "", false, nil
			}
			v, err := unescape(nil, val)
			if err != nil {
				return nil, "", false, nil
			}
			version, haveVersion = string(v), true
		case envelopeMessageKey:
			if msg != nil {
				return nil, "", false, nil
			}
			msg, err = unescape(make([]byte, 0, len(val)), val)
			if err != nil {
				return nil, "", false, nil
			}
		default:
			return nil, "", false, nil
		}
		i = skipSpace(body, vend)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		if i < len(body) && body[i] == '}' && skipSpace(body, i+1) == len(body) {
			break
		}
		return nil, "", false, nil
	}
	if !haveVersion || msg == nil {
		return nil, "", false, nil
	}
	if err := checkVersion(version); err != nil {
		return nil, "", false, err
	}
	return msg, version, true, nil
}

// checkVersion accepts what oslo.messaging's version_is_compatible accepts
// for its envelope version 2.0: "major.minor[.revision]" with major 2 and
// nothing newer than 2.0.
func checkVersion(v string) error {
	parts := strings.Split(v, ".")
	ok := len(parts) == 2 || len(parts) == 3
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (i == 0 && n != 2) || (i > 0 && n != 0) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("unsupported envelope version %q (want %q)", v, envelopeVersion)
	}
	return nil
}

// decodeMessage fills n from the message object msg, which it keeps as Raw.
func (n *Notification) decodeMessage(msg []byte) error {
	if !json.Valid(msg) {
		return errors.New("message is not valid JSON")
	}
	m, ok := objectMembers(msg)
	if !ok {
		return fmt.Errorf("message is %s, want an object", kind(bytes.TrimSpace(msg)))
	}
	n.Raw = msg
	var timestamp string
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		if bytes.IndexByte(k, '\\') >= 0 {
			u, err := unescape(nil, k)
			if err != nil {
				return err
			}
			k = u
		}
		var dst *string
		switch string(k) {
		case "message_id":
			dst = &n.MessageID
		case "_unique_id":
			dst = &n.UniqueID
		case "event_type":
			dst = &n.EventType
		case "priority":
			dst = &n.Priority
		case "publisher_id":
			dst = &n.PublisherID
		case "timestamp":
			dst = &timestamp
		case "method":
			dst = &n.Method
		case "_context_project_id":
			dst = &n.Context.ProjectID
		case "_context_tenant_id":
			dst = &n.Context.TenantID
		case "_context_user_id":
			dst = &n.Context.UserID
		case "_context_request_id":
			dst = &n.Context.RequestID
		case "_context_global_request_id":
			dst = &n.Context.GlobalRequestID
		case "payload":
			n.Payload = v
			continue
		case "args":
			n.Args = v
			continue
		default:
			continue
		}
		s, err := stringValue(v)
		if err != nil {
			return fmt.Errorf("%s is %s, want a string", k, kind(v))
		}
		*dst = s
	}
	if m.err != nil {
		return m.err
	}
	if n.EventType == "" && n.Method == "" {
		return errors.New("message has neither event_type nor method")
	}
	n.Timestamp = parseTimestamp(timestamp)
	return nil
}

// Timestamps are str(datetime.utcnow()): "2006-01-02 15:04:05.999999",
// UTC, no zone. Accept ISO 8601 too.
var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
}

func parseTimestamp(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// Encode encodes n as oslo.messaging does: a v2 envelope around the message
// with its context flattened into _context_<key> fields. It serves the
// in-process source and tests; a notification without a payload gets {}.
func Encode(n Notification) ([]byte, error) {
	msg := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			msg[k] = v
		}
	}
	put("message_id", n.MessageID)
	put("_unique_id", n.UniqueID)
	put("publisher_id", n.PublisherID)
	put("_context_project_id", n.Context.ProjectID)
	put("_context_tenant_id", n.Context.TenantID)
	put("_context_user_id", n.Context.UserID)
	put("_context_request_id", n.Context.RequestID)
	put("_context_global_request_id", n.Context.GlobalRequestID)
	if !n.Timestamp.IsZero() {
		msg["timestamp"] = n.Timestamp.UTC().Format("2006-01-02 15:04:05.000000")
	}
	if n.Method != "" {
		msg["method"] = n.Method
		if n.Args != nil {
			msg["args"] = n.Args
		} else {
			msg["args"] = json.RawMessage("{}")
		}
	} else {
		put("event_type", n.EventType)
		put("priority", n.Priority)
		if n.Payload != nil {
			msg["payload"] = n.Payload
		} else {
			msg["payload"] = json.RawMessage("{}")
		}
	}
	inner, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	out, err := json.Marshal(map[string]string{envelopeVersionKey: envelopeVersion, envelopeMessageKey: string(inner)})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return out, nil
}
