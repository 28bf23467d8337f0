package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/testagent"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/spf13/cobra"
)

func newDemoAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "demo-agent",
		Short:  "A scripted ACP agent (used by demo and tests; runs inside the VM as /init demo-agent)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := testagent.Main(os.Stdin, os.Stdout, os.Stderr); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
		DisableFlagParsing: true,
	}
}

func newDemoCmd(g *globals) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a full ACP session against a built-in agent inside a sandbox, and show what happened",
		Long: `demo plays the editor: it launches acp-sandbox -- AGENT as an editor would,
with a scripted agent built into acp-sandbox running inside the VM, and
walks through what a real agent does: it writes and reads a file through
the editor, tries to write outside the workspace (refused on the host),
opens a terminal (which runs inside the VM), and asks for permission.
No API key or network needed. The workspace is a temporary directory unless
--workspace is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.demo(cmd.Context(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo sandbox and workspace")
	return cmd
}

func (g *globals) demo(ctx context.Context, keep bool) error {
	ws := g.workspace
	if ws == "" {
		dir, err := os.MkdirTemp("", "acp-sandbox-demo.")
		if err != nil {
			return err
		}
		ws = dir
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	ws, _ = filepath.EvalSymlinks(ws)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Printf("\n== "+format+"\n", a...) }
	step("editor: launching `acp-sandbox --workspace %s -- /init demo-agent` (the agent runs inside the VM)", ws)
	ed := &acpclient.HostEditor{}
	argv := []string{exe, "--workspace", ws, "--memory", fmt.Sprint(g.memory), "--cpus", fmt.Sprint(g.cpus)}
	if g.accel != "" {
		argv = append(argv, "--accel", g.accel)
	}
	argv = append(argv, "--", "/init", "demo-agent")
	stderr, err := os.CreateTemp("", "acp-sandbox-demo-stderr")
	if err != nil {
		return err
	}
	defer os.Remove(stderr.Name())
	c, err := acpclient.Start(argv, os.Environ(), ws, stderr, func(ctx context.Context, m *acp.Message) (any, error) {
		fmt.Printf("   agent → editor: %s %s\n", m.Method, summarize(m.Params))
		return ed.Handle(ctx, m)
	})
	if err != nil {
		return err
	}
	if !keep {
		defer func() {
			// Its own context: the demo's may have ended (that is
			// often why we are here).
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if sb, err := g.sandboxAt(ws); err == nil {
				if cl, _, err := sandbox.Dial(ctx, sb); err == nil {
					_ = cl.Stop(ctx)
				}
				os.RemoveAll(sb.StateDir)
			}
		}()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	fail := func(what string, err error) error {
		_ = c.Close(context.Background())
		b, _ := os.ReadFile(stderr.Name())
		return fmt.Errorf("demo: %s: %v\nacp-sandbox stderr:\n%s", what, err, b)
	}

	res, err := c.Call(ctx, "initialize", map[string]any{
		"protocolVersion": 1,
		"clientCapabilities": map[string]any{
			"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true,
		},
		"clientInfo": map[string]any{"name": "acp-sandbox-demo", "version": "1"},
	})
	if err != nil {
		return fail("initialize", err)
	}
	fmt.Printf("   initialize → %s\n", summarize(res))
	res, err = c.Call(ctx, "session/new", map[string]any{"cwd": ws, "mcpServers": []any{}})
	if err != nil {
		return fail("session/new", err)
	}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(res, &sess)
	fmt.Printf("   session/new → %s\n", sess.SessionID)

	hello := filepath.Join(ws, "hello.txt")
	script := strings.Join([]string{
		"whereami",
		"write " + hello + " Hello from the sandboxed agent",
		"read " + hello,
		"write /etc/acp-sandbox-demo-escape.txt this must be refused",
		"terminal uname -sr",
		"permission Run the test suite",
	}, "\n")
	step("editor: session/prompt — the agent's script:\n%s", indent(script))
	res, err = c.Call(ctx, "session/prompt", map[string]any{
		"sessionId": sess.SessionID,
		"prompt":    []any{map[string]any{"type": "text", "text": script}},
	})
	if err != nil {
		return fail("session/prompt", err)
	}
	step("what the agent reported (its streamed messages):")
	fmt.Print(indent(c.Text(sess.SessionID)))
	step("on the host:")
	if b, err := os.ReadFile(hello); err == nil {
		fmt.Printf("   %s = %q (written by the editor on the agent's behalf)\n", hello, b)
	}
	if _, err := os.Stat("/etc/acp-sandbox-demo-escape.txt"); err != nil {
		fmt.Println("   /etc/acp-sandbox-demo-escape.txt does not exist: the write outside the workspace was refused before reaching the editor")
	}
	fmt.Printf("   prompt finished: %s\n", summarize(res))
	if err := c.Close(ctx); err != nil {
		return fmt.Errorf("demo: closing the session: %w", err)
	}
	step("done: the VM stays up for the next session (acp-sandbox ls); the demo removes its sandbox unless --keep")
	return nil
}

func summarize(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("   " + l + "\n")
	}
	return b.String()
}
