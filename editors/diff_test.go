package editors

import "testing"

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{name: "equal", a: "x\n", b: "x\n", want: ""},
		{
			name: "new file",
			a:    "", b: "{\n}\n",
			want: "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+{\n+}\n",
		},
		{
			name: "change in the middle keeps three lines of context",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
			b:    "1\n2\n3\n4\nfive\n6\n7\n8\n9\n",
			want: "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
		},
		{
			name: "changes far apart make two hunks",
			a:    "a\n1\n2\n3\n4\n5\n6\n7\n8\nb\n",
			b:    "A\n1\n2\n3\n4\n5\n6\n7\n8\nB\n",
			want: "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-a\n+A\n 1\n 2\n 3\n@@ -7,4 +7,4 @@\n 6\n 7\n 8\n-b\n+B\n",
		},
		{
			name: "changes six lines apart share a hunk",
			a:    "a\n1\n2\n3\n4\n5\n6\nb\n",
			b:    "A\n1\n2\n3\n4\n5\n6\nB\n",
			want: "--- a\n+++ b\n@@ -1,8 +1,8 @@\n-a\n+A\n 1\n 2\n 3\n 4\n 5\n 6\n-b\n+B\n",
		},
		{
			name: "insertion",
			a:    "{\n  \"a\": 1\n}\n",
			b:    "{\n  \"a\": 1,\n  \"b\": 2\n}\n",
			want: "--- a\n+++ b\n@@ -1,3 +1,4 @@\n {\n-  \"a\": 1\n+  \"a\": 1,\n+  \"b\": 2\n }\n",
		},
		{
			name: "one-line hunks drop the count",
			a:    "x\n",
			b:    "y\n",
			want: "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n",
		},
		{
			name: "no newline at end of file",
			a:    "{\n}",
			b:    "{\n  \"a\": 1\n}",
			want: "--- a\n+++ b\n@@ -1,2 +1,3 @@\n {\n+  \"a\": 1\n }\n\\ No newline at end of file\n",
		},
		{
			name: "adding the final newline",
			a:    "x",
			b:    "x\n",
			want: "--- a\n+++ b\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("a", "b", []byte(tt.a), []byte(tt.b)); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
