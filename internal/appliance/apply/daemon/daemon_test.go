package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

// The test binary doubles as the daemon under supervision (and as an agent
// that dies): TestMain dispatches on this variable.
const helperEnv = "ASTARA_DAEMON_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[2:]))
	}
	os.Exit(m.Run())
}

// helperMain implements the fake daemons. argv: <exe> helper <dir> [extra].
//
//	serve        record the start, write dir/pid if asked, count SIGHUPs, exit on SIGTERM
//	ignore-term  like serve, but ignore SIGTERM
//	fail         print a config error to stderr and the log, exit 1
//	crash        record the start, exit 1 after 50ms
//	agent        supervise a "serve" daemon, print its pid, block forever
func helperMain(mode string, args []string) int {
	dir := args[0]
	appendLine := func(name, line string) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
	switch mode {
	case "fail":
		appendLine("daemon.log", "fatal: bad option at line 3 of daemon.conf")
		fmt.Fprintln(os.Stderr, "helper: bad option at line 3 of daemon.conf")
		return 1
	case "crash":
		appendLine("starts", strconv.FormatInt(time.Now().UnixNano(), 10))
		appendLine("ready", strconv.Itoa(os.Getpid()))
		time.Sleep(50 * time.Millisecond)
		return 1
	case "agent":
		p := New(helperConfig(dir, "serve"))
		if _, err := p.Ensure(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(p.PID())
		select {}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	appendLine("starts", strconv.FormatInt(time.Now().UnixNano(), 10))
	if len(args) > 1 && args[1] == "writes-pid" {
		time.Sleep(300 * time.Millisecond) // a slow daemon: readiness must wait for it
		if err := os.WriteFile(filepath.Join(dir, "daemon.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return 3
		}
	}
	if len(args) > 1 && args[1] == "never-ready" {
		select {}
	}
	appendLine("ready", strconv.Itoa(os.Getpid()))
	for s := range sigs {
		switch {
		case s == syscall.SIGHUP:
			appendLine("hups", "hup")
		case s == syscall.SIGTERM && mode == "serve":
			return 0
		}
	}
	return 0
}

func helperConfig(dir, mode string, extra ...string) Config {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return Config{
		Name:     "helper",
		Path:     exe,
		Args:     append([]string{"helper", dir}, extra...),
		Env:      append([]string{helperEnv + "=" + mode}, DefaultEnv...),
		PIDFile:  filepath.Join(dir, "daemon.pid"),
		LogFiles: []string{filepath.Join(dir, "daemon.log")},
		// Ready once the helper has set up its signal handlers.
		Ready: func(_ context.Context, pid int) error {
			b, _ := os.ReadFile(filepath.Join(dir, "ready"))
			for _, f := range strings.Fields(string(b)) {
				if f == strconv.Itoa(pid) {
					return nil
				}
			}
			return errors.New("not ready yet")
		},
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newProcess returns a supervisor whose daemon is stopped at the end of the test.
func newProcess(t *testing.T, cfg Config) *Process {
	t.Helper()
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("cleanup: %v", err)
		}
		p.Close()
	})
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func alive(pid int) bool { return pid > 0 && procAlive(pid) }

func TestEnsureStartsOnceInItsOwnSession(t *testing.T) {
	dir := t.TempDir()
	p := newProcess(t, helperConfig(dir, "serve"))
	started, err := p.Ensure(ctxT(t))
	if err != nil || !started {
		t.Fatalf("Ensure = %v, %v; want started", started, err)
	}
	pid := p.PID()
	if !alive(pid) {
		t.Fatalf("pid %d not running", pid)
	}
	// Its own session, so signals to the agent's process group miss it.
	if sid, err := unixGetsid(pid); err != nil || sid != pid {
		t.Errorf("session of daemon = %d, %v; want its own (%d)", sid, err, pid)
	}
	if got, err := readPIDFile(filepath.Join(dir, "daemon.pid")); err != nil || got != pid {
		t.Errorf("pid file = %d, %v; want %d (written by the supervisor)", got, err, pid)
	}
	started, err = p.Ensure(ctxT(t))
	if err != nil || started || p.PID() != pid {
		t.Fatalf("second Ensure = %v, %v, pid %d; want not started, pid %d", started, err, p.PID(), pid)
	}
	if n := len(lines(t, filepath.Join(dir, "starts"))); n != 1 {
		t.Errorf("daemon started %d times, want 1", n)
	}
}

func unixGetsid(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	return strconv.Atoi(f[3]) // state ppid pgrp session
}

func TestEnsureWaitsForDaemonPIDFile(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve", "writes-pid")
	cfg.DaemonWritesPIDFile = true
	// A stale pid file must not count as readiness.
	if err := os.WriteFile(cfg.PIDFile, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newProcess(t, cfg)
	if _, err := p.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	got, err := readPIDFile(cfg.PIDFile)
	if err != nil || got != p.PID() {
		t.Fatalf("right after Ensure the pid file says %d (%v); want %d", got, err, p.PID())
	}
}

func TestStartFailureReportsOutputAndLog(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "fail")
	cfg.MinBackoff = time.Hour // no background retry during the test
	p := newProcess(t, cfg)
	_, err := p.Ensure(ctxT(t))
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("Ensure error = %v; want a *StartError", err)
	}
	for _, want := range []string{"exited during startup", "exit status 1", "helper: bad option at line 3", "daemon.log: fatal: bad option"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if p.PID() != 0 {
		t.Errorf("PID() = %d after failed start", p.PID())
	}
}

func TestStartTimeoutKillsTheDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve", "never-ready")
	cfg.DaemonWritesPIDFile = true
	cfg.StartTimeout = 500 * time.Millisecond
	cfg.MinBackoff = time.Hour
	p := newProcess(t, cfg)
	_, err := p.Ensure(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "not ready within 500ms") {
		t.Fatalf("Ensure error = %v; want not ready", err)
	}
	var se *StartError
	if !errors.As(err, &se) || alive(se.PID) {
		t.Fatalf("the unready daemon must be killed: %v", err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	p := newProcess(t, helperConfig(dir, "serve"))
	if err := p.Reload(ctxT(t)); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Reload before start = %v; want ErrNotRunning", err)
	}
	if _, err := p.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if err := p.Reload(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		nstest.WaitFor(t, 10*time.Second, "SIGHUP to arrive", func() bool { return len(lines(t, filepath.Join(dir, "hups"))) == i })
	}

	dir2 := t.TempDir()
	cfg := helperConfig(dir2, "serve")
	var reloadedPID int
	cfg.ReloadFunc = func(ctx context.Context, pid int) error { reloadedPID = pid; return errors.New("boom") }
	p2 := newProcess(t, cfg)
	if _, err := p2.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := p2.Reload(ctxT(t)); err == nil || !strings.Contains(err.Error(), "boom") || reloadedPID != p2.PID() {
		t.Fatalf("custom reload: err %v, called with pid %d (daemon %d)", err, reloadedPID, p2.PID())
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "ignore-term")
	cfg.StopTimeout = 300 * time.Millisecond
	p := newProcess(t, cfg)
	if _, err := p.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	t0 := time.Now()
	if err := p.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < cfg.StopTimeout {
		t.Errorf("Stop took %v; the daemon ignores SIGTERM, so it should have waited %v", took, cfg.StopTimeout)
	}
	if alive(pid) || p.PID() != 0 {
		t.Fatalf("daemon %d still alive after Stop", pid)
	}
	if _, err := os.Stat(cfg.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
	if err := p.Stop(ctxT(t)); err != nil {
		t.Errorf("Stop of a stopped daemon = %v", err)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	p := newProcess(t, helperConfig(dir, "serve"))
	if err := p.Restart(ctxT(t)); err != nil { // starts when not running
		t.Fatal(err)
	}
	old := p.PID()
	if err := p.Restart(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if p.PID() == old || alive(old) || !alive(p.PID()) {
		t.Fatalf("after Restart: old %d alive=%v, new %d alive=%v", old, alive(old), p.PID(), alive(p.PID()))
	}
}

func TestRestartsUnexpectedExit(t *testing.T) {
	dir := t.TempDir()
	p := newProcess(t, helperConfig(dir, "serve"))
	if _, err := p.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	old := p.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 30*time.Second, "supervisor to restart the daemon", func() bool {
		pid := p.PID()
		return pid != 0 && pid != old && alive(pid)
	})
	// A stopped daemon stays stopped.
	if err := p.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Nothing is left that could start it again: no restart pending, and
	// the supervisor no longer wants it.
	nstest.WaitFor(t, 10*time.Second, "no pending restart", func() bool {
		if p.lock(context.Background()) != nil {
			return false
		}
		defer p.unlock()
		return !p.restarting && !p.want && p.cur == nil
	})
	if p.PID() != 0 {
		t.Fatalf("stopped daemon has pid %d", p.PID())
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "crash")
	p := newProcess(t, cfg)
	if _, err := p.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	const want = 5
	nstest.WaitFor(t, 60*time.Second, "several restarts", func() bool { return len(lines(t, filepath.Join(dir, "starts"))) >= want })
	if err := p.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	starts := lines(t, filepath.Join(dir, "starts"))
	for i := 1; i < want; i++ {
		a, _ := strconv.ParseInt(starts[i-1], 10, 64)
		b, _ := strconv.ParseInt(starts[i], 10, 64)
		gap := time.Duration(b - a)
		// Delay before restart i: min(Min·2^(i-1), Max), jittered down to half.
		d := min(cfg.MinBackoff<<(i-1), cfg.MaxBackoff)
		if gap < d/2 {
			t.Errorf("restart %d came %v after the previous start; backoff requires at least %v", i, gap, d/2)
		}
	}
}

func TestAdoptsInsteadOfStartingAnother(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve")
	p1 := newProcess(t, cfg)
	if _, err := p1.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := p1.PID()
	p1.Close() // the agent goes away; the daemon stays

	p2 := newProcess(t, cfg)
	if !p2.Running() {
		t.Fatal("Running() = false with the daemon up")
	}
	started, err := p2.Ensure(ctxT(t))
	if err != nil || started || p2.PID() != pid {
		t.Fatalf("Ensure = %v, %v, pid %d; want adoption of %d", started, err, p2.PID(), pid)
	}
	// Adopted daemons are supervised too: kill it, it comes back.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 30*time.Second, "restart of the adopted daemon", func() bool {
		n := p2.PID()
		return n != 0 && n != pid && alive(n)
	})
	pid = p2.PID()

	// Without a pid file, /proc still finds it.
	p2.Close()
	if err := os.Remove(cfg.PIDFile); err != nil {
		t.Fatal(err)
	}
	p3 := newProcess(t, cfg)
	if started, err := p3.Ensure(ctxT(t)); err != nil || started || p3.PID() != pid {
		t.Fatalf("Ensure without pid file = %v, %v, pid %d; want adoption of %d", started, err, p3.PID(), pid)
	}
	if got, err := readPIDFile(cfg.PIDFile); err != nil || got != pid {
		t.Errorf("pid file not restored: %d, %v", got, err)
	}
	if err := p3.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("adopted daemon survived Stop")
	}
	if n := len(lines(t, filepath.Join(dir, "starts"))); n != 2 {
		t.Errorf("%d starts; want 2 (initial, after the kill)", n)
	}
}

func TestDoesNotAdoptAStranger(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve")
	// The pid file names a live process that is not our daemon (a reused pid).
	stranger := exec.Command("sleep", "300")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stranger.Process.Kill(); _ = stranger.Wait() })
	if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(stranger.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Same executable, other arguments (another appliance's daemon).
	other := newProcess(t, helperConfig(t.TempDir(), "serve"))
	if _, err := other.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	p := newProcess(t, cfg)
	started, err := p.Ensure(ctxT(t))
	if err != nil || !started || p.PID() == stranger.Process.Pid || p.PID() == other.PID() {
		t.Fatalf("Ensure = %v, %v, pid %d; want a new daemon", started, err, p.PID())
	}
}

func TestDaemonOutlivesTheAgent(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe, "helper", dir)
	agent.Env = append([]string{helperEnv + "=agent"}, DefaultEnv...)
	agent.Stderr = os.Stderr
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the daemon pid from the agent: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	// The agent dies hard: no cleanup of its own.
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	if !alive(pid) {
		t.Fatal("daemon died with its agent")
	}
	// The next agent adopts it.
	p := newProcess(t, helperConfig(dir, "serve"))
	started, err := p.Ensure(ctxT(t))
	if err != nil || started || p.PID() != pid {
		t.Fatalf("Ensure = %v, %v, pid %d; want adoption of %d", started, err, p.PID(), pid)
	}
	if err := p.Reload(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 10*time.Second, "SIGHUP to the adopted daemon", func() bool { return len(lines(t, filepath.Join(dir, "hups"))) == 1 })
	if err := p.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 10*time.Second, "adopted daemon to be gone", func() bool { return !alive(pid) })
}

func TestClosed(t *testing.T) {
	p := New(helperConfig(t.TempDir(), "serve"))
	p.Close()
	p.Close()
	if _, err := p.Ensure(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ensure after Close = %v", err)
	}
	if err := p.Stop(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after Close = %v", err)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	p := New(Config{Name: "x", MinBackoff: time.Second, MaxBackoff: 8 * time.Second})
	for failures, want := range []time.Duration{1, 1, 2, 4, 8, 8, 8} {
		want *= time.Second
		p.failures = failures
		seen := map[time.Duration]bool{}
		for range 50 {
			d := p.backoffLocked()
			if d < want/2 || d > want {
				t.Fatalf("failures=%d: delay %v outside [%v, %v]", failures, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("failures=%d: no jitter", failures)
		}
	}
	if got := New(Config{MinBackoff: time.Nanosecond}).cfg.MinBackoff; got < minBackoff {
		t.Errorf("MinBackoff floor not applied: %v", got)
	}
}

// A caller waiting for another operation (here a start that takes long)
// gives up when its context ends.
func TestOperationsHonorTheirContext(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve", "never-ready")
	cfg.DaemonWritesPIDFile = true
	cfg.StartTimeout = 20 * time.Second
	cfg.MinBackoff = time.Hour
	p := newProcess(t, cfg)
	startErr := make(chan error, 1)
	go func() { _, err := p.Ensure(context.Background()); startErr <- err }()
	nstest.WaitFor(t, 10*time.Second, "the start to be under way", func() bool { return len(lines(t, filepath.Join(dir, "starts"))) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := p.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
		t.Fatalf("Stop while a start is under way = %v after %v; want the context's deadline", err, time.Since(t0))
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := p.Ensure(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure while a start is under way = %v", err)
	}
	// Close (the agent shutting down) abandons the start: it does not wait
	// out the start timeout.
	t0 = time.Now()
	p.Close()
	if err := <-startErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("start interrupted by Close = %v", err)
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("Close took %v", took)
	}
}

// Stop during a restart backoff cancels the restart at once.
func TestStopCancelsPendingRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "crash")
	cfg.MinBackoff, cfg.MaxBackoff = time.Minute, time.Minute
	p := newProcess(t, cfg)
	if _, err := p.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pending := func() bool {
		if p.lock(context.Background()) != nil {
			return false
		}
		defer p.unlock()
		return p.restarting
	}
	nstest.WaitFor(t, 30*time.Second, "the crash to schedule a restart", pending)
	if err := p.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 10*time.Second, "the pending restart to be dropped", func() bool { return !pending() })
	if n := len(lines(t, filepath.Join(dir, "starts"))); n != 1 {
		t.Errorf("%d starts; want 1", n)
	}
}
