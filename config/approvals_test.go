package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestApprovalCycle(t *testing.T) {
	e := newEnv(t)
	ws := e.wsFile()
	status := func() PolicyStatus {
		t.Helper()
		st, err := e.ap.Status(ws)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.State != PolicyNone {
		t.Fatalf("fresh workspace: %v", st.State)
	}
	v1 := "[sandbox]\ncpus = 2\n"
	writeFile(t, ws, v1)
	if st := status(); st.State != PolicyPending || st.ApprovedSHA256 != "" {
		t.Fatalf("new file: %+v", st)
	}
	if err := e.ap.Approve([]byte(v1)); err != nil {
		t.Fatal(err)
	}
	st := status()
	if st.State != PolicyApproved || st.SHA256 != st.ApprovedSHA256 || st.Diff != "" || st.ApprovedAt.IsZero() {
		t.Fatalf("approved: %+v", st)
	}

	// The agent changes the file: pending, and the approved text still applies.
	writeFile(t, ws, "[sandbox]\ncpus = 64\n")
	st = status()
	if st.State != PolicyPending {
		t.Fatalf("changed: %v", st.State)
	}
	got, ok, err := e.ap.Effective(ws)
	if err != nil || !ok || string(got) != v1 {
		t.Fatalf("Effective = %q, %v, %v; want the approved text", got, ok, err)
	}
	want := "--- approved\n+++ " + ws + "\n@@ -1,2 +1,2 @@\n [sandbox]\n-cpus = 2\n+cpus = 64\n"
	if st.Diff != want {
		t.Errorf("diff:\n%s\nwant:\n%s", st.Diff, want)
	}

	// Approve what was shown, not what the file holds a moment later.
	shown := st.Content()
	writeFile(t, ws, "[sandbox]\ncpus = 1\n")
	if err := e.ap.Approve(shown); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.State != PolicyPending {
		t.Errorf("a change after the diff was approved too: %v", st.State)
	}
	got, _, _ = e.ap.Effective(ws)
	if string(got) != "[sandbox]\ncpus = 64\n" {
		t.Errorf("Effective = %q", got)
	}

	// Files are the user's only; the directory too.
	for name, mode := range map[string]os.FileMode{e.ap.Dir(): 0o700, e.ap.copyPath(): 0o600} {
		fi, err := os.Stat(name)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v (%v)", name, fi.Mode().Perm(), mode, err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(e.ap.Dir(), ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// An approved empty file is approved; it is not "nothing approved".
func TestApproveEmptyFile(t *testing.T) {
	e := newEnv(t)
	writeFile(t, e.wsFile(), "")
	st, _ := e.ap.Status(e.wsFile())
	if st.State != PolicyPending || !strings.Contains(st.Diff, "(empty file)") {
		t.Fatalf("empty new file: %+v", st)
	}
	if err := e.ap.Approve(st.Content()); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.ap.Status(e.wsFile()); st.State != PolicyApproved {
		t.Errorf("empty file after approval: %v", st.State)
	}
}

func TestAllowAlways(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"PyPI.org:443", "pypi.org:443", "files.pythonhosted.org"} {
		if err := e.ap.AddAllow(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.ap.AddAllow("*bad"); err == nil || !strings.Contains(err.Error(), "wildcard") {
		t.Errorf("AddAllow(*bad) = %v", err)
	}
	list, err := e.ap.AllowList()
	if err != nil || len(list) != 2 || list[0].Pattern != "pypi.org:443" || list[1].Pattern != "files.pythonhosted.org" || list[0].Added.IsZero() {
		t.Fatalf("AllowList = %+v, %v", list, err)
	}
	if fi, err := os.Stat(e.ap.allowPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("allow.json: %v %v", fi.Mode(), err)
	}
	if removed, err := e.ap.RemoveAllow("PYPI.ORG:443"); !removed || err != nil {
		t.Errorf("RemoveAllow = %v, %v", removed, err)
	}
	if removed, _ := e.ap.RemoveAllow("pypi.org:443"); removed {
		t.Error("removed twice")
	}
	list, _ = e.ap.AllowList()
	if len(list) != 1 {
		t.Errorf("AllowList after remove = %+v", list)
	}
}

// Two editor connections answering "allow always" at once lose nothing.
func TestAllowAlwaysConcurrent(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := OpenApprovals(e.opts.StateDir).AddAllow(string(rune('a'+i)) + ".example"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if list, _ := e.ap.AllowList(); len(list) != 20 {
		t.Errorf("%d of 20 answers kept", len(list))
	}
}

func TestAllowListDamaged(t *testing.T) {
	e := newEnv(t)
	writeFile(t, e.ap.allowPath(), "{not json")
	if _, err := Load(e.opts); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Errorf("Load = %v", err)
	}
}
