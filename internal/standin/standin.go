package standin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
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

// The APIs a request can be routed to (Request.API).
const (
	Anthropic = "anthropic"
	OpenAI    = "openai"
	Gemini    = "gemini"
)

// Options configures a stand-in.
type Options struct {
	// TLS serves HTTPS with a certificate for Hosts (and 127.0.0.1, ::1)
	// signed by a fresh test CA; see Server.CAPEM and Server.CertPool.
	TLS bool
	// Hosts are the names (or IP addresses) the certificate is for, such
	// as "api.anthropic.com", "api.openai.com",
	// "generativelanguage.googleapis.com" or "localhost". Ignored without
	// TLS.
	Hosts []string
	// Reply is the assistant's text for every model request of every
	// API; DefaultReply when empty.
	Reply string
	// Key, when set, is the only key the APIs accept, each where its real
	// service takes it: Anthropic in x-api-key or "Authorization: Bearer",
	// OpenAI in "Authorization: Bearer", Gemini in x-goog-api-key or the
	// key query parameter. Other requests get that API's own error (see
	// the package doc). Empty accepts anything, including no key.
	Key string
	// Keys holds a key per API (Anthropic, OpenAI, Gemini) that replaces
	// Key for that API, for a test whose agents each have a key of their
	// own.
	Keys map[string]string
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
	// API is the API that answered: Anthropic, OpenAI or Gemini.
	API string
	// APIKey and Authorization are the x-api-key and authorization
	// header values, "" when absent.
	APIKey        string
	Authorization string
	// GoogAPIKey is the x-goog-api-key header and QueryKey the key query
	// parameter, the two places Gemini's key goes; "" when absent.
	GoogAPIKey string
	QueryKey   string
	// Header holds the other headers of interest: anthropic-version,
	// anthropic-beta, user-agent, x-app, content-type, originator,
	// openai-beta, version, x-goog-api-client.
	Header   http.Header
	BodySize int64
	// Model and Stream are from the request of a model call: the body of
	// /v1/messages and /v1/responses, the path of Gemini's
	// models/{model}:method (Stream for :streamGenerateContent).
	Model  string
	Stream bool
	// Body is the request body of model calls (POST /v1/messages*,
	// /v1/responses*, Gemini's models/…), nil for others.
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
	// open are the hijacked connections (WebSockets) still open, which
	// Close ends: httptest does not track them.
	open map[net.Conn]bool
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

// Reply is the text every model request is answered with.
func (s *Server) Reply() string { return s.opts.Reply }

// Close stops the server, waiting for requests in flight, and ends open
// WebSockets.
func (s *Server) Close() {
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// CAPEM is the test CA's certificate in PEM, for NODE_EXTRA_CA_CERTS,
// SSL_CERT_FILE or a trust store; nil without TLS.
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
// appearance: x-api-key, x-goog-api-key and key query values as they
// are, authorization values with a "Bearer " prefix removed.
func (s *Server) KeysSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for _, r := range s.reqs {
		for _, k := range []string{r.APIKey, strings.TrimPrefix(r.Authorization, "Bearer "), r.GoogAPIKey, r.QueryKey} {
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
var keptHeaders = []string{
	"Anthropic-Version", "Anthropic-Beta", "User-Agent", "X-App", "Content-Type",
	"Originator", "Openai-Beta", "Version", "X-Goog-Api-Client",
}

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

// Hijack hands the connection over for a WebSocket, whose handler
// records the status.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("standin: %T cannot hijack", w.ResponseWriter)
	}
	return h.Hijack()
}

// call is one request on its way through the stand-in.
type call struct {
	w        http.ResponseWriter
	r        *http.Request
	id       int // 1 for the first request
	body     []byte
	rec      *Request
	start    time.Time
	recorded bool
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
		GoogAPIKey:    r.Header.Get("X-Goog-Api-Key"),
		QueryKey:      r.URL.Query().Get("key"),
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
	s.mu.Lock()
	s.n++
	id := s.n
	s.mu.Unlock()

	sw := &statusWriter{ResponseWriter: w}
	c := &call{w: sw, r: r, id: id, body: body, rec: &rec, start: time.Now()}
	switch rec.API = apiOf(r); rec.API {
	case OpenAI:
		s.openAI(c)
	case Gemini:
		s.gemini(c)
	default:
		s.anthropic(c)
	}
	if !c.recorded {
		rec.Status = sw.status
		s.record(rec, c.start)
	}
}

// record logs rec and adds it to Requests.
func (s *Server) record(rec Request, start time.Time) {
	s.logf("standin: %s %s%s host=%s api=%s model=%q stream=%v x-api-key=%q authorization=%q x-goog-api-key=%q body=%dB → %d in %v",
		rec.Method, rec.Path, query(rec.Query), rec.Host, rec.API, rec.Model, rec.Stream,
		rec.APIKey, rec.Authorization, rec.GoogAPIKey, rec.BodySize, rec.Status, time.Since(start).Round(time.Millisecond))
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
}

// apiOf picks the API that answers r: by the Host header when it names
// a real API host (as in the VM, where the real names lead here), else
// by the path (a base URL pointing at the stand-in). The paths of the
// three APIs do not overlap except GET /v1/models, which is Anthropic's
// there unless it has codex's client_version query.
func apiOf(r *http.Request) string {
	switch host, _, _ := strings.Cut(r.Host, ":"); host {
	case "api.openai.com":
		return OpenAI
	case "generativelanguage.googleapis.com":
		return Gemini
	case "api.anthropic.com":
		return Anthropic
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1beta/") || strings.HasPrefix(p, "/v1alpha/") ||
		strings.HasPrefix(p, "/v1/models/") && strings.Contains(p, ":") ||
		strings.HasPrefix(p, "/upload/"):
		return Gemini
	case p == "/v1/responses" || strings.HasPrefix(p, "/v1/responses/") ||
		p == "/v1/chat/completions" || p == "/v1/embeddings":
		return OpenAI
	case (p == "/v1/models" || strings.HasPrefix(p, "/v1/models/")) && r.URL.Query().Has("client_version"):
		return OpenAI
	}
	return Anthropic
}

func query(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
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

// key is the key api demands, "" for none.
func (s *Server) key(api string) string {
	if k, ok := s.opts.Keys[api]; ok {
		return k
	}
	return s.opts.Key
}

// pause waits between two streamed chunks.
func (s *Server) pause() {
	if s.opts.ChunkDelay > 0 {
		time.Sleep(s.opts.ChunkDelay)
	}
}

// sse starts a text/event-stream answer and returns a function that
// writes one event and flushes it; it reports false once the client is
// gone. An empty event name writes a data line alone, as Gemini does.
func sse(w http.ResponseWriter, eol string) func(event string, data any) bool {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	return func(event string, data any) bool {
		b, _ := json.Marshal(data)
		var buf bytes.Buffer
		if event != "" {
			buf.WriteString("event: " + event + eol)
		}
		buf.WriteString("data: ")
		buf.Write(b)
		buf.WriteString(eol + eol)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
