package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/sniff"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// handleTCP decides one SYN from the guest. gVisor runs it in its own
// goroutine, which enter adopts.
func (s *Stack) handleTCP(r *tcp.ForwarderRequest) {
	if !s.enter() {
		r.Complete(true)
		return
	}
	defer s.wg.Done()

	id := r.ID()
	dst, port := addrFrom(id.LocalAddress), int(id.LocalPort)
	ev := Event{Proto: ProtoTCP, IP: dst, Port: port}

	if Subnet.Contains(dst) || !dst.Is4() {
		ev.Verdict, ev.Rule = VerdictDeny, RuleSandboxNet
		ev.Reason = fmt.Sprintf("connection to %s denied: the gateway and the sandbox subnet %s are not forwarded", net.JoinHostPort(dst.String(), strconv.Itoa(port)), Subnet)
		s.audit(ev)
		r.Complete(true)
		return
	}
	d := s.cfg.Policy.AllowIP(dst, port, s.pins)
	if !d.Allow {
		ev.Verdict, ev.Rule, ev.Reason = VerdictDeny, d.Rule, d.Reason
		s.audit(ev)
		r.Complete(true)
		return
	}

	// Allowed by an address pattern: no name to check. Allowed through a
	// pin: on 443 and 80 the name the client sends must be pinned there too
	// (no domain fronting to another tenant of a shared address).
	byAddr := s.cfg.Policy.AllowIP(dst, port, nil).Allow
	if byAddr || (port != tlsPort && port != httpPt) {
		ev.Verdict, ev.Rule, ev.Reason = VerdictAllow, d.Rule, d.Reason
		s.audit(ev)
		up, err := s.dial(dst, port)
		if err != nil {
			ev.Verdict, ev.Reason = VerdictError, err.Error()
			s.audit(ev)
			r.Complete(true)
			return
		}
		guest, err := accept(r)
		if err != nil {
			_ = up.Close()
			return
		}
		s.splice(guest, up, nil)
		return
	}

	guest, err := accept(r)
	if err != nil {
		return
	}
	prefix, name, rule, err := s.peekName(guest, dst, port)
	ev.Name = name
	if err != nil {
		ev.Verdict, ev.Rule, ev.Reason = VerdictDeny, rule, err.Error()
		s.audit(ev)
		guest.reset()
		return
	}
	nd := s.cfg.Policy.AllowName(name, port)
	if !nd.Allow {
		ev.Verdict, ev.Rule, ev.Reason = VerdictDeny, nd.Rule, nd.Reason
		s.audit(ev)
		guest.reset()
		return
	}
	ev.Verdict, ev.Rule, ev.Reason = VerdictAllow, nd.Rule, nd.Reason
	s.audit(ev)
	up, err := s.dial(dst, port)
	if err != nil {
		ev.Verdict, ev.Reason = VerdictError, err.Error()
		s.audit(ev)
		guest.reset()
		return
	}
	s.splice(guest, up, prefix)
}

// guestConn is the guest side of an accepted flow.
type guestConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// reset closes the connection with an RST (SO_LINGER 0, as on a host
// socket). Unlike Endpoint.Abort it is safe after, or concurrently with,
// Close: a closed endpoint ignores it.
func (g guestConn) reset() {
	g.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	_ = g.Close()
}

// accept completes the guest's handshake.
func accept(r *tcp.ForwarderRequest) (guestConn, error) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		return guestConn{}, fmt.Errorf("netstack: cannot accept: %s", terr)
	}
	r.Complete(false)
	return guestConn{gonet.NewTCPConn(&wq, ep), ep}, nil
}

// peekName reads the TLS ClientHello (port 443) or HTTP request head (80)
// and returns the bytes read and the name, which must be pinned to dst. On
// error, rule names the check that failed.
func (s *Stack) peekName(guest guestConn, dst netip.Addr, port int) (prefix []byte, name, rule string, err error) {
	stop := context.AfterFunc(s.ctx, func() { _ = guest.Close() })
	defer stop()
	_ = guest.SetReadDeadline(time.Now().Add(PeekTimeout))
	defer func() { _ = guest.SetReadDeadline(time.Time{}) }()
	if port == tlsPort {
		rule = RuleSNI
		p, info, err := sniff.Peek(guest, peekMaxBytes)
		if err != nil {
			return nil, "", rule, fmt.Errorf("connection to %s denied: no usable TLS server name: %w", hostPort(dst, port), err)
		}
		prefix, name = p, info.SNI
	} else {
		rule = RuleHost
		p, info, err := sniff.PeekHTTP(guest, peekMaxBytes)
		if err != nil {
			return nil, "", rule, fmt.Errorf("connection to %s denied: no usable HTTP Host: %w", hostPort(dst, port), err)
		}
		prefix, name = p, info.Host
	}
	if !s.pins.SNIMatches(dst, name) {
		return nil, name, rule, fmt.Errorf("connection to %s denied: %s did not resolve to %s through the sandbox's DNS", hostPort(dst, port), name, dst)
	}
	return prefix, name, "", nil
}

func hostPort(ip netip.Addr, port int) string {
	return netip.AddrPortFrom(ip, uint16(port)).String()
}

// dial opens an allowed flow upstream, waiting for one of MaxDials slots;
// DialTimeout bounds the wait and the dial together.
func (s *Stack) dial(dst netip.Addr, port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	select {
	case s.dials <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("cannot dial %s: no dial slot free: %w", hostPort(dst, port), ctx.Err())
	}
	defer func() { <-s.dials }()
	c, err := s.cfg.Dialer.DialContext(ctx, "tcp", hostPort(dst, port))
	if err != nil {
		return nil, fmt.Errorf("cannot dial %s: %w", hostPort(dst, port), err)
	}
	return c, nil
}

// splice copies both ways until both directions are done, passing each
// side's EOF on as a half-close. prefix (bytes already read from the guest)
// goes upstream first. Close of the Stack ends it.
func (s *Stack) splice(guest guestConn, up net.Conn, prefix []byte) {
	stop := context.AfterFunc(s.ctx, func() {
		_ = guest.Close()
		_ = up.Close()
	})
	defer stop()
	defer func() {
		_ = guest.Close()
		_ = up.Close()
	}()
	if len(prefix) > 0 {
		if _, err := up.Write(prefix); err != nil {
			guest.reset()
			return
		}
	}
	done := make(chan struct{})
	go func() { // owned: splice waits for it below
		defer close(done)
		_, err := io.Copy(up, guest)
		halfClose(up, err, func() { guest.reset() })
	}()
	_, err := io.Copy(guest, up)
	halfClose(guest.TCPConn, err, func() { guest.reset(); _ = up.Close() })
	<-done
}

// halfClose passes a clean EOF on as CloseWrite; on an error it aborts.
func halfClose(w net.Conn, err error, abort func()) {
	if err != nil && !errors.Is(err, net.ErrClosed) {
		abort()
		_ = w.Close()
		return
	}
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = w.Close()
	}
}
