package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/spf13/cobra"
)

// showNetworkLog prints a sandbox's network audit log readably; with
// follow it keeps printing new decisions until interrupted.
func showNetworkLog(ctx context.Context, w io.Writer, path string, deniedOnly, follow bool) error {
	print := func(line []byte) {
		var e netstack.Event
		if json.Unmarshal(line, &e) != nil || (deniedOnly && e.Verdict == netstack.VerdictAllow) {
			return
		}
		fmt.Fprintln(w, formatEvent(e, true))
	}
	f, err := os.Open(path)
	if err != nil && !(follow && errors.Is(err, fs.ErrNotExist)) {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no network log yet (%s): the sandbox has not started since networking was added", path)
		}
		return err
	}
	var off int64
	if f != nil {
		// The rotated-out half first, if any: the log reads in order.
		if old, err := os.ReadFile(path + ".1"); err == nil {
			eachLine(old, print)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		off = int64(len(b) - len(eachLine(b, print)))
	}
	if !follow {
		return nil
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return followLines(ctx, path, off, print)
}

// eachLine calls fn for each complete line of b and returns the rest.
func eachLine(b []byte, fn func([]byte)) []byte {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return b
		}
		if i > 0 {
			fn(b[:i])
		}
		b = b[i+1:]
	}
}

// followLines calls fn for each line appended to path from off on, until
// ctx ends. A file that shrank was rotated or recreated: read it from the
// start.
func followLines(ctx context.Context, path string, off int64, fn func([]byte)) error {
	var partial []byte
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if f, err := os.Open(path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < off {
				off, partial = 0, nil
			}
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				b, _ := io.ReadAll(f)
				off += int64(len(b))
				partial = eachLine(append(partial, b...), fn)
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// formatEvent is one decision on one line: time, verdict, protocol, what,
// the rule and, for denials and errors, why.
func formatEvent(e netstack.Event, withDate bool) string {
	ts := e.Time.Local().Format("15:04:05")
	if withDate {
		ts = e.Time.Local().Format("2006-01-02 15:04:05")
	}
	line := fmt.Sprintf("%s  %-5s  %-3s  %-32s  %s", ts, strings.ToUpper(e.Verdict), e.Proto, eventTarget(e), e.Rule)
	if e.Verdict != netstack.VerdictAllow && e.Reason != "" {
		line += "\n    " + e.Reason
	}
	if e.Suppressed > 0 {
		line += fmt.Sprintf("\n    (%d more like it not logged)", e.Suppressed)
	}
	return line
}

func eventTarget(e netstack.Event) string {
	var port string
	if e.Port != 0 {
		port = fmt.Sprintf(":%d", e.Port)
	}
	switch {
	case e.Name != "" && e.IP.IsValid():
		return fmt.Sprintf("%s%s (%s)", e.Name, port, e.IP)
	case e.Name != "":
		return e.Name + port
	case e.IP.IsValid():
		return e.IP.String() + port
	}
	return "?"
}

func newWhyCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "why",
		Short: "Explain recent network blocks (works inside the sandbox too)",
		Long: `List the sandbox's recent blocked DNS lookups and connections, each with
the rule that blocked it and the rule that would allow it.

Inside the VM it reads what the host shares read-only at ` + control.NetInfoDir + `;
on the host it reads the workspace's sandbox. The rules themselves are the
user's: the agent cannot change them from inside the sandbox.`,
		Example: `  acp-sandbox why              (in the VM, e.g. after "Could not resolve host")
  acp-sandbox why --json
  acp-sandbox -w ~/src/app why`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(control.NetInfoDir, control.NetBlockedFile)
			if _, err := os.Stat(path); err != nil {
				sb, err := g.workspaceSandbox()
				if err != nil {
					return err
				}
				path = filepath.Join(sb.NetInfoDir(), control.NetBlockedFile)
			}
			events, err := readEvents(path)
			if err != nil {
				return err
			}
			if limit > 0 && len(events) > limit {
				events = events[len(events)-limit:]
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, e := range events {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			explainBlocks(os.Stdout, events)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the blocks as JSON lines")
	cmd.Flags().IntVarP(&limit, "number", "n", 0, "show only the last N blocks")
	return cmd
}

func readEvents(path string) ([]netstack.Event, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netstack.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e netstack.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// explainBlocks prints blocks grouped by what was blocked, most recent
// last, with the fix.
func explainBlocks(w io.Writer, events []netstack.Event) {
	if len(events) == 0 {
		fmt.Fprintln(w, "Nothing was blocked recently.")
		return
	}
	type group struct {
		e     netstack.Event
		count int
	}
	var order []string
	groups := map[string]*group{}
	for _, e := range events {
		key := strings.Join([]string{e.Proto, eventTarget(e), e.Rule}, "\x00")
		if g, ok := groups[key]; ok {
			g.count++
			g.e = e
			continue
		}
		groups[key] = &group{e: e, count: 1}
		order = append(order, key)
	}
	fmt.Fprintln(w, "Recently blocked (oldest first):")
	for _, k := range order {
		g := groups[k]
		times := ""
		if g.count > 1 {
			times = fmt.Sprintf(" (%d times)", g.count)
		}
		fmt.Fprintf(w, "\n  %s  %s %s%s\n    rule: %s\n", g.e.Time.Local().Format("15:04:05"), g.e.Proto, eventTarget(g.e), times, g.e.Rule)
		if g.e.Reason != "" {
			fmt.Fprintf(w, "    %s\n", g.e.Reason)
		}
	}
	fmt.Fprintln(w, "\nThe network rules are the user's, set on the host (--allow/--deny, later sandbox.toml);")
	fmt.Fprintln(w, "nothing inside the sandbox can change them. Ask the user to allow what the task needs.")
}
