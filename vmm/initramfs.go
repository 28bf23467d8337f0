package vmm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
)

// InitramfsFile is one entry of a generated initramfs.
type InitramfsFile struct {
	Path   string // absolute path in the guest
	Mode   os.FileMode
	Source string // host file to copy; empty means Data
	Data   []byte
}

// WriteInitramfs writes a newc cpio archive holding files, with every parent
// directory created first. It is deterministic: same input, same bytes, so
// the archive can be cached by content.
func WriteInitramfs(w io.Writer, files []InitramfsFile) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := cpio.NewWriter(bw)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{"/": true}
	var mkdirs func(d string) error
	mkdirs = func(d string) error {
		if dirs[d] {
			return nil
		}
		if err := mkdirs(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return cw.WriteHeader(&cpio.Header{Name: strings.TrimPrefix(d, "/"), Mode: cpio.TypeDir | 0o755, ModTime: epoch})
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b InitramfsFile) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range sorted {
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("initramfs: path %q is not absolute", f.Path)
		}
		if err := mkdirs(path.Dir(f.Path)); err != nil {
			return err
		}
		data := f.Data
		if f.Source != "" {
			var err error
			if data, err = os.ReadFile(f.Source); err != nil {
				return fmt.Errorf("initramfs: %w", err)
			}
		}
		hdr := &cpio.Header{
			Name:    strings.TrimPrefix(f.Path, "/"),
			Mode:    cpio.TypeReg | cpio.FileMode(f.Mode.Perm()),
			Size:    int64(len(data)),
			ModTime: epoch,
		}
		if err := cw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("initramfs: %s: %w", f.Path, err)
		}
		if _, err := cw.Write(data); err != nil {
			return fmt.Errorf("initramfs: %s: %w", f.Path, err)
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
