package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// The sandbox network. See the package comment.
var (
	Subnet    = netip.MustParsePrefix("192.168.127.0/24")
	GatewayIP = netip.MustParseAddr("192.168.127.1")
	GuestIP   = netip.MustParseAddr("192.168.127.2")
)

// GatewayMAC is the gateway's ethernet address (gvisor-tap-vsock's).
const GatewayMAC = "5a:94:ef:e4:0c:dd"

// MTU is the IP MTU of the link.
const MTU = 1500

// Defaults for Config fields left zero.
const (
	DefaultMaxDials    = 64
	DefaultDialTimeout = 10 * time.Second
	// DefaultApproveTimeout bounds the wait for a person's answer.
	DefaultApproveTimeout = 60 * time.Second
	// PeekTimeout bounds the wait for the first bytes (ClientHello, HTTP
	// request head) of a flow that must be checked by name. Generous: a
	// guest under software emulation and load was seen taking over 10 s
	// between its connect and its ClientHello; a silent connection costs
	// one goroutine until then.
	PeekTimeout = 30 * time.Second
	// LookupTimeout bounds one host-side DNS lookup.
	LookupTimeout = 5 * time.Second
)

const (
	nicID           = 1
	tcpMaxInFlight  = 256 // SYNs being decided at once; more are dropped
	maxDNSInFlight  = 64  // queries being answered at once; more are dropped
	udpAuditPerSec  = 10
	dnsAnswerTTL    = 60 * time.Second
	maxDNSAnswers   = 8
	peekMaxBytes    = 16 << 10
	dnsMaxQueryLen  = 4096
	tlsPort, httpPt = 443, 80
)

// Resolver resolves allowed names on the host. host is a fully qualified
// name with a trailing dot; network is "ip4" or "ip6". *net.Resolver
// implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens allowed upstream connections. network is "tcp"; addr is
// "ip:port", never a name. *net.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config configures a Stack. Only Conn is required; every other field says
// what its zero value means. The injection points (Resolver, Dialer, Audit)
// are reachable from Go code only.
type Config struct {
	// Conn is the host end of the socketpair whose other end QEMU uses
	// with -netdev stream,addr.type=fd (for an *os.File use net.FileConn).
	// The Stack owns it and closes it on Close.
	Conn net.Conn
	// Rules decide every flow; Stack.SetRules replaces them. The zero
	// Rules deny everything.
	Rules Rules
	// Resolver resolves allowed names. nil means net.DefaultResolver.
	Resolver Resolver
	// Dialer dials allowed flows. nil means a net.Dialer with DialTimeout.
	Dialer Dialer
	// Audit receives every decision; it must not block for long. nil
	// discards. See JSONLAudit.
	Audit func(Event)
	// MaxDials bounds the upstream dials in progress at once; a flow waits
	// for a slot (within its DialTimeout). 0 means DefaultMaxDials.
	MaxDials int
	// DialTimeout bounds one upstream dial, including the wait for a slot.
	// 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Approve, when set, is asked about each denied flow a person could
	// allow (default deny, a special address; never an explicit deny
	// rule): the flow waits, up to ApproveTimeout, and goes on if it
	// returns true — the stack then grants Flow.Suggest for GrantTTL.
	// nil: denied flows stay denied. It is called concurrently.
	Approve func(ctx context.Context, f Flow) bool
	// ApproveTimeout bounds one Approve call. 0 means
	// DefaultApproveTimeout.
	ApproveTimeout time.Duration
	// Intercept, when set, is offered each allowed TLS flow (port 443)
	// after the SNI check; a non-nil FlowHandler takes the flow over
	// instead of the byte splice. nil: every allowed flow is spliced.
	Intercept func(f Flow) FlowHandler
	// Logger receives operational errors (not decisions: those go to
	// Audit). nil discards.
	Logger *slog.Logger
}

// Stack is the sandbox network. Close stops it.
type Stack struct {
	cfg    Config
	log    *slog.Logger
	pins   *policy.PinSet
	rules  *ruleState
	stack  *stack.Stack
	link   *qemuLink
	dns    *gonet.UDPConn
	dhcp   *gonet.UDPConn
	dials  chan struct{} // semaphore of MaxDials
	dnsSem chan struct{}
	udpLog rateLimiter
	dnsLog rateLimiter

	ctx    context.Context // done on Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // every goroutine the Stack starts or adopts
	done   chan struct{}  // closed when the link ends
	err    error          // why the link ended; set before done closes
	once   sync.Once
}

// New builds the stack on cfg.Conn and starts serving the guest.
func New(cfg Config) (*Stack, error) {
	if cfg.Conn == nil {
		return nil, errors.New("netstack: Config.Conn is nil")
	}
	if cfg.MaxDials <= 0 {
		cfg.MaxDials = DefaultMaxDials
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ApproveTimeout <= 0 {
		cfg.ApproveTimeout = DefaultApproveTimeout
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{Timeout: cfg.DialTimeout}
	}
	if cfg.Audit == nil {
		cfg.Audit = func(Event) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mac, err := net.ParseMAC(GatewayMAC)
	if err != nil {
		return nil, fmt.Errorf("netstack: cannot parse gateway MAC: %w", err)
	}

	s := &Stack{
		cfg:    cfg,
		log:    log,
		pins:   policy.NewPinSet(policy.PinSetOptions{}),
		rules:  newRuleState(cfg.Rules),
		dials:  make(chan struct{}, cfg.MaxDials),
		dnsSem: make(chan struct{}, maxDNSInFlight),
		udpLog: rateLimiter{limit: udpAuditPerSec, window: time.Second},
		dnsLog: rateLimiter{limit: udpAuditPerSec, window: time.Second},
		done:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.link = newQemuLink(cfg.Conn, tcpip.LinkAddress(mac), MTU)
	s.stack, err = newGatewayStack(s.link)
	if err != nil {
		return nil, fmt.Errorf("netstack: cannot create network stack: %w", err)
	}

	s.dns, err = gonet.DialUDP(s.stack, &tcpip.FullAddress{
		NIC: nicID, Addr: tcpip.AddrFrom4(GatewayIP.As4()), Port: 53,
	}, nil, ipv4.ProtocolNumber)
	if err != nil {
		s.stack.Close()
		return nil, fmt.Errorf("netstack: cannot listen for DNS: %w", err)
	}

	s.dhcp, err = listenDHCP(s.stack)
	if err != nil {
		_ = s.dns.Close()
		s.stack.Close()
		return nil, fmt.Errorf("netstack: cannot listen for DHCP: %w", err)
	}

	// Our handlers, not gvisor-tap-vsock's forwarders: they decide first.
	fwd := tcp.NewForwarder(s.stack, 0, tcpMaxInFlight, s.handleTCP)
	s.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	s.stack.SetTransportProtocolHandler(udp.ProtocolNumber, s.handleUDP)

	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		s.serveDNS()
	}()
	go func() {
		defer s.wg.Done()
		s.serveDHCP()
	}()
	go func() {
		defer s.wg.Done()
		s.linkDone(s.link.readLoop())
	}()
	go func() {
		defer s.wg.Done()
		s.linkDone(s.link.writeLoop(s.ctx))
	}()
	return s, nil
}

// newGatewayStack is the gVisor stack: one NIC on link, IPv4 and ARP, the
// gateway address, promiscuous (it accepts packets for any destination, so
// that the TCP handler sees connects to the world) and spoofing (it answers
// from those destinations).
func newGatewayStack(link *qemuLink) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(nicID, link.ep); err != nil {
		return nil, fmt.Errorf("cannot create NIC: %s", err)
	}
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(GatewayIP.As4()).WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot add gateway address: %s", err)
	}
	// The host-services address is the gateway's too, so the guest's ARP
	// for it is answered; TCP to it is decided like any other flow.
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(HostServiceIP.As4()).WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot add host-services address: %s", err)
	}
	if err := s.SetPromiscuousMode(nicID, true); err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot set promiscuous mode: %s", err)
	}
	if err := s.SetSpoofing(nicID, true); err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot set spoofing: %s", err)
	}
	subnet, err := tcpip.NewSubnet(tcpip.AddrFrom4(Subnet.Addr().As4()),
		tcpip.MaskFromBytes(net.CIDRMask(Subnet.Bits(), 32)))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot build subnet: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: subnet, NIC: nicID}})
	return s, nil
}

// linkDone records why the link ended (the first reason wins) and stops
// serving the guest.
func (s *Stack) linkDone(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		s.cancel()
		_ = s.cfg.Conn.Close() // unblocks the other loop
	})
}

// SetRules replaces the rules for new flows and lookups; flows already
// going on are not cut. DNS pins stay: an address pinned for a name is
// still decided by whether the new rules allow that name.
func (s *Stack) SetRules(r Rules) { s.rules.set(r) }

// Done is closed when the link to the guest has ended (the guest side
// closed, a framing error, or Close). Err then says why.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Err is why the link ended; nil before Done is closed.
func (s *Stack) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// enter adopts a goroutine the stack did not start (gVisor's per-SYN
// handler) into s.wg; false once Close has begun.
func (s *Stack) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// Close stops the stack: the link, the DNS server and every flow. It waits
// for all of them and returns nil; calling it again does nothing.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.linkDone(net.ErrClosed)
	_ = s.dns.Close()
	_ = s.dhcp.Close()
	s.wg.Wait()
	s.stack.Close()
	s.stack.Wait()
	return nil
}

func (s *Stack) audit(e Event) {
	e.Time = time.Now()
	s.cfg.Audit(e)
}

func addrFrom(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}
