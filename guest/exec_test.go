package guest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin1, bin2 := filepath.Join(dir, "b1"), filepath.Join(dir, "b2")
	os.Mkdir(bin1, 0o755)
	os.Mkdir(bin2, 0o755)
	os.WriteFile(filepath.Join(bin1, "tool"), nil, 0o644) // not executable: skipped
	os.WriteFile(filepath.Join(bin2, "tool"), nil, 0o755)
	os.WriteFile(filepath.Join(bin1, "data"), nil, 0o644)
	env := []string{"PATH=/nonexistent", "PATH=" + bin1 + ":" + bin2} // last PATH wins

	if p, err := lookPath("tool", dir, env); err != nil || p != filepath.Join(bin2, "tool") {
		t.Errorf("tool: %q %v", p, err)
	}
	if _, err := lookPath("missing", dir, env); !errors.Is(err, errNotFound) || errorKind(err) != "notfound" {
		t.Errorf("missing: %v", err)
	}
	if _, err := lookPath("data", dir, env); !errors.Is(err, errNoExec) || errorKind(err) != "noexec" {
		t.Errorf("data: %v", err)
	}
	if p, err := lookPath("b2/tool", dir, env); err != nil || p != filepath.Join(dir, "b2/tool") {
		t.Errorf("relative: %q %v", p, err)
	}
	if _, err := lookPath(bin1, dir, env); !errors.Is(err, errNoExec) {
		t.Errorf("a directory is not executable: %v", err)
	}
}

func TestExecEnv(t *testing.T) {
	s := &server{boot: &control.Boot{User: "agent", Home: "/home/agent"}, env: []string{"A=setup", "B=setup"}}
	env := s.execEnv(&control.Exec{Env: []string{"B=req", "PATH=/x"}, TTY: true})
	for _, want := range []string{"A=setup", "B=req", "PATH=/x", "HOME=/home/agent", "USER=agent", "TERM=xterm-256color"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	seen := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if seen[k] {
			t.Errorf("duplicate %s", k)
		}
		seen[k] = true
	}
}
