package editors

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlanUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads a mode-000 file regardless, so there is no way to make
		// one unreadable here; CI runs as root, developers usually do not.
		t.Skip("running as root: chmod 000 does not stop root from reading")
	}
	home := t.TempDir()
	path := filepath.Join(home, "settings.json")
	writeFile(t, path, []byte("{}\n"), 0o000)
	_, err := Plan(Env{Home: home, GOOS: "linux"}, zed, path, claudeEntry(t))
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("Plan: %v; want a *FileError", err)
	}
	want := "~/settings.json: cannot read it: permission denied; check its owner and permissions (ls -l ~/settings.json); nothing was written"
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if got := dirFiles(t, home); !slices.Equal(got, []string{"settings.json"}) {
		t.Errorf("directory holds %q after a failed Plan", got)
	}
}

func TestPlanNotAFile(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "settings.json")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Plan(Env{Home: home}, zed, path, claudeEntry(t))
	if err == nil || err.Error() != "~/settings.json: not a regular file; nothing was written" {
		t.Errorf("Plan on a directory: %v", err)
	}
}

// A settings file kept in a dotfiles repository and linked into place: the
// repository's file changes, the link stays a link.
func TestApplyThroughSymlink(t *testing.T) {
	home := t.TempDir()
	real := filepath.Join(home, "dotfiles", "zed.json")
	writeFile(t, real, []byte("{\n  \"vim_mode\": true\n}\n"), 0o644)
	link := filepath.Join(home, ".config", "zed", "settings.json")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	c, err := Plan(Env{Home: home, GOOS: "linux"}, zed, "", claudeEntry(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != real || c.Shown != "~/dotfiles/zed.json" {
		t.Errorf("Path %q (shown %q); want the link's target", c.Path, c.Shown)
	}
	backup, err := c.Apply(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("settings.json is no longer a symlink (%v)", err)
	}
	if got, _ := os.ReadFile(link); !strings.Contains(string(got), "Claude Code (sandboxed)") {
		t.Errorf("the link's target lacks the entry:\n%s", got)
	}
	if filepath.Dir(backup) != filepath.Dir(real) {
		t.Errorf("backup %s is not next to %s", backup, real)
	}
}

func TestPlanDanglingSymlink(t *testing.T) {
	home := t.TempDir()
	link := filepath.Join(home, "settings.json")
	if err := os.Symlink(filepath.Join(home, "gone.json"), link); err != nil {
		t.Fatal(err)
	}
	_, err := Plan(Env{Home: home}, zed, link, claudeEntry(t))
	if err == nil || !strings.Contains(err.Error(), "is a symlink to "+home+"/gone.json, which does not exist") {
		t.Errorf("Plan: %v", err)
	}
}

// The editor saved its settings between our read and our write: we refuse
// rather than write a merge of the older copy.
func TestApplyRefusesAChangedFile(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "settings.json")
	writeFile(t, path, []byte("{}\n"), 0o644)
	c, err := Plan(Env{Home: home}, zed, path, claudeEntry(t))
	if err != nil {
		t.Fatal(err)
	}
	edited := []byte("{\"vim_mode\": true}\n")
	writeFile(t, path, edited, 0o644)
	if _, err := c.Apply(time.Now()); err == nil || !strings.Contains(err.Error(), "changed while we were merging into it") {
		t.Fatalf("Apply: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(edited) {
		t.Errorf("file was written:\n%s", got)
	}
	if got := dirFiles(t, home); !slices.Equal(got, []string{"settings.json"}) {
		t.Errorf("directory holds %q", got)
	}
}

// Two installs within one second keep both backups.
func TestBackupNamesDoNotCollide(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "settings.json")
	writeFile(t, path, []byte("{}\n"), 0o644)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var backups []string
	for _, agent := range []string{"claude", "codex"} {
		e, err := NewEntry(testExe, []string{agent}, "")
		if err != nil {
			t.Fatal(err)
		}
		c, err := Plan(Env{Home: home}, zed, path, e)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Apply(now)
		if err != nil {
			t.Fatal(err)
		}
		backups = append(backups, filepath.Base(b))
	}
	want := []string{"settings.json.bak-acp-sandbox-20260102-030405", "settings.json.bak-acp-sandbox-20260102-030405-1"}
	if !slices.Equal(backups, want) {
		t.Errorf("backups %q, want %q", backups, want)
	}
	l := List(Env{Home: home}, zed, path)
	if len(l.Entries) != 2 {
		t.Errorf("List after two installs: %+v", l)
	}
}

func TestPlanRefusesSnippetEditors(t *testing.T) {
	if _, err := Plan(Env{Home: t.TempDir()}, neovim, "", claudeEntry(t)); err == nil {
		t.Error("Plan for neovim succeeded")
	}
}
