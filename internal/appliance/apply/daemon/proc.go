package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// incarnation is one run of the daemon: a child we started, or a process we
// adopted. exited is closed when it is gone.
type incarnation struct {
	pid      int
	started  time.Time
	exited   chan struct{}
	intended atomic.Bool // the supervisor asked it to exit

	cmd *exec.Cmd // child: we started it, cmd.Wait reaps it

	pidfd     *os.File // adopted: a pidfd, to watch and signal without pid reuse races
	closeOnce sync.Once

	mu     sync.Mutex
	waited string // how it exited, once known
}

func newChild(cmd *exec.Cmd) *incarnation {
	inc := &incarnation{pid: cmd.Process.Pid, started: time.Now(), exited: make(chan struct{}), cmd: cmd}
	go func() {
		err := cmd.Wait()
		inc.mu.Lock()
		switch {
		case err == nil:
			inc.waited = "exit status 0"
		default:
			inc.waited = err.Error()
		}
		inc.mu.Unlock()
		close(inc.exited)
	}()
	return inc
}

// adopt watches a running process that is not (necessarily) our child.
func adopt(pid int) (*incarnation, error) {
	inc := &incarnation{pid: pid, started: time.Now(), exited: make(chan struct{})}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("pid %d: %w", pid, err)
		}
		// No pidfd (old kernel, seccomp): poll /proc instead.
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for range t.C {
				if !procAlive(pid) {
					close(inc.exited)
					return
				}
			}
		}()
		return inc, nil
	}
	// Non-blocking, so the runtime poller waits for it: a pidfd becomes
	// readable when the process exits, and Close wakes the waiter.
	inc.pidfd = os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	rc, err := inc.pidfd.SyscallConn()
	if err != nil {
		inc.pidfd.Close()
		return nil, err
	}
	go func() {
		first := true
		err := rc.Read(func(uintptr) bool {
			if first {
				first = false
				return !procAlive(pid)
			}
			return true
		})
		if err == nil {
			close(inc.exited)
		}
	}()
	return inc, nil
}

func (inc *incarnation) hasExited() bool {
	select {
	case <-inc.exited:
		return true
	default:
		return false
	}
}

func (inc *incarnation) status() string {
	inc.mu.Lock()
	defer inc.mu.Unlock()
	if inc.waited != "" {
		return inc.waited
	}
	if inc.hasExited() {
		return "exited (status unknown: not our child)"
	}
	return "running"
}

func (inc *incarnation) signal(sig syscall.Signal) error {
	if inc.hasExited() {
		return os.ErrProcessDone
	}
	if inc.cmd != nil {
		return inc.cmd.Process.Signal(sig)
	}
	if inc.pidfd != nil {
		return unix.PidfdSendSignal(int(inc.pidfd.Fd()), sig, nil, 0)
	}
	return syscall.Kill(inc.pid, sig)
}

func (inc *incarnation) kill(sig syscall.Signal) { _ = inc.signal(sig) }

// release stops watching an adopted process (the process keeps running).
func (inc *incarnation) release() {
	inc.closeOnce.Do(func() {
		if inc.pidfd != nil {
			inc.pidfd.Close()
		}
	})
}

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

func procCmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty cmdline")
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// inNetNS reports whether pid runs in the network namespace ns (as
// readlink of /proc/self/ns/net gives it): an instance serving another
// namespace is never ours, whatever its arguments.
func inNetNS(pid int, ns string) bool {
	theirs, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	return err == nil && theirs == ns
}

func listPIDs() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
