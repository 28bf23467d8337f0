package mitm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Printing anything that holds a secret shows [redacted], with every verb
// and through slog. Stops: a debug print of a struct dumping the key into
// the sandbox log. (fmt prints unexported fields by reflection, without
// their String methods; the secret lives behind a pointer for that.)
func TestFormattingRedacts(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "anthropic", Host: apiHost, Header: "x-api-key", Placeholder: NewPlaceholder("anthropic"),
		Secret: func(context.Context) (string, error) { return testSecret, nil }}
	opts := Options{CA: ca, Rules: []Rule{rule}}
	ic, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c := ic.rules.Load().creds[0]
	if _, err := c.secret.value(context.Background()); err != nil { // resolved: now held
		t.Fatal(err)
	}
	st := &reqState{applied: []*credential{c}, scrub: []scrubPair{{seal(testSecret), rule.Placeholder}}}
	things := []any{rule, &rule, opts, ic, c, *c, c.secret, ca, st, *st,
		struct{ ic *Interceptor }{ic}, []*credential{c}, map[string]*credential{"a": c}}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for i, x := range things {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if s := fmt.Sprintf(verb, x); strings.Contains(s, testSecret) {
				t.Errorf("thing %d (%T) with %s shows the secret: %s", i, x, verb, s)
			}
		}
		log.Info("thing", "x", x)
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Errorf("slog shows the secret: %s", logs.String())
	}
	// The Interceptor's logger masks a known secret wherever a record
	// carries it: message, string, error and group attributes.
	var buf bytes.Buffer
	ic2, err := New(Options{CA: ca, Rules: []Rule{rule}, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ic2.rules.Load().creds[0].secret.value(context.Background()); err != nil {
		t.Fatal(err)
	}
	ic2.log.With("w", "a"+testSecret).Error("msg "+testSecret, "s", testSecret, "err", fmt.Errorf("get https://x/?k=%s: refused", testSecret),
		slog.Group("g", "inner", testSecret), "n", 3)
	if strings.Contains(buf.String(), testSecret) || strings.Count(buf.String(), redacted) != 5 || !strings.Contains(buf.String(), `"n":3`) {
		t.Errorf("log record %s", buf.String())
	}
	if !strings.Contains(fmt.Sprint(c.secret), redacted) {
		t.Errorf("secret prints %q", fmt.Sprint(c.secret))
	}
	if s := fmt.Sprint(ca); strings.Contains(s, "PRIVATE") || strings.Contains(s, "D:") {
		t.Errorf("CA prints %q", s)
	}
}

func TestNewPlaceholder(t *testing.T) {
	re := regexp.MustCompile(`^acps-ph-[a-z0-9-]{1,32}-[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for _, name := range []string{"anthropic", "GitHub Token", "openai", "", "ü", strings.Repeat("x", 100)} {
		p := NewPlaceholder(name)
		if !re.MatchString(p) || !validPlaceholder(p) {
			t.Errorf("NewPlaceholder(%q) = %q", name, p)
		}
		if seen[p] {
			t.Errorf("repeated %q", p)
		}
		seen[p] = true
	}
	if p := NewPlaceholder("GitHub Token"); !strings.HasPrefix(p, "acps-ph-github-token-") {
		t.Errorf("name not kept recognisable: %q", p)
	}
	if NewPlaceholder("a") == NewPlaceholder("a") {
		t.Error("placeholders are not random")
	}
}

func TestNewRejects(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sec := func(context.Context) (string, error) { return "s", nil }
	ok := Rule{Name: "a", Host: apiHost, Header: "X-Api-Key", Secret: sec}
	with := func(f func(*Rule)) []Rule { r := ok; f(&r); return []Rule{r} }
	for _, tc := range []struct {
		name  string
		opts  Options
		error string
	}{
		{"no CA", Options{}, "CA is nil"},
		{"no name", Options{CA: ca, Rules: with(func(r *Rule) { r.Name = "" })}, "no name"},
		{"bad host", Options{CA: ca, Rules: with(func(r *Rule) { r.Host = "*" })}, "wildcard alone"},
		{"address", Options{CA: ca, Rules: with(func(r *Rule) { r.Host = "203.0.113.5" })}, "is an address"},
		{"port", Options{CA: ca, Rules: with(func(r *Rule) { r.Host = apiHost + ":8443" })}, "only port 443"},
		{"format", Options{CA: ca, Rules: with(func(r *Rule) { r.Format = "Bearer" })}, `no "{}"`},
		{"format newline", Options{CA: ca, Rules: with(func(r *Rule) { r.Format = "a\n{}" })}, "cannot go in"},
		{"header", Options{CA: ca, Rules: with(func(r *Rule) { r.Header = "X Key" })}, "not a header name"},
		{"hop header", Options{CA: ca, Rules: with(func(r *Rule) { r.Header = "connection" })}, "set by the proxy"},
		{"short placeholder", Options{CA: ca, Rules: with(func(r *Rule) { r.Placeholder = "KEY" })}, "at least 20"},
		{"nothing to do", Options{CA: ca, Rules: with(func(r *Rule) { r.Header = "" })}, "neither"},
		{"no secret", Options{CA: ca, Rules: with(func(r *Rule) { r.Secret = nil })}, "no secret source"},
		{"dup name", Options{CA: ca, Rules: []Rule{ok, ok}}, "second rule"},
		{"dup placeholder", Options{CA: ca, Rules: []Rule{
			{Name: "a", Host: apiHost, Placeholder: "acps-ph-same-0123456789abcdef", Secret: sec},
			{Name: "b", Host: otherHost, Placeholder: "acps-ph-same-0123456789abcdef", Secret: sec}}}, "same placeholder"},
		{"http path", Options{CA: ca, HTTPRules: []HTTPRule{{Host: apiHost, Paths: []string{"repos/**"}}}}, `begin with "/"`},
		{"http glob", Options{CA: ca, HTTPRules: []HTTPRule{{Host: apiHost, Paths: []string{"/a**"}}}}, "whole segment"},
		{"http query", Options{CA: ca, HTTPRules: []HTTPRule{{Host: apiHost, Paths: []string{"/a?b=1"}}}}, "query"},
		{"http method", Options{CA: ca, HTTPRules: []HTTPRule{{Host: apiHost, Methods: []string{"GE T"}}}}, "not an HTTP method"},
		{"bypass", Options{CA: ca, Bypass: []string{"10.0.0.0/8"}}, "is an address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("New: %v, want an error with %q", err, tc.error)
			}
		})
	}
	t.Run("http2debug", func(t *testing.T) {
		t.Setenv("GODEBUG", "http2debug=2")
		if _, err := New(Options{CA: ca}); err == nil || !strings.Contains(err.Error(), "http2debug") {
			t.Fatalf("New: %v", err)
		}
	})
}

// A secret that would break the header it goes in is refused.
func TestSecretValidated(t *testing.T) {
	for _, v := range []string{"", "a\r\nX-Evil: 1", "a\x00b"} {
		s := &secret{get: func(context.Context) (string, error) { return v, nil }}
		if _, err := s.value(context.Background()); err == nil {
			t.Errorf("secret %q accepted", v)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"/repos/OWNER/**", "/repos/OWNER/x/y/z", true},
		{"/repos/OWNER/**", "/repos/OWNER", true},
		{"/repos/OWNER/**", "/repos/OWNER/", true},
		{"/repos/OWNER/**", "/repos/OTHER/x", false},
		{"/repos/*/issues", "/repos/x/issues", true},
		{"/repos/*/issues", "/repos//issues", false},
		{"/repos/*/issues", "/repos/x/y/issues", false},
		{"/**/issues", "/a/b/issues", true},
		{"/**/issues", "/issues", true},
		{"/v1*/models", "/v1beta/models", true},
		{"/v1*/models", "/v2/models", false},
		{"/a/*.json", "/a/b.json", true},
		{"/a/*.json", "/a/b.yaml", false},
		{"/", "/", true},
		{"/", "/a", false},
		{"/**", "/anything/at/all", true},
	} {
		segs := strings.Split(tc.glob[1:], "/")
		psegs := strings.Split(tc.path[1:], "/")
		if got := globSegments(segs, psegs); got != tc.want {
			t.Errorf("%s ~ %s = %v, want %v", tc.glob, tc.path, got, tc.want)
		}
	}
}

// The stream matcher finds patterns across reads of any size, holds back
// only a possible match's beginning, and masks in place.
func TestMatchReader(t *testing.T) {
	pairs := []scrubPair{{seal("SECRETSECRET"), "x"}, {seal("SEXY"), "y"}}
	in := "aaSECRETSECRETbbSESECRETSECRETSEXYSE"
	want := "aa************bbSE****************SE"
	for _, oneByte := range []bool{false, true} {
		var r io.Reader = strings.NewReader(in)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		eof := false
		got, err := io.ReadAll(newScrubBody(io.NopCloser(r), pairs, true, func() { eof = true }))
		if err != nil || string(got) != want || !eof {
			t.Errorf("oneByte=%v: %q %v eof=%v, want %q", oneByte, got, err, eof, want)
		}
	}
	// Nothing is held back when the tail cannot begin a match: an SSE
	// event is readable before the next arrives.
	pr, pw := io.Pipe()
	m := newScrubBody(pr, pairs, true, nil)
	go pw.Write([]byte("data: 1\n\n"))
	buf := make([]byte, 100)
	n, err := m.Read(buf)
	if err != nil || string(buf[:n]) != "data: 1\n\n" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	// A tail that may begin a match waits for the next bytes.
	go pw.Write([]byte("xxSECR"))
	n, _ = m.Read(buf)
	if string(buf[:n]) != "xx" {
		t.Fatalf("read %q, want the unambiguous part only", buf[:n])
	}
	go func() { pw.Write([]byte("ETSECRET!")); pw.Close() }()
	rest, _ := io.ReadAll(m)
	if string(rest) != "************!" {
		t.Fatalf("rest %q", rest)
	}

	// The scanner stops before returning a foreign placeholder's bytes.
	c := &credential{name: "a", placeholder: "acps-ph-a-0123456789abcdef"}
	src := "hello " + c.placeholder + " world"
	got, err := io.ReadAll(newScanBody(io.NopCloser(iotest.OneByteReader(strings.NewReader(src))), []*credential{c}))
	var pe *placeholderError
	if !errorsAs(err, &pe) || strings.Contains(string(got), "acps-ph-a-0123456789abcdef") {
		t.Fatalf("got %q %v", got, err)
	}
}

func errorsAs(err error, pe **placeholderError) bool {
	p, ok := err.(*placeholderError)
	*pe = p
	return ok
}

// readahead passes the body through unchanged, whatever the read sizes,
// and stops its reader on Close.
func TestReadahead(t *testing.T) {
	var pool bufferPool
	content := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several buffers
	if err := iotest.TestReader(newReadahead(io.NopCloser(bytes.NewReader(content)), &pool), content); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(newReadahead(io.NopCloser(iotest.OneByteReader(bytes.NewReader(content[:1000]))), &pool))
	if err != nil || !bytes.Equal(got, content[:1000]) {
		t.Fatalf("one byte at a time: %d bytes, %v", len(got), err)
	}
	// Closed early: the goroutine blocked on a full queue or a read ends.
	before := runtime.NumGoroutine()
	pr, pw := io.Pipe()
	r := newReadahead(pr, &pool)
	go pw.Write(content) // ends when the pipe's reader is closed
	buf := make([]byte, 10)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hang)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines still running after Close: %d, were %d", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A secret resolved by a flow that started before its rule was replaced
// is masked all the same, and a slow resolution holds up neither the
// masking nor a look at whether the secret is known.
func TestMaskingOutlivesRulesAndWaitsForNothing(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	ic, err := New(Options{CA: ca, Rules: []Rule{{Name: "slow", Host: "api.example.com", Header: "x-api-key",
		Secret: func(context.Context) (string, error) { <-release; return "sk-SLOW-0123456789", nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	old := ic.rules.Load().creds[0] // what a flow in progress holds
	if err := ic.SetRules(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := old.secret.value(context.Background()); done <- err }()
	quick := make(chan struct{})
	go func() {
		old.secret.known()
		ic.redact("nothing to mask")
		close(quick)
	}()
	select {
	case <-quick:
	case <-time.After(5 * time.Second):
		t.Fatal("known/redact wait for a secret being resolved")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ic.redact("upstream said sk-SLOW-0123456789"); strings.Contains(got, "sk-SLOW") {
		t.Errorf("a secret resolved after its rule was replaced is not masked: %q", got)
	}
}

// The path globs of [[network.http]] and [[credentials]] paths: "*" is
// one segment, "**" any number, none included.
func TestPathGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"/v1/messages", "/v1/messages", true},
		{"/v1/messages", "/v1/messages/x", false},
		{"/v1/*", "/v1/messages", true},
		{"/v1/*", "/v1", false},
		{"/v1/*", "/v1/a/b", false},
		{"/api/*/settings", "/api/claude_code/settings", true},
		{"/v1/**", "/v1", true},
		{"/v1/**", "/v1/a/b/c", true},
		{"/v1/**", "/v2/a", false},
		{"/**/x", "/a/b/x", true},
		{"/**/x", "/x", true},
		{"/**", "/", true},
		{"/v1*", "/v1beta", true},
		{"/v1/**", "/v1/../v2", false}, // not canonical: no glob matches
	} {
		g, err := compilePathGlob("test", tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("https://h" + tc.path)
		u.RawPath, u.Path = tc.path, tc.path
		segs, canonical := pathSegments(u)
		if got := matchPaths([][]string{g}, segs, canonical); got != tc.want {
			t.Errorf("%q on %q = %v, want %v", tc.glob, tc.path, got, tc.want)
		}
	}
}
