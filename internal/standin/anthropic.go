package standin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The Anthropic Messages API.

type messagesRequest struct {
	Model     string          `json:"model"`
	Stream    bool            `json:"stream"`
	MaxTokens int             `json:"max_tokens"`
	Messages  json.RawMessage `json:"messages"`
}

func (s *Server) anthropic(c *call) {
	w, r, p := c.w, c.r, c.r.URL.Path
	w.Header().Set("Request-Id", fmt.Sprintf("req_standin_%06d", c.id))
	var msg messagesRequest
	if strings.HasPrefix(p, "/v1/messages") && r.Method == http.MethodPost {
		c.rec.Body = c.body
		_ = json.Unmarshal(c.body, &msg)
		c.rec.Model, c.rec.Stream = msg.Model, msg.Stream
	}
	if key := s.key(Anthropic); strings.HasPrefix(p, "/v1/") && key != "" {
		if r.Header.Get("X-Api-Key") != key && r.Header.Get("Authorization") != "Bearer "+key {
			anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
	}
	switch {
	case p == "/v1/messages" && r.Method == http.MethodPost:
		if msg.Model == "" {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
			return
		}
		if msg.Stream {
			s.anthropicStream(w, c.id, msg.Model, len(c.body))
		} else {
			s.anthropicMessage(w, c.id, msg.Model, len(c.body))
		}
	case p == "/v1/messages/count_tokens" && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{"input_tokens": tokens(len(c.body))})
	case p == "/v1/models" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"data":     anthropicModels,
			"has_more": false,
			"first_id": anthropicModels[0]["id"],
			"last_id":  anthropicModels[len(anthropicModels)-1]["id"],
		})
	case strings.HasPrefix(p, "/v1/models/") && r.Method == http.MethodGet:
		name := strings.TrimPrefix(p, "/v1/models/")
		for _, m := range anthropicModels {
			if m["id"] == name {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		anthropicError(w, http.StatusNotFound, "not_found_error", "model: "+name)
	case (p == "/api/event_logging/batch" || p == "/api/claude_code/metrics") && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{})
	default:
		anthropicError(w, http.StatusNotFound, "not_found_error", "Not found: "+r.Method+" "+p)
	}
}

var anthropicModels = []map[string]any{
	{"type": "model", "id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-02-05T00:00:00Z"},
	{"type": "model", "id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6", "created_at": "2026-02-17T00:00:00Z"},
	{"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-15T00:00:00Z"},
}

func (s *Server) anthropicMessage(w http.ResponseWriter, id int, model string, n int) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id":            msgID(id),
		"type":          "message",
		"role":          "assistant",
		"model":         model,
		"content":       []any{map[string]any{"type": "text", "text": s.opts.Reply}},
		"stop_reason":   "end_turn",
		"stop_sequence": nil,
		"usage":         anthropicUsage(tokens(n), len(Chunks(s.opts.Reply))),
	})
}

func msgID(id int) string { return fmt.Sprintf("msg_standin_%06d", id) }

func anthropicUsage(in, out int) map[string]any {
	return map[string]any{
		"input_tokens":                in,
		"cache_creation_input_tokens": 0,
		"cache_read_input_tokens":     0,
		"output_tokens":               out,
		"service_tier":                "standard",
	}
}

func (s *Server) anthropicStream(w http.ResponseWriter, id int, model string, n int) {
	send := sse(w, "\n")
	chunks := Chunks(s.opts.Reply)
	if !send("message_start", map[string]any{
		"type": "message_start",
		"message": map[string]any{
			"id": msgID(id), "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": anthropicUsage(tokens(n), 1),
		},
	}) {
		return
	}
	send("content_block_start", map[string]any{
		"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""},
	})
	send("ping", map[string]any{"type": "ping"})
	for i, c := range chunks {
		if i > 0 {
			s.pause()
		}
		if !send("content_block_delta", map[string]any{
			"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": c},
		}) {
			return
		}
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	send("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": len(chunks)},
	})
	send("message_stop", map[string]any{"type": "message_stop"})
}

// anthropicError answers with the API's error shape.
func anthropicError(w http.ResponseWriter, status int, typ, message string) {
	writeJSON(w, status, map[string]any{
		"type":  "error",
		"error": map[string]any{"type": typ, "message": message},
	})
}
