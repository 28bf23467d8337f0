// Command walker walks a directory tree, lstat(2)ing every entry, and prints
// "walk entries=N ns=E" with the time the walk took. The bench copies this
// static binary into a workspace and runs it in the sandbox with
// `acp-sandbox exec`, so process start-up and the exec round trip stay out
// of the figure.
package main

import (
	"fmt"
	"os"

	"github.com/acp-sandbox/acp-sandbox/bench/internal/walk"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: walker DIR")
		os.Exit(2)
	}
	r, err := walk.Walk(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "walker:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}
