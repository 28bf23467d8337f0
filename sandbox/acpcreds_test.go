package sandbox

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
)

// newCaptureSupervisor is a supervisor with its configuration, audit and
// credentials set up, and no VM.
func newCaptureSupervisor(t *testing.T, extra ...config.Credential) *supervisor {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, k := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"} {
		t.Setenv(k, "")
	}
	ws := t.TempDir()
	sb := &Sandbox{ID: "0123456789abcdef", Workspace: ws, StateDir: filepath.Join(t.TempDir(), "state")}
	if err := os.MkdirAll(sb.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(sb)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = append(cfg.Credentials, extra...)
	s := &supervisor{sb: sb, cfg: cfg, log: slog.New(slog.DiscardHandler), approvals: newApprovals()}
	if s.audit, err = openNetAudit(sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.audit.Close)
	if s.creds, err = s.setupCreds(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	err = s.applyRulesLocked()
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *supervisor) intercepts(name string) bool {
	return s.creds.ic.Intercept(netstack.Flow{Proto: netstack.ProtoTCP, Name: name, Port: 443}) != nil
}

func (s *supervisor) allows(pattern string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.eff.Allow, pattern)
}

// A bare key goes to the API its auth method names, under a rule of the
// session's own; a key for an unnamed API is refused; the session's rules
// go when its connection does.
func TestCaptureAPIKey(t *testing.T) {
	s := newCaptureSupervisor(t)
	ap := &approver{}
	const gl = "generativelanguage.googleapis.com"
	if s.intercepts(gl) {
		t.Fatal("intercepted before any key")
	}
	r := s.capture(ap, Capture{ID: 7, Method: "authenticate", APIKey: "AIza-REAL", Provider: "google"})
	if r.Error != "" || r.ID != 7 || !strings.HasPrefix(r.APIKey, mitm.PlaceholderPrefix) || strings.Contains(r.APIKey, "REAL") {
		t.Fatalf("capture: %+v", r)
	}
	if !s.intercepts(gl) {
		t.Error("the key's API is not intercepted after the capture")
	}
	if !slices.ContainsFunc(s.creds.active, func(a string) bool { return strings.Contains(a, gl) && strings.Contains(a, "ACP") }) {
		t.Errorf("status does not show the captured rule: %q", s.creds.active)
	}

	r = s.capture(ap, Capture{ID: 8, Method: "authenticate", APIKey: "sk-REAL"})
	if !strings.Contains(r.Error, "cannot tell which API") || strings.Contains(r.Error, "sk-REAL") {
		t.Fatalf("a key for no named API: %+v", r)
	}

	s.dropACPSession(ap)
	if s.intercepts(gl) {
		t.Error("still intercepted after the editor left")
	}
}

// A from_acp [[credentials]] rule takes the key when the provider matches
// its host (or it is the only one): the agent gets the rule's persisted
// placeholder, the one its variable holds in the VM.
func TestCaptureFromACPRule(t *testing.T) {
	s := newCaptureSupervisor(t, config.Credential{Host: "api.example.com", Header: "x-api-key", Format: "{}", FromACP: true, Env: "EXAMPLE_KEY"})
	var envPH string
	for _, e := range s.creds.env {
		if v, ok := strings.CutPrefix(e, "EXAMPLE_KEY="); ok {
			envPH = v
		}
	}
	if !strings.HasPrefix(envPH, mitm.PlaceholderPrefix) {
		t.Fatalf("a from_acp rule's variable has no placeholder at boot: %q", s.creds.env)
	}
	if !s.intercepts("api.example.com") {
		t.Error("a from_acp rule's host is not intercepted before the key comes (its requests must get a 502 that says why)")
	}
	r := s.capture(&approver{}, Capture{Method: "authenticate", APIKey: "k-REAL"})
	if r.Error != "" || r.APIKey != envPH {
		t.Fatalf("capture: %+v, want the variable's placeholder %q", r, envPH)
	}
	if !slices.ContainsFunc(s.creds.active, func(a string) bool {
		return strings.Contains(a, "api.example.com") && !strings.Contains(a, "waiting")
	}) {
		t.Errorf("status: %q", s.creds.active)
	}
}

// A gateway's host is allowed and its headers replaced by placeholders
// bound to it; a gateway on the host's loopback is reached by name, and
// refused when it would need headers over plain HTTP; a refused request
// changes nothing.
func TestCaptureGateway(t *testing.T) {
	s := newCaptureSupervisor(t)
	ap := &approver{}
	r := s.capture(ap, Capture{Method: "providers/set", BaseURL: "https://gw.example.com/anthropic/v1",
		Headers: map[string]string{"Authorization": "Bearer REAL", "X-Empty": ""}})
	if r.Error != "" || r.BaseURL != "https://gw.example.com/anthropic/v1" {
		t.Fatalf("capture: %+v", r)
	}
	if !strings.HasPrefix(r.Headers["Authorization"], mitm.PlaceholderPrefix) || r.Headers["X-Empty"] != "" {
		t.Fatalf("headers: %q", r.Headers)
	}
	if !s.allows("gw.example.com:443") || !s.intercepts("gw.example.com") {
		t.Fatalf("gateway not reachable or not intercepted: %v", s.eff)
	}

	for _, c := range []struct {
		c    Capture
		want string
	}{
		{Capture{Method: "providers/set", BaseURL: "http://localhost:4000", Headers: map[string]string{"k": "REAL"}}, "on this machine"},
		{Capture{Method: "providers/set", BaseURL: "https://127.0.0.1:4000"}, "use http"},
		{Capture{Method: "providers/set", BaseURL: "https://gw2.example.com:8443", Headers: map[string]string{"k": "REAL"}}, "port 443"},
		{Capture{Method: "providers/set", BaseURL: "http://gw2.example.com", Headers: map[string]string{"k": "REAL"}}, "port 443"},
		{Capture{Method: "providers/set", BaseURL: "https://203.0.113.9", Headers: map[string]string{"k": "REAL"}}, "address"},
		{Capture{Method: "providers/set", BaseURL: "https://user:REAL@gw2.example.com"}, "user or password"},
		{Capture{Method: "providers/set", BaseURL: "ftp://gw2.example.com"}, "not an http(s) URL"},
	} {
		before := s.eff
		r := s.capture(ap, c.c)
		if !strings.Contains(r.Error, c.want) || strings.Contains(r.Error, "REAL") {
			t.Errorf("%s: error %q, want it to say %q (and no secret)", c.c.BaseURL, r.Error, c.want)
		}
		if !s.eff.Equal(before) {
			t.Errorf("%s: a refused request changed the rules: %v", c.c.BaseURL, s.eff)
		}
	}

	r = s.capture(ap, Capture{Method: "providers/set", BaseURL: "http://localhost:4000/v1"})
	if r.Error != "" || r.BaseURL != "http://"+netstack.HostServiceName+":4000/v1" {
		t.Fatalf("loopback gateway: %+v", r)
	}
	if !slices.Contains(s.eff.HostPorts, 4000) || !s.allows("gw.example.com:443") {
		t.Fatalf("rules after the second gateway: %v", s.eff)
	}

	s.dropACPSession(ap)
	if s.allows("gw.example.com:443") || slices.Contains(s.eff.HostPorts, 4000) || s.intercepts("gw.example.com") {
		t.Fatalf("the gateways outlived the editor: %v", s.eff)
	}
}

// A [[credentials]] rule and a bypass added to the user's config.toml
// apply to the running sandbox at the next poll, without a restart.
func TestCredentialsLiveReload(t *testing.T) {
	s := newCaptureSupervisor(t)
	if s.intercepts("api.example.com") {
		t.Fatal("intercepted before any rule")
	}
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("EXAMPLE_TOKEN", "tok-REAL")
	if err := os.MkdirAll(filepath.Join(dir, "acp-sandbox"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "acp-sandbox", "config.toml"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const rule = "[[credentials]]\nhost = \"api.example.com\"\nheader = \"Authorization\"\nformat = \"Bearer {}\"\nfrom_env = \"EXAMPLE_TOKEN\"\n"
	write(rule)
	s.reloadPolicy()
	if !s.intercepts("api.example.com") {
		t.Fatalf("a credential added to config.toml does not apply live: %q", s.creds.active)
	}
	write(rule + "[network]\nbypass = [\"api.example.com\"]\n")
	s.reloadPolicy()
	if s.intercepts("api.example.com") {
		t.Error("a bypass added to config.toml does not apply live")
	}
}

// A key the editor sends takes its host alone: a GEMINI_API_KEY in the
// host's environment no longer overwrites it, and comes back when the
// editor leaves.
func TestEditorKeyWinsOnItsHost(t *testing.T) {
	s := newCaptureSupervisor(t)
	t.Setenv("GEMINI_API_KEY", "env-REAL")
	s.mu.Lock()
	err := s.applyCredsLocked()
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	envRule := func() bool {
		return slices.ContainsFunc(s.creds.active, func(a string) bool { return strings.Contains(a, "env GEMINI_API_KEY") })
	}
	if !envRule() {
		t.Fatalf("the environment's key is not in force: %q", s.creds.active)
	}
	ap := &approver{}
	if r := s.capture(ap, Capture{Method: "authenticate", APIKey: "editor-REAL", Provider: "google"}); r.Error != "" {
		t.Fatal(r.Error)
	}
	if envRule() {
		t.Errorf("the environment's key still applies beside the editor's: %q", s.creds.active)
	}
	s.dropACPSession(ap)
	if !envRule() {
		t.Errorf("the environment's key did not come back after the editor left: %q", s.creds.active)
	}
}
