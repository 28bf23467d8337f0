package sniff

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("sniff.update-seeds", false, "rewrite the committed fuzz seed corpus under testdata/fuzz")

// tlsSeeds are the named seeds of FuzzClientHelloSNI. Real hellos from
// crypto/tls are included.
func tlsSeeds(tb testing.TB) map[string][]byte {
	h13 := realHello(tb, "api.example.com", []string{"h2", "http/1.1"}, tls.VersionTLS13)
	return map[string][]byte{
		"real-tls13-sni-alpn": h13,
		"real-tls12-sni":      realHello(tb, "Files.Example.ORG", nil, tls.VersionTLS12),
		"real-tls13-no-sni":   realHello(tb, "", []string{"h2"}, tls.VersionTLS13),
		"real-tls13-frag7":    fragment(handshakeMsg(tb, h13), 7, 0x0303),
		"crafted-ech":         record(buildHello([]ext{sniExt("public.example"), alpnExt("h2"), {extEncryptedClientHello, []byte{0, 1}}})),
		"crafted-ip-sni":      record(buildHello([]ext{sniExt("10.0.0.1")})),
		"crafted-two-names":   record(buildHello([]ext{sniExt("a.example", "b.example")})),
		"http":                []byte("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
	}
}

func httpSeeds() map[string][]byte {
	return map[string][]byte{
		"simple":       []byte("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"),
		"absolute":     []byte("GET http://a.example:8080/x?y HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"),
		"connect":      []byte("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
		"ipv6":         []byte("POST /p HTTP/1.0\r\nHost: [2001:db8::1]:80\r\nContent-Length: 2\r\n\r\nhi"),
		"dup-host":     []byte("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
		"folding":      []byte("GET / HTTP/1.1\r\nX: a\r\n b\r\nHost: a.example\r\n\r\n"),
		"h2-preface":   []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
		"h2c-upgrade":  []byte("GET / HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"),
		"http10-abs":   []byte("GET http://b.example/ HTTP/1.0\r\n\r\n"),
		"truncated":    []byte("GET / HTTP/1.1\r\nHost: a.exa"),
		"options-star": []byte("OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n"),
	}
}

func seedDir(name string) string { return filepath.Join("testdata", "fuzz", name) }

func writeSeeds(t *testing.T, fuzzName string, seeds map[string][]byte) {
	dir := seedDir(fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readSeed(t *testing.T, fuzzName, name string) []byte {
	b, err := os.ReadFile(filepath.Join(seedDir(fuzzName), name))
	if err != nil {
		t.Fatalf("%v (regenerate with: go test -run TestFuzzSeeds ./netstack/sniff/ -args -sniff.update-seeds)", err)
	}
	s, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte(")
	s, ok2 := strings.CutSuffix(s, ")\n")
	if !ok || !ok2 {
		t.Fatalf("seed %s: bad format", name)
	}
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return []byte(u)
}

// TestFuzzSeeds (re)writes the committed corpus with -sniff.update-seeds and
// otherwise checks that the committed real ClientHello seeds still parse.
func TestFuzzSeeds(t *testing.T) {
	if *updateSeeds {
		writeSeeds(t, "FuzzClientHelloSNI", tlsSeeds(t))
		writeSeeds(t, "FuzzHTTPHost", httpSeeds())
	}
	for name, want := range map[string]string{"real-tls13-sni-alpn": "api.example.com", "real-tls12-sni": "files.example.org", "real-tls13-frag7": "api.example.com"} {
		if sni, err := ClientHelloSNI(readSeed(t, "FuzzClientHelloSNI", name)); err != nil || sni != want {
			t.Errorf("seed %s: %q %v", name, sni, err)
		}
	}
	if h, err := HTTPHost(readSeed(t, "FuzzHTTPHost", "simple")); err != nil || h != "example.com" {
		t.Errorf("http seed: %q %v", h, err)
	}
}

// prefixesNeedMore checks a sample of strict prefixes of data[:n].
func prefixesNeedMore(t *testing.T, data []byte, n int, parse func([]byte) error) {
	step := max(1, n/64)
	for i := 0; i < n; i += step {
		if err := parse(data[:i]); err != ErrNeedMore {
			t.Fatalf("prefix %d of %d: %v", i, n, err)
		}
	}
	if n > 0 {
		if err := parse(data[:n-1]); err != ErrNeedMore {
			t.Fatalf("prefix %d of %d: %v", n-1, n, err)
		}
	}
}

func FuzzClientHelloSNI(f *testing.F) {
	for _, s := range tlsSeeds(f) {
		f.Add(s)
	}
	known := []error{ErrNeedMore, ErrNotTLS, ErrNoSNI, ErrInvalidSNI, ErrMalformed, ErrTooLarge}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseClientHello(data)
		sni, err2 := ClientHelloSNI(data)
		if fmt.Sprint(err2) != fmt.Sprint(err) {
			t.Fatalf("ClientHelloSNI err %v vs %v", err2, err)
		}
		if err != nil {
			if !slices.ContainsFunc(known, func(k error) bool { return errors.Is(err, k) }) {
				t.Fatalf("unclassified error %v", err)
			}
			wellFormed := errors.Is(err, ErrNoSNI) || errors.Is(err, ErrInvalidSNI)
			if wellFormed != (info != nil) || sni != "" || (info != nil && info.SNI != "") {
				t.Fatalf("info %+v sni %q with err %v", info, sni, err)
			}
			return
		}
		if sni != info.SNI || !ValidHostname(info.SNI) || strings.ToLower(info.SNI) != info.SNI {
			t.Fatalf("bad SNI %q", info.SNI)
		}
		if info.Len < 5 || info.Len > len(data) {
			t.Fatalf("Len %d of %d", info.Len, len(data))
		}
		hello := data[:info.Len]
		again, err := ParseClientHello(append(slices.Clip(hello), 0x17, 3, 3, 0, 1, 0))
		if err != nil || again.SNI != info.SNI || !slices.Equal(again.ALPN, info.ALPN) || again.Len != info.Len {
			t.Fatalf("reparse of hello+junk: %+v %v", again, err)
		}
		prefixesNeedMore(t, hello, len(hello), func(b []byte) error { _, err := ParseClientHello(b); return err })
		// Differential: whatever crypto/tls's server parses must agree.
		if gsni, galpn, ok := goServerView(hello); ok {
			if strings.ToLower(gsni) != info.SNI || !slices.Equal(galpn, info.ALPN) {
				t.Fatalf("crypto/tls saw %q %q, we saw %q %q", gsni, galpn, info.SNI, info.ALPN)
			}
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	for _, s := range httpSeeds() {
		f.Add(s)
	}
	known := []error{ErrNeedMore, ErrTooLarge, ErrNotHTTP, ErrHTTP2Cleartext, ErrNoHost, ErrDuplicateHost, ErrHostMismatch, ErrMalformed}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseHTTPRequest(data, 0)
		host, err2 := HTTPHost(data)
		if fmt.Sprint(err2) != fmt.Sprint(err) {
			t.Fatalf("HTTPHost err %v vs %v", err2, err)
		}
		if err != nil {
			if info != nil || host != "" {
				t.Fatalf("result with error %v", err)
			}
			if !slices.ContainsFunc(known, func(k error) bool { return errors.Is(err, k) }) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if host != info.Host || info.Host == "" || info.HeaderLen > len(data) {
			t.Fatalf("bad info %+v", info)
		}
		if h, _, err := parseHostPort(info.Host); err != nil && !strings.Contains(info.Host, ":") || err == nil && h != info.Host {
			t.Fatalf("host %q not normalised", info.Host)
		}
		head := data[:info.HeaderLen]
		again, err := ParseHTTPRequest(append(slices.Clip(head), "more"...), 0)
		if err != nil || again.Host != info.Host {
			t.Fatalf("reparse: %+v %v", again, err)
		}
		prefixesNeedMore(t, head, len(head), func(b []byte) error { _, err := ParseHTTPRequest(b, 0); return err })
		// Differential: if net/http also parses it, it names the same host.
		if req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head))); err == nil && req.Host != "" {
			gh, _, err := parseHostPort(req.Host)
			if err == nil && gh != info.Host {
				t.Fatalf("net/http host %q (%q), ours %q", req.Host, gh, info.Host)
			}
		}
	})
}
