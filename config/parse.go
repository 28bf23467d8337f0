package config

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// layerKind says whose file a layer is; a workspace file (agent-writable,
// approved by the user) may ask for less than the user's own config.
type layerKind int

const (
	userLayer layerKind = iota
	workspaceLayer
)

// parseEnv is what checks need to know beyond the file.
type parseEnv struct {
	kind      layerKind
	home      string   // the user's home; "" unknown (then ~ paths are refused)
	workspace string   // the workspace's real path; "" unknown
	protected []string // acp-sandbox's state root and user config dir
	userFile  string   // the user config file, named in messages
	// evalSymlinks resolves a path; tests replace it. nil: filepath.EvalSymlinks.
	evalSymlinksFn func(string) (string, error)
}

func (e *parseEnv) evalSymlinks(p string) (string, error) {
	if e.evalSymlinksFn != nil {
		return e.evalSymlinksFn(p)
	}
	return filepath.EvalSymlinks(p)
}

// opt is a scalar a layer may set.
type opt[T any] struct {
	v   T
	at  Origin
	set bool
}

func (o *opt[T]) put(v T, at Origin) { *o = opt[T]{v: v, at: at, set: true} }

// item is one element of a list a layer adds to.
type item[T any] struct {
	v  T
	at Origin
}

// layer is one file's settings, checked, with where each was written.
type layer struct {
	cpus      opt[int]
	memory    opt[int64]
	idle      opt[time.Duration]
	image     opt[string]
	preset    opt[string]
	allow     []item[string]
	deny      []item[string]
	bypass    []item[string]
	hostPorts []item[int]
	http      []item[HTTPRule]
	mounts    []item[Mount]
	creds     []item[Credential]
	env       []envItem
	agents    []agentLayer
}

type envItem struct {
	name, value string
	at          Origin
}

type agentLayer struct {
	name    string
	at      Origin
	command opt[[]string]
	allow   []item[string]
	creds   []item[Credential]
}

// parseLayer checks one file completely. It returns the layer only when
// there is no problem at all: a bad file never half-applies.
func parseLayer(file string, src []byte, env *parseEnv) (*layer, Problems) {
	tree, d, probs := decodeTree(file, string(src))
	if probs != nil {
		return nil, probs
	}
	l := &layer{}
	top := d.table(nil, tree)
	if t, ok := top.sub("sandbox", "[sandbox]"); ok {
		l.parseSandbox(t)
	}
	for _, t := range top.tables("mounts", "[[mounts]]") {
		l.parseMount(t, env)
	}
	if t, ok := top.sub("network", "[network]"); ok {
		l.parseNetwork(t)
	}
	for _, t := range top.tables("credentials", "[[credentials]]") {
		if c, ok := parseCredential(t, env); ok {
			l.creds = append(l.creds, item[Credential]{c, d.origin(t.p)})
		}
	}
	if t, ok := top.sub("env", "[env]"); ok {
		l.parseEnv(t)
	}
	if t, ok := top.sub("agents", "[agents.NAME]"); ok {
		l.parseAgents(t, env)
	}
	top.done()
	if len(d.probs) > 0 {
		return nil, d.probs.sorted()
	}
	return l, nil
}

func (l *layer) parseSandbox(t *table) {
	d := t.d
	if n, p, ok := t.integer("cpus", "an integer such as 2"); ok {
		if n < 1 || n > maxCPUs {
			d.bad(p, "%s = %d is out of range: use 1 to %d", p, n, maxCPUs)
		} else {
			l.cpus.put(int(n), d.origin(p))
		}
	}
	if s, p, ok := t.str("memory", `a size such as "2GiB"`); ok {
		n, msg := parseSize(s)
		if msg == "" {
			msg = checkMemory(n)
		}
		if msg != "" {
			d.bad(p, "%s %s", p, msg)
		} else {
			l.memory.put(n, d.origin(p))
		}
	}
	if s, p, ok := t.str("idle_timeout", `a duration such as "30m" ("0": never)`); ok {
		if v, msg := parseIdle(s); msg != "" {
			d.bad(p, "%s %s", p, msg)
		} else {
			l.idle.put(v, d.origin(p))
		}
	}
	if s, p, ok := t.str("image", `"host"`); ok {
		if s != "host" {
			d.bad(p, "%s %q: OCI images are not supported yet; use \"host\" (a read-only view of the host's /usr) or leave image out", p, s)
		} else {
			l.image.put(s, d.origin(p))
		}
	}
	t.done()
}

func (l *layer) parseMount(t *table, env *parseEnv) {
	d := t.d
	var m Mount
	ok := true
	host, hp, hasHost := t.str("host", `a path such as "~/data"`)
	if !hasHost {
		if !t.present("host") {
			d.problemAt(d.at.keyAt(t.p), "%s needs host = \"/path/on/host\"", t.p)
		}
		ok = false
	} else if h, msg := expandHome(host, env.home); msg != "" {
		d.bad(hp, "%s %s", hp, msg)
		ok = false
	} else if why := env.checkMountHost(h); why != "" {
		d.bad(hp, "%s %q: refusing to mount it: %s", hp, host, why)
		ok = false
	} else {
		m.Host = h
	}
	m.Guest = m.Host
	if g, gp, has := t.str("guest", `an absolute path such as "/mnt/data"`); has {
		if msg := env.checkMountGuest(g); msg != "" {
			d.bad(gp, "%s %s", gp, msg)
			ok = false
		} else {
			m.Guest = filepath.Clean(g)
		}
	} else if t.present("guest") {
		ok = false
	} else if ok {
		if msg := env.checkMountGuest(m.Guest); msg != "" {
			d.bad(hp, "%s: %s; set guest = \"/mnt/NAME\" to mount it elsewhere in the VM", hp, msg)
			ok = false
		}
	}
	if ro, _, has := t.boolean("read_only"); has {
		m.Writable = !ro
	} else if t.present("read_only") {
		ok = false
	}
	t.done()
	if ok {
		l.mounts = append(l.mounts, item[Mount]{m, d.origin(t.p)})
	}
}

func (l *layer) parseNetwork(t *table) {
	d := t.d
	if s, p, ok := t.str("preset", `"locked", "balanced" or "open"`); ok {
		if _, known := presets[s]; !known {
			d.bad(p, "%s %q is not a preset: use \"locked\", \"balanced\" or \"open\"%s", p, s, suggest(s, PresetNames))
		} else {
			l.preset.put(s, d.origin(p))
		}
	}
	l.allow = patterns(t, "allow")
	l.deny = patterns(t, "deny")
	for _, b := range patterns(t, "bypass") {
		// Interception goes by the TLS name, on 443 only.
		pat, _ := policy.ParsePattern(b.v)
		switch {
		case pat.Kind() == policy.Addr:
			d.problemAt(b.at.Pos, "network.bypass %q is an address; bypass names hosts (TLS names), such as \"pinned.example.com\"", b.v)
		case pat.Port() != 0 && pat.Port() != 443:
			d.problemAt(b.at.Pos, "network.bypass %q: only port 443 is ever intercepted; drop the port", b.v)
		default:
			l.bypass = append(l.bypass, b)
		}
	}
	t.array("host_ports", "an array of ports such as [11434]", func(p path, v any) {
		n, ok := v.(int64)
		switch {
		case !ok:
			d.bad(p, "%s must be a port number, not %s", p, typeName(v))
		case n < 1 || n > 65535:
			d.bad(p, "%s = %d is not a port: use 1 to 65535", p, n)
		default:
			l.hostPorts = append(l.hostPorts, item[int]{int(n), d.origin(p)})
		}
	})
	for _, rt := range t.tables("http", "[[network.http]]") {
		if r, ok := parseHTTPRule(rt); ok {
			l.http = append(l.http, item[HTTPRule]{r, d.origin(rt.p)})
		}
	}
	t.done()
}

// patterns reads a list of host patterns, each checked by
// netstack/policy, the parser the sandbox enforces with.
func patterns(t *table, key string) []item[string] {
	var out []item[string]
	vals, paths, _, _ := t.strings(key, `an array of host patterns such as ["pypi.org"]`)
	for i, s := range vals {
		pat, err := policy.ParsePattern(s)
		if err != nil {
			t.d.bad(paths[i], "%s %s", paths[i], err)
			continue
		}
		out = append(out, item[string]{pat.String(), t.d.origin(paths[i])})
	}
	return out
}

func parseHTTPRule(t *table) (HTTPRule, bool) {
	d := t.d
	var r HTTPRule
	ok := true
	if s, p, has := t.str("host", `a host pattern such as "api.example.com"`); has {
		pat, err := policy.ParsePattern(s)
		if err != nil {
			d.bad(p, "%s %s", p, err)
			ok = false
		} else {
			r.Host = pat.String()
		}
	} else {
		if !t.present("host") {
			d.problemAt(d.at.keyAt(t.p), "%s needs host = \"api.example.com\"", t.p)
		}
		ok = false
	}
	methods, mpaths, _, _ := t.strings("methods", `an array such as ["GET", "POST"]`)
	for i, m := range methods {
		if msg := checkMethod(m); msg != "" {
			d.bad(mpaths[i], "%s %s", mpaths[i], msg)
			ok = false
		}
	}
	r.Methods = methods
	var pathsOK bool
	r.Paths, pathsOK = pathGlobs(t)
	ok = ok && pathsOK
	t.done()
	return r, ok
}

// pathGlobs reads a table's "paths", each checked; ok is false if one is
// bad (reported).
func pathGlobs(t *table) (globs []string, ok bool) {
	globs, paths, _, _ := t.strings("paths", `an array of path globs such as ["/v1/**"]`)
	ok = true
	for i, g := range globs {
		if msg := checkPathGlob(g); msg != "" {
			t.d.bad(paths[i], "%s %s", paths[i], msg)
			ok = false
		}
	}
	return globs, ok
}

// credentialSources are the keys of which exactly one says where a secret
// comes from.
var credentialSources = []string{"from_env", "from_file", "from_command", "from_acp"}

func parseCredential(t *table, env *parseEnv) (Credential, bool) {
	d := t.d
	c := Credential{Format: "{}"}
	ok := true
	need := func(key, example string) {
		if !t.present(key) {
			d.problemAt(d.at.keyAt(t.p), "%s needs %s = %s", t.p, key, example)
		}
		ok = false
	}
	if s, p, has := t.str("host", `a host pattern such as "api.example.com"`); has {
		if pat, err := policy.ParsePattern(s); err != nil {
			d.bad(p, "%s %s", p, err)
			ok = false
		} else {
			c.Host = pat.String()
		}
	} else {
		need("host", `"api.example.com"`)
	}
	if s, p, has := t.str("header", `a header name such as "x-api-key"`); has {
		if msg := checkHeaderName(s); msg != "" {
			d.bad(p, "%s %s", p, msg)
			ok = false
		} else {
			c.Header = s
		}
	} else {
		need("header", `"Authorization"`)
	}
	if s, p, has := t.str("format", `a string such as "Bearer {}"`); has {
		if msg := checkFormat(s); msg != "" {
			d.bad(p, "%s %s", p, msg)
			ok = false
		} else {
			c.Format = s
		}
	} else if t.present("format") {
		ok = false
	}

	var sources []string
	typeErr := false // a source key of the wrong type (already reported)
	if s, p, has := t.str("from_env", `a variable name such as "API_KEY"`); has {
		sources = append(sources, "from_env")
		if msg := checkEnvName(s); msg != "" {
			d.bad(p, "%s %s", p, msg)
			ok = false
		}
		c.FromEnv = s
	} else {
		typeErr = typeErr || t.present("from_env")
	}
	if s, p, has := t.str("from_file", `a path such as "~/.config/tokens/api"`); has {
		sources = append(sources, "from_file")
		f, msg := expandHome(s, env.home)
		if msg == "" {
			msg = env.checkSecretFile(f)
		}
		if msg != "" {
			d.bad(p, "%s %s", p, msg)
			ok = false
		}
		c.FromFile = f
	} else {
		typeErr = typeErr || t.present("from_file")
	}
	cmdOK := true
	argvPath, hasCmd := t.array("from_command", `an argv array such as ["pass", "show", "api"]`, func(p path, v any) {
		s, isStr := v.(string)
		if !isStr {
			d.bad(p, "%s must be a string, not %s", p, typeName(v))
			cmdOK = false
			return
		}
		c.FromCommand = append(c.FromCommand, s)
	})
	if hasCmd {
		sources = append(sources, "from_command")
		switch {
		case env.kind == workspaceLayer:
			d.bad(argvPath, "%s runs a program on your host, which a workspace file may not ask for: define this credential in %s instead", argvPath, env.userFileName())
			ok = false
		case !cmdOK:
			ok = false
		case len(c.FromCommand) == 0 || c.FromCommand[0] == "":
			d.bad(argvPath, "%s needs a program to run, as in [\"pass\", \"show\", \"api\"]", argvPath)
			ok = false
		}
	} else {
		typeErr = typeErr || t.present("from_command")
	}
	if b, _, has := t.boolean("from_acp"); has && b {
		sources = append(sources, "from_acp")
		c.FromACP = true
	} else if !has {
		typeErr = typeErr || t.present("from_acp")
	}
	switch {
	case len(sources) == 0 && !typeErr:
		d.problemAt(d.at.keyAt(t.p), "%s needs a source: one of from_env, from_file, from_command or from_acp = true", t.p)
		ok = false
	case len(sources) == 0:
		ok = false
	case len(sources) > 1:
		d.problemAt(d.at.keyAt(t.p.key(sources[1])), "%s has both %s and %s: give exactly one source", t.p, sources[0], sources[1])
		ok = false
	}
	var pathsOK bool
	c.Paths, pathsOK = pathGlobs(t)
	ok = ok && pathsOK
	if s, p, has := t.str("env", `a variable name such as "API_KEY"`); has {
		if msg := checkVMEnvName(s); msg != "" {
			d.bad(p, "%s %s", p, msg)
			ok = false
		} else {
			c.Env = s
		}
	}
	t.done()
	return c, ok
}

func (e *parseEnv) userFileName() string {
	if e.userFile != "" {
		return e.userFile
	}
	return "~/.config/acp-sandbox/config.toml"
}

func (l *layer) parseEnv(t *table) {
	d := t.d
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		v, p, _ := t.get(name)
		s, ok := v.(string)
		switch {
		case !ok:
			d.bad(p, "%s must be a string, not %s: quote it, as in %s = \"%v\"", p, typeName(v), quoteKey(name), v)
		case checkVMEnvName(name) != "":
			d.problemAt(d.at.keyAt(p), "%s: %s", p, checkVMEnvName(name))
		case strings.ContainsRune(s, 0):
			d.bad(p, "%s contains a NUL byte, which no environment value can hold", p)
		default:
			l.env = append(l.env, envItem{name, s, d.origin(p)})
		}
	}
	t.done()
}

func (l *layer) parseAgents(t *table, env *parseEnv) {
	d := t.d
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		at, ok := t.sub(name, "[agents."+quoteKey(name)+"]")
		if !ok {
			continue
		}
		if quoteKey(name) != name {
			d.problemAt(d.at.keyAt(at.p), "agent name %q: use letters, digits, \"-\" and \"_\"", name)
			continue
		}
		a := agentLayer{name: name, at: d.origin(at.p)}
		argv, _, cp, has := at.strings("command", `an argv array such as ["claude-agent-acp"]`)
		if raw, _ := at.m["command"].([]any); has && len(argv) == len(raw) { // else an element was reported
			if len(argv) == 0 || argv[0] == "" {
				d.bad(cp, "%s needs a program, as in [\"claude-agent-acp\"]", cp)
			} else {
				a.command.put(argv, d.origin(cp))
			}
		}
		a.allow = patterns(at, "allow")
		for _, ct := range at.tables("credentials", "[[agents."+name+".credentials]]") {
			if c, ok := parseCredential(ct, env); ok {
				a.creds = append(a.creds, item[Credential]{c, d.origin(ct.p)})
			}
		}
		at.done()
		l.agents = append(l.agents, a)
	}
}
