package policy

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePatternGood(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   string // String()
		kind   Kind
		port   int
		prefix string // Addr patterns
	}{
		{"example.com", "example.com", Exact, 0, ""},
		{"Example.COM.", "example.com", Exact, 0, ""},
		{"api.example.com:8443", "api.example.com:8443", Exact, 8443, ""},
		{"example.com.:443", "example.com:443", Exact, 443, ""},
		{"*.example.com", "*.example.com", OneLabel, 0, ""},
		{"**.Example.com:443", "**.example.com:443", AnyDepth, 443, ""},
		// "**" alone is every host name (the "open" preset of sandbox.toml).
		{"**", "**", AnyDepth, 0, ""},
		{"**:443", "**:443", AnyDepth, 443, ""},
		{"**.", "**", AnyDepth, 0, ""},
		{"_dmarc.example.com", "_dmarc.example.com", Exact, 0, ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", Exact, 0, ""},
		{"localhost", "localhost", Exact, 0, ""},
		{"a1.example.com:65535", "a1.example.com:65535", Exact, 65535, ""},
		{"203.0.113.5", "203.0.113.5", Addr, 0, "203.0.113.5/32"},
		{"203.0.113.5:22", "203.0.113.5:22", Addr, 22, "203.0.113.5/32"},
		{"10.0.0.0/8", "10.0.0.0/8", Addr, 0, "10.0.0.0/8"},
		{"10.0.0.0/8:22", "10.0.0.0/8:22", Addr, 22, "10.0.0.0/8"},
		{"0.0.0.0/0", "0.0.0.0/0", Addr, 0, "0.0.0.0/0"},
		{"2001:db8::1", "2001:db8::1", Addr, 0, "2001:db8::1/128"},
		{"2001:DB8::1", "2001:db8::1", Addr, 0, "2001:db8::1/128"},
		{"[2001:db8::1]", "2001:db8::1", Addr, 0, "2001:db8::1/128"},
		{"[2001:db8::1]:443", "[2001:db8::1]:443", Addr, 443, "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32", Addr, 0, "2001:db8::/32"},
		{"[2001:db8::/32]:443", "[2001:db8::/32]:443", Addr, 443, "2001:db8::/32"},
		{"fd00:ec2::254", "fd00:ec2::254", Addr, 0, "fd00:ec2::254/128"},
		// An IPv4-mapped pattern means the IPv4 address it maps.
		{"::ffff:10.1.2.3", "10.1.2.3", Addr, 0, "10.1.2.3/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", Addr, 0, "10.0.0.0/8"},
		{"1.2.3.4.", "1.2.3.4", Addr, 0, "1.2.3.4/32"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePattern(tc.in)
			if err != nil {
				t.Fatalf("ParsePattern(%q): %v", tc.in, err)
			}
			if p.String() != tc.want || p.Kind() != tc.kind || p.Port() != tc.port {
				t.Errorf("ParsePattern(%q) = %q kind %d port %d, want %q kind %d port %d",
					tc.in, p, p.Kind(), p.Port(), tc.want, tc.kind, tc.port)
			}
			if tc.prefix != "" && p.Prefix() != netip.MustParsePrefix(tc.prefix) {
				t.Errorf("prefix %v, want %v", p.Prefix(), tc.prefix)
			}
			q, err := ParsePattern(p.String())
			if err != nil || q != p {
				t.Errorf("re-parse of %q = %v, %v; want equal", p, q, err)
			}
		})
	}
}

func TestParsePatternBad(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", `"": empty pattern: use a host name such as "example.com"`},
		{" example.com", `" example.com": white space around the pattern: use "example.com"`},
		// A lone wildcard would be an allow-everything rule hidden in a list.
		{"*", `"*": a wildcard alone would allow every host: name the domain, as in "*.example.com"`},
		{"*:443", `"*:443": a wildcard alone would allow every host: name the domain, as in "*.example.com:443"`},
		// "*.com" would open a whole top-level domain.
		{"*.com", `"*.com": a wildcard over a top-level domain allows too much: name the domain, as in "*.example.com"`},
		{"**.com.", `"**.com.": a wildcard over a top-level domain allows too much: name the domain, as in "**.example.com"`},
		{"*example.com", `"*example.com": a wildcard must be a whole label: use "*.example.com"`},
		{"**example.com:22", `"**example.com:22": a wildcard must be a whole label: use "**.example.com:22"`},
		{"api*.example.com", `"api*.example.com": a wildcard must be a whole label: use "*.example.com"`},
		{"a.*.example.com", `"a.*.example.com": a wildcard may only be the first label, as in "*.example.com" or "**.example.com"`},
		{"example.*", `"example.*": a wildcard may only be the first label`},
		{"a..example.com", `"a..example.com": empty label: use "a.example.com"`},
		{".example.com", `".example.com": empty label: use "example.com"`},
		{"example.com..", `"example.com..": empty label: use "example.com"`},
		{"*..example.com", `"*..example.com": empty label: use "*.example.com"`},
		{".", `".": empty host: name a host such as "example.com"`},
		{":443", `":443": empty host: name a host such as "example.com"`},
		{"example.com:", `"example.com:": missing port after ":": use "example.com:443" or "example.com"`},
		{"example.com:0", `"example.com:0": port 0 out of range: use a port from 1 to 65535`},
		{"example.com:65536", `"example.com:65536": port 65536 out of range: use a port from 1 to 65535`},
		{"example.com:99999999999999999999", `"example.com:99999999999999999999": port 99999999999999999999 out of range: use a port from 1 to 65535`},
		{"example.com:-1", `"example.com:-1": port "-1" is not a number: use a port from 1 to 65535`},
		{"example.com:https", `"example.com:https": port "https" is not a number: use a port from 1 to 65535`},
		{"example.com:0443", `"example.com:0443": port "0443" has a leading zero: use "example.com:443"`},
		{"exa mple.com", `"exa mple.com": invalid character " " in label "exa mple": use letters, digits, "-" and "_"`},
		{"exa/mple.com", `"exa/mple.com": "exa" is not an IP address: a CIDR looks like "10.0.0.0/8" or "2001:db8::/32"`},
		{"bücher.example", `"bücher.example": label "bücher" is not ASCII: use its punycode form ("xn--…")`},
		{"-a.example.com", `"-a.example.com": label "-a" starts or ends with "-"`},
		{"256.1.1.1", `"256.1.1.1": "256.1.1.1" is not a valid IP address`},
		{"1.2.3", `"1.2.3": "1.2.3" is not a valid IP address`},
		{"*.1.2.3", `"*.1.2.3": a wildcard cannot be used with an IP address: use a CIDR such as "10.0.0.0/8"`},
		{"10.1.2.3/8", `"10.1.2.3/8": 10.1.2.3/8 has bits set after the prefix length: use "10.0.0.0/8"`},
		{"10.1.2.3/8:22", `"10.1.2.3/8:22": 10.1.2.3/8 has bits set after the prefix length: use "10.0.0.0/8:22"`},
		{"10.0.0.0/33", `"10.0.0.0/33": prefix length "33" is not a number from 0 to 32`},
		{"10.0.0.0/", `"10.0.0.0/": prefix length "" is not a number from 0 to 32`},
		{"2001:db8::/129", `"2001:db8::/129": prefix length "129" is not a number from 0 to 128`},
		{"fe80::1%eth0", `"fe80::1%eth0": an address zone (%eth0) is not allowed: use "fe80::1"`},
		{"[2001:db8::1", `"[2001:db8::1": missing "]" after the IPv6 address`},
		{"[2001:db8::1]443", `"[2001:db8::1]443": unexpected "443" after "]": write a port as "[2001:db8::1]:443"`},
		{"[10.0.0.1]:22", `"[10.0.0.1]:22": brackets are only for IPv6 addresses: use "10.0.0.1:22"`},
		{"[example.com]", `"[example.com]": "example.com" is not an IP address`},
		{"2001:db8::1:443x", `"2001:db8::1:443x": "2001:db8::1:443x" is not an IP address`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePattern(tc.in)
			if err == nil {
				t.Fatalf("ParsePattern(%q) = %q, want error %s", tc.in, p, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("ParsePattern(%q) error\n got %s\nwant %s", tc.in, err, tc.want)
			}
			var pe *PatternError
			if !errors.As(err, &pe) || pe.Pattern != tc.in {
				t.Errorf("error %T does not carry the pattern", err)
			}
		})
	}
}

func TestNewReportsEveryBadPattern(t *testing.T) {
	_, err := New([]string{"ok.example.com", "*example.com"}, []string{"x.example.com:0"})
	if err == nil {
		t.Fatal("New accepted bad patterns")
	}
	want := `policy: allow[1]: "*example.com": a wildcard must be a whole label: use "*.example.com"` + "\n" +
		`policy: deny[0]: "x.example.com:0": port 0 out of range: use a port from 1 to 65535`
	if err.Error() != want {
		t.Errorf("New error\n got %s\nwant %s", err, want)
	}
}

func TestPatternZeroValue(t *testing.T) {
	var p Pattern
	if p.String() != "" || p.matchName("example.com") {
		t.Errorf("zero Pattern = %q, matches example.com: %v", p.String(), p.matchName("example.com"))
	}
}

func TestThisMachine(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "LocalHost.": true, "api.localhost": true, "127.0.0.1": true, "127.1.2.3": true,
		"::1": true, "[::1]": true, "0.0.0.0": true, "::": true,
		"example.com": false, "localhost.example.com": false, "10.0.0.1": false, "203.0.113.5": false, "": false,
	} {
		if got := ThisMachine(h); got != want {
			t.Errorf("ThisMachine(%q) = %v, want %v", h, got, want)
		}
	}
}
