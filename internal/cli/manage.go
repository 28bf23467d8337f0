package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"github.com/spf13/cobra"
)

// lsEntry is one row of `ls`.
type lsEntry struct {
	ID        string          `json:"id"`
	Workspace string          `json:"workspace"`
	State     string          `json:"state"` // running | stopped
	Status    *sandbox.Status `json:"status,omitempty"`
}

func listSandboxes(ctx context.Context) ([]lsEntry, error) {
	dirs, err := sandbox.DefaultDirs()
	if err != nil {
		return nil, err
	}
	all, err := dirs.List()
	if err != nil {
		return nil, err
	}
	out := []lsEntry{}
	for _, sb := range all {
		e := lsEntry{ID: sb.ID, Workspace: sb.Workspace, State: "stopped"}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if _, st, err := sandbox.Dial(cctx, sb); err == nil {
			e.State, e.Status = "running", st
		}
		cancel()
		out = append(out, e)
	}
	return out, nil
}

func newLsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List sandboxes and whether their VM is running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := listSandboxes(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(list)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tACCEL\tUPTIME\tCLIENTS\tWORKSPACE")
			for _, e := range list {
				accel, up, clients := "-", "-", "-"
				if st := e.Status; st != nil {
					accel = string(st.Accel)
					up = time.Since(st.Started).Round(time.Second).String()
					clients = fmt.Sprint(st.Clients)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.State, accel, up, clients, e.Workspace)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// pickSandbox is the sandbox named by id, else the current workspace's
// (without the safety check: stopping or removing is always allowed).
func (g *globals) pickSandbox(args []string) (*sandbox.Sandbox, error) {
	if len(args) == 1 {
		return sandboxByID(args[0])
	}
	ws, err := g.workspaceDir()
	if err != nil {
		return nil, err
	}
	dirs, err := sandbox.DefaultDirs()
	if err != nil {
		return nil, err
	}
	return dirs.ForWorkspace(ws)
}

func newStopCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "stop [ID | --all]",
		Short: "Stop a sandbox's VM (graceful poweroff); its state is kept",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			var targets []*sandbox.Sandbox
			if all {
				dirs, err := sandbox.DefaultDirs()
				if err != nil {
					return err
				}
				if targets, err = dirs.List(); err != nil {
					return err
				}
			} else {
				sb, err := g.pickSandbox(args)
				if err != nil {
					return err
				}
				targets = []*sandbox.Sandbox{sb}
			}
			var errs []error
			for _, sb := range targets {
				c, _, err := sandbox.Dial(ctx, sb)
				if err != nil {
					if !all {
						fmt.Fprintf(os.Stderr, "%s\t%s\tnot running\n", sb.ID, sb.Workspace)
					}
					continue
				}
				if err := c.Stop(ctx); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", sb.ID, err))
					continue
				}
				fmt.Printf("%s\t%s\tstopped\n", sb.ID, sb.Workspace)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "stop every running sandbox")
	return cmd
}

func newRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm [ID]",
		Short: "Stop a sandbox and delete its state (agent home, logs); the workspace is untouched",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, err := g.pickSandbox(args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			if c, _, err := sandbox.Dial(ctx, sb); err == nil {
				if err := c.Stop(ctx); err != nil {
					return err
				}
			}
			if _, err := os.Stat(sb.StateDir); err != nil {
				return fmt.Errorf("no state for %s (%s)", sb.ID, sb.Workspace)
			}
			if err := os.RemoveAll(sb.StateDir); err != nil {
				return err
			}
			_ = os.RemoveAll(sb.RuntimeDir)
			fmt.Printf("%s\t%s\tremoved\n", sb.ID, sb.Workspace)
			return nil
		},
	}
}

func newLogsCmd(g *globals) *cobra.Command {
	var follow, network, denied bool
	cmd := &cobra.Command{
		Use:   "logs [ID]",
		Short: "Show a sandbox's logs: acp-sandbox's own, the guest console, the agent's, or the network's",
		Long: `Show a sandbox's logs: acp-sandbox's own (sandbox.log), the guest console,
and the agent's stderr (ACP mode). With --network, the network audit log
instead: every DNS lookup and connection the VM tried, allowed or denied,
with the rule that decided it.`,
		Example: `  acp-sandbox logs
  acp-sandbox logs --network -f          watch decisions as they happen
  acp-sandbox logs --network --denied    only what was blocked`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, err := g.pickSandbox(args)
			if err != nil {
				return err
			}
			if network || denied {
				return showNetworkLog(cmd.Context(), os.Stdout, sb.NetworkLog(), denied, follow)
			}
			files := []string{sb.Log(), sb.ConsoleLog(), sb.AgentLog()}
			found := false
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				found = true
				fmt.Printf("==> %s <==\n", f)
				os.Stdout.Write(b)
				if len(b) > 0 && b[len(b)-1] != '\n' {
					fmt.Println()
				}
			}
			if !found {
				return fmt.Errorf("no logs for %s yet (%s)", sb.ID, sb.Workspace)
			}
			if follow {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return followFiles(ctx, os.Stdout, files)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().BoolVar(&network, "network", false, "show the network audit log (one decision per line)")
	cmd.Flags().BoolVar(&denied, "denied", false, "with --network: only denials and errors")
	return cmd
}

// followFiles prints what is appended to files until ctx ends.
func followFiles(ctx context.Context, w io.Writer, files []string) error {
	offs := make([]int64, len(files))
	for i, f := range files {
		if fi, err := os.Stat(f); err == nil {
			offs[i] = fi.Size()
		}
	}
	for {
		for i, name := range files {
			f, err := os.Open(name)
			if err != nil {
				continue
			}
			if fi, err := f.Stat(); err == nil && fi.Size() < offs[i] {
				offs[i] = 0 // truncated: a new boot
			}
			if _, err := f.Seek(offs[i], io.SeekStart); err == nil {
				n, _ := io.Copy(w, f)
				offs[i] += n
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newSuperviseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "supervise",
		Short:  "Run a sandbox's supervisor in the foreground (started automatically)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.validate(); err != nil {
				return err
			}
			sb, err := g.workspaceSandbox()
			if err != nil {
				return err
			}
			var ready *os.File
			if os.Getenv(sandbox.ReadyFDEnv) == "3" {
				ready = os.NewFile(3, "ready")
				os.Unsetenv(sandbox.ReadyFDEnv)
			}
			report := func(format string, a ...any) {
				if ready != nil {
					// One line per message; the client turns \n back.
					fmt.Fprintln(ready, strings.ReplaceAll(fmt.Sprintf(format, a...), "\n", `\n`))
				}
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("sandbox", sb.ID)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
			// The VM's shape: a flag given on the command line, else the
			// workspace's configuration.
			opt := sandbox.Options{
				Accel: vmm.Accel(g.accel), Kernel: g.kernel, Modules: g.modules,
				Network: g.network, Logger: logger, Progress: report,
			}
			if g.flagChanged("cpus") {
				opt.CPUs = g.cpus
			}
			if g.flagChanged("memory") {
				opt.MemoryMiB = g.memory
			}
			if g.flagChanged("idle-timeout") || os.Getenv("ACP_SANDBOX_IDLE_TIMEOUT") != "" {
				opt.IdleTimeout = &g.idle
			}
			err = sandbox.Supervise(ctx, sb, opt, func() {
				report("ready")
				if ready != nil {
					ready.Close()
					ready = nil
				}
			})
			if err != nil {
				logger.Error("supervisor failed", "err", err)
				report("error: %s", err)
			}
			return err
		},
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the binary's version hash",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Println("acp-sandbox", sandbox.Version())
		},
	}
}
