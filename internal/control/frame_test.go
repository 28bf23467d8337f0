package control

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.JSON(TypeJSON, Request{Op: OpExec, Exec: &Exec{Argv: []string{"echo", "ü"}}}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 200<<10)
	if err := w.Data(TypeStdout, big); err != nil {
		t.Fatal(err)
	}
	if err := w.Frame(TypeStdin, nil); err != nil {
		t.Fatal(err)
	}
	var req Request
	if err := ReadJSON(&buf, TypeJSON, &req); err != nil || req.Exec.Argv[1] != "ü" {
		t.Fatalf("ReadJSON: %v %+v", err, req)
	}
	var got []byte
	for len(got) < len(big) {
		typ, p, err := ReadFrame(&buf)
		if err != nil || typ != TypeStdout {
			t.Fatalf("data frame: %v %q", err, typ)
		}
		if len(p) > 64<<10 {
			t.Fatalf("Data wrote a %d-byte chunk", len(p))
		}
		got = append(got, p...)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("data corrupted")
	}
	typ, p, err := ReadFrame(&buf)
	if err != nil || typ != TypeStdin || len(p) != 0 {
		t.Fatalf("EOF frame: %v %q %d", err, typ, len(p))
	}
	if _, _, err := ReadFrame(&buf); err != io.EOF {
		t.Fatalf("end: %v, want io.EOF", err)
	}
}

// A hostile peer announcing a huge frame must not make the reader allocate it.
func TestFrameTooLarge(t *testing.T) {
	hdr := []byte{TypeStdout, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], MaxFrame+1)
	if _, _, err := ReadFrame(bytes.NewReader(hdr)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if err := NewWriter(io.Discard).Frame(TypeStdout, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("writer accepted an oversized frame: %v", err)
	}
}

func TestFrameTruncated(t *testing.T) {
	var buf bytes.Buffer
	_ = NewWriter(&buf).Frame(TypeStdout, []byte("hello"))
	b := buf.Bytes()[:7]
	if _, _, err := ReadFrame(bytes.NewReader(b)); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated payload: %v", err)
	}
	if err := ReadJSON(strings.NewReader(""), TypeJSON, new(Reply)); err != io.EOF {
		t.Fatalf("empty stream: %v", err)
	}
	var wrong bytes.Buffer
	_ = NewWriter(&wrong).Frame(TypeStdout, []byte("{}"))
	if err := ReadJSON(&wrong, TypeJSON, new(Reply)); err == nil {
		t.Fatal("ReadJSON accepted a frame of the wrong type")
	}
}

// Concurrent writers (stdout and stderr pumps) must never interleave the
// bytes of two frames.
func TestWriterConcurrent(t *testing.T) {
	pr, pw := io.Pipe()
	w := NewWriter(pw)
	var wg sync.WaitGroup
	for _, typ := range []byte{TypeStdout, TypeStderr} {
		wg.Go(func() {
			for range 200 {
				_ = w.Data(typ, bytes.Repeat([]byte{typ}, 1000))
			}
		})
	}
	go func() { wg.Wait(); pw.Close() }()
	n := 0
	for {
		typ, p, err := ReadFrame(pr)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, bytes.Repeat([]byte{typ}, 1000)) {
			t.Fatalf("frame %d of type %q has foreign bytes", n, typ)
		}
		n++
	}
	if n != 400 {
		t.Fatalf("%d frames, want 400", n)
	}
}

func TestBootParam(t *testing.T) {
	b := &Boot{Workspace: "/home/u/my project,with comma", UID: 1000, GID: 1000, User: "agent", Home: "/home/agent",
		Mounts: []Mount{{Tag: "ws", Path: "/w", Options: "access=any"}}, Port: "p"}
	p, err := EncodeBoot(b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(p, " \t\n\"") {
		t.Fatalf("parameter %q would break the kernel command line", p)
	}
	got, err := DecodeBoot("console=ttyS0 quiet " + p + " panic=-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Workspace != b.Workspace || got.Mounts[0].Options != "access=any" {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := DecodeBoot("console=ttyS0"); err == nil {
		t.Fatal("missing parameter accepted")
	}
	if _, err := DecodeBoot(BootParam + "=!!!"); err == nil {
		t.Fatal("garbage parameter accepted")
	}
}

// FuzzReadFrame: arbitrary bytes from a peer never panic the reader or make
// it return a payload over the limit.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	_ = w.JSON(TypeJSON, Request{Op: OpHello, Hello: &Hello{Version: "x"}})
	_ = w.Frame(TypeStdin, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{TypeExit, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			_, p, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(p) > MaxFrame {
				t.Fatalf("payload of %d bytes", len(p))
			}
			var req Request
			_ = ReadJSON(bytes.NewReader(append([]byte{TypeJSON, 0, 0, 0, byte(len(p) & 0x7f)}, p[:min(len(p), 0x7f)]...)), TypeJSON, &req)
		}
	})
}
