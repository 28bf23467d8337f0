package netstack

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// blockingDialer holds every dial until release is closed and counts the
// dials in progress.
type blockingDialer struct {
	release  chan struct{}
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	calls    atomic.Int32
}

func (d *blockingDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	d.calls.Add(1)
	n := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	for {
		m := d.maxSeen.Load()
		if n <= m || d.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-d.release:
	case <-ctx.Done():
	}
	return nil, ctx.Err()
}

// Dials are bounded (stock gvproxy's 10 in-flight dials without a timeout
// let a guest wedge all egress, gvisor-tap-vsock#676) and time out; a dial
// that fails is an RST to the guest and an audited error.
func TestDialsBoundedAndTimedOut(t *testing.T) {
	bd := &blockingDialer{release: make(chan struct{})}
	defer close(bd.release)
	e := newEnvWith(t, []string{"203.0.113.50:8080"}, func(c *Config) {
		c.Dialer = bd
		c.MaxDials = 1
		c.DialTimeout = 300 * time.Millisecond
	})
	t.Cleanup(e.cleanup)
	ip := netip.MustParseAddr("203.0.113.50")
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			c, err := e.connect(ip, 8080)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; !isReset(err) {
			t.Fatalf("want RST after the dial timeout, got %v", err)
		}
	}
	if m := bd.maxSeen.Load(); m != 1 {
		t.Fatalf("%d dials at once, MaxDials is 1", m)
	}
	e.audit.find(t, func(ev Event) bool {
		return ev.Proto == ProtoTCP && ev.IP == ip && ev.Verdict == VerdictError
	})
}

// A nil Policy denies everything.
func TestNilPolicyDeniesAll(t *testing.T) {
	e := newEnvWith(t, nil, func(c *Config) { c.Rules.Policy = nil })
	t.Cleanup(e.cleanup)
	if m := e.query(t, "api.example.com", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("rcode %v", m.RCode)
	}
	if _, err := e.connect(apiIP, 443); !isReset(err) {
		t.Fatalf("want RST, got %v", err)
	}
	if n := e.res.names(); len(n) != 0 {
		t.Fatalf("resolver asked %v", n)
	}
	e.noDial(t)
}

// An allowed TLS flow whose upstream cannot be reached: the guest, whose
// handshake was completed for the SNI check, gets an RST; the audit says why.
func TestTLSUpstreamUnreachableReset(t *testing.T) {
	e := newEnv(t, allowAPI) // no route for 203.0.113.10:443 in the dialer
	e.resolveAPI(t)
	c, err := e.connect(apiIP, 443)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hang))
	if _, err := c.Write(clientHello(t, "api.example.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("want RST, got %v", err)
	}
	e.audit.find(t, func(ev Event) bool {
		return ev.Proto == ProtoTCP && ev.Name == "api.example.com" && ev.Verdict == VerdictError
	})
}
