package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// WriteFile makes path hold data, replacing it atomically (temporary file in
// the same directory, fsync, rename) so that a daemon never reads a partial
// file. It does nothing, and reports changed == false, when the file already
// holds exactly data: an identical configuration leaves the file, its
// modification time and inode alone.
func WriteFile(path string, data []byte, perm os.FileMode) (changed bool, err error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return true, replaceFile(path, data, perm)
}

// replaceFile writes data to a temporary file next to path, syncs it and
// renames it over path.
func replaceFile(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// FileEquals reports whether path exists and holds exactly data.
func FileEquals(path string, data []byte) bool {
	old, err := os.ReadFile(path)
	return err == nil && bytes.Equal(old, data)
}

// SettleTime is how old a file's last change (its ctime) must be, when Files
// reads it, for a later change to be sure to show in its stat: file
// timestamps come from a coarse clock (a few milliseconds; a second on some
// filesystems), so a change within the same tick can leave every stat field
// as it was. Files re-reads a file whose contents it vouched for less than
// SettleTime after the file changed, until a read vouches for it later.
const SettleTime = 2 * time.Second

// stamp identifies one version of a file by what stat(2) says about it. The
// ctime cannot be set from user space: any write, truncation, chmod or
// rename of the file changes it (within the clock's resolution), and a file
// replaced by another has another inode.
type stamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

func stampOf(st *syscall.Stat_t) stamp {
	return stamp{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// settled reports whether any change to the file after now will show in its
// stamp: the file last changed well before now.
func (s stamp) settled(now time.Time) bool {
	last := max(s.mtime.Nano(), s.ctime.Nano())
	return now.UnixNano()-last > int64(SettleTime)
}

// statStamp returns path's stamp, and whether the file exists.
func statStamp(path string) (stamp, bool, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		switch {
		case err == nil:
			return stampOf(&st), true, nil
		case err == syscall.EINTR:
			continue
		case err == syscall.ENOENT:
			return stamp{}, false, nil
		default:
			return stamp{}, false, &os.PathError{Op: "stat", Path: path, Err: err}
		}
	}
}

// Files compares and writes configuration files like FileEquals and
// WriteFile, but remembers what each file held when it last wrote or read
// it, together with the file's stamp (device, inode, size, modification and
// change times). While the stamp is unchanged, comparing desired contents
// costs one stat(2) and an in-memory comparison instead of reading the file.
// A file edited or replaced behind its back has another stamp, and is read
// again on the next comparison; so is a file vouched for less than
// SettleTime after its last change, whose stamp could not yet tell.
//
// A Files is safe for concurrent use. Its zero value is ready to use.
type Files struct {
	mu    sync.Mutex
	m     map[string]fileMemo
	now   func() time.Time // time.Now; tests move it
	reads int              // files read to compare them, for tests
}

type fileMemo struct {
	data    []byte // our own copy of what the file held
	st      stamp
	settled bool // st was settled when recorded: an unchanged stamp vouches for data
}

// Equal reports whether path exists and holds exactly data.
func (c *Files) Equal(path string, data []byte) bool {
	equal, _ := c.check(path, data)
	return equal
}

// check is Equal, with the error that kept it from reading the file (not
// one for a file that does not exist).
func (c *Files) check(path string, data []byte) (bool, error) {
	if c.vouches(path, data) {
		return true, nil
	}
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	st, old, err := readWithStamp(path)
	if err != nil || !bytes.Equal(old, data) {
		c.Forget(path)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return false, err
	}
	c.remember(path, old, st)
	return true, nil
}

// Write makes path hold data, replacing it atomically (as WriteFile does)
// unless it already holds exactly data, which it decides as Equal does.
func (c *Files) Write(path string, data []byte, perm os.FileMode) (changed bool, err error) {
	equal, err := c.check(path, data)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if equal {
		return false, nil
	}
	if err := replaceFile(path, data, perm); err != nil {
		return false, err
	}
	// Remember what we wrote under the stamp of what is there now: a change
	// since the rename has another stamp, or (within the same clock tick)
	// the file is not settled yet and the next Equal reads it.
	if st, exists, err := statStamp(path); err == nil && exists {
		c.remember(path, bytes.Clone(data), st)
	}
	return true, nil
}

// Forget drops what c remembers about path (after removing it, say).
func (c *Files) Forget(path string) {
	c.mu.Lock()
	delete(c.m, path)
	c.mu.Unlock()
}

// vouches reports whether path's stamp is the one recorded with a settled
// copy of its contents, and those are data.
func (c *Files) vouches(path string, data []byte) bool {
	c.mu.Lock()
	m, ok := c.m[path]
	c.mu.Unlock()
	if !ok || !m.settled || !bytes.Equal(m.data, data) {
		return false
	}
	st, exists, err := statStamp(path)
	return err == nil && exists && st == m.st
}

// remember records that path held data (which c now owns) when its stamp was
// st.
func (c *Files) remember(path string, data []byte, st stamp) {
	c.mu.Lock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	m := fileMemo{data: data, st: st, settled: st.settled(now())}
	if c.m == nil {
		c.m = map[string]fileMemo{}
	}
	c.m[path] = m
	c.mu.Unlock()
}

// readWithStamp reads path and returns the stamp it had before the read: a
// change after that either shows in the contents read or changes the stamp
// (or the file is not settled, and will be read again).
func readWithStamp(path string) (stamp, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return stamp{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return stamp{}, nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return stamp{}, nil, &os.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	var b bytes.Buffer
	b.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := b.ReadFrom(f); err != nil {
		return stamp{}, nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return stampOf(st), b.Bytes(), nil
}
