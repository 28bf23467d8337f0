// Package atomicfile replaces files so that a reader — another process,
// the guest over 9p — sees the old content or the new, never half of it.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write replaces path with data, with mode, through a temporary file in
// the same directory (a rename is atomic only within one file system),
// synced before the rename (and the directory after it). On failure the temporary file is removed and
// path is untouched.
func Write(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = errors.Join(f.Chmod(mode), write(f, data), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	// Make the rename durable too; an error here loses nothing written.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func write(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}
