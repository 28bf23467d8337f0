package acp

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkNoLeak fails t if goroutines started during the test outlive it.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func response(t *testing.T, id ID) *Message {
	t.Helper()
	b, err := NewResult(id, map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPendingFailAll(t *testing.T) {
	checkNoLeak(t)
	var p Pending
	alloc := NewIDAllocator()
	const n = 50
	agentGone := errors.New("agent exited")
	var (
		wg      sync.WaitGroup
		results atomic.Int32
		ready   sync.WaitGroup
	)
	calls := make([]*Call, n)
	for i := range n {
		c, err := p.Add(alloc.Next(), "session/request_permission", i)
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = c
		ready.Add(1)
		wg.Go(func() {
			ready.Done()
			resp, err := c.Wait(context.Background())
			if resp != nil || !errors.Is(err, agentGone) {
				t.Errorf("waiter %d: %v %v", i, resp, err)
			}
			results.Add(1)
		})
	}
	ready.Wait()
	failed := p.FailAll(agentGone)
	wg.Wait()
	if results.Load() != n || len(failed) != n || p.Len() != 0 {
		t.Fatalf("%d waiters returned, %d failed, %d left", results.Load(), len(failed), p.Len())
	}
	for i, c := range failed {
		if c != calls[i] || c.Data != i {
			t.Fatalf("FailAll order: call %d is %v", i, c.Data)
		}
	}
	// Exactly once: a second FailAll and a late response find nothing.
	if again := p.FailAll(agentGone); len(again) != 0 {
		t.Fatalf("second FailAll failed %d calls", len(again))
	}
	if _, err := p.Resolve(response(t, calls[0].ID)); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("late response: %v", err)
	}
	// The table stays open after FailAll.
	if _, err := p.Add(alloc.Next(), "m", nil); err != nil {
		t.Fatal(err)
	}
}

// Responses racing FailAll: every call completes exactly once, with one or
// the other (a second completion would panic on the closed channel).
func TestPendingRace(t *testing.T) {
	checkNoLeak(t)
	for round := range 20 {
		var p Pending
		const n = 100
		calls := make([]*Call, n)
		for i := range n {
			calls[i], _ = p.Add(IntID(int64(i)), "m", nil)
		}
		var resolved atomic.Int32
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range n {
				if _, err := p.Resolve(response(t, IntID(int64(i)))); err == nil {
					resolved.Add(1)
				} else if !errors.Is(err, ErrUnknownID) {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			if round%2 == 0 {
				runtime.Gosched()
			}
			p.Close(errors.New("gone"))
		})
		wg.Wait()
		failed := 0
		for _, c := range calls {
			resp, err := c.Result()
			switch {
			case resp != nil && err == nil:
			case resp == nil && err != nil:
				failed++
			default:
				t.Fatalf("call %s: %v %v", c.ID, resp, err)
			}
		}
		if int(resolved.Load())+failed != n {
			t.Fatalf("%d resolved + %d failed != %d", resolved.Load(), failed, n)
		}
	}
}

func TestPendingResolve(t *testing.T) {
	checkNoLeak(t)
	var p Pending
	c, err := p.Add(StringID("café"), "fs/read_text_file", "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(StringID("café"), "m", nil); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate Add: %v", err)
	}
	if _, err := p.Resolve(response(t, StringID("other"))); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("unknown id: %v", err)
	}
	// The peer re-encoded the id with an escape: still the same request.
	esc, _ := ParseID([]byte(`"caf\u00e9"`))
	got, err := p.Resolve(response(t, esc))
	if err != nil || got != c {
		t.Fatalf("Resolve: %v %v", got, err)
	}
	resp, err := c.Wait(context.Background())
	if err != nil || resp.ID != esc || string(resp.Result) != `{"n":1}` {
		t.Fatalf("Wait: %v %v", resp, err)
	}
	if _, err := p.Resolve(response(t, esc)); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("second response to one request: %v", err)
	}
	notif, _ := Parse([]byte(`{"jsonrpc":"2.0","method":"m"}`))
	if _, err := p.Resolve(notif); err == nil {
		t.Fatal("resolved with a notification")
	}
}

func TestPendingWaitContext(t *testing.T) {
	checkNoLeak(t)
	var p Pending
	c, _ := p.Add(IntID(1), "m", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v", err)
	}
	if p.Len() != 0 {
		t.Fatal("a timed-out call stays pending")
	}
	if _, err := p.Resolve(response(t, IntID(1))); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("late response: %v", err)
	}
	// A new call may reuse the id; the old call's Wait must not touch it.
	c2, err := p.Add(IntID(1), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx); err == nil {
		t.Fatal("completed call lost its error")
	}
	if p.Len() != 1 {
		t.Fatal("the old call's Wait failed the new call")
	}
	if _, ok := p.Fail(IntID(1), errors.New("cancelled")); !ok {
		t.Fatal("Fail found nothing")
	}
	if _, err := c2.Result(); err == nil || err.Error() != "cancelled" {
		t.Fatalf("Fail: %v", err)
	}
	// A response that wins the race against the deadline is returned.
	c3, _ := p.Add(IntID(2), "m", nil)
	p.Resolve(response(t, IntID(2)))
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if resp, err := c3.Wait(done); err != nil || resp == nil {
		t.Fatalf("resolved call with a cancelled context: %v %v", resp, err)
	}
}

func TestPendingClose(t *testing.T) {
	var p Pending
	c, _ := p.Add(IntID(1), "m", nil)
	vmDied := errors.New("vm died")
	if failed := p.Close(vmDied); len(failed) != 1 || failed[0] != c {
		t.Fatalf("Close failed %v", failed)
	}
	if _, err := c.Result(); !errors.Is(err, vmDied) {
		t.Fatalf("call error %v", err)
	}
	_, err := p.Add(IntID(2), "m", nil)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, vmDied) {
		t.Fatalf("Add after Close: %v", err)
	}
	var q Pending
	q.Add(IntID(1), "m", nil)
	if f := q.FailAll(nil); len(f) != 1 {
		t.Fatal(len(f))
	} else if _, err := f[0].Result(); !errors.Is(err, ErrClosed) {
		t.Fatalf("FailAll(nil): %v", err)
	}
}
