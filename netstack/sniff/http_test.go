package sniff

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHTTPRequest(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: a.example\r\nCookie: " + strings.Repeat("x", DefaultMaxHTTPHeaderBytes) + "\r\n\r\n"
	tests := []struct {
		name     string
		req      string
		wantHost string
		wantPort string
		wantErr  error
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com", "", nil},
		{"port", "GET /x?y=1 HTTP/1.1\r\nUser-Agent: t\r\nHOST:  Example.COM:8080 \r\nAccept: */*\r\n\r\n", "example.com", "8080", nil},
		{"with-body", "POST /p HTTP/1.1\r\nhost: a.example\r\nContent-Length: 3\r\n\r\nabc", "a.example", "", nil},
		{"trailing-dot", "GET / HTTP/1.1\r\nHost: a.example.\r\n\r\n", "a.example", "", nil},
		{"ipv4", "GET / HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n", "192.0.2.1", "80", nil},
		{"ipv6", "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n", "2001:db8::1", "8080", nil},
		{"http10-no-host", "GET / HTTP/1.0\r\n\r\n", "", "", ErrNoHost},
		{"http10-host", "GET / HTTP/1.0\r\nHost: a.example\r\n\r\n", "a.example", "", nil},
		{"http10-absolute", "GET http://A.example/x HTTP/1.0\r\n\r\n", "a.example", "", nil},
		{"absolute-agrees", "GET http://a.example:80/x HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example", "", nil},
		{"absolute-https", "GET HTTPS://a.example?q HTTP/1.1\r\nHost: A.EXAMPLE\r\n\r\n", "a.example", "", nil},
		{"absolute-mismatch", "GET http://evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrHostMismatch},
		{"absolute-userinfo", "GET http://a.example@evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"absolute-ftp", "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"absolute-bad-authority", "GET http://a%20exa/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"connect", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "a.example", "443", nil},
		{"connect-mismatch", "CONNECT evil.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "", "", ErrHostMismatch},
		{"connect-no-port", "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"options-star", "OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example", "", nil},
		{"get-star", "GET * HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"missing-host-11", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "", "", ErrNoHost},
		{"empty-host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "", "", ErrNoHost},
		{"duplicate-host", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n", "", "", ErrDuplicateHost},
		{"duplicate-host-case", "GET / HTTP/1.1\r\nHost: a.example\r\nhOsT: evil.example\r\n\r\n", "", "", ErrDuplicateHost},
		{"host-list", "GET / HTTP/1.1\r\nHost: a.example, evil.example\r\n\r\n", "", "", ErrMalformed},
		{"host-space", "GET / HTTP/1.1\r\nHost: a example\r\n\r\n", "", "", ErrMalformed},
		{"host-userinfo", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n", "", "", ErrMalformed},
		{"host-bad-port", "GET / HTTP/1.1\r\nHost: a.example:http\r\n\r\n", "", "", ErrMalformed},
		{"host-empty-port", "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", "", "", ErrMalformed},
		{"host-port-range", "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", "", "", ErrMalformed},
		{"host-bad-ipv4", "GET / HTTP/1.1\r\nHost: 127.1\r\n\r\n", "", "", ErrMalformed},
		{"host-ipv6-zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", "", "", ErrMalformed},
		{"host-nonascii", "GET / HTTP/1.1\r\nHost: b\xc3\xbccher.example\r\n\r\n", "", "", ErrMalformed},
		{"space-before-colon", "GET / HTTP/1.1\r\nHost : evil.example\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"folding", "GET / HTTP/1.1\r\nHost: a.example\r\nX-A: b\r\n c\r\n\r\n", "", "", ErrObsFold},
		{"folding-host", "GET / HTTP/1.1\r\nX-A: b\r\n\tHost: evil.example\r\nHost: a.example\r\n\r\n", "", "", ErrObsFold},
		{"folding-partial", "GET / HTTP/1.1\r\nHost: a.example\r\n ", "", "", ErrObsFold},
		{"bare-lf", "GET / HTTP/1.1\nHost: a.example\n\n", "", "", ErrNotHTTP},
		{"bare-lf-header", "GET / HTTP/1.1\r\nHost: a.example\n\r\n", "", "", ErrMalformed},
		{"bare-cr", "GET / HTTP/1.1\r\nHost: a.example\rX: y\r\n\r\n", "", "", ErrMalformed},
		{"nul-in-value", "GET / HTTP/1.1\r\nHost: a.example\r\nX: a\x00b\r\n\r\n", "", "", ErrMalformed},
		{"no-colon", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", "", "", ErrMalformed},
		{"leading-crlf", "\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrNotHTTP},
		{"http09", "GET /\r\n\r\n", "", "", ErrMalformed},
		{"http2-version", "GET / HTTP/2.0\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"lower-version", "GET / http/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrNotHTTP},
		{"double-space", "GET  / HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"ctl-in-target", "GET /\x01 HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrMalformed},
		{"bad-method", "G(T / HTTP/1.1\r\nHost: a.example\r\n\r\n", "", "", ErrNotHTTP},
		{"tls", "\x16\x03\x01\x00\x10", "", "", ErrNotHTTP},
		{"h2-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", "", ErrHTTP2Cleartext},
		{"h2-preface-line-only", "PRI * HTTP/2.0\r\n", "", "", ErrHTTP2Cleartext},
		{"h2-preface-partial", "PRI * HTTP/2.0", "", "", ErrNeedMore},
		{"truncated-line", "GET / HTTP/1.1", "", "", ErrNeedMore},
		{"truncated-headers", "GET / HTTP/1.1\r\nHost: a.example\r\n", "", "", ErrNeedMore},
		{"truncated-cr", "GET / HTTP/1.1\r\nHost: a.example\r\n\r", "", "", ErrNeedMore},
		{"empty", "", "", "", ErrNeedMore},
		{"huge-headers", big, "", "", ErrTooLarge},
		{"huge-truncated", big[:DefaultMaxHTTPHeaderBytes+10], "", "", ErrTooLarge},
		{"huge-method", strings.Repeat("A", 40), "", "", ErrNotHTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseHTTPRequest([]byte(tt.req), 0)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || info != nil {
					t.Fatalf("got %+v, %v; want %v", info, err, tt.wantErr)
				}
				if h, err := HTTPHost([]byte(tt.req)); h != "" || !errors.Is(err, tt.wantErr) {
					t.Fatalf("HTTPHost = %q, %v", h, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if info.Host != tt.wantHost || info.Port != tt.wantPort {
				t.Fatalf("host, port = %q, %q; want %q, %q", info.Host, info.Port, tt.wantHost, tt.wantPort)
			}
			if end := strings.Index(tt.req, "\r\n\r\n") + 4; info.HeaderLen != end {
				t.Fatalf("HeaderLen = %d, want %d", info.HeaderLen, end)
			}
			// Every strict prefix of the head needs more.
			for i := 0; i < info.HeaderLen; i++ {
				if _, err := ParseHTTPRequest([]byte(tt.req[:i]), 0); err != ErrNeedMore {
					t.Fatalf("prefix %d: %v", i, err)
				}
			}
		})
	}
}

func TestHTTPUpgradeAndCap(t *testing.T) {
	info, err := ParseHTTPRequest([]byte("GET / HTTP/1.1\r\nHost: a.example\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"), 0)
	if err != nil || info.Upgrade != "h2c" || info.Method != "GET" || info.Target != "/" || info.Proto != "HTTP/1.1" {
		t.Fatalf("%+v %v", info, err)
	}
	req := []byte("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
	if _, err := ParseHTTPRequest(req, len(req)); err != nil {
		t.Fatalf("exact cap: %v", err)
	}
	if _, err := ParseHTTPRequest(req, len(req)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("cap-1: %v", err)
	}
	if _, err := ParseHTTPRequest(req[:10], 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("truncated at cap: %v", err)
	}
}
