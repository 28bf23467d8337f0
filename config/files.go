package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/acp-sandbox/acp-sandbox/internal/atomicfile"
)

// MaxFileSize bounds a configuration file. Real ones are a few KiB; the
// bound keeps a hostile workspace from making the host read (and diff)
// gigabytes.
const MaxFileSize = 1 << 20

// readWorkspaceFile reads the workspace's sandbox.toml without trusting it:
// the agent can write the workspace, so the file could be a symlink to a
// host secret (whose text would then show in error messages and diffs), a
// FIFO that blocks the host forever, or huge. Only a regular file is read.
// exists is false when there is no file.
func readWorkspaceFile(name string) (data []byte, exists bool, err error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, true, fmt.Errorf("%s is a symbolic link; acp-sandbox reads only a regular file there, since the agent could point a link anywhere on the host: replace it with the file itself", name)
		}
		return nil, true, fmt.Errorf("cannot read %s: %w", name, err)
	}
	defer f.Close()
	return readRegular(f, name)
}

// readUserFile reads the user's own config.toml; a symlink is fine there
// (dotfile managers link it), since only the user writes their home.
func readUserFile(name string) (data []byte, exists bool, err error) {
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("cannot read %s: %w", name, err)
	}
	defer f.Close()
	return readRegular(f, name)
}

func readRegular(f *os.File, name string) ([]byte, bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, true, fmt.Errorf("cannot read %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, true, fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, true, fmt.Errorf("cannot read %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, true, fmt.Errorf("%s is larger than %d KiB; a policy file is a few lines", name, MaxFileSize>>10)
	}
	return data, true, nil
}

// writeFileAtomic writes data to name through a temporary file in the same
// directory and a rename, so a reader sees the old file or the new one,
// never half of it. The directory is created 0700, the file is 0600.
func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if err := atomicfile.Write(name, data, 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", name, err)
	}
	return nil
}

// withLock runs fn holding an exclusive lock on dir/lock, so two processes
// (two editor connections answering "allow always") do not lose each
// other's read-modify-write.
func withLock(dir string, fn func() error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot lock %s: %w", dir, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("cannot lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
