package standin

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/websocket"
)

// The OpenAI Responses API, as codex uses it.

type responsesRequest struct {
	Model        string `json:"model"`
	Stream       bool   `json:"stream"`
	Instructions string `json:"instructions"`
	// Generate false asks for no output: codex opens its WebSocket with
	// such a warm-up (input [], the instructions and tools) before the
	// real request.
	Generate *bool `json:"generate"`
}

// warmUp reports whether the request asks for no output.
func (r responsesRequest) warmUp() bool { return r.Generate != nil && !*r.Generate }

func (s *Server) openAI(c *call) {
	w, r, p := c.w, c.r, c.r.URL.Path
	w.Header().Set("X-Request-Id", fmt.Sprintf("req_standin%06d", c.id))
	var req responsesRequest
	if strings.HasPrefix(p, "/v1/responses") && r.Method == http.MethodPost {
		c.rec.Body = c.body
		_ = json.Unmarshal(c.body, &req)
		c.rec.Model, c.rec.Stream = req.Model, req.Stream
	}
	if key := s.key(OpenAI); key != "" {
		auth := r.Header.Get("Authorization")
		switch {
		case auth == "Bearer "+key:
		case !strings.HasPrefix(auth, "Bearer ") || strings.TrimPrefix(auth, "Bearer ") == "":
			openAIError(w, http.StatusUnauthorized, "invalid_request_error", nil,
				"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.")
			return
		default:
			openAIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"Incorrect API key provided: "+maskKey(strings.TrimPrefix(auth, "Bearer "))+". You can find your API key at https://platform.openai.com/account/api-keys.")
			return
		}
	}
	switch {
	case p == "/v1/responses" && r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		s.openAIWebSocket(c)
	case p == "/v1/responses" && r.Method == http.MethodPost:
		if req.Model == "" {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "Missing required parameter: 'model'.")
			return
		}
		if req.Stream {
			send := sse(w, "\n")
			s.openAIEvents(c.id, req, len(c.body), func(m map[string]any) bool { return send(m["type"].(string), m) })
		} else {
			writeJSON(w, http.StatusOK, s.openAIResponse(c.id, req, "completed", len(c.body)))
		}
	case p == "/v1/models" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": openAIModels})
	case strings.HasPrefix(p, "/v1/models/") && r.Method == http.MethodGet:
		name := strings.TrimPrefix(p, "/v1/models/")
		for _, m := range openAIModels {
			if m["id"] == name {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		openAIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			"The model '"+name+"' does not exist")
	default:
		openAIError(w, http.StatusNotFound, "invalid_request_error", nil,
			"Invalid URL ("+r.Method+" "+p+")")
	}
}

var openAIModels = []map[string]any{
	{"id": "gpt-5.5", "object": "model", "created": 1776902400, "owned_by": "system"},
	{"id": "gpt-5.4", "object": "model", "created": 1772668800, "owned_by": "system"},
	{"id": "gpt-5.4-mini", "object": "model", "created": 1772668800, "owned_by": "system"},
	{"id": "gpt-5.3-codex", "object": "model", "created": 1770163200, "owned_by": "system"},
}

// maskKey shows a wrong key as the API does, its start and end only, so
// that an error message (which may end up in a log) does not carry it.
func maskKey(k string) string {
	if len(k) < 12 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

func respID(id int) string { return fmt.Sprintf("resp_standin%06d", id) }

func itemID(id int) string { return fmt.Sprintf("msg_standin%06d", id) }

// openAIMessage is the output item holding text.
func openAIMessage(id int, status, text string) map[string]any {
	content := []any{}
	if status == "completed" {
		content = append(content, openAIText(text))
	}
	return map[string]any{"id": itemID(id), "type": "message", "status": status, "content": content, "role": "assistant"}
}

func openAIText(text string) map[string]any {
	return map[string]any{"type": "output_text", "annotations": []any{}, "logprobs": []any{}, "text": text}
}

// openAIResponse is the response object in the given status:
// "in_progress" without output and usage, "completed" with both.
func (s *Server) openAIResponse(id int, req responsesRequest, status string, n int) map[string]any {
	resp := map[string]any{
		"id":                   respID(id),
		"object":               "response",
		"created_at":           time.Now().Unix(),
		"status":               status,
		"background":           false,
		"error":                nil,
		"incomplete_details":   nil,
		"instructions":         nil,
		"max_output_tokens":    nil,
		"model":                req.Model,
		"output":               []any{},
		"parallel_tool_calls":  true,
		"previous_response_id": nil,
		"reasoning":            map[string]any{"effort": nil, "summary": nil},
		"service_tier":         "default",
		"store":                false,
		"temperature":          1.0,
		"text":                 map[string]any{"format": map[string]any{"type": "text"}, "verbosity": "medium"},
		"tool_choice":          "auto",
		"tools":                []any{},
		"top_p":                1.0,
		"truncation":           "disabled",
		"usage":                nil,
		"user":                 nil,
		"metadata":             map[string]any{},
	}
	if req.Instructions != "" {
		resp["instructions"] = req.Instructions
	}
	if status == "completed" {
		in, out := tokens(n), 0
		if !req.warmUp() {
			out = len(Chunks(s.opts.Reply))
			resp["output"] = []any{openAIMessage(id, "completed", s.opts.Reply)}
		}
		resp["usage"] = map[string]any{
			"input_tokens":          in,
			"input_tokens_details":  map[string]any{"cached_tokens": 0},
			"output_tokens":         out,
			"output_tokens_details": map[string]any{"reasoning_tokens": 0},
			"total_tokens":          in + out,
		}
	}
	return resp
}

// openAIEvents streams a response as the Responses API's events:
// response.created, response.in_progress, response.output_item.added,
// response.content_part.added, response.output_text.delta (one a chunk),
// response.output_text.done, response.content_part.done,
// response.output_item.done and response.completed (with usage); for a
// warm-up (generate false) the first two and response.completed without
// output. send reports false once the client is gone.
func (s *Server) openAIEvents(id int, req responsesRequest, n int, send func(map[string]any) bool) {
	seq := 0
	event := func(typ string, fields map[string]any) bool {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		return send(fields)
	}
	item := itemID(id)
	if !event("response.created", map[string]any{"response": s.openAIResponse(id, req, "in_progress", n)}) {
		return
	}
	event("response.in_progress", map[string]any{"response": s.openAIResponse(id, req, "in_progress", n)})
	if req.warmUp() {
		event("response.completed", map[string]any{"response": s.openAIResponse(id, req, "completed", n)})
		return
	}
	event("response.output_item.added", map[string]any{"output_index": 0, "item": openAIMessage(id, "in_progress", "")})
	event("response.content_part.added", map[string]any{
		"item_id": item, "output_index": 0, "content_index": 0, "part": openAIText(""),
	})
	for i, c := range Chunks(s.opts.Reply) {
		if i > 0 {
			s.pause()
		}
		if !event("response.output_text.delta", map[string]any{
			"item_id": item, "output_index": 0, "content_index": 0, "delta": c, "logprobs": []any{},
		}) {
			return
		}
	}
	event("response.output_text.done", map[string]any{
		"item_id": item, "output_index": 0, "content_index": 0, "text": s.opts.Reply, "logprobs": []any{},
	})
	event("response.content_part.done", map[string]any{
		"item_id": item, "output_index": 0, "content_index": 0, "part": openAIText(s.opts.Reply),
	})
	event("response.output_item.done", map[string]any{"output_index": 0, "item": openAIMessage(id, "completed", s.opts.Reply)})
	event("response.completed", map[string]any{"response": s.openAIResponse(id, req, "completed", n)})
}

// openAIWebSocket serves the Responses API over a WebSocket, which codex
// tries first against the built-in OpenAI provider (and retries five
// times with backoff, then says "Falling back from WebSockets to HTTPS
// transport" in the agent's reply, when refused). Each text message
// {"type":"response.create", …the body of a POST /v1/responses…} is
// answered with the same events as the server-sent ones, one a text
// message; other messages (response.processed) are ignored. The upgrade
// is recorded as soon as it succeeds, each response.create as a Request
// of its own with Method "WS".
func (s *Server) openAIWebSocket(c *call) {
	srv := websocket.Server{
		// codex sends no Origin, which websocket.Handler would refuse.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(ws *websocket.Conn) {
			s.mu.Lock()
			if s.open == nil {
				s.open = map[net.Conn]bool{}
			}
			s.open[ws] = true
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				delete(s.open, ws)
				s.mu.Unlock()
			}()
			c.rec.Status, c.recorded = http.StatusSwitchingProtocols, true
			s.record(*c.rec, c.start)
			for {
				var msg []byte
				if err := websocket.Message.Receive(ws, &msg); err != nil {
					return
				}
				var req struct {
					Type string `json:"type"`
					responsesRequest
				}
				_ = json.Unmarshal(msg, &req)
				if req.Type != "response.create" {
					s.logf("standin: WebSocket %s message ignored (%d bytes)", req.Type, len(msg))
					continue
				}
				s.mu.Lock()
				s.n++
				id := s.n
				s.mu.Unlock()
				rec := *c.rec
				rec.Time, rec.Method, rec.Body, rec.BodySize = time.Now(), "WS", msg, int64(len(msg))
				rec.Model, rec.Stream, rec.Status = req.Model, true, http.StatusOK
				// Recorded before the answer, so that a client that has
				// it finds the request in Requests.
				s.record(rec, rec.Time)
				s.openAIEvents(id, req.responsesRequest, len(msg), func(m map[string]any) bool {
					b, _ := json.Marshal(m)
					return websocket.Message.Send(ws, string(b)) == nil
				})
			}
		},
	}
	srv.ServeHTTP(c.w, c.r)
}

// openAIError answers with the API's error shape; code is a string or
// nil, as the API sends it.
func openAIError(w http.ResponseWriter, status int, typ string, code any, message string) {
	writeJSON(w, status, map[string]any{
		"error": map[string]any{"message": message, "type": typ, "param": nil, "code": code},
	})
}
