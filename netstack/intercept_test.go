package netstack_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
)

// End to end through the real stack: a guest (a second gVisor stack on the
// socketpair) resolves names through the gateway's DNS, connects, and
// speaks TLS to what it believes is the service; the stack hands the flows
// with a credential rule to netstack/mitm (cfg.Intercept =
// interceptor.Intercept) and splices the rest. The "internet" is a
// loopback HTTPS server with its own test CA.

const (
	e2eSecret = "sk-ant-REAL-e2e-3b8f0c2d7a9e4f1b6c5d8e0a2f4b6d8c"
	apiName   = "api.example.com"   // rule "anthropic"
	otherName = "other.example.com" // rule "github"
	plainName = "plain.example.com" // no rule: spliced
)

var (
	apiAddr   = netip.MustParseAddr("203.0.113.10")
	otherAddr = netip.MustParseAddr("203.0.113.11")
	plainAddr = netip.MustParseAddr("203.0.113.12")
	rawAddr   = netip.MustParseAddr("203.0.113.13") // allowed by address: no DNS, no SNI peek
)

// upstreamPKI returns a pool with a fresh test CA and a certificate it
// signed for the test names.
func upstreamPKI(t testing.TB) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	serial := func() *big.Int { n, _ := rand.Int(rand.Reader, big.NewInt(1<<62)); return n }
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "e2e upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: serial(), DNSNames: []string{apiName, otherName, plainName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type e2e struct {
	env    *netstack.TestEnv
	ca     *mitm.CA
	ic     *mitm.Interceptor
	roots  *x509.CertPool // the upstream's test CA
	addrs  map[string]netip.Addr
	ph     string // the guest's placeholder for "anthropic"
	mu     sync.Mutex
	events []mitm.Event
}

// newE2E starts the upstream (h handles it), the Interceptor and the
// stack with the test names allowed and routed to the upstream.
func newE2E(t testing.TB, h http.Handler) *e2e {
	t.Helper()
	roots, cert := upstreamPKI(t)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	x := &e2e{roots: roots, ph: mitm.NewPlaceholder("anthropic"),
		addrs: map[string]netip.Addr{apiName: apiAddr, otherName: otherAddr, plainName: plainAddr}}
	var err error
	if x.ca, err = mitm.LoadOrCreateCA(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	x.ic, err = mitm.New(mitm.Options{
		CA: x.ca,
		Rules: []mitm.Rule{
			{Name: "anthropic", Host: apiName, Header: "x-api-key", Placeholder: x.ph,
				Secret: func(context.Context) (string, error) { return e2eSecret, nil }},
			{Name: "github", Host: otherName, Header: "Authorization", Format: "Bearer {}", Placeholder: mitm.NewPlaceholder("github"),
				Secret: func(context.Context) (string, error) { return "ghp_e2e_other", nil }},
		},
		UpstreamRoots: roots,
		Audit: func(ev mitm.Event) {
			x.mu.Lock()
			defer x.mu.Unlock()
			x.events = append(x.events, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x.env = netstack.NewTestEnv(t, []string{apiName, otherName, plainName, rawAddr.String() + ":443"}, func(c *netstack.Config) {
		c.Intercept = x.ic.Intercept
	})
	for name, ip := range x.addrs {
		x.env.SetName(name, ip)
		x.env.Route(netip.AddrPortFrom(ip, 443).String(), srv.Listener.Addr().String())
		if got := x.env.Resolve(t, name); !slices.Equal(got, []netip.Addr{ip}) {
			t.Fatalf("%s resolved to %v", name, got)
		}
	}
	x.env.Route(netip.AddrPortFrom(rawAddr, 443).String(), srv.Listener.Addr().String())
	return x
}

// client is an HTTP client in the guest: it connects through the stack to
// the address the guest's DNS gave (or to addr, if set) and trusts roots
// only.
func (x *e2e) client(t testing.TB, h2 bool, roots *x509.CertPool, addr netip.Addr) *http.Client {
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, hostport string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(hostport)
			ip := addr
			if !ip.IsValid() {
				ip = x.addrs[host]
			}
			c, err := x.env.Connect(ip, 443)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: roots, NextProtos: protos})
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
		ForceAttemptHTTP2:  h2,
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func (x *e2e) sandboxRoots(t testing.TB) *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(x.ca.CertPEM()) {
		t.Fatal("CA PEM does not parse")
	}
	return pool
}

func TestInterceptThroughStack(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	x := newE2E(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Host+" "+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		fmt.Fprintf(w, "hello %s over %s", r.Host, r.Proto)
	}))

	// A guest trusting the sandbox CA gets the real key put in, over h1
	// and h2, and never sees it.
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", "https://"+apiName+"/v1/models", nil)
		req.Header.Set("X-Api-Key", x.ph)
		resp, err := x.client(t, h2, x.sandboxRoots(t), netip.Addr{}).Do(req)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello "+apiName) || strings.Contains(string(body)+fmt.Sprint(resp.Header), e2eSecret) {
			t.Fatalf("h2=%v: %d %q", h2, resp.StatusCode, body)
		}
		if h2 && resp.ProtoMajor != 2 {
			t.Errorf("guest spoke %s", resp.Proto)
		}
	}
	mu.Lock()
	if want := []string{apiName + " " + e2eSecret, apiName + " " + e2eSecret}; !slices.Equal(keys, want) {
		t.Errorf("upstream saw %q, want the real key twice", keys)
	}
	mu.Unlock()

	// The placeholder sent to the other intercepted host: 403 naming the
	// rule, and the stack never dials that host.
	req, _ := http.NewRequest("POST", "https://"+otherName+"/gist", strings.NewReader("k="+x.ph))
	resp, err := x.client(t, true, x.sandboxRoots(t), netip.Addr{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), `the placeholder for credential "anthropic" was sent to other.example.com`) {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if slices.Contains(x.env.Dialed(), netip.AddrPortFrom(otherAddr, 443).String()) {
		t.Fatalf("stack dialed %v", x.env.Dialed())
	}

	// A host without a rule is spliced: the guest sees the upstream's own
	// certificate (our CA could not vouch for it).
	resp, err = x.client(t, false, x.roots, netip.Addr{}).Get("https://" + plainName + "/")
	if err != nil {
		t.Fatalf("spliced host: %v", err)
	}
	resp.Body.Close()
	if _, err := x.client(t, false, x.sandboxRoots(t), netip.Addr{}).Get("https://" + plainName + "/x"); err == nil {
		t.Fatal("the spliced host was served with a sandbox certificate")
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	var verdicts []string
	for _, ev := range x.events {
		verdicts = append(verdicts, ev.Host+" "+ev.Verdict)
	}
	if want := []string{apiName + " allow", apiName + " allow", otherName + " deny"}; !slices.Equal(verdicts, want) {
		t.Errorf("audit %q, want %q", verdicts, want)
	}
}

// The bulk-download cost of interception through the real stack, against
// the same download spliced by name (DNS pin, SNI checked, TLS end to
// end) and spliced by an address rule (no DNS, no peek: the stack's
// cheapest path, as with the policy out of the way). Each op downloads
// once on every arm, in turn, so the reported ratios hold under a
// changing machine load:
//
//	go test -run '^$' -bench Intercept ./netstack/
func BenchmarkInterceptDownload(b *testing.B) {
	blob := make([]byte, 16<<20)
	_, _ = rand.Read(blob)
	x := newE2E(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		_, _ = w.Write(blob)
	}))
	arms := []struct {
		name  string
		host  string
		roots *x509.CertPool
		addr  netip.Addr
	}{
		{"intercepted", apiName, x.sandboxRoots(b), netip.Addr{}},
		{"spliced", plainName, x.roots, netip.Addr{}},
		{"address-rule", apiName, x.roots, rawAddr},
	}
	for _, h2 := range []bool{false, true} {
		b.Run(map[bool]string{false: "h1", true: "h2"}[h2], func(b *testing.B) {
			clients := make([]*http.Client, len(arms))
			for i, arm := range arms {
				clients[i] = x.client(b, h2, arm.roots, arm.addr)
			}
			took := make([]time.Duration, len(arms))
			for b.Loop() {
				for i, arm := range arms {
					start := time.Now()
					req, _ := http.NewRequest("GET", "https://"+arm.host+"/blob", nil)
					req.Header.Set("X-Api-Key", x.ph)
					resp, err := clients[i].Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || n != int64(len(blob)) {
						b.Fatalf("%s: read %d: %v", arm.name, n, err)
					}
					took[i] += time.Since(start)
				}
			}
			mb := float64(b.N) * float64(len(blob)) / 1e6
			for i, arm := range arms {
				b.ReportMetric(mb/took[i].Seconds(), arm.name+"-MB/s")
			}
			b.ReportMetric(100*took[1].Seconds()/took[0].Seconds(), "%-of-spliced")
			b.ReportMetric(100*took[2].Seconds()/took[0].Seconds(), "%-of-address-rule")
		})
	}
}
