// Package cli is acp-sandbox's command line: the headless commands (run,
// shell, exec, ls, stop, rm, logs, doctor) and the hidden supervisor entry
// point. It parses flags and wires the sandbox package; it holds no logic of
// its own beyond presenting results.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/internal/presets"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error // nil: exit silently (the command already spoke)
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// globals are the flags every command shares.
type globals struct {
	workspace       string
	unsafeWorkspace bool
	accel           string
	kernel          string
	modules         string
	cpus            int
	memory          int
	idle            time.Duration
	quiet           bool
	allow, deny     []string
	network         sandbox.Network // parsed from allow and deny by validate
	preset          *presets.Preset // the agent preset the command names, if any
	// notices are for the user's eyes in the editor's thread (an
	// install's outcome): acpMode shows them in the first session.
	notices []string
	// flagChanged reports whether a flag was given on the command line
	// (set when the command runs).
	flagChanged func(name string) bool
}

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	g := &globals{}
	root := newRoot(g)
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(os.Stderr, "acp-sandbox: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "acp-sandbox: %v\n", err)
	return 1
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use: "acp-sandbox [flags] -- AGENT [ARGS...]",
		Example: `  editor config: command "acp-sandbox", args ["--", "claude"]
  acp-sandbox editors install zed  writes that config for you
  acp-sandbox -- gemini            (stdin not a terminal: speaks ACP)
  acp-sandbox demo                 a full ACP session with a built-in agent`,
		Short: "Run AI coding agents in a microVM per workspace",
		Long: `acp-sandbox runs a coding agent inside a microVM that sees only your
workspace (at the same path) and nothing else of your machine.

AGENT is a preset — claude, codex or gemini: the agent's ACP adapter,
installed with npm in the sandbox on first use, with its model API allowed —
an agent a configuration file names ([agents.NAME] command = [...] in
sandbox.toml or config.toml; it also replaces a preset's adapter), or any
command that speaks ACP on stdio.

As an editor's agent command, acp-sandbox -- AGENT [ARGS...] speaks ACP on
stdin/stdout, runs AGENT in the workspace's VM and relays both ways: file
reads and writes go through the editor (and its diff review), terminals the
agent opens run inside the VM. With a terminal on stdin it runs AGENT
interactively instead (for an agent's terminal login).

The workspace is the current directory unless --workspace is given. The VM
starts on first use and stays up for every later command until it idles out
or you stop it.

Headless use:
  acp-sandbox run -- make test        run a command in the workspace's VM
  acp-sandbox shell                   interactive shell in the VM
  acp-sandbox exec -- ls              run in an already running VM
  acp-sandbox ls                      list sandboxes
  acp-sandbox stop | rm | logs        manage them
  acp-sandbox logs --network -f       watch the VM's network decisions
  acp-sandbox why                     explain recent blocks (also inside the VM)
  acp-sandbox doctor                  check this machine (KVM, QEMU, kernel)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			g.flagChanged = cmd.Flags().Changed
		},
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			args = g.useAgent(args)
			if isTerminal(os.Stdin) {
				// An editor re-running our command line for a terminal
				// login, or a user trying it out: run it interactively.
				return g.runInWorkspace(cmd.Context(), control.Exec{Argv: args, Env: []string{"NO_BROWSER=1"}})
			}
			return g.acpMode(cmd.Context(), args)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.workspace, "workspace", "w", "", "workspace directory shared with the VM (default: current directory)")
	pf.BoolVar(&g.unsafeWorkspace, "unsafe-workspace", false, "allow a workspace that contains your home or credential directories")
	pf.StringVar(&g.accel, "accel", "", "accelerator when starting a VM: kvm or tcg (default: detect)")
	pf.StringVar(&g.kernel, "kernel", os.Getenv("ACP_SANDBOX_KERNEL"), "guest kernel: uncompressed vmlinux or bzImage (default: Debian's, fetched once; env ACP_SANDBOX_KERNEL)")
	pf.StringVar(&g.modules, "modules", os.Getenv("ACP_SANDBOX_MODULES"), "kernel modules directory for --kernel (lib/modules/VERSION; env ACP_SANDBOX_MODULES)")
	pf.IntVar(&g.cpus, "cpus", 2, "virtual CPUs when starting a VM (default: sandbox.toml [sandbox] cpus, else 2)")
	pf.IntVar(&g.memory, "memory", 2048, "memory in MiB when starting a VM (default: sandbox.toml [sandbox] memory, else 2048)")
	pf.DurationVar(&g.idle, "idle-timeout", envDuration("ACP_SANDBOX_IDLE_TIMEOUT", 30*time.Minute), "stop a started VM after this long without clients (0 = never; env ACP_SANDBOX_IDLE_TIMEOUT; default: sandbox.toml [sandbox] idle_timeout, else 30m)")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress messages")
	pf.StringArrayVar(&g.allow, "allow", nil, "let the VM reach HOST[:PORT] (repeatable): example.com, *.example.com (one label), **.example.com (any depth), 203.0.113.5, 10.0.0.0/8; no port means 443 and 80; host.acp-sandbox.internal:PORT shares the host's 127.0.0.1:PORT. Adds to sandbox.toml's rules and replaces the extra rules of a running sandbox")
	pf.StringArrayVar(&g.deny, "deny", nil, "never let the VM reach HOST[:PORT] (repeatable; beats --allow)")
	root.AddCommand(
		newRunCmd(g), newShellCmd(g), newStartCmd(g), newExecCmd(g),
		newLsCmd(g), newStopCmd(g), newRmCmd(g), newLogsCmd(g),
		newDoctorCmd(g), newSuperviseCmd(g), newVersionCmd(),
		newDemoCmd(g), newDemoAgentCmd(), newWhyCmd(g), newPolicyCmd(g),
		newEditorsCmd(),
	)
	return root
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// workspaceDir is --workspace, else the current directory.
func (g *globals) workspaceDir() (string, error) {
	if g.workspace != "" {
		return g.workspace, nil
	}
	return os.Getwd()
}

// sandboxAt resolves a workspace directory to its sandbox and, unless
// --unsafe-workspace, refuses workspaces that would expose too much.
func (g *globals) sandboxAt(ws string) (*sandbox.Sandbox, error) {
	dirs, err := sandbox.DefaultDirs()
	if err != nil {
		return nil, err
	}
	sb, err := dirs.ForWorkspace(ws)
	if err != nil {
		return nil, err
	}
	if !g.unsafeWorkspace {
		home, _ := os.UserHomeDir()
		if err := sandbox.CheckWorkspace(sb.Workspace, home, dirs); err != nil {
			return nil, err
		}
	}
	return sb, nil
}

// workspaceSandbox is the sandbox of --workspace or the current directory.
func (g *globals) workspaceSandbox() (*sandbox.Sandbox, error) {
	ws, err := g.workspaceDir()
	if err != nil {
		return nil, err
	}
	return g.sandboxAt(ws)
}

// sandboxByID finds a known sandbox by id or unique id prefix.
func sandboxByID(id string) (*sandbox.Sandbox, error) {
	dirs, err := sandbox.DefaultDirs()
	if err != nil {
		return nil, err
	}
	return dirs.ByID(id)
}

// startArgs are the supervise flags that shape a new VM.
func (g *globals) startArgs() []string {
	// Only what the command line gave: the rest comes from the
	// workspace's configuration, which the supervisor loads.
	var a []string
	if g.flagChanged != nil && g.flagChanged("cpus") {
		a = append(a, "--cpus", fmt.Sprint(g.cpus))
	}
	if g.flagChanged != nil && g.flagChanged("memory") {
		a = append(a, "--memory", fmt.Sprint(g.memory))
	}
	if g.flagChanged != nil && g.flagChanged("idle-timeout") || os.Getenv("ACP_SANDBOX_IDLE_TIMEOUT") != "" {
		a = append(a, "--idle-timeout", g.idle.String())
	}
	if g.accel != "" {
		a = append(a, "--accel", g.accel)
	}
	if g.kernel != "" {
		a = append(a, "--kernel", g.kernel, "--modules", g.modules)
	}
	if g.unsafeWorkspace {
		a = append(a, "--unsafe-workspace")
	}
	return append(a, g.network.Args()...)
}

// networkGiven reports whether the command line named network rules.
func (g *globals) networkGiven() bool { return len(g.allow)+len(g.deny) > 0 }

func (g *globals) validate() error {
	switch vmm.Accel(g.accel) {
	case "", vmm.AccelKVM, vmm.AccelTCG:
	default:
		return fmt.Errorf("--accel %q: want kvm or tcg", g.accel)
	}
	if g.kernel != "" && g.modules == "" {
		return errors.New("--kernel needs --modules DIR (the lib/modules/VERSION directory of that kernel)")
	}
	n, err := sandbox.ParseNetwork(g.allow, g.deny)
	if err != nil {
		return err
	}
	g.network = n
	return nil
}

// ensure starts the workspace's sandbox if needed.
func (g *globals) ensure(ctx context.Context, sb *sandbox.Sandbox) (*sandbox.Client, error) {
	if err := g.validate(); err != nil {
		return nil, err
	}
	var progress io.Writer = os.Stderr
	if g.quiet {
		progress = nil
	}
	c, st, err := sandbox.Ensure(ctx, sb, sandbox.StartOptions{Args: g.startArgs(), Progress: progress})
	if err != nil {
		return nil, err
	}
	if v := sandbox.Version(); st.Version != v && st.Clients == 0 {
		// A warm VM from an older binary: replace it while nobody uses it.
		if progress != nil {
			fmt.Fprintf(progress, "acp-sandbox: restarting the sandbox VM (it runs an older acp-sandbox %s)\n", st.Version)
		}
		if err := c.Stop(ctx); err != nil {
			return nil, err
		}
		if c, st, err = sandbox.Ensure(ctx, sb, sandbox.StartOptions{Args: g.startArgs(), Progress: progress}); err != nil {
			return nil, err
		}
	}
	// The rules are the sandbox's, not the command's: rules given now
	// replace those of a VM that was already running.
	if g.networkGiven() && !st.Extra.Equal(g.network) {
		if err := c.SetNetwork(ctx, g.network); err != nil {
			return nil, fmt.Errorf("cannot change the running sandbox's network rules: %w", err)
		}
		if progress != nil {
			fmt.Fprintf(progress, "acp-sandbox: network rules of the running sandbox are now: %s\n", g.network)
		}
	}
	return c, nil
}

// signalContext cancels on SIGTERM/SIGHUP; SIGINT is left to the command
// (forwarded to the process in the VM).
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func forwardSignals() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	return c, func() { signal.Stop(c) }
}

func parseEnv(kvs []string) ([]string, error) {
	for _, kv := range kvs {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
	}
	return kvs, nil
}
