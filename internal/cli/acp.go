package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/acp-sandbox/acp-sandbox/bridge"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// acpMode is `acp-sandbox [flags] -- AGENT ARGS...` launched by an editor:
// stdin/stdout carry ACP, the agent runs in the workspace's VM, and the
// bridge relays between them. Progress and logs go to stderr (editors
// show it in their logs) and to the sandbox's agent log.
func (g *globals) acpMode(ctx context.Context, argv []string) error {
	sb, c, err := g.start(ctx)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := sb.AgentLog()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	logw := io.MultiWriter(logf, os.Stderr)
	logger := slog.New(slog.NewTextHandler(logw, nil)).With("sandbox", sb.ID)
	logger.Info("starting agent", "argv", argv, "workspace", sb.Workspace)

	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		code, err := c.Exec(agentCtx, control.Exec{
			Argv: argv, Dir: defaultCwd(sb),
			// NO_BROWSER: agents then offer logins that need no localhost
			// redirect into the VM.
			Env: []string{"NO_BROWSER=1"},
		}, sandbox.ExecIO{Stdin: stdinR, Stdout: stdoutW, Stderr: logw})
		stdoutW.Close()
		if err == nil && code != 0 {
			err = fmt.Errorf("exit status %d", code)
		}
		done <- err
	}()

	// Approve-on-block: this connection answers for the sandbox while one
	// of its prompt turns is on. Without it, blocked flows stay blocked.
	var questions chan bridge.NetworkQuestion
	var onTurn func(bool)
	var keys func(context.Context, bridge.Secrets) (bridge.Secrets, error)
	relayDone := make(chan struct{})
	defer close(relayDone)
	if ap, err := c.Approver(ctx); err != nil {
		logger.Warn("no network approvals in the editor", "err", err)
	} else {
		defer ap.Close()
		// Keys the editor hands the agent stay with the supervisor for as
		// long as this connection lasts.
		keys = func(ctx context.Context, sec bridge.Secrets) (bridge.Secrets, error) {
			r, err := ap.Capture(ctx, sandbox.Capture{Method: sec.Method, APIKey: sec.APIKey, Provider: sec.Provider,
				BaseURL: sec.BaseURL, Headers: sec.Headers})
			if err != nil {
				return bridge.Secrets{}, err
			}
			return bridge.Secrets{Method: sec.Method, APIKey: r.APIKey, BaseURL: r.BaseURL, Headers: r.Headers}, nil
		}
		questions = make(chan bridge.NetworkQuestion)
		onTurn = func(on bool) {
			if err := ap.SetActive(on); err != nil {
				logger.Warn("cannot tell the sandbox about the prompt turn", "err", err)
			}
		}
		go func() { // owned: ends when ap closes or the bridge is done
			defer close(questions)
			for r := range ap.Requests() {
				q := bridge.NetworkQuestion{What: r.What, Suggest: r.Suggest, Reason: r.Reason,
					Answer: func(a string) { _ = ap.Answer(r.ID, a) }}
				select {
				case questions <- q:
				case <-relayDone:
					_ = ap.Answer(r.ID, sandbox.AnswerReject)
					return
				}
			}
		}()
	}

	err = bridge.Run(ctx, bridge.Options{
		NetworkQuestions: questions,
		OnTurn:           onTurn,
		Keys:             keys,
		Notices:          g.notices,
		Workspace:        sb.Workspace,
		ExecPrefix:       []string{exe, "exec", "--sandbox", sb.ID},
		ExecEnv:          sandboxEnv(),
		AuthPrefix:       []string{exe, "run", "--workspace", sb.Workspace, "--"},
		LogPath:          logPath,
		Logger:           logger,
		CommandExists: func(ctx context.Context, cmd string) bool {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			code, err := c.Exec(ctx, control.Exec{Argv: []string{"sh", "-c", `command -v -- "$1" >/dev/null`, "sh", cmd}}, sandbox.ExecIO{})
			return err == nil && code == 0
		},
	}, bridge.Editor{In: os.Stdin, Out: os.Stdout}, bridge.Agent{Stdin: stdinW, Stdout: stdoutR, Done: done})
	if errors.Is(err, bridge.ErrAgentExited) {
		return &exitError{code: 1, err: err}
	}
	// The editor went away: the agent saw EOF on stdin; give it a moment
	// to finish, then stop it (the guest kills its process group). The VM
	// stays up for the next connection until its idle timeout.
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		stopAgent()
		<-done
	}
	return err
}

// sandboxEnv is the environment that makes another acp-sandbox process find
// the same sandboxes as this one.
func sandboxEnv() []string {
	var env []string
	for _, k := range []string{"XDG_STATE_HOME", "XDG_RUNTIME_DIR"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}
