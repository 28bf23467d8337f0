package editors

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Change is what installing an entry does to one editor's settings file,
// worked out before anything is written, so that a dry run shows exactly what
// the real run writes.
type Change struct {
	Editor *Editor
	// Path is the settings file. When the configured path is a symlink (a
	// dotfiles repository, say) it is the link's target: we update the
	// file the link points at instead of replacing the link.
	Path   string
	Shown  string // Path as messages show it (~/…)
	Entry  Entry
	Action Action
	Exists bool   // the file existed; Before is its content
	Before []byte // nil for a new file
	After  []byte // equal to Before when Action is Unchanged

	mode fs.FileMode
}

// FileError is a settings file we could not use. Nothing was written.
type FileError struct {
	Path string // as shown to the user
	Err  error
	Hint string // what to do about it
}

func (e *FileError) Error() string {
	var ce *ConfigError
	msg := fmt.Sprintf("%s: %v", e.Path, e.Err)
	if errors.As(e.Err, &ce) && ce.Line > 0 {
		msg = fmt.Sprintf("%s:%d:%d: %s", e.Path, ce.Line, ce.Column, ce.Msg)
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *FileError) Unwrap() error { return e.Err }

// Plan works out the change that puts e into the settings file of ed at path
// (empty: the editor's default file). It reads the file and writes nothing.
func Plan(env Env, ed *Editor, path string, e Entry) (*Change, error) {
	if !ed.Managed() {
		return nil, fmt.Errorf("editors: %s is configured in code, not a settings file: use its snippet", ed.Title)
	}
	if path == "" {
		path = ed.ConfigPath(env)
	}
	target, err := resolveLink(path)
	if err != nil {
		return nil, &FileError{Path: env.Short(path), Err: err, Hint: "fix or remove the link; nothing was written"}
	}
	c := &Change{Editor: ed, Path: target, Shown: env.Short(target), Entry: e, mode: 0o644}

	info, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new file, and maybe new directories: the editor may not have
		// run yet. It reads the file when it starts.
	case err != nil:
		return nil, &FileError{Path: c.Shown, Err: unwrapPath(err), Hint: "nothing was written"}
	case !info.Mode().IsRegular():
		return nil, &FileError{Path: c.Shown, Err: errors.New("not a regular file"), Hint: "nothing was written"}
	default:
		c.Before, err = os.ReadFile(target)
		if err != nil {
			return nil, &FileError{Path: c.Shown, Err: fmt.Errorf("cannot read it: %w", unwrapPath(err)),
				Hint: "check its owner and permissions (ls -l " + c.Shown + "); nothing was written"}
		}
		c.Exists, c.mode = true, info.Mode().Perm()
	}

	d, err := parseDocument(c.Before)
	if err != nil {
		return nil, &FileError{Path: c.Shown, Err: err, Hint: "fix the file or move it aside; nothing was written"}
	}
	c.Action, err = d.merge(ed.json, e)
	if err != nil {
		return nil, &FileError{Path: c.Shown, Err: err, Hint: "fix the file or move it aside; nothing was written"}
	}
	c.After = d.pack()
	if c.Action == Unchanged {
		c.After = c.Before
		return c, nil
	}
	if err := check(ed.json, c.After, e); err != nil {
		// A bug of ours, not the user's: refuse rather than write a file
		// the editor cannot read.
		return nil, fmt.Errorf("editors: internal error: merging into %s gave a file that %v; nothing was written (please report this with the file attached)", c.Shown, err)
	}
	return c, nil
}

// check reads the merged file back: it must parse, and the entry must be
// there as intended.
func check(f *jsonFormat, b []byte, e Entry) error {
	d, err := parseDocument(b)
	if err != nil {
		return fmt.Errorf("does not parse (%v)", err)
	}
	all, err := d.servers(f)
	if err != nil {
		return err
	}
	for _, s := range all {
		if s.Name == e.Name {
			if s.CommandLine() != e.CommandLine() {
				return fmt.Errorf("holds %q for %q", s.CommandLine(), e.Name)
			}
			return nil
		}
	}
	return fmt.Errorf("lacks %q", e.Name)
}

// Diff is the change as a unified diff, or "" when nothing changes.
func (c *Change) Diff() string {
	from := c.Shown
	if !c.Exists {
		from = "/dev/null"
	}
	return unifiedDiff(from, c.Shown, c.Before, c.After)
}

// Apply writes the change: first a backup of the old file next to it
// (FILE.bak-acp-sandbox-YYYYMMDD-HHMMSS, same mode), then the new content
// through a temporary file renamed over the old one, so the editor never
// reads half a file and a failure leaves the old file as it was. It returns
// the backup's path ("" when there was no old file or nothing to do).
func (c *Change) Apply(now time.Time) (backup string, err error) {
	if c.Action == Unchanged {
		return "", nil
	}
	dir := filepath.Dir(c.Path)
	if c.Exists {
		// Editors rewrite their own settings (Zed does whenever a setting
		// is changed in its UI). Writing our merge of an older copy would
		// drop that edit.
		cur, err := os.ReadFile(c.Path)
		if err != nil || !bytes.Equal(cur, c.Before) {
			return "", &FileError{Path: c.Shown, Err: errors.New("changed while we were merging into it"), Hint: "nothing was written; run the command again"}
		}
		if backup, err = writeBackup(c.Path, c.Before, c.mode, now); err != nil {
			return "", &FileError{Path: c.Shown, Err: fmt.Errorf("cannot write a backup: %w", unwrapPath(err)), Hint: "nothing was written"}
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", &FileError{Path: c.Shown, Err: fmt.Errorf("cannot create %s: %w", dir, unwrapPath(err)), Hint: "nothing was written"}
	}
	if err := writeAtomic(c.Path, c.After, c.mode); err != nil {
		return backup, &FileError{Path: c.Shown, Err: fmt.Errorf("cannot write it: %w", unwrapPath(err)), Hint: "the file is unchanged"}
	}
	return backup, nil
}

// resolveLink follows path if it is a symlink. A missing file is fine; a
// link to nowhere is not (we would not know where the editor looks).
func resolveLink(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	info, err := os.Lstat(abs)
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		return abs, nil
	}
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		dest, _ := os.Readlink(abs)
		return "", fmt.Errorf("is a symlink to %s, which does not exist", dest)
	}
	return target, nil
}

// writeBackup copies old next to path under a name no other file has.
func writeBackup(path string, old []byte, mode fs.FileMode, now time.Time) (string, error) {
	base := path + ".bak-acp-sandbox-" + now.Format("20060102-150405")
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(old)
		if err2 := f.Close(); err == nil {
			err = err2
		}
		if err != nil {
			os.Remove(name)
			return "", err
		}
		return name, nil
	}
}

// writeAtomic replaces path with b via a temporary file in the same
// directory (rename is atomic only within one file system), with the given
// mode and, where we can, the old file's owner.
func writeAtomic(path string, b []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".acp-sandbox-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if old, statErr := os.Stat(path); statErr == nil {
		keepOwner(tmp, old)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}

// unwrapPath drops the *fs.PathError wrapper: our messages name the file
// already, in its ~/ form.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
