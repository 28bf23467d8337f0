package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
)

// echoHandler checks the injected key and echoes it back in a header, the
// body and a trailer: the proxy must mask it out of all three.
func echoHandler(t testing.TB, wantHeader, wantValue string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get(wantHeader); got != wantValue {
			t.Errorf("upstream got %s %q, want %q", wantHeader, got, wantValue)
		}
		if r.Host != apiHost {
			t.Errorf("upstream got Host %q", r.Host)
		}
		if r.Header.Get("Proxy-Authorization") != "" || r.Header.Get("X-Hop") != "" {
			t.Errorf("hop-by-hop headers reached upstream: %v", r.Header)
		}
		if r.Header.Get("X-Keep") != "kept" {
			t.Errorf("end-to-end header X-Keep lost: %v", r.Header)
		}
		w.Header().Set("Trailer", "X-Echo-Trailer")
		w.Header().Set("X-Echo", r.Header.Get(wantHeader))
		w.Header().Set("X-Upstream-Proto", r.Proto)
		fmt.Fprintf(w, "you sent %s: %s\n", wantHeader, r.Header.Get(wantHeader))
		w.Header().Set("X-Echo-Trailer", r.Header.Get(wantHeader))
	})
}

// (a), (b) The real key is put in on the way out over every combination of
// guest and upstream protocol; the guest's placeholder never reaches the
// upstream and the real key never comes back to the guest, even from an
// upstream that echoes it (header, body, trailer). Stops: the secret
// staying in the guest's hands, or being reflected back to it.
func TestInjectsCredential(t *testing.T) {
	pki := newTestPKI(t)
	for _, guestH2 := range []bool{false, true} {
		for _, upH2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("guest-h2=%v/upstream-h2=%v", guestH2, upH2), func(t *testing.T) {
				up := newUpstream(t, pki, upH2, echoHandler(t, "X-Api-Key", testSecret))
				e := newTenv(t, up, pki.pool, nil)
				req, _ := http.NewRequest("POST", "https://"+apiHost+"/v1/messages", strings.NewReader(`{"model":"x"}`))
				req.Header.Set("X-Api-Key", e.placeA)
				req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
				req.Header.Set("X-Keep", "kept")
				if !guestH2 {
					req.Header.Set("Connection", "X-Hop")
					req.Header.Set("X-Hop", "dropped")
				}
				resp, err := e.guestClient(guestH2).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if wantMajor := map[bool]int{false: 1, true: 2}[guestH2]; resp.ProtoMajor != wantMajor {
					t.Errorf("guest spoke %s", resp.Proto)
				}
				// The upstream is offered the guest's choice.
				if wantUp := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[guestH2 && upH2]; resp.Header.Get("X-Upstream-Proto") != wantUp {
					t.Errorf("upstream spoke %s, want %s", resp.Header.Get("X-Upstream-Proto"), wantUp)
				}
				seen := string(body) + fmt.Sprint(resp.Header) + fmt.Sprint(resp.Trailer)
				for _, f := range leakForms(testSecret) {
					if strings.Contains(seen, f) {
						t.Fatalf("guest saw the secret (%q) in %s", f, seen)
					}
				}
				if resp.Header.Get("X-Echo") != e.placeA {
					t.Errorf("echoed header %q, want the placeholder", resp.Header.Get("X-Echo"))
				}
				if want := strings.Repeat("*", len(testSecret)); !strings.Contains(string(body), want) {
					t.Errorf("echoed body %q not masked", body)
				}
				if resp.Trailer.Get("X-Echo-Trailer") != e.placeA {
					t.Errorf("echoed trailer %q, want the placeholder", resp.Trailer.Get("X-Echo-Trailer"))
				}
				ev := e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictAllow })
				if ev.Rule != `credential "anthropic"` || ev.Host != apiHost || ev.Method != "POST" || ev.Path != "/v1/messages" || ev.Status != 200 {
					t.Errorf("audit %+v", ev)
				}
			})
		}
	}
}

// A rule whose Format wraps the secret ("Bearer {}") replaces whatever
// the guest sent in that header, and placeholders are replaced in the
// query string, the path and inside Basic credentials (git over HTTPS).
func TestSubstitution(t *testing.T) {
	pki := newTestPKI(t)
	var mu sync.Mutex
	var got *http.Request
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Clone(context.Background())
		mu.Unlock()
	}))
	e := newTenv(t, up, pki.pool, func(o *Options) {
		o.Rules = []Rule{{Name: "gitlab", Host: apiHost, Placeholder: NewPlaceholder("gitlab"),
			Secret: func(context.Context) (string, error) { return testSecret, nil }}}
	})
	ph := e.ic.rules.Load().creds[0].placeholder
	req, _ := http.NewRequest("GET", "https://"+apiHost+"/api/"+ph+"/x?key="+ph+"&q=1", nil)
	req.SetBasicAuth("oauth2", ph)
	req.Header.Set("Private-Token", "token "+ph)
	resp, err := e.guestClient(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("upstream not reached")
	}
	if u, p, _ := got.BasicAuth(); u != "oauth2" || p != testSecret {
		t.Errorf("basic auth %q:%q", u, p)
	}
	if got.Header.Get("Private-Token") != "token "+testSecret {
		t.Errorf("Private-Token %q", got.Header.Get("Private-Token"))
	}
	if got.URL.Query().Get("key") != testSecret || got.URL.Query().Get("q") != "1" {
		t.Errorf("query %q", got.URL.RawQuery)
	}
	if got.URL.Path != "/api/"+testSecret+"/x" {
		t.Errorf("path %q", got.URL.Path)
	}
	ev := e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictAllow })
	if ev.Path != "/api/"+ph+"/x?"+redacted {
		t.Errorf("audit path %q: want the guest's path, query redacted", ev.Path)
	}
}

// (c) Server-sent events stream through unbuffered: the guest reads the
// first event while the upstream still holds the rest back.
func TestSSEUnbuffered(t *testing.T) {
	pki := newTestPKI(t)
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			release := make(chan struct{})
			up := newUpstream(t, pki, h2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				f := w.(http.Flusher)
				fmt.Fprint(w, "event: message_start\ndata: {\"n\":1}\n\n")
				f.Flush()
				select { // the rest only once the guest has the first
				case <-release:
				case <-time.After(hang):
					t.Error("guest never got the first event: the stream is buffered")
					return
				}
				for i := 2; i <= 3; i++ {
					time.Sleep(10 * time.Millisecond)
					fmt.Fprintf(w, "event: delta\ndata: {\"n\":%d}\n\n", i)
					f.Flush()
				}
			}))
			e := newTenv(t, up, pki.pool, nil)
			req, _ := http.NewRequest("POST", "https://"+apiHost+"/v1/messages", strings.NewReader(`{"stream":true}`))
			req.Header.Set("X-Api-Key", e.placeA)
			resp, err := e.guestClient(h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			var lines []string
			for len(lines) < 2 {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("after %q: %v", lines, err)
				}
				lines = append(lines, l)
			}
			if lines[1] != "data: {\"n\":1}\n" {
				t.Fatalf("first event %q", lines)
			}
			close(release)
			rest, _ := io.ReadAll(br)
			if !strings.Contains(string(rest), `{"n":3}`) {
				t.Fatalf("rest %q", rest)
			}
		})
	}
}

// (d) A placeholder sent to another intercepted host is blocked with a
// 403 naming the rule, audited, and the upstream is not contacted: the
// request never leaves. Stops: an agent moving a credential's use to a
// host it controls (with a placeholder today, with the secret if the
// proxy substituted it).
func TestPlaceholderToOtherHostBlocked(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name  string
		where string
		req   func(ph string) *http.Request
	}{
		{"header", "the X-Api-Key header", func(ph string) *http.Request {
			r, _ := http.NewRequest("GET", "https://"+otherHost+"/", nil)
			r.Header.Set("X-Api-Key", ph)
			return r
		}},
		{"inside-header", "the X-Note header", func(ph string) *http.Request {
			r, _ := http.NewRequest("GET", "https://"+otherHost+"/", nil)
			r.Header.Set("X-Note", "key="+ph+";")
			return r
		}},
		{"basic", "the Authorization header (Basic credentials)", func(ph string) *http.Request {
			r, _ := http.NewRequest("GET", "https://"+otherHost+"/", nil)
			r.SetBasicAuth("x", ph)
			return r
		}},
		{"query", "the query string", func(ph string) *http.Request {
			r, _ := http.NewRequest("GET", "https://"+otherHost+"/collect?k="+ph, nil)
			return r
		}},
		{"path", "the URL path", func(ph string) *http.Request {
			r, _ := http.NewRequest("GET", "https://"+otherHost+"/k/"+ph, nil)
			return r
		}},
		{"body", "the request body", func(ph string) *http.Request {
			r, _ := http.NewRequest("POST", "https://"+otherHost+"/paste", strings.NewReader(`{"text":"`+ph+`"}`))
			return r
		}},
	} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/h2=%v", tc.name, h2), func(t *testing.T) {
				up := newUpstream(t, pki, true, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
				e := newTenv(t, up, pki.pool, nil)
				resp, err := e.guestClient(h2).Do(tc.req(e.placeA))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := `acp-sandbox: blocked: the placeholder for credential "anthropic" was sent to other.example.com in ` + tc.where + `; it may only go to api.example.com`
				if resp.StatusCode != 403 || strings.TrimSpace(string(body)) != want {
					t.Fatalf("status %d body %q\nwant 403 %q", resp.StatusCode, body, want)
				}
				if n := e.dialCount(otherHost); n != 0 || up.hits.Load() != 0 {
					t.Fatalf("upstream contacted: %d dials, %d requests", n, up.hits.Load())
				}
				ev := e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictDeny })
				if ev.Rule != `credential "anthropic"` || ev.Host != otherHost || ev.Status != 403 || ev.Reason != want {
					t.Errorf("audit %+v", ev)
				}
				if strings.Contains(ev.Path, e.placeA) && tc.name == "query" {
					t.Errorf("audit path holds the query: %q", ev.Path)
				}
			})
		}
	}
}

// A streamed body (no length) carrying another host's placeholder past
// BodyPreread is cut before the placeholder's bytes leave, and the guest
// gets the 403.
func TestPlaceholderInStreamedBodyBlocked(t *testing.T) {
	pki := newTestPKI(t)
	var mu sync.Mutex
	var received []byte
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, b...)
		mu.Unlock()
	}))
	e := newTenv(t, up, pki.pool, nil)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(strings.Repeat("a", BodyPreread+100)))
		// split across writes: the scanner must see across reads
		_, _ = pw.Write([]byte(e.placeA[:10]))
		time.Sleep(10 * time.Millisecond)
		_, _ = pw.Write([]byte(e.placeA[10:] + strings.Repeat("b", 1000)))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "https://"+otherHost+"/upload", pr)
	resp, err := e.guestClient(true).Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), `credential "anthropic"`) {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(string(received), e.placeA[:10]+e.placeA[10:]) {
		t.Fatal("the placeholder reached the upstream")
	}
	e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictDeny && ev.Rule == `credential "anthropic"` })
}

// (e) HTTP rules allow by method and path; the rest is refused with a 403
// that says what to add. Stops: an agent using a token beyond what the
// user meant (pushing where it may only read).
func TestHTTPRules(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	e := newTenv(t, up, pki.pool, func(o *Options) {
		o.Rules = nil // an HTTP rule alone makes the host intercepted
		o.HTTPRules = []HTTPRule{
			{Host: apiHost, Methods: []string{"get", "HEAD"}, Paths: []string{"/repos/acme/**", "/v1/models/*"}},
			{Host: apiHost, Methods: []string{"POST"}, Paths: []string{"/repos/acme/*/issues"}},
		}
	})
	c := e.guestClient(true)
	for _, tc := range []struct {
		method, path string
		allow        bool
	}{
		{"GET", "/repos/acme/widget/contents/a.go", true},
		{"GET", "/repos/acme", true},
		{"HEAD", "/repos/acme/widget", true},
		{"GET", "/v1/models/claude", true},
		{"POST", "/repos/acme/widget/issues", true},
		{"POST", "/repos/acme/widget/pulls", false},
		{"DELETE", "/repos/acme/widget", false},
		{"GET", "/repos/other/widget", false},
		{"GET", "/v1/models/a/b", false},
		{"GET", "/v1/models/", false},
		{"GET", "/repos/acme/../other/widget", false},
		{"GET", "/repos/acme/%2e%2e/other", false},
		{"GET", "/repos/acme%2F..%2Fother/x", false},
		{"GET", "/Repos/acme/x", false},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			before := up.hits.Load()
			req, _ := http.NewRequest(tc.method, "https://"+apiHost+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.allow {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d %q", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 403 || up.hits.Load() != before {
				t.Fatalf("status %d, upstream hits %d→%d: %q", resp.StatusCode, before, up.hits.Load(), body)
			}
			if !strings.Contains(string(body), "[[network.http]]") || !strings.Contains(string(body), `{host="api.example.com", methods=["get", "HEAD"], paths=["/repos/acme/**", "/v1/models/*"]}`) {
				t.Errorf("body %q does not name the rules", body)
			}
		})
	}
	// The suggestion is a rule that would allow exactly the request.
	req, _ := http.NewRequest("DELETE", "https://"+apiHost+"/repos/acme/widget", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `to allow it, add {host="api.example.com", methods=["DELETE"], paths=["/repos/acme/widget"]} to [[network.http]]`
	if !strings.Contains(string(body), want) {
		t.Errorf("body %q\nwant it to say %q", body, want)
	}
	ev := e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictDeny && ev.Method == "DELETE" })
	if ev.Rule != `network.http "api.example.com"` || ev.Status != 403 {
		t.Errorf("audit %+v", ev)
	}
}

// (f) An upstream whose certificate does not verify gets no request; the
// guest gets a 502 that says why. Stops: interception turning TLS
// verification off for the guest (a network attacker between us and the
// service would get the secret).
func TestUpstreamUntrusted(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	e := newTenv(t, up, newTestPKI(t).pool, nil) // roots of another CA
	req, _ := http.NewRequest("GET", "https://"+apiHost+"/v1/models", nil)
	req.Header.Set("X-Api-Key", e.placeA)
	resp, err := e.guestClient(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(body), "the certificate of upstream api.example.com failed verification") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream handler ran")
	}
	ev := e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictError })
	if ev.Rule != RuleUpstreamTLS || ev.Status != 502 {
		t.Errorf("audit %+v", ev)
	}
	if !strings.Contains(e.logs.String(), "upstream certificate failed verification") {
		t.Errorf("log %q", e.logs.String())
	}
}

// (g) The guest verifies our leaf against CertPEM alone, for the flow's
// name only; without the sandbox CA it refuses. Stops: a leaf usable for
// other names than the flow's (a wildcard, a second SAN).
func TestGuestVerifiesLeaf(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	e := newTenv(t, up, pki.pool, nil)

	c, err := e.flow(context.Background(), apiHost)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: apiHost, RootCAs: e.caPool()})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("guest with the sandbox CA: %v", err)
	}
	chain := tc.ConnectionState().VerifiedChains
	if len(chain) != 1 || len(chain[0]) != 2 || !chain[0][1].Equal(e.ca.Certificate()) {
		t.Fatalf("chain %v", chain)
	}
	leaf := chain[0][0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != apiHost || leaf.IsCA {
		t.Errorf("leaf SANs %v IsCA %v", leaf.DNSNames, leaf.IsCA)
	}
	tc.Close()

	// Without the sandbox CA (the pool a guest has before it is installed).
	c, err = e.flow(context.Background(), apiHost)
	if err != nil {
		t.Fatal(err)
	}
	err = tls.Client(c, &tls.Config{ServerName: apiHost, RootCAs: x509.NewCertPool()}).Handshake()
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		t.Fatalf("guest without the CA: %v, want unknown authority", err)
	}
	c.Close()

	// A ClientHello for another name than the flow's (the stack would not
	// hand such a flow over; the handler refuses it all the same).
	c, err = e.flow(context.Background(), apiHost)
	if err != nil {
		t.Fatal(err)
	}
	if err := tls.Client(c, &tls.Config{ServerName: otherHost, RootCAs: e.caPool()}).Handshake(); err == nil {
		t.Fatal("handshake for another name succeeded")
	}
	c.Close()
}

// (h) The secret is in no audit event and no log line, raw or encoded,
// whatever happened to the requests: allowed, blocked, failed upstream,
// secret in the query string (whose URL error texts would carry it).
// Stops: the key reaching files that outlive the sandbox and get pasted
// into bug reports.
func TestSecretNeverLogged(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, echoHandler(t, "X-Api-Key", testSecret))
	e := newTenv(t, up, pki.pool, nil)
	c := e.guestClient(true)
	do := func(method, url string, hdr map[string]string) {
		req, _ := http.NewRequest(method, url, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if resp, err := c.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	do("GET", "https://"+apiHost+"/v1/models?key="+e.placeA, map[string]string{"X-Api-Key": e.placeA, "X-Keep": "kept"})
	do("GET", "https://"+otherHost+"/x?key="+e.placeA, map[string]string{"X-Api-Key": e.placeA})
	do("GET", "https://"+apiHost+"/", map[string]string{"Authorization": "Basic " + b64("u:"+e.placeA), "X-Keep": "kept"})

	// An upstream that fails after the secret went into the query: the
	// transport's error names the URL.
	e2 := newTenv(t, up, newTestPKI(t).pool, func(o *Options) {
		o.Rules[0].Header = ""
		o.Logger = e.ic.log // same buffer
		o.Audit = e.audit.add
	})
	e2.logs = e.logs
	c2 := e2.guestClient(false)
	if resp, err := c2.Get("https://" + apiHost + "/v1?key=" + e2.placeA); err == nil {
		resp.Body.Close()
	}

	e.audit.find(t, func(ev Event) bool { return ev.Verdict == VerdictError })
	evs, _ := json.Marshal(e.audit.all())
	logs := e.logs.String()
	if !strings.Contains(logs, "level=") {
		t.Fatalf("nothing was logged; the test proves nothing: %q", logs)
	}
	for _, s := range []string{testSecret, otherSecret} {
		for _, f := range leakForms(s) {
			if strings.Contains(string(evs), f) {
				t.Errorf("audit holds %q: %s", f, evs)
			}
			if strings.Contains(logs, f) {
				t.Errorf("log holds %q: %s", f, logs)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v %s", e.ic, e.ic, e.ic, e.ic), f) {
				t.Errorf("formatting the Interceptor shows %q", f)
			}
		}
	}
}

// (i) Bypass hosts, and hosts without rules, are not taken over: the stack
// splices them. Stops: decrypting traffic nobody asked to (every other
// host keeps end-to-end TLS), and breaking certificate-pinning clients.
func TestInterceptWhich(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ic, err := New(Options{
		CA: ca,
		Rules: []Rule{{Name: "gh", Host: "**.github.com", Header: "Authorization", Format: "Bearer {}",
			Secret: func(context.Context) (string, error) { return "x", nil }}},
		HTTPRules: []HTTPRule{{Host: "registry.npmjs.org", Methods: []string{"GET"}}},
		Bypass:    []string{"pinned.github.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"api.github.com":     true,
		"a.b.github.com":     true,
		"API.GitHub.com.":    true,
		"github.com":         false, // ** needs a label
		"registry.npmjs.org": true,  // HTTP rule alone
		"pinned.github.com":  false, // bypass beats the rule
		"example.com":        false,
	} {
		if got := ic.Intercept(netstack.Flow{Proto: netstack.ProtoTCP, Name: name, Port: 443}) != nil; got != want {
			t.Errorf("Intercept(%s) = %v, want %v", name, got, want)
		}
	}
	if ic.Intercept(netstack.Flow{Proto: netstack.ProtoTCP, Name: "api.github.com", Port: 8443}) != nil {
		t.Error("intercepted a port other than 443")
	}
}

// The Host must be the TLS name: a request for another host on this
// connection is refused (421), not sent with this host's credentials.
// Stops: domain fronting past the stack's SNI check.
func TestHostMustMatchSNI(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	e := newTenv(t, up, pki.pool, nil)
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", "https://"+apiHost+"/", nil)
		req.Host = "evil.example.net"
		resp, err := e.guestClient(h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(body), `"evil.example.net"`) {
			t.Fatalf("h2=%v: status %d body %q", h2, resp.StatusCode, body)
		}
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream reached")
	}
	// The default port in the Host is the same host.
	req, _ := http.NewRequest("GET", "https://"+apiHost+":443/", nil)
	resp, err := e.guestClient(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Host with :443: status %d", resp.StatusCode)
	}
}

// The secret is read on first use, once, and a failure is a 502 naming the
// rule that is retried on the next request (a `gh auth token` run before
// the user logged in).
func TestSecretLazyAndRetried(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, echoHandler(t, "X-Api-Key", testSecret))
	var calls atomic.Int64
	e := newTenv(t, up, pki.pool, func(o *Options) {
		o.Rules = o.Rules[:1]
		o.Rules[0].Secret = func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				return "", errors.New("gh: not logged in")
			}
			return testSecret, nil
		}
	})
	if calls.Load() != 0 {
		t.Fatal("secret read before first use")
	}
	c := e.guestClient(false)
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", "https://"+apiHost+"/", nil)
		req.Header.Set("X-Keep", "kept")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if st, body := get(); st != 502 || !strings.Contains(body, `credential "anthropic" for api.example.com could not be read`) {
		t.Fatalf("status %d body %q", st, body)
	}
	if up.hits.Load() != 0 {
		t.Fatal("request sent without its credential")
	}
	for range 3 {
		if st, body := get(); st != 200 {
			t.Fatalf("status %d body %q", st, body)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("Secret called %d times, want 2 (one failure, then kept)", n)
	}
	if !strings.Contains(e.logs.String(), "gh: not logged in") {
		t.Errorf("the failure is not in the log: %q", e.logs.String())
	}
}

// A request body the guest cannot finish does not leave a handler behind,
// and the stack's context ending closes every flow.
func TestFlowEndsWithContext(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ic, err := New(Options{CA: ca, UpstreamRoots: pki.pool, Rules: []Rule{{Name: "a", Host: apiHost, Header: "X-Api-Key",
		Secret: func(context.Context) (string, error) { return testSecret, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	h := ic.Intercept(netstack.Flow{Name: apiHost, Port: 443})
	guest, ours, err := loopbackPair()
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h(ctx, ours, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", up.srv.Listener.Addr().String())
		})
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	tc := tls.Client(guest, &tls.Config{ServerName: apiHost, RootCAs: pool})
	fmt.Fprintf(tc, "GET /stream HTTP/1.1\r\nHost: %s\r\n\r\n", apiHost)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(hang):
		t.Fatal("handler still running after its context ended")
	}
}

// An HTTP/1.1 Upgrade (WebSocket) passes through with the credential put
// in, and the connection is served until either side ends it.
func TestUpgradePassesThrough(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != testSecret || r.Header.Get("Upgrade") != "echo" {
			t.Errorf("upstream got %v", r.Header)
			w.WriteHeader(400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo until the guest closes
	}))
	e := newTenv(t, up, pki.pool, nil)
	c, err := e.flow(context.Background(), apiHost)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hang))
	tc := tls.Client(c, &tls.Config{ServerName: apiHost, RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Api-Key: %s\r\n\r\n", apiHost, e.placeA)
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, msg := range []string{"ping\n", "pong\n"} {
		io.WriteString(tc, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo %q %v", got, err)
		}
	}
}

// Rules replaced while the interceptor runs: a host that gains a rule is
// intercepted from the next flow on, with the new secret; a host that
// loses its rule is spliced again; a bad set changes nothing; a secret of
// a replaced rule is still masked in logs. Stops: a credential captured
// after the VM started (ACP authenticate) never applying, or a retired
// key leaking through a late error message.
func TestSetRulesLive(t *testing.T) {
	pki := newTestPKI(t)
	var mu sync.Mutex
	seen := map[string]string{} // host → x-api-key
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Host] = r.Header.Get("X-Api-Key")
		mu.Unlock()
	}))
	e := newTenv(t, up, pki.pool, func(o *Options) { o.Rules = o.Rules[:1] }) // apiHost only
	get := func(host, key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+host+"/", nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := e.guestClient(false).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		return resp.StatusCode, seen[host]
	}
	if e.ic.Intercept(netstack.Flow{Name: otherHost, Port: 443}) != nil {
		t.Fatal("otherHost intercepted before it has a rule")
	}
	const later = "sk-captured-LATER-0123456789abcdef"
	ph := NewPlaceholder("captured")
	err := e.ic.SetRules([]Rule{{Name: "captured", Host: otherHost, Placeholder: ph,
		Secret: func(context.Context) (string, error) { return later, nil }}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.ic.Intercept(netstack.Flow{Name: otherHost, Port: 443}) == nil {
		t.Fatal("otherHost not intercepted after SetRules gave it a rule")
	}
	if st, key := get(otherHost, ph); st != 200 || key != later {
		t.Fatalf("otherHost after SetRules: status %d, upstream saw key %q, want the captured secret", st, key)
	}
	if e.ic.Intercept(netstack.Flow{Name: apiHost, Port: 443}) != nil {
		t.Error("apiHost still intercepted after its rule was removed")
	}

	// A bad set is refused whole; the rules in force stay.
	err = e.ic.SetRules([]Rule{{Name: "bad", Host: "10.0.0.1", Header: "x",
		Secret: func(context.Context) (string, error) { return "x", nil }}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "address") {
		t.Fatalf("bad rule set: err %v", err)
	}
	if e.ic.Intercept(netstack.Flow{Name: otherHost, Port: 443}) == nil {
		t.Error("a refused SetRules dropped the rules in force")
	}

	// A bypass takes a host out of interception, rule or not.
	if err := e.ic.SetRules([]Rule{{Name: "captured", Host: otherHost, Placeholder: ph,
		Secret: func(context.Context) (string, error) { return later, nil }}}, nil, []string{otherHost}); err != nil {
		t.Fatal(err)
	}
	if e.ic.Intercept(netstack.Flow{Name: otherHost, Port: 443}) != nil {
		t.Error("a bypassed host is intercepted")
	}

	// The captured secret is retired by the next set, and still masked.
	if err := e.ic.SetRules(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.ic.log.Error("late error", "detail", "upstream said "+later)
	if strings.Contains(e.logs.String(), later) {
		t.Errorf("a retired secret reached the log: %q", e.logs.String())
	}
}

// An upstream that breaks off a response midway cuts the guest's response
// too (it must not look complete), and the sandbox log says so: the proxy
// is otherwise silent about it.
func TestCutResponseLogged(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	e := newTenv(t, up, pki.pool, nil)
	req, _ := http.NewRequest("GET", "https://"+apiHost+"/v1/stream", nil)
	resp, err := e.guestClient(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("the guest read a cut response as complete: %q", body)
	}
	if string(body) != "data: first\n\n" {
		t.Errorf("guest got %q before the cut", body)
	}
	deadline := time.Now().Add(hang)
	for !strings.Contains(e.logs.String(), "response cut short") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the cut: %s", e.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A rule with Paths puts the key only on those paths; elsewhere on the
// host the request goes out with the guest's placeholder. Stops: a model
// key going to a vendor's telemetry endpoints when the user said not to.
func TestCredentialPaths(t *testing.T) {
	pki := newTestPKI(t)
	var mu sync.Mutex
	seen := map[string]string{}
	up := newUpstream(t, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("X-Api-Key")
		mu.Unlock()
	}))
	e := newTenv(t, up, pki.pool, func(o *Options) {
		o.Rules = o.Rules[:1]
		o.Rules[0].Paths = []string{"/v1/**"}
	})
	c := e.guestClient(false)
	for _, p := range []string{"/v1/messages", "/api/event_logging/batch", "/v1/../api/x"} {
		req, _ := http.NewRequest("POST", "https://"+apiHost+p, strings.NewReader("{}"))
		req.URL.RawPath, req.URL.Path = p, p // keep the dots as sent
		req.Header.Set("X-Api-Key", e.placeA)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["/v1/messages"] != testSecret {
		t.Errorf("/v1/messages got %q, want the secret", seen["/v1/messages"])
	}
	for p, k := range seen {
		if p != "/v1/messages" && k == testSecret {
			t.Errorf("%s got the secret; only /v1/** may", p)
		}
	}
	if seen["/api/event_logging/batch"] != e.placeA {
		t.Errorf("/api/event_logging/batch got %q, want the guest's placeholder unchanged", seen["/api/event_logging/batch"])
	}
}

// The upload goes on after the response has begun, and the response is
// not cut. An HTTP/1 guest's request body is read by the upstream
// transport while the response streams back. net/http's server, left to
// itself, drains and closes a request body when the response header goes
// out (unless the handler enables full duplex): the transport then lost
// the rest of the body, failed its request write and closed the upstream
// connection under the streaming response. In the VM this cut Claude's
// answer after its first text delta: there the upload had ended, but the
// transport's end-of-body check read came after the server's close
// whenever its goroutine was held up for a moment (TCG under load). Here
// the upstream answers before the upload ends, which makes it certain:
// the guest sends the rest of its body only once it has the first event.
func TestUploadOutlivesResponseHeader(t *testing.T) {
	pki := newTestPKI(t)
	const half = 40 << 10
	got := make(chan int, 1)
	up := newUpstream(t, pki, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// This upstream reads while it answers, as an HTTP/1 server may.
		_ = http.NewResponseController(w).EnableFullDuplex()
		if _, err := io.ReadFull(r.Body, make([]byte, half)); err != nil {
			t.Errorf("upstream: first half: %v", err)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message_start\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		rest, err := io.ReadAll(r.Body)
		got <- half + len(rest)
		if err != nil {
			t.Errorf("upstream: rest of the body: %v", err)
		}
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "event: delta\ndata: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "event: message_stop\ndata: {}\n\n")
	}))
	e := newTenv(t, up, pki.pool, nil)

	first := make(chan struct{}) // the guest has the first event
	pr, pw := io.Pipe()
	streamed := make(chan bool, 1)
	go func() {
		pw.Write(make([]byte, half))
		select {
		case <-first:
			streamed <- true
		case <-time.After(2 * time.Second): // so that a failure is not a hang
			streamed <- false
		}
		pw.Write(make([]byte, half))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "https://"+apiHost+"/v1/messages", pr)
	req.ContentLength = 2 * half
	req.Header.Set("X-Api-Key", e.placeA)
	resp, err := e.guestClient(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, _ := br.ReadString('\n')
	if line == "event: message_start\n" {
		close(first)
	}
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if !<-streamed {
		t.Errorf("the guest got no event before the end of its upload: the proxy held the response until it had drained the request body")
	}
	if err != nil || !strings.HasSuffix(string(rest), "event: message_stop\ndata: {}\n\n") {
		t.Errorf("the guest got %q then %q, %v; want the whole stream\n%s", line, rest, err, e.logs)
	}
	select {
	case n := <-got:
		if n != 2*half {
			t.Errorf("the upstream got %d bytes of the %d-byte upload", n, 2*half)
		}
	case <-time.After(hang):
		t.Error("the upstream never got the end of the upload")
	}
}

// A request whose body never goes upstream (the upstream is down) leaves
// the guest's connection usable: with full duplex, the handler closes
// the body itself (else the server drains it after stopping its own
// background read, and its next read panics: golang/go#68560).
func TestUnsentBodyKeepsConnection(t *testing.T) {
	pki := newTestPKI(t)
	up := newUpstream(t, pki, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	e := newTenv(t, up, pki.pool, nil)
	up.srv.Close() // every dial is refused
	c := e.guestClient(false)
	for i := 0; i < 2; i++ {
		// Longer than BodyPreread: streamed, so unread when the dial fails.
		req, _ := http.NewRequest("POST", "https://"+apiHost+"/v1/messages", strings.NewReader(strings.Repeat("x", 2*BodyPreread)))
		req.Header.Set("X-Api-Key", e.placeA)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v\n%s", i, err, e.logs)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	if strings.Contains(e.logs.String(), "panic") {
		t.Errorf("the proxy's server panicked:\n%s", e.logs)
	}
}
