package standin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"golang.org/x/sys/unix"
)

// The real codex-acp and gemini --acp against the stand-in, driven with
// the repo's ACP client. See the package doc for what they send.

const (
	codexBin  = "/usr/local/lib/acp-sandbox-test-agents/bin/codex-acp"
	geminiBin = "/usr/local/lib/acp-sandbox-test-agents/bin/gemini"
)

const testKey = "test-key-123"

// acpRun is one agent run: its command, environment and the ACP
// authenticate params (nil: no authenticate call).
type acpRun struct {
	argv []string
	env  map[string]string // "$HOME" in a value is the run's HOME
	auth map[string]any
	// files are written under HOME before the agent starts.
	files map[string]string
	// promptTimeout bounds session/prompt; 0 is the run's 3 minutes.
	promptTimeout time.Duration
}

type acpResult struct {
	stopReason string
	err        error // from the first ACP call that failed
	text       string
	lookups    []string // DNS names looked up during the run
}

// driveAgent starts the agent with a fresh HOME and XDG directories and
// runs initialize, authenticate (if asked), session/new and one
// session/prompt "say hello".
func driveAgent(t *testing.T, s *Server, run acpRun) acpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home, cwd := t.TempDir(), t.TempDir()
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local/share"),
		"XDG_STATE_HOME=" + filepath.Join(home, ".local/state"),
	}
	for k, v := range run.env {
		env = append(env, k+"="+strings.ReplaceAll(v, "$HOME", home))
	}
	for name, content := range run.files {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(env)
	t.Logf("agent %q, environment %q", run.argv, env)
	// A file, not a pipe: the agent's children may keep a stderr pipe
	// open after it has gone, and Wait would wait for them.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	// setsid: the agent leads a process group of its own, ended as a
	// whole below (codex-acp's node wrapper starts the real binary,
	// gemini relaunches itself).
	argv := append([]string{"setsid", "-w"}, run.argv...)
	var asked atomic.Int32 // requests from the agent, served concurrently
	handler := func(ctx context.Context, m *acp.Message) (any, error) {
		asked.Add(1)
		t.Logf("agent request %s %s", m.Method, tail(string(m.Params), 500))
		if m.Method == "session/request_permission" {
			return map[string]any{"outcome": map[string]any{"outcome": "cancelled"}}, nil
		}
		return nil, &acp.WireError{Code: acp.MethodNotFound, Message: "this test client serves no " + m.Method}
	}
	t0 := time.Now()
	c, err := acpclient.Start(argv, env, cwd, stderr, handler)
	if err != nil {
		t.Fatal(err)
	}
	pid := c.Process().Pid
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer ccancel()
		if err := c.Close(cctx); err == context.DeadlineExceeded {
			t.Logf("the agent still ran 3s after its stdin closed: killed")
		} else {
			t.Logf("the agent exited when its stdin closed: %v", err)
		}
		unix.Kill(-pid, unix.SIGKILL)
		if t.Failed() || testing.Verbose() {
			b, _ := os.ReadFile(stderr.Name())
			t.Logf("agent stderr:\n%s", tail(string(b), 12000))
		}
		// What the agent keeps in HOME, two levels down.
		var files []string
		filepath.WalkDir(home, func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(home, p)
			if err != nil || rel == "." {
				return nil
			}
			files = append(files, rel)
			if d.IsDir() && strings.Count(rel, "/") >= 1 {
				return filepath.SkipDir
			}
			return nil
		})
		t.Logf("HOME holds %q", files)
	}()

	var res acpResult
	raw, err := c.Call(ctx, "initialize", map[string]any{
		"protocolVersion":    1,
		"clientCapabilities": map[string]any{"fs": map[string]any{"readTextFile": false, "writeTextFile": false}, "terminal": false},
		"clientInfo":         map[string]any{"name": "acp-sandbox-standin-test", "version": "0"},
	})
	if err != nil {
		res.err = fmt.Errorf("initialize: %w", err)
		return res
	}
	tInit := time.Since(t0)
	var ir struct {
		AuthMethods []json.RawMessage `json:"authMethods"`
	}
	json.Unmarshal(raw, &ir)
	t.Logf("authMethods: %s", ir.AuthMethods)
	requestsAt := func() string { return fmt.Sprintf("%d requests", len(s.Requests())) }
	t.Logf("initialize answered after %v, %s", tInit.Round(time.Millisecond), requestsAt())
	if run.auth != nil {
		ta := time.Now()
		if _, err := c.Call(ctx, "authenticate", run.auth); err != nil {
			res.err = fmt.Errorf("authenticate: %w", err)
			return res
		}
		t.Logf("authenticate answered in %v, %s", time.Since(ta).Round(time.Millisecond), requestsAt())
	}
	tn := time.Now()
	raw, err = c.Call(ctx, "session/new", map[string]any{"cwd": cwd, "mcpServers": []any{}})
	if err != nil {
		res.err = fmt.Errorf("session/new: %w", err)
		return res
	}
	var sn struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(raw, &sn); err != nil || sn.SessionID == "" {
		t.Fatalf("session/new result %s: %v", raw, err)
	}
	t.Logf("session/new answered in %v, %s", time.Since(tn).Round(time.Millisecond), requestsAt())
	n := len(c.Updates())
	tp := time.Now()
	pctx := ctx
	if run.promptTimeout > 0 {
		var pcancel context.CancelFunc
		pctx, pcancel = context.WithTimeout(ctx, run.promptTimeout)
		defer pcancel()
	}
	raw, err = c.Call(pctx, "session/prompt", map[string]any{
		"sessionId": sn.SessionID,
		"prompt":    []any{map[string]any{"type": "text", "text": "say hello"}},
	})
	tPrompt := time.Since(tp)
	if err != nil {
		res.err = fmt.Errorf("session/prompt: %w", err)
	} else {
		var pr struct {
			StopReason string `json:"stopReason"`
		}
		json.Unmarshal(raw, &pr)
		res.stopReason = pr.StopReason
	}
	var text strings.Builder
	var kinds []string
	for _, u := range c.Updates()[n:] {
		var p struct {
			SessionID string `json:"sessionId"`
			Update    struct {
				SessionUpdate string `json:"sessionUpdate"`
				Content       struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"content"`
			} `json:"update"`
		}
		if u.Method != "session/update" || json.Unmarshal(u.Params, &p) != nil || p.SessionID != sn.SessionID {
			continue
		}
		kinds = append(kinds, p.Update.SessionUpdate)
		if p.Update.SessionUpdate == "agent_message_chunk" && p.Update.Content.Type == "text" {
			text.WriteString(p.Update.Content.Text)
		}
	}
	res.text = text.String()
	t.Logf("session/prompt answered in %v (%v after the agent started), %s; updates %q; %d agent requests",
		tPrompt.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), requestsAt(), kinds, asked.Load())
	return res
}

// withLookups is driveAgent recording in the result which names the
// agent looked up (those not in /etc/hosts).
func withLookups(dns *dnsLog) func(*testing.T, *Server, acpRun) acpResult {
	return func(t *testing.T, s *Server, run acpRun) acpResult {
		t.Helper()
		dns.Names()
		res := driveAgent(t, s, run) // which ends the agent
		res.lookups = dns.Names()
		t.Logf("names looked up (not in /etc/hosts): %q", res.lookups)
		return res
	}
}

// checkReply fails t unless the agent answered the prompt with the
// stand-in's reply and the stand-in saw key.
func checkReply(t *testing.T, s *Server, res acpResult, key string) {
	t.Helper()
	logRequests(t, s)
	if res.err != nil {
		t.Fatalf("%v", res.err)
	}
	if res.stopReason != "end_turn" {
		t.Errorf("stopReason %q, want end_turn", res.stopReason)
	}
	if res.text != s.Reply() {
		t.Errorf("agent_message_chunk text %q, want %q", res.text, s.Reply())
	}
	if !slices.Contains(s.KeysSeen(), key) {
		t.Errorf("KeysSeen = %q, want %q among them", s.KeysSeen(), key)
	}
}

func logRequests(t *testing.T, s *Server) {
	t.Helper()
	for _, r := range s.Requests() {
		t.Logf("seen: %s %s%s host=%s sni=%q api=%s model=%s stream=%v x-api-key=%q authorization=%q x-goog-api-key=%q key=%q headers=%v body=%dB %s → %d",
			r.Method, r.Path, query(r.Query), r.Host, r.ServerName, r.API, r.Model, r.Stream, r.APIKey, r.Authorization,
			r.GoogAPIKey, r.QueryKey, r.Header, r.BodySize, bodySummary(r.Body), r.Status)
	}
}

// bodySummary lists a JSON body's fields, with the values of the short
// ones.
func bodySummary(b []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	var parts []string
	for k, v := range m {
		if len(v) <= 80 {
			parts = append(parts, k+"="+string(v))
		} else {
			parts = append(parts, fmt.Sprintf("%s=(%dB)", k, len(v)))
		}
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

// writeCA writes the stand-in's CA to a file and returns its path.
func writeCA(t *testing.T, s *Server) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// checkNoAnswer fails t if the agent got the stand-in's reply, and
// reports what it got instead.
func checkNoAnswer(t *testing.T, s *Server, res acpResult) {
	t.Helper()
	logRequests(t, s)
	if res.text == s.Reply() {
		t.Errorf("the agent got the stand-in's answer")
	}
	t.Logf("stop reason %q, error %v, text %q", res.stopReason, res.err, res.text)
}

// checkHost fails t unless every request came for host (Host header
// and TLS server name).
func checkHost(t *testing.T, s *Server, host string) {
	t.Helper()
	for _, r := range s.Requests() {
		if h, _, _ := strings.Cut(r.Host, ":"); h != host || r.ServerName != host {
			t.Errorf("request with Host %q, server name %q; want %s", r.Host, r.ServerName, host)
		}
	}
}

// systemCA puts a system trust store holding only the stand-in's CA in
// place, as a VM that trusts the sandbox CA system-wide would have.
func systemCA(t *testing.T, s *Server) {
	t.Helper()
	const store = "/etc/ssl/certs/ca-certificates.crt"
	ca := writeCA(t, s)
	if err := unix.Mount(ca, store, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot put a private %s in place: %v", store, err)
	}
	t.Cleanup(func() { unix.Unmount(store, 0) })
}

// TestCodexAgent runs the real codex-acp (0.16.0, codex 0.137.0) against
// the stand-in as the OpenAI Responses API, in a network namespace with
// only loopback (see inPrivateNet).
func TestCodexAgent(t *testing.T) {
	if !inPrivateNet(t, "TestCodexAgent", codexBin) {
		return
	}
	driveAgent := withLookups(startDNSLog(t))
	codex := func(args ...string) []string { return append([]string{"/usr/bin/node", codexBin}, args...) }
	baseURL := func(u string) []string { return codex("-c", fmt.Sprintf("openai_base_url=%q", u)) }
	openAIKey := map[string]any{"methodId": "openai-api-key"}
	keyEnv := map[string]string{"OPENAI_API_KEY": testKey}

	t.Run("http base URL", func(t *testing.T) {
		s := New(Options{Reply: "Hello from the stand-in, over plain HTTP on loopback.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{argv: baseURL(s.URL() + "/v1"), env: keyEnv, auth: openAIKey})
		checkReply(t, s, res, testKey)
	})

	// The base URL from config.toml, as a user sets it; CA from
	// SSL_CERT_FILE.
	t.Run("https localhost config.toml SSL_CERT_FILE", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Reply: "Hello over HTTPS, trusted through SSL_CERT_FILE.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv:  codex(),
			env:   map[string]string{"OPENAI_API_KEY": testKey, "SSL_CERT_FILE": writeCA(t, s)},
			auth:  openAIKey,
			files: map[string]string{".codex/config.toml": fmt.Sprintf("openai_base_url = \"https://localhost:%d/v1\"\n", s.Port())},
		})
		checkReply(t, s, res, testKey)
	})

	// codex's own CA variable; the key from CODEX_API_KEY.
	t.Run("https localhost CODEX_CA_CERTIFICATE codex-api-key", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Reply: "Hello over HTTPS, trusted through CODEX_CA_CERTIFICATE.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv: baseURL(fmt.Sprintf("https://localhost:%d/v1", s.Port())),
			env:  map[string]string{"CODEX_API_KEY": testKey, "CODEX_CA_CERTIFICATE": writeCA(t, s)},
			auth: map[string]any{"methodId": "codex-api-key"},
		})
		checkReply(t, s, res, testKey)
	})

	// As in the VM: no base URL, api.openai.com:443 is the stand-in
	// (here through /etc/hosts), trusted through SSL_CERT_FILE.
	t.Run("api.openai.com as in the VM SSL_CERT_FILE", func(t *testing.T) {
		privateHosts(t, "api.openai.com")
		s := New(Options{TLS: true, Hosts: []string{"api.openai.com"}, Addr: "127.0.0.1:443",
			Reply: "Hello from api.openai.com, or so it seems.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{argv: codex(), env: map[string]string{"OPENAI_API_KEY": testKey, "SSL_CERT_FILE": writeCA(t, s)}, auth: openAIKey})
		checkReply(t, s, res, testKey)
		checkHost(t, s, "api.openai.com")
	})

	// As in a VM that trusts the sandbox CA system-wide, with no CA
	// variable at all.
	t.Run("api.openai.com as in the VM system trust store", func(t *testing.T) {
		privateHosts(t, "api.openai.com")
		s := New(Options{TLS: true, Hosts: []string{"api.openai.com"}, Addr: "127.0.0.1:443",
			Reply: "Hello from api.openai.com, trusted system-wide.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		systemCA(t, s)
		res := driveAgent(t, s, acpRun{argv: codex(), env: keyEnv, auth: openAIKey})
		checkReply(t, s, res, testKey)
		checkHost(t, s, "api.openai.com")
	})

	// Without the CA no request gets through.
	t.Run("https without the CA fails", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{argv: baseURL(fmt.Sprintf("https://localhost:%d/v1", s.Port())), env: keyEnv, auth: openAIKey})
		checkNoAnswer(t, s, res)
		if n := len(s.Requests()); n != 0 {
			t.Errorf("%d requests got through TLS without the CA", n)
		}
	})

	// A key the API refuses: the agent must not take the 401 for an
	// answer.
	t.Run("wrong key", func(t *testing.T) {
		s := New(Options{Key: "the-right-key", Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{argv: baseURL(s.URL() + "/v1"), env: keyEnv, auth: openAIKey})
		checkNoAnswer(t, s, res)
		if !slices.Equal(s.KeysSeen(), []string{testKey}) {
			t.Errorf("KeysSeen = %q", s.KeysSeen())
		}
	})

	// Without authenticate codex-acp refuses session/new: OPENAI_API_KEY
	// alone is not enough.
	t.Run("no authenticate", func(t *testing.T) {
		s := New(Options{Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{argv: baseURL(s.URL() + "/v1"), env: keyEnv})
		t.Logf("without authenticate: %v", res.err)
		if res.err == nil || !strings.Contains(res.err.Error(), "session/new") {
			t.Errorf("session/new without authenticate: %v, want an error", res.err)
		}
	})
}

// TestGeminiAgent runs the real gemini --acp (@google/gemini-cli 0.61.0)
// against the stand-in as the Gemini API, in a network namespace with
// only loopback (see inPrivateNet).
func TestGeminiAgent(t *testing.T) {
	if !inPrivateNet(t, "TestGeminiAgent", geminiBin) {
		return
	}
	driveAgent := withLookups(startDNSLog(t))
	gemini := []string{"/usr/bin/node", geminiBin, "--acp"}
	apiKey := map[string]any{"methodId": "gemini-api-key"}

	t.Run("http base URL", func(t *testing.T) {
		s := New(Options{Reply: "Hello from the stand-in, over plain HTTP on loopback.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv: gemini,
			env:  map[string]string{"GEMINI_API_KEY": testKey, "GOOGLE_GEMINI_BASE_URL": s.URL()},
			auth: apiKey,
		})
		checkReply(t, s, res, testKey)
	})

	// The key in authenticate's _meta instead of the environment.
	t.Run("https localhost NODE_EXTRA_CA_CERTS key in _meta", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Reply: "Hello over HTTPS, trusted through NODE_EXTRA_CA_CERTS.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv: gemini,
			env:  map[string]string{"GOOGLE_GEMINI_BASE_URL": fmt.Sprintf("https://localhost:%d", s.Port()), "NODE_EXTRA_CA_CERTS": writeCA(t, s)},
			auth: map[string]any{"methodId": "gemini-api-key", "_meta": map[string]any{"api-key": testKey}},
		})
		checkReply(t, s, res, testKey)
	})

	// As in the VM: no base URL, generativelanguage.googleapis.com:443 is
	// the stand-in (here through /etc/hosts), trusted through
	// NODE_EXTRA_CA_CERTS.
	t.Run("generativelanguage.googleapis.com as in the VM", func(t *testing.T) {
		const host = "generativelanguage.googleapis.com"
		privateHosts(t, host)
		s := New(Options{TLS: true, Hosts: []string{host}, Addr: "127.0.0.1:443",
			Reply: "Hello from generativelanguage.googleapis.com, or so it seems.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv: gemini,
			env:  map[string]string{"GEMINI_API_KEY": testKey, "NODE_EXTRA_CA_CERTS": writeCA(t, s)},
			auth: apiKey,
		})
		checkReply(t, s, res, testKey)
		checkHost(t, s, host)
	})

	// node keeps its own roots: a system trust store alone does not do.
	t.Run("system trust store alone fails", func(t *testing.T) {
		const host = "generativelanguage.googleapis.com"
		privateHosts(t, host)
		s := New(Options{TLS: true, Hosts: []string{host}, Addr: "127.0.0.1:443", Key: testKey, Logf: t.Logf})
		defer s.Close()
		systemCA(t, s)
		// It retries for minutes.
		res := driveAgent(t, s, acpRun{argv: gemini, env: map[string]string{"GEMINI_API_KEY": testKey}, auth: apiKey, promptTimeout: 30 * time.Second})
		checkNoAnswer(t, s, res)
		if n := len(s.Requests()); n != 0 {
			t.Errorf("%d requests got through TLS with the CA only in the system store", n)
		}
	})

	t.Run("https without the CA fails", func(t *testing.T) {
		s := New(Options{TLS: true, Hosts: []string{"localhost"}, Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv: gemini,
			env:  map[string]string{"GEMINI_API_KEY": testKey, "GOOGLE_GEMINI_BASE_URL": fmt.Sprintf("https://localhost:%d", s.Port())},
			auth: apiKey,
			// It retries for minutes.
			promptTimeout: 30 * time.Second,
		})
		checkNoAnswer(t, s, res)
		if n := len(s.Requests()); n != 0 {
			t.Errorf("%d requests got through TLS without the CA", n)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		s := New(Options{Key: "the-right-key", Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv: gemini,
			env:  map[string]string{"GEMINI_API_KEY": testKey, "GOOGLE_GEMINI_BASE_URL": s.URL()},
			auth: apiKey,
		})
		checkNoAnswer(t, s, res)
		if !slices.Equal(s.KeysSeen(), []string{testKey}) {
			t.Errorf("KeysSeen = %q", s.KeysSeen())
		}
	})

	// The usage statistics gemini-cli sends to play.googleapis.com
	// (Clearcut) stop with privacy.usageStatisticsEnabled false.
	t.Run("usage statistics off", func(t *testing.T) {
		s := New(Options{Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{
			argv:  gemini,
			env:   map[string]string{"GEMINI_API_KEY": testKey, "GOOGLE_GEMINI_BASE_URL": s.URL()},
			auth:  apiKey,
			files: map[string]string{".gemini/settings.json": `{"privacy": {"usageStatisticsEnabled": false}}`},
		})
		checkReply(t, s, res, testKey)
		if slices.Contains(res.lookups, "play.googleapis.com") {
			t.Errorf("play.googleapis.com looked up with usage statistics off")
		}
	})

	// GEMINI_API_KEY alone, without authenticate, as in the VM.
	t.Run("no authenticate as in the VM", func(t *testing.T) {
		const host = "generativelanguage.googleapis.com"
		privateHosts(t, host)
		s := New(Options{TLS: true, Hosts: []string{host}, Addr: "127.0.0.1:443",
			Reply: "Hello without authenticate.", Key: testKey, Logf: t.Logf})
		defer s.Close()
		res := driveAgent(t, s, acpRun{argv: gemini, env: map[string]string{"GEMINI_API_KEY": testKey, "NODE_EXTRA_CA_CERTS": writeCA(t, s)}})
		checkReply(t, s, res, testKey)
		checkHost(t, s, host)
	})
}
