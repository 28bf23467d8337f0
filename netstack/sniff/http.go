package sniff

import (
	"bytes"
	"fmt"
	"strings"
)

// DefaultMaxHTTPHeaderBytes is the header-block cap used by HTTPHost and by
// ParseHTTPRequest/PeekHTTP when given max <= 0.
const DefaultMaxHTTPHeaderBytes = 32 << 10

const maxMethodLen = 32

// http2Preface is the request line of the HTTP/2 connection preface
// (RFC 9113 §3.4).
const http2Preface = "PRI * HTTP/2.0"

// HTTPRequestInfo is what ParseHTTPRequest extracts from the head of an
// HTTP/1.x request.
type HTTPRequestInfo struct {
	Method string
	Target string // request-target as sent
	Proto  string // "HTTP/1.0" or "HTTP/1.1"
	// Host is the request's host: lower-cased, without port and trailing
	// dot; IP literals in canonical form without brackets. It comes from
	// the Host header, or for HTTP/1.0 without Host from an absolute-form
	// target.
	Host string
	// Port is the Host header's port ("" if none was given).
	Port string
	// HeaderLen is the length of the request line plus header block,
	// including the terminating empty line.
	HeaderLen int
	// Upgrade is the Upgrade header value(s) joined by ", " ("h2c" means
	// the client asks to switch this connection to HTTP/2).
	Upgrade string
}

// HTTPHost returns the Host of the HTTP/1.x request at the start of data,
// with DefaultMaxHTTPHeaderBytes as cap. See ParseHTTPRequest.
func HTTPHost(data []byte) (host string, err error) {
	info, err := ParseHTTPRequest(data, DefaultMaxHTTPHeaderBytes)
	if err != nil {
		return "", err
	}
	return info.Host, nil
}

// ParseHTTPRequest parses the request line and header block of the HTTP/1.x
// request at the start of data. max caps the request line plus headers
// (<= 0 means DefaultMaxHTTPHeaderBytes); the body is never inspected.
//
// Errors: ErrNeedMore (header block incomplete and len(data) < max),
// ErrTooLarge, ErrNotHTTP, ErrHTTP2Cleartext, ErrNoHost, ErrDuplicateHost,
// ErrHostMismatch, ErrObsFold, and other errors wrapping ErrMalformed.
//
// Rules: the request line is method SP target SP version CRLF with version
// exactly HTTP/1.0 or HTTP/1.1; lines end in CRLF (bare LF is malformed);
// exactly one Host header, required for HTTP/1.1 (HTTP/1.0 may instead use
// an absolute-form target); an absolute-form (http/https) or CONNECT
// authority-form target must name the same host as Host (ports are not
// compared); userinfo in the target is malformed.
func ParseHTTPRequest(data []byte, max int) (*HTTPRequestInfo, error) {
	if max <= 0 {
		max = DefaultMaxHTTPHeaderBytes
	}
	buf := data
	if len(buf) > max {
		buf = buf[:max]
	}
	incomplete := func() error {
		if len(data) >= max {
			return fmt.Errorf("%w: HTTP request head larger than %d bytes", ErrTooLarge, max)
		}
		return ErrNeedMore
	}

	// Request line.
	nl := bytes.IndexByte(buf, '\n')
	if nl < 0 {
		if err := checkPartialRequestLine(buf); err != nil {
			return nil, err
		}
		return nil, incomplete()
	}
	if nl == 0 || buf[nl-1] != '\r' {
		return nil, ErrNotHTTP // bare LF or empty line before the request
	}
	info, err := parseRequestLine(string(buf[:nl-1]))
	if err != nil {
		return nil, err
	}
	pos := nl + 1

	// Header fields.
	var hostVal string
	hostSeen := false
	var upgrades []string
	for {
		rest := buf[pos:]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
				return nil, ErrObsFold
			}
			return nil, incomplete()
		}
		if nl == 0 || rest[nl-1] != '\r' {
			return nil, malformed("http: bare LF in header block")
		}
		line := rest[:nl-1]
		pos += nl + 1
		if len(line) == 0 {
			break // end of header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, ErrObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, malformed("http: header line without field name")
		}
		name := line[:colon]
		if !isToken(name) {
			return nil, malformed("http: invalid header field name %q", truncate(string(name)))
		}
		value := trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return nil, malformed("http: invalid character in %s header", truncate(string(name)))
		}
		switch {
		case asciiEqualFold(name, "host"):
			if hostSeen {
				return nil, ErrDuplicateHost
			}
			hostSeen, hostVal = true, string(value)
		case asciiEqualFold(name, "upgrade"):
			upgrades = append(upgrades, string(value))
		}
	}
	info.HeaderLen = pos
	info.Upgrade = strings.Join(upgrades, ", ")

	targetHost, hasAuthority, err := targetAuthority(info.Method, info.Target)
	if err != nil {
		return nil, err
	}
	switch {
	case hostSeen && hostVal != "":
		h, p, err := parseHostPort(hostVal)
		if err != nil {
			return nil, malformed("http: invalid Host %q", truncate(hostVal))
		}
		if hasAuthority && h != targetHost {
			return nil, ErrHostMismatch
		}
		info.Host, info.Port = h, p
	case hostSeen: // empty Host header
		return nil, ErrNoHost
	case info.Proto == "HTTP/1.0" && hasAuthority:
		info.Host = targetHost
	default:
		return nil, ErrNoHost
	}
	return info, nil
}

// checkPartialRequestLine rejects early what can never become a request
// line, so garbage is not answered with ErrNeedMore until the cap. It must
// only reject prefixes that parseRequestLine would reject too.
func checkPartialRequestLine(b []byte) error {
	sp := bytes.IndexByte(b, ' ')
	method := b
	if sp >= 0 {
		method = b[:sp]
	}
	if sp == 0 || len(method) > maxMethodLen {
		return ErrNotHTTP
	}
	for _, c := range method {
		if !isTchar(c) {
			return ErrNotHTTP
		}
	}
	return nil
}

func parseRequestLine(line string) (*HTTPRequestInfo, error) {
	if line == http2Preface {
		return nil, ErrHTTP2Cleartext
	}
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 || sp1 > maxMethodLen || !isToken([]byte(line[:sp1])) {
		return nil, ErrNotHTTP
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := strings.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return nil, malformed("http: bad request line")
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	switch proto {
	case "HTTP/1.0", "HTTP/1.1":
	default:
		if strings.HasPrefix(proto, "HTTP/") {
			return nil, malformed("http: unsupported version %q", truncate(proto))
		}
		return nil, ErrNotHTTP
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return nil, malformed("http: invalid character in request target")
		}
	}
	return &HTTPRequestInfo{Method: method, Target: target, Proto: proto}, nil
}

// targetAuthority returns the host named by an absolute-form or
// authority-form request target.
func targetAuthority(method, target string) (host string, ok bool, err error) {
	switch {
	case method == "CONNECT":
		h, p, err := parseHostPort(target)
		if err != nil || p == "" {
			return "", false, malformed("http: CONNECT target must be host:port")
		}
		return h, true, nil
	case target == "*":
		if method != "OPTIONS" {
			return "", false, malformed("http: asterisk-form target with %s", method)
		}
		return "", false, nil
	case target[0] == '/':
		return "", false, nil
	}
	// absolute-form: scheme "://" authority [ path-abempty ] [ "?" query ]
	i := strings.Index(target, "://")
	if i <= 0 {
		return "", false, malformed("http: unrecognised request target form")
	}
	scheme := strings.ToLower(target[:i])
	if scheme != "http" && scheme != "https" {
		return "", false, malformed("http: absolute-form scheme %q", truncate(scheme))
	}
	auth := target[i+3:]
	if j := strings.IndexAny(auth, "/?#"); j >= 0 {
		auth = auth[:j]
	}
	if strings.IndexByte(auth, '@') >= 0 {
		return "", false, malformed("http: userinfo in request target")
	}
	h, _, err := parseHostPort(auth)
	if err != nil {
		return "", false, malformed("http: invalid authority in request target")
	}
	return h, true, nil
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// validFieldValue allows VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
