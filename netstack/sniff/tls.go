package sniff

import "fmt"

const (
	recordTypeHandshake      = 22
	handshakeTypeClientHello = 1
	recordHeaderLen          = 5
	maxRecordPlaintext       = 1 << 14 // RFC 8446 §5.1 TLSPlaintext.length limit

	// MaxClientHelloLen caps the ClientHello handshake body length
	// accepted by ParseClientHello (crypto/tls uses the same bound).
	// Longer hellos yield ErrTooLarge.
	MaxClientHelloLen = 1 << 16

	extServerName           = 0
	extALPN                 = 16
	extSupportedVersions    = 43
	extEncryptedClientHello = 0xfe0d
)

// ClientHelloInfo is what ParseClientHello extracts from a ClientHello.
type ClientHelloInfo struct {
	// SNI is the host_name from server_name, lower-cased and without a
	// trailing dot. Empty unless ParseClientHello returned a nil error.
	SNI string
	// ALPN lists the offered application protocols in order, nil if the
	// extension is absent.
	ALPN []string
	// SupportedVersions is the supported_versions extension (TLS 1.3
	// clients), nil if absent. May contain GREASE values.
	SupportedVersions []uint16
	// ECH is true if the encrypted_client_hello extension is present
	// (real or GREASE). With real ECH, SNI is only the outer public name.
	ECH bool
	// RecordVersion is the record-layer version of the first record.
	RecordVersion uint16
	// Len is the number of bytes of the input taken by the TLS records
	// that carry the ClientHello. Bytes after it (e.g. a ChangeCipherSpec
	// or early data) are not inspected.
	Len int
}

// ClientHelloSNI returns the server name of the TLS ClientHello at the start
// of data, a prefix of what the client sent. See ParseClientHello for the
// errors.
func ClientHelloSNI(data []byte) (sni string, err error) {
	info, err := ParseClientHello(data)
	if err != nil {
		return "", err
	}
	return info.SNI, nil
}

// ParseClientHello parses the TLS ClientHello at the start of data. The
// handshake message may be fragmented over several handshake records.
//
// Errors: ErrNeedMore (valid so far, truncated), ErrNotTLS (not a TLS
// handshake record), ErrTooLarge (ClientHello longer than
// MaxClientHelloLen), errors wrapping ErrMalformed, and for a well-formed
// hello ErrNoSNI or an error wrapping ErrInvalidSNI. With ErrNoSNI and
// ErrInvalidSNI the returned info is non-nil (ALPN etc. filled in, SNI
// empty); otherwise info is nil whenever err is non-nil.
func ParseClientHello(data []byte) (*ClientHelloInfo, error) {
	msg, ver, n, err := reassembleClientHello(data)
	if err != nil {
		return nil, err
	}
	info := &ClientHelloInfo{RecordVersion: ver, Len: n}
	raw, hasSNI, err := parseClientHelloBody(msg, info)
	if err != nil {
		return nil, err
	}
	if !hasSNI {
		return info, ErrNoSNI
	}
	name, ok := normalizeName(raw)
	if !ok || !ValidHostname(name) {
		if len(raw) > 64 {
			raw = raw[:64] + "..."
		}
		return info, fmt.Errorf("%w: %q", ErrInvalidSNI, raw)
	}
	info.SNI = name
	return info, nil
}

func validRecordVersion(v uint16) bool { return v >= 0x0301 && v <= 0x0304 }

// reassembleClientHello walks handshake records from the start of data and
// returns the ClientHello body (without its 4-byte handshake header), the
// first record's version and the number of bytes consumed.
func reassembleClientHello(data []byte) (body []byte, ver uint16, consumed int, err error) {
	var hs []byte // handshake payload gathered so far
	msgEnd := -1  // 4 + ClientHello length, once known
	pos := 0
	for {
		rest := data[pos:]
		// Check whatever header bytes are present, so garbage is reported
		// as early as possible rather than as ErrNeedMore.
		if len(rest) >= 1 && rest[0] != recordTypeHandshake {
			if pos == 0 {
				return nil, 0, 0, ErrNotTLS
			}
			return nil, 0, 0, malformed("tls: record type %d before the ClientHello was complete", rest[0])
		}
		if len(rest) == 2 && rest[1] != 3 {
			if pos == 0 {
				return nil, 0, 0, ErrNotTLS
			}
			return nil, 0, 0, malformed("tls: record version changed between fragments")
		}
		if len(rest) >= 3 {
			v := uint16(rest[1])<<8 | uint16(rest[2])
			if pos == 0 {
				if !validRecordVersion(v) {
					return nil, 0, 0, ErrNotTLS
				}
				ver = v
			} else if v != ver {
				return nil, 0, 0, malformed("tls: record version changed between fragments")
			}
		}
		if len(rest) < recordHeaderLen {
			return nil, 0, 0, ErrNeedMore
		}
		n := int(rest[3])<<8 | int(rest[4])
		if n == 0 {
			return nil, 0, 0, malformed("tls: empty handshake record")
		}
		if n > maxRecordPlaintext {
			return nil, 0, 0, malformed("tls: record length %d exceeds 2^14", n)
		}
		if len(rest)-recordHeaderLen < n {
			return nil, 0, 0, ErrNeedMore
		}
		hs = append(hs, rest[recordHeaderLen:recordHeaderLen+n]...)
		pos += recordHeaderLen + n
		if hs[0] != handshakeTypeClientHello {
			return nil, 0, 0, malformed("tls: handshake message type %d, want ClientHello", hs[0])
		}
		if msgEnd < 0 && len(hs) >= 4 {
			l := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if l > MaxClientHelloLen {
				return nil, 0, 0, fmt.Errorf("%w: ClientHello of %d bytes", ErrTooLarge, l)
			}
			msgEnd = 4 + l
		}
		if msgEnd >= 0 && len(hs) >= msgEnd {
			if len(hs) > msgEnd {
				return nil, 0, 0, malformed("tls: trailing handshake data after the ClientHello")
			}
			return hs[4:msgEnd], ver, pos, nil
		}
	}
}

// parser is a bounds-checked reader over a byte slice.
type parser []byte

func (p *parser) empty() bool { return len(*p) == 0 }

func (p *parser) u8() (uint8, bool) {
	if len(*p) < 1 {
		return 0, false
	}
	v := (*p)[0]
	*p = (*p)[1:]
	return v, true
}

func (p *parser) u16() (uint16, bool) {
	if len(*p) < 2 {
		return 0, false
	}
	v := uint16((*p)[0])<<8 | uint16((*p)[1])
	*p = (*p)[2:]
	return v, true
}

func (p *parser) bytes(n int) ([]byte, bool) {
	if n < 0 || len(*p) < n {
		return nil, false
	}
	v := (*p)[:n:n]
	*p = (*p)[n:]
	return v, true
}

func (p *parser) vec8() (parser, bool) {
	n, ok := p.u8()
	if !ok {
		return nil, false
	}
	b, ok := p.bytes(int(n))
	return parser(b), ok
}

func (p *parser) vec16() (parser, bool) {
	n, ok := p.u16()
	if !ok {
		return nil, false
	}
	b, ok := p.bytes(int(n))
	return parser(b), ok
}

// parseClientHelloBody parses a ClientHello body (RFC 8446 §4.1.2, RFC 5246
// §7.4.1.2), filling info and returning the raw host_name if present.
func parseClientHelloBody(msg []byte, info *ClientHelloInfo) (sni string, hasSNI bool, err error) {
	p := parser(msg)
	v, ok := p.u16()
	if !ok {
		return "", false, malformed("tls: short ClientHello")
	}
	if v>>8 != 3 || v&0xff < 1 {
		return "", false, malformed("tls: ClientHello version %#04x", v)
	}
	if _, ok := p.bytes(32); !ok {
		return "", false, malformed("tls: short ClientHello random")
	}
	sid, ok := p.vec8()
	if !ok || len(sid) > 32 {
		return "", false, malformed("tls: bad session id")
	}
	suites, ok := p.vec16()
	if !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return "", false, malformed("tls: bad cipher suites")
	}
	comp, ok := p.vec8()
	if !ok || len(comp) < 1 {
		return "", false, malformed("tls: bad compression methods")
	}
	if p.empty() {
		return "", false, nil // no extensions at all (legal before TLS 1.3)
	}
	exts, ok := p.vec16()
	if !ok || !p.empty() {
		return "", false, malformed("tls: bad extensions length")
	}
	seen := make(map[uint16]struct{}, 24)
	for !exts.empty() {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return "", false, malformed("tls: bad extension")
		}
		if _, dup := seen[typ]; dup {
			return "", false, malformed("tls: duplicate extension %#04x", typ)
		}
		seen[typ] = struct{}{}
		switch typ {
		case extServerName:
			name, err := parseServerName(data)
			if err != nil {
				return "", false, err
			}
			sni, hasSNI = name, true
		case extALPN:
			list, err := parseALPN(data)
			if err != nil {
				return "", false, err
			}
			info.ALPN = list
		case extSupportedVersions:
			vs, ok := data.vec8()
			if !ok || !data.empty() || len(vs) < 2 || len(vs)%2 != 0 {
				return "", false, malformed("tls: bad supported_versions")
			}
			for !vs.empty() {
				v, _ := vs.u16()
				info.SupportedVersions = append(info.SupportedVersions, v)
			}
		case extEncryptedClientHello:
			info.ECH = true
		}
	}
	return sni, hasSNI, nil
}

// parseServerName accepts exactly one entry of type host_name (like
// OpenSSL): other name types and several entries are malformed.
func parseServerName(data parser) (string, error) {
	list, ok := data.vec16()
	if !ok || !data.empty() || list.empty() {
		return "", malformed("tls: bad server_name extension")
	}
	typ, ok1 := list.u8()
	name, ok2 := list.vec16()
	if !ok1 || !ok2 || len(name) == 0 {
		return "", malformed("tls: bad server_name entry")
	}
	if typ != 0 {
		return "", malformed("tls: server_name type %d is not host_name", typ)
	}
	if !list.empty() {
		return "", malformed("tls: more than one server_name entry")
	}
	return string(name), nil
}

func parseALPN(data parser) ([]string, error) {
	list, ok := data.vec16()
	if !ok || !data.empty() || list.empty() {
		return nil, malformed("tls: bad ALPN extension")
	}
	var out []string
	for !list.empty() {
		proto, ok := list.vec8()
		if !ok || len(proto) == 0 {
			return nil, malformed("tls: bad ALPN protocol name")
		}
		out = append(out, string(proto))
	}
	return out, nil
}
