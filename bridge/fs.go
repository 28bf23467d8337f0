package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// checkFS vets an agent's fs/read_text_file or fs/write_text_file. The path
// is resolved on the host (clean, symlinks followed) and must stay inside
// the session's roots; the request then goes to the editor with the
// resolved path, so a symlink the agent swaps in after the check is not
// followed. Refusals are answered to the agent and logged; the editor never
// sees them.
func (b *bridge) checkFS(m *acp.Message) ([]byte, error) {
	var p struct {
		SessionID string `json:"sessionId"`
		Path      string `json:"path"`
	}
	if err := acp.UnmarshalStrict(m.Params, &p); err != nil {
		b.replyAgentError(m.ID, acp.InvalidParams, m.Method+": bad params: "+err.Error())
		return nil, err
	}
	roots := b.state.sessionRoots(p.SessionID)
	if roots == nil {
		roots = []string{b.opt.Workspace}
	}
	real, err := resolveInside(p.Path, roots)
	if err != nil {
		msg := fmt.Sprintf("acp-sandbox refused %s: %v", m.Method, err)
		b.replyAgentError(m.ID, acp.InvalidParams, msg)
		b.log.Warn("fs request refused", "method", m.Method, "path", p.Path, "roots", roots, "err", err)
		return nil, err
	}
	if real == p.Path {
		return m.Raw, nil
	}
	return rewriteParams(m, func(obj map[string]json.RawMessage) error {
		b, err := json.Marshal(real)
		obj["path"] = b
		return err
	})
}

// resolveInside returns p with every symlink resolved, or an error if p is
// not absolute or resolves outside all roots. A path that does not exist
// yet (a file about to be written) resolves through its deepest existing
// ancestor.
func resolveInside(p string, roots []string) (string, error) {
	if p == "" || !filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	real, err := resolve(filepath.Clean(p))
	if err != nil {
		return "", err
	}
	for _, r := range roots {
		rr, err := resolve(r)
		if err != nil {
			continue
		}
		if real == rr || strings.HasPrefix(real, rr+string(filepath.Separator)) || rr == "/" {
			return real, nil
		}
	}
	if real != filepath.Clean(p) {
		return "", fmt.Errorf("path %s resolves to %s, outside the session's directories %s", p, real, strings.Join(roots, ", "))
	}
	return "", fmt.Errorf("path %s is outside the session's directories %s", p, strings.Join(roots, ", "))
}

func resolve(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err == nil {
		return real, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	// Resolve the deepest existing ancestor; the rest does not exist, so
	// it holds no symlink (yet).
	parent, base := filepath.Dir(p), filepath.Base(p)
	if parent == p {
		return "", err
	}
	rp, err := resolve(parent)
	if err != nil {
		return "", err
	}
	if _, lerr := os.Lstat(filepath.Join(rp, base)); lerr == nil {
		// It exists after all (a dangling symlink): refuse rather than
		// guess where a write would land.
		return "", fmt.Errorf("path %s is a dangling symlink", p)
	}
	return filepath.Join(rp, base), nil
}
