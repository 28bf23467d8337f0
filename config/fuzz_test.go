package config

import (
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var fuzzEnv = parseEnv{
	kind: workspaceLayer, home: "/home/u", workspace: "/ws",
	protected:      []string{"/home/u/.config/acp-sandbox", "/state/acp-sandbox"},
	evalSymlinksFn: func(p string) (string, error) { return p, nil },
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// FuzzLoad: whatever the bytes, loading never panics; it returns a layer
// or problems, never both nor neither; every problem has a place inside the
// file; and for every text the TOML library accepts, the position scanner
// finds every key the library found (so no message falls back to a vaguer
// place than it should).
func FuzzLoad(f *testing.F) {
	// Small seeds: the fuzzer mutates them fast, and testdata/fuzz/FuzzLoad
	// holds one per construct (the repository's full example is covered by
	// TestRepoExample).
	for _, s := range []string{
		"[sandbox]\ncpus = = 2\n",
		"a.b.c = 1\n[x]\n\"q\\\"k\" = [1, {y = 2}]\n",
		"[[t]]\n[[t.u]]\n[t.u.v]\nw = '''\n'''\n",
		"d = 1979-05-27 07:32:00Z\ne = [\n# c\n]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		env := fuzzEnv
		l, probs := parseLayer("f.toml", src, &env)
		if (l == nil) == (probs == nil) {
			t.Fatalf("parseLayer returned layer %v and problems %v", l != nil, probs)
		}
		lines := strings.Count(string(src), "\n") + 1
		for _, p := range probs {
			if p.Line < 1 || p.Col < 1 || p.Line > lines {
				t.Fatalf("problem outside the file (%d lines): %v", lines, p)
			}
		}
		if l != nil {
			if c, _ := merge([]*layer{l}, nil); c != nil {
				_ = c.Explain()
				_ = c.Values()
			}
		}
		md, err := toml.Decode(string(src), new(map[string]any))
		if err != nil {
			return
		}
		have := map[string]bool{}
		for k := range scanPositions(string(src)).keys {
			have[indexRE.ReplaceAllString(k, "")] = true
		}
		for _, k := range md.Keys() {
			var p path
			for _, s := range k {
				p = p.key(s)
			}
			if ks := indexRE.ReplaceAllString(p.String(), ""); !have[ks] {
				t.Fatalf("scanner missed key %s in:\n%s", ks, src)
			}
		}
	})
}
