package standin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func googKey(key string) map[string]string { return map[string]string{"X-Goog-Api-Key": key} }

type geminiResp struct {
	Candidates []struct {
		Content struct {
			Role  string
			Parts []struct{ Text string }
		}
		FinishReason string
		Index        int
	}
	UsageMetadata struct {
		PromptTokenCount, CandidatesTokenCount, TotalTokenCount int
	}
	ModelVersion, ResponseID string
}

func (g geminiResp) text() string {
	var b strings.Builder
	for _, c := range g.Candidates {
		for _, p := range c.Content.Parts {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func TestGeminiStreamFormat(t *testing.T) {
	const reply = "The quick brown fox jumps over the lazy dog."
	s := New(Options{Reply: reply, Key: "AIza-1", Logf: t.Logf})
	defer s.Close()
	c := s.Client()
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"temperature":1}}`

	resp := send(t, c, "POST", s.URL()+"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", googKey("AIza-1"), body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Data lines only, CRLF line ends, as the API sends (and as
	// @google/genai's parser expects: "data: …" up to a blank line).
	if !bytes.HasPrefix(raw, []byte("data: {")) || !bytes.HasSuffix(raw, []byte("}\r\n\r\n")) || bytes.Contains(raw, []byte("event:")) {
		t.Errorf("stream %q", raw)
	}
	events := readSSE(t, bytes.NewReader(raw))
	if len(events) < 2 {
		t.Fatalf("%d events: the reply should come in several chunks", len(events))
	}
	var text strings.Builder
	for i, e := range events {
		b, _ := json.Marshal(e.Data)
		var g geminiResp
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		text.WriteString(g.text())
		c := g.Candidates[0]
		last := i == len(events)-1
		if c.Content.Role != "model" || (c.FinishReason == "STOP") != last || g.ModelVersion != "gemini-2.5-flash" || g.ResponseID == "" {
			t.Errorf("chunk %d: %s", i, b)
		}
		if u := g.UsageMetadata; u.PromptTokenCount == 0 || u.CandidatesTokenCount != i+1 || u.TotalTokenCount != u.PromptTokenCount+i+1 {
			t.Errorf("chunk %d usage %+v", i, u)
		}
	}
	if text.String() != reply {
		t.Errorf("streamed text %q, want %q", text.String(), reply)
	}

	// Without alt=sse: one JSON array of the same chunks.
	resp = send(t, c, "POST", s.URL()+"/v1beta/models/gemini-2.5-flash:streamGenerateContent", googKey("AIza-1"), body)
	var chunks []geminiResp
	if err := json.NewDecoder(resp.Body).Decode(&chunks); err != nil || len(chunks) != len(events) {
		t.Errorf("JSON stream: %d chunks, %v", len(chunks), err)
	}

	// generateContent, with the key in the query.
	resp = send(t, c, "POST", s.URL()+"/v1beta/models/gemini-3-flash-preview:generateContent?key=AIza-1", nil, body)
	var g geminiResp
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil || resp.StatusCode != 200 {
		t.Fatalf("generateContent: %d %v", resp.StatusCode, err)
	}
	if g.text() != reply || g.Candidates[0].FinishReason != "STOP" || g.ModelVersion != "gemini-3-flash-preview" {
		t.Errorf("generateContent %+v", g)
	}

	// countTokens, models.
	resp = send(t, c, "POST", s.URL()+"/v1beta/models/gemini-2.5-flash:countTokens", googKey("AIza-1"), body)
	var ct struct{ TotalTokens int }
	if err := json.NewDecoder(resp.Body).Decode(&ct); err != nil || ct.TotalTokens < 1 {
		t.Errorf("countTokens: %+v %v", ct, err)
	}
	resp = send(t, c, "GET", s.URL()+"/v1beta/models", googKey("AIza-1"), "")
	var ml struct{ Models []struct{ Name string } }
	if err := json.NewDecoder(resp.Body).Decode(&ml); err != nil || len(ml.Models) == 0 || !strings.HasPrefix(ml.Models[0].Name, "models/") {
		t.Errorf("models: %+v %v", ml, err)
	}
	resp = send(t, c, "GET", s.URL()+"/v1beta/models/gemini-2.5-pro", googKey("AIza-1"), "")
	if resp.StatusCode != 200 {
		t.Errorf("model: %d", resp.StatusCode)
	}
	resp = send(t, c, "POST", s.URL()+"/v1beta/models/gemini-2.5-pro:nothing", googKey("AIza-1"), "{}")
	if e := geminiErr(t, resp); resp.StatusCode != 404 || e.Status != "NOT_FOUND" || e.Code != 404 {
		t.Errorf("unknown method: %d %+v", resp.StatusCode, e)
	}

	reqs := s.Requests()
	if r := reqs[0]; r.API != Gemini || r.Model != "gemini-2.5-flash" || !r.Stream || r.GoogAPIKey != "AIza-1" ||
		r.Query != "alt=sse" || len(r.Body) != int(r.BodySize) || r.Status != 200 {
		t.Errorf("first request %+v", r)
	}
	if r := reqs[2]; r.Stream || r.QueryKey != "AIza-1" || r.GoogAPIKey != "" {
		t.Errorf("generateContent request %+v", r)
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"AIza-1"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}

// gemini-cli asks for JSON of a schema (its model router, its
// next-speaker check) and retries for a minute when the answer does not
// parse.
func TestGeminiJSON(t *testing.T) {
	s := New(Options{Reply: "Plain text."})
	defer s.Close()
	for _, c := range []struct {
		name, config string
		check        func(v map[string]any) bool
	}{
		{"router", `{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","properties":{"complexity_reasoning":{"type":"string"},"complexity_score":{"type":"integer","minimum":1,"maximum":100}},"required":["complexity_reasoning","complexity_score"]}}`,
			func(v map[string]any) bool {
				return v["complexity_score"] == 1.0 && v["complexity_reasoning"] == "Plain text."
			}},
		{"next speaker", `{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","properties":{"reasoning":{"type":"string"},"next_speaker":{"type":"string","enum":["user","model"]}}}}`,
			func(v map[string]any) bool { return v["next_speaker"] == "user" }},
		{"OpenAPI schema", `{"responseMimeType":"application/json","responseSchema":{"type":"OBJECT","properties":{"ok":{"type":"BOOLEAN"},"list":{"type":"ARRAY","minItems":1,"items":{"type":"STRING"}},"n":{"type":"NUMBER"}}}}`,
			func(v map[string]any) bool {
				l, _ := v["list"].([]any)
				return v["ok"] == false && len(l) == 1 && v["n"] == 1.0
			}},
	} {
		body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":` + c.config + `}`
		for _, method := range []string{"generateContent", "streamGenerateContent?alt=sse"} {
			resp := send(t, s.Client(), "POST", s.URL()+"/v1beta/models/gemini-3.5-flash-lite:"+method, nil, body)
			var g geminiResp
			if strings.HasPrefix(method, "stream") {
				events := readSSE(t, resp.Body)
				if len(events) != 1 {
					t.Errorf("%s %s: %d events, want the JSON whole in one", c.name, method, len(events))
					continue
				}
				b, _ := json.Marshal(events[0].Data)
				json.Unmarshal(b, &g)
			} else if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(g.text()), &v); err != nil || !c.check(v) {
				t.Errorf("%s %s: %q %v", c.name, method, g.text(), err)
			}
		}
	}
}

type geminiErrBody struct {
	Code            int
	Message, Status string
	Details         []map[string]any
}

func geminiErr(t *testing.T, resp *http.Response) geminiErrBody {
	t.Helper()
	var e struct{ Error geminiErrBody }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return e.Error
}

func TestGeminiKey(t *testing.T) {
	s := New(Options{Key: "AIza-right"})
	defer s.Close()
	c := s.Client()
	u := s.URL() + "/v1beta/models/gemini-2.5-flash:generateContent"
	body := `{"contents":[]}`

	// No key, or one only as a bearer token: the API's 403.
	for _, h := range []map[string]string{nil, bearer("AIza-right")} {
		resp := send(t, c, "POST", u, h, body)
		if e := geminiErr(t, resp); resp.StatusCode != 403 || e.Code != 403 || e.Status != "PERMISSION_DENIED" {
			t.Errorf("headers %v: %d %+v", h, resp.StatusCode, e)
		}
	}
	// A wrong key: 400 (not 401) API_KEY_INVALID, in the header or the
	// query.
	for _, c2 := range []struct {
		url    string
		header map[string]string
	}{{u, googKey("AIza-wrong")}, {u + "?key=AIza-wrong2", nil}} {
		resp := send(t, c, "POST", c2.url, c2.header, body)
		e := geminiErr(t, resp)
		if resp.StatusCode != 400 || e.Status != "INVALID_ARGUMENT" || len(e.Details) == 0 || e.Details[0]["reason"] != "API_KEY_INVALID" {
			t.Errorf("wrong key %s %v: %d %+v", c2.url, c2.header, resp.StatusCode, e)
		}
	}
	for _, c2 := range []struct {
		url    string
		header map[string]string
	}{{u, googKey("AIza-right")}, {u + "?key=AIza-right", nil}} {
		if resp := send(t, c, "POST", c2.url, c2.header, body); resp.StatusCode != 200 {
			t.Errorf("right key %s %v: %d", c2.url, c2.header, resp.StatusCode)
		}
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"AIza-right", "AIza-wrong", "AIza-wrong2"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}
