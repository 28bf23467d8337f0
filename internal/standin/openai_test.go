package standin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
)

// send makes a request with the given headers and returns the answer,
// closed at the end of the test.
func send(t *testing.T, c *http.Client, method, url string, header map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func bearer(key string) map[string]string { return map[string]string{"Authorization": "Bearer " + key} }

// checkResponsesEvents checks a Responses API event sequence for a
// reply and returns the text of its deltas.
func checkResponsesEvents(t *testing.T, events []map[string]any, model, reply string) string {
	t.Helper()
	var names []string
	var text strings.Builder
	for i, e := range events {
		typ, _ := e["type"].(string)
		names = append(names, typ)
		if e["sequence_number"] != float64(i) {
			t.Errorf("event %d (%s) has sequence_number %v", i, typ, e["sequence_number"])
		}
		if typ == "response.output_text.delta" {
			text.WriteString(e["delta"].(string))
		}
	}
	deltas := strings.Count(strings.Join(names, " "), "response.output_text.delta")
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	for range deltas {
		want = append(want, "response.output_text.delta")
	}
	want = append(want, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
	if !slices.Equal(names, want) {
		t.Fatalf("events %q\nwant   %q", names, want)
	}
	if deltas < 2 {
		t.Errorf("%d deltas: the reply should come in several chunks", deltas)
	}
	created := events[0]["response"].(map[string]any)
	if created["status"] != "in_progress" || created["model"] != model || !strings.HasPrefix(created["id"].(string), "resp_") ||
		len(created["output"].([]any)) != 0 {
		t.Errorf("response.created %v", created)
	}
	// codex takes the message from response.output_item.done.
	item := events[len(events)-2]["item"].(map[string]any)
	content := item["content"].([]any)
	if item["type"] != "message" || item["role"] != "assistant" || len(content) != 1 ||
		content[0].(map[string]any)["type"] != "output_text" || content[0].(map[string]any)["text"] != reply {
		t.Errorf("response.output_item.done item %v", item)
	}
	done := events[len(events)-1]["response"].(map[string]any)
	usage, _ := done["usage"].(map[string]any)
	if done["status"] != "completed" || done["id"] != created["id"] || usage == nil ||
		usage["output_tokens"] != float64(deltas) || usage["total_tokens"] != usage["input_tokens"].(float64)+float64(deltas) {
		t.Errorf("response.completed %v", done)
	}
	if _, ok := usage["input_tokens_details"].(map[string]any)["cached_tokens"]; !ok {
		t.Errorf("usage without input_tokens_details.cached_tokens: %v", usage)
	}
	return text.String()
}

func TestOpenAIStreamFormat(t *testing.T) {
	const reply = "The quick brown fox jumps over the lazy dog."
	s := New(Options{Reply: reply, Key: "sk-1", Logf: t.Logf})
	defer s.Close()
	c := s.Client()

	resp := send(t, c, "POST", s.URL()+"/v1/responses", bearer("sk-1"),
		`{"model":"gpt-5.5","instructions":"be brief","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],"stream":true,"store":false}`)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	var events []map[string]any
	for _, e := range readSSE(t, resp.Body) {
		if e.Data["type"] != e.Event {
			t.Errorf("event %q carries type %v", e.Event, e.Data["type"])
		}
		events = append(events, e.Data)
	}
	if text := checkResponsesEvents(t, events, "gpt-5.5", reply); text != reply {
		t.Errorf("streamed text %q, want %q", text, reply)
	}
	if events[0]["response"].(map[string]any)["instructions"] != "be brief" {
		t.Errorf("instructions not echoed: %v", events[0]["response"])
	}

	// Not streaming: the response object.
	resp = send(t, c, "POST", s.URL()+"/v1/responses", bearer("sk-1"), `{"model":"gpt-5.4-mini","input":"hi"}`)
	var r struct {
		Object, Status, Model string
		Output                []struct {
			Type, Role string
			Content    []struct{ Type, Text string }
		}
		Usage struct {
			OutputTokens int `json:"output_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if r.Object != "response" || r.Status != "completed" || r.Model != "gpt-5.4-mini" || len(r.Output) != 1 ||
		r.Output[0].Role != "assistant" || len(r.Output[0].Content) != 1 || r.Output[0].Content[0].Text != reply || r.Usage.OutputTokens == 0 {
		t.Errorf("response %+v", r)
	}

	// A warm-up (generate false) has no output.
	resp = send(t, c, "POST", s.URL()+"/v1/responses", bearer("sk-1"), `{"model":"gpt-5.5","input":[],"stream":true,"generate":false}`)
	var names []string
	var last map[string]any
	for _, e := range readSSE(t, resp.Body) {
		names, last = append(names, e.Event), e.Data
	}
	if !slices.Equal(names, []string{"response.created", "response.in_progress", "response.completed"}) ||
		len(last["response"].(map[string]any)["output"].([]any)) != 0 {
		t.Errorf("warm-up events %q, last %v", names, last)
	}

	// Models, and the API's 404.
	resp = send(t, c, "GET", s.URL()+"/v1/models?client_version=0.137.0", bearer("sk-1"), "")
	var list struct {
		Object string
		Data   []struct{ ID, Object string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || list.Object != "list" || len(list.Data) == 0 || list.Data[0].Object != "model" {
		t.Errorf("models: %+v %v", list, err)
	}
	resp = send(t, c, "POST", s.URL()+"/v1/chat/completions", bearer("sk-1"), `{}`)
	if e := openAIErr(t, resp); resp.StatusCode != 404 || e.Type != "invalid_request_error" || !strings.Contains(e.Message, "Invalid URL") {
		t.Errorf("unknown path: %d %+v", resp.StatusCode, e)
	}

	reqs := s.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests recorded, want 5", len(reqs))
	}
	if r := reqs[0]; r.API != OpenAI || r.Model != "gpt-5.5" || !r.Stream || r.Authorization != "Bearer sk-1" ||
		r.Status != 200 || len(r.Body) != int(r.BodySize) || r.BodySize == 0 {
		t.Errorf("first request %+v", r)
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"sk-1"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}

type openAIErrBody struct {
	Message, Type string
	Param         any
	Code          any
}

func openAIErr(t *testing.T, resp *http.Response) openAIErrBody {
	t.Helper()
	var e struct{ Error openAIErrBody }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return e.Error
}

func TestOpenAIKey(t *testing.T) {
	s := New(Options{Key: "sk-right-0123456789"})
	defer s.Close()
	c := s.Client()
	body := `{"model":"gpt-5.5","input":"hi"}`

	// No key, or one only in Anthropic's header: the API's "no key".
	for _, h := range []map[string]string{nil, {"X-Api-Key": "sk-right-0123456789"}} {
		resp := send(t, c, "POST", s.URL()+"/v1/responses", h, body)
		if e := openAIErr(t, resp); resp.StatusCode != 401 || e.Code != nil || !strings.HasPrefix(e.Message, "You didn't provide an API key") {
			t.Errorf("headers %v: %d %+v", h, resp.StatusCode, e)
		}
	}
	// A wrong key: invalid_api_key, the key masked.
	resp := send(t, c, "POST", s.URL()+"/v1/responses", bearer("sk-wrong-9876543210"), body)
	if e := openAIErr(t, resp); resp.StatusCode != 401 || e.Code != "invalid_api_key" || e.Type != "invalid_request_error" ||
		strings.Contains(e.Message, "sk-wrong-9876543210") || !strings.Contains(e.Message, "3210") {
		t.Errorf("wrong key: %d %+v", resp.StatusCode, e)
	}
	if resp := send(t, c, "POST", s.URL()+"/v1/responses", bearer("sk-right-0123456789"), body); resp.StatusCode != 200 {
		t.Errorf("right key: %d", resp.StatusCode)
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"sk-right-0123456789", "sk-wrong-9876543210"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}

// The Responses API over a WebSocket, as codex uses it first.
func TestOpenAIWebSocket(t *testing.T) {
	const reply = "Hello over a WebSocket, in several chunks."
	s := New(Options{Reply: reply, Key: "sk-ws", Logf: t.Logf})
	defer s.Close()
	wsURL := "ws" + strings.TrimPrefix(s.URL(), "http") + "/v1/responses"
	dial := func(key string) (*websocket.Conn, error) {
		cfg, err := websocket.NewConfig(wsURL, "http://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Header.Set("Authorization", "Bearer "+key)
		cfg.Header.Set("OpenAI-Beta", "responses_websockets=2026-02-06")
		return websocket.DialConfig(cfg)
	}
	if ws, err := dial("sk-wrong"); err == nil {
		ws.Close()
		t.Errorf("a wrong key opened the WebSocket")
	}
	ws, err := dial("sk-ws")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// One warm-up, one real request, on the same connection; messages
	// other than response.create are ignored.
	for i, msg := range []string{
		`{"type":"response.create","model":"gpt-5.5","input":[],"stream":true,"generate":false}`,
		`{"type":"response.processed","response_id":"resp_x"}`,
		`{"type":"response.create","model":"gpt-5.5","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],"stream":true}`,
	} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			continue
		}
		var events []map[string]any
		for {
			var text string
			if err := websocket.Message.Receive(ws, &text); err != nil {
				t.Fatal(err)
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(text), &e); err != nil {
				t.Fatalf("message %q: %v", text, err)
			}
			events = append(events, e)
			if e["type"] == "response.completed" {
				break
			}
		}
		if i == 0 {
			if len(events) != 3 {
				t.Errorf("warm-up: %d events, want 3", len(events))
			}
			continue
		}
		if text := checkResponsesEvents(t, events, "gpt-5.5", reply); text != reply {
			t.Errorf("text %q, want %q", text, reply)
		}
	}

	var got []string
	for _, r := range s.Requests() {
		got = append(got, r.Method+" "+r.Path+" "+http.StatusText(r.Status))
		if r.API != OpenAI || r.Header.Get("Openai-Beta") == "" {
			t.Errorf("request %+v", r)
		}
	}
	want := []string{"GET /v1/responses Unauthorized", "GET /v1/responses Switching Protocols", "WS /v1/responses OK", "WS /v1/responses OK"}
	if !slices.Equal(got, want) {
		t.Errorf("requests %q\nwant     %q", got, want)
	}
	if r := s.Requests()[3]; r.Model != "gpt-5.5" || !r.Stream || !strings.Contains(string(r.Body), `"input_text"`) || r.Authorization != "Bearer sk-ws" {
		t.Errorf("WS request %+v", r)
	}
	if got := s.KeysSeen(); !slices.Equal(got, []string{"sk-wrong", "sk-ws"}) {
		t.Errorf("KeysSeen = %q", got)
	}
}

func TestAPIOf(t *testing.T) {
	for _, c := range []struct {
		method, url string
		header      map[string]string
		want        string
	}{
		// By path, as with a base URL pointing at the stand-in.
		{"POST", "http://127.0.0.1:1/v1/messages?beta=true", nil, Anthropic},
		{"POST", "http://127.0.0.1:1/v1/responses", nil, OpenAI},
		{"GET", "http://127.0.0.1:1/v1/responses", map[string]string{"Upgrade": "websocket"}, OpenAI},
		{"POST", "http://127.0.0.1:1/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", nil, Gemini},
		{"POST", "http://127.0.0.1:1/v1/models/gemini-2.5-flash:generateContent", nil, Gemini},
		{"GET", "http://127.0.0.1:1/v1beta/models", nil, Gemini},
		// /v1/models is Anthropic's unless codex asks.
		{"GET", "http://127.0.0.1:1/v1/models", bearer("k"), Anthropic},
		{"GET", "http://127.0.0.1:1/v1/models?client_version=0.137.0", bearer("k"), OpenAI},
		{"GET", "http://127.0.0.1:1/nothing", nil, Anthropic},
		// By host, as in the VM.
		{"GET", "https://api.openai.com/v1/models", nil, OpenAI},
		{"GET", "https://api.openai.com:443/nothing", nil, OpenAI},
		{"GET", "https://generativelanguage.googleapis.com/nothing", nil, Gemini},
		{"GET", "https://api.anthropic.com/v1/models", nil, Anthropic},
	} {
		r := httptest.NewRequest(c.method, c.url, nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		if got := apiOf(r); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.url, got, c.want)
		}
	}
}
