package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

type helloCase struct {
	name       string
	serverName string
	alpn       []string
	maxVersion uint16
	wantSNI    string
	wantErr    error
}

var helloCases = []helloCase{
	{"tls12-sni-alpn", "api.example.com", []string{"h2", "http/1.1"}, tls.VersionTLS12, "api.example.com", nil},
	{"tls13-sni-alpn", "api.example.com", []string{"h2", "http/1.1"}, tls.VersionTLS13, "api.example.com", nil},
	{"tls13-sni", "files.pythonhosted.org", nil, tls.VersionTLS13, "files.pythonhosted.org", nil},
	{"tls12-no-sni", "", []string{"http/1.1"}, tls.VersionTLS12, "", ErrNoSNI},
	{"tls13-no-sni", "", []string{"h2"}, tls.VersionTLS13, "", ErrNoSNI},
	{"ip-servername", "192.0.2.7", nil, tls.VersionTLS13, "", ErrNoSNI}, // crypto/tls omits SNI for IPs
	{"upper-case", "WWW.Example.COM", nil, tls.VersionTLS13, "www.example.com", nil},
	{"trailing-dot", "example.org.", nil, tls.VersionTLS13, "example.org", nil},
}

func TestRealClientHello(t *testing.T) {
	for _, tc := range helloCases {
		t.Run(tc.name, func(t *testing.T) {
			h := realHello(t, tc.serverName, tc.alpn, tc.maxVersion)
			info, err := ParseClientHello(h)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if info == nil {
				t.Fatal("info is nil")
			}
			if info.SNI != tc.wantSNI {
				t.Errorf("SNI = %q, want %q", info.SNI, tc.wantSNI)
			}
			if !slices.Equal(info.ALPN, tc.alpn) {
				t.Errorf("ALPN = %q, want %q", info.ALPN, tc.alpn)
			}
			if info.Len != len(h) {
				t.Errorf("Len = %d, want %d", info.Len, len(h))
			}
			if info.RecordVersion != 0x0301 {
				t.Errorf("RecordVersion = %#04x", info.RecordVersion)
			}
			if tc.maxVersion == tls.VersionTLS13 && !slices.Contains(info.SupportedVersions, tls.VersionTLS13) {
				t.Errorf("SupportedVersions = %x, want TLS 1.3", info.SupportedVersions)
			}
			sni, err2 := ClientHelloSNI(h)
			if sni != tc.wantSNI || !errors.Is(err2, tc.wantErr) {
				t.Errorf("ClientHelloSNI = %q, %v", sni, err2)
			}
			// Differential: crypto/tls's server sees the same name/ALPN.
			gsni, galpn, ok := goServerView(h)
			if !ok {
				t.Fatal("crypto/tls server did not parse the hello")
			}
			if strings.ToLower(gsni) != tc.wantSNI || !slices.Equal(galpn, info.ALPN) {
				t.Errorf("crypto/tls saw %q %q; we saw %q %q", gsni, galpn, info.SNI, info.ALPN)
			}
			// Trailing bytes after the hello (CCS, early data) are ignored.
			more := append(bytes.Clone(h), 0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 2, 9, 9)
			info2, err := ParseClientHello(more)
			if !errors.Is(err, tc.wantErr) || info2.SNI != tc.wantSNI || info2.Len != len(h) {
				t.Errorf("with trailing records: %+v, %v", info2, err)
			}
		})
	}
}

// Every strict prefix of a valid hello must be ErrNeedMore: never an SNI,
// never another error, never a panic.
func TestTruncationNeedsMore(t *testing.T) {
	for _, tc := range helloCases {
		h := realHello(t, tc.serverName, tc.alpn, tc.maxVersion)
		for i := 0; i < len(h); i++ {
			info, err := ParseClientHello(h[:i])
			if err != ErrNeedMore || info != nil {
				t.Fatalf("%s: prefix %d/%d: info=%+v err=%v", tc.name, i, len(h), info, err)
			}
			if sni, err := ClientHelloSNI(h[:i]); sni != "" || err != ErrNeedMore {
				t.Fatalf("%s: prefix %d: ClientHelloSNI=%q %v", tc.name, i, sni, err)
			}
		}
	}
}

// Record-layer fragmentation: the same handshake message split into records
// of 1..N bytes still parses, and all its prefixes need more.
func TestRefragmented(t *testing.T) {
	for _, maxv := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		h := realHello(t, "Frag.Example.NET", []string{"h2", "http/1.1"}, maxv)
		msg := handshakeMsg(t, h)
		for chunk := 1; chunk <= len(msg); chunk++ {
			for _, ver := range []uint16{0x0301, 0x0303} {
				data := fragment(msg, chunk, ver)
				info, err := ParseClientHello(data)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if info.SNI != "frag.example.net" || !slices.Equal(info.ALPN, []string{"h2", "http/1.1"}) || info.Len != len(data) || info.RecordVersion != ver {
					t.Fatalf("chunk %d: %+v", chunk, info)
				}
			}
		}
		for _, chunk := range []int{1, 2, 3, 4, 5, 7, 64, 300} {
			data := fragment(msg, chunk, 0x0303)
			for i := 0; i < len(data); i++ {
				if _, err := ParseClientHello(data[:i]); err != ErrNeedMore {
					t.Fatalf("chunk %d prefix %d: %v", chunk, i, err)
				}
			}
			// crypto/tls agrees on the fragmented form.
			if sni, _, ok := goServerView(data); !ok || sni != "Frag.Example.NET" {
				t.Fatalf("crypto/tls on chunk %d: %q %v", chunk, sni, ok)
			}
		}
	}
}

// Mutating any byte must not panic, and a success must still give a valid
// hostname.
func TestCorruptBytes(t *testing.T) {
	h := realHello(t, "mutate.example.com", []string{"h2"}, tls.VersionTLS13)
	for i := range h {
		for _, d := range []int{1, -1, 0x80} {
			m := bytes.Clone(h)
			m[i] = byte(int(m[i]) + d)
			for _, v := range []byte{m[i], 0x00, 0xff} {
				m[i] = v
				info, err := ParseClientHello(m)
				if err == nil && !ValidHostname(info.SNI) {
					t.Fatalf("byte %d=%#x: invalid SNI %q accepted", i, v, info.SNI)
				}
				if err != nil && info != nil && info.SNI != "" {
					t.Fatalf("byte %d: SNI %q returned with error %v", i, info.SNI, err)
				}
			}
		}
	}
}

func TestCraftedHellos(t *testing.T) {
	good := buildHello([]ext{sniExt("ok.example"), alpnExt("h2")})
	withTrailer := append(bytes.Clone(good), 0xde, 0xad)
	withTrailer[3] += 2 // handshake length covers the junk: trailing junk after extensions
	lenPlus := bytes.Clone(good)
	lenPlus[3]++ // handshake claims one more byte than the record has
	twoMsgs := append(bytes.Clone(good), 1, 0, 0, 0)
	recTooBig := []byte{22, 3, 1, 0x40, 0x01}
	mixedVer := append(fragment(good[:10], 10, 0x0301), fragment(good[10:], 1000, 0x0303)...)
	ccsInside := append(fragment(good[:10], 10, 0x0301), 0x14, 3, 1, 0, 1, 1)
	emptyRec := append([]byte{22, 3, 1, 0, 0}, record(good)...)
	serverHello := bytes.Clone(good)
	serverHello[0] = 2

	tests := []struct {
		name    string
		data    []byte
		wantSNI string
		wantErr error
		ech     bool
	}{
		{"good", record(good), "ok.example", nil, false},
		{"tls12-record", fragment(good, 100, 0x0303), "ok.example", nil, false},
		{"tls13-record-version", fragment(good, 100, 0x0304), "ok.example", nil, false},
		{"ssl3-record", fragment(good, 100, 0x0300), "", ErrNotTLS, false},
		{"future-record", fragment(good, 100, 0x0305), "", ErrNotTLS, false},
		{"sslv2-hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, "", ErrNotTLS, false},
		{"http", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "", ErrNotTLS, false},
		{"alert", []byte{21, 3, 1, 0, 2, 2, 40}, "", ErrNotTLS, false},
		{"bad-major-early", []byte{22, 2}, "", ErrNotTLS, false},
		{"empty", nil, "", ErrNeedMore, false},
		{"no-extensions", record(buildHello(nil)), "", ErrNoSNI, false},
		{"empty-extensions", record(buildHello([]ext{})), "", ErrNoSNI, false},
		{"alpn-only", record(buildHello([]ext{alpnExt("h2")})), "", ErrNoSNI, false},
		{"trailing-dot", record(buildHello([]ext{sniExt("A.Example.")})), "a.example", nil, false},
		{"underscore", record(buildHello([]ext{sniExt("my_host.example")})), "my_host.example", nil, false},
		{"ipv4-literal", record(buildHello([]ext{sniExt("10.0.0.1")})), "", ErrInvalidSNI, false},
		{"ipv4-short", record(buildHello([]ext{sniExt("127.1")})), "", ErrInvalidSNI, false},
		{"ipv4-number", record(buildHello([]ext{sniExt("2130706433")})), "", ErrInvalidSNI, false},
		{"ipv4-hex", record(buildHello([]ext{sniExt("foo.0x7f")})), "", ErrInvalidSNI, false},
		{"ipv6-literal", record(buildHello([]ext{sniExt("::1")})), "", ErrInvalidSNI, false},
		{"ipv6-bracket", record(buildHello([]ext{sniExt("[::1]")})), "", ErrInvalidSNI, false},
		{"empty-label", record(buildHello([]ext{sniExt("a..example")})), "", ErrInvalidSNI, false},
		{"only-dot", record(buildHello([]ext{sniExt(".")})), "", ErrInvalidSNI, false},
		{"two-dots", record(buildHello([]ext{sniExt("a.example..")})), "", ErrInvalidSNI, false},
		{"space", record(buildHello([]ext{sniExt("a example")})), "", ErrInvalidSNI, false},
		{"nul", record(buildHello([]ext{sniExt("a.example\x00.evil")})), "", ErrInvalidSNI, false},
		{"non-ascii", record(buildHello([]ext{sniExt("bücher.example")})), "", ErrInvalidSNI, false},
		{"with-port", record(buildHello([]ext{sniExt("a.example:443")})), "", ErrInvalidSNI, false},
		{"wildcard", record(buildHello([]ext{sniExt("*.example")})), "", ErrInvalidSNI, false},
		{"long-label", record(buildHello([]ext{sniExt(strings.Repeat("a", 64) + ".example")})), "", ErrInvalidSNI, false},
		{"long-name", record(buildHello([]ext{sniExt(strings.Repeat("abcdefghi.", 26))})), "", ErrInvalidSNI, false},
		{"two-names", record(buildHello([]ext{sniExt("a.example", "b.example")})), "", ErrMalformed, false},
		{"dup-sni-ext", record(buildHello([]ext{sniExt("a.example"), sniExt("b.example")})), "", ErrMalformed, false},
		{"dup-other-ext", record(buildHello([]ext{sniExt("a.example"), {0x1234, nil}, {0x1234, nil}})), "", ErrMalformed, false},
		{"name-type-1", record(buildHello([]ext{{extServerName, vec16([]byte{1}, vec16([]byte("a.example")))}})), "", ErrMalformed, false},
		{"empty-sni-ext", record(buildHello([]ext{{extServerName, nil}})), "", ErrMalformed, false},
		{"empty-sni-list", record(buildHello([]ext{{extServerName, vec16()}})), "", ErrMalformed, false},
		{"empty-host-name", record(buildHello([]ext{sniExt("")})), "", ErrMalformed, false},
		{"sni-list-short", record(buildHello([]ext{{extServerName, append(u16b(20), 0, 0, 1, 'a')}})), "", ErrMalformed, false},
		{"sni-ext-trailing", record(buildHello([]ext{{extServerName, append(sniExt("a.example").data, 0)}})), "", ErrMalformed, false},
		{"empty-alpn", record(buildHello([]ext{sniExt("a.example"), {extALPN, vec16()}})), "", ErrMalformed, false},
		{"empty-alpn-proto", record(buildHello([]ext{sniExt("a.example"), {extALPN, vec16([]byte{0})}})), "", ErrMalformed, false},
		{"ech", record(buildHello([]ext{sniExt("public.example"), {extEncryptedClientHello, []byte{0, 1, 2}}})), "public.example", nil, true},
		{"ext-trailing-junk", record(withTrailer), "", ErrMalformed, false},
		{"record-short-of-handshake", record(lenPlus), "", ErrNeedMore, false},
		{"two-handshake-msgs", record(twoMsgs), "", ErrMalformed, false},
		{"record-too-big", recTooBig, "", ErrMalformed, false},
		{"empty-record", emptyRec, "", ErrMalformed, false},
		{"record-version-change", mixedVer, "", ErrMalformed, false},
		{"ccs-inside-hello", ccsInside, "", ErrMalformed, false},
		{"server-hello", record(serverHello), "", ErrMalformed, false},
		{"huge-hello", []byte{22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01}, "", ErrTooLarge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseClientHello(tt.data)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if info.SNI != tt.wantSNI || info.ECH != tt.ech {
					t.Fatalf("info = %+v", info)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if info != nil && info.SNI != "" {
				t.Fatalf("SNI %q with error", info.SNI)
			}
			wellFormed := errors.Is(err, ErrNoSNI) || errors.Is(err, ErrInvalidSNI)
			if wellFormed != (info != nil) {
				t.Fatalf("info=%v for err %v", info, err)
			}
		})
	}
}

// Length fields pointing outside their container must give an error, not a
// panic or an out-of-range read.
func TestCorruptLengths(t *testing.T) {
	good := buildHello([]ext{sniExt("ok.example"), alpnExt("h2", "http/1.1")})
	// Offsets inside the handshake message of each length field.
	sidLen := 4 + 2 + 32
	suitesLen := sidLen + 1 + 32
	compLen := suitesLen + 2 + 4
	extsLen := compLen + 1 + 1
	firstExtLen := extsLen + 2 + 2
	sniListLen := firstExtLen + 2
	hostLen := sniListLen + 2 + 1
	for _, off := range []int{sidLen, suitesLen, compLen, extsLen, firstExtLen, sniListLen, hostLen} {
		for _, v := range []byte{0, 1, 0x21, 0x7f, 0xff} {
			for _, hi := range []bool{false, true} {
				m := bytes.Clone(good)
				if hi && off != sidLen && off != compLen {
					m[off] = v // high byte of a 16-bit length
				} else if off == sidLen || off == compLen {
					m[off] = v
				} else {
					m[off+1] = v
				}
				if bytes.Equal(m, good) {
					continue
				}
				info, err := ParseClientHello(record(m))
				if err == nil {
					t.Errorf("offset %d value %#x (hi=%v): accepted %+v", off, v, hi, info)
				}
			}
		}
	}
}
