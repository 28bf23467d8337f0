package netstack

import (
	"fmt"
	"math"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// dhcpLease is the lease time handed to the guest: infinite (RFC 2131
// 0xffffffff). The guest's PID 1 asks once at boot and never renews, and
// the address is the sandbox's for the VM's life.
const dhcpLease = time.Duration(math.MaxUint32) * time.Second

// listenDHCP binds UDP port 67 on the NIC, allowed to broadcast (a client
// without an address is answered at 255.255.255.255:68).
//
// Why not gvisor-tap-vsock's pkg/services/dhcp: its server4 loop starts an
// unowned goroutine per packet and hands out a new address per MAC. The
// sandbox has one guest; it always gets GuestIP.
func listenDHCP(s *stack.Stack) (*gonet.UDPConn, error) {
	var wq waiter.Queue
	ep, terr := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("%s", terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: dhcpv4.ServerPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("%s", terr)
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// serveDHCP answers DISCOVER and REQUEST, one at a time, until the conn
// closes.
func (s *Stack) serveDHCP() {
	buf := make([]byte, 1500)
	for {
		n, peer, err := s.dhcp.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("netstack: DHCP server stopped", "err", err)
			}
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		reply := dhcpReply(m)
		if reply == nil {
			continue
		}
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
		if up, ok := peer.(*net.UDPAddr); ok && up.IP != nil && !up.IP.IsUnspecified() {
			dst = up
		}
		_, _ = s.dhcp.WriteTo(reply.ToBytes(), dst)
	}
}

// dhcpReply is the OFFER or ACK for m, nil for anything else.
func dhcpReply(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if m.OpCode != dhcpv4.OpcodeBootRequest {
		return nil
	}
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		typ = dhcpv4.MessageTypeAck
	default:
		return nil
	}
	gw := net.IP(GatewayIP.AsSlice())
	reply, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(net.IP(GuestIP.AsSlice())),
		dhcpv4.WithServerIP(gw),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(dhcpLease)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(Subnet.Bits(), 32))),
		dhcpv4.WithOption(dhcpv4.OptRouter(gw)),
		dhcpv4.WithOption(dhcpv4.OptDNS(gw)),
		dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(MTU)}),
	)
	if err != nil {
		return nil
	}
	return reply
}
