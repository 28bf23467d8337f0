package mitm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// Rule is one credential, in the form the interceptor runs: a
// [[credentials]] entry of sandbox.toml with its source turned into Secret.
type Rule struct {
	// Name names the rule in 403 bodies, audit events and logs
	// ("anthropic"). Required, unique.
	Name string
	// Host is a netstack/policy host pattern: "api.anthropic.com",
	// "*.example.com", "**.github.com" (no address; no port, or 443). The
	// rule applies to requests whose TLS name it matches.
	Host string
	// Header, when set, is put on every request to Host as Format with the
	// secret for "{}", replacing what the guest sent ("x-api-key",
	// "Authorization"). Empty: the rule only substitutes its Placeholder.
	Header string
	// Format is the header value with "{}" where the secret goes
	// ("Bearer {}"). Empty means "{}". It must contain "{}".
	Format string
	// Placeholder is what the guest holds instead of the secret (see
	// NewPlaceholder): in a request to Host it is replaced by the secret
	// in header values (also inside "Basic" credentials), the path and the
	// query string; in a request to any other intercepted host it blocks
	// the request. At least 20 characters of A-Z a-z 0-9 - . _ ~. Empty:
	// the rule only sets Header.
	Placeholder string
	// Paths, when set, limit the rule to requests whose path one of these
	// globs matches (HTTPRule.Paths syntax): elsewhere on Host it neither
	// sets Header nor replaces the placeholder, so the request goes out
	// with what the guest sent. Keeps a key off endpoints that do not need
	// it. Empty: every path.
	Paths []string
	// Secret returns the real credential. It is called on the first
	// request that needs it (not at start: a `gh auth token` that fails
	// fails that request, with a 502 naming the rule) and its value is
	// kept for the Interceptor's life; an error is not kept, so the next
	// request asks again. The value must not be empty, nor hold control
	// characters. Errors are logged and must not hold the secret.
	// Required.
	Secret func(ctx context.Context) (string, error)
}

// String shows the rule without its secret (which a Rule does not hold:
// Secret is a func, and fmt prints funcs as addresses).
func (r Rule) String() string {
	return fmt.Sprintf("mitm.Rule{Name: %q, Host: %q, Header: %q, Format: %q, Placeholder: %q}", r.Name, r.Host, r.Header, r.Format, r.Placeholder)
}

// GoString is String.
func (r Rule) GoString() string { return r.String() }

// HTTPRule allows requests on an intercepted host by method and path, as a
// [[network.http]] entry of sandbox.toml. A host that some HTTPRule
// matches takes only the requests one of its rules allows; a host that
// none matches takes every method and path. A host with an HTTPRule is
// intercepted even without a credential.
type HTTPRule struct {
	// Host is a netstack/policy host pattern, as Rule.Host.
	Host string
	// Methods allowed, case-insensitive. Empty: any method.
	Methods []string
	// Paths allowed, each a glob of "/"-separated segments: "*" matches
	// one segment, "**" any number of segments (also none), and a "*"
	// inside a segment any run of characters of it ("v1*"). Matched
	// against the decoded path without its query; a path with "." or ".."
	// segments or an encoded "/" is never allowed by a path rule. Empty:
	// any path.
	Paths []string
}

// String spells the rule as the sandbox.toml entry it comes from.
func (r HTTPRule) String() string {
	return fmt.Sprintf("{host=%q, methods=%s, paths=%s}", r.Host, tomlList(r.Methods), tomlList(r.Paths))
}

func tomlList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// PlaceholderPrefix begins every placeholder NewPlaceholder makes.
const PlaceholderPrefix = "acps-ph-"

// NewPlaceholder returns a fresh random placeholder for the rule named
// ruleName: "acps-ph-<name>-<32 hex digits>", the name lower-cased with
// anything but letters and digits turned into "-". It is recognisable in
// logs and in the guest, safe in a header, a path and a query string, and
// no service's key looks like it. Make one per sandbox (and per run).
func NewPlaceholder(ruleName string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(ruleName) {
		if b.Len() >= 32 {
			break
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "secret"
	}
	r := make([]byte, 16)
	_, _ = rand.Read(r)
	return PlaceholderPrefix + name + "-" + hex.EncodeToString(r)
}

// minPlaceholderLen keeps a placeholder from matching ordinary text.
const minPlaceholderLen = 20

func validPlaceholder(s string) bool {
	if len(s) < minPlaceholderLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// redacted is what any formatting of a secret prints.
const redacted = "[redacted]"

// secret is a Rule's secret, resolved on first use and kept. Every way fmt
// and slog print it says [redacted]. fmt prints unexported fields by
// reflection, without calling their methods (and "%s" of a pointer field
// dumps what it points to), so the value itself is kept in a sealed
// closure, which reflection shows as an address only.
type secret struct {
	get func(context.Context) (string, error)
	// onResolve is told the value once it is known (the interceptor masks
	// it in logs from then on, whatever becomes of the rule).
	onResolve func(sealed)
	mu        sync.Mutex // one resolver at a time; readers of val never wait
	val       atomic.Pointer[sealed]
}

// sealed holds a string out of reach of fmt and reflection.
type sealed func() string

func seal(s string) sealed { return func() string { return s } }

// value resolves the secret once. Concurrent callers wait for the first;
// known never waits (a slow `gh auth token` must not hold up logging).
func (s *secret) value(ctx context.Context) (string, error) {
	if v, ok := s.known(); ok {
		return v, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.known(); ok {
		return v, nil
	}
	v, err := s.get(ctx)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", errors.New("the secret is empty")
	}
	if !validHeaderValue(v) {
		return "", errors.New("the secret holds characters that cannot go in an HTTP header")
	}
	sv := seal(v)
	if s.onResolve != nil {
		s.onResolve(sv)
	}
	s.val.Store(&sv)
	return v, nil
}

// known returns the secret if it has been resolved.
func (s *secret) known() (string, bool) {
	if p := s.val.Load(); p != nil {
		return (*p)(), true
	}
	return "", false
}

func (s *secret) String() string                { return redacted }
func (s *secret) GoString() string              { return redacted }
func (s *secret) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, redacted) }
func (s *secret) LogValue() slog.Value          { return slog.StringValue(redacted) }

// credential is a compiled Rule.
type credential struct {
	name, host  string
	match       *policy.Policy
	header      string // canonical; "" for none
	format      string
	placeholder string
	paths       [][]string // segments of each glob; nil: any path
	secret      *secret
}

func (c *credential) String() string {
	return fmt.Sprintf("credential{%s %s}", c.name, c.host)
}
func (c *credential) GoString() string              { return c.String() }
func (c *credential) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }
func (c *credential) LogValue() slog.Value          { return slog.StringValue(c.String()) }

// label is how events name the rule.
func (c *credential) label() string { return fmt.Sprintf("credential %q", c.name) }

// headerValue is the header the rule sets, with secret.
func (c *credential) headerValue(secret string) string {
	return strings.ReplaceAll(c.format, "{}", secret)
}

// hostMatcher compiles a Rule or HTTPRule host pattern.
func hostMatcher(what, host string) (*policy.Policy, error) {
	p, err := policy.ParsePattern(host)
	if err != nil {
		return nil, fmt.Errorf("%s: host %w", what, err)
	}
	if p.Kind() == policy.Addr {
		return nil, fmt.Errorf("%s: host %q is an address; interception sees TLS names: use a host name", what, host)
	}
	if p.Port() != 0 && p.Port() != 443 {
		return nil, fmt.Errorf("%s: host %q: only port 443 is intercepted; drop the port", what, host)
	}
	return &policy.Policy{Allow: []policy.Pattern{p}}, nil
}

// matches reports whether name (a TLS server name) is one m covers.
func matches(m *policy.Policy, name string) bool { return m.AllowName(name, 443).Allow }

// hopHeaders may not be set by a rule: the proxy drops or sets them.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"}

func compileRule(r Rule) (*credential, error) {
	what := fmt.Sprintf("credential %q", r.Name)
	if r.Name == "" {
		return nil, fmt.Errorf("credential for %q: no name", r.Host)
	}
	m, err := hostMatcher(what, r.Host)
	if err != nil {
		return nil, err
	}
	c := &credential{name: r.Name, host: r.Host, match: m, format: r.Format, placeholder: r.Placeholder}
	if c.format == "" {
		c.format = "{}"
	}
	if !strings.Contains(c.format, "{}") {
		return nil, fmt.Errorf("%s: format %q has no \"{}\" for the secret, as in \"Bearer {}\"", what, r.Format)
	}
	if !validHeaderValue(strings.ReplaceAll(c.format, "{}", "x")) {
		return nil, fmt.Errorf("%s: format %q cannot go in an HTTP header", what, r.Format)
	}
	if r.Header != "" {
		if !validToken(r.Header) {
			return nil, fmt.Errorf("%s: header %q is not a header name", what, r.Header)
		}
		c.header = http.CanonicalHeaderKey(r.Header)
		if slices.Contains(hopHeaders, c.header) {
			return nil, fmt.Errorf("%s: header %q is set by the proxy itself; use another header", what, r.Header)
		}
	}
	if r.Placeholder != "" && !validPlaceholder(r.Placeholder) {
		return nil, fmt.Errorf("%s: placeholder must be at least %d characters of A-Z a-z 0-9 - . _ ~ (use NewPlaceholder)", what, minPlaceholderLen)
	}
	if c.header == "" && c.placeholder == "" {
		return nil, fmt.Errorf("%s: neither a header to set nor a placeholder to replace", what)
	}
	if r.Secret == nil {
		return nil, fmt.Errorf("%s: no secret source", what)
	}
	for _, p := range r.Paths {
		segs, err := compilePathGlob(what, p)
		if err != nil {
			return nil, err
		}
		c.paths = append(c.paths, segs)
	}
	c.secret = &secret{get: r.Secret}
	return c, nil
}

// appliesTo reports whether the rule covers a request's path (segments of
// the decoded path; canonical false if it has "." or ".." segments or an
// encoded "/", which no path glob covers).
func (c *credential) appliesTo(segs []string, canonical bool) bool {
	return len(c.paths) == 0 || matchPaths(c.paths, segs, canonical)
}

// matchPaths reports whether a path (its segments; canonical as for
// appliesTo) matches one of globs.
func matchPaths(globs [][]string, segs []string, canonical bool) bool {
	if !canonical {
		return false
	}
	for _, g := range globs {
		if globSegments(g, segs) {
			return true
		}
	}
	return false
}

// httpRules is a compiled HTTPRule.
type httpRule struct {
	src     HTTPRule
	match   *policy.Policy
	methods []string   // upper case; empty: any
	paths   [][]string // segments of each glob; empty: any
}

func compileHTTPRule(r HTTPRule) (*httpRule, error) {
	what := "[[network.http]] " + r.String()
	m, err := hostMatcher(what, r.Host)
	if err != nil {
		return nil, err
	}
	h := &httpRule{src: r, match: m}
	for _, meth := range r.Methods {
		if meth == "" || !validToken(meth) { // a method is a token
			return nil, fmt.Errorf("%s: method %q is not an HTTP method", what, meth)
		}
		h.methods = append(h.methods, strings.ToUpper(meth))
	}
	for _, p := range r.Paths {
		segs, err := compilePathGlob(what, p)
		if err != nil {
			return nil, err
		}
		h.paths = append(h.paths, segs)
	}
	return h, nil
}

// compilePathGlob splits a path glob into segments, checking it.
func compilePathGlob(what, p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%s: path %q must begin with \"/\"", what, p)
	}
	if strings.ContainsAny(p, "?#") {
		return nil, fmt.Errorf("%s: path %q: query strings and fragments are not matched; drop them", what, p)
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		if strings.Contains(s, "**") && s != "**" {
			return nil, fmt.Errorf("%s: path %q: \"**\" must be a whole segment", what, p)
		}
		if s == "." || s == ".." {
			return nil, fmt.Errorf("%s: path %q: \".\" and \"..\" segments never match", what, p)
		}
	}
	return segs, nil
}

// allows reports whether the rule lets method on path (segments of the
// decoded path, nil if the path is not in canonical form).
func (h *httpRule) allows(method string, segs []string, canonical bool) bool {
	if len(h.methods) > 0 && !slices.Contains(h.methods, method) {
		return false
	}
	return len(h.paths) == 0 || matchPaths(h.paths, segs, canonical)
}

// globSegments matches path segments against glob segments.
func globSegments(glob, segs []string) bool {
	if len(glob) == 0 {
		return len(segs) == 0
	}
	if glob[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if globSegments(glob[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if glob[0] == "*" {
		return segs[0] != "" && globSegments(glob[1:], segs[1:])
	}
	return globSegment(glob[0], segs[0]) && globSegments(glob[1:], segs[1:])
}

// globSegment matches one segment where "*" stands for any run of
// characters.
func globSegment(g, s string) bool {
	star := strings.IndexByte(g, '*')
	if star < 0 {
		return g == s
	}
	if !strings.HasPrefix(s, g[:star]) {
		return false
	}
	rest, s := g[star+1:], s[star:]
	for i := 0; i <= len(s); i++ {
		if globSegment(rest, s[i:]) {
			return true
		}
	}
	return false
}

// validToken: an RFC 9110 token (a header name, a method).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue: no control characters but tab (RFC 9110 field-value).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
