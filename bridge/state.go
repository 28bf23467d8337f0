package bridge

import (
	"errors"
	"sync"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// editorRequest is an editor → agent request awaiting the agent's answer.
type editorRequest struct {
	method   string
	roots    []string // session/new|load|resume: the checked roots
	session  string   // session/load|resume|prompt: its session
	warnings []string // shown to the user once the session exists
}

// state is what both directions share. Pending editor requests live in an
// acp.Pending (one decide-and-mutate table, ids matched canonically); the
// session roots behind their own mutex.
type state struct {
	pending acp.Pending // Call.Data is the *editorRequest

	mu       sync.Mutex
	sessions map[string][]string // session id → resolved roots
	turns    []string            // sessions with a prompt turn on, oldest first (one entry per turn)
	onTurn   func(bool)
}

var errAgentGone = errors.New("the agent is gone")

func newState(onTurn func(bool)) *state {
	return &state{sessions: map[string][]string{}, onTurn: onTurn}
}

// turnStart records a session/prompt forwarded to the agent.
func (s *state) turnStart(session string) {
	s.mu.Lock()
	first := len(s.turns) == 0
	s.turns = append(s.turns, session)
	s.mu.Unlock()
	if first && s.onTurn != nil {
		s.onTurn(true)
	}
}

// turnEnd records the end of one turn of session.
func (s *state) turnEnd(session string) {
	s.mu.Lock()
	for i, t := range s.turns {
		if t == session {
			s.turns = append(s.turns[:i], s.turns[i+1:]...)
			break
		}
	}
	last := len(s.turns) == 0
	s.mu.Unlock()
	if last && s.onTurn != nil {
		s.onTurn(false)
	}
}

// endTurns ends every turn (the agent is gone).
func (s *state) endTurns() {
	s.mu.Lock()
	had := len(s.turns) > 0
	s.turns = nil
	s.mu.Unlock()
	if had && s.onTurn != nil {
		s.onTurn(false)
	}
}

// activeTurn is the session of the most recent prompt turn still on; ""
// when none is.
func (s *state) activeTurn() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.turns) == 0 {
		return ""
	}
	return s.turns[len(s.turns)-1]
}

// addEditorRequest records a request before it is forwarded; an id the
// editor already has in flight is refused (acp.ErrDuplicateID).
func (s *state) addEditorRequest(id acp.ID, r *editorRequest) error {
	_, err := s.pending.Add(id, r.method, r)
	return err
}

// answered removes and returns the request a response answers (nil if
// unknown).
func (s *state) answered(resp *acp.Message) *editorRequest {
	c, err := s.pending.Resolve(resp)
	if err != nil {
		return nil
	}
	return c.Data.(*editorRequest)
}

// forget drops a request that could not be forwarded; false if unknown.
func (s *state) forget(id acp.ID) bool {
	c, ok := s.pending.Fail(id, errAgentGone)
	if ok {
		if r := c.Data.(*editorRequest); r.method == "session/prompt" {
			s.turnEnd(r.session)
		}
	}
	return ok
}

// drainEditorRequests empties the pending table and returns the ids, as the
// editor wrote them, in the order they were sent.
func (s *state) drainEditorRequests() []acp.ID {
	calls := s.pending.FailAll(errAgentGone)
	s.endTurns()
	ids := make([]acp.ID, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
	}
	return ids
}

func (s *state) setSession(id string, roots []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[id] = roots
}

// sessionRoots returns a session's roots, or nil for an unknown session.
func (s *state) sessionRoots(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}
