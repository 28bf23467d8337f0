package cli

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// ttyApprover answers approve-on-block questions from the terminal of a
// headless `run` or `shell`. The terminal is in raw mode and its bytes go
// to the command in the VM, so a question takes over exactly one
// keystroke: o (once), a (always), anything else rejects. Questions come
// one at a time; the network side bounds the wait.
type ttyApprover struct {
	in  io.Reader
	out io.Writer
	ap  *sandbox.Approver

	mu      sync.Mutex
	pending *sandbox.ApprovalRequest
	answer  chan string
	done    chan struct{}
}

func newTTYApprover(ctx context.Context, c *sandbox.Client, in io.Reader, out io.Writer) (*ttyApprover, error) {
	ap, err := c.Approver(ctx)
	if err != nil {
		return nil, err
	}
	if err := ap.SetActive(true); err != nil {
		ap.Close()
		return nil, err
	}
	t := &ttyApprover{in: in, out: out, ap: ap, answer: make(chan string, 1), done: make(chan struct{})}
	go t.loop() // owned: ends when ap's requests close (Close)
	return t, nil
}

func (t *ttyApprover) loop() {
	defer close(t.done)
	for r := range t.ap.Requests() {
		t.mu.Lock()
		t.pending = &r
		t.mu.Unlock()
		fmt.Fprintf(t.out, "\r\n\x1b[1macp-sandbox:\x1b[0m blocked: %s\r\n  %s\r\n  allow? [o]nce, [a]lways (%s in this workspace), anything else rejects: ", r.What, r.Reason, r.Suggest)
		a := <-t.answer
		fmt.Fprintf(t.out, "%s\r\n", a)
		_ = t.ap.Answer(r.ID, a)
	}
}

// Read passes the terminal's bytes on, except the one that answers a
// pending question.
func (t *ttyApprover) Read(p []byte) (int, error) {
	for {
		n, err := t.in.Read(p)
		if n == 0 {
			return n, err
		}
		t.mu.Lock()
		q := t.pending
		t.pending = nil
		t.mu.Unlock()
		if q == nil {
			return n, err
		}
		switch p[0] {
		case 'o', 'O', 'y', 'Y':
			t.answer <- sandbox.AnswerOnce
		case 'a', 'A':
			t.answer <- sandbox.AnswerAlways
		default:
			t.answer <- sandbox.AnswerReject
		}
		n = copy(p, p[1:n])
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Close ends the registration; an unanswered question is rejected.
func (t *ttyApprover) Close() {
	select {
	case t.answer <- sandbox.AnswerReject:
	default:
	}
	_ = t.ap.Close()
	<-t.done
}
