// Package editors puts acp-sandbox into editors' ACP client settings.
//
// Zed, JetBrains AI Assistant and VS Code (through the ACP Client extension)
// keep their agent servers in JSON files: we merge one entry into the file in
// place, keeping the user's comments, trailing commas, formatting and every
// other entry (see Plan and Change). Neovim (CodeCompanion) and Emacs
// (agent-shell) configure agents in code that we will not edit: for them we
// render the snippet and name the file it belongs in (see Snippet).
//
// Where each format is documented is noted next to the editor below; the
// README section in this directory shows what gets written.
package editors

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Env is the part of the process environment that decides where editors keep
// their settings. DefaultEnv reads the real one; tests build their own.
type Env struct {
	Home       string // $HOME
	ConfigHome string // $XDG_CONFIG_HOME; empty or relative means Home/.config
	GOOS       string // runtime.GOOS
}

// DefaultEnv is the environment of this process.
func DefaultEnv() (Env, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return Env{}, fmt.Errorf("editors: cannot find your home directory: %w", err)
	}
	return Env{Home: home, ConfigHome: os.Getenv("XDG_CONFIG_HOME"), GOOS: runtime.GOOS}, nil
}

// configHome is $XDG_CONFIG_HOME, or ~/.config when it is unset or relative
// (the XDG spec says a relative value is invalid and must be ignored).
func (env Env) configHome() string {
	if filepath.IsAbs(env.ConfigHome) {
		return env.ConfigHome
	}
	return filepath.Join(env.Home, ".config")
}

// Short shows p relative to the home directory as ~/…, for messages.
func (env Env) Short(p string) string {
	if env.Home == "" || env.Home == "/" {
		return p
	}
	if p == env.Home {
		return "~"
	}
	if rest, ok := strings.CutPrefix(p, env.Home+string(filepath.Separator)); ok {
		return "~/" + rest
	}
	return p
}

// Editor is one editor we know how to configure.
type Editor struct {
	ID    string // the command-line name: zed, vscode, jetbrains, neovim, emacs
	Title string // "Zed"
	// Client names the editor's ACP client when it is not built in.
	Client string
	// Docs is where the format we write is documented.
	Docs string

	path    func(Env) string
	json    *jsonFormat        // nil: configured in code; we print a snippet
	snippet func(Entry) string // for editors configured in code
	next    func(e Entry) string
}

// jsonFormat is where agent servers live in an editor's JSON settings and
// which fields an entry has besides command and args.
type jsonFormat struct {
	// container is the chain of object keys from the top level to the object
	// that maps agent names to agent servers.
	container []string
	// lead are fields written before command and args.
	lead []field
}

// Managed reports whether install edits the editor's settings file (true) or
// prints a snippet for the user to paste (false).
func (ed *Editor) Managed() bool { return ed.json != nil }

// ConfigPath is the editor's user settings file (for Neovim and Emacs: the
// init file the snippet belongs in).
func (ed *Editor) ConfigPath(env Env) string { return ed.path(env) }

// NextSteps tells the user how to pick the entry in the editor.
func (ed *Editor) NextSteps(e Entry) string { return ed.next(e) }

var (
	// Zed's settings.json: "agent_servers" maps a display name to
	// {"type": "custom", "command", "args", "env"}; "registry" is the other
	// type (agents from the ACP registry). Schema: zed-industries/zed
	// crates/settings_content/src/agent.rs (CustomAgentServerSettings, tagged
	// by "type"); docs: https://zed.dev/docs/ai/external-agents ("Add More
	// Agents"). The file is JSON with comments and trailing commas.
	// Location: crates/paths/src/paths.rs config_dir(): $XDG_CONFIG_HOME/zed
	// on Linux, ~/.config/zed on macOS.
	zed = &Editor{
		ID:    "zed",
		Title: "Zed",
		Docs:  "https://zed.dev/docs/ai/external-agents",
		path: func(env Env) string {
			if env.GOOS == "linux" {
				return filepath.Join(env.configHome(), "zed", "settings.json")
			}
			return filepath.Join(env.Home, ".config", "zed", "settings.json")
		},
		json: &jsonFormat{
			container: []string{"agent_servers"},
			lead:      []field{{"type", "custom"}},
		},
		next: func(e Entry) string {
			return fmt.Sprintf("Zed reloads settings.json by itself: open the Agent Panel (ctrl-? on Linux, cmd-? on macOS), click + and pick %q.", e.Name)
		},
	}

	// JetBrains AI Assistant (2025.2+): ~/.jetbrains/acp.json on every OS,
	// {"agent_servers": {"Name": {"command", "args", "env"}}}; the key is the
	// name shown in AI Chat. Docs:
	// https://www.jetbrains.com/help/ai-assistant/acp.html
	jetbrains = &Editor{
		ID:    "jetbrains",
		Title: "JetBrains IDEs (AI Assistant)",
		Docs:  "https://www.jetbrains.com/help/ai-assistant/acp.html",
		path: func(env Env) string {
			return filepath.Join(env.Home, ".jetbrains", "acp.json")
		},
		json: &jsonFormat{container: []string{"agent_servers"}},
		next: func(e Entry) string {
			return fmt.Sprintf("Reopen the AI Chat tool window (or restart the IDE) and pick %q in its agent selector.", e.Name)
		},
	}

	// VS Code has no ACP client of its own. We configure "ACP Client"
	// (formulahendry.acp-client): the ACP client the ACP project lists for VS
	// Code (https://zed.dev/acp/editor/vscode), and the one DESIGN.md names.
	// Its setting "acp.agents" maps a name to {"command", "args", "env"}
	// (formulahendry/vscode-acp package.json and src/config/AgentConfig.ts).
	// VS Code merges object-valued settings with their defaults
	// (microsoft/vscode#212220), so adding "acp.agents" keeps the
	// extension's built-in agents. Others exist (strato-space.acp-plugin reads
	// "acp.agentServers"; fewer installs) and --config can point at any file.
	// User settings: ~/.config/Code/User/settings.json on Linux (Electron's
	// appData honours $XDG_CONFIG_HOME), ~/Library/Application
	// Support/Code/User/settings.json on macOS; JSON with comments.
	vscode = &Editor{
		ID:     "vscode",
		Title:  "VS Code",
		Client: "ACP Client extension (formulahendry.acp-client)",
		Docs:   "https://github.com/formulahendry/vscode-acp#extension-settings",
		path: func(env Env) string {
			if env.GOOS == "darwin" {
				return filepath.Join(env.Home, "Library", "Application Support", "Code", "User", "settings.json")
			}
			return filepath.Join(env.configHome(), "Code", "User", "settings.json")
		},
		json: &jsonFormat{container: []string{"acp.agents"}},
		next: func(e Entry) string {
			return fmt.Sprintf("Install the ACP Client extension if you have not (code --install-extension formulahendry.acp-client), open ACP Client in the Activity Bar and click %q.", e.Name)
		},
	}

	// Neovim: CodeCompanion's ACP adapters, extended with a new command
	// (https://codecompanion.olimorris.dev/configuration/adapters-acp;
	// lua/codecompanion/adapters/acp/*.lua). stdpath("config") is
	// $XDG_CONFIG_HOME/nvim on Linux and macOS alike.
	neovim = &Editor{
		ID:     "neovim",
		Title:  "Neovim",
		Client: "CodeCompanion (olimorris/codecompanion.nvim)",
		Docs:   "https://codecompanion.olimorris.dev/configuration/adapters-acp",
		path: func(env Env) string {
			dir := filepath.Join(env.configHome(), "nvim")
			if exists(filepath.Join(dir, "init.vim")) && !exists(filepath.Join(dir, "init.lua")) {
				return filepath.Join(dir, "init.vim")
			}
			return filepath.Join(dir, "init.lua")
		},
		snippet: luaSnippet,
		next: func(e Entry) string {
			return fmt.Sprintf("Restart Neovim and run :CodeCompanionChat adapter=%s (or pick %q with ga in a chat buffer).", snippetID(e, "_"), e.Name)
		},
	}

	// Emacs: agent-shell (xenodium/agent-shell) lists agents in
	// agent-shell-agent-configs, built with agent-shell-make-agent-config
	// (agent-shell.el; README "Customizing Available Agents").
	emacs = &Editor{
		ID:      "emacs",
		Title:   "Emacs",
		Client:  "agent-shell (xenodium/agent-shell)",
		Docs:    "https://github.com/xenodium/agent-shell#customizing-available-agents",
		path:    emacsInit,
		snippet: elispSnippet,
		next: func(e Entry) string {
			return fmt.Sprintf("Evaluate it (or restart Emacs), then M-x agent-shell and pick %q.", e.Name)
		},
	}

	all = []*Editor{zed, vscode, jetbrains, neovim, emacs}
)

// All lists the editors in the order `editors list` shows them.
func All() []*Editor { return all }

// IDs are the editors' command-line names.
func IDs() []string {
	ids := make([]string, len(all))
	for i, ed := range all {
		ids[i] = ed.ID
	}
	return ids
}

// Lookup finds an editor by its command-line name.
func Lookup(id string) (*Editor, error) {
	for _, ed := range all {
		if ed.ID == id {
			return ed, nil
		}
	}
	switch strings.ToLower(id) {
	case "code", "vs-code", "vs code":
		return vscode, nil
	case "nvim", "vim":
		return neovim, nil
	case "intellij", "idea", "pycharm", "goland", "webstorm", "clion", "rider", "rubymine", "phpstorm":
		return jetbrains, nil
	}
	return nil, fmt.Errorf("unknown editor %q: want one of %s", id, strings.Join(IDs(), ", "))
}

// emacsInit is the init file Emacs would load: ~/.emacs, ~/.emacs.el,
// ~/.emacs.d/init.el, then $XDG_CONFIG_HOME/emacs/init.el (Emacs 27+), the
// first that exists; Doom users keep theirs in doom's config.el.
func emacsInit(env Env) string {
	for _, p := range []string{
		filepath.Join(env.Home, ".doom.d", "config.el"),
		filepath.Join(env.configHome(), "doom", "config.el"),
		filepath.Join(env.Home, ".emacs"),
		filepath.Join(env.Home, ".emacs.el"),
		filepath.Join(env.Home, ".emacs.d", "init.el"),
		filepath.Join(env.configHome(), "emacs", "init.el"),
	} {
		if exists(p) {
			return p
		}
	}
	return filepath.Join(env.Home, ".emacs.d", "init.el")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
