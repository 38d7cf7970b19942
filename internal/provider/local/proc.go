package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStart returns when process pid started (clock ticks after boot,
// field 22 of /proc/<pid>/stat), and whether it lives (exists and is not
// a zombie).
func procStart(pid int) (start uint64, alive bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// sameProcess reports whether pid still is the process that started at
// start (and lives): a pid reused by another process is not.
func sameProcess(pid int, start uint64) bool {
	s, alive := procStart(pid)
	return alive && s == start
}

// inNamespace reports whether process pid is in the network namespace
// whose nsfs inode is ns.
func inNamespace(pid int, ns nsID) bool {
	id, err := statNS("/proc/" + strconv.Itoa(pid) + "/ns/net")
	return err == nil && id == ns
}

// namespacePids lists the processes in the network namespace ns, as
// `ip netns pids` does: the processes whose /proc/<pid>/ns/net is ns.
func namespacePids(ns nsID) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if inNamespace(pid, ns) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// listening reports whether a TCP socket listens on port in the network
// namespace of process pid (/proc/<pid>/net/tcp and tcp6 show that
// namespace's sockets).
func listening(pid int, port uint16) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"tcp6", "tcp"} {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/" + file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st ...; 0A is TCP_LISTEN.
			fields := strings.Fields(sc.Text())
			if len(fields) > 3 && fields[3] == "0A" && strings.HasSuffix(fields[1], want) {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// signal sends sig to pid; a process already gone is not an error.
func signal(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling process %d: %w", pid, err)
	}
	return nil
}

// poll calls done until it returns true, waiting a little longer each time
// (from 5ms up to 200ms); it gives up with ctx's error.
func poll(ctx context.Context, done func() (bool, error)) error {
	for interval := 5 * time.Millisecond; ; interval = min(2*interval, 200*time.Millisecond) {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
