// Package presets installs the agents acp-sandbox knows by a short name:
// `acp-sandbox -- claude` runs Claude Code's ACP adapter, installed with
// npm inside the sandbox's persistent home on first use.
//
// A preset is the install half of an agent: which npm package, at which
// pinned version, and where it goes. The policy half — the command the
// package installs, the agent's login hosts, its model API and key — is
// config's built-in [agents.NAME] of the same name (config.BuiltinAgents),
// and nothing here repeats it. Everything else (whether a file's
// [agents.NAME] command replaces the preset, installing, the network rules
// during the install) is the CLI's, which composes this with the sandbox.
package presets

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/config"
)

// Preset is one known agent.
type Preset struct {
	Name    string // what follows `--`: "claude"
	Title   string // for people: "Claude Code"
	Package string // npm package
	Version string // pinned: a tested version, so every sandbox runs the same adapter
	// Bin and Args are config's built-in command for Name: the command the
	// package installs, and the arguments it runs with.
	Bin  string
	Args []string
}

// Registry is what an install needs reachable, for the install only.
var Registry = []string{"registry.npmjs.org"}

var all = withCommands([]Preset{
	{Name: "claude", Title: "Claude Code", Package: "@zed-industries/claude-agent-acp", Version: "0.23.1"},
	{Name: "codex", Title: "Codex", Package: "@zed-industries/codex-acp", Version: "0.16.0"},
	{Name: "gemini", Title: "Gemini CLI", Package: "@google/gemini-cli", Version: "0.61.0"},
})

// withCommands fills in each preset's Bin and Args from config's built-in
// agent of the same name. A preset config does not know is a mistake in
// this table: there would be nothing to say what it runs and may reach.
func withCommands(ps []Preset) []Preset {
	builtin := config.BuiltinAgents()
	for i, p := range ps {
		cmd := builtin[p.Name].Command
		if len(cmd) == 0 {
			panic("presets: config has no built-in [agents." + p.Name + "] command")
		}
		ps[i].Bin, ps[i].Args = cmd[0], cmd[1:]
	}
	return ps
}

// All returns the presets, in a stable order.
func All() []Preset { return slices.Clone(all) }

// Names lists the preset names.
func Names() []string {
	var n []string
	for _, p := range all {
		n = append(n, p.Name)
	}
	return n
}

// Lookup finds a preset by name.
func Lookup(name string) (Preset, bool) {
	for _, p := range all {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// Spec is the npm install spec: "@scope/pkg@1.2.3".
func (p Preset) Spec() string { return p.Package + "@" + p.Version }

// Dir is where the preset lives under the sandbox user's home: one
// directory per version, so an upgrade installs beside the old one and a
// half-finished install is never taken for a finished one (the installer
// renames into place).
func (p Preset) Dir(home string) string {
	return path.Join(home, ".acp-sandbox", "agents", p.Name+"-"+p.Version)
}

// Command is the installed command line.
func (p Preset) Command(home string) string {
	return path.Join(p.Dir(home), "node_modules", ".bin", p.Bin)
}

// Argv is the agent's argument vector in the VM, extra arguments after the
// preset's own.
func (p Preset) Argv(home string, extra []string) []string {
	return append(append([]string{p.Command(home)}, p.Args...), extra...)
}

// InstallScript installs the preset with npm into Dir, atomically: into a
// temporary sibling, renamed into place when complete. It prints npm's
// errors on stderr and exits non-zero on failure. spec overrides Spec
// (tests install from a local tarball).
func (p Preset) InstallScript(home, spec string) string {
	if spec == "" {
		spec = p.Spec()
	}
	dir := p.Dir(home)
	return fmt.Sprintf(`set -e
command -v npm >/dev/null 2>&1 || { echo "npm not found in the VM: the VM uses the host's /usr; install it there (apt-get install nodejs npm)" >&2; exit 127; }
mkdir -p %[1]s
# One install at a time per sandbox; a second launcher finds it done.
if command -v flock >/dev/null 2>&1; then exec 9>%[1]s/.install.lock; flock 9; fi
test -x %[2]s/node_modules/.bin/%[4]s && exit 0
tmp=$(mktemp -d %[2]s.tmp-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-audit --no-fund --no-update-notifier --loglevel=error %[3]s >&2
test -x "$tmp/node_modules/.bin/%[4]s" || { echo "the package did not install %[4]s" >&2; exit 1; }
rm -rf %[2]s
mv "$tmp" %[2]s
trap - EXIT
`, shellQuote(path.Dir(dir)), shellQuote(dir), shellQuote(spec), p.Bin)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
