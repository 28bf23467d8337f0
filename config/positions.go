package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Pos is a place in a file: 1-based line and 1-based byte column, as Go's
// compiler and BurntSushi/toml count them. The zero Pos is unknown.
type Pos struct {
	Line, Col int
}

// positions says where each key and value of a TOML document is written.
// BurntSushi/toml parses and types the document but keeps key positions to
// itself (MetaData has none) and has none at all for array elements, so this
// small scanner walks the same text again. It runs only on text the library
// has accepted, so it follows the grammar without reporting errors; on
// anything unexpected it stops, and lookups fall back to an enclosing
// position (never a wrong line).
type positions struct {
	keys map[string]Pos // path → where its key (or table header) is written
	vals map[string]Pos // path → where its value starts; array elements too
}

// at returns where the value at p is written, else where its key is, else
// the nearest enclosing table's position.
func (ps *positions) at(p path) Pos {
	for ; len(p) > 0; p = p[:len(p)-1] {
		s := p.String()
		if pos, ok := ps.vals[s]; ok {
			return pos
		}
		if pos, ok := ps.keys[s]; ok {
			return pos
		}
	}
	return Pos{}
}

// keyAt returns where the key of p is written (for unknown and misplaced
// keys), else what at returns.
func (ps *positions) keyAt(p path) Pos {
	if pos, ok := ps.keys[p.String()]; ok {
		return pos
	}
	return ps.at(p)
}

// scanPositions indexes the keys and values of src.
func scanPositions(src string) *positions {
	sc := &scanner{
		src:    src,
		line:   1,
		ps:     &positions{keys: map[string]Pos{}, vals: map[string]Pos{}},
		arrays: map[string]int{},
	}
	sc.document()
	return sc.ps
}

type scanner struct {
	src       string
	i         int
	line      int
	lineStart int // offset of the current line's first byte
	ps        *positions
	table     path           // the current [table] or [[array]] element
	arrays    map[string]int // array-of-tables path → elements seen so far
	stop      bool           // something unexpected: index no further
}

func (sc *scanner) pos() Pos { return Pos{Line: sc.line, Col: sc.i - sc.lineStart + 1} }

func (sc *scanner) eof() bool { return sc.stop || sc.i >= len(sc.src) }

func (sc *scanner) peek() byte {
	if sc.eof() {
		return 0
	}
	return sc.src[sc.i]
}

func (sc *scanner) peekAt(n int) byte {
	if sc.stop || sc.i+n >= len(sc.src) {
		return 0
	}
	return sc.src[sc.i+n]
}

// next consumes one byte, counting lines.
func (sc *scanner) next() {
	if sc.eof() {
		return
	}
	if sc.src[sc.i] == '\n' {
		sc.line++
		sc.lineStart = sc.i + 1
	}
	sc.i++
}

func (sc *scanner) skipSpace() {
	for c := sc.peek(); c == ' ' || c == '\t'; c = sc.peek() {
		sc.next()
	}
}

func (sc *scanner) skipComment() {
	if sc.peek() != '#' {
		return
	}
	for !sc.eof() && sc.peek() != '\n' {
		sc.next()
	}
}

// skipBlank skips spaces, newlines and comments (between array elements,
// and between top-level statements).
func (sc *scanner) skipBlank() {
	for !sc.eof() {
		switch sc.peek() {
		case ' ', '\t', '\r', '\n':
			sc.next()
		case '#':
			sc.skipComment()
		default:
			return
		}
	}
}

func (sc *scanner) document() {
	for {
		sc.skipBlank()
		if sc.eof() {
			return
		}
		if sc.peek() == '[' {
			sc.header()
		} else {
			sc.keyValue(sc.table)
		}
		sc.skipSpace()
		sc.skipComment()
		if c := sc.peek(); !sc.eof() && c != '\n' && c != '\r' {
			sc.stop = true
		}
	}
}

// header scans [a.b] or [[a.b]] and makes it the current table.
func (sc *scanner) header() {
	start := sc.pos()
	sc.next()
	isArray := sc.peek() == '['
	if isArray {
		sc.next()
	}
	segs := sc.key()
	if sc.stop || len(segs) == 0 {
		sc.stop = true
		return
	}
	var p path
	for n, s := range segs {
		p = p.key(s.name)
		ps := p.String()
		if !hasKey(sc.ps.keys, ps) {
			sc.ps.keys[ps] = s.pos
		}
		last := n == len(segs)-1
		if last && isArray {
			sc.arrays[ps]++
			p = p.idx(sc.arrays[ps] - 1)
			sc.ps.keys[p.String()] = start
		} else if c, ok := sc.arrays[ps]; ok {
			p = p.idx(c - 1) // [a.b] under [[a]] extends a's last element
		}
	}
	sc.table = p
	for range 1 + btoi(isArray) {
		sc.skipSpace()
		if sc.peek() != ']' {
			sc.stop = true
			return
		}
		sc.next()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// keyValue scans `a.b = value` relative to base.
func (sc *scanner) keyValue(base path) {
	segs := sc.key()
	if sc.stop || len(segs) == 0 {
		sc.stop = true
		return
	}
	p := base
	for _, s := range segs {
		p = p.key(s.name)
		if ps := p.String(); !hasKey(sc.ps.keys, ps) {
			sc.ps.keys[ps] = s.pos
		}
	}
	sc.skipSpace()
	if sc.peek() != '=' {
		sc.stop = true
		return
	}
	sc.next()
	sc.skipSpace()
	sc.value(p)
}

type keySeg struct {
	name string
	pos  Pos
}

// key scans a possibly dotted key: a, "a b", 'a', a . b.
func (sc *scanner) key() []keySeg {
	var segs []keySeg
	for {
		sc.skipSpace()
		pos := sc.pos()
		var name string
		switch c := sc.peek(); {
		case c == '"':
			raw := sc.basicString()
			name = unescapeBasic(raw)
		case c == '\'':
			name = sc.literalString()
		case isBareKeyChar(c):
			start := sc.i
			for isBareKeyChar(sc.peek()) {
				sc.next()
			}
			name = sc.src[start:sc.i]
		default:
			sc.stop = true
			return nil
		}
		if sc.stop {
			return nil
		}
		segs = append(segs, keySeg{name, pos})
		sc.skipSpace()
		if sc.peek() != '.' {
			return segs
		}
		sc.next()
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value scans one value at p and records where it starts.
func (sc *scanner) value(p path) {
	sc.ps.vals[p.String()] = sc.pos()
	switch c := sc.peek(); c {
	case '"':
		if strings.HasPrefix(sc.src[sc.i:], `"""`) {
			sc.multiline('"')
		} else {
			sc.basicString()
		}
	case '\'':
		if strings.HasPrefix(sc.src[sc.i:], `'''`) {
			sc.multiline('\'')
		} else {
			sc.literalString()
		}
	case '[':
		sc.array(p)
	case '{':
		sc.inlineTable(p)
	default:
		sc.scalar()
	}
}

func (sc *scanner) array(p path) {
	sc.next() // [
	for n := 0; ; n++ {
		sc.skipBlank()
		if sc.eof() {
			sc.stop = true
			return
		}
		if sc.peek() == ']' {
			sc.next()
			return
		}
		sc.value(p.idx(n))
		sc.skipBlank()
		switch sc.peek() {
		case ',':
			sc.next()
		case ']':
			sc.next()
			return
		default:
			sc.stop = true
			return
		}
	}
}

// inlineTable scans { k = v, … }. Newlines and a trailing comma (TOML 1.1)
// are tolerated: the library decides what is valid.
func (sc *scanner) inlineTable(p path) {
	sc.next() // {
	for {
		sc.skipBlank()
		if sc.eof() {
			sc.stop = true
			return
		}
		if sc.peek() == '}' {
			sc.next()
			return
		}
		sc.keyValue(p)
		sc.skipBlank()
		switch sc.peek() {
		case ',':
			sc.next()
		case '}':
			sc.next()
			return
		default:
			sc.stop = true
			return
		}
	}
}

// basicString scans "…" and returns its raw (still escaped) content.
func (sc *scanner) basicString() string {
	sc.next() // "
	start := sc.i
	for !sc.eof() {
		switch sc.peek() {
		case '\\':
			sc.next()
			sc.next()
		case '"':
			raw := sc.src[start:sc.i]
			sc.next()
			return raw
		case '\n':
			sc.stop = true
			return ""
		default:
			sc.next()
		}
	}
	sc.stop = true
	return ""
}

// literalString scans '…' and returns its content.
func (sc *scanner) literalString() string {
	sc.next() // '
	start := sc.i
	for !sc.eof() {
		switch sc.peek() {
		case '\'':
			s := sc.src[start:sc.i]
			sc.next()
			return s
		case '\n':
			sc.stop = true
			return ""
		default:
			sc.next()
		}
	}
	sc.stop = true
	return ""
}

// multiline scans """…""" or ”'…”'. The content may end in one or two
// quotes, so the closing run is up to five quotes long.
func (sc *scanner) multiline(q byte) {
	sc.i += 3 // no newline among the quotes
	for !sc.eof() {
		c := sc.peek()
		if c == '\\' && q == '"' {
			sc.next()
			sc.next()
			continue
		}
		if c == q && sc.peekAt(1) == q && sc.peekAt(2) == q {
			n := 0
			for sc.peek() == q && n < 5 {
				sc.next()
				n++
			}
			return
		}
		sc.next()
	}
	sc.stop = true
}

// scalar scans a number, boolean or date-time. A date and a time may be
// separated by one space ("1979-05-27 07:32:00Z").
func (sc *scanner) scalar() {
	start := sc.i
	sc.token()
	if sc.i == start {
		sc.stop = true
		return
	}
	if isDate(sc.src[start:sc.i]) && sc.peek() == ' ' && isDigit(sc.peekAt(1)) {
		sc.next()
		sc.token()
	}
}

func (sc *scanner) token() {
	for !sc.eof() {
		switch sc.peek() {
		case ' ', '\t', '\r', '\n', ',', ']', '}', '#':
			return
		}
		sc.next()
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isDate reports whether s is a full date, YYYY-MM-DD.
func isDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i, c := range []byte(s) {
		if i != 4 && i != 7 && !isDigit(c) {
			return false
		}
	}
	return true
}

// unescapeBasic decodes the escapes of a TOML basic string (the library has
// already checked them). Only quoted keys need it: values come typed from
// the library.
func unescapeBasic(raw string) string {
	if !strings.Contains(raw, `\`) {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := raw[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(e)
		case 'x', 'u', 'U':
			n := 2
			switch e {
			case 'u':
				n = 4
			case 'U':
				n = 8
			}
			if i+1+n <= len(raw) {
				if v, err := strconv.ParseUint(raw[i+1:i+1+n], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(e)
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String()
}

func hasKey(m map[string]Pos, k string) bool {
	_, ok := m[k]
	return ok
}
