package editors

import (
	"fmt"

	"github.com/tailscale/hujson"
)

// Action is what installing an entry does to a settings file.
type Action int

const (
	Unchanged Action = iota // an entry with our name and the same command is there
	Added                   // a new entry (and maybe a new file)
	Updated                 // an entry with our name had another command: we changed it
)

func (a Action) String() string {
	switch a {
	case Added:
		return "added"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// ConfigError is a settings file whose text or shape we cannot work with,
// at a 1-based line and column (0 when unknown).
type ConfigError struct {
	Line, Column int
	Msg          string
}

func (e *ConfigError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

// fields are the members of e as format writes them.
func (f *jsonFormat) fields(e Entry) []field {
	return append(append([]field{}, f.lead...),
		field{"command", e.Command},
		field{"args", e.Args},
	)
}

// merge puts e into the document: it adds the entry (and the objects holding
// it) when missing, and when an entry by that name exists it rewrites only
// the fields we own (type, command, args) and keeps whatever else the user
// added to it (env, default_model, …).
func (d *document) merge(f *jsonFormat, e Entry) (Action, error) {
	obj := d.root.Value.(*hujson.Object)
	objIndent := d.indentAt(d.root.StartOffset)
	for i, key := range f.container {
		m := member(obj, key)
		if m == nil {
			// Build the missing objects around the entry in one go.
			var val any = []field{{e.Name, f.fields(e)}}
			for j := len(f.container) - 1; j > i; j-- {
				val = []field{{f.container[j], val}}
			}
			d.appendMember(obj, objIndent, key, val)
			return Added, nil
		}
		next, ok := m.Value.Value.(*hujson.Object)
		if !ok {
			return 0, d.notServers(key, m)
		}
		obj, objIndent = next, d.indentAt(m.Name.StartOffset)
	}

	want := f.fields(e)
	m := member(obj, e.Name)
	if m == nil {
		d.appendMember(obj, objIndent, e.Name, want)
		return Added, nil
	}
	indent := d.indentAt(m.Name.StartOffset)
	entry, ok := m.Value.Value.(*hujson.Object)
	if !ok {
		// Our name, but not an agent server at all: replace the value.
		m.Value.Value = parseValue(d.render(want, indent))
		return Updated, nil
	}
	action := Unchanged
	for _, fl := range want {
		fm := member(entry, fl.key)
		switch {
		case fm == nil:
			d.appendMember(entry, indent, fl.key, fl.val)
		case !sameValue(fm.Value, fl.val):
			// Keep the comments around the old value; replace the value.
			fm.Value.Value = parseValue(d.render(fl.val, d.indentAt(fm.Name.StartOffset)))
		default:
			continue
		}
		action = Updated
	}
	return action, nil
}

// lookup finds the agent servers object of format f, or nil when the file
// has none yet.
func (d *document) lookup(f *jsonFormat) (*hujson.Object, error) {
	obj := d.root.Value.(*hujson.Object)
	for _, key := range f.container {
		m := member(obj, key)
		if m == nil {
			return nil, nil
		}
		next, ok := m.Value.Value.(*hujson.Object)
		if !ok {
			return nil, d.notServers(key, m)
		}
		obj = next
	}
	return obj, nil
}

// servers reads every agent server in the document.
func (d *document) servers(f *jsonFormat) ([]Entry, error) {
	obj, err := d.lookup(f)
	if obj == nil || err != nil {
		return nil, err
	}
	var out []Entry
	for _, m := range obj.Members {
		var s struct {
			Command string   `json:"command"`
			Args    []string `json:"args"`
		}
		_ = decode(m.Value, &s) // a malformed entry is still an entry: show what we can
		name, _ := m.Name.Value.(hujson.Literal)
		out = append(out, Entry{Name: name.String(), Command: s.Command, Args: s.Args})
	}
	return out, nil
}

// notServers is the error for a container key holding something else.
func (d *document) notServers(key string, m *hujson.ObjectMember) error {
	line, col := lineColumn(d.src, m.Value.StartOffset)
	return &ConfigError{Line: line, Column: col, Msg: fmt.Sprintf(
		"%q is %s, want an object that maps agent names to their commands", key, kindName(m.Value.Value.Kind()))}
}
