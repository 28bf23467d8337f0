package netstack

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const dhcpClientPort, dhcpServerPort = 68, 67

// handleUDP sees every UDP packet no endpoint took (the DNS server and
// the DHCP server are the only ones bound): it drops it and audits at a
// bounded rate.
func (s *Stack) handleUDP(id stack.TransportEndpointID, _ *stack.PacketBuffer) bool {
	// The DHCP server's own broadcast answers loop back here: not the
	// guest's, nothing to audit.
	if id.LocalPort == dhcpClientPort && id.RemotePort == dhcpServerPort {
		return true
	}
	ok, suppressed := s.udpLog.allow(time.Now())
	if !ok {
		return true
	}
	dst, port := addrFrom(id.LocalAddress), int(id.LocalPort)
	s.audit(Event{
		Proto: ProtoUDP, IP: dst, Port: port, Verdict: VerdictDeny, Rule: RuleUDP,
		Reason:     "UDP to " + hostPort(dst, port) + " dropped: only DNS to the sandbox gateway " + GatewayIP.String() + ":53 is allowed",
		Suppressed: suppressed,
	})
	return true
}
