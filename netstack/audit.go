package netstack

import (
	"encoding/json"
	"io"
	"net/netip"
	"sync"
	"time"
)

// Verdicts of an [Event].
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"
	// VerdictError is an allowed flow that failed: the dial or the
	// upstream lookup.
	VerdictError = "error"
)

// Protocols of an [Event].
const (
	ProtoDNS = "dns"
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// Rules the stack decides itself, besides those of package policy.
const (
	// RuleSandboxNet: a connect to the gateway or the sandbox subnet.
	RuleSandboxNet = "sandbox subnet"
	// RuleQueryType: a DNS query for a type other than A or AAAA.
	RuleQueryType = "query type"
	// RuleRebinding: every address of an allowed name was refused by
	// CheckAnswer (each refusal is audited with its own rule too).
	RuleRebinding = "rebinding"
	// RuleSNI: a TLS ClientHello without an SNI pinned to the address.
	RuleSNI = "sni"
	// RuleHost: an HTTP request without a Host pinned to the address.
	RuleHost = "http host"
	// RuleUDP: UDP other than DNS to the gateway.
	RuleUDP = "udp"
	// RuleOverload: dropped because too much is in flight (a flood).
	RuleOverload = "overload"
	// RuleApproved: denied by the rules, let through by Config.Approve.
	RuleApproved = "approved"
	// RuleHostService: HostServiceName and the host ports.
	RuleHostService = "host services"
)

// Event is one decision, for the audit log.
type Event struct {
	Time    time.Time  `json:"time"`
	Sandbox string     `json:"sandbox,omitempty"` // set by the sink, not the stack
	Proto   string     `json:"proto"`             // ProtoDNS, ProtoTCP, ProtoUDP
	Name    string     `json:"name,omitempty"`
	IP      netip.Addr `json:"ip,omitzero"`
	Port    int        `json:"port,omitempty"`
	Verdict string     `json:"verdict"` // VerdictAllow, VerdictDeny, VerdictError
	Rule    string     `json:"rule"`
	Reason  string     `json:"reason,omitempty"`
	// Suppressed counts events of the same kind left out since the last
	// one logged (rate-limited UDP drops).
	Suppressed int `json:"suppressed,omitempty"`
}

// JSONLAudit returns an audit sink writing each event as one JSON line to w.
// Write errors are dropped. It is safe for concurrent use.
func JSONLAudit(w io.Writer) func(Event) {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
}

// rateLimiter passes at most limit events per window and counts the rest.
type rateLimiter struct {
	mu         sync.Mutex
	limit      int
	window     time.Duration
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether to log an event now, and how many were suppressed
// since the last logged one.
func (r *rateLimiter) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= r.window {
		r.start, r.n = now, 0
	}
	if r.n >= r.limit {
		r.suppressed++
		return false, 0
	}
	r.n++
	s := r.suppressed
	r.suppressed = 0
	return true, s
}
