package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// decoder turns one file's TOML tree into typed values, recording a Problem
// with the exact position for every unknown key, wrong type and bad value.
//
// Why not toml.Decode into structs: the library stops at the first type
// error, and knows neither key nor element positions. So the library parses
// (syntax errors and all) into a tree, positions come from scanPositions, and
// this walks the tree with the schema written out in parse.go.
type decoder struct {
	file  string
	src   string
	at    *positions
	probs Problems
}

// decodeTree parses src; a syntax error is the only problem then reported
// (the parser cannot go on past it).
func decodeTree(file, src string) (map[string]any, *decoder, Problems) {
	d := &decoder{file: file, src: src}
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		return nil, nil, Problems{d.syntaxProblem(err)}
	}
	d.at = scanPositions(src)
	return tree, d, nil
}

func (d *decoder) syntaxProblem(err error) Problem {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return Problem{File: d.file, Msg: err.Error()}
	}
	msg := strings.TrimSuffix(pe.Message, ".")
	// The place comes from the library's byte offset: its line count is off
	// in files with "\r\n" line ends (even line 0).
	pos := offsetPos(d.src, pe.Position.Start)
	if st := pe.Position.Start; st > 0 && st <= len(d.src) && d.src[st-1] == '\n' && pe.Position.Line < pos.Line {
		// Found on reading the newline that ends the previous line (a key
		// set twice is): report it on that line.
		pos = offsetPos(d.src, st-1)
	}
	lines := strings.Split(d.src, "\n")
	line := strings.TrimSuffix(lines[pos.Line-1], "\r")
	if k, ok := strings.CutPrefix(msg, "Key '"); ok && strings.Contains(msg, "has already been defined") {
		// Point at the key, when the line starts with it.
		k = k[:max(0, strings.Index(k, "'"))]
		last := k[strings.LastIndex(k, ".")+1:]
		trimmed := strings.TrimLeft(line, " \t[")
		if last != "" && strings.HasPrefix(trimmed, last) {
			pos.Col = len(line) - len(trimmed) + 1
		}
		msg = fmt.Sprintf("%s is set twice: set each key once", k)
	}
	pos.Col = min(max(pos.Col, 1), len(line)+1)
	return Problem{File: d.file, Pos: pos, Msg: msg}
}

// offsetPos converts a byte offset into a line and column.
func offsetPos(src string, off int) Pos {
	off = min(max(off, 0), len(src))
	before := src[:off]
	return Pos{Line: strings.Count(before, "\n") + 1, Col: off - (strings.LastIndexByte(before, '\n') + 1) + 1}
}

func (d *decoder) problemAt(pos Pos, format string, a ...any) {
	d.probs = append(d.probs, Problem{File: d.file, Pos: pos, Msg: fmt.Sprintf(format, a...)})
}

// bad reports a problem with the value at p.
func (d *decoder) bad(p path, format string, a ...any) {
	d.problemAt(d.at.at(p), format, a...)
}

// origin is where the value at p is written, for Config.Origins. Keyed
// values point at their key, array elements at the element.
func (d *decoder) origin(p path) Origin {
	if len(p) > 0 && p[len(p)-1].isIdx {
		return Origin{File: d.file, Pos: d.at.at(p)}
	}
	return Origin{File: d.file, Pos: d.at.keyAt(p)}
}

// table is one TOML table being read. Every key the schema asks for is
// known; done reports the others.
type table struct {
	d     *decoder
	p     path
	m     map[string]any
	known []string
}

func (d *decoder) table(p path, m map[string]any) *table { return &table{d: d, p: p, m: m} }

// get returns the raw value of key, marking the key known.
func (t *table) get(key string) (any, path, bool) {
	t.known = append(t.known, key)
	v, ok := t.m[key]
	return v, t.p.key(key), ok
}

// present reports whether key is written (whatever its type).
func (t *table) present(key string) bool {
	_, ok := t.m[key]
	return ok
}

// done reports every key the schema did not ask for, with the nearest
// known key when it looks like a typo (Problems are sorted later).
func (t *table) done() {
	for k := range t.m {
		if contains(t.known, k) {
			continue
		}
		p := t.p.key(k)
		where := ""
		if tbl := t.p.table(); tbl != "" {
			where = " in " + tbl
		}
		t.d.problemAt(t.d.at.keyAt(p), "unknown key %q%s%s", k, where, suggest(k, t.known))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// typeName words a TOML value's type for "must be X, not Y".
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// wrongType reports that the value at p has the wrong type. want reads as
// "a string such as \"2GiB\"".
func (d *decoder) wrongType(p path, want string, got any) {
	d.bad(p, "%s must be %s, not %s", p, want, typeName(got))
}

// str reads a string. ok is false when the key is absent or not a string
// (then a problem is recorded).
func (t *table) str(key, want string) (string, path, bool) {
	v, p, ok := t.get(key)
	if !ok {
		return "", p, false
	}
	s, ok := v.(string)
	if !ok {
		t.d.wrongType(p, want, v)
	}
	return s, p, ok
}

func (t *table) integer(key, want string) (int64, path, bool) {
	v, p, ok := t.get(key)
	if !ok {
		return 0, p, false
	}
	n, ok := v.(int64)
	if !ok {
		t.d.wrongType(p, want, v)
	}
	return n, p, ok
}

func (t *table) boolean(key string) (bool, path, bool) {
	v, p, ok := t.get(key)
	if !ok {
		return false, p, false
	}
	b, ok := v.(bool)
	if !ok {
		t.d.wrongType(p, "true or false", v)
	}
	return b, p, ok
}

// array reads an array; each element is handed to each with its path.
func (t *table) array(key, want string, each func(p path, v any)) (path, bool) {
	v, p, ok := t.get(key)
	if !ok {
		return p, false
	}
	list, ok := v.([]any)
	if !ok {
		t.d.wrongType(p, want, v)
		return p, false
	}
	for i, e := range list {
		each(p.idx(i), e)
	}
	return p, true
}

// strings reads an array of strings; elements of another type are
// reported and left out. ok is false only when the key is absent or not an
// array.
func (t *table) strings(key, want string) (vals []string, paths []path, p path, ok bool) {
	p, ok = t.array(key, want, func(ep path, v any) {
		s, isStr := v.(string)
		if !isStr {
			t.d.bad(ep, "%s must be a string, not %s", ep, typeName(v))
			return
		}
		vals, paths = append(vals, s), append(paths, ep)
	})
	return vals, paths, p, ok
}

// sub reads a [table]. ok is false when absent or not a table.
func (t *table) sub(key, header string) (*table, bool) {
	v, p, ok := t.get(key)
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.d.wrongType(p, "a table ("+header+")", v)
		return nil, false
	}
	return t.d.table(p, m), true
}

// tables reads an array of tables ([[key]] or key = [{…}, …]).
func (t *table) tables(key, header string) []*table {
	v, p, ok := t.get(key)
	if !ok {
		return nil
	}
	var out []*table
	switch list := v.(type) {
	case []map[string]any:
		for i, m := range list {
			out = append(out, t.d.table(p.idx(i), m))
		}
	case []any:
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				t.d.bad(p.idx(i), "%s must be a table, not %s", p.idx(i), typeName(e))
				continue
			}
			out = append(out, t.d.table(p.idx(i), m))
		}
	default:
		t.d.wrongType(p, "an array of tables ("+header+")", v)
	}
	return out
}
