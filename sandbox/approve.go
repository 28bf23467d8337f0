package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/netstack"
)

// Approve-on-block: when the network denies a flow a person could allow,
// the supervisor asks an approver — an ACP-mode process whose editor is in
// a prompt turn — and the flow waits for the answer (netstack bounds the
// wait). Answers: "once" lets the flow (and its kind, for GrantTTL)
// through; "always" also stores the pattern in the workspace's host-side
// approvals (never in sandbox.toml); anything else, a timeout, or no
// approver, denies.

// Approval answers.
const (
	AnswerOnce   = "once"
	AnswerAlways = "always"
	AnswerReject = "reject"
)

// rejectMemory is how long a rejected pattern is denied without asking
// again: a client retrying must not nag the user.
const rejectMemory = 60 * time.Second

// ApprovalRequest is a blocked flow put to an approver.
type ApprovalRequest struct {
	ID      int    `json:"id"`
	What    string `json:"what"`    // "pypi.org:443", "DNS lookup of pypi.org"
	Suggest string `json:"suggest"` // the allow pattern an approval grants
	Reason  string `json:"reason"`  // why it was denied
}

// approverMsg is one frame on an approver connection, either way.
type approverMsg struct {
	Request *ApprovalRequest `json:"request,omitempty"` // supervisor → client
	ID      int              `json:"id,omitempty"`      // client → supervisor: the answer's request
	Answer  string           `json:"answer,omitempty"`
	Active  *bool            `json:"active,omitempty"` // client → supervisor: a prompt turn is on
	// Capture (client → supervisor) hands over a key the editor sent over
	// ACP; Captured is the answer.
	Capture  *Capture  `json:"capture,omitempty"`
	Captured *Captured `json:"captured,omitempty"`
}

// approver is one registered client.
type approver struct {
	w      *control.Writer
	wmu    sync.Mutex
	active bool
	waits  map[int]chan string
	gone   chan struct{}
}

// approvals is the supervisor's side: approvers, questions in flight
// (one question per pattern, however many flows wait on it), and recent
// rejections.
type approvals struct {
	mu       sync.Mutex
	list     []*approver // newest last
	nextID   int
	inflight map[string]*question
	rejected map[string]time.Time
}

type question struct {
	done   chan struct{}
	answer string
}

func newApprovals() *approvals {
	return &approvals{inflight: map[string]*question{}, rejected: map[string]time.Time{}}
}

// approveFlow is netstack's Config.Approve.
func (s *supervisor) approveFlow(ctx context.Context, f netstack.Flow) bool {
	a := s.approvals
	key := f.Suggest
	a.mu.Lock()
	if t, ok := a.rejected[key]; ok && time.Since(t) < rejectMemory {
		a.mu.Unlock()
		return false
	}
	q, asking := a.inflight[key]
	if !asking {
		q = &question{done: make(chan struct{})}
		a.inflight[key] = q
	}
	a.mu.Unlock()
	if !asking {
		go s.ask(ctx, f, q) // owned: ends when answered, gone, or ctx ends
	}
	select {
	case <-q.done:
	case <-ctx.Done():
		return false
	}
	switch q.answer {
	case AnswerOnce:
		return true
	case AnswerAlways:
		if err := config.OpenApprovals(s.sb.StateDir).AddAllow(f.Suggest); err != nil {
			s.log.Error("cannot store an allow-always answer", "pattern", f.Suggest, "err", err)
		}
		s.reloadPolicy()
		return true
	}
	return false
}

// ask puts f to the newest active approver and records the answer in q.
func (s *supervisor) ask(ctx context.Context, f netstack.Flow, q *question) {
	a := s.approvals
	answer, explicit := AnswerReject, false
	defer func() {
		a.mu.Lock()
		q.answer = answer
		delete(a.inflight, f.Suggest)
		if explicit && answer == AnswerReject {
			a.rejected[f.Suggest] = time.Now()
		}
		a.mu.Unlock()
		close(q.done)
	}()
	a.mu.Lock()
	var ap *approver
	for i := len(a.list) - 1; i >= 0; i-- {
		if a.list[i].active {
			ap = a.list[i]
			break
		}
	}
	if ap == nil {
		a.mu.Unlock()
		return // nobody to ask: denied at once, not after a wait
	}
	a.nextID++
	id := a.nextID
	ch := make(chan string, 1)
	ap.waits[id] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(ap.waits, id)
		a.mu.Unlock()
	}()
	req := &ApprovalRequest{ID: id, What: f.What(), Suggest: f.Suggest, Reason: f.Reason}
	ap.wmu.Lock()
	err := ap.w.JSON(control.TypeJSON, approverMsg{Request: req})
	ap.wmu.Unlock()
	if err != nil {
		return
	}
	s.log.Info("asking about a blocked flow", "what", req.What, "suggest", req.Suggest)
	select {
	case ans := <-ch:
		explicit = true
		if ans == AnswerOnce || ans == AnswerAlways {
			answer = ans
		}
	case <-ap.gone:
	case <-ctx.Done():
	}
	s.log.Info("blocked flow answered", "what", req.What, "answer", answer)
}

// serveApprover runs one approver connection until it closes.
func (s *supervisor) serveApprover(c net.Conn, w *control.Writer) {
	a := s.approvals
	ap := &approver{w: w, waits: map[int]chan string{}, gone: make(chan struct{})}
	a.mu.Lock()
	a.list = append(a.list, ap)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		for i, x := range a.list {
			if x == ap {
				a.list = append(a.list[:i], a.list[i+1:]...)
				break
			}
		}
		a.mu.Unlock()
		close(ap.gone)
		s.dropACPSession(ap)
	}()
	for {
		var m approverMsg
		if err := control.ReadJSON(c, control.TypeJSON, &m); err != nil {
			return
		}
		if m.Capture != nil {
			r := s.capture(ap, *m.Capture)
			ap.wmu.Lock()
			err := ap.w.JSON(control.TypeJSON, approverMsg{Captured: &r})
			ap.wmu.Unlock()
			if err != nil {
				return
			}
			continue
		}
		a.mu.Lock()
		if m.Active != nil {
			ap.active = *m.Active
		}
		if ch, ok := ap.waits[m.ID]; ok && m.Answer != "" {
			select {
			case ch <- m.Answer:
			default:
			}
		}
		a.mu.Unlock()
	}
}

// Approver is a client's registration as an approver: Requests delivers
// blocked flows while SetActive(true) is in force; each must be answered.
type Approver struct {
	conn     net.Conn
	w        *control.Writer
	wmu      sync.Mutex
	requests chan ApprovalRequest
	closing  chan struct{}
	done     chan struct{}
	once     sync.Once

	cmu      sync.Mutex
	nextCap  int
	captures map[int]chan Captured
}

// Approver registers this client to answer approve-on-block questions.
// Close ends the registration.
func (c *Client) Approver(ctx context.Context) (*Approver, error) {
	conn, err := c.connect(ctx, supRequest{Op: opApprover})
	if err != nil {
		return nil, err
	}
	var r supReply
	if err := control.ReadJSON(conn, control.TypeJSON, &r); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: supervisor did not answer: %v", ErrNotRunning, err)
	}
	if r.Error != "" {
		conn.Close()
		return nil, errors.New(r.Error)
	}
	a := &Approver{conn: conn, w: control.NewWriter(conn), requests: make(chan ApprovalRequest, 16),
		closing: make(chan struct{}), done: make(chan struct{}), captures: map[int]chan Captured{}}
	go a.read() // owned: ends when conn closes (Close)
	return a, nil
}

func (a *Approver) read() {
	defer close(a.done)
	defer close(a.requests)
	for {
		var m approverMsg
		if err := control.ReadJSON(a.conn, control.TypeJSON, &m); err != nil {
			return
		}
		if m.Captured != nil {
			a.cmu.Lock()
			ch := a.captures[m.Captured.ID]
			delete(a.captures, m.Captured.ID)
			a.cmu.Unlock()
			if ch != nil {
				ch <- *m.Captured // buffered
			}
			continue
		}
		if m.Request != nil {
			select {
			case a.requests <- *m.Request:
			case <-a.closing:
				return
			}
		}
	}
}

// Requests delivers the questions; it is closed when the registration
// ends.
func (a *Approver) Requests() <-chan ApprovalRequest { return a.requests }

// SetActive says whether a prompt turn is on (only then is this approver
// asked).
func (a *Approver) SetActive(on bool) error {
	return a.send(approverMsg{Active: &on})
}

// Answer answers request id with AnswerOnce, AnswerAlways or AnswerReject.
func (a *Approver) Answer(id int, answer string) error {
	return a.send(approverMsg{ID: id, Answer: answer})
}

// Capture hands the supervisor a key the editor sent over ACP and returns
// what the agent gets instead. The key stays in force while this
// registration lasts. An error means the key was not taken: the editor's
// request must not reach the agent.
func (a *Approver) Capture(ctx context.Context, c Capture) (Captured, error) {
	ch := make(chan Captured, 1)
	a.cmu.Lock()
	a.nextCap++
	c.ID = a.nextCap
	a.captures[c.ID] = ch
	a.cmu.Unlock()
	defer func() {
		a.cmu.Lock()
		delete(a.captures, c.ID)
		a.cmu.Unlock()
	}()
	if err := a.send(approverMsg{Capture: &c}); err != nil {
		return Captured{}, fmt.Errorf("cannot reach the sandbox's supervisor: %w", err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return r, errors.New(r.Error)
		}
		return r, nil
	case <-a.done:
		return Captured{}, errors.New("the sandbox's supervisor went away")
	case <-ctx.Done():
		return Captured{}, ctx.Err()
	}
}

func (a *Approver) send(m approverMsg) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.w.JSON(control.TypeJSON, m)
}

// Close ends the registration and waits for its reader.
func (a *Approver) Close() error {
	var err error
	a.once.Do(func() {
		close(a.closing)
		err = a.conn.Close()
	})
	<-a.done
	return err
}
