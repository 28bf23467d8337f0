package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/standin"
	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// modelCase is a real agent answering one prompt in the VM from a loopback
// stand-in of its model API, reached by the API's real name.
type modelCase struct {
	argv []string
	host string // the model API's name
	// hostEnv returns the variables of the acp-sandbox the editor starts
	// (a key, as in a user's environment); nil: none.
	hostEnv func(secret string) []string
	// auth returns the authenticate params the editor sends; nil: none.
	auth func(secret string) map[string]any
	// keyVar is the VM variable that must hold a placeholder; "": none.
	keyVar string
}

// Gemini CLI in the VM, its key given by the editor over ACP
// (authenticate "gemini-api-key" with _meta["api-key"]): the bridge hands
// the key to the host, the agent gets a placeholder, and the network stack
// puts the real key into its requests to the Gemini API, the one host the
// auth method's provider names.
func TestRealGeminiPromptKeyFromEditor(t *testing.T) {
	promptModel(t, modelCase{
		argv: []string{AgentsPrefix + "/bin/gemini", "--acp"},
		host: "generativelanguage.googleapis.com",
		auth: func(secret string) map[string]any {
			return map[string]any{"methodId": "gemini-api-key", "_meta": map[string]any{"api-key": secret}}
		},
	})
}

// Codex in the VM with OPENAI_API_KEY from the host's environment: the VM
// holds a placeholder (codex even writes it to its auth.json on
// authenticate), and the real key goes out on the Responses API's
// WebSocket and HTTPS requests.
func TestRealCodexPrompt(t *testing.T) {
	promptModel(t, modelCase{
		argv:    []string{AgentsPrefix + "/bin/codex-acp"},
		host:    "api.openai.com",
		hostEnv: func(secret string) []string { return []string{"OPENAI_API_KEY=" + secret} },
		auth:    func(string) map[string]any { return map[string]any{"methodId": "openai-api-key"} },
		keyVar:  "OPENAI_API_KEY",
	})
}

func promptModel(t *testing.T, mc modelCase) {
	if _, err := os.Stat(mc.argv[0]); err != nil {
		vmtest.Skip(t, "%s is not installed: scripts/test-deps.sh installs it under %s", filepath.Base(mc.argv[0]), AgentsPrefix)
	}
	var rb [16]byte
	_, _ = rand.Read(rb[:])
	secret := "key-test-" + hex.EncodeToString(rb[:])
	const reply = "Hello from the stand-in, through the sandbox."
	api := standin.New(standin.Options{TLS: true, Hosts: []string{mc.host}, Reply: reply, Key: secret, Logf: t.Logf})
	defer api.Close()

	e := vmtest.NewEnv(t)
	useStandin(t, e, api, mc.host)
	if mc.hostEnv != nil {
		e.Vars = append(e.Vars, mc.hostEnv(secret)...)
	}
	ws := e.Workspace()

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	stderr := &syncWriter{}
	// The test is about the model API: other hosts the agent tries
	// (usage statistics) are refused.
	ed := &acpclient.HostEditor{Choose: func(*acp.Message) string { return "acp-sandbox-reject" }}
	// The agent's own process group is ended with the ACP process (codex
	// does not exit on EOF; the guest kills the group).
	c, err := acpclient.Start(append([]string{e.Bin, "--"}, mc.argv...), e.Vars, ws, stderr, ed.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	step := func(method string, params any) json.RawMessage {
		t.Helper()
		t0 := time.Now()
		res, err := c.Call(ctx, method, params)
		if err != nil {
			t.Fatalf("%s: %v\nstderr:\n%s\nrequests: %+v", method, err, stderr, api.Requests())
		}
		t.Logf("%s answered in %v", method, time.Since(t0).Round(time.Millisecond))
		return res
	}
	step("initialize", map[string]any{"protocolVersion": 1, "clientCapabilities": map[string]any{
		"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true}})
	if mc.auth != nil {
		step("authenticate", mc.auth(secret))
	}
	var sn struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(step("session/new", map[string]any{"cwd": ws, "mcpServers": []any{}}), &sn)
	n := len(c.Updates())
	res := step("session/prompt", map[string]any{"sessionId": sn.SessionID,
		"prompt": []any{map[string]any{"type": "text", "text": "say hello"}}})
	var pr struct {
		StopReason string `json:"stopReason"`
	}
	_ = json.Unmarshal(res, &pr)
	text := c.Streamed(sn.SessionID, n)
	if pr.StopReason != "end_turn" || !strings.Contains(text, reply) {
		t.Errorf("stopReason %q, streamed %q; want end_turn and %q\nstderr:\n%s", pr.StopReason, text, reply, stderr)
	}
	if !slices.Contains(api.KeysSeen(), secret) {
		t.Errorf("the stand-in never got the real key: %q", api.KeysSeen())
	}
	for _, k := range api.KeysSeen() {
		if strings.Contains(k, mitm.PlaceholderPrefix) {
			t.Errorf("a placeholder reached the API: the injection missed a request")
		}
	}
	assertSecretHidden(t, e, ws, stderr, secret, mc.keyVar)
}

// useStandin makes names resolve, in the VM started from e, to test
// addresses the network stack's test dialer routes to the stand-in, and
// makes the interceptor trust the stand-in's CA upstream (test builds
// only: sandbox.TestNet).
func useStandin(t *testing.T, e *vmtest.Env, api *standin.Server, names ...string) {
	t.Helper()
	dir := t.TempDir()
	tn := sandbox.TestNet{Hosts: map[string][]string{}, Routes: map[string]string{}, UpstreamCA: filepath.Join(dir, "api-ca.pem")}
	if err := os.WriteFile(tn.UpstreamCA, api.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		ip := fmt.Sprintf("203.0.113.%d", 50+i)
		tn.Hosts[name] = []string{ip}
		tn.Routes[ip+":443"] = api.Addr()
	}
	b, _ := json.Marshal(tn)
	netFile := filepath.Join(dir, "net.json")
	if err := os.WriteFile(netFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, sandbox.TestNetEnv+"="+netFile)
}

// assertSecretHidden checks that secret is nowhere the agent or we could
// leak it from: the VM's processes' environments, its kernel command line,
// its /etc, home, /run and /tmp (the agent's own files: codex's auth.json),
// acp-sandbox's stderr and every file of the sandbox's state dir. keyVar,
// if set, must hold a placeholder in the VM. It returns what it read in
// the VM.
func assertSecretHidden(t *testing.T, e *vmtest.Env, ws string, stderr *syncWriter, secret, keyVar string) string {
	t.Helper()
	forms := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), url.QueryEscape(secret)}
	script := `cat /proc/cmdline /proc/*/environ 2>/dev/null; grep -rs . /etc /home/agent /run /tmp 2>/dev/null | head -c 50000000`
	if keyVar != "" {
		script = `printenv ` + keyVar + `; ` + script
	}
	r := e.Run(ws, nil, "exec", "--", "bash", "-c", script)
	if keyVar != "" && !strings.HasPrefix(r.Stdout, mitm.PlaceholderPrefix) {
		t.Errorf("the VM's %s is not a placeholder: %.40q", keyVar, r.Stdout)
	}
	for _, f := range forms {
		if strings.Contains(r.Stdout, f) {
			t.Errorf("the real key is visible in the VM (%.8s… form)", f)
		}
		if strings.Contains(stderr.String(), f) {
			t.Errorf("the real key is in acp-sandbox's stderr")
		}
	}
	_ = filepath.Walk(filepath.Join(e.Home, ".local/state/acp-sandbox"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Size() > 64<<20 {
			return nil
		}
		data, _ := os.ReadFile(p)
		for _, f := range forms {
			if strings.Contains(string(data), f) {
				t.Errorf("the real key is in %s", p)
			}
		}
		return nil
	})
	return r.Stdout
}
