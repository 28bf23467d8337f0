package netstack

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// Garbage to the DNS and DHCP servers: nothing answers it, nothing breaks,
// and the next real query is answered.
func TestGarbageToServers(t *testing.T) {
	e := newEnv(t, allowAPI)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, port := range []uint16{53, 67} {
		c, err := dialGuestUDP(e, GatewayIP, port)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			b := make([]byte, rng.IntN(1400))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		// A DNS header claiming to be a response, and one with 3 questions.
		_, _ = c.Write([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})
		_, _ = c.Write([]byte{0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0})
		c.Close()
	}
	// Garbage that parses is answered (FORMERR, REFUSED) and a burst may
	// fill the in-flight bound for a moment, dropping a query as designed;
	// a client retries, and so does this one.
	for attempt := 1; ; attempt++ {
		m, err := tryQuery(e, "api.example.com", 2*time.Second)
		if err == nil && m.RCode == dnsmessage.RCodeSuccess && len(aRecords(m)) == 1 {
			return
		}
		if attempt == 5 {
			t.Fatalf("no answer after the garbage: %v", err)
		}
	}
}

// tryQuery is one A query with its own timeout.
func tryQuery(e *env, name string, timeout time.Duration) (*dnsmessage.Message, error) {
	c, err := dialGuestUDP(e, GatewayIP, 53)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	b, _ := q.Pack()
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	var m dnsmessage.Message
	return &m, m.Unpack(buf[:n])
}

// A flood of DNS queries: the excess is dropped and audited at a bounded
// rate; goroutines stay bounded; the server answers afterwards.
func TestDNSFlood(t *testing.T) {
	slow := make(chan struct{})
	blocking := &blockingResolver{block: "slow.example.com", release: slow}
	e := newEnvWith(t, append(allowAPI, "slow.example.com"), func(c *Config) {
		blocking.next = c.Resolver
		c.Resolver = blocking
	})
	t.Cleanup(e.cleanup)

	before := runtime.NumGoroutine()
	c, err := gonet.DialUDP(e.guest, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(GatewayIP.As4()), Port: 53}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 2000 {
		q := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: uint16(i), RecursionDesired: true},
			Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("slow.example.com."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
		}
		b, _ := q.Pack()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	ev := e.audit.find(t, func(ev Event) bool { return ev.Rule == RuleOverload })
	if ev.Verdict != VerdictDeny {
		t.Errorf("overload event %+v", ev)
	}
	time.Sleep(200 * time.Millisecond)
	if n := runtime.NumGoroutine() - before; n > maxDNSInFlight+50 {
		t.Errorf("%d goroutines more than before the flood; want at most %d in flight", n, maxDNSInFlight)
	}
	e.audit.mu.Lock()
	overloads := 0
	for _, ev := range e.audit.events {
		if ev.Rule == RuleOverload {
			overloads++
		}
	}
	e.audit.mu.Unlock()
	if overloads > 3*udpAuditPerSec {
		t.Errorf("%d overload events: the audit is not rate-limited", overloads)
	}
	close(slow)
	// Answered again once the flood has drained.
	deadline := time.Now().Add(hang)
	for blocking.inFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e.resolveAPI(t)
}

// A SYN flood to a denied address and to an allowed one whose upstream
// never answers: the stack stays up, never dials the denied one, and
// serves a normal connection afterwards.
func TestSYNFlood(t *testing.T) {
	e := newEnvWith(t, append(allowAPI, "203.0.113.99"), func(c *Config) { c.DialTimeout = 300 * time.Millisecond })
	t.Cleanup(e.cleanup)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 300 {
		ip := netip.MustParseAddr("198.51.100.7") // denied
		if i%2 == 0 {
			ip = netip.MustParseAddr("203.0.113.99") // allowed, no route: dial fails
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := gonet.DialContextTCP(ctx, e.guest, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(ip.As4()), Port: 22}, ipv4.ProtocolNumber)
			if err == nil {
				c.Close()
			}
		}()
	}
	wg.Wait()
	for _, d := range e.dial.dialed() {
		if d == "198.51.100.7:22" {
			t.Fatal("a denied address was dialed during the flood")
		}
	}
	// Still serving.
	e.resolveAPI(t)
}

// blockingResolver holds lookups of one name until release is closed.
type blockingResolver struct {
	next    Resolver
	block   string
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (r *blockingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if host == r.block+"." {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
		defer func() { r.mu.Lock(); r.n--; r.mu.Unlock() }()
		select {
		case <-r.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []netip.Addr{netip.MustParseAddr("203.0.113.77")}, nil
	}
	return r.next.LookupNetIP(ctx, network, host)
}

func (r *blockingResolver) inFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
