package acp

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"1", "1", true},
		{" -0 ", "-0", true},
		{"1.0", "1.0", true},
		{"1.5e-3", "1.5e-3", true},
		{"12345678901234567890", "12345678901234567890", true},
		{`"1"`, `"1"`, true},
		{`"caf\u00e9"`, `"caf\u00e9"`, true},
		{"null", "null", true},
		{"", "", false},
		{"01", "", false},
		{"1.", "", false},
		{".5", "", false},
		{"+1", "", false},
		{"1e", "", false},
		{"NaN", "", false},
		{"true", "", false},
		{"{}", "", false},
		{"[1]", "", false},
		{`"a`, "", false},
		{`"a" "b"`, "", false},
		{"\"tab\there\"", "", false},
	} {
		id, err := ParseID([]byte(tt.in))
		if (err == nil) != tt.ok || (tt.ok && id.String() != tt.want) {
			t.Errorf("ParseID(%q) = %s, %v", tt.in, id, err)
		}
	}
}

func TestIDIdentity(t *testing.T) {
	parse := func(s string) ID {
		id, err := ParseID([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	m := map[ID]int{}
	for i, s := range []string{"1", "1.0", "1e0", `"1"`, "null"} {
		m[parse(s)] = i
	}
	if len(m) != 5 {
		t.Fatalf("distinct ids collided: %v", m)
	}
	if parse("1") != IntID(1) || parse(`"x"`) != StringID("x") || parse("null") != (ID{}) {
		t.Error("constructors disagree with ParseID")
	}
	if !(ID{}).IsNull() || IntID(0).IsNull() || !StringID("").IsString() || IntID(1).IsString() {
		t.Error("IsNull/IsString")
	}
	if string((ID{}).Raw()) != "null" || IntID(-5).String() != "-5" || StringID(`a"b`).String() != `"a\"b"` {
		t.Error("Raw/String")
	}
	// Canonical folds the spellings of one string, and nothing else.
	if parse(`"caf\u00e9"`).Canonical() != StringID("café") || parse(`"\/"`).Canonical() != StringID("/") {
		t.Error("Canonical of escaped strings")
	}
	if parse(`"caf\u00e9"`) == StringID("café") {
		t.Error("different spellings compare equal without Canonical")
	}
	if parse("1.0").Canonical() == IntID(1) {
		t.Error("Canonical changed a number")
	}
	if StringID("<&>").String() != `"<&>"` {
		t.Errorf("StringID escapes HTML: %s", StringID("<&>"))
	}
}

func TestIDJSON(t *testing.T) {
	var v struct {
		ID  ID `json:"id"`
		Req ID `json:"requestId"`
	}
	if err := json.Unmarshal([]byte(`{"id":"caf\u00e9","requestId":7}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID.String() != `"caf\u00e9"` || v.Req != IntID(7) {
		t.Fatalf("%+v", v)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"id":"caf\u00e9","requestId":7}` {
		t.Fatalf("%s %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"id":true}`), &v); err == nil {
		t.Fatal("bool id accepted")
	}
}

func TestIDAllocator(t *testing.T) {
	a, b := NewIDAllocator(), NewIDAllocator()
	seen := map[ID]bool{}
	for range 1000 {
		id := a.Next()
		if seen[id] || !id.IsString() || !strings.HasPrefix(id.String(), `"`+ReservedPrefix) {
			t.Fatalf("bad or repeated id %s", id)
		}
		seen[id] = true
		if !a.Owns(id) || b.Owns(id) || !IsReserved(id) {
			t.Fatalf("ownership of %s", id)
		}
	}
	if a.Next() == b.Next() {
		t.Fatal("two allocators share a nonce")
	}
	// A peer can spell the namespace with escapes; it is still reserved.
	escaped, _ := ParseID([]byte(`"acp-sandbox\u003a1"`))
	if !IsReserved(escaped) {
		t.Error("escaped reserved id not recognized")
	}
	// Owns sees through escapes too, so the response routes to Pending.
	raw := a.Next().String()
	esc, _ := ParseID([]byte(strings.Replace(raw, ":", `\u003a`, 1)))
	if !a.Owns(esc) {
		t.Errorf("Owns(%s) = false", esc)
	}
	for _, s := range []string{`1`, `"acp-sandbo"`, `"x-acp-sandbox:1"`, `null`} {
		id, _ := ParseID([]byte(s))
		if IsReserved(id) || a.Owns(id) {
			t.Errorf("%s reserved", s)
		}
	}
	fake := StringID(strings.TrimSuffix(strings.Trim(raw, `"`), "1002") + "x")
	if a.Owns(fake) {
		t.Errorf("Owns(%s) with a non-number tail", fake)
	}
}
