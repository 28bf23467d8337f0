// Package walk is the metadata workload of the workspace benchmark: walk a
// tree and lstat every entry, like `find DIR -exec stat`, timing itself. The
// same code runs in both arms of the comparison (bench/walker in the sandbox,
// bench/bareinit in the bare VM), so they differ only in what is under the
// filesystem.
package walk

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Result is one walk: the entries visited (the root included) and how long
// the walk took by the walker's own clock.
type Result struct {
	Entries int
	Elapsed time.Duration
}

// Walk visits every entry under root, lstat(2)ing each one. WalkDir reads
// directories with getdents and does not stat entries itself, so each entry
// costs one explicit lstat: the lookup and getattr that `find | stat` make.
func Walk(root string) (Result, error) {
	start := time.Now()
	n := 0
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	return Result{Entries: n, Elapsed: time.Since(start)}, err
}

// String is the one line a walker prints: "walk entries=N ns=E".
func (r Result) String() string {
	return fmt.Sprintf("walk entries=%d ns=%d", r.Entries, r.Elapsed.Nanoseconds())
}

// Parse reads a line written by String; text around it is allowed.
func Parse(s string) (Result, error) {
	var r Result
	var ns int64
	for i := 0; i+5 <= len(s); i++ {
		if s[i:i+5] != "walk " {
			continue
		}
		if _, err := fmt.Sscanf(s[i:], "walk entries=%d ns=%d", &r.Entries, &ns); err == nil {
			r.Elapsed = time.Duration(ns)
			return r, nil
		}
	}
	return r, fmt.Errorf("walk: no result in %q", s)
}
