// Package nstest runs a package's tests inside a fresh network namespace, so
// that tests which change interfaces, routes, nftables or start daemons touch
// nothing outside it and leave nothing behind.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { nstest.Main(m) }
//
// and call nstest.Require(t) at the top of each test that needs the namespace.
//
// The other helpers build what such tests need around them and take it
// down when the test ends, even when it fails: more namespaces (a VM, an
// upstream router: NewNamespace), veth pairs into them (Veth), commands run
// here or there (Run, Exec). WaitFor polls for a condition with a
// deadline, Alive and PidsMatching look at the processes a test started,
// and SyncBuffer collects their output.
//
// To open sockets inside another namespace, use lab.InNetns.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const envInside = "ASTARA_NSTEST_NETNS"

// envHost is the path of the network namespace Main was started in.
const envHost = "ASTARA_NSTEST_HOST_NETNS"

// Main runs the tests. As root it re-executes the test binary inside a new
// network namespace (with loopback up), then kills whatever the tests left
// running in it and deletes it. Without root it runs the tests in place, and
// Require skips the tests that need a namespace.
func Main(m *testing.M) {
	if os.Getenv(envInside) != "" || os.Geteuid() != 0 {
		if os.Getenv(envInside) != "" {
			if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "nstest: bringing lo up: %v: %s\n", err, out)
				os.Exit(1)
			}
		}
		os.Exit(m.Run())
	}
	os.Exit(reexec())
}

// Name returns the name of the namespace the tests run in ("" outside one).
func Name() string { return os.Getenv(envInside) }

// Require skips the test unless it runs inside the namespace Main created.
// CI runs as root, so there it never skips.
func Require(t testing.TB) {
	t.Helper()
	if Name() == "" {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
}

func reexec() int {
	name := "astara-t-" + randomSuffix()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "nstest: ip netns add %s: %v: %s\n", name, err, out)
		return 1
	}
	defer Delete(name)
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nstest: %v\n", err)
		return 1
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", name, exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"="+name, envHost+"="+fmt.Sprintf("/proc/%d/ns/net", os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "nstest: %v\n", err)
		return 1
	}
	return 0
}

// Delete kills every process left in the named namespace and deletes it.
func Delete(name string) {
	KillAll(name)
	_ = exec.Command("ip", "netns", "delete", name).Run()
}

// KillAll kills every process running in the named namespace and waits
// (up to ten seconds) for them to be gone.
func KillAll(name string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := Pids(name)
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pids lists the processes running in the named namespace.
func Pids(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
