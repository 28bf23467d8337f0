package policy

import (
	"container/list"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Defaults for PinSetOptions fields left zero.
const (
	DefaultMaxPins = 4096
	DefaultMinTTL  = 30 * time.Second
	DefaultMaxTTL  = time.Hour
)

// PinSetOptions configures a PinSet. Zero fields take the defaults.
type PinSetOptions struct {
	// MaxEntries bounds the (name, address) pairs kept; when full the pair
	// pinned or refreshed longest ago is evicted. 0 means DefaultMaxPins.
	MaxEntries int
	// MinTTL raises shorter TTLs, so that a 0-TTL answer still lets the
	// connect that follows it succeed. 0 means DefaultMinTTL.
	MinTTL time.Duration
	// MaxTTL caps longer TTLs. 0 means DefaultMaxTTL.
	MaxTTL time.Duration
	// Now is the clock (tests inject a fake one). nil means time.Now.
	Now func() time.Time
}

// PinSet remembers which allowed names the sandbox's DNS answers mapped to
// which addresses, until the (clamped) TTL runs out. A TCP connect is allowed
// to a pinned address, and a TLS SNI must be a name pinned to the address it
// is sent to. The zero PinSet is ready to use with the defaults; a nil
// *PinSet holds nothing. Safe for concurrent use.
type PinSet struct {
	mu    sync.Mutex
	opts  PinSetOptions
	init  bool
	order *list.List // of *pin, least recently pinned first
	byIP  map[netip.Addr]map[string]*list.Element
}

type pin struct {
	ip      netip.Addr
	name    string
	expires time.Time
}

// NewPinSet returns an empty PinSet.
func NewPinSet(o PinSetOptions) *PinSet {
	s := &PinSet{opts: o}
	s.mu.Lock()
	s.lazyInit()
	s.mu.Unlock()
	return s
}

// lazyInit fills defaults; s.mu is held.
func (s *PinSet) lazyInit() {
	if s.init {
		return
	}
	s.init = true
	if s.opts.MaxEntries <= 0 {
		s.opts.MaxEntries = DefaultMaxPins
	}
	if s.opts.MinTTL <= 0 {
		s.opts.MinTTL = DefaultMinTTL
	}
	if s.opts.MaxTTL <= 0 {
		s.opts.MaxTTL = DefaultMaxTTL
	}
	if s.opts.MaxTTL < s.opts.MinTTL {
		s.opts.MaxTTL = s.opts.MinTTL
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	s.order = list.New()
	s.byIP = make(map[netip.Addr]map[string]*list.Element)
}

// Pin records that name resolved to ip for ttl (clamped to [MinTTL, MaxTTL]).
// Pinning a pair again refreshes it; its expiry never moves earlier. Call it
// only for answers Policy.CheckAnswer allowed. Invalid names and addresses
// are ignored.
func (s *PinSet) Pin(name string, ip netip.Addr, ttl time.Duration) {
	n, ok := normName(name)
	if s == nil || !ok || !ip.IsValid() {
		return
	}
	ip = canonAddr(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lazyInit()
	ttl = max(s.opts.MinTTL, min(ttl, s.opts.MaxTTL))
	exp := s.opts.Now().Add(ttl)
	if e, ok := s.byIP[ip][n]; ok {
		p := e.Value.(*pin)
		if exp.After(p.expires) {
			p.expires = exp
		}
		s.order.MoveToBack(e)
		return
	}
	for s.order.Len() >= s.opts.MaxEntries {
		s.remove(s.order.Front())
	}
	names := s.byIP[ip]
	if names == nil {
		names = make(map[string]*list.Element)
		s.byIP[ip] = names
	}
	names[n] = s.order.PushBack(&pin{ip: ip, name: n, expires: exp})
}

// remove drops one entry; s.mu is held.
func (s *PinSet) remove(e *list.Element) {
	p := s.order.Remove(e).(*pin)
	names := s.byIP[p.ip]
	delete(names, p.name)
	if len(names) == 0 {
		delete(s.byIP, p.ip)
	}
}

// Names returns the unexpired names pinned to ip, sorted.
func (s *PinSet) Names(ip netip.Addr) []string {
	if s == nil {
		return nil
	}
	ip = canonAddr(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lazyInit()
	now := s.opts.Now()
	var out []string
	for n, e := range s.byIP[ip] {
		if !now.Before(e.Value.(*pin).expires) {
			s.remove(e)
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// SNIMatches reports whether sni (case-insensitive, trailing dot ignored) is
// an unexpired name pinned to ip: the TLS ClientHello of a connection to ip
// must name a host whose DNS answer led there.
func (s *PinSet) SNIMatches(ip netip.Addr, sni string) bool {
	n, ok := normName(sni)
	if s == nil || !ok {
		return false
	}
	return slices.Contains(s.Names(ip), n)
}

// Len is the number of pairs held, expired ones not yet dropped included.
func (s *PinSet) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lazyInit()
	return s.order.Len()
}
