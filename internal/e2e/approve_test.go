package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/creack/pty"
)

// Approve-on-block through the bridge: the agent in the VM fetches a host
// the policy does not allow during a prompt turn; the editor sees a fetch
// tool call and a permission request, and its answer decides the flow.
func TestApproveOnBlock(t *testing.T) {
	e := vmtest.NewEnv(t)
	fn := newFakeNet(t)
	e.Vars = append(e.Vars, sandbox.TestNetEnv+"="+fn.file, sandbox.TestApproveTimeoutEnv+"=8s")
	ws := e.Workspace()

	var (
		mu     sync.Mutex
		choice string // option id to pick; "" = never answer
		asked  []string
	)
	ed := &acpclient.HostEditor{Choose: func(m *acp.Message) string {
		var p struct {
			ToolCall struct {
				Title string `json:"title"`
			} `json:"toolCall"`
		}
		_ = json.Unmarshal(m.Params, &p)
		mu.Lock()
		asked = append(asked, p.ToolCall.Title)
		c := choice
		mu.Unlock()
		if c == "" {
			time.Sleep(20 * time.Second) // no answer in time
		}
		return c
	}}
	c, stderr := startACP(t, e, ws, ed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	session := initSession(t, ctx, c, ws)

	fetch := func(mode, url string) string {
		t.Helper()
		mu.Lock()
		choice, asked = mode, nil
		mu.Unlock()
		n := len(c.Updates())
		if _, err := prompt(ctx, c, session, "fetch "+url); err != nil {
			t.Fatalf("prompt: %v\nstderr:\n%s", err, stderr)
		}
		var text strings.Builder
		for _, u := range c.Updates()[n:] {
			text.Write(u.Params)
		}
		return text.String()
	}
	askedTitles := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), asked...)
	}

	t.Run("allow once", func(t *testing.T) {
		out := fetch("acp-sandbox-allow-once", "http://api.example.com/")
		if !strings.Contains(out, "fetch http://api.example.com/: 200 hello http api.example.com") {
			t.Fatalf("fetch not allowed after allow once:\n%s", out)
		}
		if a := askedTitles(); len(a) != 1 || a[0] != "Network access to DNS lookup of api.example.com" {
			t.Errorf("asked %q, want one question for the lookup", a)
		}
		if !strings.Contains(out, `"kind":"fetch"`) || !strings.Contains(out, `"sessionUpdate":"tool_call_update"`) || !strings.Contains(out, "allowed once") {
			t.Errorf("no fetch tool call shown in the thread:\n%s", out)
		}
	})

	t.Run("reject", func(t *testing.T) {
		out := fetch("acp-sandbox-reject", "http://other.example.com/")
		if !strings.Contains(out, "fetch http://other.example.com/: error") {
			t.Fatalf("fetch went through after reject:\n%s", out)
		}
		if len(askedTitles()) != 1 {
			t.Errorf("asked %q", askedTitles())
		}
		// A rejected pattern is not asked again right away.
		out = fetch("acp-sandbox-allow-once", "http://other.example.com/")
		if !strings.Contains(out, "error") || len(askedTitles()) != 0 {
			t.Errorf("asked again right after a reject (%q):\n%s", askedTitles(), out)
		}
	})

	t.Run("no answer times out", func(t *testing.T) {
		t0 := time.Now()
		out := fetch("", "http://third.example.com/")
		if !strings.Contains(out, "fetch http://third.example.com/: error") {
			t.Fatalf("fetch went through without an answer:\n%s", out)
		}
		if len(askedTitles()) == 0 {
			t.Errorf("the editor was not asked")
		}
		t.Logf("denied after %v without an answer", time.Since(t0).Round(time.Second))
	})

	t.Run("allow always", func(t *testing.T) {
		out := fetch("acp-sandbox-allow-always", "http://always.example.com/")
		if !strings.Contains(out, "fetch http://always.example.com/: 200 hello http always.example.com") {
			t.Fatalf("fetch not allowed after allow always:\n%s", out)
		}
		show := e.MustRun(ws, "policy", "show")
		if !strings.Contains(show, "always.example.com") {
			t.Errorf("allow always not in the effective policy:\n%s", show)
		}
		if b, err := os.ReadFile(filepath.Join(ws, "sandbox.toml")); err == nil && strings.Contains(string(b), "always.example.com") {
			t.Errorf("allow always was written into the repository's sandbox.toml")
		}
	})

	// Stored on the host: a new VM, with no editor to ask, allows it.
	c.Close(ctx)
	e.MustRun(ws, "stop")
	if r := e.Run(ws, nil, "run", "-q", "--", "curl", "-sS", "-m", "20", "http://always.example.com/"); r.Code != 0 || !strings.Contains(r.Stdout, "hello http always.example.com") {
		t.Errorf("after a restart: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	// Outside a prompt turn nobody is asked: denied at once.
	t0 := time.Now()
	if r := e.Run(ws, nil, "run", "-q", "--", "curl", "-sS", "-m", "20", "http://other.example.com/"); r.Code == 0 {
		t.Errorf("an unlisted host was reached with no one to ask")
	}
	if d := time.Since(t0); d > 15*time.Second {
		t.Logf("denial with no approver took %v", d)
	}
}

// Headless `run` with a terminal: the question appears on the terminal and
// one keystroke answers it; the command's own input is untouched.
func TestApproveOnBlockTTY(t *testing.T) {
	e := vmtest.NewEnv(t)
	fn := newFakeNet(t)
	e.Vars = append(e.Vars, sandbox.TestNetEnv+"="+fn.file, sandbox.TestApproveTimeoutEnv+"=30s")
	ws := e.Workspace()
	e.MustRun(ws, "start", "-q")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, ws, "run", "-q", "--", "bash", "-c", "curl -sS -m 60 http://api.example.com/ && read -r line && echo got:$line")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(s string) {
		t.Helper()
		for ctx.Err() == nil {
			mu.Lock()
			ok := strings.Contains(out.String(), s)
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%q never appeared:\n%s", s, out.String())
	}
	waitFor("allow? [o]nce")
	_, _ = f.Write([]byte("o"))
	waitFor("hello http api.example.com")
	_, _ = f.Write([]byte("typed\r"))
	waitFor("got:typed")
	if err := cmd.Wait(); err != nil {
		t.Errorf("run: %v", err)
	}
}
