package nstest

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// fatalTB records what WaitFor fails with, and stops it as FailNow would.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, 10*time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times; want 3 (until it held)", calls)
	}

	f := &fatalTB{TB: t}
	start := time.Now()
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("WaitFor did not fail the test (recovered %v)", r)
			}
		}()
		WaitFor(f, 50*time.Millisecond, "nothing", func() bool { return false })
	}()
	if want := "timed out after 50ms waiting for nothing"; f.msg != want {
		t.Errorf("WaitFor failed with %q; want %q", f.msg, want)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("WaitFor gave up after %v, before its timeout", waited)
	}
}

func TestRunAndExec(t *testing.T) {
	if got := Run(t, "echo", "hello"); got != "hello\n" {
		t.Errorf("Run = %q", got)
	}
	f := &fatalTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		Run(f, "sh", "-c", "echo oops >&2; exit 3")
	}()
	if !strings.HasPrefix(f.msg, "sh -c echo oops >&2; exit 3: exit status 3: oops") {
		t.Errorf("Run of a failing command failed with %q", f.msg)
	}

	Require(t)
	if got := Exec(t, Name(), "ip", "netns", "identify"); strings.TrimSpace(got) != Name() {
		t.Errorf("Exec in %s runs in namespace %q", Name(), got)
	}
}

// A namespace and a veth pair into it are there during the test, and gone
// after it.
func TestNamespaceAndVeth(t *testing.T) {
	Require(t)
	var ns string
	t.Run("build", func(t *testing.T) {
		ns = NewNamespace(t, "nstest")
		if !strings.HasPrefix(ns, "nstest-") {
			t.Errorf("namespace %q", ns)
		}
		if out := Exec(t, ns, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("lo is not up in %s: %s", ns, out)
		}
		Veth(t, "nst0", "nst0p", ns, "02:00:00:00:00:42")
		if mac := strings.TrimSpace(Exec(t, ns, "cat", "/sys/class/net/nst0p/address")); mac != "02:00:00:00:00:42" {
			t.Errorf("peer MAC %s", mac)
		}
		for _, out := range []string{Run(t, "ip", "-o", "link", "show", "nst0"), Exec(t, ns, "ip", "-o", "link", "show", "nst0p")} {
			if !strings.Contains(out, "state UP") {
				t.Errorf("not up: %s", out)
			}
		}
		if dad := strings.TrimSpace(Run(t, "cat", "/proc/sys/net/ipv6/conf/nst0/accept_dad")); dad != "0" {
			t.Errorf("accept_dad of nst0 = %s", dad)
		}

		Veth(t, "nst1", "nst1p", "", "")
		Run(t, "ip", "link", "show", "nst1p")
	})
	if out := Run(t, "ip", "netns", "list"); strings.Contains(out, ns) {
		t.Errorf("namespace %s left after its test:\n%s", ns, out)
	}
	for _, link := range []string{"nst0", "nst1"} {
		if err := exec.Command("ip", "link", "show", link).Run(); err == nil {
			t.Errorf("link %s left after its test", link)
		}
	}
}

func TestAliveAndPidsMatching(t *testing.T) {
	marker := fmt.Sprintf("3600.%06d", time.Now().UnixNano()%1000000) // sleep takes fractions of seconds
	cmd := exec.Command("sleep", marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !Alive(pid) {
		t.Errorf("Alive(%d) = false for a running process", pid)
	}
	if got := PidsMatching("\x00" + marker + "\x00"); !slices.Equal(got, []int{pid}) {
		t.Errorf("PidsMatching = %v; want [%d]", got, pid)
	}
	_ = cmd.Process.Kill()
	WaitFor(t, 10*time.Second, "the process to die", func() bool { return !Alive(pid) }) // a zombie until waited for
	_ = cmd.Wait()
	if Alive(pid) || Alive(0) || Alive(-1) {
		t.Error("Alive of a dead process or a bad pid")
	}
	if got := PidsMatching("\x00" + marker + "\x00"); len(got) != 0 {
		t.Errorf("PidsMatching after kill = %v", got)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 800) {
		t.Errorf("got %d bytes, want 800", len(got))
	}
}
