package bridge

import "github.com/acp-sandbox/acp-sandbox/acp"

// noticeUpdates are the messages that show Options.Notices in session's
// thread: the first time a session opens, never again. An editor thread
// is where the user looks; acp-sandbox's stderr (an editor's log) is not.
// Only the agent loop calls it.
func (b *bridge) noticeUpdates(session string) [][]byte {
	if b.noticed || len(b.opt.Notices) == 0 {
		return nil
	}
	b.noticed = true
	var outs [][]byte
	for _, text := range b.opt.Notices {
		if n, err := threadMessage(session, "acp-sandbox: "+text+"\n"); err == nil {
			outs = append(outs, n)
		}
	}
	return outs
}

// threadMessage is a session/update that shows text in the editor's
// thread as a chunk of the agent's message.
func threadMessage(session, text string) ([]byte, error) {
	return acp.NewNotification("session/update", map[string]any{
		"sessionId": session,
		"update": map[string]any{
			"sessionUpdate": "agent_message_chunk",
			"content":       map[string]any{"type": "text", "text": text},
		},
	})
}
