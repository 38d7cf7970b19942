package nstest

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Polling intervals of WaitFor: short at first, so that a condition that
// holds soon is seen soon, then doubling up to maxPoll.
const (
	minPoll = 5 * time.Millisecond
	maxPoll = 250 * time.Millisecond
)

// WaitFor polls cond until it holds, and fails the test if it still does
// not after timeout; what names the awaited condition in the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for interval := minPoll; ; interval = min(interval*2, maxPoll) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// Run runs a command (args[0] looked up in PATH) and returns its combined
// output. It fails the test, with that output, if the command fails.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec is Run inside the named network namespace (ip netns exec).
func Exec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// NewNamespace creates a network namespace named prefix-<random hex>, with
// loopback up, and returns its name. When the test ends, even if it
// fails, whatever runs in it is killed and it is deleted; failing to
// delete it fails the test.
func NewNamespace(t testing.TB, prefix string) string {
	t.Helper()
	name := prefix + "-" + randomSuffix()
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		KillAll(name)
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", name, err, out)
		}
	})
	Exec(t, name, "ip", "link", "set", "lo", "up")
	return name
}

// Veth creates a veth pair: local in the test's namespace, peer in the
// namespace ns ("": the test's namespace too), with the MAC address
// peerMAC unless it is "". Both ends come up with IPv6 duplicate address
// detection off, so that IPv6 addresses are usable at once. The pair is
// deleted when the test ends.
func Veth(t testing.TB, local, peer, ns, peerMAC string) {
	t.Helper()
	add := []string{"ip", "link", "add", local, "type", "veth", "peer", "name", peer}
	atPeer := func(args ...string) { t.Helper(); Run(t, args...) }
	if ns != "" {
		add = append(add, "netns", ns)
		atPeer = func(args ...string) { t.Helper(); Exec(t, ns, args...) }
	}
	Run(t, add...)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", local).Run() })
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+local+"/accept_dad", []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	atPeer("sysctl", "-qw", "net.ipv6.conf."+peer+".accept_dad=0")
	if peerMAC != "" {
		atPeer("ip", "link", "set", peer, "address", peerMAC)
	}
	Run(t, "ip", "link", "set", local, "up")
	atPeer("ip", "link", "set", peer, "up")
}

// Alive reports whether the process pid exists and is not a zombie.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may contain spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// PidsMatching lists the live processes whose command line, its arguments
// separated by NUL bytes (as /proc/<pid>/cmdline has it), contains substr:
// "--conf-file=/dir/dnsmasq.conf", or "\x00/dir/bird.conf\x00" for an
// argument on its own.
func PidsMatching(substr string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !Alive(pid) {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(b), substr) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: the stdout and
// stderr of a process a test starts, read by the test (to log it when the
// test fails) while the process still writes. The zero value is ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
