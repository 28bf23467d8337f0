// Command acp-sandbox runs coding agents in a microVM per workspace. The same
// static binary is the guest's PID 1: the host copies it into the initramfs
// as /init.
package main

import (
	"os"

	"github.com/acp-sandbox/acp-sandbox/guest"
	"github.com/acp-sandbox/acp-sandbox/internal/cli"
)

func main() {
	if os.Getpid() == 1 {
		guest.Main()
		return
	}
	os.Exit(cli.Main(os.Args[1:]))
}
