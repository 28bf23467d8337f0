package sniff

import (
	"errors"
	"fmt"
	"io"
)

// DefaultPeekMax is the byte cap used by Peek and PeekHTTP when max <= 0.
const DefaultPeekMax = 16 << 10

// Peek reads from r until the TLS ClientHello at the start of the stream is
// complete (or clearly not one), at most max bytes (<= 0 means
// DefaultPeekMax). It returns every byte it read, which the caller must
// replay upstream; the prefix may extend past info.Len if the client sent
// more in the same segment.
//
// Peek never calls Read again once the bytes read so far decide the
// outcome, so it does not block a client that is waiting for the server's
// reply. It does block while the hello is incomplete: set a read deadline
// on the connection first.
//
// Errors are those of ParseClientHello (info is non-nil with ErrNoSNI and
// ErrInvalidSNI), ErrTooLarge if max bytes do not hold the hello,
// io.ErrUnexpectedEOF if the stream ends mid-hello (io.EOF if before any
// byte), or the reader's error.
func Peek(r io.Reader, max int) (prefix []byte, info *ClientHelloInfo, err error) {
	return peek(r, max, func(b []byte, max int) (*ClientHelloInfo, error) {
		info, err := ParseClientHello(b)
		if err == ErrNeedMore && len(b) >= max {
			err = fmt.Errorf("%w: no complete ClientHello in the first %d bytes", ErrTooLarge, max)
		}
		return info, err
	})
}

// PeekHTTP is Peek for a plain HTTP/1.x request head: it reads until
// ParseHTTPRequest(prefix, max) is decided. max (<= 0 means
// DefaultPeekMax) caps the request line plus headers.
func PeekHTTP(r io.Reader, max int) (prefix []byte, info *HTTPRequestInfo, err error) {
	return peek(r, max, ParseHTTPRequest)
}

func peek[T any](r io.Reader, max int, parse func([]byte, int) (T, error)) ([]byte, T, error) {
	if max <= 0 {
		max = DefaultPeekMax
	}
	var zero T
	buf := make([]byte, 0, min(max, 2048))
	empty := 0
	for {
		v, err := parse(buf, max)
		if !errors.Is(err, ErrNeedMore) {
			return buf, v, err
		}
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), max))
			copy(nb, buf)
			buf = nb
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		if n < 0 || n > cap(buf)-len(buf) {
			return buf, zero, errors.New("sniff: reader returned an invalid count")
		}
		buf = buf[:len(buf)+n]
		if rerr != nil {
			if n > 0 {
				if v, err := parse(buf, max); !errors.Is(err, ErrNeedMore) {
					return buf, v, err
				}
			}
			if rerr == io.EOF && len(buf) > 0 {
				rerr = io.ErrUnexpectedEOF
			}
			return buf, zero, rerr
		}
		if n == 0 {
			if empty++; empty >= 100 {
				return buf, zero, io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
}
