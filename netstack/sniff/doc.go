// Package sniff parses the first bytes a guest sends on a new TCP flow so
// that the host-side network can decide the flow before dialing upstream.
//
// # Boundary
//
// This package only PARSES. It knows nothing about policy, DNS pins, audit
// logs or connections beyond an io.Reader. It answers two questions:
//
//   - TLS ports: which server_name (SNI) does the ClientHello ask for, and
//     which ALPN protocols does it offer? See [ParseClientHello],
//     [ClientHelloSNI] and [Peek].
//   - Plain HTTP/1.x: which Host does the first request name? See
//     [ParseHTTPRequest], [HTTPHost] and [PeekHTTP].
//
// The caller (netstack) compares the returned name with the names pinned to
// the destination IP and denies on any error. Every error from this package
// means "do not allow on the basis of this name"; only [ErrNeedMore] means
// "read more bytes (up to a cap) and ask again".
//
// # Strictness
//
// The parsers are deliberately stricter than typical servers: anything
// ambiguous (duplicate extensions, several server names, a non-host_name
// name type, bytes after the ClientHello inside its record, record versions
// changing between fragments, bare LF, obsolete line folding, whitespace
// before a header colon, two Host headers, a request target whose authority
// disagrees with Host) is rejected. Rejecting what a server would have
// accepted only costs a denied flow; accepting what a server would parse
// differently would allow domain fronting.
//
// Names are returned normalised: ASCII lower case, one trailing dot removed.
// SNI must be a DNS hostname (RFC 6066 forbids IP literals; anything that
// parses as an IPv4 number in its last label, or contains characters other
// than a-z 0-9 '-' '_' '.', yields [ErrInvalidSNI]). An HTTP Host may be an
// IP literal; it is returned without brackets in canonical form.
//
// # What the parse does not cover (the caller's job)
//
//   - Deadlines: [Peek] and [PeekHTTP] block in Read; set a read deadline on
//     the connection first.
//   - Replaying: Peek returns every byte it consumed; write them upstream
//     before splicing.
//   - Only the first ClientHello / first HTTP request is inspected. After a
//     TLS 1.3 HelloRetryRequest the client sends a second ClientHello that a
//     plain splice does not check (RFC 8446 forbids changing the SNI; the
//     server enforces it). An HTTP/1.1 keep-alive connection may carry later
//     requests with another Host, and "Upgrade: h2c" switches it to HTTP/2
//     with arbitrary :authority values: plain-HTTP Host checking is only
//     complete if the network terminates HTTP per request.
//   - Encrypted Client Hello: [ClientHelloInfo.ECH] reports the extension;
//     with real ECH the SNI is only the outer public name and the server
//     routes on the encrypted inner name. Browsers send GREASE ECH that is
//     indistinguishable on the wire. Refusing HTTPS/SVCB DNS records in the
//     resolver keeps clients from learning ECH configs.
package sniff
