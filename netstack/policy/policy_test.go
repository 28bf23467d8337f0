package policy

import (
	"net/netip"
	"testing"
	"time"
)

func mustNew(t *testing.T, allow, deny []string) *Policy {
	t.Helper()
	p, err := New(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllowName(t *testing.T) {
	p := mustNew(t, []string{
		"exact.example.com",
		"*.one.example.com",
		"**.any.example.com",
		"api.example.com:8443",
		"**.github.com:443",
		"evil.example:443",
		"**.mixed.example",
		"203.0.113.7",
	}, []string{
		"*.evil.example",
		"bad.mixed.example:443",
	})
	for _, tc := range []struct {
		name  string
		port  int
		allow bool
		rule  string
	}{
		{"exact.example.com", 443, true, `allow "exact.example.com"`},
		{"exact.example.com", 80, true, `allow "exact.example.com"`},
		{"EXACT.Example.COM.", 443, true, `allow "exact.example.com"`},
		// A pattern without a port opens 443 and 80, not every port (ssh to an allowed web host).
		{"exact.example.com", 22, false, RuleDefaultDeny},
		{"exact.example.com", 0, true, `allow "exact.example.com"`},
		// An exact name does not cover its subdomains.
		{"x.exact.example.com", 443, false, RuleDefaultDeny},
		{"a.one.example.com", 443, true, `allow "*.one.example.com"`},
		// "*." is exactly one label: not the apex …
		{"one.example.com", 443, false, RuleDefaultDeny},
		// … and not deeper names.
		{"a.b.one.example.com", 443, false, RuleDefaultDeny},
		{"a.any.example.com", 443, true, `allow "**.any.example.com"`},
		{"a.b.c.any.example.com", 80, true, `allow "**.any.example.com"`},
		// "**." needs at least one label: the apex is not matched.
		{"any.example.com", 443, false, RuleDefaultDeny},
		// Suffix match is on label boundaries: "evilany.example.com" is not under "any.example.com".
		{"evilany.example.com", 443, false, RuleDefaultDeny},
		{"api.example.com", 8443, true, `allow "api.example.com:8443"`},
		{"api.example.com", 443, false, RuleDefaultDeny},
		{"api.example.com", 0, true, `allow "api.example.com:8443"`},
		{"raw.github.com", 443, true, `allow "**.github.com:443"`},
		{"raw.github.com", 80, false, RuleDefaultDeny},
		{"github.com.evil.example", 443, false, RuleDefaultDeny},
		// Deny beats allow.
		{"x.evil.example", 443, false, `deny "*.evil.example"`},
		// The apex is allowed; the one-label deny does not reach it.
		{"evil.example", 443, true, `allow "evil.example:443"`},
		// A port-scoped deny closes only that port …
		{"bad.mixed.example", 443, false, `deny "bad.mixed.example:443"`},
		{"bad.mixed.example", 80, true, `allow "**.mixed.example"`},
		// … and the name still resolves, for port 80.
		{"bad.mixed.example", 0, true, `allow "**.mixed.example"`},
		{"unlisted.example.org", 443, false, RuleDefaultDeny},
		{"unlisted.example.org", 0, false, RuleDefaultDeny},
		// IP literals are decided by address patterns, never by names.
		{"203.0.113.7", 443, true, `allow "203.0.113.7"`},
		{"203.0.113.8", 443, false, RuleDefaultDeny},
		{"127.0.0.1", 443, false, "loopback address 127.0.0.1"},
		// Malformed names never match loosely (an SNI with an empty label or a NUL).
		{"a..exact.example.com", 443, false, RuleInvalidName},
		{"x\x00.one.example.com", 443, false, RuleInvalidName},
		{"*.one.example.com", 443, false, RuleInvalidName},
		{"", 0, false, RuleInvalidName},
		{"exact.example.com", 70000, false, RuleInvalidPort},
	} {
		d := p.AllowName(tc.name, tc.port)
		if d.Allow != tc.allow || d.Rule != tc.rule {
			t.Errorf("AllowName(%q, %d) = %v %q, want %v %q (%s)", tc.name, tc.port, d.Allow, d.Rule, tc.allow, tc.rule, d.Reason)
		}
		if d.Reason == "" {
			t.Errorf("AllowName(%q, %d): empty reason", tc.name, tc.port)
		}
	}
}

// A deny rule without a port closes every port, even ports an allow rule opens.
func TestDenyWithoutPortClosesEveryPort(t *testing.T) {
	p := mustNew(t, []string{"**.example.com:22", "**.example.com"}, []string{"git.example.com"})
	for _, port := range []int{0, 22, 80, 443} {
		if d := p.AllowName("git.example.com", port); d.Allow || d.Rule != `deny "git.example.com"` {
			t.Errorf("AllowName(git.example.com, %d) = %+v, want deny", port, d)
		}
	}
	if d := p.AllowName("www.example.com", 22); !d.Allow {
		t.Errorf("www.example.com:22 = %+v, want allow", d)
	}
	// The lookup is refused when every port the allow rules open is denied.
	p = mustNew(t, []string{"x.example.com:22"}, []string{"x.example.com:22"})
	if d := p.AllowName("x.example.com", 0); d.Allow || d.Rule != `deny "x.example.com:22"` {
		t.Errorf("lookup = %+v, want deny", d)
	}
	// The same for an IP literal looked up as a name.
	p = mustNew(t, []string{"203.0.113.7:22", "203.0.113.8:22"}, []string{"203.0.113.7:22"})
	if d := p.AllowName("203.0.113.7", 0); d.Allow || d.Rule != `deny "203.0.113.7:22"` {
		t.Errorf("IP lookup = %+v, want deny", d)
	}
	if d := p.AllowName("203.0.113.8", 0); !d.Allow {
		t.Errorf("IP lookup = %+v, want allow", d)
	}
}

func TestReasons(t *testing.T) {
	p := mustNew(t, []string{"**.github.com:443"}, []string{"*.evil.example"})
	pins := NewPinSet(PinSetOptions{})
	pins.Pin("api.github.com", netip.MustParseAddr("203.0.113.10"), time.Minute)
	for _, tc := range []struct {
		got  Decision
		want string
	}{
		{p.AllowName("api.github.com", 443), `connection to api.github.com:443 allowed by allow "**.github.com:443"`},
		{p.AllowName("x.evil.example", 443), `connection to x.evil.example:443 denied by deny "*.evil.example"; deny rules win over allow rules, so remove it from [network] deny to allow this`},
		{p.AllowName("example.org", 443), `connection to example.org:443 denied: no [network] allow rule matches it; to allow it, add "example.org:443" to [network] allow`},
		{p.AllowName("example.org", 0), `lookup of example.org denied: no [network] allow rule matches it; to allow it, add "example.org" to [network] allow`},
		{p.AllowIP(netip.MustParseAddr("10.1.2.3"), 22, nil), `connection to 10.1.2.3:22 denied: private address (RFC 1918); to allow it, add "10.1.2.3:22" to [network] allow`},
		{p.AllowIP(netip.MustParseAddr("fd00:ec2::254"), 80, nil), `connection to [fd00:ec2::254]:80 denied: cloud metadata address; to allow it, add "[fd00:ec2::254]:80" to [network] allow`},
		{p.AllowIP(netip.MustParseAddr("203.0.113.5"), 443, nil), `connection to 203.0.113.5:443 denied: no DNS answer for an allowed name led there and no [network] allow rule names it; to allow it, add "203.0.113.5:443" to [network] allow`},
		{p.CheckAnswer("git.github.com", netip.MustParseAddr("192.168.1.1")), `DNS answer 192.168.1.1 for git.github.com denied: private address (RFC 1918), and an allowed name may not lead to one (DNS rebinding); to allow it, add "192.168.1.1" to [network] allow`},
		{p.AllowName("a\x00b", 443), `connection on port 443 denied: "a\x00b" is not a valid host name`},
		{p.AllowIP(netip.MustParseAddr("203.0.113.10"), 443, pins), `connection to 203.0.113.10:443 (api.github.com) allowed by allow "**.github.com:443"`},
		{p.AllowIP(netip.MustParseAddr("203.0.113.10"), 22, pins), `connection to 203.0.113.10:22 (api.github.com) denied: no [network] allow rule matches it; to allow it, add "api.github.com:22" to [network] allow`},
	} {
		if tc.got.Reason != tc.want {
			t.Errorf("reason\n got %s\nwant %s", tc.got.Reason, tc.want)
		}
	}
	if d := p.AllowIP(netip.MustParseAddr("10.1.2.3"), 22, nil); d.Rule != "private address 10.1.2.3 (RFC 1918)" {
		t.Errorf("rule = %q", d.Rule)
	}
}

// Every special class is denied by default, by IP, by IPv4-mapped IPv6 and by
// NAT64, even when a DNS answer for an allowed name pinned it, and even when
// the policy allows every public address.
func TestDenyClasses(t *testing.T) {
	p := mustNew(t, []string{"**.example.com", "0.0.0.0/0", "::/0"}, nil)
	for _, tc := range []struct {
		ip, rule string
	}{
		// The host's own services (gvproxy-style NAT to 127.0.0.1).
		{"127.0.0.1", "loopback address 127.0.0.1"},
		{"127.1.2.3", "loopback address 127.1.2.3"},
		{"::1", "loopback address ::1"},
		// IPv4-mapped IPv6 reaches the same socket as the IPv4 address.
		{"::ffff:127.0.0.1", "loopback address 127.0.0.1"},
		{"::ffff:10.0.0.1", "private address 10.0.0.1 (RFC 1918)"},
		{"::ffff:169.254.169.254", "cloud metadata address 169.254.169.254"},
		// NAT64 on the host would translate to the embedded IPv4 address.
		{"64:ff9b::7f00:1", "loopback address 64:ff9b::7f00:1 (via NAT64)"},
		{"64:ff9b::a9fe:a9fe", "cloud metadata address 64:ff9b::a9fe:a9fe (via NAT64)"},
		// The LAN behind the host.
		{"10.1.2.3", "private address 10.1.2.3 (RFC 1918)"},
		{"172.16.0.1", "private address 172.16.0.1 (RFC 1918)"},
		{"172.31.255.255", "private address 172.31.255.255 (RFC 1918)"},
		{"192.168.0.1", "private address 192.168.0.1 (RFC 1918)"},
		{"fd12:3456::1", "private address fd12:3456::1 (unique local, RFC 4193)"},
		{"fc00::1", "private address fc00::1 (unique local, RFC 4193)"},
		// Carrier/Tailscale networks.
		{"100.64.0.1", "shared address 100.64.0.1 (CGNAT, RFC 6598)"},
		{"100.127.255.254", "shared address 100.127.255.254 (CGNAT, RFC 6598)"},
		// Cloud credentials.
		{"169.254.169.254", "cloud metadata address 169.254.169.254"},
		{"fd00:ec2::254", "cloud metadata address fd00:ec2::254"},
		{"169.254.1.1", "link-local address 169.254.1.1"},
		{"fe80::1", "link-local address fe80::1"},
		{"fe80::1%eth0", "link-local address fe80::1"},
		{"224.0.0.251", "multicast address 224.0.0.251"},
		{"239.255.255.250", "multicast address 239.255.255.250"},
		{"ff02::1", "multicast address ff02::1"},
		// 0.0.0.0 and :: reach the host's own listeners on Linux.
		{"0.0.0.0", "unspecified address 0.0.0.0"},
		{"::", "unspecified address ::"},
		{"0.1.2.3", "this-network address 0.1.2.3 (0.0.0.0/8)"},
		{"255.255.255.255", "broadcast address 255.255.255.255"},
		{"240.0.0.1", "reserved address 240.0.0.1 (240.0.0.0/4)"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		pins := NewPinSet(PinSetOptions{})
		pins.Pin("www.example.com", ip, time.Minute)
		for _, port := range []int{80, 443} {
			if d := p.AllowIP(ip, port, pins); d.Allow || d.Rule != tc.rule {
				t.Errorf("AllowIP(%s, %d) = %v %q, want deny %q", tc.ip, port, d.Allow, d.Rule, tc.rule)
			}
		}
		if d := p.CheckAnswer("www.example.com", ip); d.Allow || d.Rule != tc.rule {
			t.Errorf("CheckAnswer(www.example.com, %s) = %v %q, want deny %q", tc.ip, d.Allow, d.Rule, tc.rule)
		}
	}
}

// The documentation ranges are public: the end-to-end tests' fake internet
// lives there. Neighbouring public addresses are also not special.
func TestDocumentationRangesArePublic(t *testing.T) {
	p := mustNew(t, []string{"**.example.com"}, nil)
	for _, s := range []string{"192.0.2.1", "198.51.100.7", "203.0.113.1", "2001:db8::1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "198.18.0.1", "2606:4700::1111", "64:ff9b::808:808"} {
		ip := netip.MustParseAddr(s)
		if _, _, special := classify(ip); special {
			t.Errorf("%s classified special", s)
		}
		if d := p.CheckAnswer("www.example.com", ip); !d.Allow || d.Rule != `allow "**.example.com"` {
			t.Errorf("CheckAnswer(www.example.com, %s) = %+v, want allow", s, d)
		}
		pins := NewPinSet(PinSetOptions{})
		pins.Pin("www.example.com", ip, 0)
		if d := p.AllowIP(ip, 443, pins); !d.Allow {
			t.Errorf("AllowIP(%s, 443) pinned = %+v, want allow", s, d)
		}
	}
}

func TestExplicitAddressUnlock(t *testing.T) {
	p := mustNew(t, []string{
		"10.0.0.0/8:5432",
		"127.0.0.1:11434",
		"[fd00:ec2::254]:80",
		"169.254.0.0/16",
		"0.0.0.0/0:8080",
		"203.0.113.9",
		"localhost",
		"**.example.com",
	}, []string{"10.9.0.0/16"})
	for _, tc := range []struct {
		ip    string
		port  int
		allow bool
		rule  string
	}{
		{"10.1.2.3", 5432, true, `allow "10.0.0.0/8:5432"`},
		{"::ffff:10.1.2.3", 5432, true, `allow "10.0.0.0/8:5432"`},
		// Unlocking names a port: other ports stay closed.
		{"10.1.2.3", 22, false, "private address 10.1.2.3 (RFC 1918)"},
		// Deny beats allow, for addresses too.
		{"10.9.1.1", 5432, false, `deny "10.9.0.0/16"`},
		{"127.0.0.1", 11434, true, `allow "127.0.0.1:11434"`},
		{"127.0.0.1", 443, false, "loopback address 127.0.0.1"},
		{"fd00:ec2::254", 80, true, `allow "[fd00:ec2::254]:80"`},
		{"169.254.1.1", 443, true, `allow "169.254.0.0/16"`},
		// A link-local CIDR does not unlock the metadata service inside it.
		{"169.254.169.254", 80, false, "cloud metadata address 169.254.169.254"},
		// "0.0.0.0/0" is the public internet, not the LAN or the host.
		{"8.8.8.8", 8080, true, `allow "0.0.0.0/0:8080"`},
		{"192.168.1.1", 8080, false, "private address 192.168.1.1 (RFC 1918)"},
		{"127.0.0.1", 8080, false, "loopback address 127.0.0.1"},
		{"203.0.113.9", 443, true, `allow "203.0.113.9"`},
		{"203.0.113.9", 22, false, RuleDefaultDeny},
		{"203.0.113.10", 443, false, RuleDefaultDeny},
		{"203.0.113.9", 0, false, RuleInvalidPort},
	} {
		d := p.AllowIP(netip.MustParseAddr(tc.ip), tc.port, nil)
		if d.Allow != tc.allow || d.Rule != tc.rule {
			t.Errorf("AllowIP(%s, %d) = %v %q, want %v %q (%s)", tc.ip, tc.port, d.Allow, d.Rule, tc.allow, tc.rule, d.Reason)
		}
	}
}

// DNS rebinding: an allowed name that resolves to a private address is
// refused, unless that address is named in the allow list.
func TestCheckAnswer(t *testing.T) {
	p := mustNew(t, []string{"**.example.com", "db.example.com:5432", "10.1.2.3:5432", "localhost"}, []string{"*.evil.example", "203.0.113.66"})
	for _, tc := range []struct {
		name, ip string
		allow    bool
		rule     string
	}{
		{"www.example.com", "203.0.113.5", true, `allow "**.example.com"`},
		// Rebinding to the LAN, the host and the metadata service.
		{"www.example.com", "10.0.0.1", false, "private address 10.0.0.1 (RFC 1918)"},
		{"www.example.com", "127.0.0.1", false, "loopback address 127.0.0.1"},
		{"www.example.com", "::ffff:7f00:1", false, "loopback address 127.0.0.1"},
		{"www.example.com", "169.254.169.254", false, "cloud metadata address 169.254.169.254"},
		// "localhost" as a name pattern does not unlock loopback.
		{"localhost", "127.0.0.1", false, "loopback address 127.0.0.1"},
		// The explicitly named address may be answered (for any name allowed).
		{"db.example.com", "10.1.2.3", true, `allow "10.1.2.3:5432"`},
		{"db.example.com", "10.1.2.4", false, "private address 10.1.2.4 (RFC 1918)"},
		// An address denied outright is not handed out.
		{"www.example.com", "203.0.113.66", false, `deny "203.0.113.66"`},
		// A name that is not allowed gets no answer at all (no resolving for exfiltration).
		{"x.evil.example", "203.0.113.5", false, `deny "*.evil.example"`},
		{"other.org", "203.0.113.5", false, RuleDefaultDeny},
	} {
		d := p.CheckAnswer(tc.name, netip.MustParseAddr(tc.ip))
		if d.Allow != tc.allow || d.Rule != tc.rule {
			t.Errorf("CheckAnswer(%s, %s) = %v %q, want %v %q (%s)", tc.name, tc.ip, d.Allow, d.Rule, tc.allow, tc.rule, d.Reason)
		}
	}
}

func TestAllowIPPinned(t *testing.T) {
	p := mustNew(t, []string{"**.github.com:443", "ssh.example.com:22"}, []string{"gist.github.com"})
	pins := NewPinSet(PinSetOptions{})
	gh := netip.MustParseAddr("203.0.113.10")
	pins.Pin("api.github.com", gh, time.Minute)
	for _, tc := range []struct {
		ip    string
		port  int
		pins  *PinSet
		allow bool
		rule  string
	}{
		{"203.0.113.10", 443, pins, true, `allow "**.github.com:443"`},
		{"::ffff:203.0.113.10", 443, pins, true, `allow "**.github.com:443"`},
		// A pinned name opens only the ports its rule opens.
		{"203.0.113.10", 22, pins, false, RuleDefaultDeny},
		{"203.0.113.10", 80, pins, false, RuleDefaultDeny},
		// Without the pin set the address is just an address.
		{"203.0.113.10", 443, nil, false, RuleDefaultDeny},
		// An address no DNS answer produced (hard-coded IPs bypassing the name allowlist).
		{"203.0.113.11", 443, pins, false, RuleDefaultDeny},
	} {
		d := p.AllowIP(netip.MustParseAddr(tc.ip), tc.port, tc.pins)
		if d.Allow != tc.allow || d.Rule != tc.rule {
			t.Errorf("AllowIP(%s, %d) = %v %q, want %v %q (%s)", tc.ip, tc.port, d.Allow, d.Rule, tc.allow, tc.rule, d.Reason)
		}
	}
	// A pinned name that a deny rule covers does not open the address.
	pins.Pin("gist.github.com", netip.MustParseAddr("203.0.113.20"), time.Minute)
	if d := p.AllowIP(netip.MustParseAddr("203.0.113.20"), 443, pins); d.Allow || d.Rule != `deny "gist.github.com"` {
		t.Errorf("pinned denied name = %+v, want deny", d)
	}
	// Shared address: allowed through one allowed name; the SNI check then
	// decides which name the connection may speak to.
	pins.Pin("raw.github.com", netip.MustParseAddr("203.0.113.20"), time.Minute)
	if d := p.AllowIP(netip.MustParseAddr("203.0.113.20"), 443, pins); !d.Allow {
		t.Errorf("shared address = %+v, want allow", d)
	}
	if !pins.SNIMatches(netip.MustParseAddr("203.0.113.20"), "gist.github.com") || p.AllowName("gist.github.com", 443).Allow {
		t.Error("SNI gist.github.com must match the pin but be denied by the name check")
	}
}

func TestNilPolicyDeniesEverything(t *testing.T) {
	var p *Policy
	if d := p.AllowName("example.com", 443); d.Allow || d.Rule != RuleDefaultDeny {
		t.Errorf("nil AllowName = %+v", d)
	}
	if d := p.AllowIP(netip.MustParseAddr("203.0.113.1"), 443, nil); d.Allow || d.Rule != RuleDefaultDeny {
		t.Errorf("nil AllowIP = %+v", d)
	}
	if d := p.AllowIP(netip.Addr{}, 443, nil); d.Allow {
		t.Errorf("invalid address allowed: %+v", d)
	}
}

// "**" (the "open" preset) allows every public name on 443 and 80 and
// nothing special: each case names the leak it stops.
func TestAnyNameStaysPublic(t *testing.T) {
	p := mustNew(t, []string{"**", "0.0.0.0/0", "::/0"}, []string{"*.evil.example"})
	if d := p.AllowName("pypi.org", 443); !d.Allow || d.Rule != `allow "**"` {
		t.Errorf("pypi.org:443 = %+v, want allowed by **", d)
	}
	// A port-less "**" opens the web ports only, not ssh to every host.
	if d := p.AllowName("github.com", 22); d.Allow {
		t.Errorf("github.com:22 allowed by %s", d.Rule)
	}
	// Deny still beats the widest allow.
	if d := p.AllowName("a.evil.example", 443); d.Allow {
		t.Errorf("a.evil.example allowed by %s", d.Rule)
	}
	// DNS rebinding: an allowed name may not lead to a private address.
	if d := p.CheckAnswer("intranet.example.com", netip.MustParseAddr("10.1.2.3")); d.Allow {
		t.Errorf("answer 10.1.2.3 allowed by %s", d.Rule)
	}
	// Metadata and loopback stay closed, pinned or not.
	pins := NewPinSet(PinSetOptions{})
	pins.Pin("meta.example.com", netip.MustParseAddr("169.254.169.254"), time.Minute)
	for _, ip := range []string{"169.254.169.254", "127.0.0.1", "192.168.1.1", "::1"} {
		if d := p.AllowIP(netip.MustParseAddr(ip), 443, pins); d.Allow {
			t.Errorf("%s:443 allowed by %s", ip, d.Rule)
		}
	}
	// A public address by IP literal is allowed by the CIDRs of the preset.
	if d := p.AllowIP(netip.MustParseAddr("203.0.113.9"), 443, nil); !d.Allow {
		t.Errorf("203.0.113.9:443 denied: %s", d.Reason)
	}
}
