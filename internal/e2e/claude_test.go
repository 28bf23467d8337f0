package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/standin"
	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
)

// The real Claude agent in the VM answers a prompt from a loopback
// stand-in of the Anthropic API, reached as https://api.anthropic.com: the
// VM holds a placeholder key, the network stack puts the real key on the
// way out (the stand-in accepts nothing else), and the real key is nowhere
// the agent or we could leak it from.
func TestRealClaudePrompt(t *testing.T) { claudePrompt(t, false) }

// The same, with the key given by the editor over ACP: authenticate with
// the "gateway" method (claude-agent-acp offers it to an editor that
// advertises auth._meta.gateway) names a model gateway and its
// Authorization header. The bridge hands the header to the host and the
// agent a placeholder; the gateway, not in any policy, is reachable while
// that editor is connected and not after.
func TestRealClaudeGatewayKeyFromEditor(t *testing.T) { claudePrompt(t, true) }

func claudePrompt(t *testing.T, gateway bool) {
	agent := AgentsPrefix + "/bin/claude-agent-acp"
	if _, err := os.Stat(agent); err != nil {
		vmtest.Skip(t, "claude-agent-acp is not installed: scripts/test-deps.sh installs it under %s", AgentsPrefix)
	}
	var rb [16]byte
	_, _ = rand.Read(rb[:])
	secret := "sk-ant-test-" + hex.EncodeToString(rb[:])
	const reply = "Hello from the stand-in, through the sandbox."
	const gwHost = "gw.example.test"
	api := standin.New(standin.Options{TLS: true, Hosts: []string{"api.anthropic.com", gwHost}, Reply: reply, Key: secret, Logf: t.Logf})
	defer api.Close()

	e := vmtest.NewEnv(t)
	useStandin(t, e, api, "api.anthropic.com", gwHost)
	if !gateway {
		// The key is in the environment of the acp-sandbox the editor
		// starts, as it would be in a user's.
		e.Vars = append(e.Vars, "ANTHROPIC_API_KEY="+secret)
	}
	ws := e.Workspace()
	// ACPS_CLAUDE_DEBUG=1 turns on the Claude CLI's debug log (it says why
	// a stream fell back to non-streaming, for one); on failure it is shown
	// with the sandbox's own logs.
	if os.Getenv("ACPS_CLAUDE_DEBUG") != "" {
		_ = os.MkdirAll(filepath.Join(e.Home, ".config/acp-sandbox"), 0o755)
		_ = os.WriteFile(filepath.Join(e.Home, ".config/acp-sandbox/config.toml"), []byte("[env]\nDEBUG_SDK = \"1\"\nCLAUDE_CODE_DEBUG_LOGS_DIR = \""+ws+"/.dbg\"\n"), 0o644)
	}
	defer func() {
		if t.Failed() {
			out, _ := exec.Command("sh", "-c", "cat "+ws+"/.dbg/* 2>/dev/null | grep -v '^$' | tail -300; for f in "+e.Home+"/.local/state/acp-sandbox/*/sandbox.log; do echo == $f; tail -80 $f; done").CombinedOutput()
			t.Logf("logs:\n%s", out)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stderr := &syncWriter{}
	// This editor allows once what the network asks about, as a user
	// clicking through would: the agent looks up raw.githubusercontent.com
	// during the turn (its plugin blocklist; the test network has no such
	// name, so the lookup then fails as it would offline), so the turn
	// also goes through approve-on-block. (That approval was suspected of
	// cutting the model's stream after its first delta; the cause was the
	// proxy's handling of the request body: TestUploadOutlivesResponseHeader
	// in netstack/mitm.)
	var asked []string
	var askedMu sync.Mutex
	ed := &acpclient.HostEditor{Choose: func(m *acp.Message) string {
		askedMu.Lock()
		asked = append(asked, string(m.Params))
		askedMu.Unlock()
		return "acp-sandbox-allow-once"
	}}
	c, err := acpclient.Start([]string{e.Bin, "--", agent}, e.Vars, ws, stderr, ed.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	caps := map[string]any{"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true}
	if gateway {
		caps["auth"] = map[string]any{"_meta": map[string]any{"gateway": true}}
	}
	res, err := c.Call(ctx, "initialize", map[string]any{"protocolVersion": 1, "clientCapabilities": caps})
	if err != nil {
		t.Fatalf("initialize: %v\n%s", err, stderr)
	}
	if gateway {
		if !strings.Contains(string(res), `"id":"gateway"`) {
			t.Fatalf("the agent offers no gateway auth method: %s", res)
		}
		if _, err := c.Call(ctx, "authenticate", map[string]any{"methodId": "gateway", "_meta": map[string]any{
			"gateway": map[string]any{"baseUrl": "https://" + gwHost, "headers": map[string]string{"Authorization": "Bearer " + secret}}}}); err != nil {
			t.Fatalf("authenticate: %v\n%s", err, stderr)
		}
	}
	res, err = c.Call(ctx, "session/new", map[string]any{"cwd": ws, "mcpServers": []any{}})
	if err != nil {
		t.Fatalf("session/new: %v\n%s", err, stderr)
	}
	var sn struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(res, &sn)
	n := len(c.Updates())
	t0 := time.Now()
	res, err = prompt(ctx, c, sn.SessionID, "say hello")
	if err != nil {
		t.Fatalf("session/prompt: %v\nstderr:\n%s\nrequests: %+v", err, stderr, api.Requests())
	}
	t.Logf("prompt answered in %v: %s", time.Since(t0).Round(time.Millisecond), res)
	var pr struct {
		StopReason string `json:"stopReason"`
	}
	_ = json.Unmarshal(res, &pr)
	text := c.Streamed(sn.SessionID, n)
	if pr.StopReason != "end_turn" || text != reply {
		askedMu.Lock()
		t.Errorf("stopReason %q, streamed %q; want end_turn and %q\nnetwork questions: %q\nacp-sandbox and agent stderr:\n%s", pr.StopReason, text, reply, asked, stderr)
		askedMu.Unlock()
		logs, _ := filepath.Glob(filepath.Join(e.Home, ".local/state/acp-sandbox/*/network.jsonl"))
		for _, l := range logs { // sandbox.log: the deferred dump above
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
	}
	if !slices.Contains(api.KeysSeen(), secret) {
		t.Errorf("the stand-in never got the real key: %q", api.KeysSeen())
	}
	if gateway {
		var gw int
		for _, r := range api.Requests() {
			if strings.HasPrefix(r.Path, "/v1/messages") && r.Host != gwHost {
				t.Errorf("a model request went to %s, not the gateway", r.Host)
			}
			if r.Host == gwHost {
				gw++
			}
		}
		if gw == 0 {
			t.Error("no request reached the gateway")
		}
	}
	for _, k := range api.KeysSeen() {
		if strings.HasPrefix(k, mitm.PlaceholderPrefix) {
			t.Errorf("a placeholder reached the API: the injection missed a request")
		}
	}

	// The agent's environment, what the sandbox user sees, and our logs.
	keyVar := "ANTHROPIC_API_KEY"
	if gateway {
		keyVar = ""
	}
	vm := assertSecretHidden(t, e, ws, stderr, secret, keyVar)
	if gateway && !strings.Contains(vm, "ANTHROPIC_CUSTOM_HEADERS=Authorization: "+mitm.PlaceholderPrefix) {
		t.Errorf("the agent's Claude process does not hold the gateway header as a placeholder")
	}

	if !gateway {
		return
	}
	// The editor leaves: its key and its gateway go with it.
	if err := c.Close(ctx); err != nil {
		t.Logf("close: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.Run(ws, nil, "exec", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "https://"+gwHost+"/v1/models")
		if r.Code != 0 {
			break // blocked: the name no longer resolves
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway is still reachable after the editor left: %s", r.Stdout)
		}
		time.Sleep(time.Second)
	}
}
