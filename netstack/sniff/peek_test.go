package sniff

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"testing"
	"testing/iotest"
	"time"
)

// strictReader serves data in the given chunks and fails the test if Read
// is called once everything has been served (Peek would block on a conn).
type strictReader struct {
	t      *testing.T
	chunks [][]byte
}

func (r *strictReader) Read(b []byte) (int, error) {
	if len(r.chunks) == 0 {
		r.t.Fatal("Read called after the complete message was delivered")
	}
	n := copy(b, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func TestPeekDoesNotOverread(t *testing.T) {
	h := realHello(t, "peek.example", []string{"h2"}, tls.VersionTLS13)
	for _, split := range []int{1, 5, 6, 100, len(h) - 1} {
		r := &strictReader{t: t, chunks: [][]byte{bytes.Clone(h[:split]), bytes.Clone(h[split:])}}
		prefix, info, err := Peek(r, 0)
		if err != nil || info.SNI != "peek.example" || !bytes.Equal(prefix, h) {
			t.Fatalf("split %d: %v %+v", split, err, info)
		}
	}
	prefix, info, err := Peek(iotest.OneByteReader(bytes.NewReader(h)), 0)
	if err != nil || info.SNI != "peek.example" || !bytes.Equal(prefix, h) {
		t.Fatalf("one byte reader: %v", err)
	}
}

func TestPeekErrors(t *testing.T) {
	h := realHello(t, "peek.example", nil, tls.VersionTLS13)
	if _, _, err := Peek(bytes.NewReader(nil), 0); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
	if p, _, err := Peek(bytes.NewReader(h[:50]), 0); err != io.ErrUnexpectedEOF || len(p) != 50 {
		t.Errorf("truncated: %v %d", err, len(p))
	}
	if p, _, err := Peek(bytes.NewReader(h), 100); !errors.Is(err, ErrTooLarge) || len(p) != 100 {
		t.Errorf("cap: %v %d", err, len(p))
	}
	// Not TLS is decided from the first byte.
	r := &strictReader{t: t, chunks: [][]byte{[]byte("G")}}
	if p, _, err := Peek(r, 0); err != ErrNotTLS || string(p) != "G" {
		t.Errorf("http: %v %q", err, p)
	}
	// Hello and EOF in the same Read still parses.
	if _, info, err := Peek(iotest.DataErrReader(bytes.NewReader(h)), 0); err != nil || info.SNI != "peek.example" {
		t.Errorf("data+EOF: %v", err)
	}
	// No SNI: info still returned.
	h2 := realHello(t, "", []string{"http/1.1"}, tls.VersionTLS12)
	if _, info, err := Peek(bytes.NewReader(h2), 0); err != ErrNoSNI || info == nil || !slices.Equal(info.ALPN, []string{"http/1.1"}) {
		t.Errorf("no sni: %v %+v", err, info)
	}
	errRead := errors.New("boom")
	if _, _, err := Peek(iotest.ErrReader(errRead), 0); err != errRead {
		t.Errorf("read error: %v", err)
	}
}

func selfSigned(t *testing.T, name string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// End to end over net.Pipe: Peek returns while the client waits for the
// server, and replaying the prefix lets a real server finish the handshake.
func TestPeekPipeReplay(t *testing.T) {
	for _, maxv := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cli, srv := net.Pipe()
		cert := selfSigned(t, "pipe.example")
		done := make(chan error, 1)
		go func() {
			c := tls.Client(cli, &tls.Config{ServerName: "pipe.example", InsecureSkipVerify: true, NextProtos: []string{"h2"}, MaxVersion: maxv})
			err := c.Handshake()
			if err == nil {
				_, err = c.Write([]byte("ping"))
			}
			done <- err
			c.Close()
		}()
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		prefix, info, err := Peek(srv, 0)
		if err != nil || info.SNI != "pipe.example" || !slices.Equal(info.ALPN, []string{"h2"}) {
			t.Fatalf("Peek: %v %+v", err, info)
		}
		srv.SetReadDeadline(time.Time{})
		s := tls.Server(&replayConn{srv, io.MultiReader(bytes.NewReader(prefix), srv)}, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("server read after replay: %v %q", err, buf)
		}
		if s.ConnectionState().ServerName != "pipe.example" {
			t.Fatal("server name mismatch")
		}
		if err := <-done; err != nil {
			t.Fatalf("client: %v", err)
		}
		srv.Close() // raw close: both sides' close_notify would block on net.Pipe
	}
}

func TestPeekHTTP(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: A.example:8080\r\n\r\nbody")
	head := req[:len(req)-4]
	r := &strictReader{t: t, chunks: [][]byte{bytes.Clone(head[:7]), bytes.Clone(head[7:])}}
	prefix, info, err := PeekHTTP(r, 0)
	if err != nil || info.Host != "a.example" || info.Port != "8080" || !bytes.Equal(prefix, head) {
		t.Fatalf("%v %+v %q", err, info, prefix)
	}
	if _, _, err := PeekHTTP(bytes.NewReader(req[:20]), 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	if _, _, err := PeekHTTP(bytes.NewReader(req), 20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("cap: %v", err)
	}
	if _, _, err := PeekHTTP(bytes.NewReader([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")), 0); err != ErrHTTP2Cleartext {
		t.Fatalf("h2c: %v", err)
	}
}
