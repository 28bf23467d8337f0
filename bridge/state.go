package bridge

import (
	"sync"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// editorRequest is an editor → agent request awaiting the agent's answer.
type editorRequest struct {
	id       acp.ID // as the editor wrote it
	method   string
	roots    []string // session/new|load|resume: the checked roots
	session  string   // session/load|resume: the id asked for
	warnings []string // shown to the user once the session exists
}

// state is what both directions share, behind one mutex, changed only by
// small decide-and-mutate methods (after jsonrpc2_v2's updateInFlight).
type state struct {
	mu       sync.Mutex
	pending  map[acp.ID]*editorRequest
	sessions map[string][]string // session id → resolved roots
}

func newState() *state {
	return &state{pending: map[acp.ID]*editorRequest{}, sessions: map[string][]string{}}
}

func (s *state) addEditorRequest(id acp.ID, r *editorRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[id.Canonical()] = r
}

// takeEditorRequest removes and returns a pending request (nil if unknown).
func (s *state) takeEditorRequest(id acp.ID) *editorRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := id.Canonical()
	r := s.pending[k]
	delete(s.pending, k)
	return r
}

// drainEditorRequests empties the pending table and returns its ids.
func (s *state) drainEditorRequests() []acp.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]acp.ID, 0, len(s.pending))
	for _, r := range s.pending {
		ids = append(ids, r.id)
	}
	clear(s.pending)
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
