// Command linemem splits the bench's bridge memory figure: in a fresh
// process, it runs one part of the bridge's host-side path for one long
// line and prints "base=B peak=P bytes=N alloc=A": the process's VmRSS
// before the line and its VmHWM after, the line's size and the bytes the
// process allocated (runtime.MemStats.TotalAlloc). The line comes on
// stdin, as the editor sends it to the bridge.
//
//	read    acp.Reader.ReadLine, which the bridge reads each direction with
//	relay   bridge.Run with stdin as the editor and the agent's stdin an
//	        io.Pipe drained by io.Copy into io.Discard
//	frames  relay, the drain framing what it copies as sandbox.Client.Exec
//	        does (control.StreamWriter, here over io.Discard): the bridge
//	        process's path but for the socket
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/bridge"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: linemem read|relay|frames < LINE")
		os.Exit(2)
	}
	base := status("VmRSS:")
	var n int64
	var err error
	switch os.Args[1] {
	case "read":
		var line []byte
		line, err = acp.NewReader(os.Stdin, 0).ReadLine()
		n = int64(len(line))
		runtime.KeepAlive(line)
	case "relay", "frames":
		n, err = relay(os.Args[1] == "frames")
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "linemem:", err)
		os.Exit(1)
	}
	peak := status("VmHWM:")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("base=%d peak=%d bytes=%d alloc=%d\n", base, peak, n, ms.TotalAlloc)
}

// relay runs the bridge from stdin to a drained agent until stdin ends and
// returns how many bytes reached the agent.
func relay(frames bool) (int64, error) {
	agInR, agInW := io.Pipe()
	agOutR, agOutW := io.Pipe()
	done := make(chan error, 1)
	copied := make(chan int64, 1)
	go func() {
		var dst io.Writer = io.Discard
		if frames {
			dst = control.StreamWriter{W: control.NewWriter(io.Discard), Type: control.TypeStdin}
		}
		n, _ := io.Copy(dst, agInR)
		agOutW.Close()
		copied <- n
		done <- nil
	}()
	ws, err := os.MkdirTemp("", "linemem")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(ws)
	err = bridge.Run(context.Background(), bridge.Options{Workspace: ws, ExecPrefix: []string{"true"}},
		bridge.Editor{In: os.Stdin, Out: io.Discard}, bridge.Agent{Stdin: agInW, Stdout: agOutR, Done: done})
	return <-copied, err
}

// status reads one "Name: N kB" line of /proc/self/status, in bytes.
func status(name string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == name {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
