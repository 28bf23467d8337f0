// Command lines is a raw-channel baseline of the bench's bridge figures.
// The bench copies this static binary into a workspace and runs it in the
// sandbox with `acp-sandbox exec -i`, with no ACP bridge in between. For
// each request line "MODE ARG" on stdin it writes to stdout:
//
//	lines PATH  the file PATH, one write per line, as an ACP agent writes
//	            its messages
//	bulk PATH   the file PATH in 64 KiB writes, as cat does
//	echo TEXT   TEXT and a newline: an echo by a Go process, the agent's
//	            language, to set next to cat's
//
// A file is read once and kept, so a request costs only the writes: the
// process is already running, as the agent is when a prompt arrives. EOF
// on stdin ends it.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

func main() {
	files := map[string][]byte{}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		mode, path, _ := strings.Cut(in.Text(), " ")
		if mode == "echo" {
			if _, err := os.Stdout.Write([]byte(path + "\n")); err != nil {
				os.Exit(1)
			}
			continue
		}
		data, ok := files[path]
		if !ok {
			var err error
			if data, err = os.ReadFile(path); err != nil {
				fmt.Fprintln(os.Stderr, "lines:", err)
				os.Exit(1)
			}
			files[path] = data
		}
		var err error
		switch mode {
		case "lines":
			for rest := data; len(rest) > 0 && err == nil; {
				n := bytes.IndexByte(rest, '\n') + 1
				if n == 0 {
					n = len(rest)
				}
				_, err = os.Stdout.Write(rest[:n])
				rest = rest[n:]
			}
		case "bulk":
			for rest := data; len(rest) > 0 && err == nil; {
				n := min(len(rest), 64<<10)
				_, err = os.Stdout.Write(rest[:n])
				rest = rest[n:]
			}
		default:
			fmt.Fprintf(os.Stderr, "lines: unknown mode %q\n", mode)
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "lines:", err)
			os.Exit(1)
		}
	}
}
