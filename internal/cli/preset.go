package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/internal/presets"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// agentRun is what `acp-sandbox -- NAME ARGS…` runs.
type agentRun struct {
	argv []string // in the VM
	// agent is the configuration's agent it runs, "" for none; hosts are
	// what that agent needs reachable ([config.Agent.Hosts]), which join
	// the command's network rules while it runs.
	agent string
	hosts []string
	// preset is installed with npm when the sandbox starts, unless it is
	// there already. nil: nothing to install.
	preset *presets.Preset
}

// resolveAgent decides what `acp-sandbox -- NAME ARGS…` runs under cfg.
// The first rule that applies wins:
//
//  1. NAME is a preset (claude, codex, gemini) and no file sets
//     [agents.NAME] command: the preset's ACP adapter, installed with npm
//     in the sandbox on first use, ARGS after its own arguments.
//  2. NAME is an [agents.NAME] with a command (a file's, including one
//     that replaces a preset's: then nothing is installed): that command,
//     ARGS after it. It runs as written; a preset's name in it is not
//     expanded again.
//  3. Anything else runs as the command it is (a path such as
//     /usr/bin/claude too); if it starts like an agent's command
//     ([config.Config.AgentFor]), that agent's hosts apply. A command the
//     VM lacks fails there ("not found", in the agent log).
//
// In rules 1 and 2 the agent is NAME: its hosts apply.
func resolveAgent(cfg *config.Config, argv []string) agentRun {
	name, extra := argv[0], argv[1:]
	a, known := cfg.Agents[name]
	// Built-in commands have no file in their origin; a file's [agents.NAME]
	// command does (config.Config.Origins).
	fromFile := known && cfg.Origin("agents."+name+".command").File != ""
	r := agentRun{argv: argv}
	if p, ok := presets.Lookup(name); ok && !fromFile {
		r.argv, r.agent, r.preset = p.Argv(sandbox.GuestHome, extra), name, &p
	} else if known && len(a.Command) > 0 {
		r.argv, r.agent = append(slices.Clone(a.Command), extra...), name
	} else {
		r.agent = cfg.AgentFor(argv)
	}
	if r.agent != "" {
		r.hosts = cfg.Agents[r.agent].Hosts()
	}
	return r
}

// useAgent resolves the command line after `--` with the workspace's
// configuration (resolveAgent): the agent's hosts join the command's
// network rules, and a preset is installed when the sandbox starts (start
// calls installPreset). A configuration that does not load leaves the
// built-in agents; the start reports its problems.
func (g *globals) useAgent(argv []string) []string {
	cfg := &config.Config{Agents: config.BuiltinAgents()}
	if sb, err := g.workspaceSandbox(); err == nil {
		if c, err := sandbox.LoadConfig(sb); err == nil {
			cfg = c
		}
	}
	r := resolveAgent(cfg, argv)
	g.preset = r.preset
	g.allow = append(g.allow, r.hosts...)
	return r.argv
}

// presetSpec overrides a preset's npm spec; only test builds set it.
var presetSpec func(name string) string

// installPreset installs p in the sandbox's home unless it is there. npm
// needs the registry: the sandbox's rules allow it for the install only.
// Progress goes to progress; what it did, for the user to see later, is
// returned as notice ("" when p was installed already).
func installPreset(ctx context.Context, c *sandbox.Client, p presets.Preset, progress io.Writer) (notice string, err error) {
	check := control.Exec{Argv: []string{"test", "-x", p.Command(sandbox.GuestHome)}}
	if code, err := c.Exec(ctx, check, sandbox.ExecIO{}); err != nil {
		return "", err
	} else if code == 0 {
		return "", nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	during := st.Extra
	during.Allow = append(slices.Clone(during.Allow), presets.Registry...)
	if err := c.SetNetwork(ctx, during); err != nil {
		return "", err
	}
	defer func() {
		// Restore even when ctx was cancelled mid-install.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = c.SetNetwork(rctx, st.Extra)
	}()
	spec := ""
	if presetSpec != nil {
		spec = presetSpec(p.Name)
	}
	fmt.Fprintf(progress, "acp-sandbox: installing %s's ACP adapter (%s) in the sandbox, once per workspace; this can take minutes under TCG\n", p.Title, p.Spec())
	t0 := time.Now()
	code, err := c.Exec(ctx, control.Exec{Argv: []string{"sh", "-c", p.InstallScript(sandbox.GuestHome, spec)}},
		sandbox.ExecIO{Stdout: progress, Stderr: progress})
	if err != nil {
		return "", fmt.Errorf("installing %s: %w", p.Spec(), err)
	}
	if code != 0 {
		return "", fmt.Errorf("installing %s in the sandbox failed (exit %d, npm's output above); if npm could not reach the registry, `acp-sandbox why` says what was blocked", p.Spec(), code)
	}
	took := time.Since(t0).Round(time.Second)
	fmt.Fprintf(progress, "acp-sandbox: %s installed in %v\n", p.Spec(), took)
	return fmt.Sprintf("installed %s in this sandbox (%v); next starts reuse it.", p.Spec(), took), nil
}
