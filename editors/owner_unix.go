//go:build unix

package editors

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f the owner of old. It matters when root (sudo) edits a
// user's settings: the rewritten file must stay the user's, or the editor
// can no longer save it. An ordinary user cannot chown, and needs not: the
// file is already theirs. Best effort.
func keepOwner(f *os.File, old fs.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
