package presets

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/config"
)

func TestLookupAndArgv(t *testing.T) {
	p, ok := Lookup("gemini")
	if !ok {
		t.Fatal("no gemini preset")
	}
	got := strings.Join(p.Argv("/home/agent", []string{"--debug"}), " ")
	want := "/home/agent/.acp-sandbox/agents/gemini-" + p.Version + "/node_modules/.bin/gemini --acp --debug"
	if got != want {
		t.Fatalf("argv %q, want %q", got, want)
	}
	if _, ok := Lookup("claude-agent-acp"); ok {
		t.Fatal("a command name is not a preset")
	}
	for _, p := range All() {
		if p.Package == "" || p.Version == "" || p.Bin == "" || p.Title == "" {
			t.Errorf("incomplete preset %+v", p)
		}
	}
}

// Every preset is one of config's built-in agents and the other way
// round: the preset says what to install, the agent what it runs and may
// reach (its model API comes with its credential).
func TestPresetsAreConfigAgents(t *testing.T) {
	builtin := config.BuiltinAgents()
	for _, p := range All() {
		a, ok := builtin[p.Name]
		if !ok {
			t.Errorf("preset %s is no built-in agent", p.Name)
			continue
		}
		if got := append([]string{p.Bin}, p.Args...); !slices.Equal(got, a.Command) {
			t.Errorf("preset %s runs %q, config's agent %q", p.Name, got, a.Command)
		}
		if len(a.Credentials) == 0 || a.Credentials[0].Env == "" {
			t.Errorf("built-in agent %s has no model API key: %+v", p.Name, a)
		}
	}
	if got, want := slices.Sorted(maps.Keys(builtin)), slices.Sorted(slices.Values(Names())); !slices.Equal(got, want) {
		t.Errorf("config's built-in agents %q, presets %q: a built-in agent would run a command nothing installs", got, want)
	}
}

// The install script, run with a fake npm: installs atomically, is a
// no-op when installed, and leaves nothing behind when npm fails.
func TestInstallScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	home := t.TempDir()
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	// A fake npm: "installs" the bin into --prefix, or fails on request.
	fake := `#!/bin/sh
echo "$@" >> ` + calls + `
[ -n "$FAIL" ] && { echo "npm ERR! simulated" >&2; exit 1; }
prefix=$3
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\necho agent\n' > "$prefix/node_modules/.bin/claude-agent-acp"
chmod +x "$prefix/node_modules/.bin/claude-agent-acp"
`
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ := Lookup("claude")
	run := func(env ...string) (string, error) {
		cmd := exec.Command("sh", "-c", p.InstallScript(home, ""))
		cmd.Env = append(append(os.Environ(), "PATH="+bin+":/usr/bin:/bin"), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("FAIL=1"); err == nil || !strings.Contains(out, "simulated") {
		t.Fatalf("failing npm: err %v out %q", err, out)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p.Dir(home))); len(ents) != 1 { // only the lock
		t.Fatalf("a failed install left %v", ents)
	}
	if out, err := run(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if _, err := os.Stat(p.Command(home)); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(calls)
	if n := strings.Count(string(b), "\n"); n != 2 { // the failed one and the first good one
		t.Fatalf("npm ran %d times, want 2:\n%s", n, b)
	}
	if !strings.Contains(string(b), p.Spec()) {
		t.Fatalf("npm not asked for %s: %s", p.Spec(), b)
	}
}
