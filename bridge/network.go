package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// Approve-on-block in the editor: a flow the sandbox's network denied
// while a prompt turn is on becomes a tool call of kind "fetch" in the
// agent's thread ("Network access to pypi.org:443") and a
// session/request_permission with allow once / allow always / reject. The
// flow waits for the answer on the host; the agent's request then goes
// through or fails as if nothing special happened.

// NetworkQuestion is a blocked flow to put to the user.
type NetworkQuestion struct {
	What    string // "pypi.org:443", "DNS lookup of pypi.org"
	Suggest string // the allow pattern "always" stores
	Reason  string // why it was blocked
	// Answer receives AnswerOnce, AnswerAlways or AnswerReject; the bridge
	// calls it exactly once.
	Answer func(answer string)
}

// Answers to a NetworkQuestion.
const (
	AnswerOnce   = "once"
	AnswerAlways = "always"
	AnswerReject = "reject"
)

// DefaultApprovalTimeout bounds the wait for the editor's answer.
const DefaultApprovalTimeout = 60 * time.Second

// Permission option ids the bridge offers.
const (
	optAllowOnce   = "acp-sandbox-allow-once"
	optAllowAlways = "acp-sandbox-allow-always"
	optReject      = "acp-sandbox-reject"
)

// serveQuestions asks the editor about each question until the channel
// closes or ctx ends. Questions are asked concurrently: each waits on its
// own answer, and the relay loops are never blocked.
func (b *bridge) serveQuestions(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q, ok := <-b.opt.NetworkQuestions:
			if !ok {
				return
			}
			b.asks.Add(1)
			go func() {
				defer b.asks.Done()
				q.Answer(b.askNetwork(ctx, q))
			}()
		}
	}
}

// askNetwork shows q in the session whose prompt turn is on and returns
// the user's answer; reject when no turn is on, on timeout or on error.
func (b *bridge) askNetwork(ctx context.Context, q NetworkQuestion) string {
	session := b.state.activeTurn()
	if session == "" {
		return AnswerReject
	}
	timeout := b.opt.ApprovalTimeout
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	toolCallID := fmt.Sprintf("acp-sandbox-network-%d", b.toolCalls.Add(1))
	title := "Network access to " + q.What
	b.notifyEditor(session, map[string]any{
		"sessionUpdate": "tool_call",
		"toolCallId":    toolCallID,
		"title":         title,
		"kind":          "fetch",
		"status":        "pending",
		"content": []any{map[string]any{"type": "content", "content": map[string]any{
			"type": "text", "text": "acp-sandbox blocked this: " + q.Reason,
		}}},
	})

	id := b.ids.Next()
	call, err := b.own.Add(id, "session/request_permission", nil)
	if err != nil {
		return AnswerReject
	}
	req, err := acp.NewRequest(id, "session/request_permission", map[string]any{
		"sessionId": session,
		"toolCall":  map[string]any{"toolCallId": toolCallID, "title": title, "kind": "fetch", "status": "pending"},
		"options": []any{
			map[string]any{"optionId": optAllowOnce, "name": "Allow once", "kind": "allow_once"},
			map[string]any{"optionId": optAllowAlways, "name": "Always allow " + q.Suggest + " in this workspace", "kind": "allow_always"},
			map[string]any{"optionId": optReject, "name": "Reject", "kind": "reject_once"},
		},
	})
	if err == nil {
		err = b.toEd.WriteLine(req)
	}
	answer := AnswerReject
	if err == nil {
		var resp *acp.Message
		if resp, err = call.Wait(ctx); err == nil {
			answer = permissionAnswer(resp)
		}
	} else {
		b.own.Fail(id, err)
	}
	status, note := "failed", "rejected"
	switch {
	case answer == AnswerOnce:
		status, note = "completed", "allowed once"
	case answer == AnswerAlways:
		status, note = "completed", "allowed always: "+q.Suggest+" added to this workspace's approvals"
	case ctx.Err() != nil:
		note = "no answer in time: denied"
	}
	b.notifyEditor(session, map[string]any{
		"sessionUpdate": "tool_call_update",
		"toolCallId":    toolCallID,
		"status":        status,
		"content": []any{map[string]any{"type": "content", "content": map[string]any{
			"type": "text", "text": "acp-sandbox: " + note,
		}}},
	})
	b.log.Info("network approval", "what", q.What, "answer", answer, "err", err)
	return answer
}

// permissionAnswer maps a request_permission response to an answer.
func permissionAnswer(resp *acp.Message) string {
	if resp.Result == nil {
		return AnswerReject
	}
	var r struct {
		Outcome struct {
			Outcome  string `json:"outcome"`
			OptionID string `json:"optionId"`
		} `json:"outcome"`
	}
	if json.Unmarshal(resp.Result, &r) != nil || r.Outcome.Outcome != "selected" {
		return AnswerReject
	}
	switch r.Outcome.OptionID {
	case optAllowOnce:
		return AnswerOnce
	case optAllowAlways:
		return AnswerAlways
	}
	return AnswerReject
}

func (b *bridge) notifyEditor(session string, update map[string]any) {
	n, err := acp.NewNotification("session/update", map[string]any{"sessionId": session, "update": update})
	if err == nil {
		err = b.toEd.WriteLine(n)
	}
	if err != nil {
		b.log.Warn("cannot notify the editor", "err", err)
	}
}
