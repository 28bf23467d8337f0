// Package policy is the egress decision of the sandbox network: given the
// [network] allow and deny lists of sandbox.toml and facts about one flow (a
// DNS name, a TLS SNI or HTTP Host, a destination IP and port, the DNS answers
// seen so far), it says allow or deny, names the rule that decided, and words a
// reason fit for the audit log and for the agent.
//
// The boundary: this package opens no sockets, reads no files and knows
// nothing of gvisor. The netstack calls it before it dials, answers or
// forwards anything:
//
//   - the DNS server asks [Policy.AllowName] (port 0: "is this name allowed on
//     some port?") before resolving, then [Policy.CheckAnswer] for each
//     address of the answer (the DNS-rebinding guard), and [PinSet.Pin]s the
//     addresses it hands to the guest;
//   - the TCP forwarder asks [Policy.AllowIP] with the destination and the
//     sandbox's [PinSet] before dialing; after reading a TLS ClientHello it
//     checks [PinSet.SNIMatches] and [Policy.AllowName] for the SNI (and the
//     HTTP Host / :authority must equal the SNI; that comparison is the
//     forwarder's).
//
// # Patterns
//
// A pattern is a host name ("example.com"), a one-label wildcard
// ("*.example.com": a.example.com, not example.com nor a.b.example.com), an
// any-depth wildcard ("**.example.com": a.example.com and a.b.example.com, not
// example.com), "**" alone for every host name (still never a special
// address, below), an IP address ("203.0.113.5", "2001:db8::1") or a CIDR
// ("10.0.0.0/8"), each with an optional ":port" ("api.example.com:8443",
// "[2001:db8::1]:443", "10.0.0.0/8:22"). Matching is case-insensitive and a
// trailing dot is ignored.
//
// An allow pattern without a port allows ports 443 and 80 only. A deny pattern
// without a port denies every port: a deny rule never leaves a port open.
// Deny beats allow.
//
// # Addresses that are never reached by name
//
// Loopback, private (RFC 1918, IPv6 unique local), link-local, shared (CGNAT),
// cloud metadata (169.254.169.254, fd00:ec2::254), multicast, unspecified,
// "this network" (0.0.0.0/8), broadcast and reserved (240.0.0.0/4) addresses
// are denied, also when written IPv4-mapped (::ffff:127.0.0.1) or behind the
// NAT64 prefix (64:ff9b::/96), unless an allow pattern names them by IP or
// CIDR. A host-name pattern never unlocks them (an allowed name resolving to
// one is DNS rebinding, refused by [Policy.CheckAnswer] and [Policy.AllowIP]),
// and a CIDR unlocks them only when it lies inside the class: "10.0.0.0/8"
// unlocks 10.1.2.3, "0.0.0.0/0" unlocks nothing special, and the metadata
// address needs a pattern inside 169.254.169.254/32 itself.
//
// The documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
// 2001:db8::/32 count as public addresses: the end-to-end tests put their fake
// internet there. So do 198.18.0.0/15 (fake-IP proxies on the host use it).
//
// Policy and PinSet are safe for concurrent use; a Policy is immutable.
package policy
