package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestPositions: the scanner finds keys and values where they are written,
// through everything TOML allows between them.
func TestPositions(t *testing.T) {
	src := strings.Join([]string{
		`# comment [not.a.table]`,                  // 1
		`top = 1979-05-27 07:32:00Z # a date-time`, // 2
		`[ a . "b.c" ]`,                            // 3
		`  d.e = 'lit' # x = 1`,                    // 4
		`  "q\u0041" = """`,                        // 5
		`x = 1 "" ""`,                              // 6
		`"""`,                                      // 7
		`  arr = [ 1, [2, 3], { k = "v" },`,        // 8
		`    # inside`,                             // 9
		`    "last", ]`,                            // 10
		`[[t]]`,                                    // 11
		`n = 0`,                                    // 12
		`[[t.sub]]`,                                // 13
		`m = 1`,                                    // 14
		`[[t]]`,                                    // 15
		`[t.tab]`,                                  // 16
		`	n = '''a''''`,                            // 17
		`inl = [{ p = 1 }, { p = 2 }]`,             // 18
	}, "\n") + "\n"
	if _, err := toml.Decode(src, new(map[string]any)); err != nil {
		t.Fatalf("test document is not TOML: %v", err)
	}
	ps := scanPositions(src)
	for _, tc := range []struct {
		path string
		key  Pos // zero: not checked
		val  Pos
	}{
		{path: "top", key: Pos{2, 1}, val: Pos{2, 7}},
		{path: "a", key: Pos{3, 3}},
		{path: `a."b.c"`, key: Pos{3, 7}},
		{path: `a."b.c".d`, key: Pos{4, 3}},
		{path: `a."b.c".d.e`, key: Pos{4, 5}, val: Pos{4, 9}},
		{path: `a."b.c".qA`, key: Pos{5, 3}, val: Pos{5, 15}},
		{path: `a."b.c".arr`, key: Pos{8, 3}, val: Pos{8, 9}},
		{path: `a."b.c".arr[0]`, val: Pos{8, 11}},
		{path: `a."b.c".arr[1]`, val: Pos{8, 14}},
		{path: `a."b.c".arr[1][1]`, val: Pos{8, 18}},
		{path: `a."b.c".arr[2]`, val: Pos{8, 22}},
		{path: `a."b.c".arr[2].k`, key: Pos{8, 24}, val: Pos{8, 28}},
		{path: `a."b.c".arr[3]`, val: Pos{10, 5}},
		{path: "t", key: Pos{11, 3}},
		{path: "t[0]", key: Pos{11, 1}},
		{path: "t[0].n", key: Pos{12, 1}, val: Pos{12, 5}},
		{path: "t[0].sub[0]", key: Pos{13, 1}},
		{path: "t[0].sub[0].m", key: Pos{14, 1}},
		{path: "t[1]", key: Pos{15, 1}},
		{path: "t[1].tab", key: Pos{16, 4}},
		{path: "t[1].tab.n", key: Pos{17, 2}, val: Pos{17, 6}},
		{path: "t[1].tab.inl[1]", val: Pos{18, 19}},
		{path: "t[1].tab.inl[1].p", key: Pos{18, 21}, val: Pos{18, 25}},
	} {
		if tc.key != (Pos{}) && ps.keys[tc.path] != tc.key {
			t.Errorf("key %s at %v, want %v", tc.path, ps.keys[tc.path], tc.key)
		}
		if tc.val != (Pos{}) && ps.vals[tc.path] != tc.val {
			t.Errorf("value %s at %v, want %v", tc.path, ps.vals[tc.path], tc.val)
		}
	}
	// Nothing inside comments or strings was taken for a key.
	for k := range ps.keys {
		if strings.HasPrefix(k, "not") || k == "x" || strings.HasSuffix(k, ".x") {
			t.Errorf("scanner indexed %q from a comment or string", k)
		}
	}
}

// TestPositionFallback: a path the scanner does not know reports the
// nearest enclosing position, never line 0 when an ancestor is known.
func TestPositionFallback(t *testing.T) {
	ps := scanPositions("[network]\nallow = [\"a\"]\n")
	if got := ps.at(path{}.key("network").key("allow").idx(5)); got != (Pos{2, 9}) {
		t.Errorf("unknown element falls back to %v, want the array at 2:9", got)
	}
	if got := ps.at(path{}.key("sandbox")); got != (Pos{}) {
		t.Errorf("unknown table = %v, want zero", got)
	}
}

func TestPathString(t *testing.T) {
	p := path{}.key("agents").key("my agent").key("credentials").idx(2).key("host")
	if got, want := p.String(), `agents."my agent".credentials[2].host`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	if got, want := p[:4].table(), `[[agents."my agent".credentials]]`; got != want {
		t.Errorf("table = %s, want %s", got, want)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"preset", "allow", "deny", "host_ports", "http"}
	for got, want := range map[string]string{
		"alow":       `; did you mean "allow"?`,
		"Allow":      `; did you mean "allow"?`,
		"allowed":    `; did you mean "allow"?`,
		"host-ports": `; did you mean "host_ports"?`,
		"hostports":  `; did you mean "host_ports"?`,
		"presest":    `; did you mean "preset"?`,
		"dney":       `; did you mean "deny"?`, // a swap is one edit
		"env":        "",                       // too far from "deny" for a three-letter key
		"colour":     "",
	} {
		if s := suggest(got, known); s != want {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}
