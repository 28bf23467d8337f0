package guest

import (
	"fmt"
	"log"
	"net"
	"os"
	"sync"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/hashicorp/yamux"
)

type server struct {
	version string
	boot    *control.Boot
	port    *os.File

	// netDone is closed when the network is configured (or failed:
	// netErr). Setup waits for it, so the host's "ready" includes the
	// network while DHCP overlaps the host's setup round trip.
	netDone <-chan struct{}
	netErr  *error

	mu  sync.Mutex
	env []string // from Setup
}

func (s *server) serve() error {
	sess, err := yamux.Server(s.port, control.YamuxConfig(log.Writer()))
	if err != nil {
		return err
	}
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return fmt.Errorf("control channel closed: %w", err)
		}
		go s.handle(st)
	}
}

func (s *server) handle(st net.Conn) {
	w := control.NewWriter(st)
	var req control.Request
	if err := control.ReadJSON(st, control.TypeJSON, &req); err != nil {
		log.Printf("control: bad request: %v", err)
		st.Close()
		return
	}
	switch {
	case req.Op == control.OpHello:
		_ = w.JSON(control.TypeJSON, control.Reply{Hello: &control.Hello{Version: s.version}})
	case req.Op == control.OpSetup && req.Setup != nil:
		err := control.ReadSetupData(st, req.Setup)
		if err == nil {
			err = applySetup(req.Setup)
		}
		if err == nil {
			<-s.netDone
			err = *s.netErr
		}
		if err == nil {
			s.mu.Lock()
			s.env = req.Setup.Env
			s.mu.Unlock()
		}
		_ = w.JSON(control.TypeJSON, replyErr(err))
	case req.Op == control.OpExec && req.Exec != nil:
		s.execStream(st, w, req.Exec)
		return
	case req.Op == control.OpPoweroff:
		_ = w.JSON(control.TypeJSON, control.Reply{})
		st.Close()
		log.Printf("poweroff requested by host")
		powerOff()
	default:
		_ = w.JSON(control.TypeJSON, control.Reply{Error: fmt.Sprintf("unknown operation %q", req.Op)})
	}
	st.Close()
}

func replyErr(err error) control.Reply {
	if err != nil {
		return control.Reply{Error: err.Error()}
	}
	return control.Reply{}
}
