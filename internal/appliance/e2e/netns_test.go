package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on a thread switched into the named namespace. Sockets
// fn creates stay in that namespace, whichever thread uses them later.
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer netns.Set(orig)
	return fn()
}

// listen starts a TCP server in namespace ns that answers each connection
// with the peer address it sees, and returns its port.
func listen(t *testing.T, ns string, addr string) int {
	t.Helper()
	var ln net.Listener
	if err := inNetns(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// dial connects from namespace ns to addr and returns what the server says
// (the source address it saw), or an error.
func dial(ns, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// seenAs dials until the connection succeeds (the route may still be
// settling) and returns the source address the server saw.
func seenAs(t *testing.T, ns, addr string) string {
	t.Helper()
	var (
		got  string
		last error
	)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got, last = dial(ns, addr, 3*time.Second); last == nil {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("from %s to %s: %v", ns, addr, last)
	return ""
}

// unreachable asserts that a TCP connection from ns to addr fails.
func unreachable(t *testing.T, ns, addr string) {
	t.Helper()
	if got, err := dial(ns, addr, 2*time.Second); err == nil {
		t.Errorf("from %s, %s is reachable (server saw %s)", ns, addr, got)
	}
}

// httpClientIn returns an HTTP client whose connections start in namespace ns.
func httpClientIn(ns string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := inNetns(ns, func() (err error) {
					c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
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
	err := inNetns(ns, func() error {
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
