package nstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// ForwardFromHost makes the TCP service at addr (host:port) of the
// namespace the tests were started from (the host's, say a Neutron server
// on 127.0.0.1:9696) reachable at the same address inside the test's
// namespace: it listens on addr here and relays each connection to a
// connection it dials from the host's namespace. It stops, closing every
// connection, when the test ends.
func ForwardFromHost(t testing.TB, addr string) {
	t.Helper()
	Require(t)
	host := os.Getenv(envHost)
	if host == "" {
		t.Fatalf("nstest: %s is not set: the tests were not started by Main", envHost)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("nstest: forwarding %s from the host: %v", addr, err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false
		}
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				if !track(in, true) {
					return
				}
				defer track(in, false)
				out, err := DialFromHost(context.Background(), host, addr)
				if err != nil {
					t.Logf("nstest: forwarding %s: %v", addr, err)
					return
				}
				defer out.Close()
				if !track(out, true) {
					return
				}
				defer track(out, false)
				relay(in, out)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
}

// relay copies a to b and b to a until both directions end.
func relay(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if c, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = c.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// DialFromHost dials addr over TCP from the network namespace at path
// nsPath (a /proc/<pid>/ns/net file): the socket stays in that namespace.
func DialFromHost(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	// A goroutine of its own: if its thread cannot return to this
	// namespace, it stays locked and the runtime discards it on return.
	go func() {
		runtime.LockOSThread()
		c, back, err := dialIn(ctx, nsPath, addr)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// dialIn dials from the namespace at nsPath on the current (locked)
// thread; back reports whether the thread returned to its namespace.
func dialIn(ctx context.Context, nsPath, addr string) (c net.Conn, back bool, err error) {
	orig, err := netns.Get()
	if err != nil {
		return nil, true, err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, true, fmt.Errorf("namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, true, fmt.Errorf("entering namespace %s: %w", nsPath, err)
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	c, err = d.DialContext(ctx, "tcp", addr)
	if serr := netns.Set(orig); serr != nil {
		if c != nil {
			c.Close()
		}
		return nil, false, errors.Join(err, fmt.Errorf("leaving namespace %s: %w", nsPath, serr))
	}
	return c, true, err
}
