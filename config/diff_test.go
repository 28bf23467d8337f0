package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	lines := func(n int, f string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, f+"\n", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"equal", "a\n", "a\n", ""},
		{"insert in the middle", "a\nb\nc\n", "a\nb\nx\nc\n",
			"@@ -1,3 +1,4 @@\n a\n b\n+x\n c\n"},
		{"from nothing", "", "a\nb\n",
			"@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"to nothing", "a\n", "",
			"@@ -1 +0,0 @@\n-a\n"},
		{"missing final newline", "a\nb\n", "a\nb",
			"@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n"},
		{"changed block: old lines, then new", "k = 1\nx = 1\ny = 1\nz = 1\n", "k = 1\nx = 2\ny = 2\nz = 1\n",
			"@@ -1,4 +1,4 @@\n k = 1\n-x = 1\n-y = 1\n+x = 2\n+y = 2\n z = 1\n"},
		// Repeated lines ("]") are matched as a person would.
		{"repeated lines", "a = [\n  \"x\",\n]\nb = [\n]\n", "a = [\n  \"x\",\n  \"y\",\n]\nb = [\n]\n",
			"@@ -1,5 +1,6 @@\n a = [\n   \"x\",\n+  \"y\",\n ]\n b = [\n ]\n"},
		{"two hunks", lines(20, "l%d"), strings.Replace(strings.Replace(lines(20, "l%d"), "l2\n", "L2\n", 1), "l18\n", "L18\n", 1),
			"@@ -1,5 +1,5 @@\n l1\n-l2\n+L2\n l3\n l4\n l5\n@@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+L18\n l19\n l20\n"},
		{"close changes share a hunk", lines(10, "l%d"), strings.Replace(strings.Replace(lines(10, "l%d"), "l3\n", "L3\n", 1), "l8\n", "L8\n", 1),
			"@@ -1,10 +1,10 @@\n l1\n l2\n-l3\n+L3\n l4\n l5\n l6\n l7\n-l8\n+L8\n l9\n l10\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unifiedDiff("old", "new", []byte(tc.old), []byte(tc.new))
			want := tc.want
			if want != "" {
				want = "--- old\n+++ new\n" + want
			}
			if got != want {
				t.Errorf("diff:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A diff too large for the table still says every changed line.
func TestUnifiedDiffLarge(t *testing.T) {
	var a, b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
	}
	got := unifiedDiff("old", "new", []byte(a.String()), []byte(b.String()))
	var del, ins int
	for _, l := range strings.Split(got, "\n")[2:] { // after the --- and +++ lines
		switch {
		case strings.HasPrefix(l, "-"):
			del++
		case strings.HasPrefix(l, "+"):
			ins++
		}
	}
	if del != 3000 || ins != 3000 {
		t.Errorf("%d deletions and %d insertions, want 3000 each", del, ins)
	}
}
