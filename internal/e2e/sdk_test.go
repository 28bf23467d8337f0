package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
)

// TestOfficialSDKClient drives the bridge with a client nobody on the team
// wrote: the official ACP TypeScript SDK (installed by scripts/deps.sh into
// testdata/sdkclient), against the built-in agent inside the VM.
func TestOfficialSDKClient(t *testing.T) {
	e := vmtest.NewEnv(t)
	dir, _ := filepath.Abs("testdata/sdkclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@agentclientprotocol", "sdk")); err != nil {
		vmtest.Skip(t, "the ACP SDK is not installed: run `npm ci --prefix %s` (scripts/deps.sh does)", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		vmtest.Skip(t, "node not installed")
	}
	ws := e.Workspace()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.mjs"), e.Bin, ws)
	cmd.Env, cmd.Dir = e.Vars, ws
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sdk client: %v\n%s", err, stderr.String())
	}
	var r struct {
		Init struct {
			ProtocolVersion int `json:"protocolVersion"`
			AuthMethods     []struct {
				ID string `json:"id"`
			} `json:"authMethods"`
		} `json:"init"`
		Prompt   struct{ StopReason string } `json:"prompt"`
		Chunks   []string                    `json:"chunks"`
		Requests [][]string                  `json:"requests"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("sdk client output %s: %v", out, err)
	}
	all := strings.Join(r.Chunks, "\n")
	if r.Init.ProtocolVersion != 1 || len(r.Init.AuthMethods) != 1 || r.Prompt.StopReason != "end_turn" {
		t.Errorf("session: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "sdk.txt")); string(b) != "from-the-sdk" {
		t.Errorf("file written through the SDK client: %q", b)
	}
	if !strings.Contains(all, "read "+ws+"/sdk.txt: from-the-sdk") || !strings.Contains(all, "refused fs/read_text_file") {
		t.Errorf("chunks:\n%s", all)
	}
	for _, req := range r.Requests {
		if len(req) == 2 && strings.HasPrefix(req[0], "fs/") && !strings.HasPrefix(req[1], ws+"/") {
			t.Errorf("the client was asked for %v", req)
		}
	}
}
