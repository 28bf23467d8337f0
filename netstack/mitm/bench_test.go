package mitm

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Interception against the same HTTPS download spliced (the guest's TLS
// straight to the upstream), all on loopback, without the stack (see
// netstack's BenchmarkInterceptDownload for the whole path). Compare MB/s
// and ns/op of the arms within one run:
//
//	go test -run '^$' -bench . ./netstack/mitm/
//
// Goals: intercepted ≥ 60 % of spliced throughput; added time to first
// byte ≤ 5 ms.

const benchBlobSize = 16 << 20

func benchEnv(b *testing.B) *tenv {
	blob := make([]byte, benchBlobSize)
	_, _ = rand.Read(blob)
	pki := newTestPKI(b)
	up := newUpstream(b, pki, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/blob":
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			_, _ = w.Write(blob)
		case "/sse": // one event, flushed, as a model API's first token
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: message_start\ndata: {}\n\n")
			w.(http.Flusher).Flush()
		}
	}))
	return newTenv(b, up, pki.pool, nil)
}

// benchArms: apiHost has a credential rule (intercepted, key injected and
// masked out of the response); plainHost has none (spliced).
var benchArms = []struct {
	name, host string
	h2         bool
}{
	{"spliced/h1", plainHost, false},
	{"intercepted/h1", apiHost, false},
	{"spliced/h2", plainHost, true},
	{"intercepted/h2", apiHost, true},
}

func (e *tenv) benchClient(h2 bool, host string) *http.Client {
	if host == plainHost { // spliced: the guest verifies the upstream itself
		return e.guestClientRoots(h2, e.upRoots)
	}
	return e.guestClient(h2)
}

func BenchmarkBulkDownload(b *testing.B) {
	e := benchEnv(b)
	for _, arm := range benchArms {
		b.Run(arm.name, func(b *testing.B) {
			c := e.benchClient(arm.h2, arm.host)
			b.SetBytes(benchBlobSize)
			for b.Loop() {
				req, _ := http.NewRequest("GET", "https://"+arm.host+"/blob", nil)
				req.Header.Set("X-Api-Key", e.placeA)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != benchBlobSize {
					b.Fatalf("read %d: %v", n, err)
				}
			}
		})
	}
}

// BenchmarkBulkDownloadPaired alternates a spliced and an intercepted
// download in every op and reports each one's MB/s and their ratio: on a
// shared machine whose load changes from second to second, the ratio of
// the separate arms above wanders; this one does not.
func BenchmarkBulkDownloadPaired(b *testing.B) {
	e := benchEnv(b)
	for _, h2 := range []bool{false, true} {
		b.Run(map[bool]string{false: "h1", true: "h2"}[h2], func(b *testing.B) {
			spliced, intercepted := e.benchClient(h2, plainHost), e.benchClient(h2, apiHost)
			var ts, ti time.Duration
			for b.Loop() {
				ts += timedGet(b, spliced, plainHost, e.placeA)
				ti += timedGet(b, intercepted, apiHost, e.placeA)
			}
			mb := float64(b.N) * benchBlobSize / 1e6
			b.ReportMetric(mb/ts.Seconds(), "spliced-MB/s")
			b.ReportMetric(mb/ti.Seconds(), "intercepted-MB/s")
			b.ReportMetric(100*ts.Seconds()/ti.Seconds(), "%-of-spliced")
		})
	}
}

func timedGet(b *testing.B, c *http.Client, host, placeholder string) time.Duration {
	req, _ := http.NewRequest("GET", "https://"+host+"/blob", nil)
	req.Header.Set("X-Api-Key", placeholder)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != benchBlobSize {
		b.Fatalf("read %d: %v", n, err)
	}
	return time.Since(start)
}

// BenchmarkFirstByte is the time from sending a streamed request to
// reading the first event: on a connection already open (warm), and on a
// new connection each time (cold: TCP, and for interception two TLS
// handshakes and the request's checks). ns/op is the time to first byte.
func BenchmarkFirstByte(b *testing.B) {
	e := benchEnv(b)
	for _, cold := range []bool{false, true} {
		for _, arm := range benchArms {
			name := "warm/" + arm.name
			if cold {
				name = "cold/" + arm.name
			}
			b.Run(name, func(b *testing.B) {
				c := e.benchClient(arm.h2, arm.host)
				tr := c.Transport.(*http.Transport)
				one := make([]byte, 1)
				var total time.Duration
				for b.Loop() {
					if cold {
						tr.CloseIdleConnections()
					}
					req, _ := http.NewRequest("POST", "https://"+arm.host+"/sse", nil)
					req.Header.Set("X-Api-Key", e.placeA)
					start := time.Now()
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(resp.Body, one); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ttfb-ns")
			})
		}
	}
}
