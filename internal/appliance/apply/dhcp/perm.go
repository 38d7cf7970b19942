package dhcp

import (
	"os"
	"syscall"
)

// permits reports whether uid/gid get the permission bits need (a subset of
// rwx as 0o7) on a file, by its mode bits (ACLs are not consulted).
func permits(st os.FileInfo, uid, gid int, need os.FileMode) bool {
	if uid == 0 {
		return true
	}
	mode := st.Mode().Perm()
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return mode&need == need
	}
	switch {
	case int(sys.Uid) == uid:
		return (mode>>6)&need == need
	case int(sys.Gid) == gid:
		return (mode>>3)&need == need
	default:
		return mode&need == need
	}
}
