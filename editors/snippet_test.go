package editors

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestSnippetGolden renders the Neovim and Emacs snippets into
// testdata/snippet. Paste-ready code is the product here; read the files.
func TestSnippetGolden(t *testing.T) {
	custom, err := NewEntry("/home/me/bin/acp-sandbox", []string{"opencode", "acp"}, `My "agent"`)
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Home: t.TempDir(), GOOS: "linux"}
	cases := []struct {
		golden string
		ed     *Editor
		path   string
		e      Entry
	}{
		{"neovim-claude.lua", neovim, "", claudeEntry(t)},
		{"neovim-custom.lua", neovim, "", custom},
		{"neovim-init.vim", neovim, "/home/me/.config/nvim/init.vim", claudeEntry(t)},
		{"emacs-claude.el", emacs, "", claudeEntry(t)},
		{"emacs-custom.el", emacs, "", custom},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			s, err := tc.ed.Snippet(env, tc.path, tc.e)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "snippet", tc.golden), []byte(s))

			// What we print, pasted into the init file, is what List finds.
			init := filepath.Join(t.TempDir(), "init")
			writeFile(t, init, []byte("-- my config\n"+s+"-- more\n"), 0o644)
			l := List(env, tc.ed, init)
			want := []Found{{Entry: Entry{Name: tc.e.Name, Command: tc.e.Command}, Missing: true}}
			if l.Err != nil || !slices.EqualFunc(l.Entries, want, sameFound) {
				t.Errorf("List of the pasted snippet: %+v (err %v), want %+v", l.Entries, l.Err, want)
			}
		})
	}
	if _, err := zed.Snippet(env, "", claudeEntry(t)); err == nil {
		t.Error("Snippet for zed succeeded; zed's settings are managed")
	}
}

func TestSnippetID(t *testing.T) {
	for name, want := range map[string]string{
		"Claude Code (sandboxed)": "claude_code_sandboxed",
		"  --x--  ":               "x",
		"2fast":                   "acp_sandbox_2fast",
		"Ünïcode":                 "n_code",
		"日本":                      "acp_sandbox_",
	} {
		if got := snippetID(Entry{Name: name}, "_"); got != want {
			t.Errorf("snippetID(%q) = %q, want %q", name, got, want)
		}
	}
}

func sameFound(a, b Found) bool {
	return a.Name == b.Name && a.Command == b.Command && slices.Equal(a.Args, b.Args) && a.Missing == b.Missing
}

func TestList(t *testing.T) {
	home := t.TempDir()
	env := Env{Home: home, GOOS: "linux"}
	exe := filepath.Join(home, "bin", "acp-sandbox")
	writeFile(t, exe, []byte("#!/bin/sh\n"), 0o755)
	path := zed.ConfigPath(env)
	writeFile(t, path, []byte(`{
  // ours, still installed
  "agent_servers": {
    "Claude Code (sandboxed)": {"type": "custom", "command": "`+exe+`", "args": ["--", "claude"]},
    // ours, renamed by the user; the binary was a go run build, long gone
    "codex in a box": {"type": "custom", "command": "/tmp/go-build1/exe/acp-sandbox", "args": ["--", "codex"]},
    "gemini": {"type": "registry"},
    "Other": {"type": "custom", "command": "node", "args": ["agent.js"]},
  },
}`), 0o644)

	l := List(env, zed, "")
	want := []Found{
		{Entry: Entry{Name: "Claude Code (sandboxed)", Command: exe, Args: []string{"--", "claude"}}},
		{Entry: Entry{Name: "codex in a box", Command: "/tmp/go-build1/exe/acp-sandbox", Args: []string{"--", "codex"}}, Missing: true},
	}
	if l.Err != nil || !l.Exists || l.Others != 2 || !slices.EqualFunc(l.Entries, want, sameFound) {
		t.Errorf("List = %+v", l)
	}

	if l := List(env, jetbrains, ""); l.Exists || l.Err != nil || len(l.Entries) != 0 {
		t.Errorf("List without a file = %+v", l)
	}

	bad := filepath.Join(home, "bad.json")
	writeFile(t, bad, []byte("{\n  \"agent_servers\": [\n}"), 0o644)
	if l := List(env, vscode, bad); l.Err == nil || l.Err.Error() != "~/bad.json:3:1: invalid character '}' at start of value" {
		t.Errorf("List of an invalid file: err %v", l.Err)
	}
}
