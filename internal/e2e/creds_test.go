package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// upstream is an HTTPS stand-in for a real API: a certificate for its
// names from its own CA (which only the credentials layer trusts), and a
// record of the credentials it received. It never echoes them.
type upstream struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	keys   []string // x-api-key values received
	hits   []string // "METHOD host/path"
}

func newUpstream(t *testing.T, names ...string) *upstream {
	t.Helper()
	ca, err := mitm.LoadOrCreateCA(t.TempDir()) // "the internet's" CA, not the sandbox's
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.keys = append(u.keys, r.Header.Get("x-api-key"))
		u.hits = append(u.hits, r.Method+" "+r.Host+r.URL.Path)
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream ok %s %s\n", r.Method, r.URL.Path)
	}))
	u.srv.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return ca.Leaf(h.ServerName) }}
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	u.caFile = filepath.Join(t.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(u.caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *upstream) seen() ([]string, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.keys...), append([]string(nil), u.hits...)
}

// The real key reaches the API; the VM only ever holds a placeholder, and
// every TLS client in it trusts the sandbox CA.
func TestCredentialInjection(t *testing.T) {
	e := vmtest.NewEnv(t)
	up := newUpstream(t)
	var rb [16]byte
	_, _ = rand.Read(rb[:])
	secret := "sk-test-" + hex.EncodeToString(rb[:])

	dir := t.TempDir()
	netFile := filepath.Join(dir, "net.json")
	tn := sandbox.TestNet{
		Hosts:      map[string][]string{"api.example.com": {"203.0.113.10"}, "other.example.com": {"203.0.113.20"}},
		Routes:     map[string]string{"203.0.113.10:443": up.srv.Listener.Addr().String(), "203.0.113.20:443": up.srv.Listener.Addr().String()},
		UpstreamCA: up.caFile,
	}
	b, _ := json.Marshal(tn)
	if err := os.WriteFile(netFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, sandbox.TestNetEnv+"="+netFile, "ACPS_TEST_KEY="+secret)
	ws := e.Workspace()
	policy := `[network]
allow = ["api.example.com", "other.example.com"]

[[network.http]]
host = "other.example.com"
methods = ["GET"]
paths = ["/public/**"]

[[credentials]]
host = "api.example.com"
header = "x-api-key"
from_env = "ACPS_TEST_KEY"
env = "ACPS_TEST_KEY"
`
	if err := os.WriteFile(filepath.Join(ws, "sandbox.toml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	e.MustRun(ws, "policy", "approve", "--yes")
	e.MustRun(ws, "start", "-q")
	sh := func(script string) vmtest.Result {
		t.Helper()
		return e.Run(ws, nil, "exec", "--", "bash", "-c", script)
	}

	ph := strings.TrimSpace(sh("printenv ACPS_TEST_KEY").Stdout)
	if !strings.HasPrefix(ph, mitm.PlaceholderPrefix) || strings.Contains(ph, secret) {
		t.Fatalf("the VM's ACPS_TEST_KEY is %q, want a placeholder", ph)
	}

	t.Run("clients trust the sandbox CA and the key is injected", func(t *testing.T) {
		clients := map[string]string{
			"curl": `curl -sS -m 30 -H "x-api-key: $ACPS_TEST_KEY" https://api.example.com/v1/curl`,
			"node": `node -e 'fetch("https://api.example.com/v1/node", {headers: {"x-api-key": process.env.ACPS_TEST_KEY}}).then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(e.cause || e); process.exit(1) })'`,
			"wget": `wget -q -T 30 -O- --header "x-api-key: $ACPS_TEST_KEY" https://api.example.com/v1/wget`,
		}
		if _, err := exec.LookPath("/usr/bin/python3"); err == nil {
			clients["python3"] = `/usr/bin/python3 -c 'import os, urllib.request as u; print(u.urlopen(u.Request("https://api.example.com/v1/python3", headers={"x-api-key": os.environ["ACPS_TEST_KEY"]})).read().decode())'`
		}
		for name, script := range clients {
			r := sh(script)
			if r.Code != 0 || !strings.Contains(r.Stdout, "upstream ok GET /v1/"+name) {
				t.Errorf("%s: exit %d stdout %q stderr %q", name, r.Code, r.Stdout, r.Stderr)
			}
		}
		// git verifies with GIT_SSL_CAINFO: the server is no git server, so
		// the answer is an HTTP error, never a certificate problem.
		if r := sh("git ls-remote https://api.example.com/v1/git.git 2>&1"); strings.Contains(r.Stdout, "certificate") || strings.Contains(r.Stdout, "SSL") {
			t.Errorf("git does not trust the sandbox CA: %s", r.Stdout)
		}
		keys, _ := up.seen()
		if len(keys) == 0 {
			t.Fatal("the upstream was never reached")
		}
		for _, k := range keys {
			if k != secret {
				t.Errorf("upstream got x-api-key %q, want the real key", k)
			}
		}
	})

	t.Run("placeholder sent to another host is refused", func(t *testing.T) {
		_, before := up.seen()
		r := sh(`curl -sS -m 30 -o /dev/stderr -w '%{http_code}' -H "x-api-key: $ACPS_TEST_KEY" https://other.example.com/public/x`)
		if r.Stdout != "403" || !strings.Contains(r.Stderr, "acps_test_key") {
			t.Errorf("status %q body %q, want 403 naming the rule", r.Stdout, r.Stderr)
		}
		if _, after := up.seen(); len(after) != len(before) {
			t.Errorf("the request reached the upstream: %v", after[len(before):])
		}
	})

	t.Run("HTTP method and path rules", func(t *testing.T) {
		for _, c := range []struct{ args, want string }{
			{"https://other.example.com/public/a", "200"},
			{"-X POST https://other.example.com/public/a", "403"},
			{"https://other.example.com/private/a", "403"},
		} {
			if r := sh("curl -sS -m 30 -o /dev/null -w '%{http_code}' " + c.args); r.Stdout != c.want {
				t.Errorf("%s: status %q, want %s (%s)", c.args, r.Stdout, c.want, r.Stderr)
			}
		}
	})

	t.Run("the secret is nowhere in the VM or our logs", func(t *testing.T) {
		forms := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), url.QueryEscape(secret)}
		// As the sandbox user and as far as it can see: every process's
		// environment, /etc, its home, /run, the kernel command line.
		r := sh(`cat /proc/cmdline /proc/*/environ 2>/dev/null; grep -rs . /etc /home/agent /run /tmp 2>/dev/null | head -c 50000000`)
		for _, f := range forms {
			if strings.Contains(r.Stdout, f) {
				t.Errorf("the secret (%q form) is visible in the VM", f[:8])
			}
		}
		// Nor the sandbox CA's private key: it stays in the host state dir.
		keys, _ := filepath.Glob(filepath.Join(e.Home, ".local/state/acp-sandbox/*/ca", mitm.CAKeyFile))
		if len(keys) != 1 {
			t.Fatalf("CA key files: %v", keys)
		}
		kb, _ := os.ReadFile(keys[0])
		if lines := strings.Split(strings.TrimSpace(string(kb)), "\n"); len(lines) < 3 || strings.Contains(r.Stdout, lines[1]) {
			t.Errorf("the sandbox CA key is visible in the VM")
		}
		if fi, err := os.Stat(keys[0]); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("CA key mode: %v %v", fi.Mode(), err)
		}
		state := filepath.Join(e.Home, ".local/state/acp-sandbox")
		_ = filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || fi.Size() > 64<<20 {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range forms {
				if strings.Contains(string(b), f) {
					t.Errorf("the secret is in %s", p)
				}
			}
			return nil
		})
		// The initramfs is this binary and modules: no secret can be in
		// it, but check the images this test's VMs booted.
		imgs, _ := filepath.Glob(filepath.Join(vmtest.CacheRoot(), "acp-sandbox", "initramfs", "*"))
		for _, p := range imgs {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(f)
			f.Close()
			if strings.Contains(string(b), secret) {
				t.Errorf("the secret is in the initramfs %s", p)
			}
		}
	})
}
