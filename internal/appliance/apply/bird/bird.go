// Package bird runs one BIRD 2 per appliance: IPv6 router advertisements on
// the tenant networks and BGP with the upstream routers, announcing the
// tenant IPv6 prefixes (the BIRD 2 equivalent of the original's bird6).
//
// Every file lives in the state directory given to New:
//
//	bird.conf     configuration (checked with "bird -p" before it is installed)
//	bird.ctl      control socket (birdc -s)
//	bird.pid, bird.log, bird.out (stdout/stderr)
//	bird.pending  exists while the configuration changed but BIRD was not told yet
//
// BIRD runs as "bird -c bird.conf -s bird.ctl -P bird.pid -f" under a
// daemon.Process. A changed configuration is loaded with "birdc configure"
// (no restart: unchanged BGP sessions stay up); an identical one does nothing.
package bird

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply/daemon"
)

// Action says what Apply did to BIRD.
type Action string

// The actions Apply reports.
const (
	ActionNone         Action = "none"         // nothing changed
	ActionStarted      Action = "started"      // BIRD was not running
	ActionReconfigured Action = "reconfigured" // birdc configure with the new configuration
	ActionStopped      Action = "stopped"      // nothing to do: no IPv6 tenant subnet, no BGP
)

// Result reports what Apply did.
type Result struct {
	Action Action
	// PID is BIRD's pid after Apply (0 when stopped).
	PID int
	// Changed says whether the configuration file was rewritten.
	Changed bool
}

// File names in the state directory.
const (
	confName    = "bird.conf"
	sockName    = "bird.ctl"
	pidName     = "bird.pid"
	logName     = "bird.log"
	outName     = "bird.out"
	pendingName = "bird.pending"
)

// maxSocketPath is the room in sockaddr_un.sun_path.
const maxSocketPath = 107

// Daemon manages the BIRD of one appliance. Its methods are safe for
// concurrent use (they are serialized).
type Daemon struct {
	dir                           string
	conf, sock, pid, log, pending string
	birdPath, birdcPath           string
	logger                        *slog.Logger
	dcfg                          daemon.Config

	svc   *daemon.Service // runs BIRD and serializes Apply and Stop
	files daemon.Files    // what bird.conf holds, vouched for by its stat

	memo atomic.Pointer[applied] // the last valid Spec and what it renders to
}

// applied is a valid Spec (our own deep copy) with its rendering: an
// identical Spec is neither validated nor rendered again.
type applied struct {
	spec   Spec
	needed bool
	conf   []byte
}

// Option configures a Daemon.
type Option func(*Daemon)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(d *Daemon) { d.logger = l } }

// WithBinaries sets the bird and birdc executables (default from PATH).
func WithBinaries(bird, birdc string) Option {
	return func(d *Daemon) { d.birdPath, d.birdcPath = bird, birdc }
}

// WithRestartBackoff bounds the delay before the supervisor restarts a BIRD
// that died (default daemon.DefaultMinBackoff..DefaultMaxBackoff).
func WithRestartBackoff(minDelay, maxDelay time.Duration) Option {
	return func(d *Daemon) { d.dcfg.MinBackoff, d.dcfg.MaxBackoff = minDelay, maxDelay }
}

// New returns the Daemon for the appliance whose files live in stateDir
// (created by Apply if needed). It starts nothing; a BIRD left running by a
// previous agent is adopted by the first Apply.
func New(stateDir string, opts ...Option) *Daemon {
	dir := filepath.Clean(stateDir)
	j := func(name string) string { return filepath.Join(dir, name) }
	d := &Daemon{
		dir: dir, conf: j(confName), sock: j(sockName), pid: j(pidName), log: j(logName), pending: j(pendingName),
		birdPath: "bird", birdcPath: "birdc",
	}
	for _, o := range opts {
		o(d)
	}
	if d.logger == nil {
		d.logger = slog.Default()
	}
	d.logger = d.logger.With("component", "bird")
	d.dcfg.Name = "bird"
	d.dcfg.Path = d.birdPath
	d.dcfg.Args = []string{"-c", d.conf, "-s", d.sock, "-P", d.pid, "-f"}
	d.dcfg.PIDFile = d.pid
	d.dcfg.DaemonWritesPIDFile = true // once the config is read and the socket listens
	d.dcfg.OutputFile = j(outName)
	d.dcfg.LogFiles = []string{d.log}
	d.dcfg.Ready = func(ctx context.Context, _ int) error {
		_, err := d.birdc(ctx, "show", "status")
		return err
	}
	d.dcfg.ReloadFunc = func(ctx context.Context, _ int) error { return d.configure(ctx) }
	d.dcfg.Logger = d.logger
	d.svc = daemon.NewService(d.dcfg, d.dir, d.pending)
	return d
}

// PID returns the pid of the supervised BIRD, or 0.
func (d *Daemon) PID() int { return d.svc.PID() }

// Socket returns the path of BIRD's control socket.
func (d *Daemon) Socket() string { return d.sock }

// Show runs a read-only birdc command ("show protocols", ...) and returns
// its output, for status pages and debugging.
func (d *Daemon) Show(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 || args[0] != "show" {
		return "", fmt.Errorf("birdc: only show commands are allowed, not %q", strings.Join(args, " "))
	}
	return d.birdc(ctx, args...)
}

// Apply makes BIRD do what spec says: it validates the spec (changing
// nothing if it is invalid), checks a changed configuration with "bird -p"
// and only then installs it, then starts BIRD or has it reload ("birdc
// configure"), or does nothing when the configuration is unchanged. With no
// IPv6 tenant subnet and no BGP neighbor, BIRD is stopped.
//
// An identical Apply, with BIRD in the expected state, costs a few system
// calls: the Spec is compared with the last one instead of being validated
// and rendered again, bird.conf by its stat (see daemon.Files), and the
// supervisor knows whether BIRD runs without looking at /proc.
func (d *Daemon) Apply(ctx context.Context, spec Spec) (Result, error) {
	a, err := d.prepare(&spec)
	if err != nil {
		return Result{}, err
	}
	if err := d.checkPaths(); err != nil {
		return Result{}, fmt.Errorf("%w: state directory: %w", ErrInvalidSpec, err)
	}
	if !a.needed {
		out, err := d.svc.Retire(ctx)
		if err != nil {
			return Result{}, err
		}
		return Result{Action: actions[out]}, nil
	}
	return d.installConf(ctx, a.conf)
}

// actions are the Actions of the outcomes of daemon.Service operations
// (BIRD is never restarted: a new configuration is loaded by birdc configure).
var actions = map[daemon.Outcome]Action{
	daemon.Unchanged: ActionNone,
	daemon.Started:   ActionStarted,
	daemon.Reloaded:  ActionReconfigured,
	daemon.Stopped:   ActionStopped,
}

// prepare validates and renders spec, or returns what it rendered to last
// time if it is the same as then.
func (d *Daemon) prepare(spec *Spec) (*applied, error) {
	last := d.memo.Load()
	if last != nil && specEqual(spec, &last.spec) {
		return last, nil
	}
	p, err := spec.validate()
	if err != nil {
		return nil, err
	}
	a := &applied{spec: cloneSpec(spec), needed: p.needed()}
	if a.needed {
		a.conf = []byte(render(p, d.log))
	}
	d.memo.Store(a)
	return a, nil
}

// install makes BIRD run with conf.
func (d *Daemon) install(ctx context.Context, conf string) (Result, error) {
	return d.installConf(ctx, []byte(conf))
}

// installConf is install, for conf as it is kept.
func (d *Daemon) installConf(ctx context.Context, conf []byte) (Result, error) {
	var res Result
	out, err := d.svc.Apply(ctx, func(ctx context.Context, pending daemon.Change) (daemon.Change, error) {
		change := daemon.NoChange
		if pending != daemon.NoChange {
			change = daemon.Reload
		}
		if d.files.Equal(d.conf, conf) {
			return change, nil
		}
		if err := d.svc.Check(ctx, conf, func(file string) []string { return []string{"-p", "-c", file} }); err != nil {
			return change, err
		}
		if err := d.svc.MarkPending(daemon.Reload); err != nil {
			return change, err
		}
		if _, err := d.files.Write(d.conf, conf, 0o644); err != nil {
			return change, err
		}
		res.Changed = true
		return daemon.Reload, nil
	})
	if err != nil {
		return Result{}, err // names bird, with its output
	}
	res.Action, res.PID = actions[out], d.svc.PID()
	if res.Action != ActionNone {
		d.logger.Info("applied BIRD configuration", "action", res.Action, "pid", res.PID)
	}
	return res, nil
}

// configure has the running BIRD load its configuration file again.
func (d *Daemon) configure(ctx context.Context) error {
	out, err := d.birdc(ctx, "configure")
	if err != nil {
		return err
	}
	// "Reconfigured", "Reconfiguration in progress" (protocols restarting)
	// or "... already in progress, queueing new config" all mean accepted.
	for _, ok := range []string{"Reconfigured", "Reconfiguration in progress", "queueing"} {
		if strings.Contains(out, ok) {
			return nil
		}
	}
	return fmt.Errorf("birdc configure: unexpected reply: %s", strings.TrimSpace(out))
}

// birdc runs one birdc command on the control socket.
func (d *Daemon) birdc(ctx context.Context, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, d.birdcPath, append([]string{"-s", d.sock}, args...)...)
	cmd.Env = daemon.DefaultEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Stop stops BIRD (one left by a previous agent too) and keeps its files.
// BIRD withdraws its routes from the kernel and closes its BGP sessions.
func (d *Daemon) Stop(ctx context.Context) error { return d.svc.Stop(ctx) }

// Close stops supervising BIRD but leaves it running (for the next agent to
// adopt); use it when the agent shuts down. A start under way is abandoned.
func (d *Daemon) Close() { d.svc.Close() }

// checkPaths refuses state directories that cannot be written into a BIRD
// string or a control socket address.
func (d *Daemon) checkPaths() error {
	if !filepath.IsAbs(d.dir) {
		return fmt.Errorf("%q is not an absolute path", d.dir)
	}
	for _, c := range d.dir {
		if c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("%q: path contains %q", d.dir, c)
		}
	}
	if len(d.sock) > maxSocketPath {
		return fmt.Errorf("control socket path %s is longer than %d bytes", d.sock, maxSocketPath)
	}
	return nil
}
