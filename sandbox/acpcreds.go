package sandbox

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// Keys an editor hands the agent over ACP never reach the VM either. The
// bridge (host side) takes them out of `authenticate` (`_meta["api-key"]`,
// `_meta.gateway.headers`) and `providers/set` (`headers`), gives them to
// the supervisor on the editor's approver connection, and forwards the
// agent placeholders instead. The supervisor injects the real values on
// the way out, to the one host each belongs to, for as long as that
// editor connection lasts: the keys are kept in memory only, never on
// disk, and go when the connection does.

// Capture is a key or a set of gateway headers an editor sent over ACP.
// Exactly one of APIKey or BaseURL is set.
type Capture struct {
	// ID pairs the answer with the request on the connection.
	ID int `json:"id"`
	// Method is the ACP method it came in ("authenticate",
	// "providers/set"), for messages.
	Method string `json:"method"`
	// APIKey is a bare API key (`authenticate` `_meta["api-key"]`), for
	// the API of Provider ("google", "anthropic", "openai"; "" unknown).
	APIKey   string `json:"apiKey,omitempty"`
	Provider string `json:"provider,omitempty"`
	// BaseURL and Headers are a gateway: where the agent is to send its
	// model requests, and the headers (secrets, all of them) to add.
	BaseURL string            `json:"baseUrl,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Captured is the supervisor's answer: what the agent gets instead. Error,
// when set, says why nothing was taken (and the editor's request must not
// be forwarded).
type Captured struct {
	ID      int               `json:"id"`
	APIKey  string            `json:"apiKey,omitempty"`
	BaseURL string            `json:"baseUrl,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// String never shows a secret.
func (c Capture) String() string {
	return fmt.Sprintf("sandbox.Capture{%s provider=%q baseUrl=%q headers=%v}", c.Method, c.Provider, c.BaseURL, slices.Sorted(maps.Keys(c.Headers)))
}

// GoString is String.
func (c Capture) GoString() string { return c.String() }

// providerHosts are the model APIs an `authenticate` API key can be for,
// by the provider its auth method names (`_meta["api-key"].provider`).
var providerHosts = map[string]string{
	"google":    "generativelanguage.googleapis.com",
	"gemini":    "generativelanguage.googleapis.com",
	"anthropic": "api.anthropic.com",
	"openai":    "api.openai.com",
}

// acpSession is what one editor connection gave.
type acpSession struct {
	ap    *approver
	keys  map[string]string // from_acp rule name → key
	rules []mitm.Rule       // rules of its own: keys without a from_acp rule, gateway headers
	net   Network           // what its gateways need reachable
}

// acpSessionsLocked returns the sessions, newest first. Caller holds s.mu.
func (s *supervisor) acpSessionsLocked() []*acpSession {
	out := slices.Clone(s.acp)
	slices.Reverse(out)
	return out
}

// acpKeyLocked is the newest key an editor sent for the from_acp rule
// name. Caller holds s.mu.
func (s *supervisor) acpKeyLocked(name string) (string, bool) {
	for _, sess := range s.acpSessionsLocked() {
		if k, ok := sess.keys[name]; ok {
			return k, true
		}
	}
	return "", false
}

// acpNetworkLocked is what every editor's gateways need. Caller holds s.mu.
func (s *supervisor) acpNetworkLocked() Network {
	var n Network
	for _, sess := range s.acp {
		n.Allow = append(n.Allow, sess.net.Allow...)
		n.HostPorts = append(n.HostPorts, sess.net.HostPorts...)
	}
	return n
}

// capture takes what an editor sent on approver ap's connection.
func (s *supervisor) capture(ap *approver, c Capture) Captured {
	reply, err := s.take(ap, c)
	if err != nil {
		s.log.Warn("a key from the editor was not taken", "method", c.Method, "err", err)
		return Captured{ID: c.ID, Error: err.Error()}
	}
	reply.ID = c.ID
	return reply
}

// take binds what c carries to its hosts, under s.mu, and applies the new
// rules; on error nothing changes.
func (s *supervisor) take(ap *approver, c Capture) (Captured, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sess *acpSession
	for _, x := range s.acp {
		if x.ap == ap {
			sess = x
		}
	}
	if sess == nil {
		sess = &acpSession{ap: ap, keys: map[string]string{}}
	}
	// Work on a copy: a request that fails leaves the session as it was.
	next := &acpSession{ap: ap, keys: maps.Clone(sess.keys), rules: slices.Clone(sess.rules),
		net: Network{Allow: slices.Clone(sess.net.Allow), HostPorts: slices.Clone(sess.net.HostPorts)}}
	var reply Captured
	var what []string
	switch {
	case c.APIKey != "" && c.BaseURL == "":
		ph, desc, err := s.takeKeyLocked(next, c)
		if err != nil {
			return Captured{}, err
		}
		reply.APIKey = ph
		what = append(what, desc)
	case c.BaseURL != "":
		if c.APIKey != "" {
			return Captured{}, fmt.Errorf("%s: an API key and a gateway at once: give one", c.Method)
		}
		u, hdrs, desc, err := s.takeGatewayLocked(next, c)
		if err != nil {
			return Captured{}, err
		}
		reply.BaseURL, reply.Headers = u, hdrs
		what = append(what, desc...)
	default:
		return Captured{}, fmt.Errorf("%s: nothing to take", c.Method)
	}

	old := s.acp
	if i := slices.Index(s.acp, sess); i >= 0 {
		s.acp = slices.Clone(s.acp)
		s.acp[i] = next
	} else {
		s.acp = append(slices.Clone(s.acp), next)
	}
	if err := s.applyCredsLocked(); err != nil {
		s.acp = old
		_ = s.applyCredsLocked()
		return Captured{}, err
	}
	if err := s.applyRulesLocked(); err != nil {
		s.acp = old
		_ = s.applyCredsLocked()
		return Captured{}, err
	}
	for _, w := range what {
		s.audit.record(netstack.Event{Time: time.Now(), Proto: ProtoPolicy, Name: c.Method, Verdict: VerdictApplied, Rule: "acp", Reason: w})
		s.log.Info("key from the editor taken; the agent holds a placeholder", "method", c.Method, "use", w)
	}
	return reply, nil
}

// takeKeyLocked binds an API key to the host it is for: the from_acp rule
// for the provider's API (or the only from_acp rule, if the provider is
// not named), else a rule of the session's own for the provider's API.
func (s *supervisor) takeKeyLocked(sess *acpSession, c Capture) (placeholder, desc string, err error) {
	host := providerHosts[strings.ToLower(c.Provider)]
	var fromACP []config.Credential
	for _, cr := range credentialRules(s.cfg) {
		if cr.FromACP && (host == "" || hostCovers(cr.Host, host)) {
			fromACP = append(fromACP, cr)
		}
	}
	if len(fromACP) == 1 || len(fromACP) > 1 && host != "" {
		cr := fromACP[0]
		name := ruleName(cr)
		sess.keys[name] = c.APIKey
		return s.creds.ph.get(name), fmt.Sprintf("API key for %s (credential %q, header %s)", cr.Host, name, cr.Header), nil
	}
	if host == "" {
		if len(fromACP) > 1 {
			return "", "", fmt.Errorf("%s: the agent's auth method names no provider and %d credentials take a key from ACP; acp-sandbox cannot tell which the key is for", c.Method, len(fromACP))
		}
		return "", "", fmt.Errorf("%s: acp-sandbox cannot tell which API this key is for (the auth method names no provider), so it will not hand it to the agent; add a [[credentials]] entry with from_acp = true and the API's host to sandbox.toml or ~/.config/acp-sandbox/config.toml", c.Method)
	}
	name := "acp-" + strings.ToLower(c.Provider)
	ph := mitm.NewPlaceholder(name)
	key := c.APIKey
	sess.rules = slices.DeleteFunc(sess.rules, func(r mitm.Rule) bool { return r.Name == name })
	sess.rules = append(sess.rules, mitm.Rule{Name: name, Host: host, Placeholder: ph,
		Secret: func(context.Context) (string, error) { return key, nil }})
	return ph, fmt.Sprintf("API key for %s (wherever the agent puts its placeholder in requests to it)", host), nil
}

// takeGatewayLocked binds a gateway's headers to its host and lets the VM
// reach it. A gateway on the host's loopback is reached as
// host.acp-sandbox.internal.
func (s *supervisor) takeGatewayLocked(sess *acpSession, c Capture) (baseURL string, headers map[string]string, desc []string, err error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", nil, nil, fmt.Errorf("%s: baseUrl %q is not an http(s) URL", c.Method, c.BaseURL)
	}
	if u.User != nil {
		return "", nil, nil, fmt.Errorf("%s: baseUrl has a user or password in it; put secrets in headers, which acp-sandbox keeps out of the VM", c.Method)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port := 443
	if u.Scheme == "http" {
		port = 80
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return "", nil, nil, fmt.Errorf("%s: baseUrl %q: bad port", c.Method, c.BaseURL)
		}
	}
	if policy.ThisMachine(host) {
		// The VM's own loopback is not the host's: the host's ports are
		// reached by name, one port at a time.
		if len(c.Headers) > 0 {
			return "", nil, nil, fmt.Errorf("%s: the gateway %s is on this machine and speaks plain HTTP to the VM, where its headers could not be kept out of the VM; drop the headers (let the gateway hold the key) or serve it over https on a public name", c.Method, c.BaseURL)
		}
		if u.Scheme != "http" {
			return "", nil, nil, fmt.Errorf("%s: the gateway %s is on this machine: the VM reaches it as http://%s:%d (its certificate cannot be for that name); use http", c.Method, c.BaseURL, netstack.HostServiceName, port)
		}
		u.Host = net.JoinHostPort(netstack.HostServiceName, strconv.Itoa(port))
		sess.net.HostPorts = append(sess.net.HostPorts, port)
		return u.String(), nil, []string{fmt.Sprintf("gateway on this machine, port %d, reached as %s", port, netstack.HostServiceName)}, nil
	}
	pattern := net.JoinHostPort(host, strconv.Itoa(port))
	if _, err := policy.ParsePattern(pattern); err != nil {
		return "", nil, nil, fmt.Errorf("%s: baseUrl %q: %v", c.Method, c.BaseURL, err)
	}
	if len(c.Headers) > 0 {
		if u.Scheme != "https" || port != 443 {
			return "", nil, nil, fmt.Errorf("%s: the gateway %s gets headers acp-sandbox must add on the way out, which it can do only for https on port 443", c.Method, c.BaseURL)
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return "", nil, nil, fmt.Errorf("%s: the gateway %s is an address; acp-sandbox adds headers only for a host name (the TLS name it checks)", c.Method, c.BaseURL)
		}
	}
	sess.net.Allow = append(sess.net.Allow, pattern)
	desc = append(desc, "gateway "+pattern+" allowed")
	// A gateway set again replaces its headers.
	prefix := "acp-gateway-" + host + "-"
	sess.rules = slices.DeleteFunc(sess.rules, func(r mitm.Rule) bool { return strings.HasPrefix(r.Name, prefix) })
	headers = map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		v := c.Headers[k]
		if v == "" {
			headers[k] = v
			continue
		}
		name := prefix + strings.ToLower(k)
		ph := mitm.NewPlaceholder("gateway-" + k)
		sess.rules = append(sess.rules, mitm.Rule{Name: name, Host: host, Placeholder: ph,
			Secret: func(context.Context) (string, error) { return v, nil }})
		headers[k] = ph
		desc = append(desc, fmt.Sprintf("header %s for %s", k, host))
	}
	return u.String(), headers, desc, nil
}

// dropACPSession forgets what an editor connection gave: its keys leave
// the interceptor, its gateways the network rules.
func (s *supervisor) dropACPSession(ap *approver) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.acp, func(x *acpSession) bool { return x.ap == ap })
	if i < 0 {
		return
	}
	s.acp = slices.Delete(slices.Clone(s.acp), i, i+1)
	if err := s.applyCredsLocked(); err != nil {
		s.log.Error("cannot drop an editor's keys", "err", err)
	}
	if err := s.applyRulesLocked(); err != nil {
		s.log.Error("cannot drop an editor's gateway rules", "err", err)
	}
	s.log.Info("editor connection closed: its keys and gateways are gone")
}

// hostCovers reports whether pattern (a credential's host) covers host.
func hostCovers(pattern, host string) bool {
	p, err := policy.ParsePattern(pattern)
	if err != nil {
		return false
	}
	return (&policy.Policy{Allow: []policy.Pattern{p}}).AllowName(host, 443).Allow
}
