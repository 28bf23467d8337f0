package acp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultMaxLine is the line limit a [Reader] uses when given 0: 64 MiB of
// payload (a large pasted prompt or a big file read) plus 1 MiB of envelope.
const DefaultMaxLine = 64<<20 + 1<<20

// ErrLineTooLong is wrapped by the error [Reader.ReadLine] returns for a line
// longer than the Reader's limit; see [LineTooLongError].
var ErrLineTooLong = errors.New("acp: line too long")

// headSize is how many leading bytes of an over-long line a LineTooLongError
// keeps. JSON-RPC libraries write jsonrpc, id and method before params, so this
// is normally enough to answer the request.
const headSize = 4 << 10

// LineTooLongError reports a line longer than a [Reader]'s limit. The Reader
// has already skipped the rest of that line when it returns this error, so the
// next ReadLine returns the next line.
type LineTooLongError struct {
	Limit int    // the Reader's limit
	Size  int64  // length of the skipped line, not counting its "\n" (but a "\r" before it)
	Head  []byte // the line's first bytes (at most 4 KiB), for diagnostics and Peek
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("acp: line of %d bytes exceeds the limit of %d bytes", e.Size, e.Limit)
}

// Unwrap returns [ErrLineTooLong].
func (e *LineTooLongError) Unwrap() error { return ErrLineTooLong }

// Peek reads the id and method of the skipped message from Head, best effort:
// it finds them only if they precede the first value that Head cuts short, and
// it cannot see a duplicate member beyond Head. hasID reports whether an id
// was read, so a request can still be answered (with an error) and its sender
// does not hang.
func (e *LineTooLongError) Peek() (id ID, method string, hasID bool) {
	_ = scanObject(e.Head, func(m member) bool {
		switch m.name {
		case "id":
			if v, err := ParseID(e.Head[m.valStart:m.valEnd]); err == nil {
				id, hasID = v, true
			}
		case "method":
			if s, ok := decodeString(e.Head[m.valStart:m.valEnd]); ok {
				method = s
			}
		}
		return true
	})
	return id, method, hasID
}

// readBufSize is the Reader's buffer. A line that fits is copied out once; a
// longer one is gathered in slabs (see ReadLine).
const readBufSize = 64 << 10

// maxSlab bounds the slabs a long line is gathered in, and with it the unused
// capacity of the last slab.
const maxSlab = 4 << 20

// Reader reads newline-delimited messages. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	err     error // sticky: io.EOF or the underlying reader's error
}

// NewReader returns a Reader reading from r that refuses lines longer than
// maxLine bytes (not counting the "\n" nor a "\r" before it). maxLine <= 0
// means [DefaultMaxLine].
func NewReader(r io.Reader, maxLine int) *Reader {
	return newReaderSize(r, maxLine, readBufSize)
}

// newReaderSize lets tests use a tiny buffer, so that short inputs exercise
// the long-line path.
func newReaderSize(r io.Reader, maxLine, bufSize int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Reader{br: bufio.NewReaderSize(r, bufSize), maxLine: maxLine}
}

// ReadLine returns the next non-blank line without its "\n" and without one
// "\r" before it. Blank lines (only spaces, tabs and "\r") are skipped. A last
// line not ended by "\n" is returned at EOF; after it ReadLine returns io.EOF.
//
// The returned slice is newly allocated and belongs to the caller.
//
// A line longer than the limit yields a *[LineTooLongError] (wrapping
// [ErrLineTooLong]) once the rest of that line has been skipped; reading may
// continue. Any other error is the underlying reader's, returned after the
// lines before it; a partial line before that error is dropped.
//
// Memory: a line that fits the 64 KiB buffer costs one allocation of its own
// size. A longer one is gathered in slabs of up to 4 MiB and copied once into
// an exactly sized slice, so reading an n-byte line allocates about 2n bytes
// (n + at most one slab for the slabs, n for the result), and the slabs are
// garbage when ReadLine returns. TestReaderLargeLineMemory measures it.
func (r *Reader) ReadLine() ([]byte, error) {
	for {
		line, err := r.readRaw()
		if err != nil {
			return nil, err
		}
		if line == nil { // blank
			continue
		}
		return line, nil
	}
}

// readRaw reads one line. It returns (nil, nil) for a blank line.
func (r *Reader) readRaw() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	var (
		slabs   [][]byte // full or partly filled slabs of a long line
		total   int64    // bytes of the line so far
		tooLong *LineTooLongError
	)
	for {
		frag, err := r.br.ReadSlice('\n')
		eol := err == nil
		if eol {
			frag = frag[:len(frag)-1]
		}
		if err != nil && err != bufio.ErrBufferFull {
			r.err = err
			if err != io.EOF {
				return nil, err
			}
		}
		if (eol || err == io.EOF) && len(slabs) == 0 && tooLong == nil {
			// Fast path: the whole line is in the buffer.
			if len(frag) == 0 && err == io.EOF {
				return nil, io.EOF
			}
			return finish(frag, r.maxLine, 0, nil)
		}
		total += int64(len(frag))
		if tooLong == nil && total > int64(r.maxLine)+1 { // +1: a "\r" may end the line
			tooLong = &LineTooLongError{Limit: r.maxLine, Head: head(slabs, frag)}
			slabs = nil
		}
		if tooLong == nil {
			slabs = appendSlab(slabs, frag)
		}
		if eol || err == io.EOF {
			if tooLong != nil {
				tooLong.Size = total
				return nil, tooLong
			}
			return finish(nil, r.maxLine, total, slabs)
		}
	}
}

// finish builds the line from frag (fast path) or from slabs holding n bytes,
// drops one trailing "\r", and applies the limit and the blank-line rule.
func finish(frag []byte, maxLine int, n int64, slabs [][]byte) ([]byte, error) {
	var line []byte
	if slabs == nil {
		line = frag
	} else {
		line = make([]byte, 0, n)
		for _, s := range slabs {
			line = append(line, s...)
		}
	}
	size := len(line)
	if size > 0 && line[size-1] == '\r' {
		line = line[:size-1]
	}
	if len(line) > maxLine {
		return nil, &LineTooLongError{Limit: maxLine, Size: int64(size), Head: bytes.Clone(line[:min(len(line), headSize)])}
	}
	if blank(line) {
		return nil, nil
	}
	if slabs == nil {
		return bytes.Clone(line), nil
	}
	return line, nil
}

// appendSlab appends frag to the last slab, starting a new slab when it is
// full. Slabs double from 128 KiB up to maxSlab.
func appendSlab(slabs [][]byte, frag []byte) [][]byte {
	for len(frag) > 0 {
		if len(slabs) == 0 || len(slabs[len(slabs)-1]) == cap(slabs[len(slabs)-1]) {
			size := 2 * readBufSize
			if len(slabs) > 0 {
				size = min(2*cap(slabs[len(slabs)-1]), maxSlab)
			}
			slabs = append(slabs, make([]byte, 0, size))
		}
		last := &slabs[len(slabs)-1]
		n := min(len(frag), cap(*last)-len(*last))
		*last = append(*last, frag[:n]...)
		frag = frag[n:]
	}
	return slabs
}

// head copies the first headSize bytes of the slabs followed by frag.
func head(slabs [][]byte, frag []byte) []byte {
	h := make([]byte, 0, headSize)
	for _, s := range slabs {
		h = append(h, s[:min(len(s), headSize-len(h))]...)
	}
	return append(h, frag[:min(len(frag), headSize-len(h))]...)
}

// blank reports whether line holds only JSON whitespace other than "\n".
func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// ErrNewline is returned by [Writer.WriteLine] for a message containing a raw
// newline byte, which would split it into two lines on the wire.
var ErrNewline = errors.New("acp: message contains a newline")

// ErrEmptyMessage is returned by [Writer.WriteLine] for an empty message.
var ErrEmptyMessage = errors.New("acp: empty message")

// smallWrite is the size up to which WriteLine copies the message and its
// newline into one buffer for a single Write; larger messages are written
// with two Writes (still under the lock) rather than copied.
const smallWrite = 64 << 10

// Writer writes newline-delimited messages. It is safe for concurrent use:
// each WriteLine writes its whole line before another starts.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	err error // sticky: after a failed write the stream may hold a partial line
}

// NewWriter returns a Writer writing to w. The Writer does not buffer: each
// line is handed to w before WriteLine returns.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// WriteLine writes msg followed by "\n". It refuses an empty msg and a msg
// containing "\n" (a raw newline in a JSON text is only ever whitespace, so a
// compact encoding never has one). After a write error every later call
// returns that error: the peer may have received part of a line, and anything
// written after it would be glued to that part.
func (w *Writer) WriteLine(msg []byte) error {
	if len(msg) == 0 {
		return ErrEmptyMessage
	}
	if bytes.IndexByte(msg, '\n') >= 0 {
		return ErrNewline
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if len(msg) <= smallWrite {
		w.buf = append(append(w.buf[:0], msg...), '\n')
		_, w.err = w.w.Write(w.buf)
	} else if _, w.err = w.w.Write(msg); w.err == nil {
		_, w.err = w.w.Write([]byte{'\n'})
	}
	if w.err != nil {
		w.err = fmt.Errorf("acp: write: %w", w.err)
	}
	return w.err
}
