package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/creack/pty"
)

// policyEnv gives a test its own home, XDG dirs and workspace; the policy
// commands run in-process, no VM involved.
type policyTest struct {
	t  *testing.T
	ws string
}

func newPolicyTest(t *testing.T) *policyTest {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	for _, d := range []string{home, filepath.Join(root, "ws")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(root, "state"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(root, "run"))
	t.Setenv("XDG_CACHE_HOME", filepath.Join(root, "cache"))
	ws, err := filepath.EvalSymlinks(filepath.Join(root, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	return &policyTest{t: t, ws: ws}
}

func (p *policyTest) file() string { return config.WorkspaceFile(p.ws) }

// run runs `acp-sandbox -w WS args...` with stdin in (nil: empty, not a
// terminal).
func (p *policyTest) run(in io.Reader, args ...string) (stdout, stderr string, err error) {
	root := newRoot(&globals{})
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	if in == nil {
		in = strings.NewReader("")
	}
	root.SetIn(in)
	root.SetArgs(append([]string{"-w", p.ws}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func (p *policyTest) write(s string) {
	p.t.Helper()
	if err := os.WriteFile(p.file(), []byte(s), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestPolicyInit(t *testing.T) {
	p := newPolicyTest(t)
	out, _, err := p.run(nil, "policy", "init", "--preset", "balanced")
	if err != nil {
		t.Fatal(err)
	}
	if want := "wrote " + p.file() + " (preset balanced) and approved it\n"; !strings.HasPrefix(out, want) {
		t.Errorf("init said %q", out)
	}
	b, _ := os.ReadFile(p.file())
	if !strings.Contains(string(b), `preset = "balanced"`) {
		t.Errorf("starter file:\n%s", b)
	}
	// Written from the terminal, so approved: show says so.
	if out, _, _ := p.run(nil, "policy", "show"); !strings.Contains(out, "# sandbox.toml approved (sha256 ") {
		t.Errorf("show after init:\n%s", out)
	}
	// Never overwritten without --force.
	if _, _, err := p.run(nil, "policy", "init"); err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second init = %v", err)
	}
	if _, _, err := p.run(nil, "policy", "init", "--preset", "wide"); err == nil || !strings.Contains(err.Error(), `did you mean`) && !strings.Contains(err.Error(), `"open"`) {
		t.Errorf("init --preset wide = %v", err)
	}
}

// TestPolicyInitForceReplacesSymlink: --force replaces a sandbox.toml the
// agent made a symlink to a host file; the host file is untouched.
func TestPolicyInitForceReplacesSymlink(t *testing.T) {
	p := newPolicyTest(t)
	target := filepath.Join(t.TempDir(), "bashrc")
	os.WriteFile(target, []byte("precious\n"), 0o644)
	if err := os.Symlink(target, p.file()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.run(nil, "policy", "init", "--force"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("init --force wrote through a symlink: %q", b)
	}
	if fi, err := os.Lstat(p.file()); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("sandbox.toml is not a regular file: %v %v", fi.Mode(), err)
	}
}

func TestPolicyCheck(t *testing.T) {
	p := newPolicyTest(t)
	if _, _, err := p.run(nil, "policy", "check"); err == nil || !strings.Contains(err.Error(), "acp-sandbox policy init") {
		t.Errorf("check without a file = %v", err)
	}
	p.write("[sandbox]\ncpus = 4\n")
	out, _, err := p.run(nil, "policy", "check")
	if err != nil || out != p.file()+": ok\nit differs from the version you approved; run `acp-sandbox policy approve` to apply it\n" {
		t.Errorf("check = %q, %v", out, err)
	}
	p.write("[sandbox]\ncpu = 4\n[network]\nallow = [\"*\"]\n")
	out, errOut, err := p.run(nil, "policy", "check")
	want := p.file() + `:2:1: unknown key "cpu" in [sandbox]; did you mean "cpus"?` + "\n" +
		p.file() + `:4:10: network.allow[0] "*": a wildcard alone would allow every host: name the domain, as in "*.example.com"` + "\n"
	if exitCode(err) != 1 || errOut != want || out != "" {
		t.Errorf("check of a bad file: exit %d\nstderr %q\nwant   %q", exitCode(err), errOut, want)
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		t.Errorf("the problems were printed and also returned: %v", ee.err)
	}
	// An explicit FILE.
	other := filepath.Join(t.TempDir(), "sandbox.toml")
	os.WriteFile(other, []byte("[sandbox]\nimage = \"alpine\"\n"), 0o644)
	_, errOut, err = p.run(nil, "policy", "check", other)
	if exitCode(err) != 1 || !strings.HasPrefix(errOut, other+":2:9: sandbox.image \"alpine\": OCI images are not supported yet") {
		t.Errorf("check FILE: %d %q", exitCode(err), errOut)
	}
}

func TestPolicyShow(t *testing.T) {
	p := newPolicyTest(t)
	userCfg := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "acp-sandbox", "config.toml")
	os.MkdirAll(filepath.Dir(userCfg), 0o755)
	os.WriteFile(userCfg, []byte("[sandbox]\nmemory = \"4GiB\"\n"), 0o644)
	if _, _, err := p.run(nil, "policy", "init"); err != nil {
		t.Fatal(err)
	}
	p.write("[sandbox]\ncpus = 3\n[network]\nallow = [\"pypi.org\"]\n")
	out, _, err := p.run(nil, "policy", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# workspace    " + p.ws + "\n",
		"# user config  " + userCfg + "\n",
		"# sandbox.toml pending: changed since you approved it",
		"the approved version (sha256 ",
		"review and apply it with `acp-sandbox policy approve`",
		"cpus = 2                                     # default\n", // the pending 3 does not apply
		`memory = "4GiB"                              # ` + userCfg + ":2:1\n",
		// The approved copy (init's starter) sets the preset.
		`preset = "locked"                            # `,
		"/policy/approved.toml:17:1\n",
		`  "api.anthropic.com:443",                   # preset locked (`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pypi.org") {
		t.Error("show lists a pending change as effective")
	}

	out, _, err = p.run(nil, "policy", "show", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r showReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if r.Policy.State != config.PolicyPending || !strings.Contains(r.Policy.Diff, "+cpus = 3") || r.Workspace != p.ws {
		t.Errorf("--json policy = %+v", r.Policy)
	}
	found := false
	for _, v := range r.Values {
		if v.Path == "sandbox.memory" {
			found = v.Value == "4GiB" && v.Origin == userCfg+":2:1"
		}
	}
	if !found {
		t.Errorf("--json lacks sandbox.memory from the user config: %+v", r.Values)
	}

	// A broken user config: show says where, and that the sandbox will not start.
	os.WriteFile(userCfg, []byte("[sandbox]\nmemory = 4\n"), 0o644)
	_, errOut, err := p.run(nil, "policy", "show")
	if exitCode(err) != 1 || !strings.Contains(errOut, userCfg+`:2:10: sandbox.memory must be a size such as "2GiB", not an integer`) || !strings.Contains(errOut, "will not start") {
		t.Errorf("show with a bad config: %d %q", exitCode(err), errOut)
	}
}

func TestPolicyApprove(t *testing.T) {
	p := newPolicyTest(t)
	if out, _, err := p.run(nil, "policy", "approve"); err != nil || !strings.Contains(out, "nothing to approve") {
		t.Errorf("approve with no file: %q %v", out, err)
	}
	p.write("[sandbox]\ncpus = 3\n")

	// No terminal and no --yes: the diff is shown, nothing approved.
	out, _, err := p.run(nil, "policy", "approve")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--yes") || !strings.Contains(out, "+cpus = 3\n") {
		t.Errorf("approve without a terminal: %d %v\n%s", exitCode(err), err, out)
	}
	if st := p.status(); st.State != config.PolicyPending {
		t.Fatalf("approved without asking: %v", st.State)
	}

	// A file with problems cannot be approved.
	p.write("[sandbox]\ncpus = 300\n")
	_, errOut, err := p.run(nil, "policy", "approve", "--yes")
	if exitCode(err) != 1 || !strings.Contains(errOut, ":2:8: sandbox.cpus = 300 is out of range") || p.status().State != config.PolicyPending {
		t.Errorf("approve of a bad file: %d %q", exitCode(err), errOut)
	}

	p.write("[sandbox]\ncpus = 3\n")
	out, _, err = p.run(nil, "policy", "approve", "--yes")
	if err != nil || !strings.Contains(out, "approved "+p.file()+" (sha256 ") {
		t.Errorf("approve --yes: %q %v", out, err)
	}
	if p.status().State != config.PolicyApproved {
		t.Error("not approved")
	}
	if out, _, _ := p.run(nil, "policy", "approve"); !strings.Contains(out, "is as you approved it") {
		t.Errorf("second approve: %q", out)
	}
}

// TestPolicyApproveAsks: on a terminal approve asks, and only "y" approves.
func TestPolicyApproveAsks(t *testing.T) {
	for answer, approve := range map[string]bool{"y\n": true, "yes\n": true, "\n": false, "n\n": false} {
		p := newPolicyTest(t)
		p.write("[sandbox]\ncpus = 3\n")
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Skip("no pty:", err)
		}
		go io.Copy(io.Discard, ptmx) // the terminal's echo
		ptmx.Write([]byte(answer))
		out, _, err := p.run(tty, "policy", "approve")
		ptmx.Close()
		tty.Close()
		if !strings.Contains(out, "Apply these changes to the sandbox policy? [y/N] ") {
			t.Errorf("answer %q: no question in %q", answer, out)
		}
		if got := p.status().State == config.PolicyApproved; got != approve || (err == nil) != approve {
			t.Errorf("answer %q: approved %v (err %v), want %v", answer, got, err, approve)
		}
	}
}

func (p *policyTest) status() config.PolicyStatus {
	p.t.Helper()
	g := &globals{workspace: p.ws}
	sb, err := g.workspaceSandbox()
	if err != nil {
		p.t.Fatal(err)
	}
	st, err := config.OpenApprovals(sb.StateDir).Status(p.file())
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}
