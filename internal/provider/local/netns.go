package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// runDir is where `ip netns` keeps named namespaces.
const runDir = "/run/netns"

// nsID identifies a network namespace: the device and inode of its nsfs
// file.
type nsID struct{ dev, ino uint64 }

func nsPath(name string) string { return filepath.Join(runDir, name) }

// statNS returns the namespace a /run/netns/<name> file, or a
// /proc/<pid>/ns/net link, refers to. A file that is not a mounted
// namespace (its namespace was unmounted, or it was never mounted) is
// os.ErrNotExist.
func statNS(path string) (nsID, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return nsID{}, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if fs.Type != unix.NSFS_MAGIC {
		return nsID{}, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// shareRunDir makes /run/netns a shared mount point, as `ip netns add`
// does: a namespace mounted or unmounted there is then seen from every
// mount namespace made since (`ip netns exec` makes one per agent), so an
// unmounted namespace is not kept alive by the agents of other instances.
func shareRunDir() error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(runDir, runDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on itself: %w", runDir, err)
		}
		err = unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("making %s a shared mount: %w", runDir, err)
	}
	return nil
}

// createNamespace creates the named network namespace, as `ip netns add`
// does, unless it exists.
func createNamespace(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := nsPath(name)
	if _, err := statNS(path); err == nil {
		return nil
	}
	if err := shareRunDir(); err != nil {
		return err
	}
	// A file left by a namespace unmounted behind our back is reused.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	errc := make(chan error, 1)
	go func() {
		// This thread enters the new namespace, then goes back to its
		// own. It stays locked (and the runtime ends it with the
		// goroutine) unless it is back: had it been the main thread,
		// which the runtime never ends, the process would show as one of
		// the namespace's (ip netns pids) and be killed with them.
		runtime.LockOSThread()
		orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("opening the thread's namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		err = unix.Mount(self, path, "none", unix.MS_BIND, "")
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			errc <- fmt.Errorf("mounting the namespace on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path) // best effort: nothing is mounted on it
		return fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	return nil
}

// deleteNamespace unmounts and removes the named namespace, as `ip netns
// delete` does; a missing one is not an error. The kernel frees the
// namespace when no process is left in it.
func deleteNamespace(name string) error {
	path := nsPath(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting network namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("removing network namespace %s: %w", name, err)
	}
	return nil
}
