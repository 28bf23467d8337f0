package standin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	Event string
	Data  map[string]any
}

// readSSE parses a text/event-stream body.
func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event != "" || cur.Data != nil {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Event != "" || cur.Data != nil {
		t.Fatalf("stream ends inside an event: %+v", cur)
	}
	return out
}

func post(t *testing.T, c *http.Client, url, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestChunks(t *testing.T) {
	for _, s := range []string{"", "a", "Hello", "Hello there, world!", "a  b c d e ", " lead", "x y z w"} {
		c := Chunks(s)
		if strings.Join(c, "") != s {
			t.Errorf("Chunks(%q) = %q: does not join back", s, c)
		}
		for _, p := range c {
			if p == "" {
				t.Errorf("Chunks(%q) = %q: empty chunk", s, c)
			}
		}
	}
	if c := Chunks("one two three four five"); len(c) != 3 {
		t.Errorf("Chunks = %q, want three chunks", c)
	}
}

func TestStreamFormat(t *testing.T) {
	const reply = "The quick brown fox jumps over the lazy dog."
	s := New(Options{Reply: reply, Logf: t.Logf})
	defer s.Close()
	c := s.Client()

	start := time.Now()
	resp := post(t, c, s.URL()+"/v1/messages?beta=true", "k-1",
		`{"model":"claude-sonnet-4-6","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("Request-Id") == "" {
		t.Errorf("no request-id header")
	}
	events := readSSE(t, resp.Body)
	elapsed := time.Since(start)

	var names []string
	var text strings.Builder
	deltas := 0
	for _, e := range events {
		names = append(names, e.Event)
		if e.Data["type"] != e.Event {
			t.Errorf("event %q carries type %v", e.Event, e.Data["type"])
		}
		if e.Event == "content_block_delta" {
			d := e.Data["delta"].(map[string]any)
			if d["type"] != "text_delta" {
				t.Errorf("delta type %v", d["type"])
			}
			text.WriteString(d["text"].(string))
			deltas++
		}
	}
	want := []string{"message_start", "content_block_start", "ping"}
	for range deltas {
		want = append(want, "content_block_delta")
	}
	want = append(want, "content_block_stop", "message_delta", "message_stop")
	if !slices.Equal(names, want) {
		t.Errorf("events %q\nwant   %q", names, want)
	}
	if text.String() != reply {
		t.Errorf("streamed text %q, want %q", text.String(), reply)
	}
	if deltas < 2 {
		t.Errorf("%d deltas: the reply should come in several chunks", deltas)
	}
	if min := time.Duration(deltas-1) * DefaultChunkDelay; elapsed < min {
		t.Errorf("stream took %v, less than the %v of pauses", elapsed, min)
	}

	m := events[0].Data["message"].(map[string]any)
	if m["role"] != "assistant" || m["type"] != "message" || m["model"] != "claude-sonnet-4-6" ||
		!strings.HasPrefix(m["id"].(string), "msg_") || m["stop_reason"] != nil {
		t.Errorf("message_start message %v", m)
	}
	if _, ok := m["usage"].(map[string]any)["input_tokens"].(float64); !ok {
		t.Errorf("message_start without usage.input_tokens: %v", m)
	}
	if cb := events[1].Data["content_block"].(map[string]any); cb["type"] != "text" || cb["text"] != "" || events[1].Data["index"] != 0.0 {
		t.Errorf("content_block_start %v", events[1].Data)
	}
	md := events[len(events)-2].Data
	if md["delta"].(map[string]any)["stop_reason"] != "end_turn" {
		t.Errorf("message_delta %v", md)
	}
	if md["usage"].(map[string]any)["output_tokens"] != float64(deltas) {
		t.Errorf("message_delta usage %v", md["usage"])
	}

	// Not streaming: one JSON message.
	resp = post(t, c, s.URL()+"/v1/messages", "",
		`{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	var msg struct {
		Type, Role, Model string
		StopReason        string `json:"stop_reason"`
		Content           []struct{ Type, Text string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if msg.StopReason != "end_turn" || len(msg.Content) != 1 || msg.Content[0].Text != reply {
		t.Errorf("message %+v", msg)
	}

	// count_tokens, models, the rest.
	resp = post(t, c, s.URL()+"/v1/messages/count_tokens", "", `{"model":"m","messages":[]}`)
	var ct struct {
		InputTokens int `json:"input_tokens"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ct); err != nil || ct.InputTokens < 1 {
		t.Errorf("count_tokens: %d %v", ct.InputTokens, err)
	}
	r, err := c.Get(s.URL() + "/v1/models")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("models: %v %v", r, err)
	}
	r.Body.Close()
	resp = post(t, c, s.URL()+"/v1/nothing", "", `{}`)
	var e struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 404 ||
		e.Type != "error" || e.Error.Type != "not_found_error" {
		t.Errorf("unknown path: %d %+v %v", resp.StatusCode, e, err)
	}

	// Bearer tokens count as keys too.
	req, _ := http.NewRequest("GET", s.URL()+"/v1/models/claude-opus-4-6", nil)
	req.Header.Set("Authorization", "Bearer tok-2")
	if r, err := c.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("model: %v %v", r, err)
	} else {
		r.Body.Close()
	}

	if got := s.KeysSeen(); !slices.Equal(got, []string{"k-1", "tok-2"}) {
		t.Errorf("KeysSeen = %q", got)
	}
	reqs := s.Requests()
	if len(reqs) != 6 {
		t.Fatalf("%d requests recorded, want 6", len(reqs))
	}
	if r := reqs[0]; r.Method != "POST" || r.Path != "/v1/messages" || r.Query != "beta=true" || !r.Stream ||
		r.Model != "claude-sonnet-4-6" || r.APIKey != "k-1" || r.Status != 200 || r.BodySize == 0 ||
		r.Header.Get("Anthropic-Version") != "2023-06-01" || len(r.Body) != int(r.BodySize) {
		t.Errorf("first request %+v", r)
	}
	if r := reqs[5]; r.Authorization != "Bearer tok-2" || r.APIKey != "" {
		t.Errorf("last request %+v", r)
	}
}

func TestKeyRequired(t *testing.T) {
	s := New(Options{Key: "right"})
	defer s.Close()
	body := `{"model":"m","max_tokens":1,"messages":[]}`
	if r := post(t, s.Client(), s.URL()+"/v1/messages", "wrong", body); r.StatusCode != 401 {
		t.Errorf("wrong key: %d", r.StatusCode)
	}
	if r := post(t, s.Client(), s.URL()+"/v1/messages", "right", body); r.StatusCode != 200 {
		t.Errorf("right key: %d", r.StatusCode)
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"wrong", "right"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}

func TestTLS(t *testing.T) {
	s := New(Options{TLS: true, Hosts: []string{"api.anthropic.com", "localhost"}, Reply: "secure hello"})
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "https://") || !bytes.Contains(s.CAPEM(), []byte("BEGIN CERTIFICATE")) || s.CertPool() == nil {
		t.Fatalf("URL %s, CA %q", s.URL(), s.CAPEM())
	}
	// The stand-in's client dials the stand-in whatever the name: this
	// checks the certificate is good for api.anthropic.com under the CA.
	for _, u := range []string{"https://api.anthropic.com/v1/messages", "https://localhost/v1/messages", s.URL() + "/v1/messages"} {
		r := post(t, s.Client(), u, "k", `{"model":"m","max_tokens":5,"messages":[]}`)
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || !bytes.Contains(b, []byte("secure hello")) {
			t.Errorf("%s: %d %s", u, r.StatusCode, b)
		}
	}
	// A client without the CA refuses it.
	c := &http.Client{Transport: &http.Transport{DialContext: s.Client().Transport.(*http.Transport).DialContext}}
	if _, err := c.Get("https://api.anthropic.com/v1/models"); err == nil {
		t.Errorf("a client without the test CA accepted the certificate")
	}
	if plain := New(Options{}); plain.CAPEM() != nil || plain.CertPool() != nil {
		t.Errorf("CA without TLS")
	} else {
		plain.Close()
	}
}

// One server with one certificate stands in for the three APIs at their
// real names, each routed by its Host and demanding its own key.
func TestThreeAPIs(t *testing.T) {
	hosts := []string{"api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com"}
	s := New(Options{TLS: true, Hosts: hosts, Reply: "one for all", Key: "k-anthropic",
		Keys: map[string]string{OpenAI: "k-openai", Gemini: "k-gemini"}, Logf: t.Logf})
	defer s.Close()
	c := s.Client()
	for _, r := range []struct {
		url    string
		header map[string]string
		body   string
	}{
		{"https://api.anthropic.com/v1/messages", map[string]string{"X-Api-Key": "k-anthropic"}, `{"model":"claude-sonnet-4-6","max_tokens":5,"messages":[]}`},
		{"https://api.openai.com/v1/responses", bearer("k-openai"), `{"model":"gpt-5.5","input":"hi"}`},
		{"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", googKey("k-gemini"), `{"contents":[]}`},
	} {
		resp := send(t, c, "POST", r.url, r.header, r.body)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("one for all")) {
			t.Errorf("%s: %d %s", r.url, resp.StatusCode, b)
		}
	}
	// Another API's key is refused, with each API's own error; a path
	// unknown to the host's API gets that API's 404.
	for _, r := range []struct {
		url    string
		header map[string]string
		status int
		want   string
	}{
		{"https://api.anthropic.com/v1/messages", map[string]string{"X-Api-Key": "k-openai"}, 401, `"authentication_error"`},
		{"https://api.openai.com/v1/responses", bearer("k-anthropic"), 401, `"invalid_api_key"`},
		{"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", googKey("k-openai"), 400, `"API_KEY_INVALID"`},
		{"https://api.openai.com/v1/messages", bearer("k-openai"), 404, `"Invalid URL (POST /v1/messages)"`},
		{"https://generativelanguage.googleapis.com/v1/messages", googKey("k-gemini"), 404, `"NOT_FOUND"`},
	} {
		resp := send(t, c, "POST", r.url, r.header, `{}`)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != r.status || !bytes.Contains(b, []byte(r.want)) {
			t.Errorf("%s %v: %d %s; want %d and %s", r.url, r.header, resp.StatusCode, b, r.status, r.want)
		}
	}
	var apis []string
	for _, r := range s.Requests() {
		apis = append(apis, r.API)
		if h, _, _ := strings.Cut(r.Host, ":"); r.ServerName != h {
			t.Errorf("Host %q, server name %q", r.Host, r.ServerName)
		}
	}
	want := []string{Anthropic, OpenAI, Gemini, Anthropic, OpenAI, Gemini, OpenAI, Gemini}
	if !slices.Equal(apis, want) {
		t.Errorf("APIs %q, want %q", apis, want)
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"k-anthropic", "k-openai", "k-gemini"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}

// The real agent.

const agentBin = "/usr/local/lib/acp-sandbox-test-agents/bin/claude-agent-acp"

// TestAgent runs the real claude-agent-acp against the stand-in and
// drives one prompt over ACP, in a network namespace with only loopback
// (see inPrivateNet).
func TestAgent(t *testing.T) {
	if !inPrivateNet(t, "TestAgent", agentBin) {
		return
	}

	t.Run("http", func(t *testing.T) {
		s := New(Options{Reply: "Hello from the stand-in, over plain HTTP on loopback.", Logf: t.Logf})
		defer s.Close()
		res := runAgent(t, s, map[string]string{"ANTHROPIC_BASE_URL": s.URL()}, true)
		checkAnswer(t, s, res)
	})

	t.Run("https localhost with NODE_EXTRA_CA_CERTS", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Reply: "Hello over HTTPS, trusted through NODE_EXTRA_CA_CERTS.", Logf: t.Logf})
		defer s.Close()
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, s.CAPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		res := runAgent(t, s, map[string]string{
			"ANTHROPIC_BASE_URL":  fmt.Sprintf("https://localhost:%d", s.Port()),
			"NODE_EXTRA_CA_CERTS": ca,
		}, true)
		checkAnswer(t, s, res)
	})

	// As in the VM: no ANTHROPIC_BASE_URL, api.anthropic.com:443 is the
	// stand-in (here through /etc/hosts), trusted through
	// NODE_EXTRA_CA_CERTS; and nonessential traffic not disabled, to see
	// what else reaches api.anthropic.com.
	t.Run("api.anthropic.com as in the VM", func(t *testing.T) {
		privateHosts(t, "api.anthropic.com")
		s := New(Options{TLS: true, Hosts: []string{"api.anthropic.com"}, Addr: "127.0.0.1:443",
			Reply: "Hello from api.anthropic.com, or so it seems.", Logf: t.Logf})
		defer s.Close()
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, s.CAPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		res := runAgent(t, s, map[string]string{"NODE_EXTRA_CA_CERTS": ca}, false)
		checkAnswer(t, s, res)
		for _, r := range s.Requests() {
			if r.Host != "api.anthropic.com" || r.ServerName != "api.anthropic.com" {
				t.Errorf("request with Host %q, server name %q", r.Host, r.ServerName)
			}
		}
	})

	// Without the CA the agent must not get an answer from the stand-in.
	t.Run("https without the CA fails", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Logf: t.Logf})
		defer s.Close()
		res := runAgent(t, s, map[string]string{
			"ANTHROPIC_BASE_URL":      fmt.Sprintf("https://localhost:%d", s.Port()),
			"CLAUDE_CODE_MAX_RETRIES": "0",
		}, true)
		if res.text == s.opts.Reply {
			t.Errorf("the agent got the stand-in's answer without trusting its CA")
		}
		if n := len(s.Requests()); n != 0 {
			t.Errorf("%d requests got through TLS without the CA", n)
		}
		t.Logf("stop reason %q, error %v, text %q", res.stopReason, res.promptErr, res.text)
	})
}

func checkAnswer(t *testing.T, s *Server, res agentResult) {
	t.Helper()
	if res.promptErr != nil {
		t.Fatalf("session/prompt: %v", res.promptErr)
	}
	if res.stopReason != "end_turn" {
		t.Errorf("stopReason %q, want end_turn", res.stopReason)
	}
	if res.text != s.opts.Reply {
		t.Errorf("agent_message_chunk text %q, want %q", res.text, s.opts.Reply)
	}
	if !slices.Contains(s.KeysSeen(), "test-key-123") {
		t.Errorf("KeysSeen = %q, want test-key-123 among them", s.KeysSeen())
	}
	for _, r := range s.Requests() {
		t.Logf("seen: %s %s?%s host=%s model=%s stream=%v x-api-key=%q authorization=%q beta=%q ua=%q → %d",
			r.Method, r.Path, r.Query, r.Host, r.Model, r.Stream, r.APIKey, r.Authorization,
			r.Header.Get("Anthropic-Beta"), r.Header.Get("User-Agent"), r.Status)
	}
}

type agentResult struct {
	stopReason string
	promptErr  error
	text       string // agent_message_chunk texts, joined
	updates    []string
}

// runAgent starts the agent with a fresh HOME and the given extra
// environment, and runs initialize, session/new and one session/prompt.
func runAgent(t *testing.T, s *Server, env map[string]string, quiet bool) agentResult {
	if quiet {
		env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
	}
	return runAgentWait(t, s, env, 0)
}

func runAgentWait(t *testing.T, s *Server, env map[string]string, linger time.Duration) agentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := t.TempDir()
	cwd := t.TempDir()
	cmd := exec.CommandContext(ctx, "/usr/bin/node", agentBin)
	cmd.Dir = cwd
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"ANTHROPIC_API_KEY=test-key-123",
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	t.Logf("agent environment: %q", cmd.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	c, err := startACP(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// With a session open the agent does not exit when its stdin
		// closes (the Claude Code process it started keeps it alive):
		// give it a moment, then end its process group.
		c.stdin.Close()
		pgid := cmd.Process.Pid
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
			t.Logf("the agent exited when its stdin closed")
		case <-time.After(2 * time.Second):
			t.Logf("the agent still runs 2s after its stdin closed: SIGTERM")
			unix.Kill(-pgid, unix.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Logf("the agent outlived SIGTERM by 5s: SIGKILL")
			}
		}
		unix.Kill(-pgid, unix.SIGKILL)
		<-done
		if t.Failed() || testing.Verbose() {
			t.Logf("agent stderr:\n%s", tail(stderr.String(), 8000))
		}
	}()
	t0 := time.Now()

	if _, err := c.call(ctx, "initialize", map[string]any{"protocolVersion": 1, "clientCapabilities": map[string]any{}}); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	tInit := time.Since(t0)
	raw, err := c.call(ctx, "session/new", map[string]any{"cwd": cwd, "mcpServers": []any{}})
	if err != nil {
		t.Fatalf("session/new: %v", err)
	}
	tNew := time.Since(t0)
	var sess struct{ SessionID string }
	if err := json.Unmarshal(raw, &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("session/new result %s: %v", raw, err)
	}
	before := len(s.Requests())
	tp := time.Now()
	raw, err = c.call(ctx, "session/prompt", map[string]any{
		"sessionId": sess.SessionID,
		"prompt":    []any{map[string]any{"type": "text", "text": "say hello"}},
	})
	var res agentResult
	res.promptErr = err
	if err == nil {
		var pr struct{ StopReason string }
		json.Unmarshal(raw, &pr)
		res.stopReason = pr.StopReason
	}
	tPrompt := time.Since(tp)
	res.text, res.updates = c.agentText(sess.SessionID)
	first := c.firstChunk()
	firstTok := "none"
	if !first.IsZero() {
		firstTok = first.Sub(tp).Round(time.Millisecond).String()
	}
	t.Logf("timings: initialize %v, session/new %v after start (requests during start: %d), prompt %v, first agent_message_chunk %s after session/prompt",
		tInit.Round(time.Millisecond), tNew.Round(time.Millisecond), before, tPrompt.Round(time.Millisecond), firstTok)
	t.Logf("updates: %q", res.updates)
	if ents, err := os.ReadDir(home); err == nil {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Logf("HOME holds %q", names)
	}
	time.Sleep(linger)
	return res
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A minimal ACP client: newline-delimited JSON-RPC 2.0 over stdio.

type rpcError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *rpcError) Error() string {
	return fmt.Sprintf("rpc error %d: %s %s", e.Code, e.Message, e.Data)
}

type rpcMsg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type acpClient struct {
	t     *testing.T
	stdin io.WriteCloser

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  int
	pending map[string]chan rpcMsg
	updates []json.RawMessage
	first   time.Time // first agent_message_chunk
	exited  chan struct{}
	readErr error
}

func startACP(t *testing.T, cmd *exec.Cmd) (*acpClient, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &acpClient{t: t, stdin: stdin, pending: map[string]chan rpcMsg{}, exited: make(chan struct{})}
	go c.read(stdout)
	return c, nil
}

func (c *acpClient) send(m rpcMsg) error {
	m.JSONRPC = "2.0"
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

func (c *acpClient) read(r io.Reader) {
	defer close(c.exited)
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var m rpcMsg
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				c.t.Logf("agent stdout, not JSON-RPC: %q", line)
			} else {
				c.dispatch(m)
			}
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
	}
}

func (c *acpClient) dispatch(m rpcMsg) {
	switch {
	case m.Method == "" && len(m.ID) > 0: // a response
		c.mu.Lock()
		ch := c.pending[string(m.ID)]
		delete(c.pending, string(m.ID))
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	case len(m.ID) > 0: // a request from the agent
		go func() {
			result, rerr := c.handle(m)
			reply := rpcMsg{ID: m.ID}
			if rerr != nil {
				reply.Error = rerr
			} else {
				reply.Result, _ = json.Marshal(result)
			}
			if err := c.send(reply); err != nil {
				c.t.Logf("answering %s: %v", m.Method, err)
			}
		}()
	case m.Method == "session/update":
		c.mu.Lock()
		c.updates = append(c.updates, m.Params)
		if c.first.IsZero() && bytes.Contains(m.Params, []byte(`"agent_message_chunk"`)) {
			c.first = time.Now()
		}
		c.mu.Unlock()
	default:
		c.t.Logf("agent notification %s %s", m.Method, m.Params)
	}
}

// handle answers the agent's requests: permissions with the first allow
// option, file reads and writes inside the session's directory, an error
// for the rest.
func (c *acpClient) handle(m rpcMsg) (any, *rpcError) {
	c.t.Logf("agent request %s %s", m.Method, tail(string(m.Params), 500))
	switch m.Method {
	case "session/request_permission":
		var p struct {
			Options []struct {
				OptionID string `json:"optionId"`
				Kind     string `json:"kind"`
			} `json:"options"`
		}
		json.Unmarshal(m.Params, &p)
		for _, o := range p.Options {
			if strings.HasPrefix(o.Kind, "allow") {
				return map[string]any{"outcome": map[string]any{"outcome": "selected", "optionId": o.OptionID}}, nil
			}
		}
		return map[string]any{"outcome": map[string]any{"outcome": "cancelled"}}, nil
	case "fs/read_text_file":
		var p struct{ Path string }
		json.Unmarshal(m.Params, &p)
		b, err := os.ReadFile(p.Path)
		if err != nil {
			return nil, &rpcError{Code: -32002, Message: err.Error()}
		}
		return map[string]any{"content": string(b)}, nil
	case "fs/write_text_file":
		return nil, &rpcError{Code: -32603, Message: "this test client writes no files"}
	}
	return nil, &rpcError{Code: -32601, Message: "method not found: " + m.Method}
}

func (c *acpClient) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	c.nextID++
	id := fmt.Sprint(c.nextID)
	ch := make(chan rpcMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	if err := c.send(rpcMsg{ID: json.RawMessage(id), Method: method, Params: p}); err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, m.Error
		}
		return m.Result, nil
	case <-c.exited:
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, fmt.Errorf("%s: the agent closed its stdout (%v)", method, c.readErr)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no answer: %w", method, errors.Join(ctx.Err(), context.Cause(ctx)))
	}
}

// agentText joins the agent_message_chunk texts of a session and lists
// the kinds of update received.
func (c *acpClient) agentText(sessionID string) (string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var text strings.Builder
	var kinds []string
	for _, raw := range c.updates {
		var u struct {
			SessionID string `json:"sessionId"`
			Update    struct {
				SessionUpdate string `json:"sessionUpdate"`
				Content       struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"content"`
			} `json:"update"`
		}
		if err := json.Unmarshal(raw, &u); err != nil || u.SessionID != sessionID {
			continue
		}
		kinds = append(kinds, u.Update.SessionUpdate)
		if u.Update.SessionUpdate == "agent_message_chunk" && u.Update.Content.Type == "text" {
			text.WriteString(u.Update.Content.Text)
		}
	}
	return text.String(), kinds
}

func (c *acpClient) firstChunk() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}
