package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// fakeNet is a test's fake internet: loopback servers behind documentation
// addresses, reached through the test hooks' resolver and dialer (see
// sandbox.TestNet). No packet leaves the machine.
type fakeNet struct {
	http, https, host *httptest.Server
	hostPort          int
	file, dialLog     string
}

func newFakeNet(t *testing.T) *fakeNet {
	t.Helper()
	hello := func(kind string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s %s\n", kind, r.Host)
		})
	}
	f := &fakeNet{
		http:  httptest.NewServer(hello("http")),
		https: httptest.NewTLSServer(hello("https")),
		host:  httptest.NewServer(hello("host-service")),
	}
	t.Cleanup(func() { f.http.Close(); f.https.Close(); f.host.Close() })
	_, p, _ := net.SplitHostPort(f.host.Listener.Addr().String())
	fmt.Sscan(p, &f.hostPort)
	dir := t.TempDir()
	f.file, f.dialLog = filepath.Join(dir, "net.json"), filepath.Join(dir, "dials.log")
	tn := sandbox.TestNet{
		Hosts: map[string][]string{
			"api.example.com":    {"203.0.113.10"},
			"other.example.com":  {"203.0.113.20"},
			"always.example.com": {"203.0.113.20"},
			"third.example.com":  {"203.0.113.20"},
			"rebind.example.com": {"127.0.0.1"},
		},
		Routes: map[string]string{
			"203.0.113.10:80":                       f.http.Listener.Addr().String(),
			"203.0.113.10:443":                      f.https.Listener.Addr().String(),
			"203.0.113.20:443":                      f.https.Listener.Addr().String(),
			"203.0.113.20:80":                       f.http.Listener.Addr().String(),
			fmt.Sprintf("127.0.0.1:%d", f.hostPort): f.host.Listener.Addr().String(),
		},
		DialLog: f.dialLog,
	}
	b, _ := json.Marshal(tn)
	if err := os.WriteFile(f.file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeNet) dials(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.dialLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestNetwork runs curl, wget and node in a real VM against the policy:
// allowed names work over HTTP and HTTPS, and every escape attempt fails,
// is audited, and never reaches the dialer.
func TestNetwork(t *testing.T) {
	e := vmtest.NewEnv(t)
	fn := newFakeNet(t)
	e.Vars = append(e.Vars, sandbox.TestNetEnv+"="+fn.file)
	ws := e.Workspace()
	e.MustRun(ws, "start", "-q", "--allow", "api.example.com", "--allow", "rebind.example.com", "--allow", "other.example.com")

	sh := func(script string) vmtest.Result {
		t.Helper()
		return e.Run(ws, nil, "exec", "--", "bash", "-c", script)
	}

	t.Run("allowed", func(t *testing.T) {
		for _, c := range []struct{ name, script, want string }{
			{"curl http", "curl -sS -m 20 http://api.example.com/", "hello http api.example.com"},
			// -k: the stand-in's certificate is not api.example.com's; the
			// policy's SNI check and the splice are what is tested here.
			{"curl https", "curl -sSk -m 20 https://api.example.com/", "hello https api.example.com"},
			{"wget http", "wget -q -T 20 -O- http://api.example.com/", "hello http api.example.com"},
			{"node fetch", `node -e 'fetch("http://api.example.com/").then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(e); process.exit(1) })'`, "hello http api.example.com"},
		} {
			r := sh(c.script)
			if r.Code != 0 || !strings.Contains(r.Stdout, c.want) {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", c.name, r.Code, r.Stdout, r.Stderr, c.want)
			}
		}
	})
	allowedDials := fn.dials(t)
	for _, d := range allowedDials {
		if d != "203.0.113.10:80" && d != "203.0.113.10:443" {
			t.Errorf("dialed %s for an allowed flow", d)
		}
	}

	// Each escape attempt: the command must fail, the audit log must hold
	// a denial with the rule, and the dialer must not have been called.
	escapes := []struct {
		name, script string
		match        func(netstack.Event) bool
	}{
		{"unlisted name", "curl -sS -m 10 http://unlisted.example.com/",
			func(ev netstack.Event) bool { return ev.Proto == "dns" && ev.Name == "unlisted.example.com" }},
		{"direct IP", "curl -sS -m 10 http://198.51.100.7/",
			func(ev netstack.Event) bool { return ev.Proto == "tcp" && ev.IP.String() == "198.51.100.7" }},
		{"metadata IP", "curl -sS -m 10 http://169.254.169.254/latest/meta-data/",
			func(ev netstack.Event) bool { return ev.Proto == "tcp" && ev.IP.String() == "169.254.169.254" }},
		{"RFC1918", "curl -sS -m 10 http://10.0.0.1/",
			func(ev netstack.Event) bool { return ev.Proto == "tcp" && ev.IP.String() == "10.0.0.1" }},
		{"host loopback by name, port not shared", fmt.Sprintf("curl -sS -m 10 http://%s:%d/", netstack.HostServiceName, fn.hostPort),
			func(ev netstack.Event) bool { return ev.Proto == "dns" && ev.Name == netstack.HostServiceName }},
		{"host loopback by address, port not shared", fmt.Sprintf("curl -sS -m 10 http://%s:%d/", netstack.HostServiceIP, fn.hostPort),
			func(ev netstack.Event) bool {
				return ev.Proto == "tcp" && ev.Rule == netstack.RuleHostService && ev.Port == fn.hostPort
			}},
		{"gateway", "curl -sS -m 10 http://192.168.127.1/",
			func(ev netstack.Event) bool { return ev.Rule == netstack.RuleSandboxNet }},
		{"UDP to an outside :53", `node -e 'const s = require("dgram").createSocket("udp4"); s.send("x", 53, "8.8.8.8", () => { s.close(); process.exit(3) })'`,
			func(ev netstack.Event) bool { return ev.Proto == "udp" && ev.IP.String() == "8.8.8.8" && ev.Port == 53 }},
		{"DNS TXT for an allowed name", `node -e 'require("dns").promises.resolveTxt("api.example.com").then(r => console.log(r), e => { console.error(e.code); process.exit(2) })'`,
			func(ev netstack.Event) bool { return ev.Proto == "dns" && ev.Rule == netstack.RuleQueryType }},
		{"SNI of an unlisted name on a pinned IP", "curl -sSk -m 10 --resolve unlisted.example.com:443:203.0.113.10 https://unlisted.example.com/",
			func(ev netstack.Event) bool {
				return ev.Proto == "tcp" && ev.Name == "unlisted.example.com" && ev.Port == 443
			}},
		{"SNI of an allowed name pinned elsewhere", "curl -sSk -m 10 --resolve other.example.com:443:203.0.113.10 https://other.example.com/",
			func(ev netstack.Event) bool {
				return ev.Proto == "tcp" && ev.Name == "other.example.com" && ev.Rule == netstack.RuleSNI
			}},
		{"Host header mismatch", "curl -sS -m 10 -H 'Host: unlisted.example.com' http://api.example.com/",
			func(ev netstack.Event) bool {
				return ev.Proto == "tcp" && ev.Name == "unlisted.example.com" && ev.Port == 80
			}},
		{"rebinding name", "curl -sS -m 10 http://rebind.example.com/",
			func(ev netstack.Event) bool {
				return ev.Proto == "dns" && ev.Name == "rebind.example.com" && ev.Verdict == "deny"
			}},
	}
	for _, c := range escapes {
		t.Run(c.name, func(t *testing.T) {
			before := len(fn.dials(t))
			r := sh(c.script)
			if r.Code == 0 {
				t.Fatalf("escape succeeded: stdout %q", r.Stdout)
			}
			if d := fn.dials(t); len(d) != before {
				t.Errorf("the dialer was called: %v", d[before:])
			}
			waitAudit(t, e, ws, func(ev netstack.Event) bool { return ev.Verdict == netstack.VerdictDeny && c.match(ev) })
		})
	}

	t.Run("why explains inside the VM", func(t *testing.T) {
		r := sh("acp-sandbox why")
		for _, want := range []string{"unlisted.example.com", "169.254.169.254", `add "10.0.0.1:80" to [network] allow`, "nothing inside the sandbox can change them"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("why output lacks %q:\n%s", want, r.Stdout)
			}
		}
		// The file it reads is the host's, read-only.
		if r := sh("echo '{}' >> /run/acp-sandbox/net/blocked.jsonl"); r.Code == 0 {
			t.Errorf("the guest could write the blocked list")
		}
	})

	t.Run("logs --network", func(t *testing.T) {
		out := e.MustRun(ws, "logs", "--network", "--denied")
		if !strings.Contains(out, "DENY") || !strings.Contains(out, "unlisted.example.com") || strings.Contains(out, "ALLOW") {
			t.Errorf("logs --network --denied:\n%s", out)
		}
	})

	t.Run("host port shared live", func(t *testing.T) {
		r := e.Run(ws, nil, "run", "-q", "--allow", "api.example.com", "--allow", fmt.Sprintf("%s:%d", netstack.HostServiceName, fn.hostPort),
			"--", "curl", "-sS", "-m", "20", fmt.Sprintf("http://%s:%d/", netstack.HostServiceName, fn.hostPort))
		if r.Code != 0 || !strings.Contains(r.Stdout, "hello host-service") {
			t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		if len(e.QEMUPids()) != 1 {
			t.Errorf("changing the rules started another VM: %v", e.QEMUPids())
		}
		// Other host ports stay closed.
		if r := sh(fmt.Sprintf("curl -sS -m 10 http://%s:%d/", netstack.HostServiceName, fn.hostPort+1)); r.Code == 0 {
			t.Errorf("an unshared host port answered: %q", r.Stdout)
		}
	})
}

// waitAudit waits for a matching event in the sandbox's audit log (the
// deny is logged as the guest sees the RST, so it may trail the command).
func waitAudit(t *testing.T, e *vmtest.Env, ws string, match func(netstack.Event) bool) netstack.Event {
	t.Helper()
	dirs := filepath.Join(e.Home, ".local/state/acp-sandbox")
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs, _ := filepath.Glob(filepath.Join(dirs, "*", "network.jsonl"))
		for _, p := range logs {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			dec := json.NewDecoder(f)
			for {
				var ev netstack.Event
				if err := dec.Decode(&ev); err == io.EOF || err != nil {
					break
				}
				if match(ev) {
					f.Close()
					return ev
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			var b []byte
			if len(logs) > 0 {
				b, _ = os.ReadFile(logs[0])
			}
			t.Fatalf("no matching audit event; log:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
