package sniff

import (
	"errors"
	"fmt"
)

var (
	// ErrNeedMore means the bytes seen so far are a valid prefix but the
	// message is not complete: read more (up to a cap) and parse again.
	ErrNeedMore = errors.New("sniff: need more data")

	// ErrNotTLS means the data does not start with a TLS handshake record
	// of version TLS 1.0–1.3 (first byte not 22, or a bad record version;
	// SSLv2-compatible hellos are also reported as ErrNotTLS).
	ErrNotTLS = errors.New("sniff: not a TLS handshake record")

	// ErrNoSNI means a well-formed ClientHello without a server_name
	// extension (e.g. a client connecting to an IP address).
	ErrNoSNI = errors.New("sniff: ClientHello has no server_name")

	// ErrInvalidSNI means a well-formed ClientHello whose host_name is not
	// a valid DNS hostname: an IP literal, non-ASCII, empty labels, bad
	// characters, too long. Treat it like ErrNoSNI (deny).
	ErrInvalidSNI = errors.New("sniff: server_name is not a valid hostname")

	// ErrMalformed is wrapped by every structural parse error, TLS or HTTP.
	ErrMalformed = errors.New("sniff: malformed")

	// ErrTooLarge means the message does not fit the size cap.
	ErrTooLarge = errors.New("sniff: message exceeds size cap")

	// ErrNotHTTP means the data cannot start an HTTP/1.x request line.
	ErrNotHTTP = errors.New("sniff: not an HTTP/1.x request")

	// ErrHTTP2Cleartext means the HTTP/2 prior-knowledge connection
	// preface ("PRI * HTTP/2.0"); the caller should deny it because
	// per-stream :authority values cannot be checked by this package.
	ErrHTTP2Cleartext = errors.New("sniff: HTTP/2 cleartext (prior knowledge) preface")

	// ErrNoHost means an HTTP request without a usable Host (missing or
	// empty Host header and no authority in the request target).
	ErrNoHost = errors.New("sniff: HTTP request has no Host")

	// ErrDuplicateHost means more than one Host header field.
	ErrDuplicateHost = errors.New("sniff: HTTP request has more than one Host header")

	// ErrHostMismatch means an absolute-form or authority-form request
	// target whose host differs from the Host header.
	ErrHostMismatch = errors.New("sniff: request target authority disagrees with Host")

	// ErrObsFold means obsolete header line folding (a header line starting
	// with SP or HTAB). It also wraps ErrMalformed.
	ErrObsFold = fmt.Errorf("%w: obsolete header line folding", ErrMalformed)
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
