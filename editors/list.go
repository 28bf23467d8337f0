package editors

import (
	"errors"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Found is an entry that runs acp-sandbox, found in an editor's settings.
type Found struct {
	Entry
	// Missing: the acp-sandbox binary the entry runs is gone (moved,
	// uninstalled, a go run build), so the editor will fail to start it.
	Missing bool `json:"missing,omitempty"`
}

// Listing is what one editor's configuration holds for us.
type Listing struct {
	Editor  *Editor `json:"-"`
	Path    string  `json:"path"`
	Exists  bool    `json:"exists"`
	Entries []Found `json:"entries"`
	// Others counts agent servers that do not run acp-sandbox (settings
	// files only; we do not interpret init.lua or init.el).
	Others int   `json:"others"`
	Err    error `json:"-"`
}

// List reads the configuration of ed at path (empty: its default) and
// reports the entries that run acp-sandbox. It never writes.
func List(env Env, ed *Editor, path string) Listing {
	if path == "" {
		path = ed.ConfigPath(env)
	}
	l := Listing{Editor: ed, Path: path, Entries: []Found{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l
	}
	l.Exists = true
	if err != nil {
		l.Err = &FileError{Path: env.Short(path), Err: unwrapPath(err)}
		return l
	}
	var entries []Entry
	if ed.Managed() {
		d, err := parseDocument(b)
		if err == nil {
			entries, err = d.servers(ed.json)
		}
		if err != nil {
			l.Err = &FileError{Path: env.Short(path), Err: err}
			return l
		}
	} else {
		entries = scanCode(b)
	}
	for _, e := range entries {
		if !isOurs(e.Command) {
			l.Others++
			continue
		}
		_, err := os.Stat(e.Command)
		l.Entries = append(l.Entries, Found{Entry: e, Missing: errors.Is(err, fs.ErrNotExist)})
	}
	return l
}

var (
	// markerRE matches the comment our snippets start with, which names
	// the entry: -- acp-sandbox: "Claude Code (sandboxed)" …
	markerRE = regexp.MustCompile(`(?:--|;+)\s*acp-sandbox:\s*("(?:[^"\\]|\\.)*")`)
	// commandRE matches a quoted absolute path to an acp-sandbox binary.
	commandRE = regexp.MustCompile(`"(/(?:[^"\\\n]|\\.)*/acp-sandbox)"`)
)

// scanCode finds acp-sandbox commands in Lua or Emacs Lisp: each quoted
// absolute path to an acp-sandbox binary, named after the closest marker
// comment above it. A heuristic, good enough to spot entries whose binary
// is gone; we never edit these files.
func scanCode(b []byte) []Entry {
	var out []Entry
	name := ""
	for i, line := range strings.Split(string(b), "\n") {
		if m := markerRE.FindStringSubmatch(line); m != nil {
			if s, err := strconv.Unquote(m[1]); err == nil {
				name = s
			}
		}
		for _, m := range commandRE.FindAllStringSubmatch(line, -1) {
			n := name
			if n == "" {
				n = "line " + strconv.Itoa(i+1)
			}
			e := Entry{Name: n, Command: m[1]}
			if !slices.ContainsFunc(out, func(o Entry) bool { return o.Name == e.Name && o.Command == e.Command }) {
				out = append(out, e)
			}
		}
	}
	return out
}
