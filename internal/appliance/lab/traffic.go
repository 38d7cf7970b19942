package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// InNetns runs fn on a thread switched into the named namespace. Sockets fn
// creates stay in that namespace, whichever thread uses them later. If the
// thread cannot be switched back, it stays locked to the calling goroutine,
// which must then end soon (a test failing, a goroutine started for the
// purpose): the runtime discards the thread then, rather than let other
// goroutines run in the wrong namespace.
func InNetns(name string, fn func() error) (err error) {
	runtime.LockOSThread()
	unlock := true
	defer func() {
		if unlock {
			runtime.UnlockOSThread()
		}
	}()
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
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			unlock = false
			err = errors.Join(err, fmt.Errorf("leaving namespace %s: %w", name, serr))
		}
	}()
	return fn()
}

// Echo listens on addr in namespace ns and answers each TCP connection with
// the peer address it sees: that shows what NAT did on the way. Close the
// listener to stop it.
func Echo(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	if err := InNetns(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		return nil, err
	}
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
	return ln, nil
}

// Dial connects from namespace ns to an Echo listener at addr and returns
// the source address the listener saw.
func Dial(ns, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	err := InNetns(ns, func() (err error) {
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

// SeenAs dials until a connection succeeds or ctx ends (routes and neighbour
// entries may still be settling) and returns the source address seen.
func SeenAs(ctx context.Context, ns, addr string) (string, error) {
	for {
		got, err := Dial(ns, addr, 3*time.Second)
		if err == nil {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("from %s to %s: %w", ns, addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// HTTPClient returns an HTTP client whose connections start in namespace ns.
func HTTPClient(ns string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := InNetns(ns, func() (err error) {
					c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}
