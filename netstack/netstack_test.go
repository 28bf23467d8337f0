package netstack

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// hang only catches hangs.
const hang = 20 * time.Second

var (
	apiIP   = netip.MustParseAddr("203.0.113.10")
	guestHW = "52:54:00:12:34:56"
)

// fakeResolver answers from a table and records the names asked.
type fakeResolver struct {
	mu    sync.Mutex
	table map[string][]netip.Addr
	fail  map[string]bool
	asked []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host = strings.TrimSuffix(host, ".")
	r.asked = append(r.asked, host)
	if r.fail[host] {
		return nil, errors.New("upstream resolver unreachable")
	}
	a, ok := r.table[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

func (r *fakeResolver) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// fakeDialer maps fake internet addresses to loopback test servers and
// records every call; it never dials anything it has no mapping for.
type fakeDialer struct {
	mu    sync.Mutex
	route map[string]string
	calls []string
}

func (d *fakeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.calls = append(d.calls, addr)
	to, ok := d.route[addr]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("test dialer: no route to %s", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *fakeDialer) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

type auditLog struct {
	mu     sync.Mutex
	events []Event
}

func (a *auditLog) add(e Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

// find returns the first event matching f, waiting a little for it (audit
// of a deny may land just after the guest sees the RST).
func (a *auditLog) find(t *testing.T, f func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(hang)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		for _, e := range a.events {
			if f(e) {
				a.mu.Unlock()
				return e
			}
		}
		a.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no matching audit event in %+v", a.events)
	return Event{}
}

type env struct {
	cleanup func() // closes the stack and the guest
	st      *Stack
	guest   *stack.Stack
	res     *fakeResolver
	dial    *fakeDialer
	audit   *auditLog
}

// socketpair returns both ends of an AF_UNIX stream socketpair, as QEMU's
// -netdev stream,addr.type=fd gets one.
func socketpair(t testing.TB) (host, vm net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// newGuest is a second gVisor stack playing the VM at GuestIP, speaking the
// qemu framing on vm.
func newGuest(t testing.TB, vm net.Conn) (*stack.Stack, func()) {
	t.Helper()
	mac, _ := net.ParseMAC(guestHW)
	link := newQemuLink(vm, tcpip.LinkAddress(mac), MTU)
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(1, link.ep); err != nil {
		t.Fatal(err)
	}
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(GuestIP.As4()), PrefixLen: Subnet.Bits()},
	}, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(GatewayIP.As4()), NIC: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = link.readLoop() }()
	go func() { defer wg.Done(); _ = link.writeLoop(ctx) }()
	return s, func() {
		cancel()
		vm.Close()
		wg.Wait()
		s.Close()
		s.Wait()
	}
}

func newEnv(t *testing.T, allow []string) *env {
	t.Helper()
	e := newEnvWith(t, allow, nil)
	t.Cleanup(e.cleanup)
	return e
}

// newEnvNoCleanup leaves calling e.cleanup to the test.
func newEnvNoCleanup(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, allowAPI, nil)
}

// newEnvWith builds the stack under test and a guest; tweak edits the
// Config first.
func newEnvWith(t testing.TB, allow []string, tweak func(*Config)) *env {
	t.Helper()
	pol, err := policy.New(allow, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		res: &fakeResolver{
			table: map[string][]netip.Addr{
				"api.example.com":    {apiIP},
				"rebind.example.com": {netip.MustParseAddr("127.0.0.1")},
				"mixed.example.com":  {netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("203.0.113.20")},
			},
			fail: map[string]bool{"fail.example.com": true},
		},
		dial:  &fakeDialer{route: map[string]string{}},
		audit: &auditLog{},
	}
	host, vm := socketpair(t)
	cfg := Config{
		Conn: host, Rules: Rules{Policy: pol}, Resolver: e.res, Dialer: e.dial, Audit: e.audit.add,
		DialTimeout: hang,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e.st, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var guestDone func()
	e.guest, guestDone = newGuest(t, vm)
	e.cleanup = func() {
		if err := e.st.Close(); err != nil {
			t.Error(err)
		}
		guestDone()
	}
	return e
}

// query sends one DNS question from the guest to the gateway.
func (e *env) query(t testing.TB, name string, typ dnsmessage.Type) *dnsmessage.Message {
	t.Helper()
	c, err := gonet.DialUDP(e.guest, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(GatewayIP.As4()), Port: 53}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: typ, Class: dnsmessage.ClassINET}},
	}
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(hang))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("DNS %s %s: %v", typ, name, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if m.ID != 4242 || !m.Response {
		t.Fatalf("bad response header %+v", m.Header)
	}
	return &m
}

func (e *env) connect(ip netip.Addr, port uint16) (*gonet.TCPConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	return gonet.DialContextTCP(ctx, e.guest, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(ip.As4()), Port: port}, ipv4.ProtocolNumber)
}

func aRecords(m *dnsmessage.Message) []netip.Addr {
	var out []netip.Addr
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			out = append(out, netip.AddrFrom4(r.A))
		}
	}
	return out
}

func (e *env) noDial(t *testing.T) {
	t.Helper()
	if d := e.dial.dialed(); len(d) != 0 {
		t.Fatalf("dialer was called: %v", d)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "refused"))
}

func dialGuestUDP(e *env, ip netip.Addr, port uint16) (*gonet.UDPConn, error) {
	return gonet.DialUDP(e.guest, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(ip.As4()), Port: port}, ipv4.ProtocolNumber)
}

// clientHello returns the first TLS record a client sends for sni.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake() }()
	_ = b.SetReadDeadline(time.Now().Add(hang))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// connectT opens a guest connection to ip:port, failing the test if it
// cannot, with the hang deadline set; the test closes it.
func (e *env) connectT(t testing.TB, ip netip.Addr, port uint16) *gonet.TCPConn {
	t.Helper()
	c, err := e.connect(ip, port)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(hang))
	return c
}

// httpGet sends GET / for host on rw (a guest connection, or a TLS client
// on one) and returns the response body.
func httpGet(t testing.TB, rw io.ReadWriter, host string) string {
	t.Helper()
	if _, err := io.WriteString(rw, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
