package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/presets"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// What `acp-sandbox -- NAME ARGS…` runs: a preset, a configured agent
// (also one replacing a preset's command), or the command as given.
func TestResolveAgent(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(`
[agents.kimi]
command = ["kimi", "--acp"]
[[agents.kimi.credentials]]
host = "api.moonshot.cn"
header = "Authorization"
format = "Bearer {}"
from_env = "MOONSHOT_API_KEY"
env = "MOONSHOT_API_KEY"

[agents.codex]
command = ["/usr/local/bin/my-codex", "--acp"]

[agents.claude]
allow = ["statsig.anthropic.com:443"]

[agents.byhand]
allow = ["x.example"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.LoadOptions{UserConfigDir: dir, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	installed := func(name string) string {
		p, _ := presets.Lookup(name)
		return strings.Join(p.Argv(sandbox.GuestHome, nil), " ")
	}
	for _, c := range []struct {
		argv, want, agent, preset string
		hosts                     []string
	}{
		// A preset: its npm-installed adapter, with the file's additions
		// to its hosts.
		{"claude --debug", installed("claude") + " --debug", "claude", "claude",
			[]string{"console.anthropic.com:443", "claude.ai:443", "statsig.anthropic.com:443", "api.anthropic.com"}},
		{"gemini", installed("gemini"), "gemini", "gemini",
			[]string{"oauth2.googleapis.com:443", "accounts.google.com:443", "cloudcode-pa.googleapis.com:443", "generativelanguage.googleapis.com"}},
		// A file's command replaces the preset's: nothing to install.
		{"codex -v", "/usr/local/bin/my-codex --acp -v", "codex", "",
			[]string{"auth.openai.com:443", "chatgpt.com:443", "api.openai.com"}},
		// An agent the file defines; its credential's host is its model API.
		{"kimi --yolo", "kimi --acp --yolo", "kimi", "", []string{"api.moonshot.cn"}},
		// A command that starts like an agent's gets that agent's hosts.
		{"kimi-cli", "kimi-cli", "", "", nil},
		{"/usr/bin/kimi --acp --x", "/usr/bin/kimi --acp --x", "kimi", "", []string{"api.moonshot.cn"}},
		{"claude-agent-acp", "claude-agent-acp", "claude", "",
			[]string{"console.anthropic.com:443", "claude.ai:443", "statsig.anthropic.com:443", "api.anthropic.com"}},
		// An agent without a command, a path, anything else: as given.
		{"byhand --x", "byhand --x", "", "", nil},
		{"/usr/bin/claude", "/usr/bin/claude", "", "", nil},
		{"foo bar", "foo bar", "", "", nil},
	} {
		r := resolveAgent(cfg, strings.Fields(c.argv))
		preset := ""
		if r.preset != nil {
			preset = r.preset.Name
		}
		if got := strings.Join(r.argv, " "); got != c.want || r.agent != c.agent || preset != c.preset || !slices.Equal(r.hosts, c.hosts) {
			t.Errorf("-- %s: runs %q (agent %q, preset %q, hosts %q), want %q (agent %q, preset %q, hosts %q)",
				c.argv, got, r.agent, preset, r.hosts, c.want, c.agent, c.preset, c.hosts)
		}
	}

	// Without a configuration that loads, the built-in agents still apply.
	r := resolveAgent(&config.Config{Agents: config.BuiltinAgents()}, []string{"codex"})
	if r.preset == nil || strings.Join(r.argv, " ") != installed("codex") || !slices.Contains(r.hosts, "api.openai.com") {
		t.Errorf("built-ins only: %+v", r)
	}
}
