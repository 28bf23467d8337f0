package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/spf13/cobra"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Write, check, show and approve the workspace's sandbox.toml",
		Long: `A workspace's sandbox.toml says what its sandbox may do: VM size, extra
mounts, which hosts the agent may reach, credentials the host adds to
requests, environment. It is laid over built-in defaults and your own
$XDG_CONFIG_HOME/acp-sandbox/config.toml (~/.config/acp-sandbox/config.toml).

The agent can write the workspace, so sandbox.toml applies only as you last
approved it: a change waits for ` + "`acp-sandbox policy approve`" + ` (or your answer in
the editor), and until then the approved version holds. The approval lives
in acp-sandbox's state directory, out of the agent's reach.`,
		Example: `  acp-sandbox policy init --preset balanced   write a starter sandbox.toml
  $EDITOR sandbox.toml
  acp-sandbox policy check                    find mistakes, with FILE:LINE:COL
  acp-sandbox policy approve                  review the diff and apply it
  acp-sandbox policy show                     the effective policy, value by value, with origins`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPolicyInitCmd(g), newPolicyCheckCmd(g), newPolicyShowCmd(g), newPolicyApproveCmd(g))
	return cmd
}

// policyEnv is what every policy command needs: the workspace's sandbox
// and where the layers are.
func (g *globals) policyEnv() (*sandbox.Sandbox, config.LoadOptions, error) {
	sb, err := g.workspaceSandbox()
	if err != nil {
		return nil, config.LoadOptions{}, err
	}
	opts := config.LoadOptions{Workspace: sb.Workspace, StateDir: sb.StateDir}
	if opts.UserConfigDir, err = config.DefaultUserConfigDir(); err != nil {
		return nil, opts, err
	}
	opts.Home, _ = os.UserHomeDir()
	return sb, opts, nil
}

func newPolicyInitCmd(g *globals) *cobra.Command {
	var (
		preset string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starter sandbox.toml in the workspace and approve it",
		Long: `init writes a starter sandbox.toml at the workspace's root: the network
preset set, every other key shown commented out with its default. You
wrote it from your terminal, so it is approved at once; later edits need
` + "`acp-sandbox policy approve`" + `.

Presets:
  locked    model APIs only (the default when no file says otherwise)
  balanced  locked + git hosts and package registries (npm, PyPI, Go, crates.io, …)
  open      any public host; private and loopback addresses stay closed`,
		Example: `  acp-sandbox policy init
  acp-sandbox policy init --preset balanced
  acp-sandbox policy init --preset open --force   replace an existing sandbox.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			content, err := config.Starter(preset)
			if err != nil {
				return fmt.Errorf("--preset: %w", err)
			}
			sb, _, err := g.policyEnv()
			if err != nil {
				return err
			}
			file := config.WorkspaceFile(sb.Workspace)
			if err := writeNewFile(file, content, force); err != nil {
				return err
			}
			if err := sb.Prepare(); err != nil {
				return err
			}
			if err := config.OpenApprovals(sb.StateDir).Approve(content); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (preset %s) and approved it\nedit it, then run `acp-sandbox policy approve` to apply your changes\n", file, preset)
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", config.DefaultPreset, "network preset: locked, balanced or open")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing sandbox.toml")
	return cmd
}

// writeNewFile creates file with content. An existing file is an error
// unless force; then it is removed first, so that a symlink the agent
// planted is replaced, not followed to a host file.
func writeNewFile(file string, content []byte, force bool) error {
	if _, err := os.Lstat(file); err == nil {
		if !force {
			return fmt.Errorf("%s already exists; check it with `acp-sandbox policy check`, or pass --force to replace it with a starter file", file)
		}
		if err := os.Remove(file); err != nil {
			return fmt.Errorf("cannot replace %s: %w", file, err)
		}
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", file, err)
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", file, err)
	}
	return f.Close()
}

func newPolicyCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a sandbox.toml (default: the workspace's) and print every problem",
		Long: `check reads FILE (default: the workspace's sandbox.toml) and prints every
problem as FILE:LINE:COL: message, with a suggestion for a misspelt key.
It exits 1 when there is any. FILE may also be your config.toml, which is
checked as your own file (it may use from_command).`,
		Example: `  acp-sandbox policy check
  acp-sandbox policy check ../other-project/sandbox.toml
  acp-sandbox policy check ~/.config/acp-sandbox/config.toml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				file string
				opts config.LoadOptions
				sb   *sandbox.Sandbox
				err  error
			)
			if len(args) == 1 {
				if file, err = filepath.Abs(args[0]); err != nil {
					return err
				}
				// The file's directory is its workspace (for from_file
				// and mount checks), as far as it can be resolved.
				opts.Workspace, _ = filepath.EvalSymlinks(filepath.Dir(file))
				opts.Home, _ = os.UserHomeDir()
			} else {
				if sb, opts, err = g.policyEnv(); err != nil {
					return err
				}
				file = config.WorkspaceFile(sb.Workspace)
				if _, err := os.Lstat(file); errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("no %s in %s; write a starter one with `acp-sandbox policy init`", config.FileName, sb.Workspace)
				}
			}
			if err := config.CheckFile(file, opts); err != nil {
				return reportProblems(cmd.ErrOrStderr(), err, "")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", file)
			if sb != nil {
				st, err := config.OpenApprovals(sb.StateDir).Status(file)
				if err == nil && st.State == config.PolicyPending {
					fmt.Fprintln(cmd.OutOrStdout(), "it differs from the version you approved; run `acp-sandbox policy approve` to apply it")
				}
			}
			return nil
		},
	}
}

// reportProblems prints a config error one problem per line and returns
// the silent exit 1; other errors are returned as they are.
func reportProblems(w io.Writer, err error, hint string) error {
	var probs config.Problems
	if !errors.As(err, &probs) {
		return err
	}
	for _, p := range probs {
		fmt.Fprintln(w, p.Error())
	}
	if hint != "" {
		fmt.Fprintln(w, hint)
	}
	return &exitError{code: 1}
}

// showReport is `policy show --json`.
type showReport struct {
	Workspace  string         `json:"workspace"`
	UserConfig string         `json:"user_config"`
	Policy     policyJSON     `json:"policy"`
	Values     []config.Value `json:"values"`
}

type policyJSON struct {
	State          config.PolicyState `json:"state"`
	File           string             `json:"file"`
	SHA256         string             `json:"sha256,omitempty"`
	ApprovedSHA256 string             `json:"approved_sha256,omitempty"`
	ApprovedAt     *time.Time         `json:"approved_at,omitempty"`
	Diff           string             `json:"diff,omitempty"`
	Problems       []string           `json:"problems,omitempty"`
}

func newPolicyShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the effective policy and where each value came from",
		Long: `show prints the policy the workspace's sandbox runs with, as TOML, each
value followed by its origin: a file position (FILE:LINE:COL), "default",
"preset NAME", "built in" or "approved in editor" (an "allow always"
answer). It also says whether the workspace's sandbox.toml is approved,
or pending (changed since; then the approved version is what is shown).`,
		Example: `  acp-sandbox policy show
  acp-sandbox policy show --json | jq '.values[] | select(.path | startswith("network.allow"))'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, opts, err := g.policyEnv()
			if err != nil {
				return err
			}
			cfg, err := config.Load(opts)
			if err != nil {
				return reportProblems(cmd.ErrOrStderr(), err, "the sandbox will not start with this policy: fix the file named above, then run `acp-sandbox policy check`")
			}
			st := cfg.PolicyStatus
			if asJSON {
				r := showReport{Workspace: sb.Workspace, UserConfig: opts.UserFile(), Values: cfg.Values(), Policy: policyJSON{
					State: st.State, File: st.File, SHA256: st.SHA256, ApprovedSHA256: st.ApprovedSHA256, Diff: st.Diff,
				}}
				if !st.ApprovedAt.IsZero() {
					r.Policy.ApprovedAt = &st.ApprovedAt
				}
				r.Policy.Problems = problemLines(st.Problems)
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# workspace    %s\n", sb.Workspace)
			fmt.Fprintf(w, "# user config  %s%s\n", opts.UserFile(), missing(opts.UserFile()))
			for _, l := range statusLines(st) {
				fmt.Fprintf(w, "# %s\n", l)
			}
			fmt.Fprintln(w)
			fmt.Fprint(w, cfg.Explain())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: the approval state and every value with its path and origin")
	return cmd
}

func missing(file string) string {
	if _, err := os.Stat(file); err != nil {
		return " (none)"
	}
	return ""
}

func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// statusLines words the approval state for `policy show`.
func statusLines(st config.PolicyStatus) []string {
	short := func(h string) string { return h[:min(12, len(h))] }
	head := "sandbox.toml "
	switch st.State {
	case config.PolicyNone:
		return []string{head + "none: defaults and your config apply; `acp-sandbox policy init` writes one"}
	case config.PolicyApproved:
		return []string{fmt.Sprintf("%sapproved (sha256 %s, %s)", head, short(st.SHA256), st.ApprovedAt.Local().Format(time.DateTime))}
	}
	var l []string
	switch {
	case !st.Exists:
		l = append(l, head+"pending: removed since you approved it")
	case st.ApprovedSHA256 == "":
		l = append(l, head+"pending: never approved, so it does not apply yet")
	default:
		l = append(l, fmt.Sprintf("%spending: changed since you approved it (%s)", head, st.ApprovedAt.Local().Format(time.DateTime)))
	}
	if st.ApprovedSHA256 != "" {
		l = append(l, fmt.Sprintf("             the approved version (sha256 %s) applies and is shown below", short(st.ApprovedSHA256)))
	} else {
		l = append(l, "             defaults and your config apply, as shown below")
	}
	if st.Problems != nil {
		l = append(l, "             it cannot be approved as it is:")
		for _, p := range problemLines(st.Problems) {
			l = append(l, "               "+p)
		}
	} else {
		l = append(l, "             review and apply it with `acp-sandbox policy approve`")
	}
	return l
}

func newPolicyApproveCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "approve",
		Short: "Show the changes to the workspace's sandbox.toml and apply them",
		Long: `approve prints what changed in the workspace's sandbox.toml since you last
approved it, as a diff, and asks whether to apply it. Read it before you
answer: the agent can edit the file, and approving is what gives a change
effect. A file with problems cannot be approved; fix it first.

Without a terminal to ask on, approve refuses unless --yes is given.`,
		Example: `  acp-sandbox policy approve
  acp-sandbox policy approve --yes    approve without asking (scripts, after review)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, opts, err := g.policyEnv()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			ap := config.OpenApprovals(sb.StateDir)
			file := config.WorkspaceFile(sb.Workspace)
			st, err := ap.Status(file)
			if err != nil {
				return err
			}
			switch st.State {
			case config.PolicyNone:
				fmt.Fprintf(out, "nothing to approve: there is no %s; write one with `acp-sandbox policy init`\n", file)
				return nil
			case config.PolicyApproved:
				fmt.Fprintf(out, "nothing to approve: %s is as you approved it\n", file)
				return nil
			}
			if st.Exists {
				if err := config.Check(file, st.Content(), opts); err != nil {
					return reportProblems(cmd.ErrOrStderr(), err, "fix these, then run `acp-sandbox policy approve` again")
				}
			}
			fmt.Fprint(out, st.Diff)
			if !yes {
				in, isTTY := cmd.InOrStdin().(*os.File)
				if !isTTY || !isTerminal(in) {
					return &exitError{code: 1, err: errors.New("not approved: there is no terminal to ask on; review the diff above and run `acp-sandbox policy approve --yes` to approve it")}
				}
				fmt.Fprint(out, "Apply these changes to the sandbox policy? [y/N] ")
				answer, _ := bufio.NewReader(in).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return &exitError{code: 1, err: errors.New("not approved; the previously approved policy stays in force")}
				}
			}
			if err := sb.Prepare(); err != nil {
				return err
			}
			if err := ap.Approve(st.Content()); err != nil {
				return err
			}
			if st.Exists {
				fmt.Fprintf(out, "approved %s (sha256 %s); it applies to this workspace's sandbox from now on\n", file, st.SHA256[:12])
			} else {
				fmt.Fprintf(out, "approved the removal of %s; defaults and your config apply\n", file)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "approve without asking")
	return cmd
}
