package intake

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestNewAMQPSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  AMQPConfig
		want string // error substring; "" for success
	}{
		{"defaults", AMQPConfig{URLs: []string{"amqp://u:p@h:5672/"}, Host: "node1"}, ""},
		{"no URL", AMQPConfig{Host: "node1"}, "no broker URL"},
		{"bad URL", AMQPConfig{URLs: []string{"http://u:secret@h/"}, Host: "node1"}, "AMQP URL"},
		{"no host", AMQPConfig{URLs: []string{"amqp://h/"}}, "no host"},
		{"incomplete binding", AMQPConfig{URLs: []string{"amqp://h/"}, Bindings: []Binding{{Exchange: "neutron"}}}, "binding 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewAMQPSource(tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				b := s.cfg.Bindings
				if len(b) != 1 || b[0] != NotificationBinding("node1") || b[0].Queue != "astara.notifications.node1" ||
					b[0].Exchange != "neutron" || b[0].ExchangeType != "topic" || b[0].ExchangeDurable || b[0].ExchangeAutoDelete ||
					b[0].RoutingKey != "notifications.info" || !b[0].QueueDurable {
					t.Errorf("default bindings %+v", b)
				}
				if s.cfg.Prefetch != 100 || s.cfg.Reconnect.Max != 30*time.Second || s.p.maxRetries != DefaultMaxRetries {
					t.Errorf("defaults %+v", s.cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://user:secret@rabbit:5672/":        "amqp://user@rabbit:5672/%2F",
		"amqps://user:secret@rabbit/astara":      "amqps://user@rabbit:5671/astara",
		"amqp://user:secret@[::1]:5672/":         "amqp://user@[::1]:5672/%2F",
		"not a url but user:secret@host:1/vhost": "amqp://…@host:1/vhost",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRunBench runs the benchmark briefly: it must work, whatever the speed.
func TestRunBench(t *testing.T) {
	r, err := RunBench(context.Background(), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) == 0 || r.Fixtures < 40 || r.Messages <= 8*benchDedupSize {
		t.Fatalf("result %+v", r)
	}
	for _, row := range r.Rows {
		if row.Rate <= 0 || row.Baseline <= 0 || row.Events == 0 {
			t.Errorf("row %+v", row)
		}
	}
	var out bytes.Buffer
	r.Print(&out, "the test machine")
	for _, s := range []string{"machine: the test machine", "naive decode msgs/s", "ratio", "target >= 50000 msgs/s"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}
