package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration file, at the place it is
// written.
type Problem struct {
	File string // as given to Load or Check; "" for built-in values
	Pos         // zero when the place is unknown (then only File is printed)
	Msg  string // what is wrong and how to fix it
}

// Error spells the problem as FILE:LINE:COL: message, the form editors and
// terminals turn into links.
func (p Problem) Error() string {
	switch {
	case p.File == "":
		return p.Msg
	case p.Line == 0:
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
}

// Problems is every problem found while loading, in file order. Load and
// Check return it (as error) rather than stopping at the first problem, so a
// user fixes a file in one go. Use errors.As to get at the list.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// sorted returns the problems in file, line, column order, without
// duplicates (two checks may word the same fault the same way).
func (ps Problems) sorted() Problems {
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return slices.Compact(out)
}

// err returns ps as an error, or nil when empty (never a nil Problems in a
// non-nil interface).
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps.sorted()
}

// suggest returns `; did you mean "x"?` for the known word nearest to got,
// or "" when none is near enough to be a likely typo.
func suggest(got string, known []string) string {
	best, bestD := "", 0
	for _, k := range known {
		d := editDistance(strings.ToLower(got), strings.ToLower(k))
		if best == "" || d < bestD {
			best, bestD = k, d
		}
	}
	// One edit per three letters, at least one: "alow"→"allow",
	// "read-only"→"read_only", "memroy"→"memory", not "env"→"deny".
	if best == "" || bestD > max(1, len(got)/3) {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Damerau (optimal string alignment) distance: an
// adjacent swap, the commonest typo, counts as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
