package editors

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/internal/presets"
)

// Entry is one agent server as an editor sees it: the name it shows and the
// command line it spawns.
type Entry struct {
	Name    string   `json:"name"`
	Command string   `json:"command"`
	Args    []string `json:"args"`
}

// CommandLine is the entry's command and args as one line, for messages.
func (e Entry) CommandLine() string {
	return strings.Join(append([]string{e.Command}, e.Args...), " ")
}

// Preset is an agent acp-sandbox knows by name: `acp-sandbox -- claude`
// expands to its ACP adapter inside the VM.
type Preset struct {
	Name  string // claude
	Title string // Claude Code
	// codeCompanion is the CodeCompanion ACP adapter whose handlers (auth
	// method, message building) suit this agent.
	codeCompanion string
}

// codeCompanion is the CodeCompanion adapter of each preset: what editors
// add to internal/presets (names and titles).
var codeCompanion = map[string]string{"claude": "claude_code", "codex": "codex", "gemini": "gemini_cli"}

var known = func() []Preset {
	var out []Preset
	for _, p := range presets.All() {
		out = append(out, Preset{Name: p.Name, Title: p.Title, codeCompanion: codeCompanion[p.Name]})
	}
	return out
}()

// Presets lists the agents known by name.
func Presets() []Preset { return slices.Clone(known) }

// PresetNames are the presets' names, for flag help.
func PresetNames() []string { return presets.Names() }

func presetNamed(name string) (Preset, bool) {
	for _, p := range known {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// presetOf is the preset an entry runs, if its args are exactly "-- NAME".
func presetOf(e Entry) (Preset, bool) {
	if len(e.Args) == 2 && e.Args[0] == "--" {
		return presetNamed(e.Args[1])
	}
	return Preset{}, false
}

// NewEntry is the entry that runs agent (a preset name alone, or a custom
// command and its arguments) through the acp-sandbox binary at exe. An empty
// name means "TITLE (sandboxed)".
func NewEntry(exe string, agent []string, name string) (Entry, error) {
	if !filepath.IsAbs(exe) {
		// Editors start agent servers from wherever they were launched: a
		// relative path would resolve differently, or not at all.
		return Entry{}, fmt.Errorf("editors: the acp-sandbox command must be an absolute path, not %q", exe)
	}
	if len(agent) == 0 || agent[0] == "" {
		return Entry{}, errors.New("editors: no agent: name a preset or give a command")
	}
	if name == "" {
		title := filepath.Base(agent[0])
		if p, ok := presetNamed(agent[0]); ok && len(agent) == 1 {
			title = p.Title
		}
		name = title + " (sandboxed)"
	}
	if strings.TrimSpace(name) != name || strings.ContainsAny(name, "\n\r\t") {
		return Entry{}, fmt.Errorf("editors: entry name %q: no leading or trailing spaces, tabs or newlines", name)
	}
	return Entry{Name: name, Command: exe, Args: append([]string{"--"}, agent...)}, nil
}

// Executable is the acp-sandbox binary editors should run: this one.
//
// os.Executable is resolved (on Linux it already is), but when the same file
// is also reachable through PATH by a stable name — /usr/local/bin/acp-sandbox
// linking into a versioned Homebrew Cellar or Nix store path — that name is
// better: it survives upgrades, the resolved path does not. The second result
// is a warning for the user, or "".
func Executable() (string, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("editors: cannot find the acp-sandbox binary: %w; pass --command PATH", err)
	}
	real, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return "", "", fmt.Errorf("editors: cannot resolve %s: %w; pass --command PATH", exe, err)
	}
	if onPath, err := exec.LookPath("acp-sandbox"); err == nil {
		if abs, err := filepath.Abs(onPath); err == nil {
			if r, err := filepath.EvalSymlinks(abs); err == nil && r == real {
				return abs, temporaryWarning(abs), nil
			}
		}
	}
	return real, temporaryWarning(real), nil
}

// temporaryWarning warns when the binary lives somewhere that will vanish,
// such as a `go run` build directory: the editor would point at nothing.
func temporaryWarning(exe string) string {
	temporary := strings.Contains(exe, string(filepath.Separator)+"go-build")
	for _, dir := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if strings.HasPrefix(exe, filepath.Clean(dir)+string(filepath.Separator)) {
			temporary = true
		}
	}
	if temporary {
		return fmt.Sprintf("%s is in a temporary directory (a go run or test build?) and may vanish, leaving the editor nothing to start; install acp-sandbox (go install ./cmd/acp-sandbox) or pass --command PATH", exe)
	}
	return ""
}

// isOurs reports whether an entry runs acp-sandbox. We go by the binary's
// name, not the entry's name: users rename entries, and `list` should still
// find them and check that the binary they point at still exists.
func isOurs(command string) bool {
	return command != "" && filepath.Base(command) == "acp-sandbox"
}
