package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

const realKey = "sk-REAL-editor-key-0123456789abcdef"

// keysRecorder is an Options.Keys that hands out placeholders and
// remembers what it was given.
type keysRecorder struct {
	mu   sync.Mutex
	got  []Secrets
	fail error
}

func (k *keysRecorder) keys(_ context.Context, s Secrets) (Secrets, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.got = append(k.got, s)
	if k.fail != nil {
		return Secrets{}, k.fail
	}
	out := Secrets{Method: s.Method, BaseURL: strings.Replace(s.BaseURL, "localhost", "host.acp-sandbox.internal", 1)}
	if s.APIKey != "" {
		out.APIKey = "acps-ph-key-" + s.Provider
	}
	if s.Headers != nil {
		out.Headers = map[string]string{}
		for h := range s.Headers {
			out.Headers[h] = "acps-ph-" + strings.ToLower(h)
		}
	}
	return out, nil
}

// initAgent runs initialize with an agent that offers an api-key method
// for provider "google".
func initAgent(t *testing.T, h *harness) {
	t.Helper()
	h.editorSends(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":1}}`)
	h.agentGets()
	h.agentSends(`{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":1,"authMethods":[{"id":"oauth"},{"id":"gemini-api-key","_meta":{"api-key":{"provider":"google"}}},{"id":"gateway","_meta":{"gateway":{"protocol":"google"}}}]}}`)
	h.editorGets()
}

// An API key in authenticate's _meta and a gateway's headers reach the
// agent as placeholders; the real values go to Options.Keys only, with the
// provider the agent's auth method named. Stops: a key the editor sends
// crossing into the VM in ACP traffic.
func TestAuthenticateKeysStayOnHost(t *testing.T) {
	rec := &keysRecorder{}
	h := newHarness(t, func(o *Options) { o.Keys = rec.keys })
	initAgent(t, h)

	h.editorSends(`{"jsonrpc":"2.0","id":1,"method":"authenticate","params":{"methodId":"gemini-api-key","_meta":{"api-key":"` + realKey + `","other":1}}}`)
	got := h.agentGets()
	if strings.Contains(got, realKey) {
		t.Fatalf("the real key reached the agent: %s", got)
	}
	var p struct {
		MethodID string `json:"methodId"`
		Meta     struct {
			APIKey string `json:"api-key"`
			Other  int    `json:"other"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(parse(t, got).Params, &p); err != nil {
		t.Fatal(err)
	}
	if p.MethodID != "gemini-api-key" || p.Meta.APIKey != "acps-ph-key-google" || p.Meta.Other != 1 {
		t.Fatalf("agent got %s", got)
	}

	h.editorSends(`{"jsonrpc":"2.0","id":2,"method":"authenticate","params":{"methodId":"gateway","_meta":{"gateway":{"baseUrl":"https://gw.example.com/v1","headers":{"Authorization":"Bearer ` + realKey + `","X-Team":"t1"}}}}}`)
	got = h.agentGets()
	if strings.Contains(got, realKey) || strings.Contains(got, "t1") {
		t.Fatalf("a gateway header value reached the agent: %s", got)
	}
	var g struct {
		Meta struct {
			Gateway struct {
				BaseURL string            `json:"baseUrl"`
				Headers map[string]string `json:"headers"`
			} `json:"gateway"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(parse(t, got).Params, &g); err != nil {
		t.Fatal(err)
	}
	if g.Meta.Gateway.BaseURL != "https://gw.example.com/v1" || g.Meta.Gateway.Headers["Authorization"] != "acps-ph-authorization" || g.Meta.Gateway.Headers["X-Team"] != "acps-ph-x-team" {
		t.Fatalf("agent got gateway %+v", g.Meta.Gateway)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 2 {
		t.Fatalf("Keys called %d times, want 2", len(rec.got))
	}
	if s := rec.got[0]; s.Method != "authenticate" || s.APIKey != realKey || s.Provider != "google" {
		t.Errorf("first hand-over %v (key %v)", s, s.APIKey == realKey)
	}
	if s := rec.got[1]; s.BaseURL != "https://gw.example.com/v1" || s.Headers["Authorization"] != "Bearer "+realKey {
		t.Errorf("second hand-over %v", s)
	}
	if strings.Contains(rec.got[0].String(), realKey) || strings.Contains(rec.got[1].String(), realKey) {
		t.Error("Secrets.String shows a secret")
	}
}

// providers/set headers are handed over the same way, and a loopback
// gateway gets the name the VM reaches the host by.
func TestProvidersSetHeaders(t *testing.T) {
	rec := &keysRecorder{}
	h := newHarness(t, func(o *Options) { o.Keys = rec.keys })
	h.editorSends(`{"jsonrpc":"2.0","id":3,"method":"providers/set","params":{"providerId":"main","apiType":"anthropic","baseUrl":"http://localhost:4000","headers":{"x-api-key":"` + realKey + `"}}}`)
	got := h.agentGets()
	if strings.Contains(got, realKey) {
		t.Fatalf("the real key reached the agent: %s", got)
	}
	var p struct {
		ProviderID string            `json:"providerId"`
		APIType    string            `json:"apiType"`
		BaseURL    string            `json:"baseUrl"`
		Headers    map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(parse(t, got).Params, &p); err != nil {
		t.Fatal(err)
	}
	if p.ProviderID != "main" || p.APIType != "anthropic" || p.BaseURL != "http://host.acp-sandbox.internal:4000" || p.Headers["x-api-key"] != "acps-ph-x-api-key" {
		t.Fatalf("agent got %s", got)
	}
	// The agent's answer passes back.
	h.agentSends(`{"jsonrpc":"2.0","id":3,"result":{}}`)
	if got := h.editorGets(); got != `{"jsonrpc":"2.0","id":3,"result":{}}` {
		t.Fatalf("editor got %s", got)
	}
}

// Without a way to keep the key on the host, or when the host refuses it,
// the editor gets an error naming why and the agent gets nothing.
// Requests without secrets pass as before.
func TestKeysRefused(t *testing.T) {
	for name, keys := range map[string]func(context.Context, Secrets) (Secrets, error){
		"no Keys": nil,
		"refused": (&keysRecorder{fail: errors.New("authenticate: cannot tell which API this key is for")}).keys,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Keys = keys })
			for _, l := range []string{
				`{"jsonrpc":"2.0","id":1,"method":"authenticate","params":{"methodId":"k","_meta":{"api-key":"` + realKey + `"}}}`,
				`{"jsonrpc":"2.0","id":2,"method":"authenticate","params":{"methodId":"gateway","_meta":{"gateway":{"baseUrl":"https://gw.example.com","headers":{"a":"` + realKey + `"}}}}}`,
				`{"jsonrpc":"2.0","id":3,"method":"providers/set","params":{"providerId":"main","apiType":"openai","baseUrl":"https://gw.example.com","headers":{"a":"` + realKey + `"}}}`,
				`{"jsonrpc":"2.0","id":4,"method":"providers/set","params":{"providerId":"main","apiType":"openai","headers":{"a":"` + realKey + `"}}}`,
				`{"jsonrpc":"2.0","id":5,"method":"authenticate","params":{"methodId":"k","_meta":{"api-key":42}}}`,
			} {
				h.editorSends(l)
				we := wireErr(t, h.editorGets())
				if !strings.Contains(we.Message, "key") && !strings.Contains(we.Message, "headers") && !strings.Contains(we.Message, "api-key") {
					t.Errorf("error does not say why: %q", we.Message)
				}
				if strings.Contains(we.Message, realKey) {
					t.Errorf("the error shows the key: %q", we.Message)
				}
			}
			h.agentGetsOnly("")
			// No secret: passes (re-encoded, same content).
			h.editorSends(`{"jsonrpc":"2.0","id":6,"method":"authenticate","params":{"methodId":"oauth"}}`)
			if got := parse(t, h.agentGets()); got.Method != "authenticate" || !strings.Contains(string(got.Params), `"oauth"`) {
				t.Fatalf("agent got %s", got.Raw)
			}
		})
	}
}

// An http MCP server's headers reach the agent as placeholders; when the
// host cannot keep them, the server is dropped with a warning instead of
// its token going into the VM. A stdio server's environment passes (the
// user gave it to that server) with a warning saying where it goes.
func TestMCPServerHeaders(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "kept", true: "refused"}[refuse], func(t *testing.T) {
			rec := &keysRecorder{}
			if refuse {
				rec.fail = errors.New("the gateway gets headers acp-sandbox must add on the way out, which it can do only for https on port 443")
			}
			h := newHarness(t, func(o *Options) {
				o.Keys = rec.keys
				o.CommandExists = func(context.Context, string) bool { return true }
			})
			h.editorSends(`{"jsonrpc":"2.0","id":1,"method":"session/new","params":{"cwd":"` + h.ws + `","mcpServers":[` +
				`{"type":"http","name":"gh","url":"https://api.example.com/mcp","headers":[{"name":"Authorization","value":"Bearer ` + realKey + `"}]},` +
				`{"name":"tool","command":"/usr/bin/tool","args":[],"env":[{"name":"TOOL_TOKEN","value":"t"}]}]}}`)
			got := h.agentGets()
			if strings.Contains(got, realKey) {
				t.Fatalf("an MCP server's token reached the agent: %s", got)
			}
			var p struct {
				MCPServers []struct {
					Name    string    `json:"name"`
					URL     string    `json:"url"`
					Headers []nameVal `json:"headers"`
				} `json:"mcpServers"`
			}
			if err := json.Unmarshal(parse(t, got).Params, &p); err != nil {
				t.Fatal(err)
			}
			if refuse {
				if len(p.MCPServers) != 1 || p.MCPServers[0].Name != "tool" {
					t.Fatalf("servers passed: %+v", p.MCPServers)
				}
			} else {
				if len(p.MCPServers) != 2 || p.MCPServers[0].URL != "https://api.example.com/mcp" ||
					len(p.MCPServers[0].Headers) != 1 || p.MCPServers[0].Headers[0] != (nameVal{"Authorization", "acps-ph-authorization"}) {
					t.Fatalf("servers passed: %+v", p.MCPServers)
				}
				rec.mu.Lock()
				if len(rec.got) != 1 || rec.got[0].Headers["Authorization"] != "Bearer "+realKey || rec.got[0].BaseURL != "https://api.example.com/mcp" {
					t.Errorf("handed over: %v", rec.got)
				}
				rec.mu.Unlock()
			}
			h.agentSends(`{"jsonrpc":"2.0","id":1,"result":{"sessionId":"s1"}}`)
			h.editorGets() // the answer
			warns := h.editorGets()
			if refuse {
				warns += h.editorGets()
				if !strings.Contains(warns, `MCP server \"gh\" was removed`) {
					t.Errorf("no warning for the dropped server: %s", warns)
				}
			}
			if !strings.Contains(warns, "TOOL_TOKEN") || strings.Contains(warns, realKey) {
				t.Errorf("warnings: %s", warns)
			}
		})
	}
}
