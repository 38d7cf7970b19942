package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Change says what a new configuration needs the running daemon to do. The
// values are ordered: of two changes, the larger one covers the other.
type Change int

// The changes a configuration can need.
const (
	// NoChange: nothing the daemon reads changed.
	NoChange Change = iota
	// Reload: the daemon must load its configuration again (Config.ReloadFunc,
	// or SIGHUP).
	Reload
	// Restart: what changed is read by the daemon only when it starts.
	Restart
)

// String returns "none", "reload" or "restart": what the pending marker
// holds.
func (c Change) String() string {
	switch c {
	case NoChange:
		return "none"
	case Reload:
		return "reload"
	case Restart:
		return "restart"
	}
	return fmt.Sprintf("Change(%d)", int(c))
}

// Outcome says what Service.Apply or Service.Retire did to the daemon.
type Outcome int

// The outcomes of Service.Apply and Service.Retire.
const (
	Unchanged Outcome = iota // the daemon was left alone
	Started                  // it was not running and was started
	Reloaded                 // it was told to reload
	Restarted                // it was restarted
	Stopped                  // it was stopped: nothing needs it
)

// checkTimeout bounds a run of the daemon's configuration parser.
const checkTimeout = 30 * time.Second

// Service is the life cycle that a driver of one daemon (dnsmasq, BIRD)
// builds on a Process: operations are serialized (a context can give up
// waiting), a new configuration is checked by the daemon's own parser before
// it replaces one the daemon accepted, and a pending-change marker in the
// state directory survives an agent that dies between writing the daemon's
// files and telling the daemon, so that the next agent tells it. The driver
// keeps what is specific to its daemon: rendering the files, comparing them
// and deciding whether a change needs a reload or a restart.
//
// Its methods are safe for concurrent use.
type Service struct {
	proc    *Process
	name    string
	path    string
	env     []string
	dir     string
	pending string
	sem     chan struct{} // serializes Apply, Retire and Stop
}

// NewService returns the Service for the daemon described by cfg, whose
// files live in the state directory dir (created by Apply if needed);
// pending is the path of its pending-change marker. It starts nothing: a
// daemon left running by a previous agent is adopted by the first Apply.
func NewService(cfg Config, dir, pending string) *Service {
	proc := New(cfg)
	return &Service{
		proc:    proc,
		name:    proc.cfg.Name,
		path:    proc.cfg.Path,
		env:     proc.cfg.Env,
		dir:     dir,
		pending: pending,
		sem:     make(chan struct{}, 1),
	}
}

// PID returns the pid of the supervised daemon, or 0.
func (s *Service) PID() int { return s.proc.PID() }

// Apply makes the daemon run with a new configuration. With the state
// directory created, install brings the daemon's files up to date and
// returns what they need the daemon to do, given pending, what an earlier
// Apply wrote but did not get to tell the daemon. An install that is going
// to write files first checks them (Check), then calls MarkPending.
//
// Apply then starts the daemon if it does not run (Started, whatever the
// change), or restarts it (Restarted), or has it reload (Reloaded), or
// leaves it alone (Unchanged), and drops the pending marker. A failed start
// is retried in the background (see Process.Ensure).
func (s *Service) Apply(ctx context.Context, install func(ctx context.Context, pending Change) (Change, error)) (Outcome, error) {
	if err := s.lock(ctx); err != nil {
		return Unchanged, err
	}
	defer s.unlock()
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return Unchanged, fmt.Errorf("creating state directory: %w", err)
	}
	change, err := install(ctx, s.pendingChange())
	if err != nil {
		return Unchanged, err
	}
	var out Outcome
	started, err := s.proc.Ensure(ctx)
	switch {
	case err != nil:
		return Unchanged, err // names the daemon, with its output
	case started:
		out = Started
	case change == Restart:
		if err := s.proc.Restart(ctx); err != nil {
			return Unchanged, fmt.Errorf("restarting %s: %w", s.name, err)
		}
		out = Restarted
	case change == Reload:
		if err := s.proc.Reload(ctx); err != nil {
			return Unchanged, err
		}
		out = Reloaded
	default:
		out = Unchanged
	}
	if err := os.Remove(s.pending); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Unchanged, err
	}
	return out, nil
}

// Retire stops the daemon (one left by a previous agent too), which the
// configuration no longer needs, and drops a pending change; it keeps the
// daemon's files. It returns Stopped, or Unchanged when no daemon ran.
func (s *Service) Retire(ctx context.Context) (Outcome, error) {
	if err := s.lock(ctx); err != nil {
		return Unchanged, err
	}
	defer s.unlock()
	was, err := s.proc.EnsureStopped(ctx)
	if err != nil {
		return Unchanged, fmt.Errorf("stopping %s: %w", s.name, err)
	}
	_ = os.Remove(s.pending)
	if was {
		return Stopped, nil
	}
	return Unchanged, nil
}

// MarkPending records, before an install writes the daemon's files, that
// they need change: if the agent dies before Apply told the daemon, the
// next Apply gets it as pending.
func (s *Service) MarkPending(change Change) error {
	_, err := WriteFile(s.pending, []byte(change.String()+"\n"), 0o644)
	return err
}

// pendingChange reads the pending marker: Restart if it says so, Reload for
// any other marker, NoChange without one.
func (s *Service) pendingChange() Change {
	b, err := os.ReadFile(s.pending)
	switch {
	case err != nil:
		return NoChange
	case strings.TrimSpace(string(b)) == Restart.String():
		return Restart
	default:
		return Reload
	}
}

// Check writes conf to a temporary file in the state directory and runs the
// daemon's executable on it, with the arguments args gives for the file
// (e.g. "--test", "--conf-file="+file), so that a configuration the daemon
// rejects never replaces one it accepted. A rejection is a *RejectedError.
func (s *Service) Check(ctx context.Context, conf []byte, args func(file string) []string) error {
	f, err := os.CreateTemp(s.dir, "."+s.name+"-check.*.conf")
	if err != nil {
		return fmt.Errorf("checking %s configuration: %w", s.name, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checking %s configuration: %w", s.name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, s.path, args(f.Name())...)
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return &RejectedError{Name: s.name, Output: strings.TrimSpace(string(out)), Err: err}
	}
	return nil
}

// RejectedError reports a configuration that the daemon's own parser
// rejects (see Service.Check), with what the parser printed.
type RejectedError struct {
	Name   string // the daemon
	Output string // what it printed, trimmed
	Err    error  // how it exited
}

// Error says which daemon rejected the configuration, with its output.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s rejects the configuration: %s: %v", e.Name, e.Output, e.Err)
}

// Unwrap returns how the parser exited.
func (e *RejectedError) Unwrap() error { return e.Err }

// Stop stops the daemon (one left by a previous agent too) and keeps its
// files. The next Apply starts it again.
func (s *Service) Stop(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if err := s.proc.Stop(ctx); err != nil {
		return fmt.Errorf("stopping %s: %w", s.name, err)
	}
	return nil
}

// Close stops supervising the daemon but leaves it running, for the next
// agent to adopt; use it when the agent shuts down. A start under way is
// abandoned.
func (s *Service) Close() { s.proc.Close() }

func (s *Service) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another operation: %w", ctx.Err())
	}
}

func (s *Service) unlock() { <-s.sem }
