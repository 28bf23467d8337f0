// Package acpclient is a small ACP client — the editor's side — used by
// `acp-sandbox demo` and the end-to-end tests. It starts an agent command
// (acp-sandbox itself, in ACP mode), sends requests, and serves the
// agent's requests the way an editor does: fs/* on the host's files,
// terminal/* as host processes, permissions by a chooser.
package acpclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// Handler answers one agent → client request: a result, or a *acp.WireError.
type Handler func(ctx context.Context, m *acp.Message) (any, error)

// Client is a running agent process seen from the editor's side.
type Client struct {
	cmd     *exec.Cmd
	w       *acp.Writer
	stdin   io.WriteCloser
	pending acp.Pending
	nextID  atomic.Int64
	handler Handler
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	updates []*acp.Message // notifications received, in order
	notify  chan struct{}
	// Requests lists every agent → client request received, in order.
	requests []*acp.Message

	readDone chan struct{}
	readErr  error
}

// Start runs argv with env and dir, speaking ACP on its stdio. stderr
// receives the process's stderr (nil = discard).
func Start(argv []string, env []string, dir string, stderr io.Writer, h Handler) (*Client, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stderr = env, dir, stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cmd: cmd, w: acp.NewWriter(in), stdin: in, handler: h, ctx: ctx, cancel: cancel,
		notify: make(chan struct{}, 1), readDone: make(chan struct{})}
	go c.readLoop(out)
	return c, nil
}

func (c *Client) readLoop(out io.Reader) {
	defer close(c.readDone)
	r := acp.NewReader(out, 0)
	for {
		line, err := r.ReadLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.readErr = err
			}
			c.pending.Close(errors.New("the agent process closed its stdout"))
			return
		}
		m, err := acp.Parse(line)
		if err != nil {
			c.readErr = fmt.Errorf("bad line from the agent: %w: %s", err, line)
			continue
		}
		switch m.Kind {
		case acp.KindResponse:
			_, _ = c.pending.Resolve(m)
		case acp.KindNotification:
			c.mu.Lock()
			c.updates = append(c.updates, m)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		case acp.KindRequest:
			c.mu.Lock()
			c.requests = append(c.requests, m)
			c.mu.Unlock()
			go c.serve(m)
		}
	}
}

func (c *Client) serve(m *acp.Message) {
	var res any
	err := fmt.Errorf("client does not handle %s", m.Method)
	if c.handler != nil {
		res, err = c.handler(c.ctx, m)
	}
	var line []byte
	if err != nil {
		var we *acp.WireError
		if !errors.As(err, &we) {
			we = &acp.WireError{Code: acp.InternalError, Message: err.Error()}
		}
		line, _ = acp.NewError(m.ID, we.Code, we.Message, nil)
	} else {
		line, _ = acp.NewResult(m.ID, res)
	}
	_ = c.w.WriteLine(line)
}

// Call sends a request and waits for its response. A JSON-RPC error
// response is returned as *acp.WireError.
func (c *Client) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := acp.IntID(c.nextID.Add(1))
	call, err := c.pending.Add(id, method, nil)
	if err != nil {
		return nil, err
	}
	line, err := acp.NewRequest(id, method, params)
	if err != nil {
		return nil, err
	}
	if err := c.w.WriteLine(line); err != nil {
		return nil, err
	}
	m, err := call.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if m.Error != nil {
		we, derr := m.DecodeError()
		if derr != nil {
			return nil, derr
		}
		return nil, we
	}
	return m.Result, nil
}

// Send writes a raw line (tests use it for malformed input).
func (c *Client) Send(line []byte) error { return c.w.WriteLine(line) }

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	line, err := acp.NewNotification(method, params)
	if err != nil {
		return err
	}
	return c.w.WriteLine(line)
}

// Updates returns the notifications received so far.
func (c *Client) Updates() []*acp.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*acp.Message(nil), c.updates...)
}

// Requests returns the agent → client requests received so far.
func (c *Client) Requests() []*acp.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*acp.Message(nil), c.requests...)
}

// Text concatenates the agent_message_chunk texts of a session's updates,
// a newline after each.
func (c *Client) Text(session string) string { return c.chunks(session, 0, "\n") }

// Streamed is the agent's message text of a session as streamed, from the
// from'th update on (len(Updates()) before a prompt: that prompt's answer).
func (c *Client) Streamed(session string, from int) string { return c.chunks(session, from, "") }

func (c *Client) chunks(session string, from int, sep string) string {
	var b strings.Builder
	for _, m := range c.Updates()[from:] {
		var u struct {
			SessionID string `json:"sessionId"`
			Update    struct {
				SessionUpdate string `json:"sessionUpdate"`
				Content       struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"update"`
		}
		if json.Unmarshal(m.Params, &u) == nil && u.SessionID == session && u.Update.SessionUpdate == "agent_message_chunk" {
			b.WriteString(u.Update.Content.Text)
			b.WriteString(sep)
		}
	}
	return b.String()
}

// Close ends the session like an editor does (stdin EOF) and waits for
// the process; kill after the context ends.
func (c *Client) Close(ctx context.Context) error {
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	defer c.cancel()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = c.cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

// Wait waits for the process to exit by itself.
func (c *Client) Wait() error {
	err := c.cmd.Wait()
	c.cancel()
	return err
}

// Process returns the agent command's process.
func (c *Client) Process() *os.Process { return c.cmd.Process }

// HostEditor serves fs/* on the host's files and terminal/* as host
// processes, as an editor would, and answers permission requests with
// choose (nil = first allow option).
type HostEditor struct {
	mu        sync.Mutex
	terminals map[string]*terminal
	next      int
	// Choose picks a permission option id; nil picks the first "allow".
	Choose func(m *acp.Message) string
}

type terminal struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	code int
}

// Handle is a Handler.
func (h *HostEditor) Handle(ctx context.Context, m *acp.Message) (any, error) {
	var p struct {
		Path       string   `json:"path"`
		Content    string   `json:"content"`
		Command    string   `json:"command"`
		Args       []string `json:"args"`
		Cwd        string   `json:"cwd"`
		TerminalID string   `json:"terminalId"`
		Env        []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
		Options []struct {
			OptionID string `json:"optionId"`
			Kind     string `json:"kind"`
		} `json:"options"`
	}
	if err := json.Unmarshal(m.Params, &p); err != nil {
		return nil, &acp.WireError{Code: acp.InvalidParams, Message: err.Error()}
	}
	switch m.Method {
	case "fs/read_text_file":
		b, err := os.ReadFile(p.Path)
		if err != nil {
			return nil, err
		}
		return map[string]any{"content": string(b)}, nil
	case "fs/write_text_file":
		return map[string]any{}, os.WriteFile(p.Path, []byte(p.Content), 0o644)
	case "session/request_permission":
		id := ""
		if h.Choose != nil {
			id = h.Choose(m)
		} else {
			for _, o := range p.Options {
				if o.Kind == "allow_once" || o.Kind == "allow_always" {
					id = o.OptionID
					break
				}
			}
		}
		if id == "" {
			return map[string]any{"outcome": map[string]any{"outcome": "cancelled"}}, nil
		}
		return map[string]any{"outcome": map[string]any{"outcome": "selected", "optionId": id}}, nil
	case "terminal/create":
		t := &terminal{done: make(chan struct{})}
		t.cmd = exec.Command(p.Command, p.Args...)
		t.cmd.Dir = p.Cwd
		if len(p.Env) > 0 {
			t.cmd.Env = os.Environ()
			for _, e := range p.Env {
				t.cmd.Env = append(t.cmd.Env, e.Name+"="+e.Value)
			}
		}
		t.cmd.Stdout, t.cmd.Stderr = &lockedWriter{b: &t.out, mu: &h.mu}, &lockedWriter{b: &t.out, mu: &h.mu}
		if err := t.cmd.Start(); err != nil {
			return nil, err
		}
		go func() {
			_ = t.cmd.Wait()
			t.code = t.cmd.ProcessState.ExitCode()
			close(t.done)
		}()
		h.mu.Lock()
		if h.terminals == nil {
			h.terminals = map[string]*terminal{}
		}
		h.next++
		id := "term-" + strconv.Itoa(h.next)
		h.terminals[id] = t
		h.mu.Unlock()
		return map[string]any{"terminalId": id}, nil
	case "terminal/wait_for_exit", "terminal/output", "terminal/release", "terminal/kill":
		h.mu.Lock()
		t := h.terminals[p.TerminalID]
		h.mu.Unlock()
		if t == nil {
			return nil, &acp.WireError{Code: acp.InvalidParams, Message: "unknown terminal " + p.TerminalID}
		}
		switch m.Method {
		case "terminal/wait_for_exit":
			select {
			case <-t.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return map[string]any{"exitCode": t.code}, nil
		case "terminal/output":
			h.mu.Lock()
			out := t.out.String()
			h.mu.Unlock()
			res := map[string]any{"output": out, "truncated": false}
			select {
			case <-t.done:
				res["exitStatus"] = map[string]any{"exitCode": t.code}
			default:
			}
			return res, nil
		case "terminal/kill":
			_ = t.cmd.Process.Kill()
			return map[string]any{}, nil
		default:
			h.mu.Lock()
			delete(h.terminals, p.TerminalID)
			h.mu.Unlock()
			_ = t.cmd.Process.Kill()
			return map[string]any{}, nil
		}
	}
	return nil, &acp.WireError{Code: acp.MethodNotFound, Message: "editor does not handle " + m.Method}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
