package mitm

import (
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
)

// ProtoHTTPS is Event.Proto: netstack's events say "dns", "tcp" or "udp",
// so the two kinds can share one JSONL audit log.
const ProtoHTTPS = "https"

// Verdicts of an [Event]: netstack's.
const (
	VerdictAllow = netstack.VerdictAllow
	VerdictDeny  = netstack.VerdictDeny
	// VerdictError: an allowed request that failed (upstream unreachable
	// or its certificate not trusted, a secret that could not be read).
	VerdictError = netstack.VerdictError
)

// Rules of an [Event] that are not a credential ("credential \"name\"")
// or an HTTP rule set ("network.http \"host\"").
const (
	// RuleHost: the request's Host is not the TLS name.
	RuleHost = "http host"
	// RuleUpstreamTLS: the upstream's certificate failed verification.
	RuleUpstreamTLS = "upstream tls"
	// RuleUpstream: the upstream could not be reached or failed.
	RuleUpstream = "upstream"
	// RulePass: an intercepted request no credential applied to.
	RulePass = "pass"
)

// Event is one intercepted HTTP request, for the audit log. It never holds
// a secret; Path never holds the query string (a "?" is followed by
// "[redacted]" when there was one).
type Event struct {
	Time    time.Time `json:"time"`
	Sandbox string    `json:"sandbox,omitempty"` // set by the sink
	Proto   string    `json:"proto"`             // ProtoHTTPS
	Host    string    `json:"name"`              // the TLS name, as netstack's Event.Name
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Status  int       `json:"status,omitempty"` // the status the guest got: the upstream's or the proxy's own
	Verdict string    `json:"verdict"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason,omitempty"`
}
