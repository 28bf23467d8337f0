package acp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrDuplicateMember is returned by [UnmarshalStrict] for an object with two
// members whose names are equal or differ only in case.
var ErrDuplicateMember = errors.New("acp: duplicate member")

// UnmarshalStrict is json.Unmarshal for data the bridge inspects before
// forwarding it unchanged. It first refuses any object, at any depth, with two
// member names equal under case folding: given {"path":"/etc/x","PATH":"/ok"},
// encoding/json fills a Path field with "/ok" (it takes the last match and
// ignores case), while the editor (JavaScript, serde) reads path "/etc/x" —
// the bridge would check one path and the editor write another.
//
// Case alone is still read differently: {"PATH":"/ok"} decodes into Path but
// a case-sensitive peer sees no path. That is safe only if the peer refuses a
// message without the member (ACP's required fields); for an optional member
// the bridge inspects, check the exact name too.
func UnmarshalStrict(data []byte, v any) error {
	if err := checkMembers(data); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// checkMembers walks data's tokens and reports the first object with two
// member names that fold to the same key.
func checkMembers(data []byte) error {
	type frame struct {
		obj, wantName bool
		names         map[string]struct{}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers beyond float64 are not this check's business
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].obj {
			top := &stack[n-1]
			if top.wantName {
				name, _ := tok.(string)
				k := foldKey(name)
				if _, dup := top.names[k]; dup {
					return fmt.Errorf("%w %q", ErrDuplicateMember, name)
				}
				if top.names == nil {
					top.names = map[string]struct{}{}
				}
				top.names[k] = struct{}{}
				top.wantName = false
				continue
			}
			top.wantName = true // after this value comes a name or '}'
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, frame{obj: d == '{', wantName: d == '{'})
		}
	}
}
