package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

// Repeating Ensure on a running daemon, or Stop on a stopped one, starts,
// signals and stops nothing, and does not look through /proc again.
func TestSteadyStateIsQuietAndScansNothing(t *testing.T) {
	dir := t.TempDir()
	p := newProcess(t, helperConfig(dir, "serve"))
	ctx := ctxT(t)
	started, err := p.Ensure(ctx)
	if err != nil || !started {
		t.Fatalf("Ensure = %v, %v; want started", started, err)
	}
	pid := p.PID()
	scans := p.scans.Load()
	for range 50 {
		if started, err := p.Ensure(ctx); err != nil || started || p.PID() != pid {
			t.Fatalf("Ensure of a running daemon = %v, %v, pid %d; want nothing done, pid %d", started, err, p.PID(), pid)
		}
		if !p.Running() {
			t.Fatal("Running() = false with the daemon up")
		}
	}
	if n := p.scans.Load() - scans; n != 0 {
		t.Errorf("%d looks through /proc for a daemon the supervisor runs", n)
	}

	stopped, err := p.EnsureStopped(ctx)
	if err != nil || !stopped || alive(pid) {
		t.Fatalf("EnsureStopped = %v, %v (pid %d alive: %v); want stopped", stopped, err, pid, alive(pid))
	}
	// The first look after the stop finds nothing and is remembered.
	if p.Running() {
		t.Fatal("Running() = true after Stop")
	}
	scans = p.scans.Load()
	for range 50 {
		if stopped, err := p.EnsureStopped(ctx); err != nil || stopped {
			t.Fatalf("EnsureStopped of a stopped daemon = %v, %v; want nothing done", stopped, err)
		}
		if err := p.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if p.Running() || p.PID() != 0 {
			t.Fatalf("Running() = %v, PID() = %d after Stop", p.Running(), p.PID())
		}
	}
	if n := p.scans.Load() - scans; n != 0 {
		t.Errorf("%d looks through /proc for a daemon known to be stopped", n)
	}
	if n := len(lines(t, filepath.Join(dir, "starts"))); n != 1 {
		t.Errorf("daemon started %d times, want 1", n)
	}
	if n := len(lines(t, filepath.Join(dir, "hups"))); n != 0 {
		t.Errorf("daemon got %d SIGHUPs, want 0", n)
	}
}

// A supervisor that knows its daemon is stopped still finds one started
// since by someone else (a previous agent's Process, here): its pid file
// changed.
func TestKnownStoppedSeesANewInstance(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve")
	p := newProcess(t, cfg)
	ctx := ctxT(t)
	if stopped, err := p.EnsureStopped(ctx); err != nil || stopped {
		t.Fatalf("EnsureStopped = %v, %v", stopped, err)
	}
	if p.Running() {
		t.Fatal("Running() with nothing started")
	}

	other := newProcess(t, cfg)
	if _, err := other.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	pid := other.PID()
	other.Close() // it goes away; its daemon stays

	if !p.Running() {
		t.Fatal("Running() = false: the new instance was not seen")
	}
	if stopped, err := p.EnsureStopped(ctx); err != nil || !stopped || alive(pid) {
		t.Fatalf("EnsureStopped = %v, %v (pid %d alive: %v); want the new instance stopped", stopped, err, pid, alive(pid))
	}

	// Same again, with the pid file lost: the first supervisor of an agent
	// looks through /proc.
	third := newProcess(t, cfg)
	if _, err := third.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	pid = third.PID()
	third.Close()
	if err := os.Remove(cfg.PIDFile); err != nil {
		t.Fatal(err)
	}
	fresh := newProcess(t, cfg)
	if stopped, err := fresh.EnsureStopped(ctx); err != nil || !stopped || alive(pid) {
		t.Fatalf("EnsureStopped without pid file = %v, %v (pid %d alive: %v); want it stopped", stopped, err, pid, alive(pid))
	}
}

// A stale pid file (naming a dead process) does not make every call look
// through /proc once it is old enough for its stamp to tell a change; a
// daemon that rewrites it is found.
func TestStalePIDFileIsLookedAtOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve")
	// A process that is gone: its pid is stale.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newProcess(t, cfg)
	ctx := ctxT(t)

	// Changed just now (as the clock says): not relied on yet, every look
	// is a scan.
	p.now = func() time.Time { return time.Now().Add(-time.Hour) }
	for i := range 2 {
		scans := p.scans.Load()
		if stopped, err := p.EnsureStopped(ctx); err != nil || stopped {
			t.Fatalf("EnsureStopped = %v, %v", stopped, err)
		}
		if p.scans.Load() != scans+1 {
			t.Fatalf("call %d: a pid file changed just now must not be relied on", i)
		}
	}
	// Later (the clock moves on): one scan, then none.
	p.now = func() time.Time { return time.Now().Add(time.Hour) }
	if p.Running() {
		t.Fatal("Running() with a stale pid file")
	}
	scans := p.scans.Load()
	for range 20 {
		if stopped, err := p.EnsureStopped(ctx); err != nil || stopped {
			t.Fatalf("EnsureStopped = %v, %v", stopped, err)
		}
	}
	if n := p.scans.Load() - scans; n != 0 {
		t.Errorf("%d looks through /proc with an unchanged stale pid file", n)
	}

	// Someone starts the daemon, which rewrites the pid file.
	other := newProcess(t, cfg)
	if _, err := other.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	pid := other.PID()
	other.Close()
	if stopped, err := p.EnsureStopped(ctx); err != nil || !stopped || alive(pid) {
		t.Fatalf("EnsureStopped = %v, %v (pid %d alive: %v); want it found and stopped", stopped, err, pid, alive(pid))
	}
}

// An adopted daemon killed behind the supervisor's back is noticed without
// looking through /proc (its pidfd says so), and restarted.
func TestAdoptedDaemonDeathIsNoticed(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve")
	first := newProcess(t, cfg)
	if _, err := first.Ensure(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := first.PID()
	first.Close()

	p := newProcess(t, cfg)
	if started, err := p.Ensure(ctxT(t)); err != nil || started || p.PID() != pid {
		t.Fatalf("Ensure = %v, %v, pid %d; want adoption of %d", started, err, p.PID(), pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.WaitFor(t, 30*time.Second, "the supervisor to notice and restart", func() bool {
		n := p.PID()
		return n != 0 && n != pid && alive(n)
	})
}
