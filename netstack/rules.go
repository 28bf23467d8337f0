package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// Host services: the guest reaches the host's 127.0.0.1:PORT at
// HostServiceName:PORT, for the ports in Rules.HostPorts only. The name
// resolves to HostServiceIP, an address of the gateway's own subnet, so
// nothing else routes there.
const HostServiceName = "host.acp-sandbox.internal"

// HostServiceIP is the address HostServiceName resolves to in the guest.
var HostServiceIP = netip.MustParseAddr("192.168.127.254")

// Rules are what the stack enforces. They can be replaced while the VM
// runs (Stack.SetRules): flows already spliced keep going, new ones are
// decided by the new rules.
type Rules struct {
	// Policy decides names and addresses. nil denies everything.
	Policy *policy.Policy
	// HostPorts are the host loopback ports the guest may reach through
	// HostServiceName. nil: none (the name does not resolve).
	HostPorts []int
}

// Flow is one decision the hooks are asked about.
type Flow struct {
	Proto string     // ProtoDNS or ProtoTCP
	Name  string     // the host name, when one is known
	IP    netip.Addr // zero for a DNS question
	Port  int        // 0 for a DNS question
	// Rule and Reason are why the policy denied it (Approve) or allowed
	// it (Intercept).
	Rule, Reason string
	// Suggest is the [network] allow pattern that would let the flow
	// through: what "allow always" stores, and what an approval grants
	// for GrantTTL.
	Suggest string
}

// What names the flow for a person: "pypi.org:443", "DNS lookup of
// pypi.org", "203.0.113.5:22".
func (f Flow) What() string {
	switch {
	case f.Proto == ProtoDNS:
		return "DNS lookup of " + f.Name
	case f.Name != "":
		return net.JoinHostPort(f.Name, strconv.Itoa(f.Port))
	default:
		return hostPort(f.IP, f.Port)
	}
}

// GrantTTL is how long an approval (Config.Approve returning true) lets
// flows matching its Flow.Suggest through: long enough for the lookup,
// the connect and the client's retries that follow one approval.
const GrantTTL = 2 * time.Minute

// FlowHandler takes over an allowed TLS flow instead of the splice (the
// credentials layer terminates TLS here). guest replays the ClientHello
// already read; dial opens the upstream connection the policy allowed,
// through the stack's dialer and its limits. The handler owns guest and
// must close it; ctx ends when the Stack closes.
type FlowHandler func(ctx context.Context, guest net.Conn, dial func(context.Context) (net.Conn, error))

// ruleState is the effective rules: the configured ones plus the grants
// approvals made, rebuilt when either changes or a grant expires.
type ruleState struct {
	mu       sync.Mutex
	base     Rules
	grants   map[string]time.Time // pattern → expiry
	eff      *policy.Policy
	nextExp  time.Time // earliest grant expiry; zero if none
	hostPort map[int]bool
}

func newRuleState(r Rules) *ruleState {
	rs := &ruleState{grants: map[string]time.Time{}}
	rs.set(r)
	return rs
}

func (rs *ruleState) set(r Rules) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.base = r
	rs.hostPort = map[int]bool{}
	for _, p := range r.HostPorts {
		rs.hostPort[p] = true
	}
	rs.rebuild(time.Now())
}

// policy returns the effective policy now.
func (rs *ruleState) policy() *policy.Policy {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if now := time.Now(); !rs.nextExp.IsZero() && now.After(rs.nextExp) {
		rs.rebuild(now)
	}
	return rs.eff
}

func (rs *ruleState) hostPortAllowed(port int) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.hostPort[port]
}

func (rs *ruleState) hostPorts() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.hostPort) > 0
}

// grant lets pattern through until now+ttl. A pattern that does not
// parse is ignored (Suggest always parses).
func (rs *ruleState) grant(pattern string, ttl time.Duration) {
	if _, err := policy.ParsePattern(pattern); err != nil {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	now := time.Now()
	rs.grants[pattern] = now.Add(ttl)
	rs.rebuild(now)
}

// rebuild drops expired grants and recomputes eff. Caller holds mu.
func (rs *ruleState) rebuild(now time.Time) {
	rs.nextExp = time.Time{}
	var extra []policy.Pattern
	for p, exp := range rs.grants {
		if !now.Before(exp) {
			delete(rs.grants, p)
			continue
		}
		if rs.nextExp.IsZero() || exp.Before(rs.nextExp) {
			rs.nextExp = exp
		}
		if pat, err := policy.ParsePattern(p); err == nil {
			extra = append(extra, pat)
		}
	}
	if rs.base.Policy == nil && len(extra) == 0 {
		rs.eff = nil
		return
	}
	eff := &policy.Policy{}
	if rs.base.Policy != nil {
		eff.Allow = slices.Clone(rs.base.Policy.Allow)
		eff.Deny = rs.base.Policy.Deny
	}
	eff.Allow = append(eff.Allow, extra...)
	rs.eff = eff
}

// relabel marks a decision made by a grant as approved, so the audit log
// does not name an allow rule that no file holds.
func (rs *ruleState) relabel(d policy.Decision) policy.Decision {
	if !d.Allow {
		return d
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for p := range rs.grants {
		if pat, err := policy.ParsePattern(p); err == nil && d.Rule == fmt.Sprintf("allow %q", pat.String()) {
			d.Rule, d.Reason = RuleApproved, d.Reason+" (approved in the editor or terminal, for "+GrantTTL.String()+")"
			return d
		}
	}
	return d
}

// askable reports whether a denial is one a person may lift by adding an
// allow rule: default deny and the special address classes. An explicit
// deny rule, a malformed flow, the query-type and rebinding guards are
// not put to the user: the policy's author decided those.
func askable(rule string) bool {
	return rule != "" &&
		!strings.HasPrefix(rule, "deny ") &&
		rule != policy.RuleInvalidName && rule != policy.RuleInvalidPort &&
		rule != RuleQueryType && rule != RuleRebinding && rule != RuleSNI &&
		rule != RuleHost && rule != RuleSandboxNet && rule != RuleUDP
}

// approve asks Config.Approve about a denied flow (bounded by
// ApproveTimeout) and, on yes, grants its Suggest pattern. It reports
// whether the flow may now go on.
func (s *Stack) approve(f Flow) bool {
	if s.cfg.Approve == nil || f.Suggest == "" || !askable(f.Rule) {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApproveTimeout)
	defer cancel()
	// An answer after the deadline is no answer: the flow was already
	// given up on the guest's side of the wait.
	if !s.cfg.Approve(ctx, f) || ctx.Err() != nil {
		return false
	}
	s.rules.grant(f.Suggest, GrantTTL)
	return true
}

// suggestName is the allow pattern for name on port: the bare name for
// the default ports (it opens 443 and 80), name:port otherwise.
func suggestName(name string, port int) string {
	if port == 0 || port == tlsPort || port == httpPt {
		return name
	}
	return net.JoinHostPort(name, strconv.Itoa(port))
}
