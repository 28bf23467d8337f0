// Package bridge is the ACP logic between an editor and an agent that runs
// inside the sandbox VM. It relays JSON-RPC lines both ways, byte for byte,
// and intercepts only what touches the host:
//
//   - initialize: protocol version clamped to 1 both ways; terminal-auth
//     commands rewritten to re-enter acp-sandbox (auth.go)
//   - session/new|load|resume: cwd and additionalDirectories must be inside
//     the workspace the VM mounts; MCP servers the VM cannot reach are
//     removed with a warning the user sees, an http server's headers are
//     handed to the host like keys (session.go)
//   - fs/read_text_file, fs/write_text_file: the path must stay inside the
//     session's roots after resolving symlinks on the host (fs.go)
//   - terminal/create: rewritten to `acp-sandbox exec`, so the editor's
//     terminal runs the command inside the VM (terminal.go)
//   - authenticate, providers/set: API keys and gateway headers are handed
//     to the host (Options.Keys) and the agent gets placeholders (keys.go)
//   - the first session opened: acp-sandbox's own notices (an agent
//     installed on this start) appear in its thread (notice.go)
//
// The bridge knows nothing of QEMU: the agent is a pair of streams.
// Each direction is one goroutine handling lines in order, so notifications
// keep their order relative to requests. State shared by the two lives
// behind one mutex (state.go).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// Options configure a bridge. Zero values are documented per field.
type Options struct {
	// Workspace is the real host path the VM mounts at the same path;
	// session roots must lie inside it.
	Workspace string
	// ExecPrefix is the host command line that runs a command inside this
	// sandbox, e.g. [/usr/local/bin/acp-sandbox exec --sandbox ID];
	// terminal/create commands are appended after `--`. Required.
	ExecPrefix []string
	// ExecEnv is the host environment ("K=V") the editor gives that
	// command, so it finds this sandbox whatever the editor's own
	// environment (e.g. XDG_STATE_HOME). Never secrets.
	ExecEnv []string
	// AuthPrefix re-enters acp-sandbox interactively to run an agent's
	// terminal login inside the VM, e.g. [acp-sandbox run -w WS --].
	// nil = leave terminal-auth commands alone.
	AuthPrefix []string
	// LogPath is named in errors so the user knows where to look.
	LogPath string
	// CommandExists reports whether a stdio MCP server's command exists
	// in the VM. nil = assume it does not (the server is removed).
	CommandExists func(ctx context.Context, command string) bool
	Logger        *slog.Logger // nil = discard
	// MaxLine bounds one message; 0 = acp's default (64 MiB and more).
	MaxLine int
	// NetworkQuestions delivers flows the sandbox's network blocked, to
	// put to the user while a prompt turn is on (network.go). nil: none.
	NetworkQuestions <-chan NetworkQuestion
	// OnTurn is told when the first prompt turn starts (true) and when the
	// last one ends (false), so that questions are only sent while someone
	// is watching. It must not block. nil: not told.
	OnTurn func(active bool)
	// ApprovalTimeout bounds the wait for the user's answer; 0 means
	// DefaultApprovalTimeout.
	ApprovalTimeout time.Duration
	// Keys takes the keys the editor hands the agent (authenticate's
	// _meta "api-key" and gateway headers, providers/set headers) and
	// returns what the agent gets instead: placeholders (keys.go). It
	// must not return before the keys are in force. nil: such requests
	// are refused, so a key never reaches the agent.
	Keys func(ctx context.Context, s Secrets) (Secrets, error)
	// Notices are told to the user once, in the thread of the first
	// session the agent opens (after its session/new, load or resume
	// answer), each an agent message "acp-sandbox: NOTICE" (notice.go).
	// nil: none.
	Notices []string
}

// Agent is the agent process as streams.
type Agent struct {
	Stdin  io.WriteCloser
	Stdout io.Reader
	// Done delivers the agent's end: nil for a clean exit, else why
	// (exit status, VM gone). It must deliver exactly once.
	Done <-chan error
}

// Editor is the editor side: our stdin and stdout.
type Editor struct {
	In  io.Reader
	Out io.Writer
}

// ErrAgentExited is returned by Run when the agent ended first.
var ErrAgentExited = errors.New("the agent exited")

// Run relays until the editor closes its side (returns nil after the agent
// has been told to stop) or the agent ends (every pending editor request
// gets an error, then Run returns an error wrapping ErrAgentExited).
func Run(ctx context.Context, opt Options, ed Editor, ag Agent) error {
	b := newBridge(opt, ed, ag)
	return b.run(ctx)
}

type bridge struct {
	opt   Options
	log   *slog.Logger
	toEd  *acp.Writer
	toAg  *acp.Writer
	ed    Editor
	ag    Agent
	state *state

	// Requests the bridge itself sends the editor (network approvals).
	ids       *acp.IDAllocator
	own       acp.Pending
	toolCalls atomic.Int64
	asks      sync.WaitGroup

	auth authProviders // from the agent's initialize answer
	// noticed: opt.Notices were shown. Only the agent loop uses it.
	noticed bool
}

func newBridge(opt Options, ed Editor, ag Agent) *bridge {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &bridge{
		opt: opt, log: log, ed: ed, ag: ag,
		toEd: acp.NewWriter(ed.Out), toAg: acp.NewWriter(ag.Stdin),
		state: newState(opt.OnTurn), ids: acp.NewIDAllocator(),
	}
}

func (b *bridge) run(ctx context.Context) error {
	if b.opt.NetworkQuestions != nil {
		qctx, stop := context.WithCancel(ctx)
		defer func() {
			stop()
			b.own.FailAll(context.Canceled)
			b.asks.Wait()
		}()
		go b.serveQuestions(qctx) // owned: ends with qctx; its asks are waited for above
	}
	edDone := make(chan error, 1)
	agDone := make(chan struct{})
	go func() { edDone <- b.editorLoop(ctx) }()
	go func() { b.agentLoop(); close(agDone) }()

	select {
	case err := <-edDone:
		// The editor hung up: ask the agent to finish (EOF on its stdin);
		// the caller stops it for good if it does not.
		b.ag.Stdin.Close()
		if err != nil {
			b.log.Warn("editor stream failed", "err", err)
		}
		return nil
	case <-agDone:
		var cause error
		select {
		case cause = <-b.ag.Done:
		case <-time.After(5 * time.Second):
			cause = errors.New("it closed its stdout")
		}
		detail := ""
		if cause != nil {
			detail = fmt.Sprintf(": %v", cause)
		}
		if b.opt.LogPath != "" {
			detail += "; its log: " + b.opt.LogPath
		}
		b.log.Error("agent ended", "cause", cause)
		b.failPending(ErrAgentExited.Error() + detail)
		return fmt.Errorf("%w%s", ErrAgentExited, detail)
	}
}

// failPending answers every editor request the agent will never answer.
func (b *bridge) failPending(msg string) {
	for _, id := range b.state.drainEditorRequests() {
		b.replyEditorError(id, acp.InternalError, msg)
	}
}

func (b *bridge) replyEditorError(id acp.ID, code int, msg string) {
	line, err := acp.NewError(id, code, msg, nil)
	if err == nil {
		err = b.toEd.WriteLine(line)
	}
	if err != nil {
		b.log.Warn("cannot answer the editor", "err", err)
	}
}

func (b *bridge) replyAgentError(id acp.ID, code int, msg string) {
	line, err := acp.NewError(id, code, msg, nil)
	if err == nil {
		err = b.toAg.WriteLine(line)
	}
	if err != nil {
		b.log.Warn("cannot answer the agent", "err", err)
	}
}

// editorLoop handles editor → agent lines in order.
func (b *bridge) editorLoop(ctx context.Context) error {
	r := acp.NewReader(b.ed.In, b.opt.MaxLine)
	for {
		line, err := r.ReadLine()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var tooLong *acp.LineTooLongError
		if errors.As(err, &tooLong) {
			if id, _, hasID := tooLong.Peek(); hasID {
				b.replyEditorError(id, acp.InvalidRequest, "message too large for acp-sandbox's limit")
			}
			b.log.Warn("dropped an oversized message from the editor", "err", err)
			continue
		}
		if err != nil {
			return err
		}
		m, err := acp.Parse(line)
		if err != nil {
			var me *acp.MessageError
			if errors.As(err, &me) && me.Answerable() {
				b.replyEditorError(me.ID, me.Code(), err.Error())
			}
			b.log.Warn("bad message from the editor", "err", err)
			continue
		}
		if m.Kind == acp.KindResponse && b.ids.Owns(m.ID) {
			// The answer to one of the bridge's own requests: never the
			// agent's business.
			if _, err := b.own.Resolve(m); err != nil {
				b.log.Warn("an answer to an unknown acp-sandbox request", "id", m.ID.String())
			}
			continue
		}
		for _, out := range b.fromEditor(ctx, m) { // none: answered by the bridge
			if err := b.toAg.WriteLine(out); err != nil {
				// The agent's stdin is gone: the agent loop reports why.
				if m.Kind == acp.KindRequest && b.state.forget(m.ID) {
					b.replyEditorError(m.ID, acp.InternalError, "the agent is not running: "+err.Error())
				}
			}
		}
	}
}

// agentLoop handles agent → editor lines in order until the agent's stdout
// ends.
func (b *bridge) agentLoop() {
	r := acp.NewReader(b.ag.Stdout, b.opt.MaxLine)
	for {
		line, err := r.ReadLine()
		if err != nil {
			var tooLong *acp.LineTooLongError
			if errors.As(err, &tooLong) {
				if id, _, hasID := tooLong.Peek(); hasID {
					b.replyAgentError(id, acp.InvalidRequest, "message too large for acp-sandbox's limit")
				}
				b.log.Warn("dropped an oversized message from the agent", "err", err)
				continue
			}
			if !errors.Is(err, io.EOF) {
				b.log.Warn("agent stream failed", "err", err)
			}
			return
		}
		m, err := acp.Parse(line)
		if err != nil {
			// Agents must print only ACP on stdout; anything else is
			// logged and dropped, never shown to the editor as protocol.
			b.log.Warn("garbage on the agent's stdout (dropped)", "line", truncate(line, 200), "err", err)
			continue
		}
		for _, out := range b.fromAgent(m) {
			if err := b.toEd.WriteLine(out); err != nil {
				b.log.Warn("cannot write to the editor", "err", err)
				return
			}
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
