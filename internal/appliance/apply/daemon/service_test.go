package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

// newService returns a Service of the helper daemon whose state directory
// is dir; its daemon is stopped at the end of the test.
func newService(t *testing.T, dir string) *Service {
	t.Helper()
	s := NewService(helperConfig(dir, "serve"), dir, filepath.Join(dir, "daemon.pending"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		s.Close()
	})
	return s
}

// installing returns an install function for Service.Apply that records
// the pending change it is given and returns change, marking it pending.
func installing(t *testing.T, s *Service, change Change, pending *Change) func(context.Context, Change) (Change, error) {
	return func(_ context.Context, p Change) (Change, error) {
		*pending = p
		if change == NoChange {
			return p, nil
		}
		if err := s.MarkPending(change); err != nil {
			t.Fatal(err)
		}
		return max(change, p), nil
	}
}

// Apply starts the daemon, then reloads or restarts it as the change
// needs, and leaves it alone when nothing changed; Retire stops it once.
func TestServiceApplyAndRetire(t *testing.T) {
	dir := t.TempDir()
	s := newService(t, dir)
	ctx := ctxT(t)
	var pending Change
	steps := []struct {
		change Change
		want   Outcome
	}{
		{Reload, Started}, // whatever the change, a daemon that does not run is started
		{NoChange, Unchanged},
		{Reload, Reloaded},
		{Restart, Restarted},
		{NoChange, Unchanged},
	}
	pid := 0
	for i, st := range steps {
		out, err := s.Apply(ctx, installing(t, s, st.change, &pending))
		if err != nil || out != st.want {
			t.Fatalf("step %d: Apply(%v) = %v, %v; want %v", i, st.change, out, err, st.want)
		}
		if pending != NoChange {
			t.Errorf("step %d: install was given %v pending; want none", i, pending)
		}
		if _, err := os.Stat(s.pending); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("step %d: pending marker left: %v", i, err)
		}
		switch {
		case s.PID() == 0:
			t.Fatalf("step %d: no daemon after Apply", i)
		case st.want == Restarted && s.PID() == pid:
			t.Errorf("step %d: the daemon kept pid %d across a restart", i, pid)
		case st.want != Restarted && st.want != Started && s.PID() != pid:
			t.Errorf("step %d: pid %d, want %d", i, s.PID(), pid)
		}
		pid = s.PID()
	}
	nstest.WaitFor(t, 10*time.Second, "one SIGHUP", func() bool { return len(lines(t, filepath.Join(dir, "hups"))) == 1 })
	if n := len(lines(t, filepath.Join(dir, "starts"))); n != 2 {
		t.Errorf("daemon started %d times, want 2", n)
	}

	for i, want := range []Outcome{Stopped, Unchanged} {
		if err := s.MarkPending(Reload); err != nil {
			t.Fatal(err)
		}
		out, err := s.Retire(ctx)
		if err != nil || out != want {
			t.Fatalf("Retire #%d = %v, %v; want %v", i+1, out, err, want)
		}
		if _, err := os.Stat(s.pending); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Retire #%d left the pending marker: %v", i+1, err)
		}
	}
	if alive(pid) {
		t.Errorf("pid %d alive after Retire", pid)
	}
}

// A change an earlier Apply marked pending but did not tell the daemon is
// given to the next install, and told.
func TestServicePendingChange(t *testing.T) {
	for _, tc := range []struct {
		marker string
		want   Change
	}{
		{"reload\n", Reload},
		{"restart\n", Restart},
		{"configure\n", Reload}, // any other marker: reload
		{"", Reload},
	} {
		t.Run(strings.TrimSpace(tc.marker), func(t *testing.T) {
			dir := t.TempDir()
			s := newService(t, dir)
			ctx := ctxT(t)
			var pending Change
			if _, err := s.Apply(ctx, installing(t, s, NoChange, &pending)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.pending, []byte(tc.marker), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := s.Apply(ctx, installing(t, s, NoChange, &pending))
			if err != nil {
				t.Fatal(err)
			}
			if pending != tc.want {
				t.Errorf("install was given %v pending; want %v", pending, tc.want)
			}
			if want := map[Change]Outcome{Reload: Reloaded, Restart: Restarted}[tc.want]; out != want {
				t.Errorf("Apply = %v; want %v", out, want)
			}
		})
	}
}

// Check runs the daemon's executable on the configuration; a rejection is
// a *RejectedError with what it printed, and leaves no file behind.
func TestServiceCheck(t *testing.T) {
	dir := t.TempDir()
	cfg := helperConfig(dir, "serve")
	cfg.Name, cfg.Path = "sh", "sh" // "sh -n" parses a script
	s := NewService(cfg, dir, filepath.Join(dir, "sh.pending"))
	defer s.Close()
	ctx := ctxT(t)
	args := func(file string) []string { return []string{"-n", file} }
	if err := s.Check(ctx, []byte("echo ok\n"), args); err != nil {
		t.Errorf("Check of a valid script: %v", err)
	}
	err := s.Check(ctx, []byte("if then fi (\n"), args)
	var rejected *RejectedError
	if !errors.As(err, &rejected) || rejected.Name != "sh" || rejected.Output == "" ||
		!strings.HasPrefix(err.Error(), "sh rejects the configuration: ") {
		t.Errorf("Check of an invalid script = %v; want a *RejectedError with the output", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("Check left %v (%v) in the state directory", entries, err)
	}
}
