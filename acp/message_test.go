package acp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	deep := `{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"_meta":` +
		strings.Repeat(`{"a":[`, 200) + `"id"` + strings.Repeat(`]}`, 200) + `}}`
	tests := []struct {
		name   string
		line   string
		kind   Kind
		id     string // ID.String()
		method string
		err    error // nil, ErrNotJSON or ErrInvalidRequest
		answer bool  // MessageError.Answerable, when err != nil
	}{
		// Valid messages.
		{"request int id", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, KindRequest, "1", "initialize", nil, false},
		{"request string id", `{"jsonrpc":"2.0","id":"a-1","method":"m"}`, KindRequest, `"a-1"`, "m", nil, false},
		{"request null id", `{"jsonrpc":"2.0","id":null,"method":"m"}`, KindRequest, "null", "m", nil, false},
		{"request negative id", `{"jsonrpc":"2.0","id":-3,"method":"m"}`, KindRequest, "-3", "m", nil, false},
		// Decided: any JSON number is an id, kept byte for byte (see Parse).
		{"request fractional id", `{"jsonrpc":"2.0","id":1.5,"method":"m"}`, KindRequest, "1.5", "m", nil, false},
		{"1.0 is not 1", `{"jsonrpc":"2.0","id":1.0,"method":"m"}`, KindRequest, "1.0", "m", nil, false},
		{"exponent id", `{"jsonrpc":"2.0","id":1e3,"method":"m"}`, KindRequest, "1e3", "m", nil, false},
		{"notification", `{"jsonrpc":"2.0","method":"session/update","params":{"x":1}}`, KindNotification, "null", "session/update", nil, false},
		{"notification params array", `{"jsonrpc":"2.0","method":"m","params":[1,2]}`, KindNotification, "null", "m", nil, false},
		{"result", `{"jsonrpc":"2.0","id":1,"result":{"a":1}}`, KindResponse, "1", "", nil, false},
		{"null result", `{"jsonrpc":"2.0","id":1,"result":null}`, KindResponse, "1", "", nil, false},
		{"error response", `{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no"}}`, KindResponse, `"x"`, "", nil, false},
		{"error response null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}`, KindResponse, "null", "", nil, false},
		{"whitespace everywhere", " \t{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 2 , \"method\" : \"m\" } \t", KindRequest, "2", "m", nil, false},
		{"member order", `{"method":"m","params":{},"id":3,"jsonrpc":"2.0"}`, KindRequest, "3", "m", nil, false},
		{"escaped member name", `{"jsonrpc":"2.0","i\u0064":7,"\u006dethod":"m"}`, KindRequest, "7", "m", nil, false},
		{"escaped method", `{"jsonrpc":"2.0","id":1,"method":"session\/prompt"}`, KindRequest, "1", "session/prompt", nil, false},
		{"escaped version", `{"jsonrpc":"2\u002e0","method":"m"}`, KindNotification, "null", "m", nil, false},
		{"unicode method and id", `{"jsonrpc":"2.0","id":"café☕","method":"_ext/héllo🎉"}`, KindRequest, `"café☕"`, "_ext/héllo🎉", nil, false},
		{"deep _meta", deep, KindRequest, "1", "session/prompt", nil, false},
		{"unknown members kept", `{"jsonrpc":"2.0","id":1,"result":{},"x-trace":"t","id ":9}`, KindResponse, "1", "", nil, false},
		{"id in params is not the id", `{"jsonrpc":"2.0","method":"m","params":{"id":5}}`, KindNotification, "null", "m", nil, false},
		{"id in a string is not the id", `{"jsonrpc":"2.0","method":"m","params":"{\"id\":5}"}`, KindInvalid, "null", "m", ErrInvalidRequest, true},

		// Not JSON: -32700, null id.
		{"truncated", `{"jsonrpc":"2.0","id":1,"method":"m"`, KindInvalid, "null", "", ErrNotJSON, true},
		{"trailing garbage", `{"jsonrpc":"2.0","id":1,"method":"m"}}`, KindInvalid, "null", "", ErrNotJSON, true},
		{"two values", `{} {}`, KindInvalid, "null", "", ErrNotJSON, true},
		{"binary", "\xff\xfe", KindInvalid, "null", "", ErrNotJSON, true},
		{"empty", ``, KindInvalid, "null", "", ErrNotJSON, true},
		{"single quotes", `{'jsonrpc':'2.0'}`, KindInvalid, "null", "", ErrNotJSON, true},

		// JSON, but not JSON-RPC: -32600.
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"m"}]`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"empty batch", `[]`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"string", `"hello"`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"number", `1`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"empty object", `{}`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"missing jsonrpc", `{"id":3,"method":"m"}`, KindInvalid, "3", "m", ErrInvalidRequest, true},
		{"wrong version", `{"jsonrpc":"1.0","id":"v","method":"m"}`, KindInvalid, `"v"`, "m", ErrInvalidRequest, true},
		{"version as number", `{"jsonrpc":2.0,"id":4,"method":"m"}`, KindInvalid, "4", "m", ErrInvalidRequest, true},
		{"both result and error", `{"jsonrpc":"2.0","id":5,"result":1,"error":{"code":1,"message":""}}`, KindInvalid, "5", "", ErrInvalidRequest, false},
		{"method and result", `{"jsonrpc":"2.0","id":5,"method":"m","result":1}`, KindInvalid, "5", "m", ErrInvalidRequest, true},
		{"neither method nor id", `{"jsonrpc":"2.0","params":{}}`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"response without result", `{"jsonrpc":"2.0","id":6}`, KindInvalid, "6", "", ErrInvalidRequest, false},
		{"result without id", `{"jsonrpc":"2.0","result":{}}`, KindInvalid, "null", "", ErrInvalidRequest, false},
		{"error not an object", `{"jsonrpc":"2.0","id":6,"error":"bad"}`, KindInvalid, "6", "", ErrInvalidRequest, false},
		{"id object", `{"jsonrpc":"2.0","id":{"n":1},"method":"m"}`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"m"}`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"id array", `{"jsonrpc":"2.0","id":[1],"method":"m"}`, KindInvalid, "null", "", ErrInvalidRequest, true},
		{"method number", `{"jsonrpc":"2.0","id":7,"method":1}`, KindInvalid, "7", "", ErrInvalidRequest, true},
		{"method empty", `{"jsonrpc":"2.0","id":7,"method":""}`, KindInvalid, "7", "", ErrInvalidRequest, true},
		{"params scalar", `{"jsonrpc":"2.0","id":8,"method":"m","params":5}`, KindInvalid, "8", "m", ErrInvalidRequest, true},
		{"params null", `{"jsonrpc":"2.0","id":8,"method":"m","params":null}`, KindInvalid, "8", "m", ErrInvalidRequest, true},

		// Parser differentials: a member that peers would read differently.
		// Each stops the agent from showing the bridge one message and the
		// editor another.
		// First-wins vs last-wins on the id: which request does an answer close?
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`, KindInvalid, "null", "m", ErrInvalidRequest, true},
		// The bridge checks fs/write_text_file; the editor would run the other.
		{"duplicate method", `{"jsonrpc":"2.0","id":9,"method":"a","method":"fs/write_text_file"}`, KindInvalid, "9", "", ErrInvalidRequest, true},
		{"duplicate via escape", `{"jsonrpc":"2.0","id":9,"method":"a","m\u0065thod":"b"}`, KindInvalid, "9", "", ErrInvalidRequest, true},
		{"duplicate params", `{"jsonrpc":"2.0","id":9,"method":"m","params":{},"params":{"path":"/etc"}}`, KindInvalid, "9", "m", ErrInvalidRequest, true},
		{"duplicate unknown member", `{"jsonrpc":"2.0","id":9,"method":"m","x":1,"x":2}`, KindInvalid, "9", "m", ErrInvalidRequest, true},
		// A Go peer (encoding/json) reads "ID" as the id; others ignore it.
		{"case variant id", `{"jsonrpc":"2.0","ID":1,"method":"m"}`, KindInvalid, "null", "m", ErrInvalidRequest, true},
		{"case variant method", `{"jsonrpc":"2.0","id":4,"Method":"m"}`, KindInvalid, "4", "", ErrInvalidRequest, true},
		{"case variant beside method", `{"jsonrpc":"2.0","id":4,"method":"a","METHOD":"b"}`, KindInvalid, "4", "", ErrInvalidRequest, true},
		// U+017F LATIN SMALL LETTER LONG S folds to s: Go reads it as params.
		{"long s params", `{"jsonrpc":"2.0","id":4,"method":"m","param\u017f":{}}`, KindInvalid, "4", "m", ErrInvalidRequest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.line))
			if m == nil {
				t.Fatal("nil message")
			}
			if string(m.Raw) != tt.line {
				t.Errorf("Raw = %q", m.Raw)
			}
			if m.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v (err %v)", m.Kind, tt.kind, err)
			}
			if tt.err == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if m.ID.String() != tt.id || m.Method != tt.method {
					t.Errorf("id %s method %q, want %s %q", m.ID, m.Method, tt.id, tt.method)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			var me *MessageError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a *MessageError", err)
			}
			if me.ID.String() != tt.id || me.Method != tt.method {
				t.Errorf("error carries id %s method %q, want %s %q", me.ID, me.Method, tt.id, tt.method)
			}
			if m.ID != me.ID {
				t.Errorf("message id %s != error id %s", m.ID, me.ID)
			}
			if me.Answerable() != tt.answer {
				t.Errorf("Answerable = %v", me.Answerable())
			}
			wantCode := InvalidRequest
			if tt.err == ErrNotJSON {
				wantCode = ParseError
			}
			if me.Code() != wantCode {
				t.Errorf("Code = %d, want %d", me.Code(), wantCode)
			}
		})
	}
}

func TestParseSlices(t *testing.T) {
	line := []byte(`{"jsonrpc":"2.0","id":1,"method":"m","params": {"a" : [1, 2.50]} }`)
	m, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Params) != `{"a" : [1, 2.50]}` {
		t.Errorf("Params = %q", m.Params)
	}
	line2 := []byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32800,"message":"Request cancelled","data":{"x":1}}}`)
	m, err = Parse(line2)
	if err != nil {
		t.Fatal(err)
	}
	we, err := m.DecodeError()
	if err != nil || we.Code != RequestCancelled || we.Message != "Request cancelled" || string(we.Data) != `{"x":1}` {
		t.Errorf("DecodeError = %+v, %v", we, err)
	}
}

// RewriteID must change the id's bytes and nothing else.
func TestRewriteIDCorpus(t *testing.T) {
	lines, _ := corpus(t)
	newID := NewIDAllocator().Next()
	rewritten := 0
	for _, line := range lines {
		m, err := Parse(line)
		if err != nil {
			t.Fatalf("corpus line %s: %v", line, err)
		}
		out, err := RewriteID(line, newID)
		if m.Kind == KindNotification {
			if !errors.Is(err, ErrNoID) {
				t.Errorf("notification %s: %v, want ErrNoID", line, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("RewriteID(%s): %v", line, err)
		}
		rewritten++
		checkOnlyIDChanged(t, line, out, m.idStart, m.idEnd, newID)
		m2, err := Parse(out)
		if err != nil || m2.ID != newID || m2.Kind != m.Kind || m2.Method != m.Method ||
			!bytes.Equal(m2.Params, m.Params) || !bytes.Equal(m2.Result, m.Result) || !bytes.Equal(m2.Error, m.Error) {
			t.Errorf("after rewrite %s: %+v %v", out, m2, err)
		}
		with, err := m.WithID(newID)
		if err != nil || !bytes.Equal(with, out) {
			t.Errorf("WithID differs from RewriteID: %s", with)
		}
		// And back: the original line, exactly.
		back, err := RewriteID(out, m.ID)
		if err != nil || !bytes.Equal(back, line) {
			t.Errorf("rewriting back:\n got %s\nwant %s", back, line)
		}
	}
	if rewritten < 10 {
		t.Fatalf("only %d corpus lines have ids", rewritten)
	}
}

func checkOnlyIDChanged(t *testing.T, in, out []byte, start, end int, id ID) {
	t.Helper()
	n := len(id.Raw())
	if len(out) != len(in)-(end-start)+n ||
		!bytes.Equal(out[:start], in[:start]) ||
		!bytes.Equal(out[start:start+n], id.Raw()) ||
		!bytes.Equal(out[start+n:], in[end:]) {
		t.Errorf("more than the id changed:\n in %s\nout %s", in, out)
	}
}

func TestRewriteID(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"int to string", `{"jsonrpc":"2.0","id":1,"method":"m"}`, `{"jsonrpc":"2.0","id":"X","method":"m"}`, nil},
		{"spacing kept", `{ "id" :  1 , "method":"m" }`, `{ "id" :  "X" , "method":"m" }`, nil},
		{"id last", `{"method":"m","params":{"id":2},"id":3}`, `{"method":"m","params":{"id":2},"id":"X"}`, nil},
		{"id in string untouched", `{"note":"\"id\":1,","id":4}`, `{"note":"\"id\":1,","id":"X"}`, nil},
		{"escaped name", `{"i\u0064":5,"params":{"id":6}}`, `{"i\u0064":"X","params":{"id":6}}`, nil},
		{"string id with escapes", `{"id":"a\"b\\","x":1}`, `{"id":"X","x":1}`, nil},
		{"null id", `{"id":null}`, `{"id":"X"}`, nil},
		{"nested arrays", `{"params":[[{"id":1}],"]"],"id":-2.5e3}`, `{"params":[[{"id":1}],"]"],"id":"X"}`, nil},
		{"unicode around", `{"a":"☕🎉","id":1,"b":"\ud83d\ude00"}`, `{"a":"☕🎉","id":"X","b":"\ud83d\ude00"}`, nil},
		{"no id", `{"method":"m","params":{"id":1}}`, "", ErrNoID},
		{"duplicate id", `{"id":1,"i\u0064":2}`, "", ErrInvalidRequest},
		{"not an object", `[{"id":1}]`, "", ErrInvalidRequest},
		{"not JSON", `{"id":1`, "", ErrNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RewriteID([]byte(tt.in), StringID("X"))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}

func TestBuilders(t *testing.T) {
	id := IntID(12)
	type params struct {
		SessionID string `json:"sessionId"`
		Text      string `json:"text"`
	}
	b, err := NewRequest(id, "session/prompt", params{"s1", "a<b>&c\u2028"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"jsonrpc":"2.0","id":12,"method":"session/prompt","params":{"sessionId":"s1","text":"a<b>&c\u2028"}}`; string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	mustParse(t, b, KindRequest, "12", "session/prompt")

	// A json.RawMessage passes through compacted (no newlines), order kept.
	b, err = NewNotification("session/update", json.RawMessage("{\n  \"z\": 1,\n  \"a\": 2.50\n}"))
	if err != nil || string(b) != `{"jsonrpc":"2.0","method":"session/update","params":{"z":1,"a":2.50}}` {
		t.Errorf("raw params: %s %v", b, err)
	}
	b, err = NewNotification("session/cancel", nil)
	if err != nil || string(b) != `{"jsonrpc":"2.0","method":"session/cancel"}` {
		t.Errorf("nil params: %s %v", b, err)
	}
	if _, err := NewNotification("m", "scalar"); err == nil {
		t.Error("scalar params accepted")
	}
	if _, err := NewRequest(id, "", nil); err == nil {
		t.Error("empty method accepted")
	}

	b, err = NewResult(StringID("acp-sandbox:1"), nil)
	if err != nil || string(b) != `{"jsonrpc":"2.0","id":"acp-sandbox:1","result":null}` {
		t.Errorf("nil result: %s %v", b, err)
	}
	mustParse(t, b, KindResponse, `"acp-sandbox:1"`, "")
	b, err = NewResult(id, map[string]any{"outcome": map[string]string{"outcome": "cancelled"}})
	if err != nil || string(b) != `{"jsonrpc":"2.0","id":12,"result":{"outcome":{"outcome":"cancelled"}}}` {
		t.Errorf("result: %s %v", b, err)
	}

	b, err = NewError(ID{}, ParseError, "Parse error", nil)
	if err != nil || string(b) != `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}` {
		t.Errorf("error: %s %v", b, err)
	}
	b, err = NewError(IntID(3), MethodNotFound, "Method not found", map[string]string{"method": "x"})
	if err != nil || string(b) != `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found","data":{"method":"x"}}}` {
		t.Errorf("error with data: %s %v", b, err)
	}
	m := mustParse(t, b, KindResponse, "3", "")
	if we, _ := m.DecodeError(); we == nil || we.Code != MethodNotFound {
		t.Errorf("DecodeError: %+v", we)
	}
	// An id read from a peer is echoed byte for byte.
	peer, _ := ParseID([]byte(`"caf\u00e9"`))
	b, _ = NewError(peer, InvalidRequest, "Invalid request", nil)
	if !bytes.Contains(b, []byte(`"id":"caf\u00e9"`)) {
		t.Errorf("peer id re-encoded: %s", b)
	}
}

func mustParse(t *testing.T, b []byte, kind Kind, id, method string) *Message {
	t.Helper()
	m, err := Parse(b)
	if err != nil || m.Kind != kind || m.ID.String() != id || m.Method != method {
		t.Fatalf("Parse(%s) = %v %s %q, %v", b, m.Kind, m.ID, m.Method, err)
	}
	return m
}

func TestUnmarshalStrict(t *testing.T) {
	type P struct {
		Path    string `json:"path"`
		Content string `json:"content"`
	}
	tests := []struct {
		name, in string
		dup      bool
	}{
		{"plain", `{"path":"/a","content":"x","extra":{"path":1}}`, false},
		{"same names in sibling objects", `[{"path":1},{"path":2}]`, false},
		{"same name at two depths", `{"a":{"path":1},"path":"/a"}`, false},
		// encoding/json would take the last, serde/JS the first (or fail).
		{"exact duplicate", `{"path":"/etc/passwd","path":"/ok"}`, true},
		// encoding/json matches PATH to Path; the editor reads path.
		{"case variant", `{"path":"/etc/passwd","PATH":"/ok"}`, true},
		{"escaped duplicate", `{"path":"/etc/passwd","p\u0061th":"/ok"}`, true},
		// U+212A KELVIN SIGN folds to k.
		{"kelvin", `{"k":1,"\u212a":2}`, true},
		{"deep", `{"a":[{"b":{"x":1,"X":2}}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p any = &P{}
			if strings.HasPrefix(tt.in, "[") {
				p = &[]map[string]any{}
			}
			err := UnmarshalStrict([]byte(tt.in), p)
			if got := errors.Is(err, ErrDuplicateMember); got != tt.dup {
				t.Errorf("err = %v, want duplicate %v", err, tt.dup)
			}
			if !tt.dup && err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
	for _, bad := range []string{`{"path":`, `}`, `]`, `{"a":1]`, `[}`, `{"a"}`, `{1:2}`, ``} {
		if err := UnmarshalStrict([]byte(bad), &P{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := UnmarshalStrict([]byte(`{"n":1e400}`), &map[string]json.RawMessage{}); err != nil {
		t.Errorf("a huge number: %v", err)
	}
}

func TestFoldKey(t *testing.T) {
	for _, pair := range [][2]string{{"id", "ID"}, {"k", "\u212a"}, {"s", "\u017f"}, {"params", "PARAM\u017f"}, {"é", "É"}} {
		if foldKey(pair[0]) != foldKey(pair[1]) || !strings.EqualFold(pair[0], pair[1]) {
			t.Errorf("%q and %q fold differently", pair[0], pair[1])
		}
	}
	for _, pair := range [][2]string{{"id", "id "}, {"a", "b"}, {"ss", "ß"}} {
		if foldKey(pair[0]) == foldKey(pair[1]) {
			t.Errorf("%q and %q fold alike", pair[0], pair[1])
		}
	}
}
