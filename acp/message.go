package acp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind classifies a message.
type Kind int

const (
	KindInvalid      Kind = iota // not a valid JSON-RPC 2.0 message; see the error from Parse
	KindRequest                  // method and id (the id may be null)
	KindNotification             // method, no id
	KindResponse                 // id and exactly one of result and error
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// Message is one JSON-RPC message, decoded only as far as routing needs.
// Raw is the line as read; Params, Result and Error are sub-slices of it.
// Nothing here is re-encoded: forward Raw.
type Message struct {
	Raw    []byte
	Kind   Kind
	ID     ID     // for requests and responses; null for notifications
	Method string // for requests and notifications, escapes decoded

	Params json.RawMessage // nil when absent
	Result json.RawMessage // a response's result; nil when absent
	Error  json.RawMessage // a response's error object; nil when absent

	idStart, idEnd int // span of the id value in Raw; idEnd == 0 when there is no id
}

// Sentinels wrapped by the *[MessageError] that [Parse] returns.
var (
	// ErrNotJSON: the line is not JSON. Answer with [ParseError] and a null id.
	ErrNotJSON = errors.New("acp: not JSON")
	// ErrInvalidRequest: JSON, but not a JSON-RPC 2.0 message.
	// Answer with [InvalidRequest] (if [MessageError.Answerable]).
	ErrInvalidRequest = errors.New("acp: invalid request")
)

// MessageError describes a line [Parse] refused.
type MessageError struct {
	Err    error  // ErrNotJSON or ErrInvalidRequest
	Reason string // what is wrong, for logs and the error message sent back
	ID     ID     // the message's id, when one could be read; null otherwise
	Method string // the message's method, when one could be read

	response bool // it has no method but has id, result or error
}

func (e *MessageError) Error() string {
	return e.Err.Error() + ": " + e.Reason
}

func (e *MessageError) Unwrap() error { return e.Err }

// Code returns the JSON-RPC error code for the answer: [ParseError] or
// [InvalidRequest].
func (e *MessageError) Code() int {
	if errors.Is(e.Err, ErrNotJSON) {
		return ParseError
	}
	return InvalidRequest
}

// Answerable reports whether the sender should get an error response (with
// [MessageError.ID], which is null when unknown). It is false for a malformed
// response (no method, but an id, result or error): answering it would hand
// the sender an "answer" to one of its own requests that happens to share the
// id. Log and drop those.
func (e *MessageError) Answerable() bool { return !e.response }

// The top-level members Parse reads. Other members are kept but not read.
var knownMembers = map[string]bool{"jsonrpc": true, "id": true, "method": true, "params": true, "result": true, "error": true}

// knownFolded maps the folded form of each known member name to the name.
var knownFolded = func() map[string]string {
	m := map[string]string{}
	for k := range knownMembers {
		m[foldKey(k)] = k
	}
	return m
}()

// Parse classifies line as a request, notification or response.
//
// It always returns a non-nil *Message with Raw set to line (not copied: do
// not modify line afterwards). On error the Message has Kind [KindInvalid],
// and the error is a *[MessageError] wrapping [ErrNotJSON] or
// [ErrInvalidRequest] and carrying the id when it could be read.
//
// Rules, beyond JSON-RPC 2.0's:
//   - Ids may be null, any JSON number or a string. ACP says integer, but the
//     relay needs only equality, and refusing 1.5 would break a pair of peers
//     that accept it; the id is kept byte for byte either way.
//   - A request may have a null id (JSON-RPC discourages but allows it); its
//     response then has a null id too and cannot be told from an error
//     response to an unreadable request.
//   - method must be a non-empty string; params, when present, an object or
//     an array; error an object.
//   - Duplicate top-level members are refused, and so are members named like
//     jsonrpc/id/method/params/result/error but for case (ID, Method):
//     peers disagree on which one counts (first, last, case-insensitive), so
//     the bridge and a peer could read different messages from one line.
//   - Member names are compared after decoding escapes: "i\u0064" is "id",
//     as the JSON specification says.
//   - Members Parse does not know are allowed and kept.
func Parse(line []byte) (*Message, error) {
	m := &Message{Raw: line}
	e := &MessageError{Err: ErrInvalidRequest}
	fail := func(format string, args ...any) (*Message, error) {
		m.Kind = KindInvalid
		e.Reason = fmt.Sprintf(format, args...)
		e.ID, e.Method = m.ID, m.Method
		return m, e
	}
	if !json.Valid(line) {
		e.Err = ErrNotJSON
		return fail("the line is not a JSON text")
	}
	switch line[skipWS(line, 0)] {
	case '{':
	case '[':
		return fail("batches are not supported")
	default:
		return fail("a message must be a JSON object")
	}

	var (
		spans     = map[string][2]int{} // known member -> value span
		seen      = map[string]string{} // folded name -> first name with that fold
		contested = map[string]bool{}   // known members whose name is ambiguous
		problem   string
	)
	_ = scanObject(line, func(mb member) bool {
		f := foldKey(mb.name)
		k, known := knownFolded[f]
		if prev, dup := seen[f]; dup {
			if problem == "" && prev == mb.name {
				problem = fmt.Sprintf("duplicate member %q", short(mb.name))
			} else if problem == "" {
				problem = fmt.Sprintf("members %q and %q differ only in case", short(prev), short(mb.name))
			}
			if known {
				contested[k] = true
			}
			return true
		}
		seen[f] = mb.name
		switch {
		case knownMembers[mb.name]:
			spans[mb.name] = [2]int{mb.valStart, mb.valEnd}
		case known:
			if problem == "" {
				problem = fmt.Sprintf("member %q differs from %q only in case", short(mb.name), k)
			}
			contested[k] = true
		}
		return true
	})
	value := func(name string) ([]byte, bool) {
		s, ok := spans[name]
		return line[s[0]:s[1]], ok
	}

	// Read id and method first, so that later errors can carry them.
	idRaw, hasID := value("id")
	if hasID {
		id, err := ParseID(idRaw)
		if err != nil {
			return fail("id must be null, a number or a string")
		}
		m.ID = id
		m.idStart, m.idEnd = spans["id"][0], spans["id"][1]
	}
	methodRaw, hasMethod := value("method")
	if hasMethod {
		s, ok := decodeString(methodRaw)
		if !ok || s == "" {
			return fail("method must be a non-empty string")
		}
		m.Method = s
	}
	params, hasParams := value("params")
	result, hasResult := value("result")
	errObj, hasError := value("error")
	e.response = !hasMethod && !contested["method"] && (hasID || hasResult || hasError)
	if problem != "" {
		// A contested id or method may not be the one the peer would
		// use: do not answer with it.
		if contested["id"] {
			m.ID, m.idEnd = ID{}, 0
		}
		if contested["method"] {
			m.Method = ""
		}
		return fail("%s", problem)
	}
	if v, ok := value("jsonrpc"); !ok {
		return fail(`missing "jsonrpc": "2.0"`)
	} else if s, _ := decodeString(v); s != "2.0" {
		return fail(`"jsonrpc" must be "2.0", not %s`, short(string(v)))
	}
	if hasParams {
		if c := params[0]; c != '{' && c != '[' {
			return fail("params must be an object or an array")
		}
		m.Params = params
	}

	switch {
	case hasMethod && (hasResult || hasError):
		return fail("a message cannot have both method and result or error")
	case hasMethod && hasID:
		m.Kind = KindRequest
	case hasMethod:
		m.Kind = KindNotification
	case !hasID:
		return fail("a message needs a method or an id")
	case hasResult && hasError:
		return fail("a response cannot have both result and error")
	case hasResult:
		m.Kind, m.Result = KindResponse, result
	case hasError:
		if errObj[0] != '{' {
			return fail("error must be an object")
		}
		m.Kind, m.Error = KindResponse, errObj
	default:
		return fail("a response needs result or error")
	}
	return m, nil
}

// short cuts s for an error message: a peer controls its length.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ErrNoID is returned when rewriting the id of a message that has none.
var ErrNoID = errors.New("acp: message has no top-level id")

// WithID returns a copy of m.Raw with the id value replaced by id's JSON text
// and every other byte unchanged. m must come from a successful [Parse].
func (m *Message) WithID(id ID) ([]byte, error) {
	if m.idEnd == 0 {
		return nil, ErrNoID
	}
	return splice(m.Raw, m.idStart, m.idEnd, id.Raw()), nil
}

// RewriteID returns raw with the value of its top-level "id" member replaced
// by newID's JSON text; every other byte is unchanged (key order, spacing,
// escapes, a nested "id", an "id" inside a string). The member is found by
// its decoded name, so "i\u0064" is the id, as for every JSON parser. raw must
// be a JSON object with exactly one top-level id; it need not be otherwise
// valid JSON-RPC. For a message already parsed, [Message.WithID] saves a pass.
func RewriteID(raw []byte, newID ID) ([]byte, error) {
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: the message is not a JSON text", ErrNotJSON)
	}
	start, end, n := 0, 0, 0
	err := scanObject(raw, func(mb member) bool {
		if mb.name == "id" {
			start, end = mb.valStart, mb.valEnd
			n++
		}
		return true
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	case n == 0:
		return nil, ErrNoID
	case n > 1:
		return nil, fmt.Errorf("%w: duplicate member \"id\"", ErrInvalidRequest)
	}
	return splice(raw, start, end, newID.Raw()), nil
}

func splice(raw []byte, start, end int, v []byte) []byte {
	out := make([]byte, 0, len(raw)-(end-start)+len(v))
	out = append(out, raw[:start]...)
	out = append(out, v...)
	return append(out, raw[end:]...)
}

// foldKey returns a key such that foldKey(a) == foldKey(b) exactly when
// strings.EqualFold(a, b), which is how encoding/json matches member names
// to struct fields: each rune becomes the smallest rune of its simple-folding
// orbit (k, K and the Kelvin sign all become K).
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		lo := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			lo = min(lo, f)
		}
		b.WriteRune(lo)
	}
	return b.String()
}
