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
	// TCG a busy guest can stall long enough to trip keepalives.
	c.EnableKeepAlive = false
	c.ConnectionWriteTimeout = time.Minute
	c.StreamOpenTimeout = time.Minute
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = logw
	return c
}
