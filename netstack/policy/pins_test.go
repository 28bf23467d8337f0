package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestPinExpiry(t *testing.T) {
	clk := newClock()
	s := NewPinSet(PinSetOptions{Now: clk.Now})
	ip := netip.MustParseAddr("203.0.113.1")
	s.Pin("A.Example.com.", ip, 0) // clamped up to 30 s
	s.Pin("b.example.com", ip, 5*time.Minute)
	s.Pin("c.example.com", ip, 48*time.Hour) // clamped down to 1 h

	check := func(when string, want ...string) {
		t.Helper()
		if got := s.Names(ip); !slices.Equal(got, want) {
			t.Errorf("%s: Names = %q, want %q", when, got, want)
		}
	}
	check("at once", "a.example.com", "b.example.com", "c.example.com")
	clk.Advance(29 * time.Second)
	// A 0-TTL answer still lets the connect that follows it succeed.
	check("after 29s", "a.example.com", "b.example.com", "c.example.com")
	clk.Advance(time.Second)
	check("after 30s", "b.example.com", "c.example.com")
	clk.Advance(5 * time.Minute)
	check("after 5m30s", "c.example.com")
	// A huge TTL does not keep a stale address open for ever.
	clk.Advance(time.Hour)
	check("after 1h")
	if s.Len() != 0 {
		t.Errorf("Len = %d after expiry, want 0", s.Len())
	}
}

func TestPinRefreshNeverShortens(t *testing.T) {
	clk := newClock()
	s := NewPinSet(PinSetOptions{Now: clk.Now, MinTTL: time.Second})
	ip := netip.MustParseAddr("2001:db8::1")
	s.Pin("a.example.com", ip, time.Minute)
	s.Pin("a.example.com", ip, time.Second)
	clk.Advance(30 * time.Second)
	if !s.SNIMatches(ip, "a.example.com") {
		t.Error("a shorter refresh cut the pin short")
	}
	s.Pin("a.example.com", ip, 2*time.Minute)
	clk.Advance(time.Minute)
	if !s.SNIMatches(ip, "a.example.com") {
		t.Error("a longer refresh did not extend the pin")
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d, want 1", s.Len())
	}
}

// The pin set is bounded: a guest resolving endless names cannot grow host
// memory without limit.
func TestPinEviction(t *testing.T) {
	clk := newClock()
	s := NewPinSet(PinSetOptions{Now: clk.Now, MaxEntries: 3})
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	s.Pin("n1.example.com", ip(1), time.Minute)
	s.Pin("n2.example.com", ip(2), time.Minute)
	s.Pin("n3.example.com", ip(3), time.Minute)
	s.Pin("n1.example.com", ip(1), time.Minute) // refreshed: now the newest
	s.Pin("n4.example.com", ip(4), time.Minute) // evicts n2, the oldest
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	for i, want := range []bool{1: true, 2: false, 3: true, 4: true} {
		if i == 0 {
			continue
		}
		if got := len(s.Names(ip(i))) == 1; got != want {
			t.Errorf("n%d pinned = %v, want %v", i, got, want)
		}
	}
	big := NewPinSet(PinSetOptions{Now: clk.Now})
	for i := range DefaultMaxPins + 100 {
		big.Pin(fmt.Sprintf("n%d.example.com", i), netip.MustParseAddr("203.0.113.1"), time.Minute)
	}
	if big.Len() != DefaultMaxPins {
		t.Errorf("default bound: Len = %d, want %d", big.Len(), DefaultMaxPins)
	}
}

func TestSNIMatches(t *testing.T) {
	s := &PinSet{} // the zero value is usable
	ip := netip.MustParseAddr("203.0.113.1")
	s.Pin("api.example.com", ip, time.Minute)
	s.Pin("v6.example.com", netip.MustParseAddr("2001:db8::5"), time.Minute)
	for _, tc := range []struct {
		ip, sni string
		want    bool
	}{
		{"203.0.113.1", "api.example.com", true},
		{"203.0.113.1", "API.Example.COM.", true},
		{"::ffff:203.0.113.1", "api.example.com", true},
		{"2001:db8::5", "v6.example.com", true},
		// Domain fronting: the SNI names a host that did not resolve to this address.
		{"203.0.113.1", "v6.example.com", false},
		{"203.0.113.2", "api.example.com", false},
		// No SNI, or a malformed one, never matches.
		{"203.0.113.1", "", false},
		{"203.0.113.1", "api.example.com..", false},
		{"203.0.113.1", "*.example.com", false},
	} {
		if got := s.SNIMatches(netip.MustParseAddr(tc.ip), tc.sni); got != tc.want {
			t.Errorf("SNIMatches(%s, %q) = %v, want %v", tc.ip, tc.sni, got, tc.want)
		}
	}
	var nilSet *PinSet
	nilSet.Pin("api.example.com", ip, time.Minute)
	if nilSet.SNIMatches(ip, "api.example.com") || nilSet.Names(ip) != nil || nilSet.Len() != 0 {
		t.Error("nil PinSet holds something")
	}
	s.Pin("bad..name", ip, time.Minute)
	s.Pin("ok.example.com", netip.Addr{}, time.Minute)
	if s.Len() != 2 {
		t.Errorf("invalid pins stored: Len = %d", s.Len())
	}
}

// Run with -race: the DNS server pins while TCP forwarders decide.
func TestConcurrentUse(t *testing.T) {
	p := mustNew(t, []string{"**.example.com"}, []string{"*.evil.example"})
	clk := newClock()
	s := NewPinSet(PinSetOptions{Now: clk.Now, MaxEntries: 64})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 100)})
				name := fmt.Sprintf("h%d.example.com", (g+i)%50)
				if p.CheckAnswer(name, ip).Allow {
					s.Pin(name, ip, time.Duration(i%60)*time.Second)
				}
				p.AllowIP(ip, 443, s)
				s.SNIMatches(ip, name)
				p.AllowName(name, 443)
				if i%100 == 0 {
					clk.Advance(10 * time.Second)
				}
			}
		}()
	}
	wg.Wait()
	if n := s.Len(); n > 64 {
		t.Errorf("Len = %d beyond the bound 64", n)
	}
}
