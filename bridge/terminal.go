package bridge

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/acp"
)

// rewriteTerminal turns an agent's terminal/create into a host command the
// editor can run in its own terminal UI:
//
//	acp-sandbox exec --sandbox ID [--cwd DIR] [--env K=V]... -- CMD ARGS...
//
// so the process runs inside the VM while the editor shows it live. The
// environment the agent asked for travels as --env (into the VM), never as
// the host process's environment, which gets only Options.ExecEnv.
func (b *bridge) rewriteTerminal(p map[string]json.RawMessage) error {
	var t struct {
		Command string   `json:"command"`
		Args    []string `json:"args"`
		Cwd     string   `json:"cwd"`
		Env     []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := acp.UnmarshalStrict(raw, &t); err != nil {
		return err
	}
	if t.Command == "" {
		return errors.New("terminal/create: empty command")
	}
	if len(b.opt.ExecPrefix) == 0 {
		return errors.New("terminal/create: terminals are not available in this sandbox")
	}
	args := append([]string(nil), b.opt.ExecPrefix[1:]...)
	if t.Cwd != "" {
		if !filepath.IsAbs(t.Cwd) {
			return errors.New("terminal/create: cwd must be absolute")
		}
		args = append(args, "--cwd", t.Cwd)
	}
	for _, e := range t.Env {
		if e.Name == "" || strings.Contains(e.Name, "=") {
			return errors.New("terminal/create: bad environment variable name " + e.Name)
		}
		args = append(args, "--env", e.Name+"="+e.Value)
	}
	args = append(args, "--", t.Command)
	args = append(args, t.Args...)

	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		p[k] = b
	}
	set("command", b.opt.ExecPrefix[0])
	set("args", args)
	type envVar struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	hostEnv := []envVar{}
	for _, kv := range b.opt.ExecEnv {
		k, v, _ := strings.Cut(kv, "=")
		hostEnv = append(hostEnv, envVar{k, v})
	}
	set("env", hostEnv)
	// The editor starts our exec client on the host: the same path exists
	// there (the workspace is shared at its host path); elsewhere, start it
	// in the workspace.
	if _, err := resolveInside(t.Cwd, []string{b.opt.Workspace}); t.Cwd == "" || err != nil {
		set("cwd", b.opt.Workspace)
	}
	return nil
}
