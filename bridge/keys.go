package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Keys the editor hands the agent never reach the VM. Three ACP requests
// carry them:
//
//   - authenticate with `_meta["api-key"]`: a bare key for the API the
//     auth method names in `authMethods[]._meta["api-key"].provider`
//     (gemini-cli's "gemini-api-key");
//   - authenticate with `_meta.gateway` {baseUrl, headers}: a model
//     gateway and the headers to send it (claude-agent-acp and gemini-cli
//     "gateway", offered when the editor advertises
//     clientCapabilities.auth._meta.gateway);
//   - providers/set {providerId, apiType, baseUrl, headers} (the
//     configurable-providers RFD).
//
// The bridge hands each to Options.Keys (the sandbox's supervisor), which
// keeps the real values host-side and injects them on the way out, and
// forwards the agent placeholders in their place. Without Options.Keys, or
// when it refuses, the editor's request gets an error and the agent sees
// nothing of it.

// Secrets is what one editor request carried, or what replaces it.
type Secrets struct {
	// Method is the ACP method ("authenticate", "providers/set").
	Method string
	// APIKey is a bare key; Provider the API it is for ("google"), "" if
	// the agent did not say.
	APIKey   string
	Provider string
	// BaseURL and Headers are a gateway.
	BaseURL string
	Headers map[string]string
}

// String never shows a secret.
func (s Secrets) String() string {
	return fmt.Sprintf("bridge.Secrets{%s provider=%q baseUrl=%q headers=%v key=%v}",
		s.Method, s.Provider, s.BaseURL, slices.Sorted(maps.Keys(s.Headers)), s.APIKey != "")
}

// GoString is String.
func (s Secrets) GoString() string { return s.String() }

// keysTimeout bounds the supervisor's answer.
const keysTimeout = 30 * time.Second

// authProviders remembers, from the agent's initialize answer, which API
// each auth method's key is for.
type authProviders struct {
	mu sync.Mutex
	m  map[string]string // method id → provider
}

func (a *authProviders) record(result map[string]json.RawMessage) {
	var methods []struct {
		ID   string `json:"id"`
		Meta struct {
			APIKey *struct {
				Provider string `json:"provider"`
			} `json:"api-key"`
		} `json:"_meta"`
	}
	if json.Unmarshal(result["authMethods"], &methods) != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m = map[string]string{}
	for _, m := range methods {
		if m.Meta.APIKey != nil {
			a.m[m.ID] = m.Meta.APIKey.Provider
		}
	}
}

func (a *authProviders) provider(method string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[method]
}

// takeAuthKeys replaces the key or gateway headers of an authenticate
// request with placeholders. A request with neither passes unchanged.
func (b *bridge) takeAuthKeys(ctx context.Context, params map[string]json.RawMessage) error {
	var meta map[string]json.RawMessage
	if raw, ok := params["_meta"]; !ok || json.Unmarshal(raw, &meta) != nil || meta == nil {
		return nil
	}
	var methodID string
	_ = json.Unmarshal(params["methodId"], &methodID)
	if raw, ok := meta["api-key"]; ok && string(raw) != "null" {
		var key string
		if err := json.Unmarshal(raw, &key); err != nil {
			return fmt.Errorf(`authenticate: _meta["api-key"] must be a string`)
		}
		if key != "" {
			got, err := b.handOver(ctx, Secrets{Method: "authenticate", APIKey: key, Provider: b.auth.provider(methodID)})
			if err != nil {
				return err
			}
			meta["api-key"], _ = json.Marshal(got.APIKey)
		}
	}
	if raw, ok := meta["gateway"]; ok && string(raw) != "null" {
		gw := map[string]json.RawMessage{}
		if err := json.Unmarshal(raw, &gw); err != nil {
			return fmt.Errorf("authenticate: _meta.gateway must be an object")
		}
		if err := b.takeGateway(ctx, "authenticate", gw); err != nil {
			return err
		}
		meta["gateway"], _ = json.Marshal(gw)
	}
	params["_meta"], _ = json.Marshal(meta)
	return nil
}

// takeProviderKeys replaces the headers of a providers/set request with
// placeholders (and a loopback baseUrl with the name the VM reaches the
// host by).
func (b *bridge) takeProviderKeys(ctx context.Context, params map[string]json.RawMessage) error {
	return b.takeGateway(ctx, "providers/set", params)
}

// takeGateway rewrites obj's baseUrl and headers in place.
func (b *bridge) takeGateway(ctx context.Context, method string, obj map[string]json.RawMessage) error {
	var baseURL string
	var headers map[string]string
	if raw, ok := obj["baseUrl"]; ok && json.Unmarshal(raw, &baseURL) != nil {
		return fmt.Errorf("%s: baseUrl must be a string", method)
	}
	if raw, ok := obj["headers"]; ok && string(raw) != "null" && json.Unmarshal(raw, &headers) != nil {
		return fmt.Errorf("%s: headers must be an object of strings", method)
	}
	if baseURL == "" {
		if len(headers) > 0 {
			return fmt.Errorf("%s: headers without a baseUrl: acp-sandbox cannot tell where they may go, so it will not hand them to the agent", method)
		}
		return nil
	}
	got, err := b.handOver(ctx, Secrets{Method: method, BaseURL: baseURL, Headers: headers})
	if err != nil {
		return err
	}
	obj["baseUrl"], _ = json.Marshal(got.BaseURL)
	if _, ok := obj["headers"]; ok || len(got.Headers) > 0 {
		obj["headers"], _ = json.Marshal(got.Headers)
	}
	return nil
}

// handOver gives the secrets to Options.Keys.
func (b *bridge) handOver(ctx context.Context, s Secrets) (Secrets, error) {
	if b.opt.Keys == nil {
		return Secrets{}, fmt.Errorf("%s: acp-sandbox keeps keys out of the sandbox and has no way to inject this one here; set the key in the host environment or a [[credentials]] rule instead", s.Method)
	}
	ctx, cancel := context.WithTimeout(ctx, keysTimeout)
	defer cancel()
	got, err := b.opt.Keys(ctx, s)
	if err != nil {
		return Secrets{}, fmt.Errorf("acp-sandbox did not pass the key on to the agent: %w", err)
	}
	b.log.Info("a key from the editor stays on the host; the agent got a placeholder", "secrets", s)
	return got, nil
}
