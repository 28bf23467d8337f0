package sniff

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

const maxHostnameLen = 253

// normalizeName lower-cases ASCII and strips one trailing dot. ok is false
// if s contains non-ASCII bytes.
func normalizeName(s string) (string, bool) {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 0x80:
			return "", false
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
	}
	if n := len(b); n > 0 && b[n-1] == '.' {
		b = b[:n-1]
	}
	return string(b), true
}

// ValidHostname reports whether s (already normalised: lower case, no
// trailing dot) is a DNS hostname:
// 1..253 bytes, dot-separated labels of 1..63 bytes from [a-z0-9_-], and not
// ending in a number (so no IPv4 literal in any of its inet_aton forms).
func ValidHostname(s string) bool {
	if len(s) == 0 || len(s) > maxHostnameLen {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	if label == 0 {
		return false
	}
	return !endsInNumber(s)
}

// endsInNumber follows the WHATWG URL "ends in a number" check: the last
// label is all decimal digits, or "0x" followed by hex digits. Such names
// are IPv4 literals to URL parsers and inet_aton.
func endsInNumber(s string) bool {
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	if isAll(last, isDigit) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return isAll(last[2:], isHex)
	}
	return false
}

func isAll(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

var errBadHost = errors.New("invalid host")

// parseHostPort parses an HTTP uri-host [ ":" port ] (Host header value or
// request-target authority). It returns the normalised host (lower case, no
// trailing dot, IP literals canonical and without brackets) and the port
// ("" if absent). An empty port after ':' is rejected.
func parseHostPort(s string) (host, port string, err error) {
	if s == "" {
		return "", "", errBadHost
	}
	rest := ""
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errBadHost
		}
		a, perr := netip.ParseAddr(s[1:end])
		if perr != nil || !a.Is6() || a.Zone() != "" {
			return "", "", errBadHost
		}
		host, rest = a.String(), s[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", "", errBadHost
		}
	} else {
		h := s
		if i := strings.IndexByte(s, ':'); i >= 0 {
			h, rest = s[:i], s[i:]
		}
		n, ok := normalizeName(h)
		if !ok || n == "" {
			return "", "", errBadHost
		}
		if endsInNumber(n) {
			a, perr := netip.ParseAddr(n)
			if perr != nil || !a.Is4() {
				return "", "", errBadHost
			}
			n = a.String()
		} else if !ValidHostname(n) {
			return "", "", errBadHost
		}
		host = n
	}
	if rest != "" {
		p := rest[1:]
		if p == "" || len(p) > 5 || !isAll(p, isDigit) {
			return "", "", errBadHost
		}
		v, _ := strconv.Atoi(p)
		if v < 1 || v > 65535 {
			return "", "", errBadHost
		}
		port = strconv.Itoa(v)
	}
	return host, port, nil
}
