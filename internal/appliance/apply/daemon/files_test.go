package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type fileVersion struct {
	ino   uint64
	mtime time.Time
}

func versionOf(t *testing.T, path string) fileVersion {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileVersion{st.Sys().(*syscall.Stat_t).Ino, st.ModTime()}
}

func (c *Files) readCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

func TestFilesWriteAndCompare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.conf")
	var c Files
	a, b := []byte("option = 1\n"), []byte("option = 2\n")
	if c.Equal(path, a) {
		t.Fatal("Equal of a missing file")
	}
	if changed, err := c.Write(path, a, 0o640); err != nil || !changed {
		t.Fatalf("Write = %v, %v; want changed", changed, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("written file: %v, %v", st, err)
	}
	v := versionOf(t, path)
	if changed, err := c.Write(path, a, 0o640); err != nil || changed {
		t.Fatalf("identical Write = %v, %v; want unchanged", changed, err)
	}
	if versionOf(t, path) != v {
		t.Error("identical Write replaced the file")
	}
	if !c.Equal(path, a) || c.Equal(path, b) {
		t.Error("Equal disagrees with the file")
	}
	if changed, err := c.Write(path, b, 0o640); err != nil || !changed {
		t.Fatalf("Write of new contents = %v, %v", changed, err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(b) {
		t.Errorf("file holds %q, want %q", got, b)
	}
	// Not a file it may replace.
	dir := filepath.Join(t.TempDir(), "a-dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(dir, a, 0o644); err == nil || !strings.Contains(err.Error(), "reading") {
		t.Errorf("Write over a directory = %v", err)
	}
}

// Edits behind the cache's back are seen, whether or not the file had
// settled: a file changed in the same clock tick as it was vouched for is
// read again.
func TestFilesSeeExternalEdits(t *testing.T) {
	for _, settled := range []bool{false, true} {
		t.Run(map[bool]string{false: "just_written", true: "settled"}[settled], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "daemon.conf")
			var c Files
			if settled {
				c.now = func() time.Time { return time.Now().Add(time.Hour) }
			}
			want := []byte("option = 1\n")
			edits := []struct {
				name string
				edit func()
			}{
				{"in place, same size", func() { writeInPlace(t, path, "option = 9\n") }},
				{"in place, longer", func() { writeInPlace(t, path, "option = 10\n") }},
				{"truncated", func() { writeInPlace(t, path, "") }},
				{"replaced", func() {
					tmp := path + ".new"
					if err := os.WriteFile(tmp, []byte("option = 7\n"), 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, path); err != nil {
						t.Fatal(err)
					}
				}},
				{"removed", func() {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
				}},
			}
			for _, e := range edits {
				if settled && e.name == "in place, same size" {
					// Within one clock tick, only the settling rule can tell
					// (the just_written case covers it).
					continue
				}
				if _, err := c.Write(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				if !c.Equal(path, want) {
					t.Fatalf("%s: Equal after Write = false", e.name)
				}
				e.edit()
				if c.Equal(path, want) {
					t.Errorf("%s: Equal did not see the edit", e.name)
				}
				if changed, err := c.Write(path, want, 0o644); err != nil || !changed {
					t.Errorf("%s: Write after the edit = %v, %v; want it rewritten", e.name, changed, err)
				}
				if got, _ := os.ReadFile(path); string(got) != string(want) {
					t.Errorf("%s: file holds %q after Write", e.name, got)
				}
			}
		})
	}
}

func writeInPlace(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A settled file is vouched for by its stat: comparing it reads nothing. One
// changed too recently is read every time.
func TestFilesReadOnlyWhatTheyCannotVouchFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.conf")
	data := []byte("option = 1\n")
	var c Files
	c.now = func() time.Time { return time.Now().Add(-time.Hour) } // everything changed "just now"
	if _, err := c.Write(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	reads := c.readCount()
	for range 3 {
		if !c.Equal(path, data) {
			t.Fatal("Equal = false")
		}
	}
	if n := c.readCount() - reads; n != 3 {
		t.Errorf("%d reads of a file that has not settled; want one per comparison (3)", n)
	}

	c.now = func() time.Time { return time.Now().Add(time.Hour) }
	if !c.Equal(path, data) { // reads it once more, now settled
		t.Fatal("Equal = false")
	}
	reads = c.readCount()
	for range 10 {
		if !c.Equal(path, data) {
			t.Fatal("Equal = false")
		}
		if changed, err := c.Write(path, data, 0o644); err != nil || changed {
			t.Fatalf("Write = %v, %v", changed, err)
		}
	}
	if n := c.readCount() - reads; n != 0 {
		t.Errorf("%d reads of a settled, unchanged file; want 0", n)
	}
	// Other contents are never vouched for by the stat.
	if c.Equal(path, []byte("option = 2\n")) {
		t.Error("Equal with other contents = true")
	}
}
