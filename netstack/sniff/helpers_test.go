package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// recConn records what a tls.Client writes and fails every Read, so the
// handshake stops right after the ClientHello.
type recConn struct{ buf bytes.Buffer }

func (c *recConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *recConn) Write(b []byte) (int, error)      { return c.buf.Write(b) }
func (c *recConn) Close() error                     { return nil }
func (c *recConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recConn) SetDeadline(time.Time) error      { return nil }
func (c *recConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

// realHello returns the bytes crypto/tls sends as its ClientHello.
func realHello(tb testing.TB, serverName string, alpn []string, maxVersion uint16) []byte {
	tb.Helper()
	c := &recConn{}
	cfg := &tls.Config{
		ServerName:         serverName,
		NextProtos:         alpn,
		MaxVersion:         maxVersion,
		InsecureSkipVerify: serverName == "", // required by crypto/tls to omit SNI
	}
	_ = tls.Client(c, cfg).Handshake()
	if c.buf.Len() == 0 {
		tb.Fatal("tls.Client wrote nothing")
	}
	return bytes.Clone(c.buf.Bytes())
}

// goServerView feeds data to a crypto/tls server and returns what it saw
// in the ClientHello (ok=false if it never got a parsed hello).
func goServerView(data []byte) (sni string, alpn []string, ok bool) {
	c := &feedConn{r: bytes.NewReader(data)}
	errStop := errors.New("stop")
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni, alpn, ok = h.ServerName, h.SupportedProtos, true
		return nil, errStop
	}}
	_ = tls.Server(c, cfg).Handshake()
	return sni, alpn, ok
}

type feedConn struct {
	recConn
	r *bytes.Reader
}

func (c *feedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// handshakeMsg extracts the handshake payload carried by a stream of
// handshake records (first message only needs to be complete).
func handshakeMsg(tb testing.TB, records []byte) []byte {
	tb.Helper()
	var msg []byte
	for len(records) >= 5 && records[0] == recordTypeHandshake {
		n := int(records[3])<<8 | int(records[4])
		msg = append(msg, records[5:5+n]...)
		records = records[5+n:]
	}
	return msg
}

// fragment splits a handshake payload into records carrying at most chunk
// bytes each.
func fragment(msg []byte, chunk int, ver uint16) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(chunk, len(msg))
		out = append(out, recordTypeHandshake, byte(ver>>8), byte(ver), byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

type ext struct {
	typ  uint16
	data []byte
}

func u16b(v int) []byte { return []byte{byte(v >> 8), byte(v)} }

func vec16(b ...[]byte) []byte {
	c := bytes.Join(b, nil)
	return append(u16b(len(c)), c...)
}

func vec8(b ...[]byte) []byte {
	c := bytes.Join(b, nil)
	return append([]byte{byte(len(c))}, c...)
}

func sniExt(names ...string) ext {
	var entries [][]byte
	for _, n := range names {
		entries = append(entries, append([]byte{0}, vec16([]byte(n))...))
	}
	return ext{extServerName, vec16(entries...)}
}

func alpnExt(protos ...string) ext {
	var l [][]byte
	for _, p := range protos {
		l = append(l, vec8([]byte(p)))
	}
	return ext{extALPN, vec16(l...)}
}

// buildHello builds a ClientHello handshake message (with its 4-byte
// header). exts == nil omits the extensions block entirely.
func buildHello(exts []ext) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, vec8(make([]byte, 32))...)
	body = append(body, vec16([]byte{0x13, 0x01, 0xc0, 0x2f})...)
	body = append(body, vec8([]byte{0})...)
	if exts != nil {
		var eb [][]byte
		for _, e := range exts {
			eb = append(eb, append(u16b(int(e.typ)), vec16(e.data)...))
		}
		body = append(body, vec16(eb...)...)
	}
	l := len(body)
	return append([]byte{handshakeTypeClientHello, byte(l >> 16), byte(l >> 8), byte(l)}, body...)
}

func record(msg []byte) []byte { return fragment(msg, maxRecordPlaintext, 0x0301) }
