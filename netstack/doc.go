// Package netstack is the sandbox VM's only way out: a userspace TCP/IP
// stack (gVisor's tcpip) on the host end of the socketpair that QEMU's
// `-netdev stream,addr.type=fd` uses, with an egress policy that decides
// every flow before anything is dialed.
//
// # Wire
//
// The socketpair carries ethernet frames in QEMU's stream framing (the
// "qemu" protocol of gvisor-tap-vsock): a 4-byte big-endian length, then the
// frame. Frames longer than [MaxFrameLen] end the link.
//
// # Addressing
//
// One IPv4 subnet, [Subnet] (192.168.127.0/24): the gateway, which is this
// stack, is [GatewayIP] (192.168.127.1, MAC [GatewayMAC]); the guest is
// [GuestIP] (192.168.127.2) with the gateway as its router and DNS server,
// configured statically or by the gateway's DHCP server (UDP port 67),
// which offers GuestIP to whichever client asks: the sandbox has one guest.
// IPv6 is not
// spoken: IPv6 frames are dropped, and AAAA queries for allowed names get
// an empty answer so that clients fall back to IPv4 at once.
//
// # What leaves
//
//   - DNS: UDP to GatewayIP:53 is answered by the gateway. Only A and AAAA
//     are answered; other types are REFUSED. A name the policy does not
//     allow gets NXDOMAIN without a lookup. An allowed name is resolved on
//     the host through [Config.Resolver]; each address must pass
//     [policy.Policy.CheckAnswer] (the rebinding guard) and is pinned;
//     when no address is left the answer is NXDOMAIN. A failed lookup is
//     SERVFAIL.
//   - TCP: a SYN to ip:port is decided by [policy.Policy.AllowIP] with the
//     stack's pins before anything is dialed; denied → RST. When the address
//     is allowed only through a pin (not by an address pattern), port 443
//     must carry a TLS ClientHello whose SNI is pinned to that address and
//     allowed on that port, and port 80 an HTTP/1.x request whose Host is;
//     for those the guest's handshake is completed, the first bytes are
//     read, and a mismatch is answered with RST. Allowed flows are dialed
//     through [Config.Dialer] (at most [Config.MaxDials] at once, each
//     bounded by [Config.DialTimeout]) and spliced both ways with half-close.
//     The gateway and the sandbox subnet are never forwarded: there is no
//     NAT to the host's loopback and no HTTP API at the gateway.
//   - UDP other than DNS and DHCP to the gateway, and everything else
//     (ICMP beyond the gateway, IPv6): dropped. DNS over TCP is not
//     served (answers are small and never truncated).
//
// Every decision goes to [Config.Audit] as an [Event]; dropped UDP is
// audited at a bounded rate. [JSONLAudit] writes events as JSON lines.
package netstack
