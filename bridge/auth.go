package bridge

import (
	"encoding/json"
)

// rewriteAuthMethods points legacy terminal-auth commands
// (authMethods[]._meta["terminal-auth"].command, a path inside the VM) at
// acp-sandbox, which runs them interactively inside the VM.
func (b *bridge) rewriteAuthMethods(result map[string]json.RawMessage) error {
	raw, ok := result["authMethods"]
	if !ok || b.opt.AuthPrefix == nil {
		return nil
	}
	var methods []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &methods); err != nil {
		return nil // not ours to fix
	}
	changed := false
	for _, m := range methods {
		var meta map[string]json.RawMessage
		if json.Unmarshal(m["_meta"], &meta) != nil {
			continue
		}
		var ta map[string]json.RawMessage
		if json.Unmarshal(meta["terminal-auth"], &ta) != nil {
			continue
		}
		var cmd string
		var args []string
		if json.Unmarshal(ta["command"], &cmd) != nil || cmd == "" {
			continue
		}
		_ = json.Unmarshal(ta["args"], &args)
		newArgs := append(append(append([]string(nil), b.opt.AuthPrefix[1:]...), cmd), args...)
		ta["command"], _ = json.Marshal(b.opt.AuthPrefix[0])
		ta["args"], _ = json.Marshal(newArgs)
		meta["terminal-auth"], _ = json.Marshal(ta)
		m["_meta"], _ = json.Marshal(meta)
		changed = true
	}
	if changed {
		result["authMethods"], _ = json.Marshal(methods)
	}
	return nil
}
