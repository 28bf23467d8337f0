package editors

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tailscale/hujson"
)

// FuzzMerge checks the promise behind every install: whatever the settings
// file holds, the merged file parses, and everything in it but our entry
// means what it meant before (same values, the other agents untouched; in
// our own entry only type, command and args may change).
func FuzzMerge(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "merge", "*", "*.in.json"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	e := Entry{Name: "Claude Code (sandboxed)", Command: testExe, Args: []string{"--", "claude"}}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, ed := range []*Editor{zed, vscode} {
			d, err := parseDocument(in)
			if err != nil || hasDuplicateNames(d.root) {
				return // rejected with an error, or ambiguous to every reader
			}
			before, ok := meaning(d)
			if !ok {
				return
			}
			if _, err := d.merge(ed.json, e); err != nil {
				return // a container of the wrong type: reported, not written
			}
			out := d.pack()
			if err := check(ed.json, out, e); err != nil {
				t.Fatalf("%s: merged file %v:\n%s", ed.ID, err, out)
			}
			d2, err := parseDocument(out)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := meaning(d2)
			key := ed.json.container[0]
			wantServers, _ := before[key].(map[string]any)
			gotServers, _ := after[key].(map[string]any)
			delete(before, key)
			delete(after, key)
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("%s: settings other than %q changed:\n%s", ed.ID, key, out)
			}
			ours, _ := gotServers[e.Name].(map[string]any)
			if old, ok := wantServers[e.Name].(map[string]any); ok {
				old, ours = maps.Clone(old), maps.Clone(ours)
				for _, k := range []string{"type", "command", "args"} {
					delete(old, k)
					delete(ours, k)
				}
				if !reflect.DeepEqual(old, ours) {
					t.Fatalf("%s: our entry lost the user's fields:\n%s", ed.ID, out)
				}
			}
			delete(wantServers, e.Name)
			delete(gotServers, e.Name)
			if len(wantServers) > 0 && !reflect.DeepEqual(wantServers, gotServers) {
				t.Fatalf("%s: other agent servers changed:\n%s", ed.ID, out)
			}
		}
	})
}

// meaning is the document as encoding/json reads it.
func meaning(d *document) (map[string]any, bool) {
	var m map[string]any
	return m, decode(d.root, &m) == nil
}

func hasDuplicateNames(v hujson.Value) bool {
	dup := false
	v.Range(func(v *hujson.Value) bool {
		if obj, ok := v.Value.(*hujson.Object); ok {
			seen := map[string]bool{}
			for _, m := range obj.Members {
				name := m.Name.Value.(hujson.Literal).String()
				if seen[name] {
					dup = true
					return false
				}
				seen[name] = true
			}
		}
		return true
	})
	return dup
}
