package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Config is the effective configuration of one sandbox: built-in defaults,
// then the user's config.toml, then the workspace's approved sandbox.toml,
// then what the user allowed from the editor. It is what a sandbox runs
// with; Load returns it whole or not at all.
type Config struct {
	Sandbox     Sandbox
	Mounts      []Mount // extra host directories; nil: none
	Network     Network
	Credentials []Credential // nil: none
	// Env is set in the VM for the agent and every command. nil: nothing
	// beyond what acp-sandbox sets itself.
	Env map[string]string
	// Agents are the agent presets by name (built-in ones included). An
	// agent's Allow and Credentials apply only when that agent runs: see
	// [Config.ForAgent].
	Agents map[string]Agent

	// Origins says where each effective value came from, by path:
	// "sandbox.cpus", "network.preset", "network.allow[3]",
	// "network.host_ports[0]", "network.http[0]", "mounts[1]",
	// "credentials[0]", "env.NODE_ENV", "agents.claude". A path missing from
	// the map is a built-in default.
	Origins map[string]Origin

	// PolicyStatus is the state of the workspace's sandbox.toml: approved,
	// pending approval (then the last approved copy applies, or nothing),
	// or none.
	PolicyStatus PolicyStatus
}

// Sandbox is the [sandbox] table: the VM's shape.
type Sandbox struct {
	// CPUs is the number of virtual CPUs, 1 to 64. Zero is never the
	// effective value: the default is 2.
	CPUs int
	// MemoryBytes is the VM's memory, a whole number of MiB, at least 256
	// MiB. Zero is never the effective value: the default is 2 GiB.
	MemoryBytes int64
	// IdleTimeout stops the VM after this long without clients. Zero means
	// never; the default is 30 minutes.
	IdleTimeout time.Duration
	// Image is the guest's root filesystem. Only "host" (a read-only view
	// of the host's /usr) exists so far; "" is never the effective value.
	Image string
}

// MemoryMiB is MemoryBytes in MiB, the unit QEMU's -m takes.
func (s Sandbox) MemoryMiB() int { return int(s.MemoryBytes >> 20) }

// Mount is one [[mounts]] entry: a host directory shown in the VM.
type Mount struct {
	// Host is the absolute host path (a leading ~/ already expanded); never
	// empty.
	Host string
	// Guest is the absolute path in the VM; never empty: it defaults to
	// Host, so paths in logs and errors mean the same inside and out.
	Guest string
	// Writable lets the VM write. The zero value, false, is read-only
	// (read_only = true in TOML, the default).
	Writable bool
}

// Network is the [network] table: what the VM may reach.
type Network struct {
	// Preset is "locked", "balanced" or "open", never empty (the default
	// is DefaultPreset); its hosts are already in Allow (with origin
	// "preset NAME").
	Preset string
	// Allow and Deny are host patterns in the syntax of
	// netstack/policy.ParsePattern, canonical and without duplicates: the
	// preset's, every layer's and the user's "allow always" answers. Deny
	// beats allow. nil Allow: nothing is reachable.
	Allow, Deny []string
	// HostPorts are ports of the host reachable from the VM as
	// host.acp-sandbox.internal:PORT. nil: none.
	HostPorts []int
	// HTTP are per-host request rules, enforced by intercepting TLS to
	// the hosts they name. nil: none.
	HTTP []HTTPRule
	// Bypass are host patterns never intercepted, even with a credential
	// or HTTP rule: clients that pin certificates. Their TLS passes
	// untouched, so no credential is injected there. nil: none.
	Bypass []string
}

// HTTPRule is one [[network.http]] entry: for a host, which requests may
// pass.
type HTTPRule struct {
	// Host is a host pattern (netstack/policy syntax, canonical); never
	// empty.
	Host string
	// Methods are upper-case HTTP methods. nil: any method.
	Methods []string
	// Paths are path globs: "*" matches one segment, "**" any number of
	// segments (zero included). nil: any path. netstack/mitm matches them.
	Paths []string
}

// Credential is one [[credentials]] entry: a secret the host adds to
// requests to a host, so that the VM never holds it. It says where the
// secret comes from, never what it is.
type Credential struct {
	// Host is a host pattern (netstack/policy syntax, canonical) the
	// secret is sent to; never empty.
	Host string
	// Header is the request header that carries it ("x-api-key",
	// "Authorization"), as written; never empty.
	Header string
	// Format is the header value with "{}" where the secret goes
	// ("Bearer {}"). Never "": the default is "{}".
	Format string
	// Exactly one source is set; the others are zero.
	FromEnv     string   // a host environment variable
	FromFile    string   // an absolute host file (~/ expanded), outside the workspace
	FromCommand []string // a host program's argv (user config only); its stdout is the secret
	FromACP     bool     // the key the editor passes in ACP authenticate
	// Env names the variable the VM sees holding a placeholder instead of
	// the secret ("ANTHROPIC_API_KEY"). "": the VM gets no variable.
	Env string
	// Paths limits where the secret goes: only requests whose path one of
	// these globs matches (as [[network.http]] paths) get it; others go
	// out with the placeholder. nil: every path.
	Paths []string
}

// Source spells where the secret comes from, for `policy show` and logs:
// `env ANTHROPIC_API_KEY`, `file /run/secrets/x`, `command vault read …`,
// `ACP authenticate`. It never holds the secret.
func (c Credential) Source() string {
	switch {
	case c.FromEnv != "":
		return "env " + c.FromEnv
	case c.FromFile != "":
		return "file " + c.FromFile
	case c.FromCommand != nil:
		return fmt.Sprintf("command %q", c.FromCommand)
	case c.FromACP:
		return "ACP authenticate"
	}
	return "none"
}

// Agent is one [agents.NAME] preset: `acp-sandbox -- NAME ARGS…` runs its
// Command with ARGS after it, and its hosts ([Agent.Hosts]) are reachable
// while it runs (also when a command line starts with Command:
// [Config.AgentFor]).
type Agent struct {
	// Command is the agent's argv in the VM. nil: the preset names no
	// command (it only adds hosts or credentials for an agent run by hand).
	Command []string
	// Allow are extra host patterns while this agent runs (see
	// [Agent.Hosts]). nil: none.
	Allow []string
	// Credentials apply while this agent runs, after the top-level ones.
	// nil: none.
	Credentials []Credential
}

// Hosts are the host patterns the agent needs reachable while it runs:
// Allow (its login hosts), then the Host of each credential (its model API:
// a secret for a host the agent cannot reach is of no use), without
// duplicates. A credential's host carries no port, so it means 443 and 80
// like any pattern without one.
func (a Agent) Hosts() []string {
	var out []string
	for _, p := range a.Allow {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, c := range a.Credentials {
		if !slices.Contains(out, c.Host) {
			out = append(out, c.Host)
		}
	}
	return out
}

func (a Agent) clone() Agent {
	a.Command = slices.Clone(a.Command)
	a.Allow = slices.Clone(a.Allow)
	a.Credentials = slices.Clone(a.Credentials)
	return a
}

// Origin is where an effective value was set.
type Origin struct {
	// File and Pos locate the value in a file. File "": not from a file.
	File string
	Pos
	// Label says where a value not from a file came from: "default",
	// "preset balanced", "approved in editor", "agent claude". With a File
	// it qualifies it ("preset balanced" set at FILE:LINE:COL).
	Label string
}

// String spells the origin for `policy show`: "sandbox.toml:4:1",
// "preset locked (sandbox.toml:12:10)", "default".
func (o Origin) String() string {
	var at string
	if o.File != "" {
		at = o.File
		if o.Line > 0 {
			at = fmt.Sprintf("%s:%d:%d", o.File, o.Line, o.Col)
		}
	}
	switch {
	case at == "" && o.Label == "":
		return "default"
	case at == "":
		return o.Label
	case o.Label == "":
		return at
	}
	return o.Label + " (" + at + ")"
}

var defaultOrigin = Origin{Label: "default"}

// Origin returns where the value at path came from ("default" when the
// path is not recorded).
func (c *Config) Origin(path string) Origin {
	if o, ok := c.Origins[path]; ok {
		return o
	}
	return defaultOrigin
}

// ForAgent returns a copy of c for running the named agent: its hosts
// ([Agent.Hosts]) join Network.Allow and its Credentials follow the
// top-level ones, with origins "agent NAME". An agent credential for a host and
// header (or a placeholder variable) a top-level credential already covers
// is left out: what the files say beats what a preset assumes. An unknown
// name is an error that lists the known ones.
func (c *Config) ForAgent(name string) (*Config, error) {
	a, ok := c.Agents[name]
	if !ok {
		return nil, fmt.Errorf("config: no agent preset %q; known: %q (define one under [agents.%s] in sandbox.toml)", name, slices.Sorted(maps.Keys(c.Agents)), name)
	}
	out := c.clone()
	for i, p := range a.Allow {
		o := c.Origin(fmt.Sprintf("agents.%s.allow[%d]", quoteKey(name), i))
		o.Label = joinLabel("agent "+name, o.Label)
		out.addAllow(p, o)
	}
	for i, cr := range a.Credentials {
		o := c.Origin(fmt.Sprintf("agents.%s.credentials[%d]", quoteKey(name), i))
		o.Label = joinLabel("agent "+name, o.Label)
		out.addAllow(cr.Host, o)
	}
	for i, cr := range a.Credentials {
		if slices.ContainsFunc(c.Credentials, func(x Credential) bool {
			return x.Host == cr.Host && strings.EqualFold(x.Header, cr.Header) || cr.Env != "" && x.Env == cr.Env
		}) {
			continue
		}
		o := c.Origin(fmt.Sprintf("agents.%s.credentials[%d]", quoteKey(name), i))
		o.Label = joinLabel("agent "+name, o.Label)
		out.Origins[fmt.Sprintf("credentials[%d]", len(out.Credentials))] = o
		out.Credentials = append(out.Credentials, cr)
	}
	return out, nil
}

// AgentFor names the agent preset whose Command starts argv (same program
// name, then the preset's arguments), or "" when none does. The longest
// matching Command wins.
func (c *Config) AgentFor(argv []string) string {
	best, bestLen := "", 0
	for _, name := range slices.Sorted(maps.Keys(c.Agents)) {
		cmd := c.Agents[name].Command
		if len(cmd) == 0 || len(cmd) > len(argv) || len(cmd) <= bestLen {
			continue
		}
		if baseName(cmd[0]) != baseName(argv[0]) || !slices.Equal(cmd[1:], argv[1:len(cmd)]) {
			continue
		}
		best, bestLen = name, len(cmd)
	}
	return best
}

func joinLabel(a, b string) string {
	if b == "" || b == "default" || b == "built in" {
		return a
	}
	return a + ", " + b
}

func (c *Config) clone() *Config {
	out := *c
	out.Mounts = slices.Clone(c.Mounts)
	out.Network.Allow = slices.Clone(c.Network.Allow)
	out.Network.Deny = slices.Clone(c.Network.Deny)
	out.Network.Bypass = slices.Clone(c.Network.Bypass)
	out.Network.HostPorts = slices.Clone(c.Network.HostPorts)
	out.Network.HTTP = slices.Clone(c.Network.HTTP)
	out.Credentials = slices.Clone(c.Credentials)
	out.Env = maps.Clone(c.Env)
	out.Agents = maps.Clone(c.Agents)
	out.Origins = maps.Clone(c.Origins)
	if out.Origins == nil {
		out.Origins = map[string]Origin{}
	}
	return &out
}
