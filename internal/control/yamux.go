package control

import (
	"io"
	"time"

	"github.com/hashicorp/yamux"
)

// YamuxConfig is shared by both ends of the control channel.
func YamuxConfig(logw io.Writer) *yamux.Config {
	c := yamux.DefaultConfig()
	// The guest never speaks first and the host watches QEMU itself; under
	// TCG on a loaded host a guest can stall for long stretches, and
	// yamux's timers would then close the whole session (every exec and
	// the agent with it). Deadlines live on the callers' contexts instead.
	c.EnableKeepAlive = false
	c.StreamOpenTimeout = 0
	c.ConnectionWriteTimeout = 5 * time.Minute
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = logw
	return c
}
