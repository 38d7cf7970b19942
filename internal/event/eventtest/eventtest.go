// Package eventtest holds real notifications captured from a real Neutron
// (Zed) server, as they crossed the broker: the exact AMQP body, exchange,
// routing key and properties. Tests and benchmarks of the event intake use
// them; nothing in the orchestrator's run-time path does.
package eventtest

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
)

//go:embed testdata/*.json
var files embed.FS

// Properties are the AMQP basic properties the message was published with.
type Properties struct {
	ContentType     string         `json:"content_type"`
	ContentEncoding string         `json:"content_encoding"`
	Headers         map[string]any `json:"application_headers"`
	DeliveryMode    uint8          `json:"delivery_mode"`
	Priority        uint8          `json:"priority"`
}

// Fixture is one captured message.
type Fixture struct {
	// Name is the file name without ".json", e.g. "router.create.end".
	Name string
	// EventType is the notification's event type; empty for an RPC cast.
	EventType string `json:"event_type"`
	// Method is the RPC method of a cast (e.g. "router_deleted"); empty
	// for a notification.
	Method     string     `json:"method"`
	Exchange   string     `json:"exchange"`
	RoutingKey string     `json:"routing_key"`
	Properties Properties `json:"amqp_properties"`
	// Body is the exact AMQP message body.
	Body []byte `json:"-"`
	// Message is the message as the capture tool decoded it (the inner
	// object of the oslo envelope).
	Message map[string]any `json:"message"`
	// Note says how the capture was provoked, when that matters.
	Note string `json:"note"`
}

// IsRPC reports whether the fixture is an RPC cast rather than a notification.
func (f Fixture) IsRPC() bool { return f.Method != "" }

// All returns every fixture, sorted by name.
func All() ([]Fixture, error) {
	entries, err := files.ReadDir("testdata")
	if err != nil {
		return nil, fmt.Errorf("eventtest: %w", err)
	}
	out := make([]Fixture, 0, len(entries))
	for _, e := range entries {
		f, err := load(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Named returns the fixture called name (without ".json").
func Named(name string) (Fixture, error) { return load(name + ".json") }

func load(file string) (Fixture, error) {
	b, err := files.ReadFile(path.Join("testdata", file))
	if err != nil {
		return Fixture{}, fmt.Errorf("eventtest: %w", err)
	}
	var f struct {
		Fixture
		RawBody *string `json:"raw_body"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return Fixture{}, fmt.Errorf("eventtest: %s: %w", file, err)
	}
	if f.RawBody == nil {
		return Fixture{}, fmt.Errorf("eventtest: %s: no raw_body", file)
	}
	f.Fixture.Name = strings.TrimSuffix(file, ".json")
	f.Fixture.Body = []byte(*f.RawBody)
	return f.Fixture, nil
}
