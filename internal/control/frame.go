// Package control is the wire protocol between the host and the guest's PID 1
// over the VM's control channel (one virtio-serial port, multiplexed with
// yamux), and between acp-sandbox clients and the per-sandbox supervisor.
//
// Every stream carries frames: one type byte, a 4-byte big-endian length and
// the payload. A stream starts with a JSON request frame naming the operation;
// what follows depends on the operation (see Exec). Frames are small and
// bounded (MaxFrame), so a hostile peer cannot make the reader allocate
// without limit.
//
// Trust: the host never trusts what the guest sends. Nothing in a guest reply
// can make the host open a file, a port or a process; the host only copies
// guest output to the user's terminal and reads exit statuses.
package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Frame types.
const (
	TypeJSON   byte = 'J' // request or reply header (JSON)
	TypeStdin  byte = 'I' // host → guest: stdin bytes; empty payload = EOF
	TypeStdout byte = 'O' // guest → host: stdout (or PTY) bytes
	TypeStderr byte = 'E' // guest → host: stderr bytes
	TypeResize byte = 'W' // host → guest: Winsize JSON
	TypeSignal byte = 'S' // host → guest: signal number, 4 bytes big-endian
	TypeExit   byte = 'X' // guest → host: ExitStatus JSON; last frame of an exec
	TypeData   byte = 'D' // host → guest: file contents following a Setup
)

// MaxFrame bounds one frame's payload. Data is chunked below it.
const MaxFrame = 4 << 20

// ErrFrameTooLarge is returned for a frame over MaxFrame.
var ErrFrameTooLarge = errors.New("control: frame exceeds 4 MiB limit")

// ReadFrame reads one frame. It reads exactly the frame's bytes, so the
// stream can be handed to a raw byte splice after it.
func ReadFrame(r io.Reader) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, ErrFrameTooLarge
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

// Writer writes frames; it is safe for concurrent use, so stdout and stderr
// pumps can share one stream without interleaving frame bytes. It reuses
// one buffer: a 64 MiB stream through it costs no garbage per frame.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewWriter returns a frame writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Frame writes one frame with the given payload.
func (fw *Writer) Frame(typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return ErrFrameTooLarge
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	n := 5 + len(payload)
	if cap(fw.buf) < n {
		fw.buf = make([]byte, n)
	}
	buf := fw.buf[:n]
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := fw.w.Write(buf)
	if n > 128<<10 {
		fw.buf = nil // keep only small buffers around
	}
	return err
}

// JSON writes v as a frame of type typ.
func (fw *Writer) JSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fw.Frame(typ, b)
}

// Data writes p as one or more frames of type typ, each below MaxFrame.
func (fw *Writer) Data(typ byte, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), 64<<10)
		if err := fw.Frame(typ, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// ReadJSON reads one frame that must be of type typ and decodes it into v.
func ReadJSON(r io.Reader, typ byte, v any) error {
	t, p, err := ReadFrame(r)
	if err != nil {
		return err
	}
	if t != typ {
		return fmt.Errorf("control: expected frame %q, got %q", typ, t)
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("control: bad %q frame: %w", typ, err)
	}
	return nil
}

// StreamWriter adapts a frame writer to io.Writer for one data type.
type StreamWriter struct {
	W    *Writer
	Type byte
}

func (s StreamWriter) Write(p []byte) (int, error) {
	if err := s.W.Data(s.Type, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
