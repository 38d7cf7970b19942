package rabbit

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func publish(t *testing.T, url, queue, body string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		t.Fatalf("not confirmed: %v %v", ok, err)
	}
}

func get(t *testing.T, url, queue string) string {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("get %s: %v %v", queue, ok, err)
	}
	return string(d.Body)
}

// drain gets every message of queue, space-separated.
func drain(t *testing.T, url, queue string) string {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return strings.Join(got, " ")
		}
		got = append(got, string(d.Body))
	}
}

// processesOf lists the running processes whose command line or
// environment mentions s.
func processesOf(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if strconv.Itoa(os.Getpid()) == filepath.Base(d) {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err == nil && strings.Contains(string(b), s) && alive(atoi(filepath.Base(d))) {
				cmd, _ := os.ReadFile(filepath.Join(d, "cmdline"))
				out = append(out, filepath.Base(d)+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
				break
			}
		}
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestLifecycle starts a broker, keeps a persistent message across a
// graceful stop and a crash, and checks that Close leaves nothing behind.
func TestLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := Launch(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Node(), "rabbit-") || !strings.HasSuffix(b.Node(), "@localhost") {
		t.Errorf("node %s", b.Node())
	}
	publish(t, b.URL(), "q", "one")
	publish(t, b.URL(), "q", "two")

	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Running() {
		t.Fatal("running after Stop")
	}
	if c, err := amqp.Dial(b.URL()); err == nil {
		c.Close()
		t.Fatal("accepts connections after Stop")
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b.URL(), "q"); got != "one" {
		t.Errorf("after a restart: %q, want one", got)
	}

	b.Kill()
	if b.Running() {
		t.Fatal("running after Kill")
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A crash may forget the acknowledgement of "one" (acks are not
	// synced to disk), never the confirmed "two".
	if got := drain(t, b.URL(), "q"); !strings.Contains(got, "two") {
		t.Errorf("after a crash: %q, want two among them", got)
	}
	if err := b.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}

	node, dir := b.Node(), b.Dir()
	if ps := processesOf(t, node); len(ps) == 0 {
		t.Fatalf("no process found for node %s: the leak check below would prove nothing", node)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if ps := processesOf(t, dir); len(ps) > 0 {
		t.Errorf("left running after Close: %q", ps)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
	if err := b.Start(ctx); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestStartForTest uses the t.Cleanup form.
func TestStartForTest(t *testing.T) {
	var dir string
	t.Run("broker", func(t *testing.T) {
		b := Start(t)
		dir = b.Dir()
		publish(t, b.URL(), "q", "x")
	})
	if ps := processesOf(t, dir); len(ps) > 0 {
		t.Errorf("left running after the test: %q", ps)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
}
