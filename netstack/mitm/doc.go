// Package mitm terminates the sandbox guest's TLS for the hosts that hold a
// credential rule or an HTTP rule, and proxies their HTTP requests upstream
// with the real credential put in on the host. The guest only ever holds a
// random placeholder ([NewPlaceholder]); the secret never enters the VM.
//
// # Boundary
//
// The package plugs into the sandbox network through one seam:
// [Interceptor.Intercept] has the signature of netstack.Config.Intercept,
// so the wiring is
//
//	cfg.Intercept = interceptor.Intercept
//
// The stack calls it for each TLS flow (port 443) that its policy has
// already allowed and whose SNI it has already checked against the DNS
// pins. Intercept returns nil (the flow is spliced byte for byte, never
// decrypted) unless the name matches a [Rule] or an [HTTPRule] and no
// Options.Bypass pattern. Upstream connections are opened only through the
// flow's own dial func, that is, to the address the policy allowed: the
// package never resolves a name and never dials on its own.
//
// It does not read sandbox.toml, run `gh auth token`, start VMs or write
// the guest's trust store: the caller turns [[credentials]] into [Rule]s
// (with a Secret func for from_env, from_file, from_command or from_acp),
// puts [CA.CertPEM] where the guest's TLS clients look, and gives the guest
// each rule's Placeholder in the env var the rule names.
//
// # Per request
//
// On an intercepted flow the guest's TLS is terminated with a leaf
// certificate for the flow's name, minted by the per-sandbox [CA] (the
// guest trusts that CA only because the caller installed it). ALPN picks h2
// or http/1.1 as the client offers. Each request then goes through, in
// order:
//
//  1. Host: the request's Host (:authority) must be the TLS name, or the
//     request is refused with 421 (no domain fronting past the SNI check).
//  2. HTTP rules: when rules exist for the host, the method and path must
//     match one, else 403 saying which rule to add.
//  3. Placeholders of rules for other hosts, in header values (also inside
//     "Basic" credentials), the path, the query string and the request body,
//     block the request with a 403 naming the rule; upstream is not
//     contacted (for a body longer than [BodyPreread] or of unknown length
//     it is scanned as it streams, and the upstream request is aborted
//     before the placeholder's bytes are sent).
//  4. Placeholders of rules for this host are replaced by their secrets in
//     header values, the path and the query string; then each rule with a
//     Header sets that header to its Format with the secret for "{}".
//  5. The request goes upstream over TLS verified against
//     Options.UpstreamRoots (h2 when the guest chose h2 and the upstream
//     offers it, else HTTP/1.1), with the hop-by-hop headers removed and
//     Host set to the TLS name; a certificate that fails verification is
//     a 502 saying so, and nothing is sent. The
//     response streams back unbuffered (server-sent events arrive as sent),
//     while the request body, if the guest is still sending it, goes on
//     streaming upstream (full duplex, also over HTTP/1.1);
//     a secret sent with the request is masked out of the response's
//     headers, trailers and identity-encoded body, so an upstream that
//     echoes a request cannot show it to the guest.
//
// Every request is reported to Options.Audit as an [Event] (blocked ones
// with the rule and the reason); events and log records never hold a
// secret, and query strings are left out of them.
//
// # The guest's side
//
// The guest must trust [CA.CertPEM] for interception to work; a client
// that does not fails the TLS handshake (nothing is sent). The variables
// SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and GIT_SSL_CAINFO
// replace a client's roots, so they must name a bundle of the system
// roots plus the sandbox CA (or spliced hosts stop verifying);
// NODE_EXTRA_CA_CERTS and DENO_CERT add to the built-in roots. Clients
// that pin certificates go in Options.Bypass.
//
// # Limits
//
// Only intercepted flows are seen: a placeholder sent to a host without a
// rule, over plain HTTP or in a spliced flow, leaves unchanged, which is
// harmless (it is worthless without this proxy) and not audited. Request
// trailers and 1xx response headers are passed as they are. A compressed
// response body is not searched for an echoed secret (its headers and
// trailers are).
package mitm
