// Package standin is a loopback stand-in for the Anthropic Messages API,
// good enough for the real @zed-industries/claude-agent-acp agent (0.23.1,
// which drives the Claude Code CLI 2.1.83 bundled in
// @anthropic-ai/claude-agent-sdk 0.2.83) to answer an ACP session/prompt
// with the stand-in's text.
//
// It exists for end-to-end tests in which the agent runs inside the
// sandbox VM with a placeholder key while the sandbox's network stack
// injects the real key on the way out: the stand-in records the
// x-api-key and authorization headers of every request it receives
// (Requests, KeysSeen), so a test can check which key arrived.
//
// # Endpoints
//
//   - POST /v1/messages with "stream": true: server-sent events in the
//     API's streaming format — message_start, content_block_start, ping,
//     one content_block_delta (text_delta) per chunk of Options.Reply
//     (two words a chunk, see Chunks) with Options.ChunkDelay between
//     them, content_block_stop, message_delta (stop_reason "end_turn",
//     usage) and message_stop.
//   - POST /v1/messages without streaming: the same answer as one JSON
//     message.
//   - POST /v1/messages/count_tokens: a rough count (body bytes / 4).
//   - GET /v1/models and /v1/models/{id}: a short list of models.
//   - POST /api/event_logging/batch and /api/claude_code/metrics
//     (telemetry): 200 and {}.
//   - Anything else: 404 with the API's JSON error body
//     {"type":"error","error":{"type":"not_found_error",...}}.
//
// Every request, known or not, is recorded and, with Options.Logf,
// logged. Options.Key makes /v1/* demand that key, as the real API does
// (401 authentication_error otherwise).
//
// # What the agent calls
//
// Observed by running claude-agent-acp 0.23.1 against the stand-in in a
// network namespace with only loopback (standin_test.go, TestAgent).
// initialize sends nothing. session/new (about 2 s after the agent starts)
// starts the Claude Code process, which sends:
//
//   - HEAD / to the API host, no key (a connection warm-up; 404 is fine).
//
// and to https://api.anthropic.com itself, whatever ANTHROPIC_BASE_URL
// says (so they reach the stand-in in the VM, but not on the host with a
// loopback base URL):
//
//   - only when the base URL is api.anthropic.com (unset): GET
//     /api/claude_code/settings and GET /api/claude_code/policy_limits,
//     with the key (remote managed settings; 404 is taken as none);
//   - unless CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is set, even with a
//     custom base URL: POST /api/eval/sdk-… (GrowthBook feature flags),
//     GET /api/claude_cli/bootstrap, GET /api/claude_code_penguin_mode —
//     all three with the key — GET /mcp-registry/v0/servers?version=
//     latest&visibility=commercial (no key) and, some seconds after the
//     first prompt, POST /api/event_logging/batch (with the key, ~50 kB
//     of telemetry).
//
// 404 for all of these costs nothing: the prompt is answered as fast.
// Outside api.anthropic.com the only name looked up was
// raw.githubusercontent.com (the plugin marketplace's blocklist), with or
// without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC; its failure is
// ignored. No Statsig, Sentry or Datadog traffic was seen.
//
// Each session/prompt sends one POST /v1/messages?beta=true, streaming,
// model claude-sonnet-4-6, key in x-api-key (never authorization),
// anthropic-beta claude-code-20250219,interleaved-thinking-2025-05-14,…,
// user-agent "claude-cli/2.1.83 (external, sdk-ts)". Its text deltas
// reach the client as agent_message_chunk updates (one per delta),
// followed by a usage_update and the prompt's stopReason "end_turn". The
// request body is ~94 kB with a custom ANTHROPIC_BASE_URL and ~32 kB
// against api.anthropic.com (first party, the CLI defers tool schemas:
// beta advanced-tool-use-2025-11-20). No count_tokens, no /v1/models,
// no title or topic request was seen.
//
// # Agent environment
//
//   - ANTHROPIC_API_KEY: the key. With it set the CLI uses it without
//     any login or ~/.claude.json; it sends it as x-api-key.
//     claude-agent-acp refuses session/new (auth required) only when
//     ~/.claude.json is missing but ~/.claude.json.backup exists, so a
//     fresh, empty HOME is fine.
//   - ANTHROPIC_BASE_URL: where the Messages API is (default
//     https://api.anthropic.com). Leave it unset in the VM; set it to the
//     stand-in's URL for a test on the host. It moves only /v1/* (and the
//     HEAD /): the /api/* and /mcp-registry calls above still go to
//     api.anthropic.com, with the key.
//   - NODE_EXTRA_CA_CERTS: a PEM file of extra roots. Honoured: with
//     Options.TLS and CAPEM written to that file the agent talks HTTPS to
//     the stand-in (also as https://api.anthropic.com:443 resolved to
//     loopback). Without it session/prompt fails with JSON-RPC error
//     -32603 "API Error: Unable to connect to API: Self-signed certificate
//     detected. Check your proxy or corporate SSL certificates" and no
//     request gets through (CLAUDE_CODE_MAX_RETRIES=0 makes that quick).
//   - CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1: optional. It drops the
//     feature-flag, bootstrap, fast-mode, MCP registry and telemetry
//     calls listed above (Claude Code's settings docs call it the
//     equivalent of DISABLE_AUTOUPDATER, DISABLE_BUG_COMMAND,
//     DISABLE_ERROR_REPORTING and DISABLE_TELEMETRY together). The agent
//     answers correctly without it, and none of those four is needed
//     either; with it the recorded requests are fewer and the real key
//     goes to fewer endpoints.
//   - HOME: the CLI writes ~/.claude and ~/.claude.json; tests give it a
//     temporary directory.
//
// claude-agent-acp does not exit when its stdin closes once a session is
// open (the Claude Code child keeps it alive): end its process group.
// Running as root it turns off its bypassPermissions mode unless
// IS_SANDBOX is set; a plain text answer asks no permission, so that does
// not matter here.
package standin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultReply is the text streamed when Options.Reply is empty.
const DefaultReply = "Hello from the stand-in API."

// DefaultChunkDelay is the pause between two text deltas when
// Options.ChunkDelay is zero.
const DefaultChunkDelay = 20 * time.Millisecond

// Options configures a stand-in.
type Options struct {
	// TLS serves HTTPS with a certificate for Hosts (and 127.0.0.1, ::1)
	// signed by a fresh test CA; see Server.CAPEM and Server.CertPool.
	TLS bool
	// Hosts are the names (or IP addresses) the certificate is for, such
	// as "api.anthropic.com" or "localhost". Ignored without TLS.
	Hosts []string
	// Reply is the assistant's text for every /v1/messages request;
	// DefaultReply when empty.
	Reply string
	// Key, when set, is the only key /v1/* accepts (x-api-key or
	// "Authorization: Bearer"); other requests get the API's 401. Empty
	// accepts anything, including no key.
	Key string
	// ChunkDelay is the pause between streamed text chunks;
	// DefaultChunkDelay when zero, none when negative.
	ChunkDelay time.Duration
	// Logf, when set, gets a line for every request.
	Logf func(format string, args ...any)
	// Addr is the address to listen on, such as "127.0.0.1:443"; a free
	// loopback port when empty.
	Addr string
}

// Request is what the stand-in recorded about one request.
type Request struct {
	Time   time.Time
	Method string
	Host   string // the Host header
	Path   string
	Query  string // raw query, without "?"
	// APIKey and Authorization are the x-api-key and authorization
	// header values, "" when absent.
	APIKey        string
	Authorization string
	// Header holds the other headers of interest: anthropic-version,
	// anthropic-beta, user-agent, x-app, content-type.
	Header   http.Header
	BodySize int64
	// Model and Stream are from a /v1/messages body.
	Model  string
	Stream bool
	// Body is the request body of POST /v1/messages* requests (nil for
	// others).
	Body []byte
	// Status is the HTTP status the stand-in answered with.
	Status int
	// ServerName is the TLS server name (SNI) asked for; "" over plain
	// HTTP or when the client sent none (as for an IP address).
	ServerName string
}

// Server is a running stand-in.
type Server struct {
	opts  Options
	ts    *httptest.Server
	caPEM []byte
	pool  *x509.CertPool

	mu   sync.Mutex
	reqs []Request
	n    int
}

// New starts a stand-in on a loopback port (or Options.Addr). Close it
// when done. It panics if it cannot listen or make its certificate, as
// httptest does.
func New(opts Options) *Server {
	if opts.Reply == "" {
		opts.Reply = DefaultReply
	}
	if opts.ChunkDelay == 0 {
		opts.ChunkDelay = DefaultChunkDelay
	}
	s := &Server{opts: opts}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Server errors (such as a client refusing the certificate) go to
	// Logf, not to the process's log.
	s.ts.Config.ErrorLog = log.New(logWriter{s}, "standin: ", 0)
	if opts.Addr != "" {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			panic("standin: " + err.Error())
		}
		s.ts.Listener.Close()
		s.ts.Listener = l
	}
	if !opts.TLS {
		s.ts.Start()
		return s
	}
	caPEM, pool, leaf, err := newCert(opts.Hosts)
	if err != nil {
		panic("standin: " + err.Error())
	}
	s.caPEM, s.pool = caPEM, pool
	s.ts.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	s.ts.StartTLS()
	return s
}

// URL is the base URL, http://127.0.0.1:PORT or https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.ts.URL }

// Addr is the listening address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.ts.Listener.Addr().String() }

// Port is the listening port.
func (s *Server) Port() int { return s.ts.Listener.Addr().(*net.TCPAddr).Port }

// Close stops the server, waiting for requests in flight.
func (s *Server) Close() {
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// CAPEM is the test CA's certificate in PEM, for NODE_EXTRA_CA_CERTS or
// a trust store; nil without TLS.
func (s *Server) CAPEM() []byte { return slices.Clone(s.caPEM) }

// CertPool holds the test CA; nil without TLS.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Client is an HTTP client that trusts the stand-in (its test CA with
// TLS) and dials it whatever the URL's host, so URLs like
// https://api.anthropic.com/v1/messages reach the stand-in.
func (s *Server) Client() *http.Client {
	addr := s.Addr()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	if s.pool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: s.pool}
	}
	return &http.Client{Transport: tr}
}

// Requests returns what was received so far, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// KeysSeen returns the distinct credentials received, in order of first
// appearance: x-api-key values as they are, authorization values with a
// "Bearer " prefix removed.
func (s *Server) KeysSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for _, r := range s.reqs {
		for _, k := range []string{r.APIKey, strings.TrimPrefix(r.Authorization, "Bearer ")} {
			if k != "" && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	return len(p), nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// keptHeaders are recorded in Request.Header.
var keptHeaders = []string{"Anthropic-Version", "Anthropic-Beta", "User-Agent", "X-App", "Content-Type"}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	rec := Request{
		Time:          time.Now(),
		Method:        r.Method,
		Host:          r.Host,
		Path:          r.URL.Path,
		Query:         r.URL.RawQuery,
		APIKey:        r.Header.Get("X-Api-Key"),
		Authorization: r.Header.Get("Authorization"),
		Header:        http.Header{},
		BodySize:      int64(len(body)),
	}
	if r.TLS != nil {
		rec.ServerName = r.TLS.ServerName
	}
	for _, h := range keptHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			rec.Header[h] = slices.Clone(v)
		}
	}
	var msg messagesRequest
	if strings.HasPrefix(r.URL.Path, "/v1/messages") && r.Method == http.MethodPost {
		rec.Body = body
		_ = json.Unmarshal(body, &msg)
		rec.Model, rec.Stream = msg.Model, msg.Stream
	}
	s.mu.Lock()
	s.n++
	id := s.n
	s.mu.Unlock()

	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	s.route(sw, r, id, body, &msg)
	rec.Status = sw.status
	s.logf("standin: %s %s%s host=%s model=%q stream=%v x-api-key=%q authorization=%q body=%dB → %d in %v",
		rec.Method, rec.Path, query(rec.Query), rec.Host, rec.Model, rec.Stream,
		rec.APIKey, rec.Authorization, rec.BodySize, rec.Status, time.Since(start).Round(time.Millisecond))
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
}

func query(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

type messagesRequest struct {
	Model     string          `json:"model"`
	Stream    bool            `json:"stream"`
	MaxTokens int             `json:"max_tokens"`
	Messages  json.RawMessage `json:"messages"`
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, id int, body []byte, msg *messagesRequest) {
	w.Header().Set("Request-Id", fmt.Sprintf("req_standin_%06d", id))
	p := r.URL.Path
	if strings.HasPrefix(p, "/v1/") && s.opts.Key != "" {
		if r.Header.Get("X-Api-Key") != s.opts.Key &&
			r.Header.Get("Authorization") != "Bearer "+s.opts.Key {
			apiError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
	}
	switch {
	case p == "/v1/messages" && r.Method == http.MethodPost:
		if msg.Model == "" {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
			return
		}
		if msg.Stream {
			s.stream(w, id, msg.Model, len(body))
		} else {
			s.message(w, id, msg.Model, len(body))
		}
	case p == "/v1/messages/count_tokens" && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{"input_tokens": tokens(len(body))})
	case p == "/v1/models" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"data":     models,
			"has_more": false,
			"first_id": models[0]["id"],
			"last_id":  models[len(models)-1]["id"],
		})
	case strings.HasPrefix(p, "/v1/models/") && r.Method == http.MethodGet:
		name := strings.TrimPrefix(p, "/v1/models/")
		for _, m := range models {
			if m["id"] == name {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		apiError(w, http.StatusNotFound, "not_found_error", "model: "+name)
	case (p == "/api/event_logging/batch" || p == "/api/claude_code/metrics") && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{})
	default:
		apiError(w, http.StatusNotFound, "not_found_error", "Not found: "+r.Method+" "+p)
	}
}

var models = []map[string]any{
	{"type": "model", "id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-02-05T00:00:00Z"},
	{"type": "model", "id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6", "created_at": "2026-02-17T00:00:00Z"},
	{"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-15T00:00:00Z"},
}

// tokens is a rough token count for n bytes of request.
func tokens(n int) int { return max(1, n/4) }

// Chunks splits text into the pieces streamed as text deltas: words with
// the spaces that follow them, a few words at a time. Joined they give
// text back.
func Chunks(text string) []string {
	var out []string
	words := 0
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' && (i+1 == len(text) || text[i+1] != ' ') {
			words++
			if words == 2 {
				out = append(out, text[start:i+1])
				start, words = i+1, 0
			}
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

func (s *Server) message(w http.ResponseWriter, id int, model string, n int) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id":            msgID(id),
		"type":          "message",
		"role":          "assistant",
		"model":         model,
		"content":       []any{map[string]any{"type": "text", "text": s.opts.Reply}},
		"stop_reason":   "end_turn",
		"stop_sequence": nil,
		"usage":         usage(tokens(n), len(Chunks(s.opts.Reply))),
	})
}

func msgID(id int) string { return fmt.Sprintf("msg_standin_%06d", id) }

func usage(in, out int) map[string]any {
	return map[string]any{
		"input_tokens":                in,
		"cache_creation_input_tokens": 0,
		"cache_read_input_tokens":     0,
		"output_tokens":               out,
		"service_tier":                "standard",
	}
}

func (s *Server) stream(w http.ResponseWriter, id int, model string, n int) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	flusher, _ := w.(http.Flusher)
	send := func(event string, data any) bool {
		b, _ := json.Marshal(data)
		fmt.Fprintf(bw, "event: %s\ndata: %s\n\n", event, b)
		if err := bw.Flush(); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	chunks := Chunks(s.opts.Reply)
	in := tokens(n)
	start := usage(in, 1)
	if !send("message_start", map[string]any{
		"type": "message_start",
		"message": map[string]any{
			"id": msgID(id), "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": start,
		},
	}) {
		return
	}
	send("content_block_start", map[string]any{
		"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""},
	})
	send("ping", map[string]any{"type": "ping"})
	for i, c := range chunks {
		if i > 0 && s.opts.ChunkDelay > 0 {
			time.Sleep(s.opts.ChunkDelay)
		}
		if !send("content_block_delta", map[string]any{
			"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": c},
		}) {
			return
		}
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	send("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": len(chunks)},
	})
	send("message_stop", map[string]any{"type": "message_stop"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// apiError answers with the API's error shape.
func apiError(w http.ResponseWriter, status int, typ, message string) {
	writeJSON(w, status, map[string]any{
		"type":  "error",
		"error": map[string]any{"type": typ, "message": message},
	})
}

// newCert makes a test CA and a leaf for hosts (plus 127.0.0.1 and ::1)
// signed by it.
func newCert(hosts []string) (caPEM []byte, pool *x509.CertPool, leaf tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, leaf, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "acp-sandbox stand-in test CA", Organization: []string{"acp-sandbox tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, leaf, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, leaf, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, leaf, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "stand-in"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(tmpl.DNSNames) > 0 {
		tmpl.Subject.CommonName = tmpl.DNSNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, leaf, err
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	leaf = tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
	return caPEM, pool, leaf, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
