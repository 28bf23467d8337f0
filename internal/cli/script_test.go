package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run this package's CLI as the acp-sandbox
// command: the test binary re-executes itself, so scripts exercise Main
// without a built binary. Commands that need a VM have their transcripts in
// internal/e2e; the ones here must not start one.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"acp-sandbox": func() { os.Exit(Main(os.Args[1:])) },
	})
}

// TestScripts runs the transcripts in testdata/script with a home of their
// own ($HOME=$WORK/home, no XDG_CONFIG_HOME unless a script sets one)
// holding a stand-in acp-sandbox binary at $HOME/bin/acp-sandbox.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			env.Setenv("HOME", home)
			env.Setenv("XDG_STATE_HOME", filepath.Join(home, ".local", "state"))
			env.Setenv("XDG_RUNTIME_DIR", filepath.Join(env.WorkDir, "run"))
			// An installed acp-sandbox for entries to point at: scripts
			// pass --command $HOME/bin/acp-sandbox, so that what they
			// check does not depend on this machine's /usr/local or /opt.
			bin := filepath.Join(home, "bin")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(bin, "acp-sandbox"), []byte("#!/bin/sh\n"), 0o755)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"files": cmdFiles,
		},
	})
}

var backupStamp = regexp.MustCompile(`\.bak-acp-sandbox-\d{8}-\d{6}`)

// files DIR prints the files under DIR, one a line, sorted, with backup
// time stamps replaced by DATE so scripts can compare them.
func cmdFiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: files DIR")
	}
	dir := ts.MkAbs(args[0])
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, backupStamp.ReplaceAllString(filepath.ToSlash(rel), ".bak-acp-sandbox-DATE"))
		return nil
	})
	ts.Check(err)
	slices.Sort(out)
	if len(out) > 0 {
		ts.Stdout().Write([]byte(strings.Join(out, "\n") + "\n"))
	}
}
