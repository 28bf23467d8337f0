package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// env is a throw-away host: a workspace, a user config dir and a state dir.
type env struct {
	opts LoadOptions
	ap   *Approvals
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	ws := filepath.Join(root, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{opts: LoadOptions{
		Workspace:     ws,
		UserConfigDir: filepath.Join(root, "config", "acp-sandbox"),
		StateDir:      filepath.Join(root, "state", "acp-sandbox", "0123456789abcdef"),
		Home:          filepath.Join(root, "home"),
	}}
	e.ap = OpenApprovals(e.opts.StateDir)
	return e
}

func (e *env) wsFile() string { return WorkspaceFile(e.opts.Workspace) }

func (e *env) writeUser(t *testing.T, s string) {
	t.Helper()
	writeFile(t, e.opts.UserFile(), s)
}

// writeWS writes the workspace file; approve also approves it.
func (e *env) writeWS(t *testing.T, s string, approve bool) {
	t.Helper()
	writeFile(t, e.wsFile(), s)
	if approve {
		if err := e.ap.Approve([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) load(t *testing.T) *Config {
	t.Helper()
	c, err := Load(e.opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	e := newEnv(t)
	c := e.load(t)
	want := Sandbox{CPUs: 2, MemoryBytes: 2 << 30, IdleTimeout: 30 * time.Minute, Image: "host"}
	if c.Sandbox != want {
		t.Errorf("Sandbox = %+v, want %+v", c.Sandbox, want)
	}
	if c.Network.Preset != "locked" || !slices.Equal(c.Network.Allow, PresetHosts("locked")) {
		t.Errorf("Network = %+v, want the locked preset", c.Network)
	}
	if c.Network.Deny != nil || c.Network.HostPorts != nil || c.Mounts != nil || c.Credentials != nil || c.Env != nil {
		t.Errorf("defaults set lists: %+v", c)
	}
	if got := c.Origin("network.allow[0]").String(); got != "preset locked" {
		t.Errorf("origin of allow[0] = %q", got)
	}
	if got := c.Origin("sandbox.cpus").String(); got != "default" {
		t.Errorf("origin of cpus = %q", got)
	}
	if c.PolicyStatus.State != PolicyNone {
		t.Errorf("PolicyStatus = %v, want none", c.PolicyStatus.State)
	}
	if _, ok := c.Agents["claude"]; !ok {
		t.Error("no built-in claude agent")
	}
}

func TestLayers(t *testing.T) {
	e := newEnv(t)
	e.writeUser(t, `[sandbox]
cpus = 4
memory = "4GiB"
[network]
preset = "balanced"
allow = ["a.example", "pypi.org:443"]
deny = ["x.example"]
host_ports = [11434]
[env]
A = "user"
B = "user"
`)
	e.writeWS(t, `[sandbox]
cpus = 8
[network]
allow = ["b.example"]
deny = ["y.example"]
host_ports = [11434, 8080]
[env]
B = "workspace"
`, true)
	if err := e.ap.AddAllow("C.Example:443"); err != nil {
		t.Fatal(err)
	}
	c := e.load(t)
	user, ws := e.opts.UserFile(), e.wsFile()

	// Scalars: the later layer wins; each says where it came from.
	if c.Sandbox.CPUs != 8 || c.Sandbox.MemoryBytes != 4<<30 || c.Network.Preset != "balanced" {
		t.Errorf("Sandbox %+v preset %s", c.Sandbox, c.Network.Preset)
	}
	for path, want := range map[string]string{
		"sandbox.cpus":          ws + ":2:1",
		"sandbox.memory":        user + ":3:1",
		"sandbox.idle_timeout":  "default",
		"network.preset":        user + ":5:1",
		"env.A":                 user + ":10:1",
		"env.B":                 ws + ":8:1",
		"network.deny[0]":       user + ":7:9",
		"network.deny[1]":       ws + ":5:9",
		"network.host_ports[1]": ws + ":6:22",
	} {
		if got := c.Origin(path).String(); got != want {
			t.Errorf("origin of %s = %q, want %q", path, got, want)
		}
	}
	// Lists append: preset, user, workspace, then "allow always"; a pattern
	// already there (pypi.org:443 is in balanced) keeps its first origin.
	want := append(PresetHosts("balanced"), "a.example", "b.example", "c.example:443")
	if !slices.Equal(c.Network.Allow, want) {
		t.Errorf("Allow = %q\nwant %q", c.Network.Allow, want)
	}
	n := len(PresetHosts("balanced"))
	for i, o := range []string{"preset balanced (" + user + ":5:1)", user + ":6:10", ws + ":4:10", "approved in editor"} {
		idx := []int{0, n, n + 1, n + 2}[i]
		if got := c.Origin(fmt.Sprintf("network.allow[%d]", idx)).String(); got != o {
			t.Errorf("origin of allow[%d] = %q, want %q", idx, got, o)
		}
	}
	if !slices.Equal(c.Network.Deny, []string{"x.example", "y.example"}) || !slices.Equal(c.Network.HostPorts, []int{11434, 8080}) {
		t.Errorf("Deny %q HostPorts %v", c.Network.Deny, c.Network.HostPorts)
	}
	if c.Env["A"] != "user" || c.Env["B"] != "workspace" {
		t.Errorf("Env = %v", c.Env)
	}
	// The effective lists are what the netstack's parser accepts.
	if _, err := policy.New(c.Network.Allow, c.Network.Deny); err != nil {
		t.Errorf("effective lists do not parse: %v", err)
	}
}

// TestPendingChangeDoesNotApply: the agent edits sandbox.toml to widen the
// network; until the user approves, the approved copy holds.
func TestPendingChangeDoesNotApply(t *testing.T) {
	e := newEnv(t)
	approved := "[network]\nallow = [\"a.example\"]\n"
	e.writeWS(t, approved, true)
	e.writeWS(t, "[network]\nallow = [\"a.example\", \"evil.example\"]\n", false)

	c := e.load(t)
	if slices.Contains(c.Network.Allow, "evil.example") {
		t.Fatal("a pending change applied")
	}
	if !slices.Contains(c.Network.Allow, "a.example") {
		t.Fatal("the approved file no longer applies")
	}
	st := c.PolicyStatus
	if st.State != PolicyPending || st.Problems != nil || st.ApprovedSHA256 != hashHex([]byte(approved)) {
		t.Errorf("status = %+v", st)
	}
	wantDiff := "--- approved\n+++ " + e.wsFile() + "\n@@ -1,2 +1,2 @@\n [network]\n-allow = [\"a.example\"]\n+allow = [\"a.example\", \"evil.example\"]\n"
	if st.Diff != wantDiff {
		t.Errorf("diff:\n%s\nwant:\n%s", st.Diff, wantDiff)
	}
	// The value's origin names the approved copy, not the changed file.
	if got := c.Origin(fmt.Sprintf("network.allow[%d]", len(PresetHosts("locked")))).File; got != e.ap.copyPath() {
		t.Errorf("origin file = %s, want the approved copy", got)
	}

	// A broken pending file does not stop the sandbox; it cannot be approved.
	e.writeWS(t, "[network]\nallow = [\"*bad\"]\n", false)
	c = e.load(t)
	if c.PolicyStatus.Problems == nil || !strings.Contains(c.PolicyStatus.Problems.Error(), e.wsFile()+":2:10: ") {
		t.Errorf("Problems = %v", c.PolicyStatus.Problems)
	}

	// Approving the content shown applies it.
	e.writeWS(t, "[network]\nallow = [\"b.example\"]\n", false)
	st, err := e.ap.Status(e.wsFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ap.Approve(st.Content()); err != nil {
		t.Fatal(err)
	}
	c = e.load(t)
	if c.PolicyStatus.State != PolicyApproved || !slices.Contains(c.Network.Allow, "b.example") || slices.Contains(c.Network.Allow, "a.example") {
		t.Errorf("after approval: %v %q", c.PolicyStatus.State, c.Network.Allow)
	}
}

func TestNeverApprovedDoesNotApply(t *testing.T) {
	e := newEnv(t)
	e.writeWS(t, "[sandbox]\ncpus = 8\n", false)
	c := e.load(t)
	if c.Sandbox.CPUs != DefaultCPUs || c.PolicyStatus.State != PolicyPending || c.PolicyStatus.ApprovedSHA256 != "" {
		t.Errorf("cpus %d status %+v", c.Sandbox.CPUs, c.PolicyStatus)
	}
	want := "--- approved\n+++ " + e.wsFile() + "\n@@ -0,0 +1,2 @@\n+[sandbox]\n+cpus = 8\n"
	if c.PolicyStatus.Diff != want {
		t.Errorf("diff:\n%s\nwant:\n%s", c.PolicyStatus.Diff, want)
	}
}

func TestRemovedFile(t *testing.T) {
	e := newEnv(t)
	e.writeWS(t, "[sandbox]\ncpus = 3\n", true)
	os.Remove(e.wsFile())
	c := e.load(t)
	if c.Sandbox.CPUs != 3 || c.PolicyStatus.State != PolicyPending || c.PolicyStatus.Exists {
		t.Errorf("cpus %d status %+v", c.Sandbox.CPUs, c.PolicyStatus)
	}
	if err := e.ap.Approve(c.PolicyStatus.Content()); err != nil { // nil: approve the removal
		t.Fatal(err)
	}
	if c := e.load(t); c.Sandbox.CPUs != DefaultCPUs || c.PolicyStatus.State != PolicyNone {
		t.Errorf("after approving the removal: cpus %d, %v", c.Sandbox.CPUs, c.PolicyStatus.State)
	}
}

// TestBadFileNeverHalfApplies: one problem anywhere and Load returns no
// Config, with every problem.
func TestBadFileNeverHalfApplies(t *testing.T) {
	e := newEnv(t)
	e.writeUser(t, "[sandbox]\ncpus = 4\nmemory = \"1MiB\"\n[network]\nallow = [\"ok.example\", \"*\"]\n")
	c, err := Load(e.opts)
	if c != nil {
		t.Fatal("Load returned a Config with an error")
	}
	var probs Problems
	if !errors.As(err, &probs) || len(probs) != 2 {
		t.Fatalf("err = %v, want 2 problems", err)
	}
	if !strings.HasPrefix(probs[0].Error(), e.opts.UserFile()+":3:10: ") || !strings.HasPrefix(probs[1].Error(), e.opts.UserFile()+":5:24: ") {
		t.Errorf("problems:\n%v", err)
	}
}

// TestWorkspaceSymlinkRefused: a sandbox.toml that is a symlink (say to
// ~/.ssh/id_ed25519) is never read, so its target never shows in a message.
func TestWorkspaceSymlinkRefused(t *testing.T) {
	e := newEnv(t)
	secret := filepath.Join(t.TempDir(), "id_ed25519")
	writeFile(t, secret, "-----BEGIN OPENSSH PRIVATE KEY-----\n")
	if err := os.Symlink(secret, e.wsFile()); err != nil {
		t.Fatal(err)
	}
	_, err := Load(e.opts)
	if err == nil || !strings.Contains(err.Error(), "is a symbolic link") || strings.Contains(err.Error(), "PRIVATE") {
		t.Errorf("Load = %v", err)
	}
}

func TestWorkspaceFIFORefused(t *testing.T) {
	e := newEnv(t)
	if err := mkfifo(e.wsFile()); err != nil {
		t.Skip("no mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(e.opts); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}

func TestStateDirRequired(t *testing.T) {
	e := newEnv(t)
	e.opts.StateDir = ""
	if _, err := Load(e.opts); err == nil || !strings.Contains(err.Error(), "StateDir is required") {
		t.Errorf("Load = %v", err)
	}
}

func TestFromCommandOnlyInUserConfig(t *testing.T) {
	e := newEnv(t)
	cred := "[[credentials]]\nhost = \"api.example.com\"\nheader = \"Authorization\"\nformat = \"Bearer {}\"\nfrom_command = [\"pass\", \"show\", \"x\"]\n"
	e.writeUser(t, cred)
	c := e.load(t)
	if len(c.Credentials) != 1 || c.Credentials[0].Source() != `command ["pass" "show" "x"]` {
		t.Errorf("Credentials = %+v", c.Credentials)
	}
	if err := Check("sandbox.toml", []byte(cred), e.opts); err == nil {
		t.Error("a workspace file may run a host program")
	}
}

func TestForAgent(t *testing.T) {
	e := newEnv(t)
	e.writeUser(t, `[[credentials]]
host = "api.anthropic.com"
header = "X-Api-Key"
from_acp = true
env = "ANTHROPIC_API_KEY"
[agents.claude]
allow = ["extra.example"]
[agents.mine]
command = ["mine-acp", "--stdio"]
`)
	c := e.load(t)
	a, err := c.ForAgent("claude")
	if err != nil {
		t.Fatal(err)
	}
	// Its login hosts, the file's addition and its model API (the
	// credential's host).
	for _, p := range []string{"console.anthropic.com:443", "extra.example", "api.anthropic.com"} {
		i := slices.Index(a.Network.Allow, p)
		if i < 0 {
			t.Fatalf("%s not allowed for claude: %q", p, a.Network.Allow)
		}
		if o := a.Origin(fmt.Sprintf("network.allow[%d]", i)).String(); !strings.HasPrefix(o, "agent claude") {
			t.Errorf("origin of %s = %q", p, o)
		}
	}
	if slices.Contains(c.Network.Allow, "extra.example") {
		t.Error("ForAgent changed the receiver")
	}
	// The file's credential for the host and header wins over the preset's.
	if len(a.Credentials) != 1 || !a.Credentials[0].FromACP {
		t.Errorf("Credentials = %+v", a.Credentials)
	}
	if got, want := c.Agents["claude"].Hosts(), []string{"console.anthropic.com:443", "claude.ai:443", "extra.example", "api.anthropic.com"}; !slices.Equal(got, want) {
		t.Errorf("claude's hosts %q, want %q", got, want)
	}
	if _, err := c.ForAgent("nope"); err == nil || !strings.Contains(err.Error(), `"claude"`) {
		t.Errorf("ForAgent(nope) = %v", err)
	}
	for argv, want := range map[string]string{
		"claude-agent-acp":             "claude",
		"/usr/bin/claude-agent-acp -v": "claude",
		"gemini --acp":                 "gemini",
		"gemini":                       "",
		"mine-acp --stdio --x":         "mine",
		"codex":                        "",
	} {
		if got := c.AgentFor(strings.Fields(argv)); got != want {
			t.Errorf("AgentFor(%s) = %q, want %q", argv, got, want)
		}
	}
}

// TestPresets: every preset parses with the enforcing parser; they nest;
// and "open" still keeps private addresses closed.
func TestPresets(t *testing.T) {
	for _, name := range PresetNames {
		if _, err := policy.New(PresetHosts(name), nil); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	locked, balanced := PresetHosts("locked"), PresetHosts("balanced")
	for _, h := range locked {
		if !slices.Contains(balanced, h) {
			t.Errorf("balanced lacks locked's %s", h)
		}
	}
	for _, h := range []string{"registry.npmjs.org:443", "pypi.org:443", "proxy.golang.org:443", "crates.io:443", "github.com:443", "**.githubusercontent.com:443"} {
		if !slices.Contains(balanced, h) {
			t.Errorf("balanced lacks %s", h)
		}
	}
	// The built-in agents' model APIs (from their credentials) come first.
	if got, want := locked[:3], []string{"api.anthropic.com:443", "api.openai.com:443", "generativelanguage.googleapis.com:443"}; !slices.Equal(got, want) {
		t.Errorf("locked starts %q, want %q", got, want)
	}
	p, _ := policy.New(PresetHosts("locked"), nil)
	if d := p.AllowName("pypi.org", 443); d.Allow {
		t.Error("locked allows pypi.org")
	}
	if d := p.AllowName("api.anthropic.com", 80); d.Allow {
		t.Error("locked allows plain HTTP to the model API")
	}
	p, _ = policy.New(PresetHosts("open"), nil)
	if d := p.AllowName("anything.example", 443); !d.Allow {
		t.Errorf("open denies a public name: %s", d.Reason)
	}
	for _, ip := range []string{"10.0.0.1", "127.0.0.1", "169.254.169.254"} {
		if d := p.AllowName(ip, 443); d.Allow {
			t.Errorf("open allows %s", ip)
		}
	}
	if _, err := Starter("wide"); err == nil || !strings.Contains(err.Error(), `"locked", "balanced" or "open"`) {
		t.Errorf("Starter(wide) = %v", err)
	}
}

func TestExplainAndValues(t *testing.T) {
	e := newEnv(t)
	e.writeWS(t, "[sandbox]\nmemory = \"1536MiB\"\nidle_timeout = \"0\"\n[[mounts]]\nhost = \"/data/set\"\nread_only = false\n", true)
	c := e.load(t)
	out := c.Explain()
	for _, want := range []string{
		`memory = "1536MiB"                           # ` + e.wsFile() + ":2:1\n",
		`idle_timeout = "0"                           # ` + e.wsFile() + ":3:1\n",
		"[[mounts]]                                   # " + e.wsFile() + ":4:1\nhost = \"/data/set\"\nguest = \"/data/set\"\nread_only = false\n",
		`  "api.anthropic.com:443",                   # preset locked` + "\n",
		"[agents.claude]                              # built in\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Explain lacks %q:\n%s", want, out)
		}
	}
	vals := c.Values()
	i := slices.IndexFunc(vals, func(v Value) bool { return v.Path == "mounts[0]" })
	if i < 0 || vals[i].TOML != `{ host = "/data/set", guest = "/data/set", read_only = false }` || vals[i].Origin != e.wsFile()+":4:1" {
		t.Errorf("mounts[0] value = %+v", vals[i])
	}
	if c.Mounts[0] != (Mount{Host: "/data/set", Guest: "/data/set", Writable: true}) {
		t.Errorf("Mounts = %+v", c.Mounts)
	}
}

// TestSymlinksResolved: a harmless-looking path that is a symlink into a
// credential directory is refused like the directory itself.
func TestSymlinksResolved(t *testing.T) {
	e := newEnv(t)
	ssh := filepath.Join(e.opts.Home, ".ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ssh, "id_ed25519"), "key")
	link := filepath.Join(e.opts.Home, "project-data")
	if err := os.Symlink(ssh, link); err != nil {
		t.Fatal(err)
	}
	src := "[[mounts]]\nhost = \"~/project-data\"\n[[credentials]]\nhost = \"h.example\"\nheader = \"x\"\nfrom_file = \"~/project-data/id_ed25519\"\n"
	err := Check("sandbox.toml", []byte(src), e.opts)
	if err == nil {
		t.Fatal("symlinks into ~/.ssh accepted")
	}
	realSSH, _ := filepath.EvalSymlinks(ssh)
	for _, want := range []string{
		"sandbox.toml:2:8: mounts[0].host \"~/project-data\": refusing to mount it: it would expose credentials in ",
		"sandbox.toml:6:13: credentials[0].from_file " + link + "/id_ed25519 is inside " + realSSH + ", which holds keys",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
