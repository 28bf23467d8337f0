package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is what a [Pattern] matches.
type Kind uint8

const (
	// Exact matches one host name.
	Exact Kind = iota + 1
	// OneLabel ("*.example.com") matches names exactly one label below the
	// domain.
	OneLabel
	// AnyDepth ("**.example.com") matches names one or more labels below the
	// domain; "**" alone matches every host name (see [ParsePattern]).
	AnyDepth
	// Addr matches an IP address or a CIDR.
	Addr
)

// Pattern is one parsed entry of [network] allow or deny. The zero Pattern
// matches nothing. Patterns are comparable: two patterns that match the same
// flows spelled the same way after normalisation are ==.
type Pattern struct {
	kind   Kind
	domain string       // lower case, no trailing dot; for wildcards the part after "*." or "**."; "" for "**" alone
	prefix netip.Prefix // Kind Addr; IPv4-mapped prefixes are stored as IPv4
	port   int          // 0: no port given
}

// Kind reports what the pattern matches.
func (p Pattern) Kind() Kind { return p.kind }

// Port is the pattern's port, 0 when none was given.
func (p Pattern) Port() int { return p.port }

// Prefix is the address range of an Addr pattern (a single address is a
// full-length prefix); the zero Prefix otherwise.
func (p Pattern) Prefix() netip.Prefix { return p.prefix }

// String is the canonical spelling of the pattern; ParsePattern(p.String())
// returns p.
func (p Pattern) String() string {
	var host string
	switch p.kind {
	case Exact:
		host = p.domain
	case OneLabel:
		host = "*." + p.domain
	case AnyDepth:
		host = "**"
		if p.domain != "" {
			host += "." + p.domain
		}
	case Addr:
		if p.prefix.IsSingleIP() {
			host = p.prefix.Addr().String()
		} else {
			host = p.prefix.String()
		}
		if p.prefix.Addr().Is6() && p.port != 0 {
			host = "[" + host + "]"
		}
	default:
		return ""
	}
	if p.port != 0 {
		host += ":" + strconv.Itoa(p.port)
	}
	return host
}

// PatternError is a pattern that does not parse.
type PatternError struct {
	Pattern string // as written
	Msg     string // what is wrong and how to fix it
}

func (e *PatternError) Error() string { return fmt.Sprintf("%q: %s", e.Pattern, e.Msg) }

// ParsePattern parses one host pattern: "example.com", "*.example.com",
// "**.example.com", "203.0.113.5", "10.0.0.0/8", "2001:db8::/32", each
// optionally followed by ":port" (IPv6 in brackets: "[2001:db8::1]:443").
// Errors are *PatternError and say how to fix the pattern.
//
// "**" alone (or "**:port") matches every host name: it is how sandbox.toml's
// "open" preset says "any public host". It unlocks no special address: a name
// that resolves to a private, loopback or metadata address is still refused
// (see [Policy.CheckAnswer]). A lone "*" stays an error: one label of any
// name is never what anyone means.
func ParsePattern(s string) (Pattern, error) {
	fail := func(format string, a ...any) (Pattern, error) {
		return Pattern{}, &PatternError{Pattern: s, Msg: fmt.Sprintf(format, a...)}
	}
	if t := strings.TrimSpace(s); t != s {
		if t == "" {
			return fail("empty pattern: use a host name such as \"example.com\"")
		}
		return fail("white space around the pattern: use %q", t)
	}
	if s == "" {
		return fail("empty pattern: use a host name such as \"example.com\"")
	}

	host, portStr, hasPort, bracketed := s, "", false, false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fail("missing \"]\" after the IPv6 address")
		}
		host, bracketed = s[1:end], true
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			portStr, hasPort = rest[1:], true
		default:
			return fail("unexpected %q after \"]\": write a port as \"[%s]:443\"", rest, host)
		}
	} else if strings.Count(s, ":") == 1 {
		i := strings.IndexByte(s, ':')
		host, portStr, hasPort = s[:i], s[i+1:], true
	}
	// More than one colon and no brackets: a bare IPv6 address, no port.

	// withPort spells a suggested fix with the port as written.
	withPort := func(h string, port ...string) string {
		ps := portStr
		if len(port) > 0 {
			ps = port[0]
		}
		if !hasPort {
			return h
		}
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		return h + ":" + ps
	}
	var p Pattern
	if hasPort {
		if portStr == "" {
			return fail("missing port after \":\": use %q or %q", host+":443", host)
		}
		if !allDigits(portStr) {
			return fail("port %q is not a number: use a port from 1 to 65535", portStr)
		}
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 1 || n > 65535 {
			return fail("port %s out of range: use a port from 1 to 65535", portStr)
		}
		if portStr[0] == '0' {
			return fail("port %q has a leading zero: use %q", portStr, withPort(host, strconv.Itoa(n)))
		}
		p.port = n
	}
	if host == "" {
		return fail("empty host: name a host such as \"example.com\"")
	}

	lower := strings.ToLower(host)
	if !bracketed && strings.HasSuffix(lower, ".") && !strings.Contains(lower, ":") {
		lower = lower[:len(lower)-1]
	}
	if lower == "" {
		return fail("empty host: name a host such as \"example.com\"")
	}

	// IP address or CIDR.
	if strings.Contains(lower, "/") || strings.Contains(lower, ":") || bracketed {
		prefix, msg := parseAddrOrCIDR(lower, func(h string) string { return withPort(h) })
		if msg != "" {
			return fail("%s", msg)
		}
		if bracketed && !prefix.Addr().Is6() {
			return fail("brackets are only for IPv6 addresses: use %q", withPort(lower))
		}
		if !bracketed && hasPort && prefix.Addr().Is6() {
			return fail("an IPv6 address with a port needs brackets: use %q", withPort(lower))
		}
		p.kind, p.prefix = Addr, canonPrefix(prefix)
		return p, nil
	}
	if a, err := netip.ParseAddr(lower); err == nil {
		p.kind, p.prefix = Addr, canonPrefix(netip.PrefixFrom(a, a.BitLen()))
		return p, nil
	}

	// Host name, maybe with a leading wildcard label.
	labels := strings.Split(lower, ".")
	p.kind = Exact
	switch labels[0] {
	case "*", "**":
		if len(labels) == 1 && labels[0] == "**" {
			p.kind = AnyDepth
			return p, nil
		}
		if len(labels) == 1 {
			return fail("a wildcard alone would allow every host: name the domain, as in %q", withPort(labels[0]+".example.com"))
		}
		p.kind = OneLabel
		if labels[0] == "**" {
			p.kind = AnyDepth
		}
	}
	first := 0
	if p.kind != Exact {
		first = 1
	}
	for i, l := range labels {
		if i < first {
			continue
		}
		if l == "" {
			var kept []string
			for _, k := range labels {
				if k != "" {
					kept = append(kept, k)
				}
			}
			if len(kept) == first {
				return fail("empty label: name a host such as \"example.com\"")
			}
			return fail("empty label: use %q", withPort(strings.Join(kept, ".")))
		}
		if strings.Contains(l, "*") {
			rest := strings.Join(labels[i+1:], ".")
			if i > 0 {
				if rest == "" {
					return fail("a wildcard may only be the first label")
				}
				return fail("a wildcard may only be the first label, as in %q or %q", withPort("*."+rest), withPort("**."+rest))
			}
			fix := "*"
			if stars := strings.TrimLeft(l, "*"); len(stars) < len(l) && !strings.Contains(stars, "*") {
				if strings.HasPrefix(l, "**") {
					fix = "**"
				}
				if stars != "" {
					fix += "." + stars
				}
			}
			if rest != "" {
				fix += "." + rest
			}
			return fail("a wildcard must be a whole label: use %q", withPort(fix))
		}
		if msg := checkLabel(l); msg != "" {
			return fail("%s", msg)
		}
	}
	last := labels[len(labels)-1]
	if allDigits(last) {
		if p.kind != Exact {
			return fail("a wildcard cannot be used with an IP address: use a CIDR such as \"10.0.0.0/8\"")
		}
		return fail("%q is not a valid IP address", host)
	}
	p.domain = strings.Join(labels[first:], ".")
	if len(p.domain) > 253 {
		return fail("name is longer than 253 characters")
	}
	if p.kind != Exact && len(labels) == 2 {
		return fail("a wildcard over a top-level domain allows too much: name the domain, as in %q", withPort(labels[0]+".example."+last))
	}
	return p, nil
}

// parseAddrOrCIDR parses "2001:db8::1", "10.0.0.0/8" or "2001:db8::/32". It
// returns a message instead of an error so that the caller words it.
func parseAddrOrCIDR(s string, withPort func(string) string) (netip.Prefix, string) {
	addrStr, bitsStr, isCIDR := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrStr)
	if err != nil {
		if isCIDR {
			return netip.Prefix{}, fmt.Sprintf("%q is not an IP address: a CIDR looks like \"10.0.0.0/8\" or \"2001:db8::/32\"", addrStr)
		}
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("an address zone (%%%s) is not allowed: use %q", a.Zone(), withPort(a.WithZone("").String()))
	}
	if !isCIDR {
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	bits, err := strconv.Atoi(bitsStr)
	if err != nil || !allDigits(bitsStr) || bits > a.BitLen() || len(bitsStr) > 1 && bitsStr[0] == '0' {
		return netip.Prefix{}, fmt.Sprintf("prefix length %q is not a number from 0 to %d", bitsStr, a.BitLen())
	}
	pfx := netip.PrefixFrom(a, bits)
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Sprintf("%s has bits set after the prefix length: use %q", s, withPort(m.String()))
	}
	return pfx, ""
}

// canonPrefix stores an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) as the
// IPv4 prefix it means (10.0.0.0/8): flows are matched on unmapped addresses.
func canonPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// checkLabel reports what is wrong with one DNS label of a host name, or "".
// Letters, digits, '-' and '_' (SRV-style names) are allowed.
func checkLabel(l string) string {
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c >= utf8.RuneSelf:
			return fmt.Sprintf("label %q is not ASCII: use its punycode form (\"xn--…\")", l)
		default:
			return fmt.Sprintf("invalid character %q in label %q: use letters, digits, \"-\" and \"_\"", string(c), l)
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Sprintf("label %q starts or ends with \"-\"", l)
	}
	if len(l) > 63 {
		return fmt.Sprintf("label %q is longer than 63 characters", l)
	}
	return ""
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// normName lower-cases a flow's host name and drops one trailing dot. It
// reports false for names that no pattern could mean (empty labels, stray
// characters, a wildcard): such a name is denied, not matched loosely.
func normName(name string) (string, bool) {
	n := strings.ToLower(name)
	n = strings.TrimSuffix(n, ".")
	if n == "" || len(n) > 253 {
		return "", false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || checkLabel(l) != "" {
			return "", false
		}
	}
	return n, true
}

// matchName reports whether the pattern's host part matches a normalised
// name; ports are checked apart.
func (p Pattern) matchName(n string) bool {
	switch p.kind {
	case Exact:
		return n == p.domain
	case OneLabel, AnyDepth:
		if p.kind == AnyDepth && p.domain == "" {
			return true // "**": every (valid, normalised) name
		}
		head, ok := strings.CutSuffix(n, "."+p.domain)
		if !ok || head == "" {
			return false
		}
		return p.kind == AnyDepth || !strings.Contains(head, ".")
	}
	return false
}

// ports lists the ports an allow pattern opens: its own, or 443 and 80.
func (p Pattern) ports() []int {
	if p.port != 0 {
		return []int{p.port}
	}
	return []int{443, 80}
}

// allowsPort: an allow pattern without a port opens 443 and 80.
func (p Pattern) allowsPort(port int) bool {
	if p.port != 0 {
		return p.port == port
	}
	return port == 443 || port == 80
}

// deniesPort: a deny pattern without a port closes every port.
func (p Pattern) deniesPort(port int) bool {
	return p.port == 0 || p.port == port
}
