package acp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// JSON-RPC error codes. Map Go errors to them in one place (the bridge's
// edge), not where they arise.
const (
	ParseError       = -32700 // the line is not JSON
	InvalidRequest   = -32600 // JSON, but not a valid request
	MethodNotFound   = -32601
	InvalidParams    = -32602
	InternalError    = -32603
	RequestCancelled = -32800 // answer to a request cancelled with ACP's $/cancel_request
)

// WireError is a JSON-RPC error object.
type WireError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *WireError) Error() string {
	return "jsonrpc error " + strconv.Itoa(e.Code) + ": " + e.Message
}

// DecodeError decodes the error object of an error response. It returns
// (nil, nil) for a message without one.
func (m *Message) DecodeError() (*WireError, error) {
	if m.Error == nil {
		return nil, nil
	}
	var e WireError
	if err := UnmarshalStrict(m.Error, &e); err != nil {
		return nil, fmt.Errorf("acp: error object: %w", err)
	}
	return &e, nil
}

// The builders below make the messages the bridge originates. They write the
// members in the order jsonrpc, id, method, params (or result, or error),
// without HTML escaping, on one line.

// NewRequest returns a request. A params that encodes to null is omitted;
// otherwise it must encode to an object or an array.
func NewRequest(id ID, method string, params any) ([]byte, error) {
	return build(&id, method, true, "params", params)
}

// NewNotification returns a notification; params as for [NewRequest].
func NewNotification(method string, params any) ([]byte, error) {
	return build(nil, method, true, "params", params)
}

// NewResult returns a response carrying result (nil encodes as null).
func NewResult(id ID, result any) ([]byte, error) {
	return build(&id, "", false, "result", result)
}

// NewError returns an error response. data is omitted when nil.
func NewError(id ID, code int, message string, data any) ([]byte, error) {
	e := struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{code, message, data}
	return build(&id, "", false, "error", e)
}

func build(id *ID, method string, hasMethod bool, name string, v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0"`)
	if id != nil {
		b.WriteString(`,"id":`)
		b.Write(id.Raw())
	}
	if hasMethod {
		if method == "" {
			return nil, errors.New("acp: empty method")
		}
		b.WriteString(`,"method":`)
		b.WriteString(quote(method))
	}
	enc, err := encode(v)
	if err != nil {
		return nil, fmt.Errorf("acp: encoding %s: %w", name, err)
	}
	switch {
	case name == "params" && string(enc) == "null":
		// omitted
	case name == "params" && enc[0] != '{' && enc[0] != '[':
		return nil, fmt.Errorf("acp: params must be an object or an array, not %.20s", enc)
	default:
		b.WriteString(`,"` + name + `":`)
		b.Write(enc)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// encode is json.Marshal without HTML escaping. Its output never holds a
// newline (a json.RawMessage is compacted).
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
