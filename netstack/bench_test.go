package netstack

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// The stack's own cost, without a VM: a second gVisor stack plays the
// guest on the other end of the socketpair. `go test -bench . ./netstack`
// prints, per pair of sub-benchmarks, the policy path (a name resolved
// through the stack's DNS, pinned, its HTTP Host peeked and checked) and
// the same stack with the policy reduced to an address rule (no DNS, no
// peek): compare their MB/s and ns/op in one run.

const blobSize = 16 << 20

var blob = func() []byte {
	b := make([]byte, blobSize)
	_, _ = rand.Read(b)
	return b
}()

func benchServer(b testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/blob" {
			_, _ = w.Write(blob)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln
}

// benchArms are the two ways to the same server: by name (policy path)
// and by an address rule.
var benchArms = []struct {
	name string
	ip   netip.Addr
}{
	{"policy", apiIP},
	{"address-rule", netip.MustParseAddr("203.0.113.11")},
}

func benchEnv(b *testing.B) *env {
	e := newEnvWith(b, []string{"api.example.com", "203.0.113.11:80"}, nil)
	b.Cleanup(e.cleanup)
	srv := benchServer(b).Addr().String()
	e.dial.route["203.0.113.10:80"] = srv
	e.dial.route["203.0.113.11:80"] = srv
	if m := e.query(b, "api.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeSuccess {
		b.Fatalf("rcode %v", m.RCode)
	}
	return e
}

func get(b *testing.B, e *env, ip netip.Addr, path string) int64 {
	c, err := e.connect(ip, 80)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func BenchmarkBulkDownload(b *testing.B) {
	e := benchEnv(b)
	for _, arm := range benchArms {
		b.Run(arm.name, func(b *testing.B) {
			b.SetBytes(blobSize)
			for b.Loop() {
				if n := get(b, e, arm.ip, "/blob"); n != blobSize {
					b.Fatalf("read %d bytes", n)
				}
			}
		})
	}
}

// BenchmarkConnect is one new connection per op: SYN, decision, dial,
// splice, a tiny GET, close.
func BenchmarkConnect(b *testing.B) {
	e := benchEnv(b)
	for _, arm := range benchArms {
		b.Run(arm.name, func(b *testing.B) {
			for b.Loop() {
				get(b, e, arm.ip, "/")
			}
		})
	}
}

// BenchmarkDNS is one A query for an allowed name (host lookup through the
// injected resolver, policy, pinning) against one for a denied name
// (NXDOMAIN, no lookup).
func BenchmarkDNS(b *testing.B) {
	e := benchEnv(b)
	for _, c := range []struct{ name, q string }{{"allowed", "api.example.com"}, {"denied", "denied.example.com"}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				e.query(b, c.q, dnsmessage.TypeA)
			}
		})
	}
}
