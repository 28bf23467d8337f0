package editors

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testExe = "/opt/acp-sandbox/bin/acp-sandbox"

func claudeEntry(t *testing.T) Entry {
	t.Helper()
	e, err := NewEntry(testExe, []string{"claude"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestMergeGolden installs the claude entry into each settings file in
// testdata/merge/EDITOR/CASE.in.json and compares the result with
// CASE.out.json, or the error with CASE.err. A case without an .in file
// starts from no file at all. It then applies the change for real and checks
// the file on disk, the backup, and that errors wrote nothing.
func TestMergeGolden(t *testing.T) {
	const failed Action = -1
	cases := []struct {
		editor, name string
		want         Action
	}{
		// A real Zed file: header comments, a comment on a member's
		// line, a block comment, trailing commas. agent_servers is new.
		{"zed", "comments", Added},
		// Other agents (custom and registry) and their comments stay.
		{"zed", "unrelated", Added},
		// Our entry, as we would write it, with an env of the user's.
		{"zed", "present", Unchanged},
		// Our name with an old command: command and args change; the
		// user's comment, env and default_mode stay.
		{"zed", "outdated", Updated},
		{"zed", "empty", Added},
		{"zed", "missing", Added},
		{"zed", "comments-only", Added},
		{"zed", "empty-servers", Added},
		// Indented with tabs, CRLF line ends: new lines do the same.
		{"zed", "tabs-crlf", Added},
		// Our name holding a string, not an agent server: replaced.
		{"zed", "wrong-type", Updated},
		// Everything on one line: still valid, "type" added on a line
		// of its own.
		{"zed", "one-line", Updated},
		{"zed", "invalid", failed},
		{"zed", "not-object", failed},

		{"jetbrains", "unrelated", Added},
		{"jetbrains", "present", Unchanged},
		// Four-space indent, args over several lines: args rewritten,
		// env and the top-level default_mcp_settings kept.
		{"jetbrains", "outdated", Updated},
		// One line, no final newline: the entry joins that line.
		{"jetbrains", "one-line", Added},
		{"jetbrains", "empty", Added},
		{"jetbrains", "empty-object", Added},
		{"jetbrains", "missing", Added},
		{"jetbrains", "invalid", failed},

		// Other settings, comments: "acp.agents" is added at the end.
		{"vscode", "comments", Added},
		// An existing acp.agents with a trailing comma and a comment on
		// its last member's line.
		{"vscode", "unrelated", Added},
		{"vscode", "present", Unchanged},
		// A byte order mark, tabs, CRLF, no final newline (VS Code on
		// Windows writes such files): all kept.
		{"vscode", "bom-tabs-crlf", Added},
		{"vscode", "missing", Added},
		{"vscode", "invalid", failed},
		{"vscode", "not-object", failed},
	}
	for _, tc := range cases {
		t.Run(tc.editor+"/"+tc.name, func(t *testing.T) {
			ed, err := Lookup(tc.editor)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "merge", tc.editor, tc.name)
			home := t.TempDir()
			env := Env{Home: home, GOOS: "linux"}
			// Nested, so that a missing file also means missing directories.
			path := filepath.Join(home, "conf", "settings.json")
			in, err := os.ReadFile(golden + ".in.json")
			exists := err == nil
			if exists {
				writeFile(t, path, in, 0o600)
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}

			c, err := Plan(env, ed, path, claudeEntry(t))
			if tc.want == failed {
				if err == nil {
					t.Fatalf("Plan succeeded; want an error")
				}
				checkGolden(t, golden+".err", []byte(err.Error()+"\n"))
				if got := dirFiles(t, home); !slices.Equal(got, []string{"conf/settings.json"}) {
					t.Errorf("after a failed Plan the directory holds %q; want only the input", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Action != tc.want {
				t.Errorf("Action = %v, want %v", c.Action, tc.want)
			}
			if tc.want == Unchanged {
				if !bytes.Equal(c.After, in) {
					t.Errorf("unchanged, but After differs from the input")
				}
				if d := c.Diff(); d != "" {
					t.Errorf("unchanged, but Diff is\n%s", d)
				}
			} else {
				checkGolden(t, golden+".out.json", c.After)
				if !strings.Contains(c.Diff(), "+") {
					t.Errorf("Diff shows no added line:\n%s", c.Diff())
				}
			}

			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			backup, err := c.Apply(now)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.After) {
				t.Errorf("file on disk differs from Plan's After")
			}
			want := []string{"conf/settings.json"}
			switch {
			case tc.want == Unchanged || !exists:
				if backup != "" {
					t.Errorf("backup %q; want none", backup)
				}
			default:
				want = append(want, "conf/settings.json.bak-acp-sandbox-20260102-030405")
				if b, err := os.ReadFile(backup); err != nil || !bytes.Equal(b, in) {
					t.Errorf("backup %s does not hold the original (err %v)", backup, err)
				}
				checkMode(t, backup, 0o600)
			}
			if exists {
				checkMode(t, path, 0o600)
			} else {
				checkMode(t, path, 0o644)
			}
			if got := dirFiles(t, home); !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q", got, want)
			}

			// Installing again finds everything in place.
			again, err := Plan(env, ed, path, claudeEntry(t))
			if err != nil {
				t.Fatal(err)
			}
			if again.Action != Unchanged {
				t.Errorf("second Plan: Action = %v, want unchanged; diff:\n%s", again.Action, again.Diff())
			}
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./editors -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n%s", path, unifiedDiff("want", "got", want, got))
	}
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// dirFiles lists the regular files under dir, relative and sorted.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
