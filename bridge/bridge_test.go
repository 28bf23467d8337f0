package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// harness runs a bridge between an in-memory editor and a scripted raw
// agent: the test plays both peers and sees every byte the bridge sends.
type harness struct {
	t       *testing.T
	ws      string
	edW     *io.PipeWriter // editor → bridge
	edLines chan string    // bridge → editor
	agW     *io.PipeWriter // agent → bridge
	agLines chan string    // bridge → agent
	agDone  chan error
	runErr  chan error
}

func lines(r io.Reader) chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 80<<20)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	before := runtime.NumGoroutine()
	ws := t.TempDir()
	ws, _ = filepath.EvalSymlinks(ws)
	edR, edW := io.Pipe()
	outR, outW := io.Pipe()
	agInR, agInW := io.Pipe()
	agOutR, agOutW := io.Pipe()
	h := &harness{t: t, ws: ws, edW: edW, edLines: lines(outR), agW: agOutW, agLines: lines(agInR),
		agDone: make(chan error, 1), runErr: make(chan error, 1)}
	opt := Options{Workspace: ws, ExecPrefix: []string{"/usr/bin/acp-sandbox", "exec", "--sandbox", "abc"}, ExecEnv: []string{"XDG_STATE_HOME=/state"},
		AuthPrefix: []string{"/usr/bin/acp-sandbox", "run", "--workspace", ws, "--"}, LogPath: "/state/agent.log"}
	if mod != nil {
		mod(&opt)
	}
	go func() {
		h.runErr <- Run(context.Background(), opt, Editor{In: edR, Out: outW}, Agent{Stdin: agInW, Stdout: agOutR, Done: h.agDone})
		outW.Close()
	}()
	t.Cleanup(func() {
		edW.Close()
		agOutW.Close()
		select {
		case h.agDone <- nil:
		default:
		}
		<-h.runErr
		agInR.Close()
		outR.Close()
		// Every goroutine the bridge started must be gone.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
	return h
}

func (h *harness) editorSends(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.edW, line+"\n"); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) agentSends(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.agW, line+"\n"); err != nil {
		h.t.Fatal(err)
	}
}

func next(t *testing.T, ch chan string, who string) string {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("%s: stream closed", who)
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing arrived (hang)", who)
	}
	return ""
}

func (h *harness) editorGets() string { h.t.Helper(); return next(h.t, h.edLines, "editor") }
func (h *harness) agentGets() string  { h.t.Helper(); return next(h.t, h.agLines, "agent") }

// marker proves nothing else was sent before it: the next line a side
// receives is the marker.
func (h *harness) agentGetsOnly(want string) {
	h.t.Helper()
	h.editorSends(`{"jsonrpc":"2.0","method":"marker"}`)
	got := h.agentGets()
	if want != "" {
		if got != want {
			h.t.Fatalf("agent got %s, want %s", got, want)
		}
		got = h.agentGets()
	}
	if got != `{"jsonrpc":"2.0","method":"marker"}` {
		h.t.Fatalf("agent got an unexpected line: %s", got)
	}
}

func (h *harness) editorGetsOnly() {
	h.t.Helper()
	h.agentSends(`{"jsonrpc":"2.0","method":"marker"}`)
	if got := h.editorGets(); got != `{"jsonrpc":"2.0","method":"marker"}` {
		h.t.Fatalf("editor got an unexpected line: %s", got)
	}
}

func parse(t *testing.T, line string) *acp.Message {
	t.Helper()
	m, err := acp.Parse([]byte(line))
	if err != nil {
		t.Fatalf("bridge sent an invalid message %s: %v", line, err)
	}
	return m
}

func wireErr(t *testing.T, line string) *acp.WireError {
	t.Helper()
	m := parse(t, line)
	if m.Error == nil {
		t.Fatalf("want an error response, got %s", line)
	}
	we, err := m.DecodeError()
	if err != nil {
		t.Fatal(err)
	}
	return we
}

// Messages the bridge does not intercept pass byte for byte, both ways,
// in order.
func TestLosslessRelay(t *testing.T) {
	h := newHarness(t, nil)
	for _, l := range []string{
		`{"jsonrpc":"2.0","method":"_zed/custom","params":{"z":1,"a":[1.50,2e3],"_meta":{"k":"ü 😀"}}}`,
		`{ "jsonrpc" : "2.0", "id" : "s-1", "method" : "session/prompt", "params" : {"sessionId":"x","prompt":[],"unknown":true} }`,
		`{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"x"}}`,
		`{"jsonrpc":"2.0","id":7,"method":"$/cancel_request","params":{"requestId":"s-1"}}`,
	} {
		h.editorSends(l)
		if got := h.agentGets(); got != l {
			t.Fatalf("editor → agent changed bytes:\n sent %s\n  got %s", l, got)
		}
	}
	for _, l := range []string{
		`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"x","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"héllo \u2028"}},"_meta":{}}}`,
		`{"jsonrpc":"2.0","id":"s-1","result":{"stopReason":"end_turn","extra":[null]}}`,
		`{"jsonrpc":"2.0","id":99,"method":"session/request_permission","params":{"sessionId":"x","options":[]}}`,
	} {
		h.agentSends(l)
		if got := h.editorGets(); got != l {
			t.Fatalf("agent → editor changed bytes:\n sent %s\n  got %s", l, got)
		}
	}
	// The editor's answer to the agent's request passes too.
	h.editorSends(`{"jsonrpc":"2.0","id":99,"result":{"outcome":{"outcome":"cancelled"}}}`)
	if got := h.agentGets(); got != `{"jsonrpc":"2.0","id":99,"result":{"outcome":{"outcome":"cancelled"}}}` {
		t.Fatalf("response changed: %s", got)
	}
}

func TestInitializeClampAndAuthRewrite(t *testing.T) {
	h := newHarness(t, nil)
	h.editorSends(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":2,"clientCapabilities":{"fs":{"readTextFile":true},"terminal":false,"_meta":{"terminal_output":true}}}}`)
	var p struct {
		ProtocolVersion    int             `json:"protocolVersion"`
		ClientCapabilities json.RawMessage `json:"clientCapabilities"`
	}
	json.Unmarshal(parse(t, h.agentGets()).Params, &p)
	if p.ProtocolVersion != 1 {
		t.Errorf("agent was offered protocol %d, want 1", p.ProtocolVersion)
	}
	if string(p.ClientCapabilities) != `{"fs":{"readTextFile":true},"terminal":false,"_meta":{"terminal_output":true}}` {
		t.Errorf("capabilities changed: %s", p.ClientCapabilities)
	}
	h.agentSends(`{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":5,"authMethods":[{"id":"login","name":"Login","_meta":{"terminal-auth":{"command":"/usr/bin/agent","args":["--login"],"label":"Log in"}}},{"id":"key","name":"API key"}]}}`)
	var r struct {
		ProtocolVersion int `json:"protocolVersion"`
		AuthMethods     []struct {
			ID   string `json:"id"`
			Meta struct {
				TA struct {
					Command string   `json:"command"`
					Args    []string `json:"args"`
					Label   string   `json:"label"`
				} `json:"terminal-auth"`
			} `json:"_meta"`
		} `json:"authMethods"`
	}
	json.Unmarshal(parse(t, h.editorGets()).Result, &r)
	if r.ProtocolVersion != 1 || len(r.AuthMethods) != 2 || r.AuthMethods[1].ID != "key" {
		t.Fatalf("initialize result: %+v", r)
	}
	ta := r.AuthMethods[0].Meta.TA
	want := []string{"run", "--workspace", h.ws, "--", "/usr/bin/agent", "--login"}
	if ta.Command != "/usr/bin/acp-sandbox" || strings.Join(ta.Args, " ") != strings.Join(want, " ") || ta.Label != "Log in" {
		t.Errorf("terminal-auth not rewritten to re-enter acp-sandbox: %+v", ta)
	}
}

func (h *harness) newSession(id string) {
	h.t.Helper()
	h.editorSends(`{"jsonrpc":"2.0","id":"new","method":"session/new","params":{"cwd":"` + h.ws + `","mcpServers":[]}}`)
	h.agentGets()
	h.agentSends(`{"jsonrpc":"2.0","id":"new","result":{"sessionId":"` + id + `"}}`)
	h.editorGets()
}

func TestSessionRoots(t *testing.T) {
	h := newHarness(t, nil)
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(h.ws, "link-out"))
	os.Mkdir(filepath.Join(h.ws, "sub"), 0o755)
	for _, c := range []struct{ name, params string }{
		{"cwd outside", `{"cwd":"` + outside + `","mcpServers":[]}`},
		{"relative cwd", `{"cwd":"relative/dir","mcpServers":[]}`},
		{"symlink out of the workspace", `{"cwd":"` + h.ws + `/link-out","mcpServers":[]}`},
		{"dotdot escape", `{"cwd":"` + h.ws + `/sub/../..","mcpServers":[]}`},
		{"additional dir outside", `{"cwd":"` + h.ws + `","additionalDirectories":["/etc"],"mcpServers":[]}`},
	} {
		h.editorSends(`{"jsonrpc":"2.0","id":1,"method":"session/new","params":` + c.params + `}`)
		we := wireErr(t, h.editorGets())
		if we.Code != acp.InvalidParams || !strings.Contains(we.Message, "--workspace") {
			t.Errorf("%s: %+v", c.name, we)
		}
		h.agentGetsOnly("") // the agent never saw it
	}
	ok := `{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"` + h.ws + `/sub","additionalDirectories":["` + h.ws + `"],"mcpServers":[]}}`
	h.editorSends(ok)
	if got := h.agentGets(); got != ok {
		t.Errorf("a valid session/new was changed: %s", got)
	}
}

func TestFSContainment(t *testing.T) {
	h := newHarness(t, nil)
	h.newSession("s1")
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	os.Symlink("/etc", filepath.Join(h.ws, "etc-link"))
	os.Symlink(outside, filepath.Join(h.ws, "out-link"))
	os.Mkdir(filepath.Join(h.ws, "real"), 0o755)
	os.Symlink(filepath.Join(h.ws, "real"), filepath.Join(h.ws, "in-link"))

	// Each refused path names the escape it stops.
	for _, p := range []string{
		"/etc/passwd",  // absolute path outside
		"relative.txt", // not absolute: ambiguous on host vs VM
		h.ws + "/../" + filepath.Base(h.ws) + "x/f", // dotdot out to a sibling
		h.ws + "/real/../../escape.txt",             // dotdot through a real dir
		h.ws + "/etc-link/passwd",                   // symlink in the workspace to /etc
		h.ws + "/out-link/secret",                   // symlink to another dir
		h.ws + "/out-link/new-file",                 // write through a symlink to a new file
	} {
		for _, method := range []string{"fs/write_text_file", "fs/read_text_file"} {
			h.agentSends(`{"jsonrpc":"2.0","id":5,"method":"` + method + `","params":{"sessionId":"s1","path":"` + p + `","content":"pwned"}}`)
			we := wireErr(t, h.agentGets())
			if we.Code != acp.InvalidParams || !strings.Contains(we.Message, "refused") {
				t.Errorf("%s %s: %+v", method, p, we)
			}
			h.editorGetsOnly() // the editor never saw it
		}
	}
	// A duplicate key spelled differently must not smuggle a path past the
	// check (Go's decoder would read the last, the editor the first).
	h.agentSends(`{"jsonrpc":"2.0","id":6,"method":"fs/write_text_file","params":{"sessionId":"s1","path":"/etc/passwd","PATH":"` + h.ws + `/ok","content":"x"}}`)
	wireErr(t, h.agentGets())
	h.editorGetsOnly()

	// Inside: forwarded; through an inner symlink, with the resolved path.
	in := `{"jsonrpc":"2.0","id":7,"method":"fs/write_text_file","params":{"sessionId":"s1","path":"` + h.ws + `/real/new.txt","content":"ok"}}`
	h.agentSends(in)
	if got := h.editorGets(); got != in {
		t.Errorf("inside write changed: %s", got)
	}
	h.agentSends(`{"jsonrpc":"2.0","id":8,"method":"fs/read_text_file","params":{"sessionId":"s1","path":"` + h.ws + `/in-link/new.txt"}}`)
	var p struct{ Path string }
	json.Unmarshal(parse(t, h.editorGets()).Params, &p)
	if p.Path != filepath.Join(h.ws, "real", "new.txt") {
		t.Errorf("symlinked path forwarded as %s, want the resolved path", p.Path)
	}
}

func TestTerminalRewrite(t *testing.T) {
	h := newHarness(t, nil)
	h.agentSends(`{"jsonrpc":"2.0","id":3,"method":"terminal/create","params":{"sessionId":"s","command":"npm","args":["test","--","a b"],"env":[{"name":"CI","value":"1"}],"cwd":"` + h.ws + `","outputByteLimit":1000}}`)
	var p struct {
		Command         string                         `json:"command"`
		Args            []string                       `json:"args"`
		Cwd             string                         `json:"cwd"`
		Env             []struct{ Name, Value string } `json:"env"`
		OutputByteLimit int                            `json:"outputByteLimit"`
	}
	json.Unmarshal(parse(t, h.editorGets()).Params, &p)
	want := []string{"exec", "--sandbox", "abc", "--cwd", h.ws, "--env", "CI=1", "--", "npm", "test", "--", "a b"}
	if p.Command != "/usr/bin/acp-sandbox" || strings.Join(p.Args, "|") != strings.Join(want, "|") {
		t.Errorf("terminal/create → %s %q", p.Command, p.Args)
	}
	if len(p.Env) != 1 || p.Env[0].Name != "XDG_STATE_HOME" || p.Cwd != h.ws || p.OutputByteLimit != 1000 {
		t.Errorf("env %v (must not reach the host process), cwd %q, limit %d", p.Env, p.Cwd, p.OutputByteLimit)
	}
	// A cwd that does not exist on the host: the host process starts in
	// the workspace, the VM command still gets --cwd.
	h.agentSends(`{"jsonrpc":"2.0","id":4,"method":"terminal/create","params":{"sessionId":"s","command":"ls","cwd":"/opt/vm-only"}}`)
	json.Unmarshal(parse(t, h.editorGets()).Params, &p)
	if p.Cwd != h.ws || p.Args[3] != "--cwd" || p.Args[4] != "/opt/vm-only" {
		t.Errorf("vm-only cwd: cwd %q args %q", p.Cwd, p.Args)
	}
}

func TestAgentDeathFailsPending(t *testing.T) {
	h := newHarness(t, nil)
	h.editorSends(`{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"sessionId":"s","prompt":[]}}`)
	h.editorSends(`{"jsonrpc":"2.0","id":"two","method":"session/prompt","params":{"sessionId":"s","prompt":[]}}`)
	h.agentGets()
	h.agentGets()
	h.agW.Close()
	h.agDone <- errors.New("exit status 3")
	got := map[string]bool{}
	for range 2 {
		m := parse(t, h.editorGets())
		we, _ := m.DecodeError()
		if we == nil || !strings.Contains(we.Message, "exit status 3") || !strings.Contains(we.Message, "/state/agent.log") {
			t.Errorf("pending request answered with %+v", we)
		}
		got[m.ID.String()] = true
	}
	if len(got) != 2 {
		t.Errorf("ids answered: %v", got)
	}
	if err := <-h.runErr; !errors.Is(err, ErrAgentExited) {
		t.Errorf("Run returned %v", err)
	}
	h.runErr <- nil // for cleanup
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, nil)
	h.editorSends(`{"jsonrpc":"2.0","id":1,"method":`) // truncated
	we := wireErr(t, h.editorGets())
	if we.Code != acp.ParseError {
		t.Errorf("malformed JSON: code %d", we.Code)
	}
	h.editorSends(`[{"jsonrpc":"2.0","id":1,"method":"x"}]`) // batch
	if we := wireErr(t, h.editorGets()); we.Code != acp.InvalidRequest && we.Code != acp.ParseError {
		t.Errorf("batch: code %d", we.Code)
	}
	// The session goes on.
	h.agentGetsOnly("")
	// Garbage from the agent is dropped, never shown as protocol.
	h.agentSends(`npm WARN deprecated something`)
	h.editorGetsOnly()
	// Reserved ids are refused on both sides.
	h.editorSends(`{"jsonrpc":"2.0","id":"acp-sandbox:x:1","method":"session/prompt","params":{}}`)
	wireErr(t, h.editorGets())
	h.agentSends(`{"jsonrpc":"2.0","id":"acp-sandbox:x:2","method":"fs/read_text_file","params":{}}`)
	wireErr(t, h.agentGets())
	h.editorGetsOnly()
}

func TestMCPServers(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.CommandExists = func(_ context.Context, cmd string) bool { return cmd == "/usr/bin/in-vm-server" }
	})
	h.editorSends(`{"jsonrpc":"2.0","id":1,"method":"session/new","params":{"cwd":"` + h.ws + `","mcpServers":[` +
		`{"name":"vm","command":"/usr/bin/in-vm-server","args":[],"env":[]},` +
		`{"name":"hostonly","command":"/home/me/bin/server","args":[],"env":[]},` +
		`{"type":"http","name":"local","url":"http://127.0.0.1:8080/mcp","headers":[]},` +
		`{"type":"http","name":"remote","url":"https://mcp.example.com/mcp","headers":[]}]}}`)
	var p struct {
		MCPServers []struct{ Name string } `json:"mcpServers"`
	}
	json.Unmarshal(parse(t, h.agentGets()).Params, &p)
	var names []string
	for _, s := range p.MCPServers {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "vm,remote" {
		t.Errorf("servers passed to the agent: %v", names)
	}
	h.agentSends(`{"jsonrpc":"2.0","id":1,"result":{"sessionId":"s9"}}`)
	h.editorGets() // the response
	warn := h.editorGets() + h.editorGets()
	if !strings.Contains(warn, `hostonly`) || !strings.Contains(warn, "local") || !strings.Contains(warn, `"sessionId":"s9"`) {
		t.Errorf("the user was not told about removed servers: %s", warn)
	}
}

func TestEditorHangsUp(t *testing.T) {
	h := newHarness(t, nil)
	h.edW.Close()
	select {
	case _, ok := <-h.agLines:
		if ok {
			t.Fatal("unexpected line to agent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent's stdin not closed after the editor hung up")
	}
	if err := <-h.runErr; err != nil {
		t.Errorf("Run after editor EOF: %v", err)
	}
	h.runErr <- nil
}

// A 64 MiB message (a big file read, say) passes intact both ways; unicode
// included.
func TestHugeLines(t *testing.T) {
	h := newHarness(t, nil)
	big := strings.Repeat("é0123456789abcdef", (64<<20)/18+1)
	line := `{"jsonrpc":"2.0","method":"_x/big","params":{"text":"` + big + `"}}`
	go io.WriteString(h.edW, line+"\n") // a pipe: the write waits for the reader
	if got := h.agentGets(); got != line {
		t.Fatalf("editor → agent: %d bytes arrived, %d sent", len(got), len(line))
	}
	resp := `{"jsonrpc":"2.0","id":1,"result":{"content":"` + big + `"}}`
	go io.WriteString(h.agW, resp+"\n")
	if got := h.editorGets(); got != resp {
		t.Fatalf("agent → editor: %d bytes arrived, %d sent", len(got), len(resp))
	}
}

// Notices (an install on this start) reach the user once, in the thread of
// the first session that opens: not on a failed session/new, not again on
// a later session.
func TestNotices(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Notices = []string{"installed pkg@1.0.0 in this sandbox (41s); next starts reuse it."}
	})
	h.editorSends(`{"jsonrpc":"2.0","id":1,"method":"session/new","params":{"cwd":"` + h.ws + `","mcpServers":[]}}`)
	h.agentGets()
	h.agentSends(`{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"auth required"}}`)
	wireErr(t, h.editorGets())
	h.editorGetsOnly() // no session: no notice yet

	h.editorSends(`{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"` + h.ws + `","mcpServers":[]}}`)
	h.agentGets()
	h.agentSends(`{"jsonrpc":"2.0","id":2,"result":{"sessionId":"s1"}}`)
	if m := parse(t, h.editorGets()); m.Kind != acp.KindResponse {
		t.Fatalf("the answer must come first, got %s", m.Raw)
	}
	var u struct {
		SessionID string `json:"sessionId"`
		Update    struct {
			SessionUpdate string `json:"sessionUpdate"`
			Content       struct{ Type, Text string }
		} `json:"update"`
	}
	n := parse(t, h.editorGets())
	if err := json.Unmarshal(n.Params, &u); err != nil || n.Method != "session/update" {
		t.Fatalf("want a session/update, got %s", n.Raw)
	}
	if u.SessionID != "s1" || u.Update.SessionUpdate != "agent_message_chunk" || u.Update.Content.Type != "text" ||
		u.Update.Content.Text != "acp-sandbox: installed pkg@1.0.0 in this sandbox (41s); next starts reuse it.\n" {
		t.Errorf("notice %+v", u)
	}
	h.editorGetsOnly()

	// Later sessions, new or loaded, open without it.
	h.newSession("s2")
	h.editorGetsOnly()
	h.editorSends(`{"jsonrpc":"2.0","id":3,"method":"session/load","params":{"sessionId":"s1","cwd":"` + h.ws + `","mcpServers":[]}}`)
	h.agentGets()
	h.agentSends(`{"jsonrpc":"2.0","id":3,"result":{}}`)
	h.editorGets()
	h.editorGetsOnly()
}

// A bridge without notices adds nothing to a new session.
func TestNoNotices(t *testing.T) {
	h := newHarness(t, nil)
	h.newSession("s1")
	h.editorGetsOnly()
}
