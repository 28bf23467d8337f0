package netstack

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// The in-process harness of netstack_test.go (a second gVisor stack as the
// guest, fake resolver and dialer), for tests in package netstack_test:
// those may import packages that import netstack, such as the TLS
// interception of netstack/mitm, which this package's own tests cannot.

// TestEnv is a Stack with a guest on its link.
type TestEnv struct{ e *env }

// NewTestEnv starts a Stack allowing allow (tweak edits its Config first)
// and a guest; both are closed at the end of the test.
func NewTestEnv(t testing.TB, allow []string, tweak func(*Config)) *TestEnv {
	t.Helper()
	e := newEnvWith(t, allow, tweak)
	t.Cleanup(e.cleanup)
	return &TestEnv{e}
}

// SetName makes the host-side resolver answer name with addrs.
func (te *TestEnv) SetName(name string, addrs ...netip.Addr) {
	te.e.res.mu.Lock()
	defer te.e.res.mu.Unlock()
	te.e.res.table[name] = addrs
}

// Route sends the stack's dials to from ("ip:port") to the loopback
// address to; the dialer refuses anything not routed.
func (te *TestEnv) Route(from, to string) {
	te.e.dial.mu.Lock()
	defer te.e.dial.mu.Unlock()
	te.e.dial.route[from] = to
}

// Dialed lists the addresses the stack dialed.
func (te *TestEnv) Dialed() []string { return te.e.dial.dialed() }

// Resolve asks the gateway's DNS from the guest for name's A records.
func (te *TestEnv) Resolve(t testing.TB, name string) []netip.Addr {
	t.Helper()
	return aRecords(te.e.query(t, name, dnsmessage.TypeA))
}

// Connect opens a TCP connection from the guest.
func (te *TestEnv) Connect(ip netip.Addr, port uint16) (net.Conn, error) {
	return te.e.connect(ip, port)
}
