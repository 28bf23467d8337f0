package acp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
)

// ID is a JSON-RPC id: null, a number or a string. It keeps the id's exact
// bytes, so 1, 1.0, 1e0 and "1" are four different ids, and an id written
// back into a message is the one the peer sent. IDs are comparable (== and map
// keys compare the bytes); to match ids across a peer that may re-encode them
// (a string with escapes), compare [ID.Canonical] forms, as [Pending] does.
//
// The zero ID is null.
type ID struct {
	raw string // exact JSON text; "" for null
}

// ErrBadID is returned by [ParseID] for a JSON text that is not null, a
// number or a string.
var ErrBadID = errors.New("acp: id must be null, a number or a string")

// IntID returns the integer id n.
func IntID(n int64) ID { return ID{raw: strconv.FormatInt(n, 10)} }

// StringID returns the string id s, in canonical encoding.
func StringID(s string) ID { return ID{raw: quote(s)} }

// ParseID returns the id whose JSON text is raw (surrounding whitespace
// allowed and dropped).
func ParseID(raw []byte) (ID, error) {
	raw = bytes.Trim(raw, " \t\r\n")
	switch {
	case string(raw) == "null":
		return ID{}, nil
	case len(raw) > 0 && raw[0] == '"' && json.Valid(raw):
		return ID{raw: string(raw)}, nil
	case isNumber(raw):
		return ID{raw: string(raw)}, nil
	}
	return ID{}, ErrBadID
}

// IsNull reports whether id is null.
func (id ID) IsNull() bool { return id.raw == "" }

// IsString reports whether id is a string.
func (id ID) IsString() bool { return id.raw != "" && id.raw[0] == '"' }

// Raw returns the id's JSON text: "null", a number, or a quoted string.
func (id ID) Raw() json.RawMessage {
	if id.raw == "" {
		return json.RawMessage("null")
	}
	return json.RawMessage(id.raw)
}

// String returns the id's JSON text, so a string id shows its quotes.
func (id ID) String() string {
	if id.raw == "" {
		return "null"
	}
	return id.raw
}

// Canonical returns id with a string id re-encoded canonically (escapes
// decoded, then encoded as [StringID] does), so "\u0061" and "a" have the same
// canonical form. Numbers are left as written: ACP ids are integers, which
// every JSON implementation writes back as read (up to 2^53 in JavaScript).
func (id ID) Canonical() ID {
	if !id.IsString() || plainASCII(id.raw[1:len(id.raw)-1]) {
		return id
	}
	var s string
	if err := json.Unmarshal([]byte(id.raw), &s); err != nil {
		return id // not reachable for an ID made by this package
	}
	return StringID(s)
}

// MarshalJSON returns the id's exact JSON text.
func (id ID) MarshalJSON() ([]byte, error) { return id.Raw(), nil }

// UnmarshalJSON sets id from its JSON text, as [ParseID].
func (id *ID) UnmarshalJSON(b []byte) error {
	v, err := ParseID(b)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// isNumber reports whether b is exactly one JSON number.
func isNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// plainASCII reports whether s is printable ASCII without '"' or '\\', that
// is, a string whose JSON encoding is itself in quotes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// quote returns the canonical JSON encoding of s: encoding/json's, without
// its HTML escaping (invalid UTF-8 becomes U+FFFD).
func quote(s string) string {
	if plainASCII(s) {
		return `"` + s + `"`
	}
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// decodeString returns the value of the JSON string token b.
func decodeString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	if plainASCII(string(b[1 : len(b)-1])) {
		return string(b[1 : len(b)-1]), true
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", false
	}
	return s, true
}

// ReservedPrefix starts every id an [IDAllocator] makes.
const ReservedPrefix = "acp-sandbox:"

// IsReserved reports whether id is a string starting with [ReservedPrefix]
// (after decoding escapes): an id in the bridge's own namespace. A request
// from a peer with such an id must not be forwarded with it.
func IsReserved(id ID) bool {
	if !id.IsString() {
		return false
	}
	s, _ := decodeString([]byte(id.raw))
	return strings.HasPrefix(s, ReservedPrefix)
}

// IDAllocator makes ids for requests the bridge originates. They cannot
// collide with a peer's ids as long as the bridge refuses peer requests whose
// id [IsReserved]:
//
//   - They are strings, while the editors and agents we know number their
//     requests with integers (ACP's TypeScript and Rust SDKs, Zed, JetBrains).
//   - They start with [ReservedPrefix], which a peer using string ids
//     (UUIDs, "req-7") has no reason to use.
//   - They carry a random per-allocator nonce ("acp-sandbox:1f2e3d4c5b6a7988:7"),
//     so a late answer to an earlier bridge process's request is not taken
//     for one of ours, and a peer cannot guess an id it has not seen.
//
// It is safe for concurrent use.
type IDAllocator struct {
	prefix string
	n      atomic.Uint64
}

// NewIDAllocator returns an allocator with a fresh random nonce.
func NewIDAllocator() *IDAllocator {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &IDAllocator{prefix: ReservedPrefix + hex.EncodeToString(nonce[:]) + ":"}
}

// Next returns a new id.
func (a *IDAllocator) Next() ID {
	return StringID(a.prefix + strconv.FormatUint(a.n.Add(1), 10))
}

// Owns reports whether id is one this allocator made (or could make): use it
// to route a response to the bridge's own [Pending] table.
func (a *IDAllocator) Owns(id ID) bool {
	if !id.IsString() {
		return false
	}
	s, _ := decodeString([]byte(id.raw))
	n, ok := strings.CutPrefix(s, a.prefix)
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 64)
	return err == nil
}
