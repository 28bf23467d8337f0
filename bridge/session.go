package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

type sessionParams struct {
	SessionID             string            `json:"sessionId"`
	Cwd                   string            `json:"cwd"`
	AdditionalDirectories []string          `json:"additionalDirectories"`
	MCPServers            []json.RawMessage `json:"mcpServers"`
}

type mcpServer struct {
	Type    string    `json:"type"`
	Name    string    `json:"name"`
	Command string    `json:"command"`
	URL     string    `json:"url"`
	Headers []nameVal `json:"headers"` // http, sse
	Env     []nameVal `json:"env"`     // stdio
}

type nameVal struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// checkSession vets session/new|load|resume: every root must be inside the
// mounted workspace, and MCP servers the VM cannot reach are dropped with a
// warning (a stdio server runs in the VM, so its command must exist there;
// an http server on host loopback is not reachable from the VM). An http
// server's headers (its token, typically) are handed to the host like an
// authenticate key (keys.go): the agent gets placeholders, and the server
// is dropped, with a warning, when they cannot be kept out of the VM.
func (b *bridge) checkSession(ctx context.Context, m *acp.Message, req *editorRequest) ([]byte, error) {
	var p sessionParams
	if err := acp.UnmarshalStrict(m.Params, &p); err != nil {
		return nil, fmt.Errorf("%s: bad params: %w", m.Method, err)
	}
	req.session = p.SessionID
	var roots []string
	for _, dir := range append([]string{p.Cwd}, p.AdditionalDirectories...) {
		real, err := resolveInside(dir, []string{b.opt.Workspace})
		if err != nil {
			msg := fmt.Sprintf("%s: %v. Only the workspace %s is mounted in the sandbox VM; launch acp-sandbox with --workspace set to a directory that contains %s", m.Method, err, b.opt.Workspace, dir)
			b.replyEditorError(m.ID, acp.InvalidParams, msg)
			b.log.Warn("session refused", "method", m.Method, "dir", dir, "err", err)
			return nil, errRefused
		}
		roots = append(roots, real)
	}
	req.roots = roots

	kept := make([]json.RawMessage, 0, len(p.MCPServers))
	changed := false
	for _, raw := range p.MCPServers {
		var s mcpServer
		if err := json.Unmarshal(raw, &s); err != nil {
			req.warnings = append(req.warnings, "an MCP server entry could not be read and was removed")
			continue
		}
		why := b.mcpUnreachable(ctx, s)
		if why == "" && len(s.Headers) > 0 && (s.Type == "http" || s.Type == "sse") {
			var out json.RawMessage
			if out, why = b.mcpHeaders(ctx, m.Method, raw, s); why == "" {
				raw, changed = out, true
			}
		}
		if why != "" {
			w := fmt.Sprintf("MCP server %q was removed: %s", s.Name, why)
			req.warnings = append(req.warnings, w)
			b.log.Warn(w)
			continue
		}
		if len(s.Env) > 0 {
			// Its environment is the user's to give; say where it goes.
			req.warnings = append(req.warnings, fmt.Sprintf("MCP server %q runs inside the sandbox VM with the environment your editor gives it (%s), which the agent can read there; keep a token out of the VM with a [[credentials]] rule for the host it is for instead",
				s.Name, envNames(s.Env)))
		}
		kept = append(kept, raw)
	}
	if len(kept) == len(p.MCPServers) && !changed {
		return m.Raw, nil
	}
	return rewriteParams(m, func(obj map[string]json.RawMessage) error {
		b, err := json.Marshal(kept)
		obj["mcpServers"] = b
		return err
	})
}

// mcpUnreachable says why the VM cannot use an MCP server, or "".
func (b *bridge) mcpUnreachable(ctx context.Context, s mcpServer) string {
	switch s.Type {
	case "", "stdio":
		if s.Command == "" {
			return "it has no command"
		}
		if b.opt.CommandExists == nil || !b.opt.CommandExists(ctx, s.Command) {
			return fmt.Sprintf("its command %s does not exist inside the sandbox VM (it runs there, not on the host)", s.Command)
		}
	case "http", "sse":
		u, err := url.Parse(s.URL)
		if err != nil {
			return "its URL does not parse"
		}
		if policy.ThisMachine(u.Hostname()) {
			return fmt.Sprintf("%s is on the host's loopback, which the sandbox VM cannot reach", s.URL)
		}
	}
	return ""
}

// mcpHeaders hands an http MCP server's headers to the host (Options.Keys)
// and returns the entry with placeholders in their place, or why not.
func (b *bridge) mcpHeaders(ctx context.Context, method string, raw json.RawMessage, s mcpServer) (json.RawMessage, string) {
	hdrs := map[string]string{}
	for _, h := range s.Headers {
		hdrs[h.Name] = h.Value
	}
	got, err := b.handOver(ctx, Secrets{Method: method + " (MCP server " + s.Name + ")", BaseURL: s.URL, Headers: hdrs})
	if err != nil {
		return nil, "its headers would reach the sandbox VM as they are: " + err.Error()
	}
	entry := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &entry); err != nil {
		return nil, "its entry could not be read"
	}
	out := make([]nameVal, len(s.Headers))
	for i, h := range s.Headers {
		out[i] = nameVal{Name: h.Name, Value: got.Headers[h.Name]}
	}
	entry["headers"], _ = json.Marshal(out)
	entry["url"], _ = json.Marshal(got.BaseURL)
	b2, err := json.Marshal(entry)
	if err != nil {
		return nil, "its entry could not be rewritten"
	}
	return b2, ""
}

func envNames(env []nameVal) string {
	names := make([]string, len(env))
	for i, e := range env {
		names[i] = e.Name
	}
	return strings.Join(names, ", ")
}
