package acp

import (
	"bytes"
	"errors"
)

// A hand scanner for the members of a top-level JSON object. It tracks only
// what finding member boundaries needs (strings and their escapes, nesting
// depth), runs in one pass without recursion, and never panics. Its results
// are exact for valid JSON, which is why Parse and RewriteID call json.Valid
// first; on other input it returns an error after the members it could read
// completely, which is what LineTooLongError.Peek wants from a cut-off head.

var (
	errNotObject = errors.New("not a JSON object")
	errMalformed = errors.New("malformed JSON object")
	errTruncated = errors.New("truncated JSON object")
)

// member is one top-level member: its decoded name and its value's span.
type member struct {
	name             string
	valStart, valEnd int
}

// scanObject calls visit for each member of the object in data, in order,
// until visit returns false.
func scanObject(data []byte, visit func(member) bool) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for {
		if i >= len(data) {
			return errTruncated
		}
		if data[i] != '"' {
			return errMalformed
		}
		ke := skipString(data, i)
		if ke < 0 {
			return errTruncated
		}
		name, ok := decodeString(data[i:ke])
		if !ok {
			return errMalformed
		}
		i = skipWS(data, ke)
		if i >= len(data) {
			return errTruncated
		}
		if data[i] != ':' {
			return errMalformed
		}
		vs := skipWS(data, i+1)
		ve := skipValue(data, vs)
		if ve < 0 {
			return errTruncated
		}
		if !visit(member{name: name, valStart: vs, valEnd: ve}) {
			return nil
		}
		i = skipWS(data, ve)
		if i >= len(data) {
			return errTruncated
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case '}':
			return nil
		default:
			return errMalformed
		}
	}
}

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just after the value starting at i, or -1 if
// it does not end within data (or does not start a value). A number or
// literal must be followed by a byte that ends it: in an object it always is.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(data) && scalarByte(data[i]) {
		i++
	}
	if i == start || i == len(data) {
		return -1
	}
	return i
}

// scalarByte reports whether c can occur in a number or a literal.
func scalarByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '+' || c == '-'
}

// skipString returns the index just after the string starting at data[i]
// (a '"'), or -1 if it is not closed within data. Linear even for strings
// full of escapes.
func skipString(data []byte, i int) int {
	j := i + 1
	for {
		q := bytes.IndexByte(data[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		for {
			b := bytes.IndexByte(data[j:q], '\\')
			if b < 0 {
				return q + 1
			}
			j += b + 2 // skip the backslash and the byte it escapes
			if j > q {
				break // the quote at q was escaped; look for the next one
			}
		}
	}
}
