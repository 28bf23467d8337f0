package mitm

import (
	"bytes"
	"io"
	"sync"
)

// placeholderError is a foreign placeholder found in a streaming request
// body; the upstream request is aborted with it.
type placeholderError struct{ cred *credential }

func (e *placeholderError) Error() string {
	return "the placeholder for credential " + e.cred.name + " is in the request body"
}

// matchReader passes a stream through while looking for patterns that
// may straddle reads. It holds back only a tail that could begin a match
// (so a stream whose last bytes begin no pattern is passed on at once:
// server-sent events are not delayed), and hands each match to onMatch,
// which may rewrite it in place (same length) or stop the stream.
type matchReader struct {
	r       io.ReadCloser
	pats    [][]byte
	maxLen  int
	onMatch func(buf []byte, at, pat int) error // nil error: go on
	enabled bool                                // false: pass through, still calling atEOF
	atEOF   func()

	buf              []byte
	start, safe, end int // buf[start:safe] may be returned; buf[safe:end] is held
	err              error
}

func newMatchReader(r io.ReadCloser, pats [][]byte, enabled bool, onMatch func([]byte, int, int) error, atEOF func()) *matchReader {
	m := &matchReader{r: r, pats: pats, onMatch: onMatch, enabled: enabled, atEOF: atEOF}
	for _, p := range pats {
		m.maxLen = max(m.maxLen, len(p))
	}
	if enabled { // a disabled reader passes reads straight through
		m.buf = make([]byte, 32<<10+m.maxLen)
	}
	return m
}

func (m *matchReader) Read(p []byte) (int, error) {
	if !m.enabled {
		n, err := m.r.Read(p)
		if err == io.EOF && m.atEOF != nil {
			m.atEOF()
			m.atEOF = nil
		}
		return n, err
	}
	for {
		if m.start < m.safe {
			n := copy(p, m.buf[m.start:m.safe])
			m.start += n
			return n, nil
		}
		if m.err != nil {
			if m.err == io.EOF && m.atEOF != nil {
				m.atEOF()
				m.atEOF = nil
			}
			return 0, m.err
		}
		if m.start > 0 { // keep only the held tail
			m.end = copy(m.buf, m.buf[m.start:m.end])
			m.start, m.safe = 0, 0
		}
		old := m.end
		n, err := m.r.Read(m.buf[m.end:])
		m.end += n
		if n > 0 {
			if e := m.search(max(0, old-m.maxLen+1)); e != nil {
				m.err = e
				m.start, m.safe, m.end = 0, 0, 0
				continue
			}
		}
		if err != nil {
			m.err, m.safe = err, m.end
			continue
		}
		m.safe = m.end - m.held()
	}
}

// search finds the patterns in buf[from:end].
func (m *matchReader) search(from int) error {
	data := m.buf[:m.end]
	for i, p := range m.pats {
		for at := from; ; {
			j := bytes.Index(data[at:], p)
			if j < 0 {
				break
			}
			if err := m.onMatch(data, at+j, i); err != nil {
				return err
			}
			at += j + len(p)
		}
	}
	return nil
}

// held is the length of the longest tail of buf[start:end] that is a
// proper prefix of some pattern.
func (m *matchReader) held() int {
	data := m.buf[m.start:m.end]
	longest := 0
	for _, p := range m.pats {
		for i := max(0, len(data)-len(p)+1); i < len(data); i++ {
			if len(data)-i <= longest {
				break
			}
			if data[i] == p[0] && bytes.HasPrefix(p, data[i:]) {
				longest = len(data) - i
				break
			}
		}
	}
	return longest
}

func (m *matchReader) Close() error { return m.r.Close() }

// newScanBody checks a streaming request body for foreign placeholders:
// the read that would return one fails with a *placeholderError instead.
func newScanBody(r io.ReadCloser, foreign []*credential) io.ReadCloser {
	pats := make([][]byte, len(foreign))
	for i, c := range foreign {
		pats[i] = []byte(c.placeholder)
	}
	return newMatchReader(r, pats, true, func(_ []byte, _, i int) error {
		return &placeholderError{cred: foreign[i]}
	}, nil)
}

// newScrubBody masks the secrets sent in a response body (same length, so
// Content-Length holds) when scan is set (the body is not compressed), and
// calls atEOF (which masks the trailers) at its end.
func newScrubBody(r io.ReadCloser, pairs []scrubPair, scan bool, atEOF func()) io.ReadCloser {
	pats := make([][]byte, len(pairs))
	for i, p := range pairs {
		pats[i] = []byte(p.secret())
	}
	return newMatchReader(r, pats, scan, func(buf []byte, at, i int) error {
		for k := range pats[i] {
			buf[at+k] = '*'
		}
		return nil
	}, atEOF)
}

// readahead reads a response body in its own goroutine, a few buffers
// ahead of the writer: decrypting from the upstream and encrypting to the
// guest then run at the same time instead of taking turns. Each read is
// handed on as soon as it returns, so a stream is not delayed.
//
// The goroutine starts at the first Read: reading the body to its end
// fills the response's Trailer, which ReverseProxy looks at before it
// starts copying the body (and again only after the copy has seen EOF,
// which the channel orders after the goroutine's writes).
type readahead struct {
	body    io.ReadCloser
	pool    *bufferPool
	full    chan chunk  // read, not yet consumed
	free    chan []byte // consumed buffers, for the next reads
	done    chan struct{}
	once    sync.Once
	started bool
	made    int // buffers taken from pool (by the goroutine)

	cur []byte
	off int
	err error
}

type chunk struct {
	b   []byte
	err error
}

// readaheadBuffers is how many buffers one body may hold.
const readaheadBuffers = 4

func newReadahead(body io.ReadCloser, pool *bufferPool) *readahead {
	return &readahead{body: body, pool: pool, full: make(chan chunk, readaheadBuffers), free: make(chan []byte, readaheadBuffers), done: make(chan struct{})}
}

func (r *readahead) loop() {
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		default:
			if r.made < readaheadBuffers { // a short body takes one buffer
				r.made++
				buf = r.pool.Get()
				break
			}
			select {
			case buf = <-r.free:
			case <-r.done:
				return
			}
		}
		n, err := r.body.Read(buf[:cap(buf)])
		select {
		case r.full <- chunk{buf[:n], err}:
		case <-r.done:
			return
		}
		if err != nil {
			return // holds no buffer from here on
		}
	}
}

func (r *readahead) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		go r.loop() // ends at the body's end or error, or on Close
	}
	for r.off >= len(r.cur) {
		if r.cur != nil {
			r.free <- r.cur[:cap(r.cur)] // never blocks: free has room for every buffer
			r.cur = nil
		}
		if r.err != nil {
			r.recycle()
			return 0, r.err
		}
		c := <-r.full
		r.cur, r.off, r.err = c.b, 0, c.err
	}
	n := copy(p, r.cur[r.off:])
	r.off += n
	return n, nil
}

// recycle returns the buffers to the pool once the goroutine has ended
// (it sent its last chunk, with an error): they are all in free.
func (r *readahead) recycle() {
	for {
		select {
		case b := <-r.free:
			r.pool.Put(b)
		default:
			return
		}
	}
}

// Close stops the reader and closes the body. Buffers not recycled at
// the end of the body are left to the garbage collector (the goroutine
// may still hold one).
func (r *readahead) Close() error {
	r.once.Do(func() { close(r.done) })
	return r.body.Close()
}
