package local

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// notifyExit calls Options.OnExit for an instance whose agent exited.
func (c *Compute) notifyExit(r *record) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if c.opts.OnExit != nil && !closed {
		c.opts.OnExit(r.ID, r.Name)
	}
}

// watchAdopted watches the agents of instances a previous provider started
// (this process is not their parent, so cmd.Wait cannot tell when they
// exit): a pidfd becomes readable when its process exits.
func (c *Compute) watchAdopted() error {
	if c.opts.OnExit == nil {
		return nil
	}
	recs, err := c.records()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.PID == 0 || !sameProcess(r.PID, r.PIDStart) {
			continue
		}
		fd, err := unix.PidfdOpen(r.PID, 0)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue // exited meanwhile: Get reports it as ERROR
			}
			c.log.Warn("cannot watch an instance's agent; the health poll will notice its death", "instance_id", r.ID, "err", err)
			continue
		}
		c.watchers.Add(1)
		go func() {
			defer c.watchers.Done()
			defer unix.Close(fd)
			if c.waitExit(fd) {
				c.log.Info("agent exited", "instance_id", r.ID, "pid", r.PID)
				c.notifyExit(r)
			}
		}()
	}
	return nil
}

// waitExit waits until the process behind pidfd exits (true) or the
// provider closes (false).
func (c *Compute) waitExit(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int((500 * time.Millisecond).Milliseconds()))
		if n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return false
		}
	}
}
