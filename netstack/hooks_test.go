package netstack

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
	"golang.org/x/net/dns/dnsmessage"
)

// approver records what it was asked and answers from answer.
type approver struct {
	mu     sync.Mutex
	asked  []Flow
	answer func(context.Context, Flow) bool
}

func (a *approver) approve(ctx context.Context, f Flow) bool {
	a.mu.Lock()
	a.asked = append(a.asked, f)
	a.mu.Unlock()
	return a.answer(ctx, f)
}

func (a *approver) flows() []Flow {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

// An approved lookup resolves and pins; the connect that follows is
// covered by the same grant (one question for one user action).
func TestApproveLookupThenConnect(t *testing.T) {
	ap := &approver{answer: func(context.Context, Flow) bool { return true }}
	e := newEnvWith(t, nil, func(c *Config) { c.Approve = ap.approve })
	t.Cleanup(e.cleanup)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	e.dial.route["203.0.113.10:80"] = srv.Listener.Addr().String()

	m := e.query(t, "api.example.com", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeSuccess || !slices.Equal(aRecords(m), []netip.Addr{apiIP}) {
		t.Fatalf("approved lookup: rcode %v answers %v", m.RCode, aRecords(m))
	}
	c := e.connectT(t, apiIP, 80)
	defer c.Close()
	if b := httpGet(t, c, "api.example.com"); b != "ok" {
		t.Fatalf("body %q", b)
	}
	got := ap.flows()
	if len(got) != 1 || got[0].Proto != ProtoDNS || got[0].Name != "api.example.com" || got[0].Suggest != "api.example.com" || got[0].Rule != policy.RuleDefaultDeny {
		t.Fatalf("asked %+v, want one DNS question for api.example.com", got)
	}
	e.audit.find(t, func(ev Event) bool {
		return ev.Proto == ProtoTCP && ev.Verdict == VerdictAllow && ev.Rule == RuleApproved
	})
}

// A rejected lookup is NXDOMAIN and nothing is resolved or dialed.
func TestApproveRejected(t *testing.T) {
	ap := &approver{answer: func(context.Context, Flow) bool { return false }}
	e := newEnvWith(t, nil, func(c *Config) { c.Approve = ap.approve })
	t.Cleanup(e.cleanup)
	if m := e.query(t, "api.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("rcode %v", m.RCode)
	}
	if n := e.res.names(); len(n) != 0 {
		t.Fatalf("resolver asked %v for a rejected name", n)
	}
	e.noDial(t)
}

// No answer in time is a denial; the flow does not hang.
func TestApproveTimeoutDenies(t *testing.T) {
	ap := &approver{answer: func(ctx context.Context, _ Flow) bool { <-ctx.Done(); return true }}
	e := newEnvWith(t, nil, func(c *Config) { c.Approve = ap.approve; c.ApproveTimeout = 50 * time.Millisecond })
	t.Cleanup(e.cleanup)
	c, err := e.connect(netip.MustParseAddr("198.51.100.7"), 22)
	if err == nil {
		c.Close()
		t.Fatal("connect succeeded after an approval timed out")
	}
	if got := ap.flows(); len(got) != 1 || got[0].Suggest != "198.51.100.7:22" {
		t.Fatalf("asked %+v", got)
	}
	e.noDial(t)
}

// An explicit deny rule is the policy author's decision: never put to the
// user (or an agent could nag its way past it).
func TestApproveNotAskedForExplicitDeny(t *testing.T) {
	ap := &approver{answer: func(context.Context, Flow) bool { return true }}
	e := newEnvWith(t, nil, func(c *Config) {
		pol, err := policy.New([]string{"**.example.com"}, []string{"api.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		c.Rules.Policy = pol
		c.Approve = ap.approve
	})
	t.Cleanup(e.cleanup)
	if m := e.query(t, "api.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("rcode %v", m.RCode)
	}
	if m := e.query(t, "x.example.com", dnsmessage.TypeTXT); m.RCode != dnsmessage.RCodeRefused {
		t.Fatalf("TXT rcode %v", m.RCode)
	}
	if got := ap.flows(); len(got) != 0 {
		t.Fatalf("asked about %+v", got)
	}
}

// SetRules applies to the next lookup without a restart.
func TestSetRulesLive(t *testing.T) {
	e := newEnv(t, nil)
	if m := e.query(t, "api.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("before: rcode %v", m.RCode)
	}
	pol, _ := policy.New([]string{"api.example.com"}, nil)
	e.st.SetRules(Rules{Policy: pol})
	e.resolveAPI(t)
	e.st.SetRules(Rules{})
	if m := e.query(t, "api.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("after removal: rcode %v", m.RCode)
	}
}

// Host services: the name resolves only when a port is shared, and only
// shared ports reach the host's loopback.
func TestHostServices(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "host") }))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, nil)
	if m := e.query(t, HostServiceName, dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("no host ports: rcode %v", m.RCode)
	}
	e.st.SetRules(Rules{HostPorts: []int{port}})
	e.dial.route[netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()] = srv.Listener.Addr().String()
	if m := e.query(t, HostServiceName, dnsmessage.TypeA); !slices.Equal(aRecords(m), []netip.Addr{HostServiceIP}) {
		t.Fatalf("answers %v", aRecords(m))
	}
	c := e.connectT(t, HostServiceIP, uint16(port))
	if b := httpGet(t, c, "x"); b != "host" {
		t.Fatalf("body %q", b)
	}
	c.Close()

	// Another port of the host: RST, audited, never dialed.
	before := len(e.dial.dialed())
	if c, err := e.connect(HostServiceIP, uint16(port+1)); err == nil {
		c.Close()
		t.Fatal("unshared host port connected")
	}
	if n := len(e.dial.dialed()); n != before {
		t.Fatalf("dialer called for an unshared host port: %v", e.dial.dialed())
	}
	e.audit.find(t, func(ev Event) bool {
		return ev.Rule == RuleHostService && ev.Verdict == VerdictDeny && ev.Port == port+1 && strings.Contains(ev.Reason, "host_ports")
	})
}

// Intercept gets the allowed TLS flow with its ClientHello replayed, and
// dials through the stack.
func TestInterceptHandOff(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "upstream") }))
	defer srv.Close()
	var (
		mu   sync.Mutex
		seen []Flow
	)
	e := newEnvWith(t, allowAPI, func(c *Config) {
		c.Intercept = func(f Flow) FlowHandler {
			mu.Lock()
			seen = append(seen, f)
			mu.Unlock()
			return func(ctx context.Context, guest net.Conn, dial func(context.Context) (net.Conn, error)) {
				defer guest.Close()
				up, err := dial(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				defer up.Close()
				// Pass the guest's bytes through, proving the replay
				// starts with the ClientHello.
				go func() { _, _ = io.Copy(up, guest) }()
				_, _ = io.Copy(guest, up)
			}
		}
	})
	t.Cleanup(e.cleanup)
	e.dial.route["203.0.113.10:443"] = srv.Listener.Addr().String()
	e.resolveAPI(t)
	c := e.connectT(t, apiIP, 443)
	defer c.Close()
	tc := tls.Client(c, &tls.Config{ServerName: "api.example.com", InsecureSkipVerify: true})
	if b := httpGet(t, tc, "api.example.com"); b != "upstream" {
		t.Fatalf("body %q", b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].Name != "api.example.com" || seen[0].Port != 443 {
		t.Fatalf("intercept offered %+v", seen)
	}
}
