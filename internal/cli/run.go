package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newRunCmd(g *globals) *cobra.Command {
	var envs []string
	cmd := &cobra.Command{
		Use:   "run [flags] [--] CMD [ARGS...]",
		Short: "Run a command in the workspace's VM, starting the VM if needed",
		Long: `Run CMD inside the workspace's microVM and exit with its exit code.

The VM is booted if it is not running (or reused if it is). With a terminal,
CMD gets a real PTY: colors, Ctrl-C, window resizes and full-screen programs
work. Without one, stdin, stdout and stderr are streamed separately.

The command starts in the current directory when it lies inside the
workspace (the workspace is mounted at the same path), else at the
workspace root. Nothing of the host environment is passed in; use --env.`,
		Example: `  acp-sandbox run -- go test ./...
  acp-sandbox run --env DEBUG=1 -- python3 script.py
  echo hi | acp-sandbox run -- cat`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := parseEnv(envs)
			if err != nil {
				return err
			}
			return g.runInWorkspace(cmd.Context(), control.Exec{Argv: args, Env: env})
		},
	}
	cmd.Flags().StringArrayVarP(&envs, "env", "e", nil, "set KEY=VALUE in the command's environment (repeatable)")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newShellCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "shell",
		Short: "Open an interactive shell in the workspace's VM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runInWorkspace(cmd.Context(), control.Exec{Argv: []string{"/bin/bash", "-l"}})
		},
	}
}

func newStartCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Boot the workspace's VM (if not running) and return",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.start(cmd.Context())
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Printf("%s\t%s\trunning (%s)\n", st.ID, st.Workspace, st.Accel)
			return nil
		},
	}
}

func newExecCmd(g *globals) *cobra.Command {
	var (
		id          string
		interactive bool
		tty         bool
		cwd         string
		envs        []string
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] -- CMD [ARGS...]",
		Short: "Run a command in an already running sandbox",
		Long: `Run CMD in a running sandbox and exit with its exit code. Unlike run, exec
never boots a VM: it fails if the sandbox is not running.

The sandbox is --sandbox ID (see acp-sandbox ls), else the current
workspace's. Stdin is attached only with -i; -t allocates a PTY.`,
		Example: `  acp-sandbox exec -- uname -a
  acp-sandbox exec --sandbox 3f2a9c0b1d4e5f60 --cwd /src/app -- make
  acp-sandbox exec -it -- bash`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.networkGiven() {
				// exec never starts or reconfigures a VM: silently
				// ignoring the rules would be worse than refusing.
				return errors.New("exec does not change network rules: give --allow/--deny to run, shell or start (they apply to the running VM at once)")
			}
			var sb *sandbox.Sandbox
			var err error
			if id != "" {
				sb, err = sandboxByID(id)
			} else {
				sb, err = g.workspaceSandbox()
			}
			if err != nil {
				return err
			}
			env, err := parseEnv(envs)
			if err != nil {
				return err
			}
			c, _, err := sandbox.Dial(cmd.Context(), sb)
			if err != nil {
				return fmt.Errorf("the sandbox for %s is not running; start it with `acp-sandbox start -w %s` or use `acp-sandbox run`", sb.Workspace, sb.Workspace)
			}
			dir := cwd
			if dir == "" {
				dir = defaultCwd(sb)
			} else if !filepath.IsAbs(dir) {
				return fmt.Errorf("--cwd %q must be an absolute path in the VM", dir)
			}
			useTTY := tty && isTerminal(os.Stdin)
			var in io.Reader
			if interactive {
				in = os.Stdin
			}
			return execIn(cmd.Context(), c, control.Exec{Argv: args, Env: env, Dir: dir}, useTTY, in, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "sandbox", "", "sandbox id (default: the current workspace's)")
	f.BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a PTY (when stdin is a terminal)")
	f.StringVar(&cwd, "cwd", "", "working directory in the VM (default: current dir if inside the workspace, else the workspace)")
	f.StringArrayVarP(&envs, "env", "e", nil, "set KEY=VALUE (repeatable)")
	f.SetInterspersed(false)
	return cmd
}

// start resolves the workspace and starts (or reuses) its sandbox.
func (g *globals) start(ctx context.Context) (*sandbox.Sandbox, *sandbox.Client, error) {
	sb, err := g.workspaceSandbox()
	if err != nil {
		return nil, nil, err
	}
	c, err := g.ensure(ctx, sb)
	if err != nil || g.preset == nil {
		return sb, c, err
	}
	notice, err := installPreset(ctx, c, *g.preset, os.Stderr)
	if notice != "" {
		g.notices = append(g.notices, notice)
	}
	return sb, c, err
}

// runInWorkspace is run and shell: start the sandbox, run req with this
// terminal (a PTY when there is one) in the current directory's VM path.
func (g *globals) runInWorkspace(ctx context.Context, req control.Exec) error {
	sb, c, err := g.start(ctx)
	if err != nil {
		return err
	}
	req.Dir = defaultCwd(sb)
	tty := isTerminal(os.Stdin) && isTerminal(os.Stdout)
	var in io.Reader = os.Stdin
	if tty {
		// The person at this terminal answers approve-on-block questions
		// while the command runs; without a terminal nobody is asked.
		if ta, err := newTTYApprover(ctx, c, os.Stdin, os.Stderr); err == nil {
			defer ta.Close()
			in = ta
		}
	}
	return execIn(ctx, c, req, tty, in, g.restart(sb))
}

// defaultCwd is the current directory if it lies in the workspace (it has
// the same path in the VM), else the workspace root.
func defaultCwd(sb *sandbox.Sandbox) string {
	wd, err := os.Getwd()
	if err != nil {
		return sb.Workspace
	}
	if real, err := filepath.EvalSymlinks(wd); err == nil {
		wd = real
	}
	if wd == sb.Workspace || strings.HasPrefix(wd, sb.Workspace+"/") {
		return wd
	}
	return sb.Workspace
}

// restart returns a func that waits out a dying supervisor and starts the
// sandbox again: a VM that died just before a command attached (crash,
// idle stop) is replaced instead of failing the command.
func (g *globals) restart(sb *sandbox.Sandbox) func(context.Context, *sandbox.Client) (*sandbox.Client, error) {
	return func(ctx context.Context, old *sandbox.Client) (*sandbox.Client, error) {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := old.WaitGone(wctx); err != nil {
			return nil, err
		}
		return g.ensure(ctx, sb)
	}
}

// execIn runs req in the VM with this process's stdio and turns its exit
// status into ours. If the process could not even start because the
// sandbox went away, restart (when not nil) gets one chance.
func execIn(ctx context.Context, c *sandbox.Client, req control.Exec, tty bool, in io.Reader, restart func(context.Context, *sandbox.Client) (*sandbox.Client, error)) error {
	sio := sandbox.ExecIO{Stdout: os.Stdout, Stderr: os.Stderr}
	if in != nil {
		sio.Stdin = in
	} else if tty {
		sio.Stdin = os.Stdin
	}
	if tty {
		req.TTY = true
		if t := os.Getenv("TERM"); t != "" {
			req.Env = append([]string{"TERM=" + t}, req.Env...)
		}
		fd := int(os.Stdin.Fd())
		if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			req.Cols, req.Rows = uint16(w), uint16(h)
		}
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("cannot put the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		resize := make(chan control.Winsize, 1)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-done:
					return
				case <-winch:
					if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
						select {
						case resize <- control.Winsize{Rows: uint16(h), Cols: uint16(w)}:
						default:
						}
					}
				}
			}
		}()
		sio.Resize = resize
		// In raw mode Ctrl-C is a byte the PTY turns into SIGINT; only
		// termination signals aimed at us are forwarded.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
		sio.Signals = sigs
	} else {
		sigs, stop := forwardSignals()
		defer stop()
		sio.Signals = sigs
	}
	code, err := c.Exec(ctx, req, sio)
	if errors.Is(err, sandbox.ErrNotRunning) && restart != nil {
		if c, err = restart(ctx, c); err == nil {
			code, err = c.Exec(ctx, req, sio)
		}
	}
	var ee *sandbox.ExecError
	if errors.As(err, &ee) {
		return &exitError{code: ee.Code, err: fmt.Errorf("in the sandbox: %s", ee.Msg)}
	}
	if err != nil {
		return &exitError{code: 255, err: err}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
