package quickstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/standalone"
)

// The quickstart's files, under Options.Dir.
const (
	configName = "orchestrator.ini"
	logName    = "orchestrator.log"
	pidName    = "orchestrator.pid"
	demoName   = "demo.json"
)

// Defaults of Options.
const (
	DefaultDir           = "/var/lib/astara-quickstart"
	DefaultNetworkAPI    = "127.0.0.1:9696"
	DefaultManagementAPI = "127.0.0.1:44250"
	// HostPrefix starts the quickstart's hosts' namespaces.
	HostPrefix = "qs-"
)

// Options configure the quickstart command.
type Options struct {
	// Dir holds the orchestrator's configuration, log, pid file and state
	// directory (state/), and what the demo made; default DefaultDir.
	Dir string
	// Orchestrator is the astara-orchestrator binary; default: next to
	// the running program.
	Orchestrator string
	// Out receives the progress lines.
	Out io.Writer
}

func (o *Options) fill() error {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Orchestrator == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding astara-orchestrator: %w", err)
		}
		o.Orchestrator = filepath.Join(filepath.Dir(exe), "astara-orchestrator")
	}
	if _, err := os.Stat(o.Orchestrator); err != nil {
		return fmt.Errorf("astara-orchestrator: %w (build it next to this program: go build -o bin/ ./cmd/...)", err)
	}
	return nil
}

// saved is what Up records for Down.
type saved struct {
	Hosts    []string `json:"hosts"`
	RouterID string   `json:"router_id"`
}

// Up starts standalone mode in the background (astara-orchestrator, its
// files under Options.Dir), runs the scenario against it with progress
// lines, and leaves everything running. Run Down to remove it all.
func Up(ctx context.Context, opts Options) error {
	if err := opts.fill(); err != nil {
		return err
	}
	out := opts.Out
	if pid, ok := running(opts.Dir); ok {
		return fmt.Errorf("the quickstart is already running (astara-orchestrator pid %d): stop it first", pid)
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, demoName)); err == nil {
		return fmt.Errorf("a previous quickstart was not stopped (%s exists): stop it first", filepath.Join(opts.Dir, demoName))
	}
	for _, addr := range []string{DefaultNetworkAPI, DefaultManagementAPI} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("quickstart: %s is taken (another astara-orchestrator?): %w", addr, err)
		}
		ln.Close()
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	cfgPath := filepath.Join(opts.Dir, configName)
	ini := fmt.Sprintf("# Written by the quickstart: standalone mode (no [keystone_authtoken]).\n"+
		"[DEFAULT]\nstate_dir = %s\napi_listen = 127.0.0.1\napi_port = 44250\n\n[standalone]\nnetwork_api_listen = %s\n",
		filepath.Join(opts.Dir, "state"), DefaultNetworkAPI)
	if err := os.WriteFile(cfgPath, []byte(ini), 0o644); err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	start := time.Now()
	if err := startOrchestrator(ctx, opts, cfgPath); err != nil {
		return err
	}
	fmt.Fprintf(out, "==> standalone mode started in %.1fs: network API http://%s/v2.0, management API http://%s (log %s)\n",
		time.Since(start).Seconds(), DefaultNetworkAPI, DefaultManagementAPI, filepath.Join(opts.Dir, logName))

	client, err := NewClient("http://"+DefaultNetworkAPI, "demo")
	if err != nil {
		return err
	}
	s := &Scenario{Client: client, ManagementURL: "http://" + DefaultManagementAPI, Prefix: HostPrefix,
		Dir: filepath.Join(opts.Dir, "hosts"),
		Progress: func(format string, args ...any) {
			fmt.Fprintf(out, "==> %s (%.1fs)\n", fmt.Sprintf(format, args...), time.Since(start).Seconds())
		}}
	d, err := s.Up(ctx)
	d.Close()
	if serr := save(opts.Dir, d); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("quickstart: %w\n(the orchestrator's log: %s; remove everything with the stop command)", err,
			filepath.Join(opts.Dir, logName))
	}
	fmt.Fprintf(out, `
Astara runs in standalone mode: router %s serves vm1 (%s, floating IP %s) and vm2 (%s).
Look around:
  export OS_AUTH_TYPE=none OS_ENDPOINT=http://%s
  openstack router show router1 -c status -c tags     # tag astara:state=ACTIVE
  curl -s http://%s/resources                  # the orchestrator's view
  ip netns exec %s ping %s                     # vm2 to upstream, through SNAT
  ip netns exec %s ping %s                # upstream to vm1's floating IP
  ip netns                                            # the VMs, the upstream host and the appliance
  tail -f %s
Stop and remove everything: ./scripts/quickstart.sh stop
`, d.RouterID, d.VM1.IP, d.FloatingIP, d.VM2.IP, DefaultNetworkAPI, DefaultManagementAPI, d.VM2NS, UpstreamIP,
		d.Upstream, d.FloatingIP, filepath.Join(opts.Dir, logName))
	return nil
}

// Down stops the quickstart's orchestrator and removes everything the
// quickstart made: its hosts, the appliances, bridges and state (see
// standalone.Purge), and Options.Dir. Removing what is gone does nothing.
func Down(ctx context.Context, opts Options) error {
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	var errs []error
	if b, err := os.ReadFile(filepath.Join(opts.Dir, demoName)); err == nil {
		var sv saved
		if err := json.Unmarshal(b, &sv); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", demoName, err))
		}
		for _, ns := range sv.Hosts {
			if err := RemoveHost(ns); err != nil {
				errs = append(errs, err)
			} else {
				fmt.Fprintf(opts.Out, "==> host %s removed\n", ns)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := stopOrchestrator(ctx, opts); err != nil {
		return errors.Join(append(errs, err)...)
	}
	cfgPath := filepath.Join(opts.Dir, configName)
	if _, err := os.Stat(cfgPath); err == nil {
		cfg, err := config.Load([]string{cfgPath}, nil)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := standalone.Purge(ctx, cfg, slog.New(slog.DiscardHandler)); err != nil {
			return errors.Join(append(errs, err)...)
		}
		fmt.Fprintln(opts.Out, "==> appliances, bridges and state removed")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(opts.Dir); err != nil {
		return err
	}
	fmt.Fprintf(opts.Out, "==> %s removed: the quickstart is stopped\n", opts.Dir)
	return nil
}

// startOrchestrator starts astara-orchestrator in its own session, its
// output in the log, and waits until its network API answers.
func startOrchestrator(ctx context.Context, opts Options, cfgPath string) error {
	logPath := filepath.Join(opts.Dir, logName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(opts.Orchestrator, "--config-file", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting astara-orchestrator: %w", err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(opts.Dir, pidName), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+DefaultNetworkAPI+"/v2.0/networks", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("astara-orchestrator exited (%v):\n%s", err, tailFile(logPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("astara-orchestrator did not serve the network API on %s: %w\n%s", DefaultNetworkAPI,
				ctx.Err(), tailFile(logPath, 20))
		case <-t.C:
		}
	}
}

// stopOrchestrator stops the orchestrator of the pid file: SIGTERM, then
// SIGKILL if it has not exited within a minute.
func stopOrchestrator(ctx context.Context, opts Options) error {
	pidPath := filepath.Join(opts.Dir, pidName)
	pid, ok := running(opts.Dir)
	if ok {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(time.Minute)
		for alive(pid) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(pollInterval)
		}
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for alive(pid) && ctx.Err() == nil {
				time.Sleep(pollInterval)
			}
		}
		fmt.Fprintf(opts.Out, "==> astara-orchestrator (pid %d) stopped\n", pid)
	}
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return ctx.Err()
}

// running returns the pid of the quickstart's orchestrator, if it runs.
func running(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, pidName))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "astara-orchestrator") {
		return 0, false // the pid was reused
	}
	return pid, true
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// save records the demo's hosts for Down.
func save(dir string, d *Demo) error {
	b, err := json.MarshalIndent(saved{Hosts: d.Hosts, RouterID: d.RouterID}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, demoName), b, 0o644)
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
