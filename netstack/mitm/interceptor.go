package mitm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// Bounds of an intercepted flow.
const (
	// HandshakeTimeout bounds each TLS handshake: the guest's with us, and
	// ours with the upstream.
	HandshakeTimeout = 10 * time.Second
	// IdleTimeout closes a guest connection without requests for this
	// long (the guest's client reconnects).
	IdleTimeout = 5 * time.Minute
	// ReadHeaderTimeout bounds the wait for a request's header.
	ReadHeaderTimeout = time.Minute
	// SecretTimeout bounds one Rule.Secret call.
	SecretTimeout = 30 * time.Second
	// BodyPreread is the size up to which a request body of known length
	// is read before anything goes upstream, to check it for other
	// hosts' placeholders; larger bodies and bodies of unknown length are
	// checked as they stream.
	BodyPreread = 64 << 10
)

// Options configure an Interceptor. CA is required; every other field says
// what its zero value means.
type Options struct {
	// CA mints the certificates the guest is shown. Required.
	CA *CA
	// Rules are the credentials. A host matching one is intercepted.
	Rules []Rule
	// HTTPRules limit methods and paths on the hosts they match, which are
	// intercepted even without a credential.
	HTTPRules []HTTPRule
	// UpstreamRoots verify upstream certificates. nil: the host's system
	// roots. Verification is never off.
	UpstreamRoots *x509.CertPool
	// Bypass are host patterns (netstack/policy) never intercepted, even
	// with a rule: clients that pin certificates. Their flows are spliced,
	// so their rules do nothing there.
	Bypass []string
	// Audit receives one Event per request; it must not block for long.
	// nil discards.
	Audit func(Event)
	// Logger receives operational errors (handshakes, upstream failures,
	// secrets that cannot be read), with any known secret masked. nil
	// discards.
	Logger *slog.Logger
}

// Interceptor decides which TLS flows to take over and serves them. It is
// safe for concurrent use. Its rules can be replaced while it runs
// (SetRules): a flow takes the rules in force when it starts and keeps
// them until it ends.
type Interceptor struct {
	ca    *CA
	rules atomic.Pointer[ruleSet]
	roots *x509.CertPool
	audit func(Event)
	log   *slog.Logger
	bufs  bufferPool
	// The net/http loggers of every flow's server and reverse proxy.
	serverLog, proxyLog *log.Logger

	// masks are the secrets resolved so far, of any rule set: logs and
	// audit reasons mask them (bounded, oldest dropped first).
	maskMu sync.Mutex
	masks  []sealed
}

// ruleSet is the rules in force at one time.
type ruleSet struct {
	creds  []*credential
	http   []*httpRule
	bypass *policy.Policy // nil: none
}

// maxMasks bounds the secrets kept for masking logs.
const maxMasks = 256

// New checks the options and builds an Interceptor. Every bad rule is
// reported.
func New(opts Options) (*Interceptor, error) {
	if opts.CA == nil {
		return nil, errors.New("mitm: Options.CA is nil")
	}
	// GODEBUG=http2debug=2 makes net/http's HTTP/2 print every header it
	// sends, injected credentials included, to stderr.
	if strings.Contains(os.Getenv("GODEBUG"), "http2debug=2") {
		return nil, errors.New("mitm: GODEBUG has http2debug=2, which would print credentials to stderr: unset it")
	}
	ic := &Interceptor{ca: opts.CA, roots: opts.UpstreamRoots, audit: opts.Audit}
	if ic.audit == nil {
		ic.audit = func(Event) {}
	}
	base := opts.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	ic.log = slog.New(&redactHandler{h: base.Handler(), redact: ic.redact})
	ic.serverLog = slog.NewLogLogger(ic.log.Handler(), slog.LevelDebug)
	ic.proxyLog = slog.NewLogLogger(ic.log.Handler(), slog.LevelWarn)

	set, errs := compileRules(opts.Rules, opts.HTTPRules, opts.Bypass)
	ic.adopt(set)
	ic.rules.Store(set)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	return ic, nil
}

// adopt makes set's secrets, once resolved, masked in this interceptor's
// logs.
func (ic *Interceptor) adopt(set *ruleSet) {
	for _, c := range set.creds {
		c.secret.onResolve = ic.remember
	}
}

// remember masks v in logs from now on.
func (ic *Interceptor) remember(v sealed) {
	ic.maskMu.Lock()
	defer ic.maskMu.Unlock()
	if slices.ContainsFunc(ic.masks, func(m sealed) bool { return m() == v() }) {
		return
	}
	// Copy on write: redact reads the slice without the lock.
	masks := append(slices.Clip(ic.masks), v)
	if n := len(masks) - maxMasks; n > 0 {
		masks = slices.Clone(masks[n:])
	}
	ic.masks = masks
}

// compileRules checks and compiles a rule set; every bad rule is reported.
func compileRules(rules []Rule, httpRules []HTTPRule, bypass []string) (*ruleSet, []error) {
	set := &ruleSet{}
	var errs []error
	names, placeholders := map[string]bool{}, map[string]string{}
	for _, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if names[c.name] {
			errs = append(errs, fmt.Errorf("credential %q: a second rule has this name", c.name))
			continue
		}
		names[c.name] = true
		if c.placeholder != "" {
			if other, ok := placeholders[c.placeholder]; ok {
				errs = append(errs, fmt.Errorf("credential %q: same placeholder as credential %q", c.name, other))
				continue
			}
			placeholders[c.placeholder] = c.name
		}
		set.creds = append(set.creds, c)
	}
	for _, r := range httpRules {
		h, err := compileHTTPRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.http = append(set.http, h)
	}
	if len(bypass) > 0 {
		set.bypass = &policy.Policy{}
		for _, b := range bypass {
			m, err := hostMatcher("bypass", b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			set.bypass.Allow = append(set.bypass.Allow, m.Allow...)
		}
	}
	return set, errs
}

// SetRules replaces the credentials, HTTP rules and bypass patterns (as
// in Options) for flows that start from now on; flows in progress keep
// the rules they started with. Bad rules are all reported and nothing
// changes. Secrets are resolved again on first use (Rule.Secret is called
// anew): the source may have changed.
func (ic *Interceptor) SetRules(rules []Rule, httpRules []HTTPRule, bypass []string) error {
	set, errs := compileRules(rules, httpRules, bypass)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mitm: %w", err)
	}
	ic.adopt(set)
	ic.rules.Store(set)
	return nil
}

// String shows the rule names; never a secret.
func (ic *Interceptor) String() string {
	set := ic.rules.Load()
	names := make([]string, len(set.creds))
	for i, c := range set.creds {
		names[i] = c.name + "@" + c.host
	}
	return fmt.Sprintf("mitm.Interceptor{credentials: %v, http rules: %d}", names, len(set.http))
}

// GoString is String.
func (ic *Interceptor) GoString() string { return ic.String() }

// Format is String for every verb, so %#v and %+v cannot dump secrets.
func (ic *Interceptor) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, ic.String()) }

// flowPlan is what applies to one TLS name.
type flowPlan struct {
	name    string
	own     []*credential // rules for this name
	foreign []*credential // rules for other names that have a placeholder
	http    []*httpRule   // HTTP rules for this name
}

// Intercept is netstack.Config.Intercept: a handler for flows to a name
// with a credential or HTTP rule (and no bypass); nil, so the stack
// splices the flow, for every other.
func (ic *Interceptor) Intercept(f netstack.Flow) netstack.FlowHandler {
	p := ic.plan(f)
	if p == nil {
		return nil
	}
	return func(ctx context.Context, guest net.Conn, dial func(context.Context) (net.Conn, error)) {
		ic.serve(ctx, p, guest, dial)
	}
}

func (ic *Interceptor) plan(f netstack.Flow) *flowPlan {
	name := strings.TrimSuffix(strings.ToLower(f.Name), ".")
	if name == "" || f.Port != 0 && f.Port != 443 {
		return nil
	}
	set := ic.rules.Load()
	if set.bypass != nil && matches(set.bypass, name) {
		return nil
	}
	p := &flowPlan{name: name}
	for _, c := range set.creds {
		if matches(c.match, name) {
			p.own = append(p.own, c)
		} else if c.placeholder != "" {
			p.foreign = append(p.foreign, c)
		}
	}
	for _, h := range set.http {
		if matches(h.match, name) {
			p.http = append(p.http, h)
		}
	}
	if len(p.own) == 0 && len(p.http) == 0 {
		return nil
	}
	return p
}

// serve terminates the guest's TLS and serves its requests until the
// guest or ctx ends the connection.
func (ic *Interceptor) serve(ctx context.Context, p *flowPlan, guest net.Conn, dial func(context.Context) (net.Conn, error)) {
	defer guest.Close()
	stop := context.AfterFunc(ctx, func() { _ = guest.Close() })
	defer stop()

	leaf, err := ic.ca.Leaf(p.name)
	if err != nil {
		ic.log.Error("cannot intercept", "host", p.name, "err", err)
		return
	}
	tc := tls.Server(guest, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: alpn(h2Server),
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// The stack checked this SNI; the replayed ClientHello is the
			// one it read. Refuse anything else all the same.
			if sni := strings.TrimSuffix(strings.ToLower(hello.ServerName), "."); sni != p.name {
				return nil, fmt.Errorf("mitm: TLS server name %q is not the flow's %q", hello.ServerName, p.name)
			}
			return leaf, nil
		},
	})
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		// A client that does not trust the sandbox CA ends here.
		ic.log.Debug("guest TLS handshake failed", "host", p.name, "err", err)
		return
	}

	// The upstream is offered what the guest chose: an HTTP/1.1 client
	// gets an HTTP/1.1 upstream (its Upgrade requests, WebSocket, work
	// only there, and its throughput is what it would have had), an h2
	// client an h2 upstream where the server has it.
	up := ic.upstream(p.name, dial, tc.ConnectionState().NegotiatedProtocol == "h2" && h2Client)
	defer up.CloseIdleConnections()
	h := ic.newHandler(p, up)
	// One server for this one connection: net/http serves HTTP/1 itself
	// and hands a connection whose ALPN said "h2" to its HTTP/2 server.
	ln := newOneConnListener(tc)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          ic.serverLog,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				_ = ln.Close()
			}
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	_ = srv.Serve(ln)
	// A hijacked connection (a WebSocket upgrade) is still being served by
	// its handler after Serve returns.
	h.wait()
}

// upstream is the flow's HTTP client side: every connection it opens goes
// through the flow's dial (the address the policy allowed, never
// re-resolved), then TLS to the flow's name verified against the roots.
func (ic *Interceptor) upstream(name string, dial func(context.Context) (net.Conn, error), h2 bool) *http.Transport {
	tr := &http.Transport{
		Proxy: nil, // never the host's HTTP_PROXY
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			raw, err := dial(ctx)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, &tls.Config{
				ServerName: name,
				RootCAs:    ic.roots,
				NextProtos: alpn(h2),
				MinVersion: tls.VersionTLS12,
			})
			hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return tc, nil
		},
		DisableCompression:     true, // pass the guest's Accept-Encoding through as sent
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(h2)
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second} // a silent upstream is pinged
	return tr
}

// redact masks every secret resolved so far in s.
func (ic *Interceptor) redact(s string) string {
	ic.maskMu.Lock()
	masks := ic.masks
	ic.maskMu.Unlock()
	for _, m := range masks {
		if v := m(); strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	addr net.Addr
	done chan struct{}
	once sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	return &oneConnListener{conn: c, addr: c.LocalAddr(), done: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

// redactHandler masks secrets in log records: messages and string, error
// and other non-scalar attributes. The records this package writes never
// hold one; this catches an error text that does (a URL with a substituted
// query, say).
type redactHandler struct {
	h      slog.Handler
	redact func(string) string
}

func (r *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.redact(v.String()))
	case slog.KindAny:
		return slog.String(a.Key, r.redact(fmt.Sprint(v.Any())))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = r.attr(x)
		}
		return slog.Group(a.Key, out...)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (r *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = r.attr(a)
	}
	return &redactHandler{h: r.h.WithAttrs(out), redact: r.redact}
}

func (r *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{h: r.h.WithGroup(name), redact: r.redact}
}

// bufferPool is httputil.BufferPool over sync.Pool.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var _ httputil.BufferPool = (*bufferPool)(nil)

// net/http's HTTP/2 can be switched off with GODEBUG (http2server=0,
// http2client=0); ALPN must then not offer h2, or a client that takes it
// gets a connection nobody speaks HTTP/2 on.
var (
	h2Server = !godebugOff("http2server")
	h2Client = !godebugOff("http2client")
)

func godebugOff(key string) bool {
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if k, v, _ := strings.Cut(strings.TrimSpace(kv), "="); k == key && v == "0" {
			return true
		}
	}
	return false
}

func alpn(h2 bool) []string {
	if h2 {
		return []string{"h2", "http/1.1"}
	}
	return []string{"http/1.1"}
}
