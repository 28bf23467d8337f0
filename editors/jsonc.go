package editors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// Settings files are JSON with comments and trailing commas (Zed's and VS
// Code's are; JetBrains' acp.json is plain JSON, a subset). hujson keeps the
// exact syntax tree, comments and whitespace included, so editing one member
// and packing the tree changes nothing else in the file. We edit the tree by
// hand rather than with Value.Patch + Format: Format would re-indent the
// user's whole file to hujson's taste; here new text copies the file's own
// indentation and newline style.

var utf8BOM = []byte("\xef\xbb\xbf")

// document is a parsed settings file and how it is laid out.
type document struct {
	src  []byte // without a BOM
	root hujson.Value
	bom  bool
	nl   string // "\n", or "\r\n" when the file uses that
	unit string // one level of indentation
}

var hujsonPosition = regexp.MustCompile(`^hujson: line (\d+), column (\d+): (.*)$`)

// syntaxError turns hujson's "hujson: line L, column C: msg" into a
// ConfigError, so callers can print it compiler-style as FILE:L:C: msg.
func syntaxError(err error) *ConfigError {
	m := hujsonPosition.FindStringSubmatch(err.Error())
	if m == nil {
		return &ConfigError{Msg: strings.TrimPrefix(err.Error(), "hujson: ")}
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	return &ConfigError{Line: line, Column: col, Msg: m[3]}
}

func parseDocument(b []byte) (*document, error) {
	d := &document{nl: "\n"}
	if rest, ok := bytes.CutPrefix(b, utf8BOM); ok {
		d.bom, b = true, rest
	}
	d.src = b
	if bytes.Contains(b, []byte("\r\n")) {
		d.nl = "\r\n"
	}
	d.unit = detectIndent(b)
	if hujson.Extra(b).IsValid() {
		// Empty, or only whitespace and comments (a file someone started
		// and left): an empty object after whatever is there.
		lead := strings.TrimRight(string(b), " \t\r\n")
		if lead != "" {
			lead += d.nl
		}
		d.root = hujson.Value{BeforeExtra: hujson.Extra(lead), Value: &hujson.Object{}, AfterExtra: hujson.Extra(d.nl)}
		return d, nil
	}
	v, err := hujson.Parse(b)
	if err != nil {
		return nil, syntaxError(err)
	}
	if _, ok := v.Value.(*hujson.Object); !ok {
		line, col := lineColumn(b, v.StartOffset)
		return nil, &ConfigError{Line: line, Column: col, Msg: fmt.Sprintf("the top level is %s, want an object of settings", kindName(v.Value.Kind()))}
	}
	d.root = v
	return d, nil
}

// pack serializes the document, BOM and all.
func (d *document) pack() []byte {
	out := d.root.Pack()
	if d.bom {
		out = append(slices.Clone(utf8BOM), out...)
	}
	return out
}

func lineColumn(b []byte, off int) (line, col int) {
	off = min(max(off, 0), len(b))
	line = 1 + bytes.Count(b[:off], []byte("\n"))
	col = 1 + off - (bytes.LastIndexByte(b[:off], '\n') + 1)
	return line, col
}

func kindName(k hujson.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "not a JSON value"
}

// detectIndent guesses one level of indentation from the file: a tab when the
// first indented line starts with one, else the smallest run of leading
// spaces on a line that starts a member. Two spaces when nothing is indented
// (Zed's and VS Code's own default).
func detectIndent(b []byte) string {
	smallest := 0
	for line := range strings.Lines(string(b)) {
		trimmed := strings.TrimLeft(line, " \t")
		if !strings.HasPrefix(trimmed, `"`) {
			continue
		}
		lead := line[:len(line)-len(trimmed)]
		if lead == "" {
			continue
		}
		if lead[0] == '\t' {
			return "\t"
		}
		if n := len(lead) - len(strings.TrimLeft(lead, " ")); n > 0 && (smallest == 0 || n < smallest) {
			smallest = n
		}
	}
	if smallest == 0 {
		return "  "
	}
	return strings.Repeat(" ", smallest)
}

// indentAt is the indentation of the source line holding offset off.
func (d *document) indentAt(off int) string {
	off = min(max(off, 0), len(d.src))
	start := bytes.LastIndexByte(d.src[:off], '\n') + 1
	end := start
	for end < len(d.src) && (d.src[end] == ' ' || d.src[end] == '\t') {
		end++
	}
	return string(d.src[start:end])
}

// member finds the first member of obj called name, as hujson's Find does.
func member(obj *hujson.Object, name string) *hujson.ObjectMember {
	for i := range obj.Members {
		if lit, ok := obj.Members[i].Name.Value.(hujson.Literal); ok && lit.String() == name {
			return &obj.Members[i]
		}
	}
	return nil
}

// field is one key of an object we write. Values are strings, string slices
// (written on one line, like the editors' own docs do) or nested []field.
type field struct {
	key string
	val any
}

// inline, as render's indent, writes objects on one line.
const inline = "\x00inline"

// render writes v as JSON text whose first line continues the current line
// and whose later lines are indented from indent, in the file's style.
func (d *document) render(v any, indent string) string {
	switch v := v.(type) {
	case string:
		return jsonString(v)
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = jsonString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []field:
		if len(v) == 0 {
			return "{}"
		}
		if indent == inline {
			parts := make([]string, len(v))
			for i, f := range v {
				parts[i] = jsonString(f.key) + ": " + d.render(f.val, inline)
			}
			return "{" + strings.Join(parts, ", ") + "}"
		}
		var b strings.Builder
		b.WriteString("{")
		for i, f := range v {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(d.nl + indent + d.unit + jsonString(f.key) + ": " + d.render(f.val, indent+d.unit))
		}
		b.WriteString(d.nl + indent + "}")
		return b.String()
	}
	panic(fmt.Sprintf("editors: cannot render %T", v))
}

// jsonString quotes s as JSON without the HTML escaping encoding/json does
// by default: a path with & in it should read as written.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// parseValue turns text we rendered back into a syntax tree node.
func parseValue(text string) hujson.ValueTrimmed {
	v, err := hujson.Parse([]byte(text))
	if err != nil {
		panic(fmt.Sprintf("editors: rendered invalid JSON %q: %v", text, err))
	}
	return v.Value
}

// appendMember adds `"name": value` as the last member of obj, whose own line
// is indented by objIndent. It follows the object's layout (one line or one
// member a line, trailing comma or not) and leaves comments where they were:
// a comment on the old last member's line stays on that line.
func (d *document) appendMember(obj *hujson.Object, objIndent, name string, value any) {
	n := len(obj.Members)
	after := string(obj.AfterExtra) // between the last member (or its comma) and '}'
	var indent, before string       // the new member's indentation and what precedes its name
	switch {
	case n == 0:
		// An empty object opens up; whatever it held (a comment, say)
		// goes above the new member.
		indent = objIndent + d.unit
		before = d.nl + indent
		if c := strings.TrimRight(after, " \t\r\n"); c != "" {
			before = c + before
		}
		after = d.nl + objIndent

	case oneLine(obj):
		// {"a": 1, "b": 2} stays on its line.
		indent, before = inline, " "

	default:
		indent = objIndent + d.unit
		if b := string(obj.Members[n-1].Name.BeforeExtra); strings.Contains(b, "\n") {
			indent = b[strings.LastIndex(b, "\n")+1:]
		}
		// What follows the old last member to the end of its line (its
		// comment) stays there; the rest (the newline, comments on lines
		// of their own, the closing brace's indentation) moves below the
		// new member.
		head, rest := after, d.nl+objIndent
		if i := strings.Index(after, "\n"); i >= 0 {
			if i > 0 && after[i-1] == '\r' {
				i--
			}
			head, rest = after[:i], after[i:]
		}
		before, after = head+d.nl+indent, rest
	}
	var trailing hujson.Extra // non-nil: a comma follows the new member
	if n > 0 && obj.Members[n-1].Value.AfterExtra != nil {
		trailing = hujson.Extra{} // the object had a trailing comma; keep one
	}
	obj.Members = append(obj.Members, hujson.ObjectMember{
		Name: hujson.Value{BeforeExtra: hujson.Extra(before), Value: hujson.String(name)},
		Value: hujson.Value{
			BeforeExtra: hujson.Extra(" "),
			Value:       parseValue(d.render(value, indent)),
			AfterExtra:  trailing,
		},
	})
	obj.AfterExtra = hujson.Extra(after)
}

// oneLine reports whether obj is written on a single line.
func oneLine(obj *hujson.Object) bool {
	v := hujson.Value{Value: obj}
	return !bytes.Contains(v.Pack(), []byte("\n"))
}

// decode reads a node's value with encoding/json semantics.
func decode(v hujson.Value, into any) error {
	v = v.Clone()
	v.Standardize()
	return json.Unmarshal(v.Pack(), into)
}

// sameValue reports whether node holds the JSON value want.
func sameValue(node hujson.Value, want any) bool {
	switch want := want.(type) {
	case string:
		var got string
		return decode(node, &got) == nil && got == want
	case []string:
		var got []string
		return decode(node, &got) == nil && slices.Equal(got, want)
	}
	return false
}
