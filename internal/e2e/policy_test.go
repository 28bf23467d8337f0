package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// The agent edits sandbox.toml from inside the VM to widen its own rights:
// the edit is audited and not applied; the user approves on the host and
// the running VM takes the new rules without a restart.
func TestPolicyTamperAndLiveReload(t *testing.T) {
	e := vmtest.NewEnv(t)
	fn := newFakeNet(t)
	e.Vars = append(e.Vars, sandbox.TestNetEnv+"="+fn.file)
	ws := e.Workspace()
	file := filepath.Join(ws, "sandbox.toml")
	if err := os.WriteFile(file, []byte("[network]\nallow = [\"api.example.com\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The user approves the file they wrote.
	if out := e.MustRun(ws, "policy", "approve", "--yes"); !strings.Contains(out, "api.example.com") {
		t.Logf("approve said: %s", out)
	}
	e.MustRun(ws, "start", "-q")
	qemu := e.QEMUPids()
	sh := func(script string) vmtest.Result {
		t.Helper()
		return e.Run(ws, nil, "exec", "--", "bash", "-c", script)
	}
	if r := sh("curl -sS -m 20 http://api.example.com/"); r.Code != 0 {
		t.Fatalf("allowed by the approved file: exit %d %s", r.Code, r.Stderr)
	}

	// The agent widens its rights.
	if r := sh(`printf '[network]\nallow = ["api.example.com", "other.example.com"]\n' > sandbox.toml`); r.Code != 0 {
		t.Fatalf("the guest could not write the workspace file: %s", r.Stderr)
	}
	ev := waitAudit(t, e, ws, func(ev netstack.Event) bool {
		return ev.Proto == sandbox.ProtoPolicy && ev.Verdict == sandbox.VerdictPending
	})
	if !strings.Contains(ev.Reason, "acp-sandbox policy approve") {
		t.Errorf("pending audit does not say how to approve: %q", ev.Reason)
	}
	// Give the watcher time to (wrongly) apply it, then try.
	time.Sleep(5 * time.Second)
	if r := sh("curl -sS -m 10 -k https://other.example.com/"); r.Code == 0 {
		t.Fatal("the agent's own edit to sandbox.toml took effect without approval")
	}
	if r := sh("acp-sandbox why"); !strings.Contains(r.Stdout, "sandbox.toml") {
		t.Errorf("why does not mention the pending policy:\n%s", r.Stdout)
	}
	if out := e.MustRun(ws, "policy", "show"); !strings.Contains(strings.ToLower(out), "pending") {
		t.Errorf("policy show does not say pending:\n%s", out)
	}

	// The user reviews and approves on the host: applied live.
	out := e.MustRun(ws, "policy", "approve", "--yes")
	if !strings.Contains(out, "other.example.com") {
		t.Errorf("approve did not show the diff:\n%s", out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := sh("curl -sS -m 10 -k https://other.example.com/")
		if r.Code == 0 && strings.Contains(r.Stdout, "hello https other.example.com") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approved change not applied: exit %d %s %s", r.Code, r.Stdout, r.Stderr)
		}
		time.Sleep(time.Second)
	}
	if got := e.QEMUPids(); !slices.Equal(got, qemu) {
		t.Errorf("the VM was restarted to apply the policy: %v → %v", qemu, got)
	}
	waitAudit(t, e, ws, func(ev netstack.Event) bool {
		return ev.Proto == sandbox.ProtoPolicy && ev.Verdict == sandbox.VerdictApplied && strings.Contains(ev.Reason, "other.example.com")
	})
}

// A sandbox.toml with mistakes that was approved cannot exist; a broken
// user config.toml stops the start with FILE:LINE:COL, before any VM.
func TestPolicyBadUserConfigRefusesStart(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	cfgDir := filepath.Join(e.Home, ".config", "acp-sandbox")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "config.toml"), []byte("[network]\nalow = [\"x.example.com\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.Run(ws, nil, "run", "-q", "--", "true")
	if r.Code == 0 {
		t.Fatal("started with a broken config.toml")
	}
	if !strings.Contains(r.Stderr, "config.toml:2:1") || !strings.Contains(r.Stderr, `did you mean "allow"`) {
		t.Errorf("stderr: %s", r.Stderr)
	}
	if len(e.QEMUPids()) != 0 {
		t.Errorf("a VM runs: %v", e.QEMUPids())
	}
}
