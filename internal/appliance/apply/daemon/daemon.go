// Package daemon supervises one long-running external daemon (dnsmasq, BIRD,
// ...) started by the appliance agent.
//
// The daemon is a child process of the agent in its own session, with no
// parent-death signal and its output going to a file: if the agent dies, the
// daemon keeps serving (the router keeps answering DHCP while the agent
// restarts), and the restarted agent adopts it through its pid file and
// /proc/<pid>/cmdline instead of starting a second one.
//
// While the agent lives, a Process watches its daemon and restarts it when it
// exits unexpectedly, with exponential backoff and jitter. Start failures are
// reported with the tail of the daemon's output and log, so that a
// configuration error reads like one.
//
// A Service builds on a Process the life cycle a driver of one daemon
// (dnsmasq, BIRD) needs to apply configurations: serialized operations, a
// new configuration checked by the daemon before it is installed, and a
// pending-change marker that outlives an agent dying half-way. Files keeps
// the daemon's configuration files, rewriting only what changed.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultMinBackoff   = 1 * time.Second
	DefaultMaxBackoff   = 60 * time.Second
	DefaultStableAfter  = 60 * time.Second
	// minBackoff is the floor of any configured backoff: a crashing daemon is
	// never restarted in a tight loop.
	minBackoff = 50 * time.Millisecond
)

// DefaultEnv is the environment daemons get when Config.Env is nil: a known
// PATH and nothing inherited from whoever started the agent.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Errors returned by Process methods.
var (
	// ErrNotRunning is returned by Reload when no daemon is running.
	ErrNotRunning = errors.New("daemon not running")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("daemon supervisor closed")
)

// Config describes one daemon. Name, Path and PIDFile are required.
type Config struct {
	// Name identifies the daemon in logs and errors ("dnsmasq").
	Name string
	// Path is the executable; a bare name is looked up in PATH.
	Path string
	// Args are the arguments, without argv[0]. Together with the executable's
	// base name they identify a running instance to adopt, so they must be
	// specific to this instance (e.g. name its config file).
	Args []string
	// Env is the daemon's environment; nil means DefaultEnv.
	Env []string
	// PIDFile records the daemon's pid, for adoption by a later agent.
	PIDFile string
	// DaemonWritesPIDFile says the daemon writes PIDFile itself once it is
	// up; the supervisor then waits for it as a readiness signal. Otherwise
	// the supervisor writes it after starting the daemon.
	DaemonWritesPIDFile bool
	// OutputFile receives the daemon's stdout and stderr (default: PIDFile
	// with ".out" instead of its extension). The previous run's output is
	// kept as OutputFile + ".1".
	OutputFile string
	// LogFiles are the daemon's own logs; what a failed start appended to
	// them is included in the error.
	LogFiles []string
	// Ready, if set, is polled after start (and after the pid file appeared)
	// until it returns nil: the daemon is not started before that.
	Ready func(ctx context.Context, pid int) error
	// ReloadFunc replaces the default reload (SIGHUP to the daemon).
	ReloadFunc func(ctx context.Context, pid int) error
	// StartTimeout bounds how long a start waits for readiness.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before restarting a daemon
	// that exited unexpectedly; the delay doubles with each consecutive
	// failure and is jittered.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a daemon must have run for its failure count
	// (and so the backoff) to reset.
	StableAfter time.Duration
	// Logger receives the supervisor's events; nil means slog.Default().
	Logger *slog.Logger
}

// Process supervises one daemon. Its methods are safe for concurrent use.
//
// Once it runs a daemon (started or adopted), a Process knows at once when
// it exits (it waits for its child, or for an adopted daemon's pidfd), so
// calls that find it running cost no system call. Once it found none, it
// remembers that along with the pid file's stamp, and only looks through
// /proc again when the pid file changed (or when it lost its daemon).
type Process struct {
	cfg  Config
	log  *slog.Logger
	live atomic.Pointer[incarnation] // the current incarnation (nil: none), for lock-free readers
	done chan struct{}

	// sem serializes operations (a lock that a context can give up
	// waiting for); it is held across start and stop.
	sem        chan struct{}
	kick       chan struct{} // wakes a restart loop waiting out its backoff
	closeOnce  sync.Once
	cur        *incarnation
	want       bool // the daemon should be running (Ensure/Restart vs Stop)
	failures   int  // consecutive unexpected exits or failed restarts
	restarting bool // a restart loop is pending

	// absent, when set, is the state of the pid file when a look through
	// /proc last found no instance: while the pid file is still in that
	// state, there is still none (see findExisting).
	absentMu sync.Mutex
	absent   *pidFileState
	scans    atomic.Int64     // looks through /proc, for tests
	now      func() time.Time // time.Now; tests move it
}

// pidFileState is the pid file's stamp, or its absence.
type pidFileState struct {
	st     stamp
	exists bool
}

// New returns a supervisor for the daemon described by cfg. It starts
// nothing: call Ensure.
func New(cfg Config) *Process {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	cfg.MinBackoff = max(cfg.MinBackoff, minBackoff)
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = DefaultStableAfter
	}
	if cfg.Env == nil {
		cfg.Env = DefaultEnv
	}
	if cfg.OutputFile == "" && cfg.PIDFile != "" {
		cfg.OutputFile = strings.TrimSuffix(cfg.PIDFile, filepath.Ext(cfg.PIDFile)) + ".out"
	}
	cfg.Args = append([]string(nil), cfg.Args...)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Process{
		cfg:  cfg,
		log:  logger.With("daemon", cfg.Name),
		done: make(chan struct{}),
		sem:  make(chan struct{}, 1),
		kick: make(chan struct{}, 1),
	}
}

// Name returns the daemon's name.
func (p *Process) Name() string { return p.cfg.Name }

// PID returns the pid of the running daemon, or 0. It does not block.
func (p *Process) PID() int {
	if inc := p.live.Load(); inc != nil {
		return inc.pid
	}
	return 0
}

// Running reports whether the supervised daemon is running. Unlike PID, it
// also finds a daemon left by a previous agent (without adopting it).
func (p *Process) Running() bool {
	if inc := p.live.Load(); inc != nil && !inc.hasExited() {
		return true
	}
	_, ok := p.findExisting()
	return ok
}

// Ensure makes sure the daemon runs: it does nothing if it is running,
// adopts an instance left by a previous agent, or starts one. started says
// whether it started a new process. If the start fails, the supervisor keeps
// retrying in the background (with backoff) until Stop or Close.
func (p *Process) Ensure(ctx context.Context) (started bool, err error) {
	if err := p.lock(ctx); err != nil {
		return false, err
	}
	defer p.unlock()
	p.want = true
	if p.aliveLocked() || p.adoptLocked() {
		return false, nil
	}
	if err := p.startLocked(ctx); err != nil {
		p.failures++
		p.scheduleRestartLocked()
		return false, err
	}
	return true, nil
}

// Reload asks the running daemon to reload (ReloadFunc, or SIGHUP). It
// adopts a daemon left by a previous agent; it returns ErrNotRunning when
// there is none.
func (p *Process) Reload(ctx context.Context) error {
	if err := p.lock(ctx); err != nil {
		return err
	}
	defer p.unlock()
	if !p.aliveLocked() && !p.adoptLocked() {
		return fmt.Errorf("reloading %s: %w", p.cfg.Name, ErrNotRunning)
	}
	inc := p.cur
	if p.cfg.ReloadFunc != nil {
		if err := p.cfg.ReloadFunc(ctx, inc.pid); err != nil {
			return fmt.Errorf("reloading %s (pid %d): %w", p.cfg.Name, inc.pid, err)
		}
	} else if err := inc.signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reloading %s (pid %d): %w", p.cfg.Name, inc.pid, err)
	}
	p.log.Info("reloaded", "pid", inc.pid)
	return nil
}

// Restart stops the daemon (if it runs, adopted or not) and starts a new one.
func (p *Process) Restart(ctx context.Context) error {
	if err := p.lock(ctx); err != nil {
		return err
	}
	defer p.unlock()
	p.want = true
	if p.aliveLocked() || p.adoptLocked() {
		if err := p.stopLocked(ctx); err != nil {
			return err
		}
	}
	if err := p.startLocked(ctx); err != nil {
		p.failures++
		p.scheduleRestartLocked()
		return err
	}
	return nil
}

// Stop stops the daemon, adopted or not: SIGTERM, then SIGKILL after the
// stop timeout, and waits until it is gone. The supervisor stops restarting
// it. Stopping a daemon that does not run is not an error.
func (p *Process) Stop(ctx context.Context) error {
	_, err := p.EnsureStopped(ctx)
	return err
}

// EnsureStopped is Stop, reporting whether there was a daemon to stop. When
// the supervisor already knows that none runs, it costs a stat of the pid
// file.
func (p *Process) EnsureStopped(ctx context.Context) (stopped bool, err error) {
	if err := p.lock(ctx); err != nil {
		return false, err
	}
	defer p.unlock()
	p.want = false
	select {
	case p.kick <- struct{}{}:
	default:
	}
	if !p.aliveLocked() && !p.adoptLocked() {
		return false, nil
	}
	return true, p.stopLocked(ctx)
}

// Close stops supervising without stopping the daemon: it keeps running, for
// the next agent to adopt. It waits for an operation in progress (pending
// restarts are abandoned at once). The Process cannot be used afterwards.
func (p *Process) Close() {
	p.closeOnce.Do(func() { close(p.done) })
	p.sem <- struct{}{}
	defer p.unlock()
	if p.cur != nil {
		p.cur.release()
	}
}

// lock takes the operation lock, unless ctx ends first or the Process is
// closed.
func (p *Process) lock(ctx context.Context) error {
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for another operation: %w", p.cfg.Name, ctx.Err())
	case <-p.done:
		return ErrClosed
	}
	if p.isClosed() { // both were ready: Close wins
		p.unlock()
		return ErrClosed
	}
	return nil
}

// lockUnlessClosed takes the lock for background work, which Close abandons.
func (p *Process) lockUnlessClosed() bool {
	select {
	case p.sem <- struct{}{}:
	case <-p.done:
		return false
	}
	if p.isClosed() {
		p.unlock()
		return false
	}
	return true
}

func (p *Process) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Process) unlock() { <-p.sem }

// aliveLocked reports whether the current incarnation runs.
func (p *Process) aliveLocked() bool {
	return p.cur != nil && !p.cur.hasExited()
}

// setCurLocked records the current incarnation (nil: none). What a look
// through /proc found no longer holds: the incarnation wrote or will write
// the pid file, or has just gone.
func (p *Process) setCurLocked(inc *incarnation) {
	p.cur = inc
	p.live.Store(inc)
	p.forgetAbsent()
}

func (p *Process) forgetAbsent() {
	p.absentMu.Lock()
	p.absent = nil
	p.absentMu.Unlock()
}

// findExisting looks for a running instance of this daemon: the pid file
// first, then /proc (in case the pid file was lost).
//
// Looking through /proc costs milliseconds on a busy machine, so a look that
// found nothing is remembered with the pid file's stamp (or its absence):
// every instance a Process starts or adopts has a pid file (the daemon's or
// the supervisor's), so one started since shows as a changed pid file, and
// until then the answer is still "none". A pid file changed too recently for
// its stamp to tell later changes is not relied on (see SettleTime). What
// this misses is a daemon started by a third party with exactly our
// arguments whose pid file was then removed: the next agent finds it.
func (p *Process) findExisting() (int, bool) {
	pf, exists, serr := statStamp(p.cfg.PIDFile)
	now := pidFileState{st: pf, exists: exists}
	if serr == nil {
		p.absentMu.Lock()
		known := p.absent != nil && *p.absent == now
		p.absentMu.Unlock()
		if known {
			return 0, false
		}
	}
	pid, found := p.scan()
	clock := time.Now
	if p.now != nil {
		clock = p.now
	}
	if !found && serr == nil && (!exists || pf.settled(clock())) {
		p.absentMu.Lock()
		p.absent = &now
		p.absentMu.Unlock()
	}
	return pid, found
}

// scan looks for an instance named by the pid file, then through /proc.
func (p *Process) scan() (int, bool) {
	p.scans.Add(1)
	path, err := p.path()
	if err != nil {
		return 0, false
	}
	base := filepath.Base(path)
	ourNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return 0, false
	}
	if pid, err := readPIDFile(p.cfg.PIDFile); err == nil && p.matches(pid, base, ourNS) {
		return pid, true
	}
	for _, pid := range listPIDs() {
		if p.matches(pid, base, ourNS) {
			return pid, true
		}
	}
	return 0, false
}

// matches reports whether pid is an instance of this daemon (executable
// base name and arguments), alive and in our network namespace (netNS).
// The command line comes first: it rules out nearly every process with one
// read.
func (p *Process) matches(pid int, base, netNS string) bool {
	if pid <= 0 || pid == os.Getpid() {
		return false
	}
	argv, err := procCmdline(pid)
	if err != nil || len(argv) != len(p.cfg.Args)+1 {
		return false
	}
	if filepath.Base(argv[0]) != base {
		return false
	}
	for i, a := range p.cfg.Args {
		if argv[i+1] != a {
			return false
		}
	}
	return procAlive(pid) && inNetNS(pid, netNS)
}

// adoptLocked adopts a running instance started by a previous agent (or by
// another Process for the same daemon), reporting whether it found one.
func (p *Process) adoptLocked() bool {
	pid, ok := p.findExisting()
	if !ok {
		return false
	}
	inc, err := adopt(pid)
	if err != nil {
		p.log.Warn("cannot adopt running daemon", "pid", pid, "err", err)
		return false
	}
	if !p.cfg.DaemonWritesPIDFile {
		if err := writePIDFile(p.cfg.PIDFile, pid); err != nil {
			p.log.Warn("writing pid file", "pid", pid, "err", err)
		}
	}
	p.setCurLocked(inc)
	go p.watch(inc)
	p.log.Info("adopted running daemon", "pid", pid)
	return true
}

func (p *Process) path() (string, error) {
	if strings.Contains(p.cfg.Path, "/") {
		return p.cfg.Path, nil
	}
	path, err := exec.LookPath(p.cfg.Path)
	if err != nil {
		return "", fmt.Errorf("finding %s: %w", p.cfg.Name, err)
	}
	return path, nil
}

// startLocked starts a new instance and waits until it is ready.
func (p *Process) startLocked(ctx context.Context) error {
	path, err := p.path()
	if err != nil {
		return err
	}
	if p.cfg.DaemonWritesPIDFile {
		if err := os.Remove(p.cfg.PIDFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("starting %s: removing stale pid file: %w", p.cfg.Name, err)
		}
	}
	// Remember where the logs end, to report only what this start wrote.
	logOffsets := make([]int64, len(p.cfg.LogFiles))
	for i, f := range p.cfg.LogFiles {
		if st, err := os.Stat(f); err == nil {
			logOffsets[i] = st.Size()
		}
	}
	_ = os.Rename(p.cfg.OutputFile, p.cfg.OutputFile+".1")
	out, err := os.OpenFile(p.cfg.OutputFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("starting %s: %w", p.cfg.Name, err)
	}
	cmd := exec.Command(path, p.cfg.Args...)
	cmd.Env = p.cfg.Env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	// A session of its own: signals to the agent's process group (Ctrl-C,
	// a service manager stopping the agent) do not reach the daemon. No
	// Pdeathsig: the daemon must outlive the agent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	out.Close()
	if err != nil {
		return fmt.Errorf("starting %s: %w", p.cfg.Name, err)
	}
	inc := newChild(cmd)
	log := p.log.With("pid", inc.pid)

	fail := func(reason error) error {
		inc.kill(syscall.SIGKILL)
		<-inc.exited
		return &StartError{
			Name:   p.cfg.Name,
			PID:    inc.pid,
			Err:    reason,
			Output: p.outputTail(logOffsets),
		}
	}
	deadline := time.Now().Add(p.cfg.StartTimeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	interval := 5 * time.Millisecond
	var notReady error
	for {
		if inc.hasExited() {
			<-inc.exited
			err := &StartError{Name: p.cfg.Name, PID: inc.pid, Err: fmt.Errorf("exited during startup: %s", inc.status()), Output: p.outputTail(logOffsets)}
			log.Error("start failed", "err", err)
			return err
		}
		notReady = p.ready(wctx, inc.pid)
		if notReady == nil {
			break
		}
		select {
		case <-inc.exited:
			continue
		case <-p.done:
			err := fail(fmt.Errorf("waiting for readiness: %w", ErrClosed))
			log.Error("start abandoned", "err", err)
			return err
		case <-wctx.Done():
			var reason error
			if ctx.Err() != nil {
				reason = fmt.Errorf("waiting for readiness: %w", ctx.Err())
			} else {
				reason = fmt.Errorf("not ready within %v: %w", p.cfg.StartTimeout, notReady)
			}
			err := fail(reason)
			log.Error("start failed", "err", err)
			return err
		case <-time.After(interval):
		}
		interval = min(interval*2, 250*time.Millisecond)
	}
	if !p.cfg.DaemonWritesPIDFile {
		if err := writePIDFile(p.cfg.PIDFile, inc.pid); err != nil {
			return fail(fmt.Errorf("writing pid file: %w", err))
		}
	}
	p.setCurLocked(inc)
	go p.watch(inc)
	log.Info("started", "path", path)
	return nil
}

// ready reports nil once the daemon is ready.
func (p *Process) ready(ctx context.Context, pid int) error {
	if p.cfg.DaemonWritesPIDFile {
		got, err := readPIDFile(p.cfg.PIDFile)
		if err != nil {
			return fmt.Errorf("pid file: %w", err)
		}
		if got != pid {
			return fmt.Errorf("pid file %s names pid %d", p.cfg.PIDFile, got)
		}
	}
	if p.cfg.Ready != nil {
		return p.cfg.Ready(ctx, pid)
	}
	return nil
}

// stopLocked terminates the current incarnation and waits until it is gone.
func (p *Process) stopLocked(ctx context.Context) error {
	inc := p.cur
	inc.intended.Store(true)
	log := p.log.With("pid", inc.pid)
	if err := inc.signal(syscall.SIGTERM); err != nil && !inc.hasExited() {
		log.Warn("sending SIGTERM", "err", err)
	}
	timer := time.NewTimer(p.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-inc.exited:
	case <-timer.C:
		log.Warn("did not exit after SIGTERM, killing it", "timeout", p.cfg.StopTimeout)
		inc.kill(syscall.SIGKILL)
	case <-ctx.Done():
		inc.kill(syscall.SIGKILL)
	}
	// SIGKILL cannot be ignored, but the process may take a moment to die
	// (or be stuck in the kernel): bound that wait too.
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StopTimeout)
	defer cancel()
	select {
	case <-inc.exited:
	case <-kctx.Done():
		return fmt.Errorf("stopping %s (pid %d): still running after SIGKILL", p.cfg.Name, inc.pid)
	}
	p.setCurLocked(nil)
	if pid, err := readPIDFile(p.cfg.PIDFile); err == nil && pid == inc.pid {
		_ = os.Remove(p.cfg.PIDFile)
	}
	log.Info("stopped", "status", inc.status())
	if ctx.Err() != nil {
		return fmt.Errorf("stopping %s (pid %d): killed: %w", p.cfg.Name, inc.pid, ctx.Err())
	}
	return nil
}

// watch waits for an incarnation to exit and schedules a restart if the exit
// was not asked for.
func (p *Process) watch(inc *incarnation) {
	select {
	case <-inc.exited:
	case <-p.done:
		return
	}
	if !p.lockUnlessClosed() {
		return
	}
	defer p.unlock()
	if p.cur != inc {
		return
	}
	p.setCurLocked(nil)
	if inc.intended.Load() || !p.want {
		return
	}
	ran := time.Since(inc.started)
	if ran >= p.cfg.StableAfter {
		p.failures = 0
	}
	p.failures++
	p.log.Warn("daemon exited unexpectedly", "pid", inc.pid, "status", inc.status(), "ran", ran.Round(time.Millisecond))
	p.scheduleRestartLocked()
}

func (p *Process) scheduleRestartLocked() {
	if p.restarting || p.isClosed() {
		return
	}
	p.restarting = true
	select { // a kick from an earlier Stop is not for this loop
	case <-p.kick:
	default:
	}
	go p.restartLoop()
}

// backoffLocked is the delay before the next restart: exponential in the
// number of consecutive failures, capped, with jitter in [d/2, d].
func (p *Process) backoffLocked() time.Duration {
	d := p.cfg.MinBackoff
	for i := 1; i < p.failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

func (p *Process) restartLoop() {
	for {
		if !p.lockUnlessClosed() {
			return
		}
		delay := p.backoffLocked()
		p.unlock()
		p.log.Info("restarting after backoff", "delay", delay.Round(time.Millisecond))
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-p.kick: // Stop: re-check at once
			timer.Stop()
		case <-p.done:
			timer.Stop()
			return
		}
		if !p.lockUnlessClosed() {
			return
		}
		if !p.want || p.aliveLocked() || p.adoptLocked() {
			p.restarting = false
			p.unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartTimeout+time.Second)
		err := p.startLocked(ctx)
		cancel()
		if err == nil {
			p.restarting = false
			p.unlock()
			return
		}
		p.failures++
		p.log.Error("restart failed", "err", err, "failures", p.failures)
		p.unlock()
	}
}

// outputTail returns the end of the daemon's output file and what this start
// appended to its logs.
func (p *Process) outputTail(logOffsets []int64) string {
	var parts []string
	if t := tailFile(p.cfg.OutputFile, 0); t != "" {
		parts = append(parts, t)
	}
	for i, f := range p.cfg.LogFiles {
		if t := tailFile(f, logOffsets[i]); t != "" {
			parts = append(parts, filepath.Base(f)+": "+t)
		}
	}
	return strings.Join(parts, "\n")
}

// StartError reports a daemon that failed to start, with the end of what it
// printed or logged (the configuration error, typically).
type StartError struct {
	Name   string
	PID    int
	Err    error
	Output string
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("starting %s (pid %d): %v", e.Name, e.PID, e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Err }

const tailBytes = 2048

// tailFile returns (at most tailBytes of) the end of path from offset on,
// trimmed, starting at a line boundary.
func tailFile(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= offset {
		return ""
	}
	start := max(offset, st.Size()-tailBytes)
	buf := make([]byte, st.Size()-start)
	n, _ := f.ReadAt(buf, start)
	s := string(buf[:n])
	if start > offset {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return strings.TrimSpace(s)
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content %q", path, b)
	}
	return pid, nil
}

func writePIDFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
