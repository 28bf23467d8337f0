package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
)

// startACP launches `acp-sandbox -- /init demo-agent` as an editor would,
// with a host-side editor serving fs/* and terminals.
func startACP(t *testing.T, e *vmtest.Env, ws string, ed *acpclient.HostEditor) (*acpclient.Client, *syncWriter) {
	t.Helper()
	stderr := &syncWriter{}
	c, err := acpclient.Start([]string{e.Bin, "--", "/init", "demo-agent"}, e.Vars, ws, stderr, ed.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c, stderr
}

func initSession(t *testing.T, ctx context.Context, c *acpclient.Client, ws string) string {
	t.Helper()
	res, err := c.Call(ctx, "initialize", map[string]any{
		"protocolVersion":    7, // newer than ours: must be clamped to 1
		"clientCapabilities": map[string]any{"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true},
	})
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	var ir struct {
		ProtocolVersion int `json:"protocolVersion"`
		AuthMethods     []struct {
			ID   string `json:"id"`
			Meta struct {
				TA struct {
					Command string   `json:"command"`
					Args    []string `json:"args"`
				} `json:"terminal-auth"`
			} `json:"_meta"`
		} `json:"authMethods"`
	}
	if err := json.Unmarshal(res, &ir); err != nil || ir.ProtocolVersion != 1 || len(ir.AuthMethods) != 1 || ir.AuthMethods[0].ID != "demo-login" {
		t.Fatalf("initialize result %s (%v)", res, err)
	}
	if ta := ir.AuthMethods[0].Meta.TA; !strings.HasSuffix(ta.Command, "acp-sandbox") && !strings.Contains(ta.Command, "acp-sandbox-") || !strings.Contains(strings.Join(ta.Args, " "), "-- demo-agent --login") {
		t.Errorf("terminal-auth does not re-enter acp-sandbox: %+v", ta)
	}
	res, err = c.Call(ctx, "session/new", map[string]any{"cwd": ws, "mcpServers": []any{}})
	if err != nil {
		t.Fatalf("session/new: %v", err)
	}
	var sr struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(res, &sr)
	return sr.SessionID
}

func prompt(ctx context.Context, c *acpclient.Client, session, script string) (json.RawMessage, error) {
	return c.Call(ctx, "session/prompt", map[string]any{
		"sessionId": session,
		"prompt":    []any{map[string]any{"type": "text", "text": script}},
	})
}

func TestBridge(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	ed := &acpclient.HostEditor{}
	c, stderr := startACP(t, e, ws, ed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	session := initSession(t, ctx, c, ws)

	outside := t.TempDir()
	os.Symlink("/etc", filepath.Join(ws, "etc-link"))
	file := filepath.Join(ws, "notes.txt")
	script := strings.Join([]string{
		"whereami",
		"init",
		"write " + file + " written-through-the-editor",
		"read " + file,
		"write " + filepath.Join(outside, "escape.txt") + " nope",
		"write " + ws + "/etc-link/escape.txt nope",
		"read /etc/hostname",
		"terminal sh -c hostname;uname;id",
		"permission Allow the test",
		"stream 50",
	}, "\n")
	res, err := prompt(ctx, c, session, script)
	if err != nil {
		t.Fatalf("prompt: %v\nstderr: %s", err, stderr)
	}
	if !strings.Contains(string(res), "end_turn") {
		t.Errorf("prompt result %s", res)
	}
	text := c.Text(session)
	hostName, _ := os.Hostname()

	t.Run("agent runs in the VM", func(t *testing.T) {
		if !strings.Contains(text, "kernel 6.") || strings.Contains(text, "host "+hostName+" ") {
			t.Errorf("whereami: %s", text)
		}
		if !strings.Contains(text, `"protocolVersion":1`) {
			t.Errorf("agent was not offered protocol 1: %s", text)
		}
	})
	t.Run("fs goes through the editor", func(t *testing.T) {
		b, err := os.ReadFile(file)
		if err != nil || string(b) != "written-through-the-editor" {
			t.Errorf("file on host: %q %v", b, err)
		}
		if !strings.Contains(text, "read "+file+": written-through-the-editor") {
			t.Errorf("read back: %s", text)
		}
	})
	t.Run("escapes refused before the editor", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(outside, "escape.txt")); err == nil {
			t.Error("write outside the workspace happened")
		}
		if strings.Count(text, "refused fs/") < 3 {
			t.Errorf("want 3 refusals (outside dir, symlink to /etc, /etc read):\n%s", text)
		}
		for _, r := range c.Requests() {
			var p struct{ Path string }
			json.Unmarshal(r.Params, &p)
			if p.Path != "" && !strings.HasPrefix(p.Path, ws+"/") {
				t.Errorf("editor saw a request for %s", p.Path)
			}
		}
	})
	t.Run("terminals run in the VM", func(t *testing.T) {
		var create *acp.Message
		for _, r := range c.Requests() {
			if r.Method == "terminal/create" {
				create = r
			}
		}
		if create == nil {
			t.Fatal("no terminal/create reached the editor")
		}
		var p struct {
			Command string   `json:"command"`
			Args    []string `json:"args"`
		}
		json.Unmarshal(create.Params, &p)
		if p.Command != e.Bin || p.Args[0] != "exec" || p.Args[1] != "--sandbox" {
			t.Errorf("terminal/create not rewritten: %s %v", p.Command, p.Args)
		}
		// The editor ran our exec on the host, and the output shows the
		// VM's hostname and the unprivileged user.
		if !strings.Contains(text, "sandbox-") || strings.Contains(text, "output "+hostName) || !strings.Contains(text, "agent") {
			t.Errorf("terminal output: %s", text)
		}
	})
	t.Run("permission round trip", func(t *testing.T) {
		if !strings.Contains(text, `"optionId":"allow"`) {
			t.Errorf("permission: %s", text)
		}
	})
	t.Run("notifications in order", func(t *testing.T) {
		i := strings.Index(text, "chunk 0")
		for n := 1; n < 50; n++ {
			j := strings.Index(text, "chunk "+strconv.Itoa(n)+"\n")
			if j < i {
				t.Fatalf("chunk %d out of order", n)
			}
			i = j
		}
	})
	t.Run("malformed input keeps the session", func(t *testing.T) {
		if err := c.Send([]byte(`{"jsonrpc":"2.0","id":`)); err != nil {
			t.Fatal(err)
		}
		res, err := prompt(ctx, c, session, "say still here")
		if err != nil || !strings.Contains(c.Text(session), "still here") {
			t.Errorf("after malformed input: %s %v", res, err)
		}
	})
	t.Run("session outside the workspace", func(t *testing.T) {
		_, err := c.Call(ctx, "session/new", map[string]any{"cwd": outside, "mcpServers": []any{}})
		var we *acp.WireError
		if !errors.As(err, &we) || !strings.Contains(we.Message, "--workspace") {
			t.Errorf("session/new outside: %v", err)
		}
	})
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("stderr: %s", stderr)
	}
}

// When the agent dies mid-turn, the editor's pending request gets an error
// naming the cause and the log promptly, and acp-sandbox exits non-zero;
// the VM stays up for the next session.
func TestBridgeAgentCrash(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	c, _ := startACP(t, e, ws, &acpclient.HostEditor{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	session := initSession(t, ctx, c, ws)
	_, err := prompt(ctx, c, session, "say about to crash\ncrash")
	var we *acp.WireError
	if !errors.As(err, &we) || !strings.Contains(we.Message, "exit status 3") || !strings.Contains(we.Message, "agent.log") {
		t.Fatalf("pending prompt after the agent crashed: %v", err)
	}
	werr := c.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() == 0 {
		t.Errorf("acp-sandbox exit after agent crash: %v", werr)
	}
	if len(e.QEMUPids()) != 1 {
		t.Errorf("the VM should stay up for the next session")
	}
	// A new editor connection reuses the VM.
	c2, _ := startACP(t, e, ws, &acpclient.HostEditor{})
	initSession(t, ctx, c2, ws)
}

// syncWriter collects a process's stderr while the test reads it.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The VM dying under a running agent: the pending request gets an error
// (not a hang), and acp-sandbox exits non-zero.
func TestBridgeVMDeath(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	c, _ := startACP(t, e, ws, &acpclient.HostEditor{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	session := initSession(t, ctx, c, ws)
	errc := make(chan error, 1)
	go func() {
		_, err := prompt(ctx, c, session, "say waiting\nsleep 600000")
		errc <- err
	}()
	for !strings.Contains(c.Text(session), "waiting") && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	pids := e.QEMUPids()
	if len(pids) != 1 {
		t.Fatalf("QEMU pids %v", pids)
	}
	killed := time.Now()
	syscall.Kill(pids[0], syscall.SIGKILL)
	err := <-errc
	t.Logf("error reached the client %v after the VM died", time.Since(killed).Round(time.Millisecond))
	var we *acp.WireError
	if !errors.As(err, &we) || !strings.Contains(we.Message, "agent exited") {
		t.Fatalf("pending prompt after VM death: %v", err)
	}
	if werr := c.Wait(); werr == nil {
		t.Error("acp-sandbox exited 0 after its VM died")
	}
}

// The editor closing its side stops the agent but leaves the VM for the
// next connection.
func TestBridgeEditorCloses(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	c, _ := startACP(t, e, ws, &acpclient.HostEditor{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	initSession(t, ctx, c, ws)
	if err := c.Close(ctx); err != nil {
		t.Fatalf("acp-sandbox after editor EOF: %v", err)
	}
	if len(e.QEMUPids()) != 1 {
		t.Fatal("the VM should stay up after the editor leaves")
	}
	out := e.MustRun(ws, "exec", "--", "sh", "-c", "ps -eo user,args | grep -c '[d]emo-agent' || true")
	if strings.TrimSpace(out) != "0" {
		t.Errorf("the agent still runs in the VM after the editor left: %s", out)
	}
}
