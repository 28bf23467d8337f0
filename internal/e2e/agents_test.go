package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
)

// AgentsPrefix is where scripts/deps.sh installs the real agents for these
// tests (npm --prefix), under /usr so the VM's read-only /usr view has them.
const AgentsPrefix = "/usr/local/lib/acp-sandbox-test-agents"

// Real agents, started inside the VM through the bridge: initialize and
// session/new are answered, and authMethods reach the client as the agent
// sent them (compared with the same agent run directly on the host).
func TestRealAgents(t *testing.T) {
	for _, a := range []struct {
		name string
		argv []string
	}{
		{"claude-agent-acp", []string{AgentsPrefix + "/bin/claude-agent-acp"}},
		{"gemini", []string{AgentsPrefix + "/bin/gemini", "--acp"}},
		{"codex-acp", []string{AgentsPrefix + "/bin/codex-acp"}},
	} {
		t.Run(a.name, func(t *testing.T) {
			if _, err := os.Stat(a.argv[0]); err != nil {
				vmtest.Skip(t, "%s is not installed: scripts/deps.sh installs it under %s", a.name, AgentsPrefix)
			}
			e := vmtest.NewEnv(t)
			ws := e.Workspace()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			initParams := map[string]any{
				"protocolVersion": 1,
				"clientCapabilities": map[string]any{
					"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true,
				},
			}

			// On the host, with an empty HOME: the reference answer.
			// NO_BROWSER=1 as the bridge sets it in the VM: codex-acp
			// then leaves out its "Login with ChatGPT" method (id
			// "chatgpt", a localhost redirect), so both lists match.
			home := t.TempDir()
			hostEnv := []string{"PATH=" + filepath.Dir(a.argv[0]) + ":/usr/bin:/bin", "HOME=" + home, "NO_BROWSER=1"}
			// In a network namespace of its own (loopback only): tests send
			// nothing beyond loopback, and an agent that phones home at
			// start fails fast instead of waiting on a dropped packet.
			ref := a.argv
			if os.Getuid() == 0 {
				if un, err := exec.LookPath("unshare"); err == nil {
					ref = append([]string{un, "--net", "--"}, a.argv...)
				}
			}
			direct, err := acpclient.Start(ref, hostEnv, ws, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := direct.Call(ctx, "initialize", initParams)
			// codex-acp 0.16 does not exit on stdin EOF (it reads the EOF
			// and idles until killed): waiting for it with the test's
			// context spent the whole budget here, and the bridged
			// initialize below then "never answered". An editor kills
			// such an agent too (acp-sandbox: 3 s after EOF).
			closeCtx, closeCancel := context.WithTimeout(ctx, 5*time.Second)
			direct.Close(closeCtx)
			closeCancel()
			if err != nil {
				t.Fatalf("initialize on the host: %v", err)
			}

			stderr := &syncWriter{}
			c, err := acpclient.Start(append([]string{e.Bin, "--"}, a.argv...), e.Vars, ws, stderr, (&acpclient.HostEditor{}).Handle)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			t0 := time.Now()
			got, err := c.Call(ctx, "initialize", initParams)
			if err != nil {
				t.Fatalf("initialize through the bridge: %v\n%s", err, stderr)
			}
			t.Logf("initialize answered %v after start", time.Since(t0).Round(time.Millisecond))
			type initResult struct {
				ProtocolVersion int               `json:"protocolVersion"`
				AgentInfo       json.RawMessage   `json:"agentInfo"`
				AuthMethods     []json.RawMessage `json:"authMethods"`
			}
			var w, g initResult
			json.Unmarshal(want, &w)
			json.Unmarshal(got, &g)
			if g.ProtocolVersion != 1 || string(g.AgentInfo) != string(w.AgentInfo) {
				t.Errorf("initialize through the bridge: %s\nwant like: %s", got, want)
			}
			if len(g.AuthMethods) != len(w.AuthMethods) {
				t.Fatalf("authMethods: %d through the bridge, %d direct", len(g.AuthMethods), len(w.AuthMethods))
			}
			for i := range w.AuthMethods {
				var wm, gm map[string]any
				json.Unmarshal(w.AuthMethods[i], &wm)
				json.Unmarshal(g.AuthMethods[i], &gm)
				// The one sanctioned change: a terminal-auth command
				// re-enters acp-sandbox.
				for _, m := range []map[string]any{wm, gm} {
					if meta, ok := m["_meta"].(map[string]any); ok {
						if ta, ok := meta["terminal-auth"].(map[string]any); ok {
							delete(ta, "command")
							delete(ta, "args")
						}
					}
				}
				if !reflect.DeepEqual(wm, gm) {
					t.Errorf("authMethods[%d] changed:\n direct %s\n bridge %s", i, w.AuthMethods[i], g.AuthMethods[i])
				}
			}
			t0 = time.Now()
			res, err := c.Call(ctx, "session/new", map[string]any{"cwd": ws, "mcpServers": []any{}})
			t.Logf("session/new answered %v later: %s %v", time.Since(t0).Round(time.Millisecond), truncate(res), err)
			if err != nil && ctx.Err() != nil {
				t.Fatalf("session/new never answered: %v\n%s", err, stderr)
			}
		})
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
