package mitm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// handler serves the requests of one intercepted flow.
type handler struct {
	ic *Interceptor
	p  *flowPlan
	rp *httputil.ReverseProxy

	mu   sync.Mutex    // guards n, idle
	n    int           // requests being served
	idle chan struct{} // closed when n drops to 0; nil unless wait waits
}

// reqState follows one request from ServeHTTP into the proxy's hooks.
type reqState struct {
	ev      Event
	applied []*credential // credentials that went upstream
	scrub   []scrubPair   // secrets sent, and what the guest sees instead
	allowed string        // the HTTP rule set that allowed it, if any
}

// scrubPair is a secret sent (sealed, as everywhere it is kept) and what
// the guest sees in its place.
type scrubPair struct {
	secret sealed
	mask   string
}

type stateKey struct{}

func (ic *Interceptor) newHandler(p *flowPlan, up http.RoundTripper) *handler {
	h := &handler{ic: ic, p: p}
	h.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "https"
			pr.Out.URL.Host = p.name
			pr.Out.Host = p.name
		},
		Transport: up,
		// Zero: a response of unknown length (a stream) or a
		// text/event-stream is flushed after every write; one of known
		// length when the buffer fills.
		FlushInterval:  0,
		BufferPool:     &ic.bufs,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.proxyError,
		// A body copy that fails midway (the response is then cut) is
		// logged here, masked like every log line.
		ErrorLog: ic.proxyLog,
	}
	return h
}

// wait returns when no request is being served. (Not a WaitGroup: an
// HTTP/2 handler goroutine may still be starting when the connection's
// serve loop has returned.)
func (h *handler) wait() {
	h.mu.Lock()
	if h.n == 0 {
		h.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	h.idle = idle
	h.mu.Unlock()
	<-idle
}

func (h *handler) enter() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
}

func (h *handler) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n--; h.n == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.enter()
	defer h.leave()
	p := h.p
	st := &reqState{ev: Event{Proto: ProtoHTTPS, Host: p.name, Method: r.Method, Path: auditPath(r.URL)}}

	// 1. The request must be for the name the TLS flow was allowed for.
	if host := normHost(r.Host); host != p.name {
		h.refuse(w, st, http.StatusMisdirectedRequest, RuleHost, fmt.Sprintf(
			"acp-sandbox: blocked: the request is for host %q but its TLS connection is to %s; open a connection to %q for it",
			r.Host, p.name, r.Host))
		return
	}

	// 2. HTTP rules.
	segs, canonical := pathSegments(r.URL) // for them and for credentials' paths
	if len(p.http) > 0 {
		for _, hr := range p.http {
			if hr.allows(r.Method, segs, canonical) {
				st.allowed = httpRuleLabel(hr.src.Host)
				break
			}
		}
		if st.allowed == "" {
			h.refuse(w, st, http.StatusForbidden, httpRuleLabel(p.http[0].src.Host), h.httpDenial(r, canonical))
			return
		}
	}

	// 3. Other hosts' placeholders in the head.
	if c, where := findForeign(r, p.foreign); c != nil {
		h.refusePlaceholder(w, st, c, where)
		return
	}
	// ... and in the body. Headers and the query string are where clients
	// put keys; the body is checked too, because an agent told to "send
	// your key to this endpoint" would put it there. A body of known
	// length up to BodyPreread is read first, so a blocked request never
	// reaches upstream; a longer or streamed one is checked as it goes and
	// the upstream request aborted before a placeholder's bytes are sent
	// (buffering it all would break streaming uploads). Only the raw bytes
	// are searched: an encoded placeholder is not found, which is safe, as
	// a placeholder is worthless anywhere but at the proxy.
	if len(p.foreign) > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength >= 0 && r.ContentLength <= BodyPreread {
			b, err := io.ReadAll(io.LimitReader(r.Body, BodyPreread+1))
			if err != nil {
				return // the guest went away
			}
			if c := foreignIn(b, p.foreign); c != nil {
				h.refusePlaceholder(w, st, c, "the request body")
				return
			}
			r.Body = readCloser{bytes.NewReader(b), r.Body}
		} else {
			r.Body = newScanBody(r.Body, p.foreign)
		}
	}

	// 4. This host's credentials.
	if c, err := h.apply(r, st, segs, canonical); err != nil {
		h.ic.log.Error("cannot read credential", "credential", c.name, "host", p.name, "err", err)
		st.ev.Verdict, st.ev.Rule = VerdictError, c.label()
		h.answer(w, st, http.StatusBadGateway, fmt.Sprintf(
			"acp-sandbox: credential %q for %s could not be read on the host (see the sandbox log); the request was not sent",
			c.name, c.host))
		return
	}

	// 5. Upstream. The guest's body may still be on its way when the
	// response begins: the transport must be able to go on reading it.
	closeBody := fullDuplex(w, r)
	defer closeBody()
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

// apply puts this host's secrets in: placeholders replaced, then each
// rule's header set. On error it names the rule whose secret failed.
func (h *handler) apply(r *http.Request, st *reqState, segs []string, canonical bool) (*credential, error) {
	for _, c := range h.p.own {
		if !c.appliesTo(segs, canonical) {
			continue
		}
		used := false
		var val string
		get := func() error {
			if used {
				return nil
			}
			ctx, cancel := context.WithTimeout(r.Context(), SecretTimeout)
			defer cancel()
			v, err := c.secret.value(ctx)
			if err != nil {
				return err
			}
			val, used = v, true
			return nil
		}
		if c.placeholder != "" && holds(r, c.placeholder) {
			if err := get(); err != nil {
				return c, err
			}
			substitute(r, c.placeholder, val)
		}
		if c.header != "" {
			if err := get(); err != nil {
				return c, err
			}
			r.Header.Set(c.header, c.headerValue(val))
		}
		if used {
			st.applied = append(st.applied, c)
			mask := c.placeholder
			if mask == "" {
				mask = redacted
			}
			st.scrub = append(st.scrub, scrubPair{seal(val), mask})
		}
	}
	return nil, nil
}

// modifyResponse masks the secrets sent out of what comes back, and
// audits the request.
func (h *handler) modifyResponse(resp *http.Response) error {
	st := resp.Request.Context().Value(stateKey{}).(*reqState)
	if len(resp.Trailer) > 0 && resp.ContentLength >= 0 {
		// An h2 upstream may send a length and trailers; an HTTP/1.1 guest
		// gets trailers only with chunked encoding, so drop the length.
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	if len(st.scrub) > 0 {
		scrubHeader(resp.Header, st.scrub)
		if resp.StatusCode != http.StatusSwitchingProtocols { // its Body is the raw stream
			ce := resp.Header.Get("Content-Encoding")
			resp.Body = newScrubBody(resp.Body, st.scrub, ce == "" || strings.EqualFold(ce, "identity"), func() {
				scrubHeader(resp.Trailer, st.scrub)
			})
		}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != http.NoBody {
		resp.Body = &cutLogger{ReadCloser: newReadahead(resp.Body, &h.ic.bufs), h: h, req: resp.Request, start: time.Now()}
	}
	st.ev.Verdict, st.ev.Status = VerdictAllow, resp.StatusCode
	switch {
	case len(st.applied) > 0:
		labels, what := make([]string, len(st.applied)), make([]string, len(st.applied))
		for i, c := range st.applied {
			labels[i] = c.label()
			what[i] = c.name
		}
		st.ev.Rule = strings.Join(labels, ", ")
		st.ev.Reason = "credentials " + strings.Join(what, ", ") + " applied"
	case st.allowed != "":
		st.ev.Rule, st.ev.Reason = st.allowed, "allowed by "+st.allowed
	default:
		st.ev.Rule, st.ev.Reason = RulePass, "no credential applies to this request"
	}
	h.emit(st)
	return nil
}

// proxyError answers a request the proxy could not complete.
func (h *handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(stateKey{}).(*reqState)
	var pe *placeholderError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &pe):
		h.refusePlaceholder(w, st, pe.cred, "the request body")
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		msg := h.ic.redact(certErr(err))
		h.ic.log.Warn("upstream certificate failed verification", "host", h.p.name, "err", msg)
		st.ev.Verdict, st.ev.Rule = VerdictError, RuleUpstreamTLS
		h.answer(w, st, http.StatusBadGateway, fmt.Sprintf(
			"acp-sandbox: the certificate of upstream %s failed verification (%s); the request was not sent",
			h.p.name, msg))
	case r.Context().Err() != nil:
		// The guest went away; nobody to answer.
		st.ev.Verdict, st.ev.Rule, st.ev.Reason = VerdictError, RuleUpstream, "the guest closed the request"
		h.emit(st)
	default:
		msg := h.ic.redact(upstreamErr(err))
		h.ic.log.Warn("upstream request failed", "host", h.p.name, "method", r.Method, "path", st.ev.Path, "err", msg)
		st.ev.Verdict, st.ev.Rule = VerdictError, RuleUpstream
		h.answer(w, st, http.StatusBadGateway, fmt.Sprintf("acp-sandbox: cannot reach upstream %s: %s", h.p.name, msg))
	}
}

func (h *handler) refusePlaceholder(w http.ResponseWriter, st *reqState, c *credential, where string) {
	h.refuse(w, st, http.StatusForbidden, c.label(), fmt.Sprintf(
		"acp-sandbox: blocked: the placeholder for credential %q was sent to %s in %s; it may only go to %s",
		c.name, h.p.name, where, c.host))
}

// refuse answers a blocked request and audits it.
func (h *handler) refuse(w http.ResponseWriter, st *reqState, status int, rule, msg string) {
	st.ev.Verdict, st.ev.Rule = VerdictDeny, rule
	h.answer(w, st, status, msg)
}

// answer writes the proxy's own response and audits it, with msg (the
// body's text) as the reason.
func (h *handler) answer(w http.ResponseWriter, st *reqState, status int, msg string) {
	st.ev.Status, st.ev.Reason = status, msg
	h.emit(st)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

func (h *handler) emit(st *reqState) {
	st.ev.Time = time.Now()
	st.ev.Reason = h.ic.redact(st.ev.Reason)
	h.ic.audit(st.ev)
}

// httpDenial words a 403 for a request no HTTP rule allows.
func (h *handler) httpDenial(r *http.Request, canonical bool) string {
	var have []string
	for _, hr := range h.p.http {
		have = append(have, hr.src.String())
	}
	path := r.URL.EscapedPath()
	if !canonical {
		return fmt.Sprintf("acp-sandbox: blocked: %s %s on %s: the path has \".\" or \"..\" segments or an encoded \"/\", which no [[network.http]] path rule allows (rules for this host: %s)",
			r.Method, path, h.p.name, strings.Join(have, ", "))
	}
	add := HTTPRule{Host: h.p.name, Methods: []string{r.Method}, Paths: []string{r.URL.Path}}
	return fmt.Sprintf("acp-sandbox: blocked: %s %s on %s is not allowed by the [[network.http]] rules for this host (%s); to allow it, add %s to [[network.http]]",
		r.Method, path, h.p.name, strings.Join(have, ", "), add)
}

func httpRuleLabel(host string) string { return fmt.Sprintf("network.http %q", host) }

// normHost is a Host header as a TLS name: lower case, without the
// default port or a trailing dot.
func normHost(h string) string {
	h = strings.ToLower(h)
	h = strings.TrimSuffix(h, ":443")
	return strings.TrimSuffix(h, ".")
}

// auditPath is the path for the audit log: the query replaced.
func auditPath(u *url.URL) string {
	p := u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + redacted
	}
	return p
}

// pathSegments splits the decoded path; canonical is false when a segment
// is "." or "..", or holds an encoded "/" (what the upstream would see
// differs from what the rule was matched against).
func pathSegments(u *url.URL) ([]string, bool) {
	esc := u.EscapedPath()
	if !strings.HasPrefix(esc, "/") {
		return nil, false
	}
	raw := strings.Split(esc[1:], "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		d, err := url.PathUnescape(s)
		if err != nil || d == "." || d == ".." || strings.Contains(d, "/") || strings.Contains(d, "\\") {
			return nil, false
		}
		segs[i] = d
	}
	return segs, true
}

// holds reports whether the request's head carries s.
func holds(r *http.Request, s string) bool {
	_, where := findIn(r, s)
	return where != ""
}

// findForeign returns the first foreign credential whose placeholder the
// request's head carries, and where.
func findForeign(r *http.Request, foreign []*credential) (*credential, string) {
	for _, c := range foreign {
		if _, where := findIn(r, c.placeholder); where != "" {
			return c, where
		}
	}
	return nil, ""
}

// findIn looks for s in header values (also inside Basic credentials),
// the path and the query string.
func findIn(r *http.Request, s string) (header, where string) {
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, s) {
				return k, "the " + k + " header"
			}
			if d, ok := basicCreds(v); ok && strings.Contains(d, s) {
				return k, "the " + k + " header (Basic credentials)"
			}
		}
	}
	if strings.Contains(r.URL.Path, s) || strings.Contains(r.URL.EscapedPath(), s) {
		return "", "the URL path"
	}
	if q := r.URL.RawQuery; strings.Contains(q, s) {
		return "", "the query string"
	} else if d, err := url.QueryUnescape(q); err == nil && strings.Contains(d, s) {
		return "", "the query string"
	}
	return "", ""
}

// foreignIn returns the first credential whose placeholder b holds.
func foreignIn(b []byte, foreign []*credential) *credential {
	for _, c := range foreign {
		if bytes.Contains(b, []byte(c.placeholder)) {
			return c
		}
	}
	return nil
}

// substitute replaces placeholder by secret in header values (also inside
// Basic credentials), the path and the query string.
func substitute(r *http.Request, placeholder, secret string) {
	for k, vs := range r.Header {
		for i, v := range vs {
			if strings.Contains(v, placeholder) {
				vs[i] = strings.ReplaceAll(v, placeholder, secret)
			} else if d, ok := basicCreds(v); ok && strings.Contains(d, placeholder) {
				scheme, _, _ := strings.Cut(v, " ")
				vs[i] = scheme + " " + base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(d, placeholder, secret)))
			}
		}
		r.Header[k] = vs
	}
	if esc := r.URL.EscapedPath(); strings.Contains(esc, placeholder) {
		esc = strings.ReplaceAll(esc, placeholder, url.PathEscape(secret))
		if p, err := url.PathUnescape(esc); err == nil {
			r.URL.Path, r.URL.RawPath = p, esc
		}
	}
	if strings.Contains(r.URL.RawQuery, placeholder) {
		r.URL.RawQuery = strings.ReplaceAll(r.URL.RawQuery, placeholder, url.QueryEscape(secret))
	}
}

// basicCreds decodes "Basic <base64>".
func basicCreds(v string) (string, bool) {
	scheme, b64, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", false
	}
	return string(d), true
}

// scrubHeader masks secrets in header values.
func scrubHeader(h http.Header, pairs []scrubPair) {
	for k, vs := range h {
		for i, v := range vs {
			for _, p := range pairs {
				if s := p.secret(); strings.Contains(v, s) {
					v = strings.ReplaceAll(v, s, p.mask)
				}
			}
			vs[i] = v
		}
		h[k] = vs
	}
}

// certErr words a certificate failure without the URL.
func certErr(err error) string {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return cv.Err.Error()
	}
	return upstreamErr(err)
}

// upstreamErr is err without the request URL (*url.Error), which may hold
// a substituted secret in its query.
func upstreamErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// readCloser reads r and closes c.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (rc readCloser) Close() error { return rc.c.Close() }

// cutLogger logs a response body that ends in an error instead of EOF:
// the guest then gets a cut response (the proxy aborts the connection),
// and ReverseProxy itself says nothing when the cause is a canceled
// request.
type cutLogger struct {
	io.ReadCloser
	h      *handler
	req    *http.Request
	start  time.Time
	n      int64
	logged bool
}

func (c *cutLogger) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && !c.logged {
		c.logged = true
		// A guest that goes away cancels the request: worth a line, not a
		// warning.
		level := slog.LevelWarn
		if c.req.Context().Err() != nil {
			level = slog.LevelInfo
		}
		c.h.ic.log.Log(c.req.Context(), level, "response cut short", "host", c.h.p.name, "path", auditPath(c.req.URL), "bytes", c.n,
			"after", time.Since(c.start).Round(time.Millisecond), "err", err, "request context", context.Cause(c.req.Context()))
	}
	return n, err
}

// fullDuplex lets the upstream transport go on reading the guest's
// request body after the response has begun, and returns what the
// handler must call before it returns.
//
// Left to itself, net/http's HTTP/1 server drains and closes a request
// body when the response header goes out. The transport, still sending
// that body upstream (or, having sent all of it, making its final read
// for excess bytes, which loses this race when its goroutine is held up
// for a moment), then fails its request write and closes the upstream
// connection: the response it is streaming back is cut. With full duplex
// the server leaves the body alone until the handler returns; it would
// then drain what nobody read (the upstream was down, say) only after
// stopping its background read of the connection, and the read that
// draining restarts makes its next one panic (golang/go#68560). So the
// handler closes the body itself, which drains it (as much as the server
// would have) while the server can still cope.
//
// A body behind "Expect: 100-continue" is never drained at the response
// header (the server closes the connection instead), an upgrade's
// connection is handed over (its body must not be touched after), and
// HTTP/2 always lets a body outlive the response header: those are left
// as they are.
func fullDuplex(w http.ResponseWriter, r *http.Request) (closeBody func()) {
	body := r.Body
	if body == nil || body == http.NoBody || r.ProtoMajor != 1 ||
		r.Header.Get("Expect") != "" || r.Header.Get("Upgrade") != "" {
		return func() {}
	}
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		return func() {}
	}
	return func() { _ = body.Close() }
}
