package policy

import (
	"net/netip"
	"strings"
)

// class is a range of addresses the sandbox never reaches unless an allow
// pattern inside the range names them.
type class struct {
	prefix netip.Prefix
	kind   string // "private" in "private address 10.1.2.3 (RFC 1918)"
	detail string // "RFC 1918"; may be empty
}

// classes is ordered most specific first: the first match decides, and an
// unlocking pattern must lie inside that match (so "169.254.0.0/16" unlocks
// link-local addresses but not the metadata service).
var classes = []class{
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata", ""},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata", ""},
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified", ""},
	{netip.MustParsePrefix("::/128"), "unspecified", ""},
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network", "0.0.0.0/8"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", ""},
	{netip.MustParsePrefix("::1/128"), "loopback", ""},
	{netip.MustParsePrefix("10.0.0.0/8"), "private", "RFC 1918"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private", "RFC 1918"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private", "RFC 1918"},
	{netip.MustParsePrefix("fc00::/7"), "private", "unique local, RFC 4193"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared", "CGNAT, RFC 6598"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local", ""},
	{netip.MustParsePrefix("fe80::/10"), "link-local", ""},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", ""},
	{netip.MustParsePrefix("ff00::/8"), "multicast", ""},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast", ""},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved", "240.0.0.0/4"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): on a host with a NAT64
// gateway 64:ff9b::a00:1 reaches 10.0.0.1.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// classify returns the special class of an (unmapped) address and the range
// an unlocking pattern must lie in, or ok false for a public address.
func classify(ip netip.Addr) (c class, within netip.Prefix, ok bool) {
	for _, c := range classes {
		if c.prefix.Contains(ip) {
			return c, c.prefix, true
		}
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		if c, within, ok := classify(v4); ok {
			var a [16]byte
			copy(a[:], b[:12])
			w4 := within.Addr().As4()
			copy(a[12:], w4[:])
			c.detail = join(c.detail, "via NAT64")
			return c, netip.PrefixFrom(netip.AddrFrom16(a), 96+within.Bits()), true
		}
	}
	return class{}, netip.Prefix{}, false
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}

// canonAddr is how flows are matched: IPv4-mapped IPv6 becomes IPv4 (so
// ::ffff:127.0.0.1 is loopback), and a zone is dropped.
func canonAddr(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// what spells a class for a reason: "private address (RFC 1918)".
func (c class) what() string {
	s := c.kind + " address"
	if c.detail != "" {
		s += " (" + c.detail + ")"
	}
	return s
}

// rule spells a class with the address for Decision.Rule:
// "private address 10.1.2.3 (RFC 1918)".
func (c class) rule(ip netip.Addr) string {
	s := c.kind + " address " + ip.String()
	if c.detail != "" {
		s += " (" + c.detail + ")"
	}
	return s
}

// ThisMachine reports whether host (a URL's host name or address, without
// a port) names the machine it is used on: "localhost" and its
// subdomains, loopback and unspecified addresses. Seen from the sandbox
// VM, such a name is the VM itself, never the host.
func ThisMachine(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && (a.IsLoopback() || a.IsUnspecified())
}
