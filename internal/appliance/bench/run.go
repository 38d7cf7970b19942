package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/astara-go/astara/internal/appliance/lab"
)

// Setup creates a fresh namespace with the links the benchmark document
// uses (eth1 external, eth2 and eth3 internal, each a veth with its peer in
// the same namespace) and returns its name and a cleanup function.
func Setup(ctx context.Context, name string) (func(), error) {
	cleanup := func() {
		lab.KillNamespace(name)
		_ = exec.Command("ip", "netns", "delete", name).Run()
	}
	steps := [][]string{{"netns", "add", name}, {"-n", name, "link", "set", "lo", "up"}}
	for i := 1; i <= 3; i++ {
		steps = append(steps, []string{"-n", name, "link", "add", fmt.Sprintf("eth%d", i), "type", "veth", "peer", "name", fmt.Sprintf("peer%d", i)},
			[]string{"-n", name, "link", "set", fmt.Sprintf("peer%d", i), "up"})
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, "ip", s...).CombinedOutput(); err != nil {
			cleanup()
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(s, " "), err, out)
		}
	}
	return cleanup, nil
}

// InnerFlag marks the process that runs inside a benchmark namespace.
const InnerFlag = "-inner"

// RunFIP runs the floating-IP benchmark for each size: every measurement in
// its own fresh namespace, through self (this program, re-executed there
// with InnerFlag), and prints the table.
func RunFIP(ctx context.Context, self string, sizes []int) ([]FIPResult, error) {
	var rows []FIPResult
	for _, n := range sizes {
		var r FIPResult
		if err := inner(ctx, self, "apply", n, &r); err != nil {
			return nil, err
		}
		var base FIPResult
		if err := inner(ctx, self, "baseline", n, &base); err != nil {
			return nil, err
		}
		r.Baseline, r.BaselineRules = base.Baseline, base.BaselineRules
		rows = append(rows, r)
	}
	return rows, nil
}

func inner(ctx context.Context, self, mode string, n int, out *FIPResult) error {
	name := fmt.Sprintf("astara-bench-%d-%s", os.Getpid(), mode)
	cleanup, err := Setup(ctx, name)
	if err != nil {
		return err
	}
	defer cleanup()
	dir, err := os.MkdirTemp("", "astara-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", name, self, InnerFlag, mode, fmt.Sprint(n), dir)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s with %d floating IPs: %w", mode, n, err)
	}
	return json.Unmarshal(b, out)
}

// Inner is the body of the re-executed process: it measures and writes
// one JSON result to stdout.
func Inner(ctx context.Context, mode string, n int, dir string) error {
	var (
		r   FIPResult
		err error
	)
	switch mode {
	case "apply":
		r, err = RunFIPInNamespace(ctx, n, dir)
	case "baseline":
		r.FloatingIPs = n
		r.Baseline, r.BaselineRules, err = RunBaselineInNamespace(ctx, n, dir)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// Machine describes the machine the numbers come from.
func Machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d CPUs, Linux %s, %s, %s", model, runtime.NumCPU(), strings.TrimSpace(string(kernel)),
		runtime.Version(), time.Now().UTC().Format("2006-01-02"))
}
