package acp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// readerModel is what a Reader must return for data: per "\n"-separated
// piece, one "\r" dropped, blank pieces skipped, over-long ones reported.
type modelLine struct {
	line    []byte
	tooLong bool
	size    int
}

func readerModel(data []byte, maxLine int) []modelLine {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	var out []modelLine
	for _, piece := range bytes.Split(data, []byte("\n")) {
		line := bytes.TrimSuffix(piece, []byte("\r"))
		switch {
		case len(line) > maxLine:
			out = append(out, modelLine{tooLong: true, size: len(piece)})
		case !blank(line):
			out = append(out, modelLine{line: line})
		}
	}
	return out
}

func FuzzReader(f *testing.F) {
	_, files := corpus(f)
	for _, b := range files {
		f.Add(b, uint16(0), false)
		f.Add(b, uint16(100), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, tiny bool) {
		maxLine := int(limit % 300) // 0: the default
		bufSize := readBufSize
		if tiny {
			bufSize = 16
		}
		want := readerModel(data, maxLine)
		r := newReaderSize(iotest.HalfReader(bytes.NewReader(data)), maxLine, bufSize)
		for i := 0; ; i++ {
			l, err := r.ReadLine()
			if err == io.EOF {
				if i != len(want) {
					t.Fatalf("EOF after %d lines, want %d", i, len(want))
				}
				return
			}
			if i >= len(want) {
				t.Fatalf("extra line %d: %q, %v", i, l, err)
			}
			if bytes.IndexByte(l, '\n') >= 0 {
				t.Fatalf("line %d holds a newline: %q", i, l)
			}
			var tl *LineTooLongError
			switch {
			case want[i].tooLong:
				if !errors.As(err, &tl) || tl.Size != int64(want[i].size) || l != nil {
					t.Fatalf("line %d: %q, %v; want too long (%d bytes)", i, l, err, want[i].size)
				}
				tl.Peek() // must not panic on any head
			case err != nil || !bytes.Equal(l, want[i].line):
				t.Fatalf("line %d: %q, %v; want %q", i, l, err, want[i].line)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	lines, _ := corpus(f)
	for _, l := range lines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := Parse(line)
		if m == nil || !bytes.Equal(m.Raw, line) {
			t.Fatalf("Parse returned %v", m)
		}
		if err != nil {
			var me *MessageError
			if !errors.As(err, &me) || m.Kind != KindInvalid || me.ID != m.ID ||
				(!errors.Is(err, ErrNotJSON) && !errors.Is(err, ErrInvalidRequest)) {
				t.Fatalf("bad error %#v for kind %v", err, m.Kind)
			}
			return
		}
		if !json.Valid(line) || m.Kind == KindInvalid {
			t.Fatalf("accepted invalid %q as %v", line, m.Kind)
		}

		// encoding/json (case-sensitive map keys) must read the same
		// members: no parser differential on what Parse accepted.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(line, &top); err != nil {
			t.Fatalf("encoding/json refuses what Parse accepted: %v", err)
		}
		if raw, ok := top["method"]; ok {
			var s string
			if json.Unmarshal(raw, &s) != nil || s != m.Method {
				t.Fatalf("method: Parse %q, encoding/json %s", m.Method, raw)
			}
		}
		if raw, ok := top["id"]; ok {
			if id, err := ParseID(raw); err != nil || id != m.ID {
				t.Fatalf("id: Parse %s, encoding/json %s", m.ID, raw)
			}
		}

		out, err := RewriteID(line, StringID("x"))
		if m.Kind == KindNotification {
			if !errors.Is(err, ErrNoID) {
				t.Fatalf("RewriteID of a notification: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("RewriteID: %v", err)
		}
		checkOnlyIDChanged(t, line, out, m.idStart, m.idEnd, StringID("x"))
		m2, err := Parse(out)
		if err != nil || m2.Kind != m.Kind || m2.Method != m.Method || m2.ID != StringID("x") {
			t.Fatalf("after RewriteID: %v %q %s, %v", m2.Kind, m2.Method, m2.ID, err)
		}
		if with, err := m.WithID(StringID("x")); err != nil || !bytes.Equal(with, out) {
			t.Fatalf("WithID differs from RewriteID")
		}
		// UnmarshalStrict must not panic on anything Parse accepts.
		var v any
		_ = UnmarshalStrict(line, &v)
	})
}
