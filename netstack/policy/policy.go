package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Decision is the verdict on one flow.
type Decision struct {
	Allow bool
	// Rule names what decided: `allow "**.github.com:443"`,
	// `deny "*.evil.example"`, `default deny`,
	// `private address 10.1.2.3 (RFC 1918)`.
	Rule string
	// Reason is one sentence for the audit log and the agent, saying how to
	// change the policy when the flow was denied.
	Reason string
}

// Rules that are not patterns.
const (
	RuleDefaultDeny = "default deny"
	RuleInvalidName = "invalid name"
	RuleInvalidPort = "invalid port"
)

// Policy is a parsed [network] section. Deny beats allow. A Policy is not
// changed after New; a nil *Policy denies everything.
type Policy struct {
	Allow, Deny []Pattern
}

// New parses the allow and deny lists. All bad patterns are reported, each as
// `allow[i]: "pattern": what is wrong: the fix`.
func New(allow, deny []string) (*Policy, error) {
	p := &Policy{}
	var errs []error
	for _, list := range []struct {
		name string
		in   []string
		out  *[]Pattern
	}{{"allow", allow, &p.Allow}, {"deny", deny, &p.Deny}} {
		for i, s := range list.in {
			pat, err := ParsePattern(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("policy: %s[%d]: %w", list.name, i, err))
				continue
			}
			*list.out = append(*list.out, pat)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Policy) allowList() []Pattern {
	if p == nil {
		return nil
	}
	return p.Allow
}

func (p *Policy) denyList() []Pattern {
	if p == nil {
		return nil
	}
	return p.Deny
}

func allowRule(pat Pattern) string { return fmt.Sprintf("allow %q", pat.String()) }
func denyRule(pat Pattern) string  { return fmt.Sprintf("deny %q", pat.String()) }

// hostPort spells a flow's destination; port 0 leaves the port out.
func hostPort(host string, port int) string {
	if port == 0 {
		return host
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// subject begins a reason: "connection to x:443" or "lookup of x".
func subject(host string, port int) string {
	if port == 0 {
		return "lookup of " + host
	}
	return "connection to " + hostPort(host, port)
}

func deniedBy(subj string, pat Pattern) Decision {
	return Decision{Rule: denyRule(pat), Reason: fmt.Sprintf(
		"%s denied by deny %q; deny rules win over allow rules, so remove it from [network] deny to allow this",
		subj, pat.String())}
}

func defaultDeny(subj, suggest string) Decision {
	return Decision{Rule: RuleDefaultDeny, Reason: fmt.Sprintf(
		"%s denied: no [network] allow rule matches it; to allow it, add %q to [network] allow",
		subj, suggest)}
}

// AllowName decides a host name: a TLS SNI or HTTP Host on port (1-65535),
// or, with port 0, a DNS lookup ("is the name allowed on some port?"). An IP
// literal is decided by address patterns only, as AllowIP without pins. The
// name is matched case-insensitively, a trailing dot ignored; a name that is
// not a valid host name is denied.
func (p *Policy) AllowName(name string, port int) Decision {
	if port < 0 || port > 65535 {
		return Decision{Rule: RuleInvalidPort, Reason: fmt.Sprintf("%s denied: port %d is not a port", subject(name, 0), port)}
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		return p.decideIP(ip, port, nil)
	}
	n, ok := normName(name)
	if !ok {
		what := "lookup"
		if port != 0 {
			what = "connection on port " + strconv.Itoa(port)
		}
		return Decision{Rule: RuleInvalidName, Reason: fmt.Sprintf("%s denied: %q is not a valid host name", what, name)}
	}
	return p.decideName(n, port, subject(n, port))
}

// decideName decides a normalised name; port 0 means some port. subj
// begins the reason.
func (p *Policy) decideName(n string, port int, subj string) Decision {
	// A deny pattern that covers the whole question wins outright.
	for _, d := range p.denyList() {
		if d.kind != Addr && d.matchName(n) && (d.port == 0 || d.port == port) {
			return deniedBy(subj, d)
		}
	}
	var blocked *Pattern
	for _, a := range p.allowList() {
		if a.kind == Addr || !a.matchName(n) {
			continue
		}
		if port != 0 {
			if !a.allowsPort(port) {
				continue
			}
			return Decision{Allow: true, Rule: allowRule(a), Reason: fmt.Sprintf("%s allowed by allow %q", subj, a.String())}
		}
		// A lookup is allowed when some port of this allow rule is not denied.
		for _, q := range a.ports() {
			if d, denied := p.denyNamePort(n, q); denied {
				blocked = &d
				continue
			}
			return Decision{Allow: true, Rule: allowRule(a), Reason: fmt.Sprintf("%s allowed by allow %q", subj, a.String())}
		}
	}
	if blocked != nil {
		return deniedBy(subj, *blocked)
	}
	return defaultDeny(subj, hostPort(n, port))
}

func (p *Policy) denyNamePort(n string, port int) (Pattern, bool) {
	for _, d := range p.denyList() {
		if d.kind != Addr && d.matchName(n) && d.deniesPort(port) {
			return d, true
		}
	}
	return Pattern{}, false
}

// AllowIP decides a TCP connect to ip:port (port 1-65535). It is allowed
// only when
//   - an allow pattern names the address (IP or CIDR) with that port, or
//   - a DNS answer for a name allowed on that port pinned the address in pins
//     (nil pins: none),
//
// and no deny pattern names the address. Special addresses (loopback,
// private, link-local, metadata, …; see the package comment) are denied even
// when pinned, unless an allow pattern inside their class names them.
func (p *Policy) AllowIP(ip netip.Addr, port int, pins *PinSet) Decision {
	if port < 1 || port > 65535 {
		return Decision{Rule: RuleInvalidPort, Reason: fmt.Sprintf("connection to %s denied: port %d is not a port from 1 to 65535", ip, port)}
	}
	return p.decideIP(ip, port, pins)
}

// decideIP: port 0 means some port (a lookup or an IP-literal name).
func (p *Policy) decideIP(ip netip.Addr, port int, pins *PinSet) Decision {
	if !ip.IsValid() {
		return Decision{Rule: RuleInvalidName, Reason: "connection denied: no destination address"}
	}
	ip = canonAddr(ip)
	subj := subject(ip.String(), port)
	for _, d := range p.denyList() {
		if d.kind == Addr && d.prefix.Contains(ip) && (d.port == 0 || d.port == port) {
			return deniedBy(subj, d)
		}
	}
	c, within, special := classify(ip)
	var blocked *Pattern
	for _, a := range p.allowList() {
		if a.kind != Addr || !a.prefix.Contains(ip) {
			continue
		}
		if special && !(a.prefix.Bits() >= within.Bits() && within.Contains(a.prefix.Addr())) {
			continue // "0.0.0.0/0" does not unlock 127.0.0.1
		}
		if port == 0 {
			if d, denied := p.denyAddrAllPorts(ip, a); denied {
				blocked = &d
				continue
			}
		} else if !a.allowsPort(port) {
			continue
		}
		return Decision{Allow: true, Rule: allowRule(a), Reason: fmt.Sprintf("%s allowed by allow %q", subj, a.String())}
	}
	if blocked != nil {
		return deniedBy(subj, *blocked)
	}
	if special {
		return Decision{Rule: c.rule(ip), Reason: fmt.Sprintf(
			"%s denied: %s; to allow it, add %q to [network] allow", subj, c.what(), hostPort(ip.String(), port))}
	}
	// A pinned address is decided by the names whose answers led to it:
	// "connection to 203.0.113.10:443 (api.github.com) allowed by …".
	var first *Decision
	for _, n := range pins.Names(ip) {
		d := p.decideName(n, port, fmt.Sprintf("%s (%s)", subj, n))
		if d.Allow {
			return d
		}
		if first == nil {
			first = &d
		}
	}
	if first != nil {
		return *first
	}
	return Decision{Rule: RuleDefaultDeny, Reason: fmt.Sprintf(
		"%s denied: no DNS answer for an allowed name led there and no [network] allow rule names it; to allow it, add %q to [network] allow",
		subj, hostPort(ip.String(), port))}
}

// denyAddrAllPorts reports whether every port allow pattern a opens on ip is
// closed by a deny port pattern.
func (p *Policy) denyAddrAllPorts(ip netip.Addr, a Pattern) (Pattern, bool) {
	var last Pattern
outer:
	for _, q := range a.ports() {
		for _, d := range p.denyList() {
			if d.kind == Addr && d.prefix.Contains(ip) && d.deniesPort(q) {
				last = d
				continue outer
			}
		}
		return Pattern{}, false
	}
	return last, true
}

// CheckAnswer decides one address of a DNS answer for name, before it is
// returned to the guest and pinned. The name must be allowed (as
// AllowName(name, 0)); an address denied by an address pattern is refused;
// and a special address (private, loopback, metadata, …) is refused — DNS
// rebinding — unless an allow pattern inside its class names it.
func (p *Policy) CheckAnswer(name string, ip netip.Addr) Decision {
	nd := p.AllowName(name, 0)
	if !nd.Allow {
		return nd
	}
	if !ip.IsValid() {
		return Decision{Rule: RuleInvalidName, Reason: fmt.Sprintf("DNS answer for %s denied: no address", name)}
	}
	n, _ := normName(name)
	ip = canonAddr(ip)
	subj := fmt.Sprintf("DNS answer %s for %s", ip, n)
	for _, d := range p.denyList() {
		if d.kind == Addr && d.port == 0 && d.prefix.Contains(ip) {
			return deniedBy(subj, d)
		}
	}
	c, within, special := classify(ip)
	if !special {
		nd.Reason = fmt.Sprintf("%s allowed: the name is allowed by %s and the address is public", subj, nd.Rule)
		return nd
	}
	for _, a := range p.allowList() {
		if a.kind == Addr && a.prefix.Contains(ip) && a.prefix.Bits() >= within.Bits() && within.Contains(a.prefix.Addr()) {
			return Decision{Allow: true, Rule: allowRule(a), Reason: fmt.Sprintf("%s allowed by allow %q", subj, a.String())}
		}
	}
	return Decision{Rule: c.rule(ip), Reason: fmt.Sprintf(
		"%s denied: %s, and an allowed name may not lead to one (DNS rebinding); to allow it, add %q to [network] allow",
		subj, c.what(), ip.String())}
}
