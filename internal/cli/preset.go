package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/internal/presets"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// usePreset makes `-- claude` (codex, gemini) mean that agent's ACP
// adapter: its model API joins the command's network rules, and the
// sandbox start installs it (start calls installPreset). Any other
// command is left as it is.
func (g *globals) usePreset(argv []string) []string {
	p, ok := presets.Lookup(argv[0])
	if !ok {
		return argv
	}
	g.preset = &p
	g.allow = append(g.allow, p.Allow...)
	return p.Argv(sandbox.GuestHome, argv[1:])
}

// agentHosts are the hosts the workspace's configuration gives the agent
// argv runs ([agents.NAME] allow, built-in ones included: a preset's login
// hosts), which apply only while that agent runs. A configuration that
// does not load gives none; the start reports its problems.
func (g *globals) agentHosts(argv []string) []string {
	sb, err := g.workspaceSandbox()
	if err != nil {
		return nil
	}
	cfg, err := sandbox.LoadConfig(sb)
	if err != nil {
		return nil
	}
	name := cfg.AgentFor(argv)
	if name == "" {
		return nil
	}
	return cfg.Agents[name].Allow
}

// presetSpec overrides a preset's npm spec; only test builds set it.
var presetSpec func(name string) string

// installPreset installs p in the sandbox's home unless it is there. npm
// needs the registry: the sandbox's rules allow it for the install only.
func installPreset(ctx context.Context, c *sandbox.Client, p presets.Preset, progress io.Writer) error {
	check := control.Exec{Argv: []string{"test", "-x", p.Command(sandbox.GuestHome)}}
	if code, err := c.Exec(ctx, check, sandbox.ExecIO{}); err != nil {
		return err
	} else if code == 0 {
		return nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	during := st.Extra
	during.Allow = append(slices.Clone(during.Allow), presets.Registry...)
	if err := c.SetNetwork(ctx, during); err != nil {
		return err
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
		return fmt.Errorf("installing %s: %w", p.Spec(), err)
	}
	if code != 0 {
		return fmt.Errorf("installing %s in the sandbox failed (exit %d, npm's output above); if npm could not reach the registry, `acp-sandbox why` says what was blocked", p.Spec(), code)
	}
	fmt.Fprintf(progress, "acp-sandbox: %s installed in %v\n", p.Spec(), time.Since(t0).Round(time.Second))
	return nil
}
