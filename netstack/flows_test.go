package netstack

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

var allowAPI = []string{"api.example.com", "rebind.example.com", "fail.example.com", "mixed.example.com", "other.example.com"}

// resolveAPI resolves api.example.com from the guest, pinning apiIP.
func (e *env) resolveAPI(t *testing.T) {
	t.Helper()
	m := e.query(t, "api.example.com", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeSuccess || !slices.Equal(aRecords(m), []netip.Addr{apiIP}) {
		t.Fatalf("api.example.com: rcode %v answers %v", m.RCode, aRecords(m))
	}
}

func TestHTTPSRoundTrip(t *testing.T) {
	e := newEnv(t, allowAPI)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Host)
	}))
	defer srv.Close()
	e.dial.route["203.0.113.10:443"] = srv.Listener.Addr().String()

	e.resolveAPI(t)
	c := e.connectT(t, apiIP, 443)
	defer c.Close()
	// The test server's certificate is not for api.example.com; what is
	// tested is the SNI check and the splice, not the PKI.
	tc := tls.Client(c, &tls.Config{ServerName: "api.example.com", InsecureSkipVerify: true})
	if body := httpGet(t, tc, "api.example.com"); body != "hello api.example.com" {
		t.Fatalf("body %q", body)
	}
	if d := e.dial.dialed(); !slices.Equal(d, []string{"203.0.113.10:443"}) {
		t.Fatalf("dialed %v", d)
	}
	e.audit.find(t, func(ev Event) bool {
		return ev.Proto == ProtoTCP && ev.Verdict == VerdictAllow && ev.Name == "api.example.com" && ev.Port == 443
	})
}

func TestHTTPRoundTripHalfClose(t *testing.T) {
	e := newEnv(t, allowAPI)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Host+" got "+string(b))
	}))
	defer srv.Close()
	e.dial.route["203.0.113.10:80"] = srv.Listener.Addr().String()

	e.resolveAPI(t)
	c, err := e.connect(apiIP, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hang))
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\nConnection: close\r\n\r\nping"); err != nil {
		t.Fatal(err)
	}
	// Half-close: our FIN must reach upstream, and its reply still come back.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(all), "HTTP/1.1 200") || !strings.HasSuffix(string(all), "api.example.com got ping") {
		t.Fatalf("response %q", all)
	}
}

// A name not in the allow list never reaches the host resolver: no lookup
// leaks the name, and the guest learns nothing.
func TestDNSUnlistedNXDOMAIN(t *testing.T) {
	e := newEnv(t, allowAPI)
	m := e.query(t, "evil.example.net", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("rcode %v", m.RCode)
	}
	if n := e.res.names(); len(n) != 0 {
		t.Fatalf("resolver asked %v", n)
	}
	e.noDial(t)
	e.audit.find(t, func(ev Event) bool {
		return ev.Proto == ProtoDNS && ev.Name == "evil.example.net" && ev.Verdict == VerdictDeny
	})
}

// TXT (and MX, ANY, …) would carry data out through the host's resolver.
func TestDNSTXTRefused(t *testing.T) {
	e := newEnv(t, allowAPI)
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeTXT, dnsmessage.TypeMX, dnsmessage.TypeALL} {
		m := e.query(t, "api.example.com", typ)
		if m.RCode != dnsmessage.RCodeRefused {
			t.Fatalf("%v: rcode %v", typ, m.RCode)
		}
	}
	if n := e.res.names(); len(n) != 0 {
		t.Fatalf("resolver asked %v", n)
	}
}

func TestDNSUpstreamFailureSERVFAIL(t *testing.T) {
	e := newEnv(t, allowAPI)
	if m := e.query(t, "fail.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("rcode %v", m.RCode)
	}
}

// AAAA is answered empty: the link is IPv4 only.
func TestDNSAAAAEmpty(t *testing.T) {
	e := newEnv(t, allowAPI)
	m := e.query(t, "api.example.com", dnsmessage.TypeAAAA)
	if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Fatalf("rcode %v answers %v", m.RCode, m.Answers)
	}
}

// Rebinding: an allowed name resolving to loopback must not hand the guest
// a way to the host's own services.
func TestDNSRebinding(t *testing.T) {
	e := newEnv(t, allowAPI)
	m := e.query(t, "rebind.example.com", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeNameError || len(m.Answers) != 0 {
		t.Fatalf("rcode %v answers %v", m.RCode, aRecords(m))
	}
	e.audit.find(t, func(ev Event) bool { return ev.Name == "rebind.example.com" && ev.Rule == RuleRebinding })
	e.audit.find(t, func(ev Event) bool {
		return ev.Name == "rebind.example.com" && ev.IP == netip.MustParseAddr("127.0.0.1") && ev.Verdict == VerdictDeny
	})
	e.noDial(t)
}

// Loopback is never forwarded (gVisor drops a loopback destination arriving
// on the NIC, so the guest sees no answer rather than an RST).
func TestTCPLoopbackNotForwarded(t *testing.T) {
	e := newEnv(t, allowAPI)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, e.guest, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4([4]byte{127, 0, 0, 1}), Port: 80}, ipv4.ProtocolNumber)
	if err == nil {
		c.Close()
		t.Fatal("connected to 127.0.0.1:80")
	}
	e.noDial(t)
}

// A private address in an answer is dropped, the public one kept.
func TestDNSMixedAnswerFiltered(t *testing.T) {
	e := newEnv(t, allowAPI)
	m := e.query(t, "mixed.example.com", dnsmessage.TypeA)
	if got := aRecords(m); m.RCode != dnsmessage.RCodeSuccess || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("203.0.113.20")}) {
		t.Fatalf("rcode %v answers %v", m.RCode, got)
	}
}

// Connects the policy denies get an RST and never reach the dialer.
func TestTCPDeniedRST(t *testing.T) {
	e := newEnv(t, allowAPI)
	e.resolveAPI(t) // a pin exists, but only for 203.0.113.10
	for _, tc := range []struct {
		ip   string
		port uint16
		why  string
	}{
		{"198.51.100.7", 443, "public address no allowed name resolved to"},
		{"203.0.113.10", 22, "pinned address on a port the name is not allowed on"},
		{"10.0.0.1", 80, "private network of the host"},
		{"169.254.169.254", 80, "cloud metadata service"},
		{"192.168.127.1", 80, "the gateway: no HTTP API, no NAT to host loopback"},
	} {
		c, err := e.connect(netip.MustParseAddr(tc.ip), tc.port)
		if err == nil {
			c.Close()
			t.Fatalf("%s:%d (%s): connected", tc.ip, tc.port, tc.why)
		}
		if !isReset(err) {
			t.Fatalf("%s:%d (%s): want RST, got %v", tc.ip, tc.port, tc.why, err)
		}
		e.audit.find(t, func(ev Event) bool {
			return ev.Proto == ProtoTCP && ev.IP.String() == tc.ip && int(ev.Port) == int(tc.port) && ev.Verdict == VerdictDeny
		})
	}
	e.noDial(t)
}

// Domain fronting: a pinned address, but the SNI names another host.
func TestTLSUnpinnedSNIReset(t *testing.T) {
	e := newEnv(t, allowAPI)
	e.resolveAPI(t)
	for _, sni := range []string{"evil.example.net", "other.example.com"} {
		c, err := e.connect(apiIP, 443)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(hang))
		err = tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
		c.Close()
		if !isReset(err) {
			t.Fatalf("SNI %s: want RST, got %v", sni, err)
		}
		e.audit.find(t, func(ev Event) bool {
			return ev.Proto == ProtoTCP && ev.Name == sni && ev.Verdict == VerdictDeny
		})
	}
	e.noDial(t)
}

// Plain HTTP naming another host on a pinned address.
func TestHTTPUnpinnedHostReset(t *testing.T) {
	e := newEnv(t, allowAPI)
	e.resolveAPI(t)
	c, err := e.connect(apiIP, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hang))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: evil.example.net\r\n\r\n")
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("want RST, got %v", err)
	}
	e.noDial(t)
}

// UDP other than DNS to the gateway (another resolver, QUIC) is dropped.
func TestUDPDropped(t *testing.T) {
	e := newEnv(t, allowAPI)
	c, err := dialGuestUDP(e, apiIP, 53)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("not really a query")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Fatalf("got a %d-byte reply", n)
	}
	e.audit.find(t, func(ev Event) bool {
		return ev.Proto == ProtoUDP && ev.IP == apiIP && ev.Port == 53 && ev.Verdict == VerdictDeny
	})
	e.noDial(t)
}
