package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/internal/presets"
	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// fakeAdapterTarball writes an npm package whose bin is the claude
// preset's command and runs the scripted test agent: the install path
// (npm in the VM, the atomic rename, the network rules around it) runs for
// real, from a local tarball instead of the registry.
func fakeAdapterTarball(t *testing.T, path, bin string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, file := range []struct {
		name, body string
		mode       int64
	}{
		{"package/package.json", `{"name":"fake-acp-adapter","version":"1.0.0","bin":{"` + bin + `":"agent.sh"}}`, 0o644},
		{"package/agent.sh", "#!/bin/sh\nexec /init demo-agent \"$@\"\n", 0o755},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Mode: file.mode, Size: int64(len(file.body)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(file.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

// `acp-sandbox -- claude` as an editor launches it: the preset is
// installed once in the sandbox home, the model API joins the rules, the
// registry is allowed only during the install, and the agent answers ACP.
func TestAgentPreset(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	p, _ := presets.Lookup("claude")
	tgz := filepath.Join(ws, "fake-adapter.tgz")
	fakeAdapterTarball(t, tgz, p.Bin)
	e.Vars = append(e.Vars, "ACP_SANDBOX_TEST_PRESET_SPEC=claude="+tgz)

	// launch returns the answers to initialize and session/new, stderr,
	// and what the editor's thread of the new session shows.
	launch := func() (string, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		stderr := &syncWriter{}
		c, err := acpclient.Start([]string{e.Bin, "--", "claude"}, e.Vars, ws, stderr, (&acpclient.HostEditor{}).Handle)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		res, err := c.Call(ctx, "initialize", map[string]any{"protocolVersion": 1, "clientCapabilities": map[string]any{}})
		if err != nil {
			t.Fatalf("initialize: %v\nstderr:\n%s", err, stderr)
		}
		res2, err := c.Call(ctx, "session/new", map[string]any{"cwd": ws, "mcpServers": []any{}})
		if err != nil {
			t.Fatalf("session/new: %v\nstderr:\n%s", err, stderr)
		}
		var sess struct {
			SessionID string `json:"sessionId"`
		}
		_ = json.Unmarshal(res2, &sess)
		// A barrier: the agent's answer to a later request comes after
		// whatever the bridge sent with session/new's answer.
		if _, err := c.Call(ctx, "_acp_sandbox_test/barrier", map[string]any{}); err == nil {
			t.Fatal("the test agent answered an unknown method")
		}
		return string(res) + string(res2), stderr.String(), c.Text(sess.SessionID)
	}

	res, stderr, thread := launch()
	if !strings.Contains(res, `"protocolVersion":1`) || !strings.Contains(res, "sessionId") {
		t.Fatalf("answers %s", res)
	}
	if !strings.Contains(stderr, "installing Claude Code's ACP adapter") || !strings.Contains(stderr, "installed in") {
		t.Errorf("no install progress on stderr:\n%s", stderr)
	}
	// The editor's thread says so too: stderr is only in its logs.
	if want := "acp-sandbox: installed " + p.Spec() + " in this sandbox ("; !strings.Contains(thread, want) || !strings.Contains(thread, "next starts reuse it") {
		t.Errorf("the first session's thread does not tell of the install (want %q):\n%s", want, thread)
	}
	// Installed under the sandbox's persistent home, at the versioned path.
	if out := e.MustRun(ws, "exec", "--", "sh", "-c", "readlink -f "+p.Command(sandbox.GuestHome)); !strings.Contains(out, p.Dir(sandbox.GuestHome)) {
		t.Errorf("installed command resolves to %q", out)
	}
	// The model API is allowed; the registry was for the install only.
	var list []struct {
		Status *sandbox.Status `json:"status"`
	}
	out := e.MustRun(ws, "ls", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].Status == nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	allow := strings.Join(list[0].Status.Network.Allow, " ")
	// The agent's login hosts (config's built-in [agents.claude] allow)
	// come with it.
	if !strings.Contains(allow, "console.anthropic.com") {
		t.Errorf("the claude agent's login hosts are not allowed: %+v", list[0].Status.Network)
	}
	if !strings.Contains(allow, "api.anthropic.com") || strings.Contains(allow, "registry.npmjs.org") {
		t.Errorf("rules after install: %+v (want api.anthropic.com, not the registry)", list[0].Status.Network)
	}

	// The second launch finds it installed.
	_, stderr, thread = launch()
	if strings.Contains(stderr, "installing") {
		t.Errorf("second launch installed again:\n%s", stderr)
	}
	if strings.Contains(thread, "installed") {
		t.Errorf("second launch told of an install:\n%s", thread)
	}
}
