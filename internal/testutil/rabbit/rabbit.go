// Package rabbit runs a real RabbitMQ broker (Debian's rabbitmq-server) for
// tests: a private node with its own data, logs, Erlang cookie, epmd and
// ports on 127.0.0.1, which the tests can stop, kill and start again, and
// which is always torn down, processes and files.
//
// Debian's /usr/sbin/rabbitmq-server is a wrapper that insists on su-ing
// to the rabbitmq user and on /var/lib/rabbitmq, so the broker is run from
// /usr/lib/rabbitmq/bin/rabbitmq-server directly, as the current user
// (root included), with HOME pointing at its own directory (the Erlang
// cookie lives there). RABBITMQ_ALLOW_INPUT plus -noinput makes the script
// exec the Erlang VM in place, so the process started is beam itself: it
// gets SIGKILL if the test process dies (Pdeathsig), and its helpers
// (erl_child_setup, inet_gethost) exit with it. The broker talks to its own
// epmd, started first on a private port (ERL_EPMD_PORT), in the foreground,
// never as a -daemon that would outlive the tests; -start_epmd false stops
// Erlang from spawning one of its own.
package rabbit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Where Debian installs the broker and Erlang's port mapper.
const (
	ServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	epmdName     = "epmd"
)

// DefaultStartTimeout bounds a start: RabbitMQ takes 5-20 s to boot on a
// loaded 2-core machine, more when it recovers queues after a crash.
const DefaultStartTimeout = 3 * time.Minute

// Options configure a broker.
type Options struct {
	// Dir holds the broker's data, logs and cookie. Default: a new
	// temporary directory, removed by Close.
	Dir string
	// StartTimeout bounds each start (DefaultStartTimeout if zero).
	StartTimeout time.Duration
	// Logf, if set, receives progress messages (t.Logf).
	Logf func(format string, args ...any)
}

// Broker is one RabbitMQ node.
type Broker struct {
	opts                         Options
	dir                          string
	ownDir                       bool
	node                         string
	amqpPort, distPort, epmdPort int

	mu       sync.Mutex
	beam     *exec.Cmd
	done     chan struct{} // closed when beam has exited
	epmd     *exec.Cmd
	epmdDone chan struct{}
	closed   bool
}

// Start starts a broker for the test and tears it down when the test ends,
// whatever its outcome. It fails the test if the broker cannot start.
func Start(t testing.TB) *Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultStartTimeout)
	defer cancel()
	b, err := Launch(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("rabbit: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("rabbit: %v", err)
		}
	})
	return b
}

// Launch starts a broker and waits until it accepts AMQP connections. The
// caller must Close it.
func Launch(ctx context.Context, opts Options) (*Broker, error) {
	if _, err := os.Stat(ServerScript); err != nil {
		return nil, fmt.Errorf("rabbitmq-server is required (scripts/test.sh installs it): %w", err)
	}
	if _, err := exec.LookPath(epmdName); err != nil {
		return nil, fmt.Errorf("epmd is required (Debian's erlang-base, a dependency of rabbitmq-server): %w", err)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	b := &Broker{opts: opts, dir: opts.Dir}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "astara-rabbit-")
		if err != nil {
			return nil, fmt.Errorf("rabbit: %w", err)
		}
		b.dir, b.ownDir = d, true
	}
	suffix := randomHex(6)
	b.node = "rabbit-" + suffix + "@localhost"
	if err := b.prepare(suffix); err != nil {
		b.Close()
		return nil, err
	}
	// A port picked free can be taken before the broker binds it: then
	// the broker dies early, and a new set of ports is tried.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = b.pickPorts(); err != nil {
			break
		}
		if err = b.startEPMD(ctx); err == nil {
			if err = b.Start(ctx); err == nil {
				return b, nil
			}
		}
		b.stopEPMD()
		if ctx.Err() != nil || !errors.Is(err, errExitedEarly) {
			break
		}
		opts.Logf("rabbit: attempt %d: %v; trying other ports", attempt, err)
	}
	b.Close()
	return nil, err
}

func (b *Broker) prepare(suffix string) error {
	for _, d := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(b.dir, d), 0o700); err != nil {
			return fmt.Errorf("rabbit: %w", err)
		}
	}
	files := map[string]string{
		// Erlang refuses a cookie file others can read.
		"home/.erlang.cookie": "astara" + suffix + randomHex(8),
		"enabled_plugins":     "[].\n",
		"rabbitmq.conf":       "log.console = false\nlog.file.level = info\n",
		"rabbitmq-env.conf":   "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(content), 0o400); err != nil {
			return fmt.Errorf("rabbit: %w", err)
		}
	}
	return nil
}

func (b *Broker) pickPorts() error {
	seen := map[int]bool{}
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort(seen)
		if err != nil {
			return err
		}
		ports[i] = p
	}
	b.amqpPort, b.distPort, b.epmdPort = ports[0], ports[1], ports[2]
	return nil
}

// freePort returns a port below the ephemeral range (so that no outgoing
// connection takes it meanwhile) that 127.0.0.1 can bind now.
func freePort(seen map[int]bool) (int, error) {
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(12000))
		if err != nil {
			return 0, fmt.Errorf("rabbit: %w", err)
		}
		p := 20000 + int(n.Int64())
		if seen[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		seen[p] = true
		return p, nil
	}
	return 0, errors.New("rabbit: no free port in 20000-32000")
}

func (b *Broker) env() []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(b.dir, "home"),
		"LANG=C.UTF-8", "LC_ALL=C.UTF-8",
		"RABBITMQ_NODENAME=" + b.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(b.amqpPort),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(b.distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(b.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(b.dir, "log"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(b.dir, "rabbitmq"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(b.dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(b.dir, "enabled_plugins"),
		// Exec the VM in place (no shell in between), without a shell on stdin.
		"RABBITMQ_ALLOW_INPUT=true",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -start_epmd false",
		"ERL_EPMD_PORT=" + strconv.Itoa(b.epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}
	return env
}

func (b *Broker) startEPMD(ctx context.Context) error {
	cmd := exec.Command(epmdName, "-port", strconv.Itoa(b.epmdPort), "-address", "127.0.0.1")
	cmd.Env = b.env()
	cmd.Dir = b.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := os.OpenFile(filepath.Join(b.dir, "epmd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rabbit: %w", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("rabbit: start epmd: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.mu.Lock()
	b.epmd, b.epmdDone = cmd, done
	b.mu.Unlock()
	addr := "127.0.0.1:" + strconv.Itoa(b.epmdPort)
	err = poll(ctx, 30*time.Second, func() (bool, error) {
		select {
		case <-done:
			return false, fmt.Errorf("%w: epmd on %s: %s", errExitedEarly, addr, tail(filepath.Join(b.dir, "epmd.out"), 5))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("rabbit: %w", err)
	}
	return nil
}

func (b *Broker) stopEPMD() {
	b.mu.Lock()
	cmd, done := b.epmd, b.epmdDone
	b.epmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

var errExitedEarly = errors.New("exited before it was ready")

// URL is the broker's AMQP URL (the default guest user, allowed from
// 127.0.0.1).
func (b *Broker) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", b.amqpPort) }

// Node is the broker's Erlang node name.
func (b *Broker) Node() string { return b.node }

// Dir is the directory holding the broker's data and logs.
func (b *Broker) Dir() string { return b.dir }

// Running reports whether the broker process is running.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.beam == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Start starts the broker again after Stop or Kill, with the same node
// name, data and ports, and waits until it accepts AMQP connections.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errors.New("rabbit: broker closed")
	}
	if b.beam != nil {
		b.mu.Unlock()
		return errors.New("rabbit: broker already started")
	}
	out, err := os.OpenFile(filepath.Join(b.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.mu.Unlock()
		return fmt.Errorf("rabbit: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(ServerScript)
	cmd.Env = b.env()
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("rabbit: start %s: %w", ServerScript, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.beam, b.done = cmd, done
	b.mu.Unlock()

	err = poll(ctx, b.opts.StartTimeout, func() (bool, error) {
		select {
		case <-done:
			return false, fmt.Errorf("%w (%v)", errExitedEarly, cmd.ProcessState)
		default:
		}
		conn, err := amqp.DialConfig(b.URL(), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
	if err != nil {
		b.kill()
		return fmt.Errorf("rabbit: node %s on port %d: %w\n%s", b.node, b.amqpPort, err, b.Logs())
	}
	b.opts.Logf("rabbit: node %s ready on %s after %v", b.node, b.URL(), time.Since(started).Round(time.Millisecond))
	return nil
}

// Stop stops the broker the way an operator would (SIGTERM: queues and
// persistent messages are saved), killing it if it has not exited when
// ctx is done or after a minute.
func (b *Broker) Stop(ctx context.Context) error {
	b.mu.Lock()
	cmd, done := b.beam, b.done
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	started := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("rabbit: stop: %w; killed", ctx.Err())
	case <-t.C:
		err = errors.New("rabbit: stop: still running after a minute; killed")
	}
	b.kill()
	b.opts.Logf("rabbit: node %s stopped after %v", b.node, time.Since(started).Round(time.Millisecond))
	return err
}

// Kill kills the broker with SIGKILL, as a crash would.
func (b *Broker) Kill() {
	b.kill()
	b.opts.Logf("rabbit: node %s killed", b.node)
}

// kill SIGKILLs the broker and every process it started, and waits until
// they are gone.
func (b *Broker) kill() {
	b.mu.Lock()
	cmd, done := b.beam, b.done
	b.beam = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	pids := append(descendants(cmd.Process.Pid), cmd.Process.Pid)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	<-done
	// The helpers were re-parented when beam died; wait until they are
	// gone too (they cannot survive SIGKILL, but reaping takes a moment).
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range pids {
		for alive(p) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Close kills the broker and its epmd and removes its files (the
// directory too, unless Options.Dir named it).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.kill()
	b.stopEPMD()
	if b.ownDir {
		if err := os.RemoveAll(b.dir); err != nil {
			return fmt.Errorf("rabbit: %w", err)
		}
	}
	return nil
}

// Logs returns the end of the broker's output and log, for failure messages.
func (b *Broker) Logs() string {
	var s strings.Builder
	fmt.Fprintf(&s, "--- %s/server.out:\n%s", b.dir, tail(filepath.Join(b.dir, "server.out"), 30))
	logs, _ := filepath.Glob(filepath.Join(b.dir, "log", "*.log"))
	for _, l := range logs {
		fmt.Fprintf(&s, "--- %s:\n%s", l, tail(l, 30))
	}
	return s.String()
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n"))) + "\n"
}

// poll calls cond every 100 ms until it reports true or an error, ctx is
// done, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// descendants lists the processes below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// ppid reads a process's parent from /proc/<pid>/stat ("pid (comm) state
// ppid ..."; comm may hold spaces and parentheses).
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
