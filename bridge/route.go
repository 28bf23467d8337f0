package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// errRefused means the bridge answered the message itself; nothing is
// forwarded.
var errRefused = errors.New("refused")

// fromEditor decides what to send the agent for one editor message.
func (b *bridge) fromEditor(ctx context.Context, m *acp.Message) [][]byte {
	if m.Kind != acp.KindRequest {
		return [][]byte{m.Raw}
	}
	if acp.IsReserved(m.ID) {
		// Ids with our prefix belong to requests the bridge sends; a peer
		// using one could pass its message off as an answer to ours.
		b.replyEditorError(m.ID, acp.InvalidRequest, "request ids starting with "+acp.ReservedPrefix+" are reserved by acp-sandbox")
		return nil
	}
	req := &editorRequest{method: m.Method}
	out := m.Raw
	var err error
	switch m.Method {
	case "initialize":
		out, err = rewriteParams(m, clampVersion)
	case "authenticate":
		out, err = rewriteParams(m, func(p map[string]json.RawMessage) error { return b.takeAuthKeys(ctx, p) })
	case "providers/set":
		out, err = rewriteParams(m, func(p map[string]json.RawMessage) error { return b.takeProviderKeys(ctx, p) })
	case "session/new", "session/load", "session/resume":
		out, err = b.checkSession(ctx, m, req)
		if errors.Is(err, errRefused) {
			return nil
		}
	case "session/prompt":
		var p struct {
			SessionID string `json:"sessionId"`
		}
		_ = json.Unmarshal(m.Params, &p)
		req.session = p.SessionID
	}
	if err != nil {
		b.replyEditorError(m.ID, acp.InvalidParams, err.Error())
		return nil
	}
	if err := b.state.addEditorRequest(m.ID, req); err != nil {
		b.replyEditorError(m.ID, acp.InvalidRequest, err.Error())
		return nil
	}
	if req.method == "session/prompt" {
		b.state.turnStart(req.session)
	}
	return [][]byte{out}
}

// fromAgent decides what to send the editor for one agent message.
func (b *bridge) fromAgent(m *acp.Message) [][]byte {
	switch m.Kind {
	case acp.KindResponse:
		req := b.state.answered(m)
		if req != nil && req.method == "session/prompt" {
			b.state.turnEnd(req.session)
		}
		if req == nil || m.Result == nil {
			return [][]byte{m.Raw}
		}
		return b.agentResponse(m, req)
	case acp.KindRequest:
		if acp.IsReserved(m.ID) {
			b.replyAgentError(m.ID, acp.InvalidRequest, "request ids starting with "+acp.ReservedPrefix+" are reserved by acp-sandbox")
			return nil
		}
		switch m.Method {
		case "fs/read_text_file", "fs/write_text_file":
			out, err := b.checkFS(m)
			if err != nil {
				return nil // answered to the agent
			}
			return [][]byte{out}
		case "terminal/create":
			out, err := rewriteParams(m, b.rewriteTerminal)
			if err != nil {
				b.replyAgentError(m.ID, acp.InvalidParams, err.Error())
				return nil
			}
			return [][]byte{out}
		}
	}
	return [][]byte{m.Raw}
}

// agentResponse fixes up the agent's answer to an intercepted request and
// records the session it opened. A result the bridge cannot rewrite passes
// unchanged: the editor must always get its answer.
func (b *bridge) agentResponse(m *acp.Message, req *editorRequest) [][]byte {
	out := m.Raw
	var err error
	var session string
	switch req.method {
	case "initialize":
		out, err = rewriteResult(m, func(r map[string]json.RawMessage) error {
			if err := clampVersion(r); err != nil {
				return err
			}
			b.auth.record(r)
			return b.rewriteAuthMethods(r)
		})
	case "session/new":
		var r struct {
			SessionID string `json:"sessionId"`
		}
		if json.Unmarshal(m.Result, &r) == nil && r.SessionID != "" {
			session = r.SessionID
		}
	case "session/load", "session/resume":
		session = req.session
	}
	if err != nil {
		b.log.Warn("cannot rewrite the agent's answer; passing it unchanged", "method", req.method, "err", err)
		out = m.Raw
	}
	outs := [][]byte{out}
	if session != "" && req.roots != nil {
		b.state.setSession(session, req.roots)
		for _, w := range req.warnings {
			if n, err := warningUpdate(session, w); err == nil {
				outs = append(outs, n)
			}
		}
		outs = append(outs, b.noticeUpdates(session)...)
	}
	return outs
}

// warningUpdate is a message the user sees in the editor's thread.
func warningUpdate(session, text string) ([]byte, error) {
	return threadMessage(session, "⚠ acp-sandbox: "+text+"\n")
}

// rewriteParams re-encodes a request with its params object changed by fn.
// Only intercepted messages are re-encoded; everything else passes as read.
func rewriteParams(m *acp.Message, fn func(map[string]json.RawMessage) error) ([]byte, error) {
	p := map[string]json.RawMessage{}
	if len(m.Params) > 0 {
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return nil, fmt.Errorf("%s: params must be an object: %w", m.Method, err)
		}
	}
	if err := fn(p); err != nil {
		return nil, err
	}
	return acp.NewRequest(m.ID, m.Method, p)
}

// rewriteResult re-encodes a response with its result object changed by fn.
func rewriteResult(m *acp.Message, fn func(map[string]json.RawMessage) error) ([]byte, error) {
	r := map[string]json.RawMessage{}
	if err := json.Unmarshal(m.Result, &r); err != nil {
		return m.Raw, nil // not an object: not ours to fix
	}
	if err := fn(r); err != nil {
		return nil, err
	}
	return acp.NewResult(m.ID, r)
}

// clampVersion caps protocolVersion at 1: v2 drops fs/* and terminal/*,
// which the sandbox relies on.
func clampVersion(obj map[string]json.RawMessage) error {
	raw, ok := obj["protocolVersion"]
	if !ok {
		return nil
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil // a string version: leave it to the peers
	}
	if v > 1 {
		obj["protocolVersion"] = json.RawMessage("1")
	}
	return nil
}
