// Package dhcp runs one dnsmasq per appliance, serving static DHCPv4 and
// DHCPv6 leases (and, when upstream servers are given, DNS) on the tenant
// networks.
//
// Every file lives in the state directory given to New:
//
//	dnsmasq.conf     main configuration (interfaces, ranges): a change restarts dnsmasq
//	dnsmasq.hosts    static leases (dhcp-hostsfile): a change only sends SIGHUP
//	dnsmasq.opts     per-subnet options (dhcp-optsfile): a change only sends SIGHUP
//	dnsmasq.servers  upstream DNS servers (servers-file): a change only sends SIGHUP
//	dnsmasq.pid, dnsmasq.log, dnsmasq.leases, dnsmasq.out (stdout/stderr)
//	dnsmasq.pending  exists while files changed but dnsmasq was not told yet
//
// dnsmasq never reads /etc/dnsmasq.conf, /etc/hosts or /etc/resolv.conf.
// Apply is idempotent: an identical Spec rewrites nothing and signals
// nothing.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply/daemon"
)

// DefaultUser is the user dnsmasq drops its privileges to. It must be able
// to read the state directory (for the files re-read on SIGHUP).
const DefaultUser = "nobody"

// Action says what Apply did to dnsmasq.
type Action string

// The actions Apply reports.
const (
	ActionNone      Action = "none"      // nothing changed
	ActionStarted   Action = "started"   // dnsmasq was not running
	ActionReloaded  Action = "reloaded"  // SIGHUP: leases, options or upstreams changed
	ActionRestarted Action = "restarted" // main configuration changed
	ActionStopped   Action = "stopped"   // no network needs DHCP
)

// Result reports what Apply did.
type Result struct {
	Action Action
	// PID is dnsmasq's pid after Apply (0 when stopped).
	PID int
	// Changed lists the files Apply rewrote.
	Changed []string
}

// Server manages the dnsmasq of one appliance. Its methods are safe for
// concurrent use (they are serialized).
type Server struct {
	ps     paths
	binary string
	user   string
	log    *slog.Logger
	dcfg   daemon.Config

	svc   *daemon.Service // runs dnsmasq and serializes Apply and Stop
	files daemon.Files    // what dnsmasq's files hold, vouched for by their stat

	memo atomic.Pointer[applied] // the last valid Spec and what it renders to

	userMu sync.Mutex
	ids    *userIDs // s.user's ids, looked up once (the user is fixed)
}

// applied is a valid Spec (our own deep copy) with its rendering: an
// identical Spec is neither validated nor rendered again.
type applied struct {
	spec      specMemo
	needsDHCP bool
	r         rendered
	files     []file
}

// file is one of dnsmasq's configuration files, rendered.
type file struct {
	path    string
	content []byte
	change  daemon.Change // what a change of the file needs: a restart, or just SIGHUP
}

type userIDs struct{ uid, gid int }

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithBinary sets the dnsmasq executable (default "dnsmasq" from PATH).
func WithBinary(path string) Option { return func(s *Server) { s.binary = path } }

// WithUser sets the user dnsmasq runs as after startup (default "nobody";
// "root" keeps root privileges).
func WithUser(name string) Option { return func(s *Server) { s.user = name } }

// WithRestartBackoff bounds the delay before the supervisor restarts a
// dnsmasq that died (default daemon.DefaultMinBackoff..DefaultMaxBackoff).
func WithRestartBackoff(minDelay, maxDelay time.Duration) Option {
	return func(s *Server) { s.dcfg.MinBackoff, s.dcfg.MaxBackoff = minDelay, maxDelay }
}

// New returns the Server for the appliance whose files live in stateDir
// (created by Apply if needed). It starts nothing; a dnsmasq left running by
// a previous agent is adopted by the first Apply.
func New(stateDir string, opts ...Option) *Server {
	s := &Server{ps: pathsIn(filepath.Clean(stateDir)), binary: "dnsmasq", user: DefaultUser}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "dhcp")
	s.dcfg.Name = "dnsmasq"
	s.dcfg.Path = s.binary
	s.dcfg.Args = []string{"--conf-file=" + s.ps.conf}
	s.dcfg.PIDFile = s.ps.pid
	s.dcfg.DaemonWritesPIDFile = true // after it parsed its config and bound its sockets
	s.dcfg.OutputFile = s.ps.out
	s.dcfg.LogFiles = []string{s.ps.log}
	s.dcfg.Logger = s.log
	s.svc = daemon.NewService(s.dcfg, s.ps.dir, s.ps.pending)
	return s
}

// PID returns the pid of the supervised dnsmasq, or 0.
func (s *Server) PID() int { return s.svc.PID() }

// Dir returns the state directory.
func (s *Server) Dir() string { return s.ps.dir }

// Apply makes dnsmasq serve spec: it validates the spec (changing nothing
// if it is invalid), checks the new configuration with dnsmasq --test,
// writes the files that changed, then starts, restarts (main configuration
// changed), reloads (only leases, options or upstreams changed) or leaves
// dnsmasq alone. With no DHCP-enabled subnet, dnsmasq is stopped.
//
// An identical Apply, with dnsmasq in the expected state, costs a few
// system calls: the Spec is compared with the last one instead of being
// validated and rendered again, the files by their stat (see daemon.Files),
// and the supervisor knows whether dnsmasq runs without looking at /proc.
func (s *Server) Apply(ctx context.Context, spec Spec) (Result, error) {
	a, err := s.prepare(&spec)
	if err != nil {
		return Result{}, err
	}
	if err := checkPath(s.ps.dir); err != nil {
		return Result{}, fmt.Errorf("%w: state directory: %w", ErrInvalidSpec, err)
	}
	if !a.needsDHCP {
		out, err := s.svc.Retire(ctx)
		if err != nil {
			return Result{}, err
		}
		return Result{Action: actions[out]}, nil
	}

	var res Result
	out, err := s.svc.Apply(ctx, func(ctx context.Context, change daemon.Change) (daemon.Change, error) {
		if s.user != "root" {
			ids, err := s.lookupUser()
			if err != nil {
				return change, err
			}
			if err := accessibleAs(s.ps.dir, s.user, ids.uid, ids.gid); err != nil {
				return change, err
			}
		}
		for _, f := range a.files {
			if !s.files.Equal(f.path, f.content) {
				change = max(change, f.change)
			}
		}
		if change == daemon.NoChange {
			return change, nil
		}
		if err := s.check(ctx, a.r); err != nil {
			return change, err
		}
		if err := s.svc.MarkPending(change); err != nil {
			return change, err
		}
		for _, f := range a.files {
			changed, err := s.files.Write(f.path, f.content, 0o644)
			if err != nil {
				return change, err
			}
			if changed {
				res.Changed = append(res.Changed, f.path)
			}
		}
		if a.r.servers == "" {
			_ = os.Remove(s.ps.servers)
			s.files.Forget(s.ps.servers)
		}
		return change, nil
	})
	if err != nil {
		return Result{}, err // names dnsmasq, with its output
	}
	res.Action, res.PID = actions[out], s.svc.PID()
	if res.Action != ActionNone {
		s.log.Info("applied DHCP configuration", "action", res.Action, "pid", res.PID, "changed", res.Changed)
	}
	return res, nil
}

// actions are the Actions of the outcomes of daemon.Service operations.
var actions = map[daemon.Outcome]Action{
	daemon.Unchanged: ActionNone,
	daemon.Started:   ActionStarted,
	daemon.Reloaded:  ActionReloaded,
	daemon.Restarted: ActionRestarted,
	daemon.Stopped:   ActionStopped,
}

// prepare validates and renders spec, or returns what it rendered to last
// time if it is the same as then.
func (s *Server) prepare(spec *Spec) (*applied, error) {
	last := s.memo.Load()
	if last != nil && last.spec.matches(spec) {
		return last, nil
	}
	p, err := spec.validate()
	if err != nil {
		return nil, err
	}
	r := render(p, s.ps, s.user)
	a := &applied{spec: memoOf(spec), needsDHCP: spec.NeedsDHCP(), r: r}
	a.files = []file{{s.ps.conf, []byte(r.main), daemon.Restart}, {s.ps.hosts, []byte(r.hosts), daemon.Reload}, {s.ps.opts, []byte(r.opts), daemon.Reload}}
	if r.servers != "" {
		a.files = append(a.files, file{s.ps.servers, []byte(r.servers), daemon.Reload})
	}
	s.memo.Store(a)
	return a, nil
}

// lookupUser looks up the user dnsmasq drops to, once.
func (s *Server) lookupUser() (*userIDs, error) {
	s.userMu.Lock()
	defer s.userMu.Unlock()
	if s.ids != nil {
		return s.ids, nil
	}
	u, err := user.Lookup(s.user)
	if err != nil {
		return nil, fmt.Errorf("dnsmasq user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	s.ids = &userIDs{uid: uid, gid: gid}
	return s.ids, nil
}

// check runs "dnsmasq --test" on the whole new configuration, so that a
// configuration dnsmasq rejects never replaces one it accepted.
func (s *Server) check(ctx context.Context, r rendered) error {
	err := s.svc.Check(ctx, []byte(r.checkConfig(s.ps)), func(file string) []string {
		return []string{"--test", "--conf-file=" + file}
	})
	if rejected := (*daemon.RejectedError)(nil); errors.As(err, &rejected) {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return err
}

// Stop stops dnsmasq (one left by a previous agent too) and keeps its
// files. The next Apply starts it again.
func (s *Server) Stop(ctx context.Context) error { return s.svc.Stop(ctx) }

// Close stops supervising dnsmasq but leaves it running (for the next agent
// to adopt); use it when the agent shuts down. A start under way is
// abandoned.
func (s *Server) Close() { s.svc.Close() }

// checkPath refuses state directories that could not be written safely into
// a dnsmasq configuration line.
func checkPath(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%q is not an absolute path", dir)
	}
	for _, c := range dir {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`#,"'\;`, c) {
			return fmt.Errorf("%q: path contains %q", dir, c)
		}
	}
	return nil
}

// accessibleTo checks that a user can reach dir (search permission on every
// ancestor, read on dir): dnsmasq re-reads its hosts and options files after
// dropping root. Without this check a SIGHUP would fail silently.
func accessibleTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("dnsmasq user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return accessibleAs(dir, name, uid, gid)
}

// accessibleAs is accessibleTo for the user name whose ids are uid and gid.
func accessibleAs(dir, name string, uid, gid int) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		need := os.FileMode(0o1) // search
		if d == dir {
			need = 0o5 // read and search
		}
		if !permits(st, uid, gid, need) {
			return fmt.Errorf("state directory %s: user %q (dnsmasq drops to it) cannot access %s (mode %v); make it world-searchable or use WithUser(\"root\")", dir, name, d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}
