package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"golang.org/x/net/dns/dnsmessage"
)

// fakeInternetChild marks the re-executed test process that runs inside
// the private network namespace.
const fakeInternetChild = "ACP_SANDBOX_E2E_FAKE_INTERNET"

// TestFakeInternet runs the shipped network path — the host's real
// resolver and dialer, no test hooks — inside a private network namespace
// (DESIGN.md §9): a DNS server and web servers on documentation addresses
// on the namespace's loopback, and a default route into a veth whose far
// end goes nowhere. Whatever the stack dials that is not ours lands on
// that veth, so its RX counter proves no denied flow was dialed.
func TestFakeInternet(t *testing.T) {
	if os.Getenv(fakeInternetChild) == "" {
		vmtest.RequireQEMU(t)
		if os.Getuid() != 0 {
			vmtest.Skip(t, "the fake internet needs root (a network namespace with addresses and routes)")
		}
		for _, tool := range []string{"unshare", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				vmtest.Skip(t, "the fake internet needs %s (util-linux, iproute2)", tool)
			}
		}
		vmtest.Binary(t) // build once, outside
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "--net", "--mount", "--propagation", "private", "--",
			os.Args[0], "-test.run", "^TestFakeInternet$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), fakeInternetChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in the private namespace: %v\n%s", err, out)
		}
		t.Logf("in the private namespace:\n%s", out)
		return
	}
	fi := setupFakeInternet(t)

	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	e.MustRun(ws, "start", "-q", "--allow", "api.example.com", "--allow", "rebind.example.com")
	sh := func(script string) vmtest.Result {
		t.Helper()
		return e.Run(ws, nil, "exec", "--", "bash", "-c", script)
	}

	t.Run("allowed name through the real resolver and dialer", func(t *testing.T) {
		r := sh("curl -sS -m 20 http://api.example.com/")
		if r.Code != 0 || !strings.Contains(r.Stdout, "hello api.example.com") {
			t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		if fi.queries("api.example.com") == 0 {
			t.Errorf("the host resolver was not asked: the answer came from elsewhere")
		}
	})

	for _, c := range []struct {
		name, script string
		match        func(netstack.Event) bool
	}{
		{"unlisted name", "curl -sS -m 10 http://unlisted.example.com/",
			func(ev netstack.Event) bool { return ev.Proto == "dns" && ev.Name == "unlisted.example.com" }},
		{"direct IP", "curl -sS -m 10 http://198.51.100.7/",
			func(ev netstack.Event) bool { return ev.IP.String() == "198.51.100.7" }},
		{"metadata IP", "curl -sS -m 10 http://169.254.169.254/",
			func(ev netstack.Event) bool { return ev.IP.String() == "169.254.169.254" }},
		{"RFC1918", "curl -sS -m 10 http://10.0.0.1/",
			func(ev netstack.Event) bool { return ev.IP.String() == "10.0.0.1" }},
		{"host loopback port not named", fmt.Sprintf("curl -sS -m 10 http://%s:%d/", netstack.HostServiceIP, fi.hostPort),
			func(ev netstack.Event) bool { return ev.Rule == netstack.RuleHostService && ev.Port == fi.hostPort }},
		{"UDP to an outside :53", `node -e 'const s = require("dgram").createSocket("udp4"); s.send("x", 53, "8.8.8.8", () => { s.close(); process.exit(3) })'`,
			func(ev netstack.Event) bool { return ev.Proto == "udp" && ev.IP.String() == "8.8.8.8" }},
		{"DNS TXT for an allowed name", `node -e 'require("dns").promises.resolveTxt("api.example.com").then(r => console.log(r), e => process.exit(2))'`,
			func(ev netstack.Event) bool { return ev.Rule == netstack.RuleQueryType }},
		{"SNI of an unlisted name on a pinned IP", "curl -sSk -m 10 --resolve unlisted.example.com:443:203.0.113.10 https://unlisted.example.com/",
			func(ev netstack.Event) bool { return ev.Name == "unlisted.example.com" && ev.Port == 443 }},
		{"Host header mismatch", "curl -sS -m 10 -H 'Host: unlisted.example.com' http://api.example.com/",
			func(ev netstack.Event) bool { return ev.Name == "unlisted.example.com" && ev.Port == 80 }},
		{"rebinding name", "curl -sS -m 10 http://rebind.example.com/",
			func(ev netstack.Event) bool {
				return ev.Name == "rebind.example.com" && ev.Rule == netstack.RuleRebinding
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rx, q := fi.rx(t), fi.queries("unlisted.example.com")
			if r := sh(c.script); r.Code == 0 {
				t.Fatalf("escape succeeded: %q", r.Stdout)
			}
			if got := fi.rx(t); got != rx {
				t.Errorf("%d packets left for the outside world (veth RX %d → %d)", got-rx, rx, got)
			}
			if fi.queries("unlisted.example.com") != q {
				t.Errorf("an unlisted name was looked up on the host")
			}
			waitAudit(t, e, ws, func(ev netstack.Event) bool { return ev.Verdict == netstack.VerdictDeny && c.match(ev) })
		})
	}
	if n := fi.hostHits(); n != 0 {
		t.Errorf("the host service was reached %d times without its port being shared", n)
	}
}

// fakeInternet is the namespace's world.
type fakeInternet struct {
	hostPort int
	mu       sync.Mutex
	asked    map[string]int
	hits     int
}

func (f *fakeInternet) queries(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[name]
}

func (f *fakeInternet) hostHits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// rx is the far end's received-packet counter: everything that tried to
// leave the namespace. (/proc/net/dev is this namespace's; /sys is the
// host's mount.)
func (f *fakeInternet) rx(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || name != "v1" {
			continue
		}
		fields := strings.Fields(stats) // rx bytes, rx packets, …
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("no v1 in /proc/net/dev:\n%s", b)
	return 0
}

func setupFakeInternet(t *testing.T) *fakeInternet {
	t.Helper()
	// No IPv6 on the new links: their router solicitations would count
	// as leaks. (/proc/sys/net is this namespace's.)
	for _, k := range []string{"default", "all"} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", "203.0.113.1/32", "dev", "lo"},
		{"ip", "addr", "add", "203.0.113.10/32", "dev", "lo"},
		{"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "link", "set", "v0", "up"},
		{"ip", "link", "set", "v1", "up"},
		{"ip", "addr", "add", "192.0.2.2/24", "dev", "v0"},
		{"ip", "route", "add", "default", "via", "192.0.2.1", "dev", "v0", "onlink"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	// The host's resolver (Go's, reading /etc/resolv.conf) asks our DNS
	// server; the bind mount lives and dies with this mount namespace.
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 203.0.113.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", resolv, "/etc/resolv.conf").CombinedOutput(); err != nil {
		t.Fatalf("bind resolv.conf: %v\n%s", err, out)
	}

	f := &fakeInternet{asked: map[string]int{}}
	serveDNS(t, f, map[string]netip.Addr{
		"api.example.com":    netip.MustParseAddr("203.0.113.10"),
		"rebind.example.com": netip.MustParseAddr("127.0.0.1"),
	})
	web := func(addr string, h http.HandlerFunc) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln
	}
	web("203.0.113.10:80", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello %s\n", r.Host) })
	ln := web("127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits++
		f.mu.Unlock()
		fmt.Fprintln(w, "host service")
	})
	f.hostPort = ln.Addr().(*net.TCPAddr).Port
	return f
}

// serveDNS answers A queries for names from 203.0.113.1:53 and counts
// every question.
func serveDNS(t *testing.T, f *fakeInternet, names map[string]netip.Addr) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "203.0.113.1:53")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, peer, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			name := strings.TrimSuffix(q.Name.String(), ".")
			f.mu.Lock()
			f.asked[name]++
			f.mu.Unlock()
			m.Response, m.RecursionAvailable = true, true
			ip, ok := names[name]
			switch {
			case !ok:
				m.RCode = dnsmessage.RCodeNameError
			case q.Type == dnsmessage.TypeA:
				m.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					Body:   &dnsmessage.AResource{A: ip.As4()},
				}}
			}
			if b, err := m.Pack(); err == nil {
				_, _ = pc.WriteTo(b, peer)
			}
		}
	}()
}
