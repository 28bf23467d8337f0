package netstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
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
	deny := func(rule, reason string) {
		ev.Verdict, ev.Rule, ev.Reason = VerdictDeny, rule, reason
		s.audit(ev)
	}

	if dst == HostServiceIP {
		s.hostService(r, ev)
		return
	}
	if Subnet.Contains(dst) || !dst.Is4() {
		deny(RuleSandboxNet, fmt.Sprintf("connection to %s denied: the gateway and the sandbox subnet %s are not forwarded", hostPort(dst, port), Subnet))
		r.Complete(true)
		return
	}
	pol := s.rules.policy()
	d := pol.AllowIP(dst, port, s.pins)
	approved := false
	if !d.Allow {
		f := Flow{Proto: ProtoTCP, IP: dst, Port: port, Rule: d.Rule, Reason: d.Reason, Suggest: hostPort(dst, port)}
		if names := s.pins.Names(dst); len(names) > 0 {
			f.Name, f.Suggest = names[0], suggestName(names[0], port)
		}
		ev.Name = f.Name
		if !s.approve(f) {
			deny(d.Rule, d.Reason)
			r.Complete(true)
			return
		}
		pol = s.rules.policy()
		if d = pol.AllowIP(dst, port, s.pins); !d.Allow {
			deny(d.Rule, d.Reason)
			r.Complete(true)
			return
		}
		approved = true
		d.Rule, d.Reason = RuleApproved, "connection to "+f.What()+" approved"
	}

	// Allowed by an address pattern: no name to check. Allowed through a
	// pin: on 443 and 80 the name the client sends must be pinned there too
	// (no domain fronting to another tenant of a shared address).
	d = s.rules.relabel(d)
	byAddr := pol.AllowIP(dst, port, nil).Allow
	if byAddr || (port != tlsPort && port != httpPt) {
		ev.Verdict, ev.Rule, ev.Reason = VerdictAllow, d.Rule, d.Reason
		s.audit(ev)
		s.dialAndSplice(r, ev, dst)
		return
	}

	guest, err := accept(r)
	if err != nil {
		return
	}
	prefix, name, rule, err := s.peekName(guest, dst, port)
	ev.Name = name
	if err != nil {
		deny(rule, err.Error())
		guest.reset()
		return
	}
	nd := pol.AllowName(name, port)
	if !nd.Allow && !approved {
		f := Flow{Proto: ProtoTCP, Name: name, IP: dst, Port: port, Rule: nd.Rule, Reason: nd.Reason, Suggest: suggestName(name, port)}
		if s.approve(f) {
			pol = s.rules.policy()
			if nd = pol.AllowName(name, port); nd.Allow {
				nd.Rule, nd.Reason = RuleApproved, "connection to "+f.What()+" approved"
			}
		}
	}
	if !nd.Allow {
		deny(nd.Rule, nd.Reason)
		guest.reset()
		return
	}
	nd = s.rules.relabel(nd)
	ev.Verdict, ev.Rule, ev.Reason = VerdictAllow, nd.Rule, nd.Reason
	s.audit(ev)
	if port == tlsPort && s.cfg.Intercept != nil {
		if h := s.cfg.Intercept(Flow{Proto: ProtoTCP, Name: name, IP: dst, Port: port, Rule: nd.Rule, Reason: nd.Reason}); h != nil {
			s.handOff(h, guest, prefix, dst, port)
			return
		}
	}
	up, err := s.dial(s.ctx, dst, port)
	if err != nil {
		ev.Verdict, ev.Reason = VerdictError, err.Error()
		s.audit(ev)
		guest.reset()
		return
	}
	s.splice(guest, up, prefix)
}

// hostService forwards HostServiceIP:port to the host's 127.0.0.1:port for
// the ports the rules name; nothing else reaches the host.
func (s *Stack) hostService(r *tcp.ForwarderRequest, ev Event) {
	ev.Name, ev.Rule = HostServiceName, RuleHostService
	if !s.rules.hostPortAllowed(ev.Port) {
		ev.Verdict = VerdictDeny
		ev.Reason = fmt.Sprintf("connection to %s:%d denied: host port %d is not shared with the sandbox; to allow it, add %d to [network] host_ports (or run with --allow %s:%d)",
			HostServiceName, ev.Port, ev.Port, ev.Port, HostServiceName, ev.Port)
		s.audit(ev)
		r.Complete(true)
		return
	}
	ev.Verdict, ev.Reason = VerdictAllow, fmt.Sprintf("host port %d is in [network] host_ports", ev.Port)
	s.audit(ev)
	s.dialAndSplice(r, ev, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
}

// dialAndSplice dials an allowed flow before completing the guest's
// handshake, so an upstream that refuses is a refusal (RST) for the guest
// too, and splices the two. ev is the allow already audited; a failed dial
// is audited as an error.
func (s *Stack) dialAndSplice(r *tcp.ForwarderRequest, ev Event, dst netip.Addr) {
	up, err := s.dial(s.ctx, dst, ev.Port)
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
}

// handOff gives an allowed flow to an Intercept handler: the guest side
// replays what the SNI check read; the dial goes through the stack's
// limits to the address the policy allowed.
func (s *Stack) handOff(h FlowHandler, guest guestConn, prefix []byte, dst netip.Addr, port int) {
	stop := context.AfterFunc(s.ctx, func() { _ = guest.Close() })
	defer stop()
	g := &replayConn{Conn: guest, r: io.MultiReader(bytes.NewReader(prefix), guest)}
	h(s.ctx, g, func(ctx context.Context) (net.Conn, error) { return s.dial(ctx, dst, port) })
}

// replayConn reads the bytes already peeked before the rest of the conn.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

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
func (s *Stack) dial(ctx context.Context, dst netip.Addr, port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
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
