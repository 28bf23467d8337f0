package bridge

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// approvalHarness is a bridge with a question channel and a turn log.
func approvalHarness(t *testing.T) (*harness, chan NetworkQuestion, func() []bool) {
	t.Helper()
	qs := make(chan NetworkQuestion)
	var mu sync.Mutex
	var turns []bool
	h := newHarness(t, func(o *Options) {
		o.NetworkQuestions = qs
		o.OnTurn = func(on bool) { mu.Lock(); turns = append(turns, on); mu.Unlock() }
		o.ApprovalTimeout = 2 * time.Second
	})
	t.Cleanup(func() { close(qs) })
	return h, qs, func() []bool { mu.Lock(); defer mu.Unlock(); return append([]bool(nil), turns...) }
}

func ask(qs chan NetworkQuestion, what string) chan string {
	ans := make(chan string, 1)
	qs <- NetworkQuestion{What: what, Suggest: "pypi.org", Reason: "lookup of pypi.org denied", Answer: func(a string) { ans <- a }}
	return ans
}

func waitAnswer(t *testing.T, ans chan string) string {
	t.Helper()
	select {
	case a := <-ans:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer (hang)")
	}
	return ""
}

// Outside a prompt turn nobody is asked: rejected at once, nothing sent.
func TestNetworkQuestionNoTurn(t *testing.T) {
	h, qs, _ := approvalHarness(t)
	if a := waitAnswer(t, ask(qs, "pypi.org:443")); a != AnswerReject {
		t.Fatalf("answer %q", a)
	}
	h.editorGetsOnly()
}

func TestNetworkQuestionInTurn(t *testing.T) {
	for _, c := range []struct{ option, want, note string }{
		{optAllowOnce, AnswerOnce, "allowed once"},
		{optAllowAlways, AnswerAlways, "allowed always"},
		{optReject, AnswerReject, "rejected"},
	} {
		t.Run(c.want, func(t *testing.T) {
			h, qs, turns := approvalHarness(t)
			h.editorSends(`{"jsonrpc":"2.0","id":5,"method":"session/prompt","params":{"sessionId":"s1","prompt":[]}}`)
			h.agentGets()
			ans := ask(qs, "pypi.org:443")

			call := h.editorGets()
			if !strings.Contains(call, `"sessionUpdate":"tool_call"`) || !strings.Contains(call, `"kind":"fetch"`) || !strings.Contains(call, "Network access to pypi.org:443") || !strings.Contains(call, `"sessionId":"s1"`) {
				t.Fatalf("tool call: %s", call)
			}
			req := h.editorGets()
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal([]byte(req), &m) != nil || m.Method != "session/request_permission" || !strings.Contains(string(m.ID), "acp-sandbox:") {
				t.Fatalf("permission request: %s", req)
			}
			h.editorSends(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"outcome":{"outcome":"selected","optionId":"` + c.option + `"}}}`)
			if a := waitAnswer(t, ans); a != c.want {
				t.Fatalf("answer %q, want %q", a, c.want)
			}
			if upd := h.editorGets(); !strings.Contains(upd, "tool_call_update") || !strings.Contains(upd, c.note) {
				t.Fatalf("update: %s", upd)
			}
			// The editor's answer to our request never reaches the agent.
			h.agentSends(`{"jsonrpc":"2.0","id":5,"result":{"stopReason":"end_turn"}}`)
			if got := h.editorGets(); !strings.Contains(got, `"id":5`) {
				t.Fatalf("editor got %s", got)
			}
			h.agentGetsOnly("")
			h.editorGetsOnly()
			if got := turns(); len(got) != 2 || !got[0] || got[1] {
				t.Errorf("turns %v, want [true false]", got)
			}
		})
	}
}

// No answer from the editor in time: rejected, and the thread says so.
func TestNetworkQuestionTimeout(t *testing.T) {
	h, qs, _ := approvalHarness(t)
	h.editorSends(`{"jsonrpc":"2.0","id":5,"method":"session/prompt","params":{"sessionId":"s1","prompt":[]}}`)
	h.agentGets()
	ans := ask(qs, "pypi.org:443")
	h.editorGets() // tool call
	h.editorGets() // permission request, never answered
	if a := waitAnswer(t, ans); a != AnswerReject {
		t.Fatalf("answer %q", a)
	}
	if upd := h.editorGets(); !strings.Contains(upd, "no answer in time") {
		t.Fatalf("update: %s", upd)
	}
}
