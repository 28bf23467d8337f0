package mitm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
)

// hang only catches hangs.
const hang = 20 * time.Second

// Names the test upstream answers for.
const (
	apiHost   = "api.example.com"
	otherHost = "other.example.com"
	plainHost = "plain.example.com" // no rule: spliced
)

const (
	// testSecret is the real key: it must reach the upstream and nothing
	// else.
	testSecret = "sk-test-REAL-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"
	// otherSecret is the second rule's real key.
	otherSecret = "ghp_REALotherSECRET0123456789abcdefABCDEF"
)

// testPKI is an upstream CA and a server certificate for the test names.
type testPKI struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "test upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: apiHost},
		DNSNames:  []string{apiHost, otherHost, plainHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testPKI{pool: pool, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// upstream is a loopback HTTPS server standing in for the internet.
type upstream struct {
	srv  *httptest.Server
	hits atomic.Int64 // requests its handler saw
}

func newUpstream(t testing.TB, pki testPKI, h2 bool, h http.Handler) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.cert}}
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests make fail
	if h2 {
		u.srv.EnableHTTP2 = true
	} else {
		u.srv.TLS.NextProtos = []string{"http/1.1"}
	}
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

// tenv is an Interceptor between a guest HTTP client and the upstream,
// over loopback TCP, with the FlowHandler driven as netstack drives it.
type tenv struct {
	t       testing.TB
	ca      *CA
	ic      *Interceptor
	up      *upstream
	upRoots *x509.CertPool // what the Interceptor verifies the upstream with
	audit   *auditLog
	logs    *lockedBuffer
	ctx     context.Context
	flows   sync.WaitGroup
	dials   sync.Map // host → *atomic.Int64
	placeA  string   // placeholder of rule "anthropic" (apiHost)
	placeO  string   // placeholder of rule "github" (otherHost)
}

type auditLog struct {
	mu     sync.Mutex
	events []Event
}

func (a *auditLog) add(e Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *auditLog) all() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Event(nil), a.events...)
}

// find waits a little for an event matching f (the audit of a proxied
// request may land just after the guest has its response).
func (a *auditLog) find(t testing.TB, f func(Event) bool) Event {
	t.Helper()
	for deadline := time.Now().Add(hang); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, e := range a.all() {
			if f(e) {
				return e
			}
		}
	}
	t.Fatalf("no matching audit event in %+v", a.all())
	return Event{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTenv builds the Interceptor (tweak edits its Options) in front of up:
// rule "anthropic" sets x-api-key on apiHost, rule "github" sets
// Authorization: Bearer on otherHost; plainHost has no rule.
func newTenv(t testing.TB, up *upstream, roots *x509.CertPool, tweak func(*Options)) *tenv {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &tenv{t: t, ca: ca, up: up, upRoots: roots, audit: &auditLog{}, logs: &lockedBuffer{},
		placeA: NewPlaceholder("anthropic"), placeO: NewPlaceholder("github")}
	opts := Options{
		CA: ca,
		Rules: []Rule{
			{Name: "anthropic", Host: apiHost, Header: "x-api-key", Placeholder: e.placeA,
				Secret: func(context.Context) (string, error) { return testSecret, nil }},
			{Name: "github", Host: otherHost, Header: "Authorization", Format: "Bearer {}", Placeholder: e.placeO,
				Secret: func(context.Context) (string, error) { return otherSecret, nil }},
		},
		UpstreamRoots: roots,
		Audit:         e.audit.add,
		Logger:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.ic, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.ctx = ctx
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { e.flows.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(hang):
			t.Error("flow handlers still running after their context ended")
		}
	})
	return e
}

func (e *tenv) dialCount(host string) int64 {
	v, _ := e.dials.LoadOrStore(host, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

// dialUpstream is the flow's dial: what netstack gives the handler, here
// loopback to the test upstream whatever the name.
func (e *tenv) dialUpstream(host string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		v, _ := e.dials.LoadOrStore(host, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", e.up.srv.Listener.Addr().String())
	}
}

// flow opens one guest TCP connection to host:443: intercepted when the
// Interceptor takes it, else spliced straight to the upstream.
func (e *tenv) flow(ctx context.Context, host string) (net.Conn, error) {
	h := e.ic.Intercept(netstack.Flow{Proto: netstack.ProtoTCP, Name: host, Port: 443})
	if h == nil {
		return e.dialUpstream(host)(ctx)
	}
	guest, ours, err := loopbackPair()
	if err != nil {
		return nil, err
	}
	e.flows.Add(1)
	go func() {
		defer e.flows.Done()
		h(e.ctx, ours, e.dialUpstream(host))
	}()
	return guest, nil
}

// loopbackPair is a connected pair of loopback TCP sockets.
func loopbackPair() (a, b net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	b = <-ch
	if b == nil {
		a.Close()
		return nil, nil, net.ErrClosed
	}
	return a, b, nil
}

// guestClient is an HTTP client in the guest: it trusts only the sandbox
// CA (as the guest's trust store would, plus the system roots, which
// cannot vouch for a name we mint), and speaks h2 when h2 is set.
func (e *tenv) guestClient(h2 bool) *http.Client {
	return e.guestClientRoots(h2, e.caPool())
}

func (e *tenv) caPool() *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.ca.CertPEM()) {
		e.t.Fatal("CertPEM does not parse")
	}
	return pool
}

func (e *tenv) guestClientRoots(h2 bool, roots *x509.CertPool) *http.Client {
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			c, err := e.flow(ctx, host)
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
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: hang}
}

// leakForms are the ways a secret could be spelled in a log or an event.
func leakForms(secret string) []string {
	return []string{
		secret,
		b64(secret), b64url(secret), b64raw(secret),
		urlQuery(secret), urlPath(secret),
		jsonString(secret),
	}
}

func b64(s string) string      { return base64.StdEncoding.EncodeToString([]byte(s)) }
func b64url(s string) string   { return base64.URLEncoding.EncodeToString([]byte(s)) }
func b64raw(s string) string   { return base64.RawStdEncoding.EncodeToString([]byte(s)) }
func urlQuery(s string) string { return url.QueryEscape(s) }
func urlPath(s string) string  { return url.PathEscape(s) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}
