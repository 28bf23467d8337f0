// Package testagent is a scripted ACP agent. It ships in the acp-sandbox
// binary (hidden subcommand `demo-agent`) so `acp-sandbox demo` and the
// end-to-end tests can run a real agent process inside the VM without an
// API key: each line of a prompt is a command that makes the agent do one
// thing an agent does — stream text, read or write a file through the
// editor, run a terminal, ask permission — or misbehave (crash, print
// garbage).
//
// Prompt commands, one per line:
//
//	say TEXT              agent_message_chunk TEXT
//	stream N              N chunks "chunk i"
//	write PATH TEXT       fs/write_text_file, reports the outcome
//	read PATH             fs/read_text_file, reports the content
//	terminal CMD ARGS...  terminal/create → wait_for_exit → output → release
//	permission TITLE      session/request_permission, reports the outcome
//	whereami              kernel release and hostname (proves where it runs)
//	init                  the initialize params this agent received, as JSON
//	fetch URL             HTTP GET (in the VM: through the sandbox network), reports status and body
//	sleep MS              wait (cancellable)
//	garbage               a non-JSON line on stdout
//	crash                 exit 3 at once
package testagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"golang.org/x/sys/unix"
)

type agent struct {
	w      *acp.Writer
	stdout io.Writer
	log    io.Writer
	nextID atomic.Int64

	mu         sync.Mutex
	pending    map[string]chan *acp.Message
	cancels    map[string]context.CancelFunc // by session
	initParams json.RawMessage
	sessions   int
	closed     chan struct{} // the client hung up: pending calls give up
}

// Main runs the agent on stdio and returns its exit code.
func Main(stdin io.Reader, stdout, stderr io.Writer) int {
	a := &agent{
		w: acp.NewWriter(stdout), stdout: stdout, log: stderr,
		pending: map[string]chan *acp.Message{}, cancels: map[string]context.CancelFunc{},
		closed: make(chan struct{}),
	}
	r := acp.NewReader(stdin, 0)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(a.closed) // runs first: waiting handlers give up
	for {
		line, err := r.ReadLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(a.log, "demo-agent: read: %v\n", err)
				return 1
			}
			return 0
		}
		m, err := acp.Parse(line)
		if err != nil {
			fmt.Fprintf(a.log, "demo-agent: bad message: %v\n", err)
			continue
		}
		switch m.Kind {
		case acp.KindResponse:
			a.mu.Lock()
			ch := a.pending[m.ID.String()]
			delete(a.pending, m.ID.String())
			a.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case acp.KindNotification:
			if m.Method == "session/cancel" {
				var p struct {
					SessionID string `json:"sessionId"`
				}
				_ = json.Unmarshal(m.Params, &p)
				a.mu.Lock()
				if c := a.cancels[p.SessionID]; c != nil {
					c()
				}
				a.mu.Unlock()
			}
		case acp.KindRequest:
			wg.Go(func() { a.handle(m) })
		}
	}
}

func (a *agent) reply(id acp.ID, result any) {
	b, err := acp.NewResult(id, result)
	if err == nil {
		err = a.w.WriteLine(b)
	}
	if err != nil {
		fmt.Fprintf(a.log, "demo-agent: write: %v\n", err)
	}
}

func (a *agent) fail(id acp.ID, code int, msg string) {
	if b, err := acp.NewError(id, code, msg, nil); err == nil {
		_ = a.w.WriteLine(b)
	}
}

func (a *agent) handle(m *acp.Message) {
	switch m.Method {
	case "initialize":
		a.mu.Lock()
		a.initParams = append(json.RawMessage(nil), m.Params...)
		a.mu.Unlock()
		a.reply(m.ID, map[string]any{
			"protocolVersion": 1,
			"agentCapabilities": map[string]any{
				"loadSession": false, "promptCapabilities": map[string]any{},
			},
			"agentInfo": map[string]any{"name": "acp-sandbox-demo-agent", "version": "1"},
			"authMethods": []any{map[string]any{
				"id": "demo-login", "name": "Demo login", "description": "a terminal login that does nothing",
				"_meta": map[string]any{"terminal-auth": map[string]any{"command": "demo-agent", "args": []string{"--login"}, "label": "Demo login"}},
			}},
		})
	case "authenticate":
		a.reply(m.ID, map[string]any{})
	case "session/new":
		a.mu.Lock()
		a.sessions++
		id := fmt.Sprintf("demo-session-%d", a.sessions)
		a.mu.Unlock()
		a.reply(m.ID, map[string]any{"sessionId": id})
	case "session/prompt":
		a.prompt(m)
	default:
		a.fail(m.ID, acp.MethodNotFound, "demo-agent: unknown method "+m.Method)
	}
}

type promptParams struct {
	SessionID string `json:"sessionId"`
	Prompt    []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"prompt"`
}

func (a *agent) prompt(m *acp.Message) {
	var p promptParams
	if err := json.Unmarshal(m.Params, &p); err != nil {
		a.fail(m.ID, acp.InvalidParams, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.mu.Lock()
	a.cancels[p.SessionID] = cancel
	a.mu.Unlock()
	var text strings.Builder
	for _, c := range p.Prompt {
		if c.Type == "text" {
			text.WriteString(c.Text + "\n")
		}
	}
	for _, line := range strings.Split(text.String(), "\n") {
		if ctx.Err() != nil {
			break
		}
		if line = strings.TrimSpace(line); line != "" {
			a.command(ctx, p.SessionID, line)
		}
	}
	stop := "end_turn"
	if ctx.Err() != nil {
		stop = "cancelled"
	}
	a.reply(m.ID, map[string]any{"stopReason": stop})
}

// say streams one agent_message_chunk.
func (a *agent) say(session, text string) {
	b, err := acp.NewNotification("session/update", map[string]any{
		"sessionId": session,
		"update": map[string]any{
			"sessionUpdate": "agent_message_chunk",
			"content":       map[string]any{"type": "text", "text": text},
		},
	})
	if err == nil {
		_ = a.w.WriteLine(b)
	}
}

// call sends a request to the client and waits for its response.
func (a *agent) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := acp.IntID(a.nextID.Add(1))
	ch := make(chan *acp.Message, 1)
	a.mu.Lock()
	a.pending[id.String()] = ch
	a.mu.Unlock()
	b, err := acp.NewRequest(id, method, params)
	if err != nil {
		return nil, err
	}
	if err := a.w.WriteLine(b); err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			_ = json.Unmarshal(m.Error, &e)
			return nil, fmt.Errorf("%s failed: %s (%d)", method, e.Message, e.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.closed:
		return nil, errors.New("the client hung up")
	}
}

func (a *agent) command(ctx context.Context, session, line string) {
	verb, rest, _ := strings.Cut(line, " ")
	report := func(format string, args ...any) { a.say(session, fmt.Sprintf(format, args...)) }
	switch verb {
	case "say":
		report("%s", rest)
	case "stream":
		n, _ := strconv.Atoi(rest)
		for i := range n {
			report("chunk %d", i)
		}
	case "write":
		path, content, _ := strings.Cut(rest, " ")
		_, err := a.call(ctx, "fs/write_text_file", map[string]any{"sessionId": session, "path": path, "content": content})
		if err != nil {
			report("write %s: error: %v", path, err)
			return
		}
		report("wrote %s", path)
	case "read":
		res, err := a.call(ctx, "fs/read_text_file", map[string]any{"sessionId": session, "path": rest})
		if err != nil {
			report("read %s: error: %v", rest, err)
			return
		}
		var r struct {
			Content string `json:"content"`
		}
		_ = json.Unmarshal(res, &r)
		report("read %s: %s", rest, r.Content)
	case "terminal":
		a.terminal(ctx, session, strings.Fields(rest), report)
	case "permission":
		res, err := a.call(ctx, "session/request_permission", map[string]any{
			"sessionId": session,
			"toolCall":  map[string]any{"toolCallId": "demo-call", "title": rest, "kind": "execute", "status": "pending"},
			"options": []any{
				map[string]any{"optionId": "allow", "name": "Allow", "kind": "allow_once"},
				map[string]any{"optionId": "reject", "name": "Reject", "kind": "reject_once"},
			},
		})
		if err != nil {
			report("permission: error: %v", err)
			return
		}
		report("permission: %s", string(res))
	case "whereami":
		var u unix.Utsname
		_ = unix.Uname(&u)
		host, _ := os.Hostname()
		report("kernel %s host %s uid %d", unix.ByteSliceToString(u.Release[:]), host, os.Getuid())
	case "init":
		a.mu.Lock()
		p := string(a.initParams)
		a.mu.Unlock()
		report("%s", p)
	case "sleep":
		ms, _ := strconv.Atoi(rest)
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
		}
	case "fetch":
		// An HTTP GET from wherever the agent runs (in the VM: through
		// the sandbox's network and its approvals).
		hc := &http.Client{Timeout: 90 * time.Second}
		resp, err := hc.Get(rest)
		if err != nil {
			report("fetch %s: error: %v", rest, err)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		report("fetch %s: %d %s", rest, resp.StatusCode, strings.TrimSpace(string(body)))
	case "garbage":
		fmt.Fprintln(a.stdout, "this is not JSON {")
	case "crash":
		fmt.Fprintln(a.log, "demo-agent: crashing on request")
		os.Exit(3)
	default:
		report("unknown command %q", verb)
	}
}

func (a *agent) terminal(ctx context.Context, session string, argv []string, report func(string, ...any)) {
	if len(argv) == 0 {
		report("terminal: no command")
		return
	}
	res, err := a.call(ctx, "terminal/create", map[string]any{"sessionId": session, "command": argv[0], "args": argv[1:]})
	if err != nil {
		report("terminal: error: %v", err)
		return
	}
	var t struct {
		TerminalID string `json:"terminalId"`
	}
	_ = json.Unmarshal(res, &t)
	ref := map[string]any{"sessionId": session, "terminalId": t.TerminalID}
	exit, err := a.call(ctx, "terminal/wait_for_exit", ref)
	if err != nil {
		report("terminal: wait: %v", err)
		return
	}
	out, err := a.call(ctx, "terminal/output", ref)
	if err != nil {
		report("terminal: output: %v", err)
		return
	}
	_, _ = a.call(ctx, "terminal/release", ref)
	var o struct {
		Output string `json:"output"`
	}
	_ = json.Unmarshal(out, &o)
	report("terminal exit %s output %s", string(exit), o.Output)
}
