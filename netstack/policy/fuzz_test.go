package policy

import (
	"net/netip"
	"testing"
)

// FuzzParsePattern: ParsePattern never panics, and a parsed pattern's String()
// re-parses to an equal pattern that matches the same names.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "**.example.com:443", "10.0.0.0/8", "[2001:db8::1]:443", "::ffff:10.0.0.0/104", "*example.com", "a..b", "example.com:0", "**", "**:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			if _, ok := err.(*PatternError); !ok {
				t.Fatalf("ParsePattern(%q) error %T, want *PatternError", s, err)
			}
			return
		}
		q, err := ParsePattern(p.String())
		if err != nil {
			t.Fatalf("ParsePattern(%q).String() = %q does not re-parse: %v", s, p, err)
		}
		if q != p {
			t.Fatalf("ParsePattern(%q) = %#v; re-parse of %q = %#v", s, p, p.String(), q)
		}
		if p.Kind() == Addr {
			if !p.Prefix().IsValid() || p.Prefix().Addr().Is4In6() && p.Prefix().Bits() >= 96 {
				t.Fatalf("ParsePattern(%q) prefix %v not canonical", s, p.Prefix())
			}
			_ = (&Policy{Allow: []Pattern{p}}).AllowIP(netip.MustParseAddr("203.0.113.1"), 443, nil)
			return
		}
		if p.Kind() == AnyDepth && p.domain == "" {
			// "**": every name.
			if !p.matchName("x.example.com") || !p.matchName("localhost") {
				t.Fatalf("%q does not match every name", p)
			}
			return
		}
		// The pattern's own domain is a valid name, and the wildcard forms match one level below.
		if _, ok := normName(p.domain); !ok {
			t.Fatalf("ParsePattern(%q) domain %q is not a valid name", s, p.domain)
		}
		if p.Kind() != Exact && !p.matchName("x."+p.domain) {
			t.Fatalf("%q does not match x.%s", p, p.domain)
		}
		if p.Kind() != Exact && p.matchName(p.domain) {
			t.Fatalf("wildcard %q matches its apex", p)
		}
	})
}
