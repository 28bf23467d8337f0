package standin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The Gemini API (generativelanguage.googleapis.com), as gemini-cli
// uses it through @google/genai.

func (s *Server) gemini(c *call) {
	w, r := c.w, c.r
	// /v1beta/models/gemini-2.5-flash:streamGenerateContent
	version, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	model, method, hasMethod := strings.Cut(strings.TrimPrefix(rest, "models/"), ":")
	isModels := rest == "models" || strings.HasPrefix(rest, "models/")
	reply, isJSON := s.opts.Reply, false
	if isModels && hasMethod && r.Method == http.MethodPost {
		c.rec.Body = c.body
		c.rec.Model, c.rec.Stream = model, method == "streamGenerateContent"
		reply, isJSON = s.geminiText(c.body)
	}
	if want := s.key(Gemini); want != "" {
		key := r.Header.Get("X-Goog-Api-Key")
		if key == "" {
			key = r.URL.Query().Get("key")
		}
		switch key {
		case want:
		case "":
			geminiError(w, http.StatusForbidden, "PERMISSION_DENIED",
				"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", nil)
			return
		default:
			// Not 401: the real service answers a wrong key with 400.
			msg := "API key not valid. Please pass a valid API key."
			geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, []any{
				map[string]any{
					"@type":    "type.googleapis.com/google.rpc.ErrorInfo",
					"reason":   "API_KEY_INVALID",
					"domain":   "googleapis.com",
					"metadata": map[string]any{"service": "generativelanguage.googleapis.com"},
				},
				map[string]any{"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": msg},
			})
			return
		}
	}
	switch {
	case isModels && hasMethod && r.Method == http.MethodPost:
		switch method {
		case "streamGenerateContent":
			chunks := Chunks(reply)
			if isJSON {
				chunks = []string{reply} // whole
			}
			if r.URL.Query().Get("alt") == "sse" {
				s.geminiSSE(w, c.id, model, chunks, len(c.body))
			} else {
				// Without alt=sse the API streams one JSON array; the
				// stand-in sends it whole.
				var all []any
				for i, ch := range chunks {
					all = append(all, geminiChunk(c.id, model, chunks, ch, i, len(c.body)))
				}
				writeJSON(w, http.StatusOK, all)
			}
		case "generateContent":
			writeJSON(w, http.StatusOK, geminiResponse(c.id, model, reply, "STOP", len(c.body), len(Chunks(reply))))
		case "countTokens":
			n := tokens(len(c.body))
			writeJSON(w, http.StatusOK, map[string]any{
				"totalTokens":         n,
				"promptTokensDetails": []any{map[string]any{"modality": "TEXT", "tokenCount": n}},
			})
		default:
			geminiError(w, http.StatusNotFound, "NOT_FOUND", "Method not found: "+method, nil)
		}
	case rest == "models" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"models": geminiModels})
	case isModels && !hasMethod && r.Method == http.MethodGet:
		for _, m := range geminiModels {
			if m["name"] == "models/"+model {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "models/"+model+" is not found for API version "+version+".", nil)
	default:
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "Not found: "+r.Method+" "+r.URL.Path, nil)
	}
}

// geminiModels are listed; any model name is answered. gemini-cli 0.61.0
// was seen to use the first three.
var geminiModels = []map[string]any{
	geminiModel("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview"),
	geminiModel("gemini-3.8-flash", "Gemini 3.8 Flash"),
	geminiModel("gemini-3.5-flash-lite", "Gemini 3.5 Flash-Lite"),
	geminiModel("gemini-2.5-pro", "Gemini 2.5 Pro"),
	geminiModel("gemini-2.5-flash", "Gemini 2.5 Flash"),
	geminiModel("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite"),
}

func geminiModel(id, name string) map[string]any {
	return map[string]any{
		"name":                       "models/" + id,
		"version":                    "001",
		"displayName":                name,
		"inputTokenLimit":            1048576,
		"outputTokenLimit":           65536,
		"supportedGenerationMethods": []string{"generateContent", "countTokens", "createCachedContent", "batchGenerateContent"},
		"temperature":                1,
		"topP":                       0.95,
		"topK":                       64,
		"maxTemperature":             2,
		"thinking":                   true,
	}
}

func geminiResponseID(id int) string { return fmt.Sprintf("standin%06d", id) }

// geminiText is the answer to a generate request: Options.Reply, or
// for a request for JSON (generationConfig.responseMimeType
// application/json, as gemini-cli's model router and next-speaker check
// send) a value of the requested schema, in JSON. gemini-cli retries a
// JSON request whose answer does not parse five times with backoff,
// which cost a prompt over a minute.
func (s *Server) geminiText(body []byte) (text string, isJSON bool) {
	var req struct {
		GenerationConfig struct {
			ResponseMimeType   string `json:"responseMimeType"`
			ResponseJSONSchema any    `json:"responseJsonSchema"`
			ResponseSchema     any    `json:"responseSchema"`
		} `json:"generationConfig"`
	}
	if json.Unmarshal(body, &req) != nil || req.GenerationConfig.ResponseMimeType != "application/json" {
		return s.opts.Reply, false
	}
	schema := req.GenerationConfig.ResponseJSONSchema
	if schema == nil {
		schema = req.GenerationConfig.ResponseSchema
	}
	var v any = s.opts.Reply
	if m, ok := schema.(map[string]any); ok {
		v = s.instance(m, 0)
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

// instance makes a value that fits a JSON schema (or the API's OpenAPI
// subset, with upper-case types): the first enum value; every property
// of an object; minItems items of an array; Options.Reply for a string;
// the minimum, or 1, for a number.
func (s *Server) instance(schema map[string]any, depth int) any {
	if e, ok := schema["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	if c, ok := schema["const"]; ok {
		return c
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := schema[k].([]any); ok && len(alts) > 0 {
			if m, ok := alts[0].(map[string]any); ok {
				return s.instance(m, depth+1)
			}
		}
	}
	typ, _ := schema["type"].(string)
	if types, ok := schema["type"].([]any); ok && len(types) > 0 {
		typ, _ = types[0].(string)
	}
	if typ == "" && schema["properties"] != nil {
		typ = "object"
	}
	if depth > 8 {
		return nil
	}
	switch strings.ToLower(typ) {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		for k, p := range props {
			if m, ok := p.(map[string]any); ok {
				out[k] = s.instance(m, depth+1)
			}
		}
		return out
	case "array":
		n, _ := schema["minItems"].(float64)
		out := []any{}
		if items, ok := schema["items"].(map[string]any); ok {
			for range int(n) {
				out = append(out, s.instance(items, depth+1))
			}
		}
		return out
	case "integer", "number":
		if m, ok := schema["minimum"].(float64); ok {
			return m
		}
		if m, ok := schema["maximum"].(float64); ok && m < 1 {
			return m
		}
		return 1
	case "boolean":
		return false
	case "null":
		return nil
	}
	return s.opts.Reply
}

// geminiResponse is a GenerateContentResponse with one candidate; an
// empty finishReason leaves it out, as the API does in all but the
// last streamed chunk.
func geminiResponse(id int, model, text, finishReason string, n, out int) map[string]any {
	cand := map[string]any{
		"content": map[string]any{"parts": []any{map[string]any{"text": text}}, "role": "model"},
		"index":   0,
	}
	if finishReason != "" {
		cand["finishReason"] = finishReason
	}
	in := tokens(n)
	return map[string]any{
		"candidates": []any{cand},
		"usageMetadata": map[string]any{
			"promptTokenCount":     in,
			"candidatesTokenCount": out,
			"totalTokenCount":      in + out,
			"promptTokensDetails":  []any{map[string]any{"modality": "TEXT", "tokenCount": in}},
		},
		"modelVersion": model,
		"responseId":   geminiResponseID(id),
	}
}

// geminiChunk is the i-th streamed piece of chunks: the last carries
// finishReason STOP.
func geminiChunk(id int, model string, chunks []string, text string, i, n int) map[string]any {
	finish := ""
	if i == len(chunks)-1 {
		finish = "STOP"
	}
	return geminiResponse(id, model, text, finish, n, i+1)
}

// geminiSSE streams one GenerateContentResponse a chunk as data-only
// server-sent events with CRLF line ends, as the API does.
func (s *Server) geminiSSE(w http.ResponseWriter, id int, model string, chunks []string, n int) {
	send := sse(w, "\r\n")
	for i, c := range chunks {
		if i > 0 {
			s.pause()
		}
		if !send("", geminiChunk(id, model, chunks, c, i, n)) {
			return
		}
	}
}

// geminiError answers with the Google API error shape.
func geminiError(w http.ResponseWriter, status int, state, message string, details []any) {
	e := map[string]any{"code": status, "message": message, "status": state}
	if details != nil {
		e["details"] = details
	}
	writeJSON(w, status, map[string]any{"error": e})
}
