package acp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// corpus returns the lines of testdata/*.jsonl, and their files' bytes.
func corpus(t testing.TB) (lines [][]byte, files map[string][]byte) {
	t.Helper()
	names, err := filepath.Glob("testdata/*.jsonl")
	if err != nil || len(names) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	files = map[string][]byte{}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
		for l := range bytes.Lines(b) {
			lines = append(lines, bytes.TrimSuffix(l, []byte("\n")))
		}
	}
	return lines, files
}

func readAll(t *testing.T, r *Reader) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		l, err := r.ReadLine()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ReadLine: %v", err)
		}
		out = append(out, l)
	}
}

// The relay's core promise: what goes in comes out, byte for byte.
func TestRoundTripCorpus(t *testing.T) {
	_, files := corpus(t)
	for name, in := range files {
		for _, src := range []struct {
			name string
			r    io.Reader
		}{
			{"whole", bytes.NewReader(in)},
			{"one-byte-reads", iotest.OneByteReader(bytes.NewReader(in))},
			{"half-reads", iotest.HalfReader(bytes.NewReader(in))},
		} {
			t.Run(filepath.Base(name)+"/"+src.name, func(t *testing.T) {
				var out bytes.Buffer
				w := NewWriter(&out)
				r := NewReader(src.r, 0)
				for _, l := range readAll(t, r) {
					if _, err := Parse(l); err != nil {
						t.Errorf("Parse(%s): %v", l, err)
					}
					if err := w.WriteLine(l); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(out.Bytes(), in) {
					t.Errorf("round trip changed the bytes:\n in: %q\nout: %q", in, out.Bytes())
				}
			})
		}
	}
}

// The same through the long-line path: a 16-byte buffer makes every corpus
// line longer than the buffer.
func TestRoundTripTinyBuffer(t *testing.T) {
	_, files := corpus(t)
	for name, in := range files {
		r := newReaderSize(bytes.NewReader(in), 0, 16)
		var out bytes.Buffer
		w := NewWriter(&out)
		for _, l := range readAll(t, r) {
			if err := w.WriteLine(l); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Errorf("%s: round trip changed the bytes", name)
		}
	}
}

func TestReaderLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty input", "", nil},
		{"one line", "{}\n", []string{"{}"}},
		{"no final newline", "{}\n{\"a\":1}", []string{"{}", `{"a":1}`}},
		{"crlf", "{}\r\n[]\r\n", []string{"{}", "[]"}},
		{"only one cr dropped", "{}\r\r\n", []string{"{}\r"}},
		{"cr at eof", "{}\r", []string{"{}"}},
		{"blank lines skipped", "\n\n  \t\r\n{}\n \n\r\n", []string{"{}"}},
		{"blank last line", "{}\n   ", []string{"{}"}},
		{"inner spaces kept", "  { }  \n", []string{"  { }  "}},
		{"form feed is not blank", "\f\n", []string{"\f"}},
		{"nul bytes kept", "\x00\n", []string{"\x00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, bufSize := range []int{16, readBufSize} {
				var got []string
				for _, l := range readAll(t, newReaderSize(strings.NewReader(tt.in), 0, bufSize)) {
					got = append(got, string(l))
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
					t.Errorf("buf %d: got %q, want %q", bufSize, got, tt.want)
				}
			}
		})
	}
}

func TestReaderReturnsOwnedSlices(t *testing.T) {
	r := NewReader(strings.NewReader("{\"a\":1}\n{\"b\":2}\n"), 0)
	a, _ := r.ReadLine()
	b, _ := r.ReadLine()
	if string(a) != `{"a":1}` || string(b) != `{"b":2}` {
		t.Fatalf("the first line was overwritten by the second: %q %q", a, b)
	}
}

// A line over the limit is skipped, reported, and the next line still comes.
func TestReaderLineTooLong(t *testing.T) {
	const limit = 100
	long := `{"jsonrpc":"2.0","id":42,"method":"session/prompt","params":{"text":"` + strings.Repeat("x", 5000) + `"}}`
	for _, bufSize := range []int{16, 64, readBufSize} {
		for _, sep := range []string{"\n", "\r\n"} {
			t.Run(fmt.Sprintf("buf%d/%q", bufSize, sep), func(t *testing.T) {
				in := long + sep + `{"jsonrpc":"2.0","method":"next"}` + sep + long
				r := newReaderSize(strings.NewReader(in), limit, bufSize)

				_, err := r.ReadLine()
				var tl *LineTooLongError
				if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &tl) {
					t.Fatalf("got %v, want a LineTooLongError", err)
				}
				if want := int64(len(long) + len(sep) - 1); tl.Size != want || tl.Limit != limit {
					t.Errorf("Size %d Limit %d, want %d %d", tl.Size, tl.Limit, want, limit)
				}
				if !strings.HasPrefix(long, string(tl.Head)) || len(tl.Head) == 0 {
					t.Errorf("Head %q is not a prefix of the line", tl.Head)
				}
				if id, method, ok := tl.Peek(); !ok || id != IntID(42) || method != "session/prompt" {
					t.Errorf("Peek = %v %q %v", id, method, ok)
				}

				l, err := r.ReadLine()
				if err != nil || string(l) != `{"jsonrpc":"2.0","method":"next"}` {
					t.Fatalf("after the long line: %q, %v", l, err)
				}
				// The last long line has no newline: error, then EOF.
				if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("long line at EOF: %v", err)
				}
				if _, err := r.ReadLine(); err != io.EOF {
					t.Fatalf("after it: %v, want EOF", err)
				}
			})
		}
	}
}

func TestReaderLimitIsExact(t *testing.T) {
	for _, bufSize := range []int{16, readBufSize} {
		at := strings.Repeat("a", 40)
		r := newReaderSize(strings.NewReader(at+"\n"+at+"\r\n"+at+"b\n"+at+"b\r\n"), 40, bufSize)
		for i, wantErr := range []bool{false, false, true, true} {
			l, err := r.ReadLine()
			if gotErr := errors.Is(err, ErrLineTooLong); gotErr != wantErr || (!wantErr && string(l) != at) {
				t.Errorf("buf %d line %d: %q, %v", bufSize, i, l, err)
			}
		}
	}
}

func TestPeekHead(t *testing.T) {
	tests := []struct {
		head       string
		id, method string
		ok         bool
	}{
		{`{"jsonrpc":"2.0","id":7,"method":"a","params":{"x":"yyy`, "7", "a", true},
		{`{"jsonrpc":"2.0","id":"s\u0031","method":"a\/b","par`, `"s\u0031"`, "a/b", true},
		{`{"jsonrpc":"2.0","method":"a","id":12`, "null", "a", false}, // 12 may be 123
		{`{"params":{"id":1,"text":"`, "null", "", false},
		{`[{"id":1}`, "null", "", false},
		{`{"id":{"x":1},"method":"m"`, "null", "m", false},
	}
	for _, tt := range tests {
		id, method, ok := (&LineTooLongError{Head: []byte(tt.head)}).Peek()
		if id.String() != tt.id || method != tt.method || ok != tt.ok {
			t.Errorf("Peek(%s) = %v %q %v, want %s %q %v", tt.head, id, method, ok, tt.id, tt.method, tt.ok)
		}
	}
}

// lineSource produces, without holding it in memory, a message whose
// params.text is n bytes, then a small message.
type lineSource struct {
	head, tail []byte
	n, off     int // filler bytes left, and written
}

func newLineSource(n int) *lineSource {
	return &lineSource{
		head: []byte(`{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"text":"`),
		tail: []byte("\"}}\n{\"jsonrpc\":\"2.0\",\"method\":\"after\"}\n"),
		n:    n,
	}
}

func (s *lineSource) Read(p []byte) (int, error) {
	switch {
	case len(s.head) > 0:
		k := copy(p, s.head)
		s.head = s.head[k:]
		return k, nil
	case s.n > 0:
		k := min(len(p), s.n)
		for i := range p[:k] {
			p[i] = 'a' + byte((s.off+i)%26)
		}
		s.n -= k
		s.off += k
		return k, nil
	case len(s.tail) > 0:
		k := copy(p, s.tail)
		s.tail = s.tail[k:]
		return k, nil
	}
	return 0, io.EOF
}

// A 64 MiB line must cost about twice its size.
//
// Measured (Go 1.26, linux/amd64, 64 KiB buffer): reading a 64 MiB + 71 B
// line allocates 2.06x the line's size (64 MiB of slabs, under 4 MiB of
// unused capacity in the last one, and the 64 MiB result); after ReadLine
// returns, 1.00x stays live. Parse of that line allocates under 1 KiB: it
// slices, never copies. For comparison, on the same input: appending
// ReadSlice fragments to one slice allocates 5.7x, bufio.Scanner with a
// 65 MiB limit plus the copy needed to keep the token 4.0x, and
// bufio.Reader.ReadBytes 2.0x (but without any limit).
// TotalAlloc counts every byte allocated, so it bounds the peak heap growth
// from above.
func TestReaderLargeLineMemory(t *testing.T) {
	const n = 64 << 20
	src := newLineSource(n)
	r := NewReader(src, 0)

	var before, after, live runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	line, err := r.ReadLine()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&live)

	size := float64(len(line))
	allocated := float64(after.TotalAlloc - before.TotalAlloc)
	retained := float64(live.HeapAlloc) - float64(before.HeapAlloc)
	t.Logf("line %d bytes: allocated %.2fx its size while reading, %.2fx live afterwards", len(line), allocated/size, retained/size)
	// The requirement is < 3x; 2.5x also catches a regression to doubling
	// slabs (3.0x).
	if allocated > 2.5*size {
		t.Errorf("reading a %d-byte line allocated %.0f bytes (%.2fx); want < 2.5x", len(line), allocated, allocated/size)
	}
	if retained > 1.2*size {
		t.Errorf("%.2fx of the line stays live after ReadLine; want about 1x", retained/size)
	}

	if !bytes.HasPrefix(line, []byte(`{"jsonrpc":"2.0","id":1,`)) || !bytes.HasSuffix(line, []byte(`"}}`)) || len(line) != n+71 {
		t.Fatalf("line corrupted: len %d, ends %q", len(line), line[len(line)-10:])
	}
	for i, c := range line[68 : 68+n] {
		if c != 'a'+byte(i%26) {
			t.Fatalf("byte %d of the text is %q", i, c)
		}
	}

	runtime.ReadMemStats(&before)
	m, err := Parse(line)
	runtime.ReadMemStats(&after)
	if err != nil || m.Kind != KindRequest || len(m.Params) != n+11 {
		t.Fatalf("Parse: %v %v %d", m.Kind, err, len(m.Params))
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 64<<10 {
		t.Errorf("Parse of a 64 MiB line allocated %d bytes; it should only slice", a)
	}
	runtime.KeepAlive(line)

	next, err := r.ReadLine()
	if err != nil || string(next) != `{"jsonrpc":"2.0","method":"after"}` {
		t.Fatalf("line after the big one: %q, %v", next, err)
	}
}

// chopWriter writes in tiny pieces and yields between them, so that lines
// from unsynchronized writers would interleave.
type chopWriter struct {
	mu  sync.Mutex // guards buf only; WriteLine's own lock is under test
	buf bytes.Buffer
}

func (c *chopWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i += 7 {
		c.mu.Lock()
		c.buf.Write(p[i:min(i+7, len(p))])
		c.mu.Unlock()
		runtime.Gosched()
	}
	return len(p), nil
}

func TestWriterConcurrent(t *testing.T) {
	const writers, perWriter = 16, 40
	cw := &chopWriter{}
	w := NewWriter(cw)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				size := 10 + (g*perWriter+i)%200
				if i == 0 {
					size = smallWrite + 1000 // the two-Write path
				}
				msg, err := NewNotification("w", map[string]any{"g": g, "i": i, "pad": strings.Repeat("p", size)})
				if err != nil {
					t.Error(err)
					return
				}
				if err := w.WriteLine(msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	seen := map[string]bool{}
	r := NewReader(&cw.buf, 0)
	for _, l := range readAll(t, r) {
		m, err := Parse(l)
		if err != nil {
			t.Fatalf("interleaved line %.80q: %v", l, err)
		}
		var p struct {
			G, I int
			Pad  string
		}
		if err := UnmarshalStrict(m.Params, &p); err != nil {
			t.Fatal(err)
		}
		want := 10 + (p.G*perWriter+p.I)%200
		if p.I == 0 {
			want = smallWrite + 1000
		}
		if len(p.Pad) != want || strings.Trim(p.Pad, "p") != "" {
			t.Fatalf("line g=%d i=%d damaged", p.G, p.I)
		}
		key := fmt.Sprint(p.G, "/", p.I)
		if seen[key] {
			t.Fatalf("line %s twice", key)
		}
		seen[key] = true
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("got %d lines, want %d", len(seen), writers*perWriter)
	}
}

func TestWriterRefuses(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	if err := w.WriteLine([]byte("{\"a\":\n1}")); !errors.Is(err, ErrNewline) {
		t.Errorf("newline: %v", err)
	}
	if err := w.WriteLine(nil); !errors.Is(err, ErrEmptyMessage) {
		t.Errorf("empty: %v", err)
	}
	if b.Len() != 0 {
		t.Errorf("refused messages were written: %q", b.Bytes())
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("broken pipe")
	}
	f.n--
	return len(p), nil
}

func TestWriterErrorIsSticky(t *testing.T) {
	fw := &failWriter{n: 1}
	w := NewWriter(fw)
	if err := w.WriteLine([]byte("{}")); err != nil {
		t.Fatal(err)
	}
	err := w.WriteLine([]byte("{}"))
	if err == nil {
		t.Fatal("no error from a failing writer")
	}
	fw.n = 100 // the writer recovers, but the stream may hold half a line
	if err2 := w.WriteLine([]byte("{}")); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("after a failed write: %v, want %v", err2, err)
	}
}

func TestReaderUnderlyingError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("{}\n{\"partial\""), iotest.ErrReader(boom)), 0)
	if l, err := r.ReadLine(); err != nil || string(l) != "{}" {
		t.Fatalf("%q %v", l, err)
	}
	if _, err := r.ReadLine(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if _, err := r.ReadLine(); !errors.Is(err, boom) {
		t.Fatalf("error not sticky: %v", err)
	}
}
