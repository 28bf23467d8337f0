package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Value is one effective value with its origin, for `policy show --json`.
type Value struct {
	Path   string `json:"path"`   // as in Config.Origins: "network.allow[3]"
	Value  any    `json:"value"`  // string, int, bool, []string or map[string]any
	TOML   string `json:"toml"`   // the value spelt as TOML: "\"2GiB\""
	Origin string `json:"origin"` // Origin.String()
}

// Values lists every effective value in file order: sandbox, network,
// mounts, credentials, env, agents. It holds no secret (a Config has none).
func (c *Config) Values() []Value {
	var out []Value
	add := func(path string, v any) {
		jv := v
		if t, ok := v.([]kv); ok {
			m := map[string]any{}
			for _, e := range t {
				m[e.k] = e.v
			}
			jv = m
		}
		out = append(out, Value{Path: path, Value: jv, TOML: tomlValue(v), Origin: c.Origin(path).String()})
	}
	add("sandbox.cpus", c.Sandbox.CPUs)
	add("sandbox.memory", formatSize(c.Sandbox.MemoryBytes))
	add("sandbox.idle_timeout", formatIdle(c.Sandbox.IdleTimeout))
	add("sandbox.image", c.Sandbox.Image)
	add("network.preset", c.Network.Preset)
	for i, p := range c.Network.Allow {
		add(fmt.Sprintf("network.allow[%d]", i), p)
	}
	for i, p := range c.Network.Deny {
		add(fmt.Sprintf("network.deny[%d]", i), p)
	}
	for i, p := range c.Network.HostPorts {
		add(fmt.Sprintf("network.host_ports[%d]", i), p)
	}
	for i, p := range c.Network.Bypass {
		add(fmt.Sprintf("network.bypass[%d]", i), p)
	}
	for i, r := range c.Network.HTTP {
		add(fmt.Sprintf("network.http[%d]", i), r.table())
	}
	for i, m := range c.Mounts {
		add(fmt.Sprintf("mounts[%d]", i), m.table())
	}
	for i, cr := range c.Credentials {
		add(fmt.Sprintf("credentials[%d]", i), cr.table())
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		add("env."+quoteKey(k), c.Env[k])
	}
	for _, name := range slices.Sorted(maps.Keys(c.Agents)) {
		a := c.Agents[name]
		key := "agents." + quoteKey(name)
		if a.Command != nil {
			add(key+".command", a.Command)
		}
		for i, p := range a.Allow {
			add(fmt.Sprintf("%s.allow[%d]", key, i), p)
		}
		for i, cr := range a.Credentials {
			add(fmt.Sprintf("%s.credentials[%d]", key, i), cr.table())
		}
	}
	return out
}

// Explain spells the effective configuration as TOML, each value followed
// by a comment saying where it came from.
func (c *Config) Explain() string {
	var b strings.Builder
	line := func(text, origin string) {
		if t, ok := strings.CutPrefix(text, "\n"); ok {
			b.WriteString("\n")
			text = t
		}
		if origin == "" {
			b.WriteString(text + "\n")
			return
		}
		fmt.Fprintf(&b, "%-44s # %s\n", text, origin)
	}
	o := func(path string) string { return c.Origin(path).String() }
	list := func(key, path string, n int, item func(i int) string) {
		if n == 0 {
			line(key+" = []", "")
			return
		}
		line(key+" = [", "")
		for i := range n {
			line("  "+item(i)+",", o(fmt.Sprintf("%s[%d]", path, i)))
		}
		line("]", "")
	}

	line("[sandbox]", "")
	line("cpus = "+strconv.Itoa(c.Sandbox.CPUs), o("sandbox.cpus"))
	line("memory = "+strconv.Quote(formatSize(c.Sandbox.MemoryBytes)), o("sandbox.memory"))
	line("idle_timeout = "+strconv.Quote(formatIdle(c.Sandbox.IdleTimeout)), o("sandbox.idle_timeout"))
	line("image = "+strconv.Quote(c.Sandbox.Image), o("sandbox.image"))

	line("\n[network]", "")
	line("preset = "+strconv.Quote(c.Network.Preset), o("network.preset"))
	list("allow", "network.allow", len(c.Network.Allow), func(i int) string { return strconv.Quote(c.Network.Allow[i]) })
	list("deny", "network.deny", len(c.Network.Deny), func(i int) string { return strconv.Quote(c.Network.Deny[i]) })
	list("host_ports", "network.host_ports", len(c.Network.HostPorts), func(i int) string { return strconv.Itoa(c.Network.HostPorts[i]) })
	list("bypass", "network.bypass", len(c.Network.Bypass), func(i int) string { return strconv.Quote(c.Network.Bypass[i]) })
	for i, r := range c.Network.HTTP {
		line("\n[[network.http]]", o(fmt.Sprintf("network.http[%d]", i)))
		writeTable(&b, r.table())
	}
	for i, m := range c.Mounts {
		line("\n[[mounts]]", o(fmt.Sprintf("mounts[%d]", i)))
		writeTable(&b, m.table())
	}
	for i, cr := range c.Credentials {
		line("\n[[credentials]]", o(fmt.Sprintf("credentials[%d]", i)))
		writeTable(&b, cr.table())
	}
	if len(c.Env) > 0 {
		line("\n[env]", "")
		for _, k := range slices.Sorted(maps.Keys(c.Env)) {
			line(quoteKey(k)+" = "+strconv.Quote(c.Env[k]), o("env."+quoteKey(k)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Agents)) {
		a := c.Agents[name]
		key := "agents." + quoteKey(name)
		line("\n["+key+"]", o(key))
		if a.Command != nil {
			line("command = "+tomlValue(a.Command), o(key+".command"))
		}
		list("allow", key+".allow", len(a.Allow), func(i int) string { return strconv.Quote(a.Allow[i]) })
		for i, cr := range a.Credentials {
			line("[["+key+".credentials]]", o(fmt.Sprintf("%s.credentials[%d]", key, i)))
			writeTable(&b, cr.table())
		}
	}
	return b.String()
}

// kv is an ordered table for display.
type kv struct {
	k string
	v any
}

func writeTable(b *strings.Builder, t []kv) {
	for _, e := range t {
		fmt.Fprintf(b, "%s = %s\n", e.k, tomlValue(e.v))
	}
}

func (r HTTPRule) table() []kv {
	t := []kv{{"host", r.Host}}
	if r.Methods != nil {
		t = append(t, kv{"methods", r.Methods})
	}
	if r.Paths != nil {
		t = append(t, kv{"paths", r.Paths})
	}
	return t
}

func (m Mount) table() []kv {
	return []kv{{"host", m.Host}, {"guest", m.Guest}, {"read_only", !m.Writable}}
}

func (c Credential) table() []kv {
	t := []kv{{"host", c.Host}, {"header", c.Header}, {"format", c.Format}}
	switch {
	case c.FromEnv != "":
		t = append(t, kv{"from_env", c.FromEnv})
	case c.FromFile != "":
		t = append(t, kv{"from_file", c.FromFile})
	case c.FromCommand != nil:
		t = append(t, kv{"from_command", c.FromCommand})
	case c.FromACP:
		t = append(t, kv{"from_acp", true})
	}
	if c.Env != "" {
		t = append(t, kv{"env", c.Env})
	}
	if c.Paths != nil {
		t = append(t, kv{"paths", c.Paths})
	}
	return t
}

// tomlValue spells a display value as TOML.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []kv:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = e.k + " = " + tomlValue(e.v)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return fmt.Sprint(v)
}
