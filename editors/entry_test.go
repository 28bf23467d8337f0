package editors

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNewEntry(t *testing.T) {
	tests := []struct {
		agent []string
		name  string
		want  Entry
	}{
		{[]string{"claude"}, "", Entry{"Claude Code (sandboxed)", testExe, []string{"--", "claude"}}},
		{[]string{"codex"}, "", Entry{"Codex (sandboxed)", testExe, []string{"--", "codex"}}},
		{[]string{"gemini"}, "", Entry{"Gemini CLI (sandboxed)", testExe, []string{"--", "gemini"}}},
		{[]string{"claude"}, "Claude (work)", Entry{"Claude (work)", testExe, []string{"--", "claude"}}},
		// A preset name with arguments is a custom command line.
		{[]string{"gemini", "--acp", "-m", "pro"}, "", Entry{"gemini (sandboxed)", testExe, []string{"--", "gemini", "--acp", "-m", "pro"}}},
		{[]string{"/usr/bin/opencode", "acp"}, "", Entry{"opencode (sandboxed)", testExe, []string{"--", "/usr/bin/opencode", "acp"}}},
	}
	for _, tt := range tests {
		got, err := NewEntry(testExe, tt.agent, tt.name)
		if err != nil {
			t.Errorf("NewEntry(%q, %q): %v", tt.agent, tt.name, err)
			continue
		}
		if got.Name != tt.want.Name || got.Command != tt.want.Command || !slices.Equal(got.Args, tt.want.Args) {
			t.Errorf("NewEntry(%q, %q) = %+v, want %+v", tt.agent, tt.name, got, tt.want)
		}
	}

	for _, bad := range []struct {
		exe   string
		agent []string
		name  string
		msg   string
	}{
		{"acp-sandbox", []string{"claude"}, "", "must be an absolute path"},
		{testExe, nil, "", "no agent"},
		{testExe, []string{"claude"}, " padded", "no leading or trailing spaces"},
		{testExe, []string{"claude"}, "two\nlines", "newlines"},
	} {
		if _, err := NewEntry(bad.exe, bad.agent, bad.name); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("NewEntry(%q, %q, %q) = %v, want an error about %q", bad.exe, bad.agent, bad.name, err, bad.msg)
		}
	}
}

func TestLookup(t *testing.T) {
	for id, want := range map[string]*Editor{
		"zed": zed, "vscode": vscode, "code": vscode, "jetbrains": jetbrains, "goland": jetbrains,
		"neovim": neovim, "nvim": neovim, "emacs": emacs,
	} {
		if got, err := Lookup(id); err != nil || got != want {
			t.Errorf("Lookup(%q) = %v, %v", id, got, err)
		}
	}
	_, err := Lookup("notepad")
	if err == nil || err.Error() != `unknown editor "notepad": want one of zed, vscode, jetbrains, neovim, emacs` {
		t.Errorf("Lookup(notepad): %v", err)
	}
}

func TestConfigPaths(t *testing.T) {
	home := t.TempDir()
	linux := Env{Home: home, GOOS: "linux"}
	xdg := Env{Home: home, ConfigHome: "/xdg", GOOS: "linux"}
	mac := Env{Home: home, ConfigHome: "/xdg", GOOS: "darwin"}
	tests := []struct {
		ed   *Editor
		env  Env
		want string
	}{
		{zed, linux, home + "/.config/zed/settings.json"},
		{zed, xdg, "/xdg/zed/settings.json"},
		// Zed on macOS uses ~/.config/zed whatever XDG_CONFIG_HOME says.
		{zed, mac, home + "/.config/zed/settings.json"},
		{zed, Env{Home: home, ConfigHome: "relative/dir", GOOS: "linux"}, home + "/.config/zed/settings.json"},
		{vscode, linux, home + "/.config/Code/User/settings.json"},
		{vscode, xdg, "/xdg/Code/User/settings.json"},
		{vscode, mac, home + "/Library/Application Support/Code/User/settings.json"},
		{jetbrains, xdg, home + "/.jetbrains/acp.json"},
		{jetbrains, mac, home + "/.jetbrains/acp.json"},
		{neovim, xdg, "/xdg/nvim/init.lua"},
		{emacs, linux, home + "/.emacs.d/init.el"},
	}
	for _, tt := range tests {
		if got := tt.ed.ConfigPath(tt.env); got != tt.want {
			t.Errorf("%s ConfigPath(%+v) = %s, want %s", tt.ed.ID, tt.env, got, tt.want)
		}
	}

	// Existing init files win, in Emacs' own order.
	writeFile(t, filepath.Join(home, ".config", "emacs", "init.el"), nil, 0o644)
	if got := emacs.ConfigPath(linux); got != home+"/.config/emacs/init.el" {
		t.Errorf("emacs with an XDG init.el: %s", got)
	}
	writeFile(t, filepath.Join(home, ".emacs"), nil, 0o644)
	if got := emacs.ConfigPath(linux); got != home+"/.emacs" {
		t.Errorf("emacs with ~/.emacs: %s", got)
	}
	writeFile(t, filepath.Join(home, ".config", "nvim", "init.vim"), nil, 0o644)
	if got := neovim.ConfigPath(linux); got != home+"/.config/nvim/init.vim" {
		t.Errorf("neovim with only init.vim: %s", got)
	}
}

func TestShort(t *testing.T) {
	env := Env{Home: "/home/me"}
	for in, want := range map[string]string{
		"/home/me/.config/zed/settings.json": "~/.config/zed/settings.json",
		"/home/me":                           "~",
		"/home/meta/x":                       "/home/meta/x",
		"/etc/x":                             "/etc/x",
	} {
		if got := env.Short(in); got != want {
			t.Errorf("Short(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestTemporaryWarning(t *testing.T) {
	if w := temporaryWarning(filepath.Join(os.TempDir(), "go-build123", "b001", "exe", "acp-sandbox")); w == "" {
		t.Error("no warning for a go run binary")
	}
	if w := temporaryWarning("/usr/local/bin/acp-sandbox"); w != "" {
		t.Errorf("warning for an installed binary: %s", w)
	}
}

// Every preset (internal/presets) has the CodeCompanion adapter its
// snippet extends.
func TestPresetsHaveCodeCompanionAdapters(t *testing.T) {
	for _, p := range Presets() {
		if p.Title == "" || p.codeCompanion == "" {
			t.Errorf("preset %+v: no title or CodeCompanion adapter", p)
		}
	}
	if len(Presets()) != len(codeCompanion) {
		t.Errorf("CodeCompanion adapters for %d agents, %d presets", len(codeCompanion), len(Presets()))
	}
}
