package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/appliance/lab"
	"golang.org/x/sys/unix"
)

// listen starts an echo server in namespace ns and returns its port.
func listen(t *testing.T, ns string, addr string) int {
	t.Helper()
	ln, err := lab.Echo(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// seenAs returns the source address an echo server at addr sees for a
// connection from ns.
func seenAs(t *testing.T, ns, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := lab.SeenAs(ctx, ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// unreachable asserts that a TCP connection from ns to addr fails.
func unreachable(t *testing.T, ns, addr string) {
	t.Helper()
	if got, err := lab.Dial(ns, addr, 2*time.Second); err == nil {
		t.Errorf("from %s, %s is reachable (server saw %s)", ns, addr, got)
	}
}

// kernelEvents counts the notifications of the kernel's network state in a
// namespace: links, addresses, routes (rtnetlink) and the nftables ruleset.
type kernelEvents struct {
	fds []int
}

func watchKernel(t *testing.T, ns string) *kernelEvents {
	t.Helper()
	k := &kernelEvents{}
	err := lab.InNetns(ns, func() error {
		rt, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
		if err := unix.Bind(rt, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
			return err
		}
		nf, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		if err := unix.Bind(nf, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(nf, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.NFNLGRP_NFTABLES); err != nil {
			return err
		}
		k.fds = []int{rt, nf}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, fd := range k.fds {
			unix.Close(fd)
		}
	})
	return k
}

// count drains the sockets and returns the notifications read, described.
func (k *kernelEvents) count() []string {
	var out []string
	buf := make([]byte, 1<<16)
	for _, fd := range k.fds {
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || err != nil {
				break
			}
			msgs, _ := syscall.ParseNetlinkMessage(buf[:n])
			for _, m := range msgs {
				out = append(out, fmt.Sprintf("type %d", m.Header.Type))
			}
		}
	}
	return out
}

// daemonPIDs returns the pids of the named programs running in namespace ns.
func daemonPIDs(t *testing.T, ns string, names ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	pids, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", ns, err)
	}
	for _, f := range strings.Fields(string(pids)) {
		pid, _ := strconv.Atoi(f)
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		for _, n := range names {
			if strings.TrimSpace(string(comm)) == n {
				out[n] = pid
			}
		}
	}
	return out
}
