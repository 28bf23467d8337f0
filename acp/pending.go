package acp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

var (
	// ErrUnknownID: no pending request has the response's id (never sent,
	// already answered, cancelled, or failed). Log the response and drop it.
	ErrUnknownID = errors.New("acp: no pending request with this id")
	// ErrDuplicateID: a request with this id is already pending.
	ErrDuplicateID = errors.New("acp: a request with this id is already pending")
	// ErrClosed is wrapped by the error of [Pending.Add] after
	// [Pending.Close], and is the failure [Pending.FailAll] uses when given nil.
	ErrClosed = errors.New("acp: pending table closed")
)

// Call is one pending request. It completes exactly once: with the peer's
// response, or with an error from [Pending.Fail], [Pending.FailAll],
// [Pending.Close] or a [Call.Wait] whose context ended.
type Call struct {
	ID     ID     // as given to Add
	Method string // as given to Add
	Data   any    // as given to Add: whatever the bridge needs to finish the call

	p    *Pending
	seq  uint64
	done chan struct{}
	resp *Message
	err  error
}

// Done is closed when the call completes.
func (c *Call) Done() <-chan struct{} { return c.done }

// Result returns the call's outcome: the response (which may be an error
// response: see [Message.DecodeError]) or the error it failed with. It
// blocks until the call completes.
func (c *Call) Result() (*Message, error) {
	<-c.done
	return c.resp, c.err
}

// Wait waits for the call to complete or ctx to end. If ctx ends first, the
// call is removed from its table and fails with ctx's error, so a late
// response is reported as unknown; if the response won the race, Wait
// returns it.
func (c *Call) Wait(ctx context.Context) (*Message, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		c.p.update(func(s *pendingState) { s.finish(c, nil, ctx.Err()) })
	}
	return c.Result()
}

// Pending is a table of in-flight requests keyed by id. It serves both the
// requests the bridge sends (a goroutine waits on the Call) and the requests
// it forwards (no one waits; when the peer dies, [Pending.FailAll] returns
// them so that each gets an error response). It starts no goroutines. The zero
// Pending is ready to use; it must not be copied after first use.
//
// Ids are matched by [ID.Canonical] form, so a peer that re-encodes a string
// id ("\u0061" for "a") still matches.
type Pending struct {
	mu    sync.Mutex
	state pendingState // accessed only in update
}

type pendingState struct {
	calls  map[ID]*Call // by canonical id
	seq    uint64
	closed error
}

// update runs f with the table locked: every read and change of the table
// goes through here, and a call leaves the table only through finish, which
// completes it. That is what makes each call complete exactly once.
func (p *Pending) update(f func(*pendingState)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.state)
}

// finish removes c and completes it, unless it has already left the table
// (completed before, or replaced by a newer call with the same id).
func (s *pendingState) finish(c *Call, resp *Message, err error) bool {
	k := c.ID.Canonical()
	if s.calls[k] != c {
		return false
	}
	delete(s.calls, k)
	c.resp, c.err = resp, err
	close(c.done)
	return true
}

// Add records a request about to be sent. Add before writing the request, so
// that the response cannot arrive first.
func (p *Pending) Add(id ID, method string, data any) (*Call, error) {
	var (
		c   *Call
		err error
	)
	p.update(func(s *pendingState) {
		k := id.Canonical()
		switch {
		case s.closed != nil:
			err = s.closed
		case s.calls[k] != nil:
			err = fmt.Errorf("%w: %s", ErrDuplicateID, id)
		default:
			if s.calls == nil {
				s.calls = map[ID]*Call{}
			}
			s.seq++
			c = &Call{ID: id, Method: method, Data: data, p: p, seq: s.seq, done: make(chan struct{})}
			s.calls[k] = c
		}
	})
	return c, err
}

// Resolve completes the call that resp answers and returns it. It reports
// [ErrUnknownID] when no call is pending with resp's id.
func (p *Pending) Resolve(resp *Message) (*Call, error) {
	if resp.Kind != KindResponse {
		return nil, fmt.Errorf("acp: resolving with a %s, not a response", resp.Kind)
	}
	var c *Call
	p.update(func(s *pendingState) {
		if c = s.calls[resp.ID.Canonical()]; c != nil {
			s.finish(c, resp, nil)
		}
	})
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownID, resp.ID)
	}
	return c, nil
}

// Fail completes the call with id, if pending, with err (a timeout, a
// cancellation) and returns it.
func (p *Pending) Fail(id ID, err error) (*Call, bool) {
	var c *Call
	p.update(func(s *pendingState) {
		if c = s.calls[id.Canonical()]; c != nil {
			s.finish(c, nil, err)
		}
	})
	return c, c != nil
}

// FailAll completes every pending call with err ([ErrClosed] if nil), for
// when the peer is gone, and returns them in the order they were added. The
// table stays open: a restarted peer can get new calls.
func (p *Pending) FailAll(err error) []*Call {
	return p.failAll(err, false)
}

// Close is FailAll, after which Add fails with an error wrapping ErrClosed
// (and err). Only the first Close's error counts.
func (p *Pending) Close(err error) []*Call {
	return p.failAll(err, true)
}

func (p *Pending) failAll(err error, closing bool) []*Call {
	if err == nil {
		err = ErrClosed
	}
	var failed []*Call
	p.update(func(s *pendingState) {
		if closing && s.closed == nil {
			s.closed = ErrClosed
			if !errors.Is(err, ErrClosed) {
				s.closed = fmt.Errorf("%w: %w", ErrClosed, err)
			}
		}
		for _, c := range s.calls {
			failed = append(failed, c)
		}
		slices.SortFunc(failed, func(a, b *Call) int { return cmp.Compare(a.seq, b.seq) })
		for _, c := range failed {
			s.finish(c, nil, err)
		}
	})
	return failed
}

// Len returns the number of pending calls.
func (p *Pending) Len() int {
	var n int
	p.update(func(s *pendingState) { n = len(s.calls) })
	return n
}
