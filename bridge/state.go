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
	session  string   // session/load|resume: the id asked for
	warnings []string // shown to the user once the session exists
}

// state is what both directions share. Pending editor requests live in an
// acp.Pending (one decide-and-mutate table, ids matched canonically); the
// session roots behind their own mutex.
type state struct {
	pending acp.Pending // Call.Data is the *editorRequest

	mu       sync.Mutex
	sessions map[string][]string // session id → resolved roots
}

var errAgentGone = errors.New("the agent is gone")

func newState() *state {
	return &state{sessions: map[string][]string{}}
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
	_, ok := s.pending.Fail(id, errAgentGone)
	return ok
}

// drainEditorRequests empties the pending table and returns the ids, as the
// editor wrote them, in the order they were sent.
func (s *state) drainEditorRequests() []acp.ID {
	calls := s.pending.FailAll(errAgentGone)
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
