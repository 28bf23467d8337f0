package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/editors"
	"github.com/spf13/cobra"
)

func newEditorsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "editors",
		Short: "Set up editors to run their agents through acp-sandbox",
		Long: `Editors start ACP agents as programs: "acp-sandbox -- claude" is such a
program, and runs Claude Code inside the workspace's VM. These commands write
that into your editor's settings, so you do not have to.

  install   add (or update) an agent entry in an editor's settings
  list      show the acp-sandbox entries every editor has

Zed, VS Code (ACP Client extension) and JetBrains IDEs (AI Assistant) keep
agents in JSON settings files: install merges one entry into the file,
keeping your comments, formatting and every other entry, and backs the old
file up first. Neovim (CodeCompanion) and Emacs (agent-shell) configure
agents in code: install prints the snippet and the file it belongs in.`,
		Example: `  acp-sandbox editors install zed                  Claude Code in Zed
  acp-sandbox editors install vscode --agent codex
  acp-sandbox editors install zed --dry-run        show the diff, write nothing
  acp-sandbox editors list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEditorsInstallCmd(), newEditorsListCmd())
	return cmd
}

type installOpts struct {
	agent   string
	name    string
	dryRun  bool
	config  string
	command string
}

func newEditorsInstallCmd() *cobra.Command {
	var o installOpts
	cmd := &cobra.Command{
		Use:   "install EDITOR [--agent claude|codex|gemini] [--name NAME] [--dry-run] [-- CMD ARGS...]",
		Short: "Add an agent that runs in acp-sandbox to an editor's settings",
		Long: `Install adds an agent server entry to EDITOR's settings. The entry runs this
acp-sandbox binary (by its absolute path) with "-- AGENT": the editor speaks
ACP to acp-sandbox, which runs AGENT in the VM of the project you open.

EDITOR is one of ` + strings.Join(editors.IDs(), ", ") + `.

AGENT is a preset (--agent ` + strings.Join(editors.PresetNames(), ", ") + `; claude by default), or any
other ACP agent's command line given after --. The entry is called
"Claude Code (sandboxed)", "Codex (sandboxed)", … unless you choose --name.

Settings files (zed, vscode, jetbrains) are merged, never replaced:
  - an entry with that name and the same command already there: nothing to do;
  - an entry with that name but another command: its command and args are
    updated (the diff is shown), anything else you put in it stays;
  - otherwise the entry is added; other entries, comments and trailing
    commas stay as they are.
The old file is kept as FILE.bak-acp-sandbox-DATE-TIME, the new one is
written atomically, with the old file's permissions. A file that does not
parse is left alone: the error names the line and column to fix. --dry-run
prints the diff and writes nothing.

Neovim and Emacs are configured in code, which acp-sandbox does not edit:
install prints the snippet (on stdout; explanations go to stderr) and the
file it belongs in.

Settings files by editor (Linux; macOS differs for VS Code):
  zed        $XDG_CONFIG_HOME/zed/settings.json   "agent_servers"
  vscode     $XDG_CONFIG_HOME/Code/User/settings.json   "acp.agents"
             (read by the ACP Client extension, formulahendry.acp-client)
  jetbrains  ~/.jetbrains/acp.json   "agent_servers"
  neovim     $XDG_CONFIG_HOME/nvim/init.lua   (CodeCompanion adapter)
  emacs      ~/.emacs.d/init.el or the init file you have   (agent-shell)
--config FILE picks another file: VSCodium, Code - Insiders, a Flatpak Zed.`,
		Example: `  # Claude Code in Zed; then pick "Claude Code (sandboxed)" in the Agent Panel
  acp-sandbox editors install zed

  # See what would change first
  acp-sandbox editors install zed --agent codex --dry-run

  # Any ACP agent: its command line after --
  acp-sandbox editors install jetbrains --name "OpenCode (sandboxed)" -- opencode acp

  # VSCodium keeps its settings elsewhere
  acp-sandbox editors install vscode --config ~/.config/VSCodium/User/settings.json

  # Emacs: append the printed snippet to your init file
  acp-sandbox editors install emacs >> ~/.emacs.d/init.el`,
		Args: func(cmd *cobra.Command, args []string) error {
			editorArgs := args
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				editorArgs = args[:dash]
			}
			switch len(editorArgs) {
			case 0:
				return fmt.Errorf("name the editor: acp-sandbox editors install %s", strings.Join(editors.IDs(), "|"))
			case 1:
				return nil
			}
			return fmt.Errorf("one editor at a time (got %s); an agent's command line goes after --", strings.Join(editorArgs, " "))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstall(cmd, args, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.agent, "agent", "claude", "agent preset: "+strings.Join(editors.PresetNames(), ", ")+" (another agent: give its command after --)")
	f.StringVar(&o.name, "name", "", `name the editor shows for the entry (default "TITLE (sandboxed)")`)
	f.BoolVar(&o.dryRun, "dry-run", false, "print the diff of what would change; write nothing")
	f.StringVar(&o.config, "config", "", "settings file to change instead of the editor's usual one")
	f.StringVar(&o.command, "command", "", "absolute path of the acp-sandbox binary the editor should run (default: this one)")
	return cmd
}

func runInstall(cmd *cobra.Command, args []string, o installOpts) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ed, err := editors.Lookup(args[0])
	if err != nil {
		return err
	}
	agent, err := agentArgv(cmd, args, o.agent)
	if err != nil {
		return err
	}
	exe, err := commandPath(o.command, stderr)
	if err != nil {
		return err
	}
	entry, err := editors.NewEntry(exe, agent, o.name)
	if err != nil {
		return err
	}
	env, err := editors.DefaultEnv()
	if err != nil {
		return err
	}
	config := o.config
	if config != "" {
		if config, err = filepath.Abs(config); err != nil {
			return err
		}
	}

	if !ed.Managed() {
		return printSnippet(stdout, stderr, env, ed, config, entry)
	}

	c, err := editors.Plan(env, ed, config, entry)
	if err != nil {
		return err
	}
	if c.Action == editors.Unchanged {
		fmt.Fprintf(stdout, "%s already has %q running %s; nothing to do.\n", c.Shown, entry.Name, entry.CommandLine())
		fmt.Fprintf(stdout, "Next: %s\n", ed.NextSteps(entry))
		return nil
	}
	if o.dryRun {
		fmt.Fprint(stdout, c.Diff())
		what := "add %q to %s"
		if c.Action == editors.Updated {
			what = "update %q in %s"
		}
		fmt.Fprintf(stdout, "Dry run, nothing written: without --dry-run this would "+what, entry.Name, c.Shown)
		if c.Exists {
			fmt.Fprint(stdout, " (after backing it up)")
		}
		fmt.Fprintln(stdout, ".")
		return nil
	}
	if c.Action == editors.Updated {
		// An entry of that name ran something else: show what we changed.
		fmt.Fprint(stdout, c.Diff())
	}
	backup, err := c.Apply(time.Now())
	if err != nil {
		return err
	}
	if c.Action == editors.Updated {
		fmt.Fprintf(stdout, "Updated %q in %s", entry.Name, c.Shown)
	} else {
		fmt.Fprintf(stdout, "Added %q to %s", entry.Name, c.Shown)
	}
	if !c.Exists {
		fmt.Fprint(stdout, " (new file)")
	}
	fmt.Fprintf(stdout, "\n  runs:   %s\n", entry.CommandLine())
	if backup != "" {
		fmt.Fprintf(stdout, "  backup: %s\n", env.Short(backup))
	}
	fmt.Fprintf(stdout, "Next: %s\n", ed.NextSteps(entry))
	return nil
}

// agentArgv is what the entry runs after "--": the preset named by --agent,
// or the command line after our own "--".
func agentArgv(cmd *cobra.Command, args []string, preset string) ([]string, error) {
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		custom := args[dash:]
		if len(custom) == 0 {
			return nil, errors.New("nothing after --: give the agent's command line, e.g. -- opencode acp")
		}
		if cmd.Flags().Changed("agent") {
			return nil, fmt.Errorf("--agent %s and a command after --: give one or the other", preset)
		}
		return custom, nil
	}
	if !slices.Contains(editors.PresetNames(), preset) {
		return nil, fmt.Errorf("--agent %q is not a preset (%s); for another agent give its command line after --, e.g.\n  acp-sandbox editors install %s -- %s", preset, strings.Join(editors.PresetNames(), ", "), args[0], shellQuote(preset))
	}
	return []string{preset}, nil
}

// commandPath is the acp-sandbox binary the entry runs: --command, or this
// binary. Warnings (a binary that will vanish, or is not there) go to w.
func commandPath(flag string, w io.Writer) (string, error) {
	if flag == "" {
		exe, warning, err := editors.Executable()
		if err != nil {
			return "", err
		}
		if warning != "" {
			fmt.Fprintf(w, "acp-sandbox: warning: %s\n", warning)
		}
		return exe, nil
	}
	if !filepath.IsAbs(flag) {
		return "", fmt.Errorf("--command %s: want an absolute path (editors start agents from anywhere)", flag)
	}
	if _, err := os.Stat(flag); err != nil {
		fmt.Fprintf(w, "acp-sandbox: warning: --command %s: %v; the editor will fail to start the agent until it exists\n", flag, errors.Unwrap(err))
	}
	return filepath.Clean(flag), nil
}

func printSnippet(stdout, stderr io.Writer, env editors.Env, ed *editors.Editor, config string, e editors.Entry) error {
	s, err := ed.Snippet(env, config, e)
	if err != nil {
		return err
	}
	path := config
	if path == "" {
		path = ed.ConfigPath(env)
	}
	// Look before printing: with `>> init.el` our own output lands in the
	// file we are about to read.
	l := editors.List(env, ed, path)
	already := slices.ContainsFunc(l.Entries, func(f editors.Found) bool { return f.Name == e.Name && f.Command == e.Command })
	fmt.Fprintf(stderr, "%s configures agents in code, which acp-sandbox does not edit.\n", ed.Title)
	fmt.Fprintf(stderr, "Add this to %s; it needs %s, see %s\n\n", env.Short(path), ed.Client, ed.Docs)
	fmt.Fprint(stdout, s)
	fmt.Fprintln(stderr)
	if already {
		fmt.Fprintf(stderr, "(%s already has %q with this command.)\n", env.Short(path), e.Name)
	}
	fmt.Fprintf(stderr, "Next: %s\n", ed.NextSteps(e))
	return nil
}

func newEditorsListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show which editors run agents through acp-sandbox",
		Long: `List reads every supported editor's settings (it writes nothing) and shows
the entries that run acp-sandbox: their name and command line. It warns when
an entry's acp-sandbox binary no longer exists (moved, uninstalled, or a
"go run" build) and prints the command that fixes it.

Entries are recognised by their command (a binary called acp-sandbox), so
renamed entries are found too. For Neovim and Emacs it looks for quoted
paths to acp-sandbox in the init file.`,
		Example: `  acp-sandbox editors list
  acp-sandbox editors list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := editors.DefaultEnv()
			if err != nil {
				return err
			}
			var ls []editors.Listing
			failed := 0
			for _, ed := range editors.All() {
				l := editors.List(env, ed, "")
				if l.Err != nil {
					failed++
				}
				ls = append(ls, l)
			}
			if asJSON {
				err = printListJSON(cmd.OutOrStdout(), ls)
			} else {
				printList(cmd.OutOrStdout(), env, ls)
			}
			if err == nil && failed > 0 {
				return &exitError{code: 1}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printList(w io.Writer, env editors.Env, ls []editors.Listing) {
	for _, l := range ls {
		ed := l.Editor
		fmt.Fprintf(w, "%s: %s", ed.ID, env.Short(l.Path))
		switch {
		case l.Err != nil:
			fmt.Fprintf(w, "\n  error: %v\n", l.Err)
			continue
		case !l.Exists:
			fmt.Fprintln(w, " (no file)")
			continue
		case len(l.Entries) == 0:
			fmt.Fprint(w, ": no acp-sandbox entries")
			if l.Others > 0 {
				fmt.Fprintf(w, " (%s)", plural(l.Others, "other agent server"))
			}
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintln(w)
		for _, f := range l.Entries {
			fmt.Fprintf(w, "  %q: %s\n", f.Name, f.CommandLine())
			if f.Missing {
				fmt.Fprintf(w, "    warning: %s does not exist; the editor cannot start this agent. Fix: %s\n", f.Command, reinstallCommand(ed, f.Entry))
			}
		}
		if l.Others > 0 {
			fmt.Fprintf(w, "  and %s\n", plural(l.Others, "other agent server"))
		}
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// reinstallCommand is the install command that points entry e back at this
// binary, under the same name and with the same agent.
func reinstallCommand(ed *editors.Editor, e editors.Entry) string {
	parts := []string{"acp-sandbox editors install", ed.ID}
	agent := e.Args
	if len(agent) > 0 && agent[0] == "--" {
		agent = agent[1:]
	}
	if def, err := editors.NewEntry(e.Command, agent, ""); err != nil || def.Name != e.Name {
		parts = append(parts, "--name", shellQuote(e.Name))
	}
	switch {
	case len(agent) == 1 && slices.Contains(editors.PresetNames(), agent[0]):
		parts = append(parts, "--agent", agent[0])
	case len(agent) > 0:
		parts = append(parts, "--")
		for _, a := range agent {
			parts = append(parts, shellQuote(a))
		}
	default:
		// Neovim or Emacs: we know the binary, not the agent.
		return strings.Join(parts, " ") + " [--agent AGENT | -- CMD ARGS...], then replace the old snippet with the new one"
	}
	return strings.Join(parts, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type listJSON struct {
	Editor string `json:"editor"`
	Title  string `json:"title"`
	editors.Listing
	Error string `json:"error,omitempty"`
}

func printListJSON(w io.Writer, ls []editors.Listing) error {
	out := make([]listJSON, len(ls))
	for i, l := range ls {
		out[i] = listJSON{Editor: l.Editor.ID, Title: l.Editor.Title, Listing: l}
		if l.Err != nil {
			out[i].Error = l.Err.Error()
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
