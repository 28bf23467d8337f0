package netstack

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// The guest learns GuestIP, the gateway as router and DNS server, the mask
// and the MTU. (Sent unicast from GuestIP: the guest stack here already
// has its address; a real client broadcasts from 0.0.0.0.)
func TestDHCPOfferAndAck(t *testing.T) {
	e := newEnv(t, allowAPI)
	c, err := gonet.DialUDP(e.guest,
		&tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(GuestIP.As4()), Port: dhcpv4.ClientPort},
		&tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(GatewayIP.As4()), Port: dhcpv4.ServerPort},
		ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mac, _ := net.ParseMAC(guestHW)
	for _, tc := range []struct{ send, want dhcpv4.MessageType }{
		{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeOffer},
		{dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeAck},
	} {
		req, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(tc.send))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(req.ToBytes()); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(hang))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		gw := net.IP(GatewayIP.AsSlice())
		if m.MessageType() != tc.want || m.TransactionID != req.TransactionID ||
			!m.YourIPAddr.Equal(net.IP(GuestIP.AsSlice())) ||
			len(m.Router()) != 1 || !m.Router()[0].Equal(gw) ||
			len(m.DNS()) != 1 || !m.DNS()[0].Equal(gw) ||
			m.SubnetMask().String() != net.CIDRMask(24, 32).String() {
			t.Fatalf("%v: bad reply %s", tc.send, m.Summary())
		}
	}
}
