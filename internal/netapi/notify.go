package netapi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/astara-go/astara/internal/event"
)

// Notifier takes the notifications the API emits, in commit order. Notify
// may block to push back; it must return once ctx is done. An error makes
// the server retry the same notification later (with the same
// _unique_id, so consumers that deduplicate see it once).
type Notifier interface {
	Notify(ctx context.Context, n event.Notification) error
}

// NotifierFunc adapts a function to Notifier, e.g.
// NotifierFunc(inProcessSource.PublishNotification).
type NotifierFunc func(ctx context.Context, n event.Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n event.Notification) error { return f(ctx, n) }

// oslo's notification priority and envelope.
const (
	priorityInfo = "INFO"
	osloVersion  = "2.0"
)

// buildNotification encodes a notification exactly as Neutron's
// oslo.messaging notifier does (messagingv2): the message with the request
// context flattened into _context_* fields, inside a v2 envelope. It
// returns the envelope (the AMQP body) and its decoded form.
func (s *Server) buildNotification(c *caller, eventType string, payload any, now time.Time) ([]byte, event.Notification, error) {
	user := any(nil)
	if c.UserID != "" {
		user = c.UserID
	}
	roles := c.Roles
	if roles == nil {
		roles = []string{}
	}
	identity := cmpOr(c.UserID, "-") + " " + c.ProjectID + " - - -"
	stamp := now.UTC().Format("2006-01-02 15:04:05.000000")
	msg := object{
		{"message_id", newUUID()},
		{"publisher_id", s.publisherID},
		{"event_type", eventType},
		{"priority", priorityInfo},
		{"payload", payload},
		{"timestamp", stamp},
		{"_unique_id", newHexID()},
		{"_context_user", user},
		{"_context_project_id", c.ProjectID},
		{"_context_system_scope", nil},
		{"_context_project", c.ProjectID},
		{"_context_domain", nil},
		{"_context_user_domain", nil},
		{"_context_project_domain", nil},
		{"_context_is_admin", c.Admin},
		{"_context_read_only", false},
		{"_context_show_deleted", false},
		{"_context_auth_token", nil},
		{"_context_request_id", c.RequestID},
		{"_context_global_request_id", nil},
		{"_context_resource_uuid", nil},
		{"_context_roles", roles},
		{"_context_user_identity", identity},
		{"_context_is_admin_project", true},
		{"_context_user_id", user},
		{"_context_tenant_id", c.ProjectID},
		{"_context_timestamp", c.Time.UTC().Format("2006-01-02 15:04:05.000000")},
		{"_context_tenant_name", nil},
		{"_context_project_name", nil},
		{"_context_user_name", nil},
	}
	inner, err := json.Marshal(msg)
	if err != nil {
		return nil, event.Notification{}, fmt.Errorf("encode %s: %w", eventType, err)
	}
	quoted, err := marshal(string(inner))
	if err != nil {
		return nil, event.Notification{}, fmt.Errorf("encode %s envelope: %w", eventType, err)
	}
	env := []byte(`{"oslo.version": "` + osloVersion + `", "oslo.message": ` + string(quoted) + `}`)
	n, err := event.Decode(env)
	if err != nil {
		return nil, event.Notification{}, fmt.Errorf("decode own %s: %w", eventType, err)
	}
	return env, n, nil
}

// startPayload is the payload of a .start notification of a create or an
// update: the request's resource object as sent, with the id of an update.
func startPayload(resource string, raw json.RawMessage, id string) object {
	p := object{{resource, raw}}
	if id != "" {
		p.add("id", id)
	}
	return p
}

// deletePayload is the payload of a .delete.start ({"<res>_id": id}) or,
// with the object, of a .delete.end.
func deletePayload(resource, id string, obj object) object {
	p := object{{resource + "_id", id}}
	if obj != nil {
		p.add(resource, obj)
	}
	return p
}
