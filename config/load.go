package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// FileName is the workspace policy file, at the workspace's root.
const FileName = "sandbox.toml"

// WorkspaceFile is the path of a workspace's sandbox.toml.
func WorkspaceFile(workspace string) string { return filepath.Join(workspace, FileName) }

// DefaultUserConfigDir is $XDG_CONFIG_HOME/acp-sandbox, else
// ~/.config/acp-sandbox.
func DefaultUserConfigDir() (string, error) {
	if v := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(v) {
		return filepath.Join(v, "acp-sandbox"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("config: cannot find the home directory: %w", err)
	}
	return filepath.Join(home, ".config", "acp-sandbox"), nil
}

// LoadOptions says where the layers are. Every field's zero value is
// documented; only StateDir is required, and only with Workspace.
type LoadOptions struct {
	// Workspace is the workspace directory, resolved (as
	// sandbox.Sandbox.Workspace). "": no workspace layer.
	Workspace string
	// UserConfigDir holds the user's config.toml. "": DefaultUserConfigDir.
	UserConfigDir string
	// StateDir is the sandbox's state dir (sandbox.Sandbox.StateDir), where
	// the approvals live. Required when Workspace is set: without it no
	// workspace file could be trusted.
	StateDir string
	// Home is the user's home, for "~/" paths and the mount checks. "":
	// os.UserHomeDir.
	Home string
}

func (o *LoadOptions) resolve() error {
	if o.UserConfigDir == "" {
		d, err := DefaultUserConfigDir()
		if err != nil {
			return err
		}
		o.UserConfigDir = d
	}
	if o.Home == "" {
		o.Home, _ = os.UserHomeDir() // "" refuses ~ paths with a message
	}
	if o.Workspace != "" && o.StateDir == "" {
		return errors.New("config: LoadOptions.StateDir is required with Workspace (the approvals live there)")
	}
	return nil
}

// resolveForCheck is resolve without the StateDir requirement: checking
// a file trusts nothing.
func (o *LoadOptions) resolveForCheck() error {
	ws := o.Workspace
	o.Workspace = ""
	err := o.resolve()
	o.Workspace = ws
	return err
}

// UserFile is the user's config.toml.
func (o LoadOptions) UserFile() string { return filepath.Join(o.UserConfigDir, "config.toml") }

func (o LoadOptions) env(kind layerKind) *parseEnv {
	e := &parseEnv{kind: kind, home: o.Home, workspace: o.Workspace, userFile: o.UserFile()}
	e.protected = append(e.protected, o.UserConfigDir)
	if o.StateDir != "" {
		e.protected = append(e.protected, filepath.Dir(o.StateDir))
	}
	return e
}

// Load returns the effective configuration: built-in defaults, then the
// user's config.toml, then the workspace's sandbox.toml as last approved
// (see Approvals), then the user's "allow always" answers. Problems in any
// file that applies are returned together as Problems and nothing is
// returned with them: a sandbox must refuse to start rather than run with a
// policy the user did not write. A workspace file pending approval does not
// apply; its own problems are in PolicyStatus.Problems.
func Load(opts LoadOptions) (*Config, error) {
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	var (
		layers []*layer
		probs  Problems
	)
	userFile := opts.UserFile()
	if data, exists, err := readUserFile(userFile); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	} else if exists {
		l, p := parseLayer(userFile, data, opts.env(userLayer))
		probs = append(probs, p...)
		layers = append(layers, l)
	}

	var st PolicyStatus
	var allowed []AllowEntry
	if opts.Workspace != "" {
		ap := OpenApprovals(opts.StateDir)
		var err error
		if st, err = ap.Status(WorkspaceFile(opts.Workspace)); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if st.State == PolicyPending && st.Exists {
			_, p := parseLayer(st.File, st.content, opts.env(workspaceLayer))
			st.Problems = p.err()
		}
		if applied := st.Applied(); applied != nil {
			name := st.File
			if st.State != PolicyApproved {
				name = ap.copyPath()
			}
			l, p := parseLayer(name, applied, opts.env(workspaceLayer))
			if p != nil && st.State != PolicyApproved {
				// Approved by an older acp-sandbox, or the host changed
				// (a mount's target became a symlink to a credential dir).
				probs = append(probs, Problem{File: name, Msg: fmt.Sprintf(
					"this approved copy of %s no longer loads; fix the workspace file, then run `acp-sandbox policy approve`", st.File)})
			}
			probs = append(probs, p...)
			layers = append(layers, l)
		}
		if allowed, err = ap.AllowList(); err != nil {
			return nil, err
		}
	}
	if len(probs) > 0 {
		return nil, probs.err()
	}
	cfg, p := merge(layers, allowed)
	if p != nil {
		return nil, p.err()
	}
	cfg.PolicyStatus = st
	return cfg, nil
}

// Check reports every problem of one file, read as the layer it would be:
// the user's config.toml when file is opts' UserFile, else a workspace
// sandbox.toml. nil when the file is fine. It needs no StateDir.
func Check(file string, content []byte, opts LoadOptions) error {
	if err := opts.resolveForCheck(); err != nil {
		return err
	}
	kind := workspaceLayer
	if filepath.Clean(file) == filepath.Clean(opts.UserFile()) {
		kind = userLayer
	}
	l, p := parseLayer(file, content, opts.env(kind))
	if p != nil {
		return p.err()
	}
	_, p = merge([]*layer{l}, nil)
	return p.err()
}

// CheckFile reads file (as Load would: no symlink for a workspace file) and
// checks it.
func CheckFile(file string, opts LoadOptions) error {
	if err := opts.resolveForCheck(); err != nil {
		return err
	}
	read := readWorkspaceFile
	if filepath.Clean(file) == filepath.Clean(opts.UserFile()) {
		read = readUserFile
	}
	data, exists, err := read(file)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%s does not exist", file)
	}
	return Check(file, data, opts)
}

// merge applies the layers over the defaults. Problems found only across
// layers (a guest path mounted twice, a variable set twice) are reported at
// the later value.
func merge(layers []*layer, allowed []AllowEntry) (*Config, Problems) {
	c := &Config{
		Sandbox: Sandbox{CPUs: DefaultCPUs, MemoryBytes: DefaultMemoryBytes, IdleTimeout: DefaultIdleTimeout, Image: DefaultImage},
		Origins: map[string]Origin{},
	}
	var probs Problems
	problem := func(at Origin, format string, a ...any) {
		probs = append(probs, Problem{File: at.File, Pos: at.Pos, Msg: fmt.Sprintf(format, a...)})
	}

	preset, presetAt := DefaultPreset, Origin{}
	for _, l := range layers {
		set(&c.Sandbox.CPUs, l.cpus, c.Origins, "sandbox.cpus")
		set(&c.Sandbox.MemoryBytes, l.memory, c.Origins, "sandbox.memory")
		set(&c.Sandbox.IdleTimeout, l.idle, c.Origins, "sandbox.idle_timeout")
		set(&c.Sandbox.Image, l.image, c.Origins, "sandbox.image")
		set(&preset, l.preset, c.Origins, "network.preset")
		if l.preset.set {
			presetAt = l.preset.at
		}
	}
	c.Network.Preset = preset
	for _, p := range presets[preset] {
		at := presetAt
		at.Label = "preset " + preset
		c.addAllow(p, at)
	}
	for _, l := range layers {
		for _, a := range l.allow {
			c.addAllow(a.v, a.at)
		}
		for _, d := range l.deny {
			c.addList(&c.Network.Deny, "network.deny", d.v, d.at)
		}
		for _, b := range l.bypass {
			c.addList(&c.Network.Bypass, "network.bypass", b.v, b.at)
		}
		for _, hp := range l.hostPorts {
			if !slices.Contains(c.Network.HostPorts, hp.v) {
				c.Origins[fmt.Sprintf("network.host_ports[%d]", len(c.Network.HostPorts))] = hp.at
				c.Network.HostPorts = append(c.Network.HostPorts, hp.v)
			}
		}
		for _, r := range l.http {
			c.Origins[fmt.Sprintf("network.http[%d]", len(c.Network.HTTP))] = r.at
			c.Network.HTTP = append(c.Network.HTTP, r.v)
		}
		for _, m := range l.mounts {
			if i := slices.IndexFunc(c.Mounts, func(x Mount) bool { return x.Guest == m.v.Guest }); i >= 0 {
				problem(m.at, "%s is already mounted in the VM by the mount at %s; give this one another guest path", m.v.Guest, c.Origin(fmt.Sprintf("mounts[%d]", i)))
				continue
			}
			c.Origins[fmt.Sprintf("mounts[%d]", len(c.Mounts))] = m.at
			c.Mounts = append(c.Mounts, m.v)
		}
		for _, cr := range l.creds {
			c.Origins[fmt.Sprintf("credentials[%d]", len(c.Credentials))] = cr.at
			c.Credentials = append(c.Credentials, cr.v)
		}
		for _, e := range l.env {
			if c.Env == nil {
				c.Env = map[string]string{}
			}
			c.Env[e.name] = e.value
			c.Origins["env."+quoteKey(e.name)] = e.at
		}
	}
	for _, e := range allowed {
		c.addAllow(e.Pattern, Origin{Label: "approved in editor"})
	}

	// A credential's placeholder variable must not collide with [env] or
	// another credential's: the VM would see only one of them.
	seen := map[string]Origin{}
	for name := range c.Env {
		seen[name] = c.Origin("env." + quoteKey(name))
	}
	for i, cr := range c.Credentials {
		if cr.Env == "" {
			continue
		}
		at := c.Origin(fmt.Sprintf("credentials[%d]", i))
		if prev, dup := seen[cr.Env]; dup {
			problem(at, "credential env %s is also set at %s; the VM can see only one of them: rename one", cr.Env, prev)
			continue
		}
		seen[cr.Env] = at
	}

	c.mergeAgents(layers)
	if len(probs) > 0 {
		return nil, probs
	}
	return c, nil
}

// set overrides a scalar when the layer sets it.
func set[T any](dst *T, o opt[T], origins map[string]Origin, path string) {
	if o.set {
		*dst = o.v
		origins[path] = o.at
	}
}

// addAllow appends a pattern to Network.Allow unless it is there already
// (the first origin is kept).
func (c *Config) addAllow(p string, at Origin) { c.addList(&c.Network.Allow, "network.allow", p, at) }

func (c *Config) addList(list *[]string, path, p string, at Origin) {
	if slices.Contains(*list, p) {
		return
	}
	if at == (Origin{}) {
		at = defaultOrigin
	}
	c.Origins[fmt.Sprintf("%s[%d]", path, len(*list))] = at
	*list = append(*list, p)
}

// mergeAgents lays the files' [agents.NAME] over the built-in presets:
// command overrides, allow and credentials append.
func (c *Config) mergeAgents(layers []*layer) {
	c.Agents = map[string]Agent{}
	builtIn := Origin{Label: "built in"}
	for name, a := range BuiltinAgents() {
		c.Agents[name] = a
		key := "agents." + name
		c.Origins[key] = builtIn
		c.Origins[key+".command"] = builtIn
		for i := range a.Allow {
			c.Origins[fmt.Sprintf("%s.allow[%d]", key, i)] = builtIn
		}
		for i := range a.Credentials {
			c.Origins[fmt.Sprintf("%s.credentials[%d]", key, i)] = builtIn
		}
	}
	for _, l := range layers {
		for _, al := range l.agents {
			key := "agents." + al.name
			a, ok := c.Agents[al.name]
			if !ok {
				c.Origins[key] = al.at
			}
			if al.command.set {
				a.Command = al.command.v
				c.Origins[key+".command"] = al.command.at
			}
			for _, p := range al.allow {
				if !slices.Contains(a.Allow, p.v) {
					c.Origins[fmt.Sprintf("%s.allow[%d]", key, len(a.Allow))] = p.at
					a.Allow = append(a.Allow, p.v)
				}
			}
			for _, cr := range al.creds {
				c.Origins[fmt.Sprintf("%s.credentials[%d]", key, len(a.Credentials))] = cr.at
				a.Credentials = append(a.Credentials, cr.v)
			}
			c.Agents[al.name] = a
		}
	}
}
