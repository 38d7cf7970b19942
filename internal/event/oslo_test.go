package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/event/eventtest"
)

func fixtures(t testing.TB) []eventtest.Fixture {
	t.Helper()
	all, err := eventtest.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 40 {
		t.Fatalf("only %d fixtures", len(all))
	}
	return all
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// checkAgainstCapture compares a decoded notification with the message the
// capture tool decoded (with Python's json) from the same body.
func checkAgainstCapture(t *testing.T, n Notification, want map[string]any) {
	t.Helper()
	for _, c := range []struct{ got, key string }{
		{n.MessageID, "message_id"}, {n.UniqueID, "_unique_id"}, {n.EventType, "event_type"},
		{n.Priority, "priority"}, {n.PublisherID, "publisher_id"}, {n.Method, "method"},
		{n.Context.ProjectID, "_context_project_id"}, {n.Context.TenantID, "_context_tenant_id"},
		{n.Context.UserID, "_context_user_id"}, {n.Context.RequestID, "_context_request_id"},
		{n.Context.GlobalRequestID, "_context_global_request_id"},
	} {
		if c.got != str(want, c.key) {
			t.Errorf("%s = %q, want %q", c.key, c.got, str(want, c.key))
		}
	}
	if ts := str(want, "timestamp"); ts != "" {
		if n.Timestamp.IsZero() || n.Timestamp.Format("2006-01-02 15:04:05.000000") != ts {
			t.Errorf("timestamp = %v, want %s", n.Timestamp, ts)
		}
	} else if !n.Timestamp.IsZero() {
		t.Errorf("timestamp = %v, want zero", n.Timestamp)
	}
	wantRaw, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, n.Raw, wantRaw) {
		t.Errorf("Raw differs from the captured message")
	}
	for key, field := range map[string]json.RawMessage{"payload": n.Payload, "args": n.Args} {
		w, ok := want[key]
		if !ok {
			if field != nil {
				t.Errorf("%s = %s, want none", key, field)
			}
			continue
		}
		wb, _ := json.Marshal(w)
		if field == nil || !jsonEqual(t, field, wb) {
			t.Errorf("%s = %s, want %s", key, field, wb)
		}
	}
	ctx, err := n.ContextMap()
	if err != nil {
		t.Fatal(err)
	}
	wantCtx := map[string]any{}
	for k, v := range want {
		if after, ok := strings.CutPrefix(k, "_context_"); ok {
			wantCtx[after] = v
		}
	}
	if !reflect.DeepEqual(ctx, wantCtx) {
		t.Errorf("ContextMap = %v, want %v", ctx, wantCtx)
	}
}

// TestDecodeFixtures decodes every captured body, as sent (v2), and the same
// message as a v1 body, and compares with the capture's own decoding.
func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			n, err := Decode(f.Body)
			if err != nil {
				t.Fatalf("v2: %v", err)
			}
			if n.Envelope != "2.0" {
				t.Errorf("Envelope = %q, want 2.0", n.Envelope)
			}
			if f.IsRPC() != n.IsRPC() || n.EventType != f.EventType || n.Method != f.Method {
				t.Errorf("event type %q method %q, want %q %q", n.EventType, n.Method, f.EventType, f.Method)
			}
			if !f.IsRPC() && (n.MessageID == "" || n.UniqueID == "" || n.Priority != "INFO") {
				t.Errorf("message_id %q, _unique_id %q, priority %q: want all set, INFO", n.MessageID, n.UniqueID, n.Priority)
			}
			if n.DedupKey() != str(f.Message, "_unique_id") {
				t.Errorf("DedupKey = %q, want the _unique_id", n.DedupKey())
			}
			checkAgainstCapture(t, n, f.Message)

			v1, err := json.Marshal(f.Message)
			if err != nil {
				t.Fatal(err)
			}
			n1, err := Decode(v1)
			if err != nil {
				t.Fatalf("v1: %v", err)
			}
			if n1.Envelope != "" {
				t.Errorf("v1: Envelope = %q, want none", n1.Envelope)
			}
			checkAgainstCapture(t, n1, f.Message)
		})
	}
}

// TestDecodeDoesNotAlias checks that the result survives the caller reusing
// the body buffer, as an AMQP client may.
func TestDecodeDoesNotAlias(t *testing.T) {
	f, err := eventtest.Named("port.update.end")
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := json.Marshal(f.Message)
	for name, body := range map[string][]byte{"v2": bytes.Clone(f.Body), "v1": v1} {
		n, err := Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		payload := string(n.Payload)
		for i := range body {
			body[i] = 'x'
		}
		if string(n.Payload) != payload {
			t.Errorf("%s: payload changed with the body", name)
		}
	}
}

func envelope(t testing.TB, inner string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": inner})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeShapes(t *testing.T) {
	const msg = `{"event_type": "router.create.end", "message_id": "m1", "payload": {"router": {"id": "r"}}}`
	for _, tc := range []struct {
		name, body string
		envelope   string
	}{
		{"v2", envelope(t, msg), "2.0"},
		{"v2 message first", `{"oslo.message": ` + mustQuote(msg) + `, "oslo.version": "2.0"}`, "2.0"},
		{"v2 spaced", " \n{ \"oslo.version\" :\t\"2.0\" ,\r\n \"oslo.message\" : " + mustQuote(msg) + " } \n", "2.0"},
		{"v2 extra key", `{"oslo.version": "2.0", "oslo.message": ` + mustQuote(msg) + `, "x": [1, {"y": null}]}`, "2.0"},
		{"v2 escaped key", `{"oslo\u002eversion": "2.0", "oslo.message": ` + mustQuote(msg) + `}`, "2.0"},
		{"v2 version 2.0.0", `{"oslo.version": "2.0.0", "oslo.message": ` + mustQuote(msg) + `}`, "2.0.0"},
		{"v1", msg, ""},
		{"v1 with only the version key", `{"oslo.version": "2.0", "event_type": "router.create.end", "message_id": "m1", "payload": {"router": {"id": "r"}}}`, ""},
		{"escaped field name", `{"event\u005ftype": "router.create.end", "message_id": "m1", "payload": {"router": {"id": "r"}}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if n.Envelope != tc.envelope || n.EventType != "router.create.end" || n.MessageID != "m1" {
				t.Errorf("got envelope %q event %q id %q", n.Envelope, n.EventType, n.MessageID)
			}
			if !jsonEqual(t, n.Payload, []byte(`{"router": {"id": "r"}}`)) {
				t.Errorf("payload %s", n.Payload)
			}
		})
	}
}

func mustQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"empty", ``, "not valid JSON"},
		{"null", `null`, "body is null, want an object"},
		{"array", `[1]`, "body is an array"},
		{"string", `"x"`, "body is a string"},
		{"truncated", `{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"x\"}"`, "not valid JSON"},
		{"trailing garbage", envelope(t, `{"event_type": "x"}`) + ` x`, "not valid JSON"},
		{"two values", envelope(t, `{"event_type": "x"}`) + ` {}`, "not valid JSON"},
		{"control character", "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"a\x01\\\"}\"}", "not valid JSON"},
		{"bad escape", `{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"\x\"}"}`, "not valid JSON"},
		{"old version", `{"oslo.version": "1.0", "oslo.message": "{\"event_type\": \"x\"}"}`, `unsupported envelope version "1.0"`},
		{"newer minor", `{"oslo.version": "2.1", "oslo.message": "{\"event_type\": \"x\"}"}`, `unsupported envelope version "2.1"`},
		{"version garbage", `{"oslo.version": "two", "oslo.message": "{\"event_type\": \"x\"}"}`, `unsupported envelope version "two"`},
		{"version not a string", `{"oslo.version": 2.0, "oslo.message": "{\"event_type\": \"x\"}"}`, "oslo.version is a number, want a string"},
		{"message not a string", `{"oslo.version": "2.0", "oslo.message": {"event_type": "x"}}`, "oslo.message is an object, want a string"},
		{"message null", `{"oslo.version": "2.0", "oslo.message": null}`, "oslo.message is null, want a string"},
		{"message not JSON", envelope(t, `event_type: x`), "message is not valid JSON"},
		{"message not an object", envelope(t, `["event_type"]`), "message is an array, want an object"},
		{"message empty", envelope(t, `{}`), "neither event_type nor method"},
		{"event_type a number", envelope(t, `{"event_type": 5}`), "event_type is a number, want a string"},
		{"message_id an object", envelope(t, `{"event_type": "x", "message_id": {}}`), "message_id is an object, want a string"},
		{"context not a string", envelope(t, `{"event_type": "x", "_context_project_id": ["p"]}`), "_context_project_id is an array, want a string"},
		{"v1 empty", `{}`, "neither event_type nor method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Decode([]byte(tc.body))
			if err == nil {
				t.Fatalf("decoded %+v, want an error containing %q", n, tc.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if !reflect.DeepEqual(n, Notification{}) {
				t.Errorf("returned %+v with the error", n)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-21 19:12:41.810571", time.Date(2026, 11, 21, 19, 12, 41, 810571000, time.UTC)},
		{"2026-11-21 19:12:41", time.Date(2026, 11, 21, 19, 12, 41, 0, time.UTC)},
		{"2026-11-21T19:12:41.5Z", time.Date(2026, 11, 21, 19, 12, 41, 500000000, time.UTC)},
		{"2026-11-21T21:12:41+02:00", time.Date(2026, 11, 21, 19, 12, 41, 0, time.UTC)},
		{"2014-05-1510: 24: 56.335612", time.Time{}}, // seen in old samples: unreadable, not fatal
		{"", time.Time{}},
	} {
		n, err := Decode([]byte(envelope(t, `{"event_type": "x", "timestamp": `+mustQuote(tc.in)+`}`)))
		if err != nil {
			t.Fatal(err)
		}
		if !n.Timestamp.Equal(tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, n.Timestamp, tc.want)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, n := range []Notification{
		{
			MessageID: "m", UniqueID: "u", EventType: "router.update.end", Priority: "INFO", PublisherID: "network.x",
			Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Payload: json.RawMessage(`{"router":{"id":"r"}}`),
			Context: Context{ProjectID: "p", TenantID: "t", UserID: "us", RequestID: "req", GlobalRequestID: "g"},
		},
		{UniqueID: "u2", Method: "router_deleted", Args: json.RawMessage(`{"router_id":"r"}`), Context: Context{ProjectID: "p"}},
	} {
		b, err := Encode(n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got.Raw, got.Envelope = nil, ""
		if !reflect.DeepEqual(got, n) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, n)
		}
	}
}

// referenceDecode decodes a body with encoding/json the obvious way.
func referenceDecode(body []byte) (map[string]any, bool) {
	var env map[string]any
	if json.Unmarshal(body, &env) != nil || env == nil {
		return nil, false
	}
	v, okv := env["oslo.version"]
	m, okm := env["oslo.message"]
	if !okv || !okm {
		return env, true
	}
	if v != "2.0" {
		return nil, false
	}
	s, ok := m.(string)
	if !ok {
		return nil, false
	}
	var msg map[string]any
	if json.Unmarshal([]byte(s), &msg) != nil || msg == nil {
		return nil, false
	}
	return msg, true
}

func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.Body)
	}
	f.Add([]byte(`{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"a\\u00e9\\ud83d\\ude00\"}"}`))
	f.Add([]byte(`{"event_type": "x", "payload": [1, "a\"b", {"c": [true, null]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v does not wrap ErrMalformed", err)
			}
			return
		}
		msg, ok := referenceDecode(body)
		if !ok {
			if n.Envelope == "2.0" {
				t.Fatalf("decoded %q, encoding/json does not", body)
			}
			return // a v2 version spelled "2.0.0", which the reference does not know
		}
		for k, got := range map[string]string{"event_type": n.EventType, "message_id": n.MessageID, "_unique_id": n.UniqueID, "method": n.Method, "_context_project_id": n.Context.ProjectID} {
			if w, _ := msg[k].(string); w != got {
				t.Fatalf("%s = %q, encoding/json says %q", k, got, w)
			}
		}
		if p, ok := msg["payload"]; ok {
			var got any
			if err := json.Unmarshal(n.Payload, &got); err != nil || !reflect.DeepEqual(got, p) {
				t.Fatalf("payload %s, encoding/json says %v", n.Payload, p)
			}
		}
		_, _ = Normalize(&n) // must not panic either
	})
}

// FuzzStringValue compares the string decoder with encoding/json's.
func FuzzStringValue(f *testing.F) {
	for _, s := range []string{`abc`, `a\"b`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\ud83dx`, `\udc00\ud83d`, "\xff", `\x`, "\x01", `\`, `\/\b\f\n\r\t`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		raw := append(append([]byte{'"'}, s...), '"')
		var want string
		werr := json.Unmarshal(raw, &want)
		got, gerr := stringValue(raw)
		if stringEnd(raw, 0) != len(raw) {
			return // an unescaped quote inside: not one string
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: error %v, encoding/json %v", raw, gerr, werr)
		}
		if werr == nil && got != want {
			t.Fatalf("%q: %q, encoding/json %q", raw, got, want)
		}
	})
}
