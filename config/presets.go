package config

import (
	"maps"
	"slices"
	"time"
)

// Built-in defaults: what a sandbox runs with when no file says otherwise.
// The VM's shape matches the CLI's flag defaults (--cpus 2, --memory 2048,
// --idle-timeout 30m).
const (
	DefaultCPUs        = 2
	DefaultMemoryBytes = 2 << 30
	DefaultIdleTimeout = 30 * time.Minute
	DefaultImage       = "host"
)

// DefaultPreset is the network preset when no file names one.
//
// It is "locked", not "balanced": a registry or a git host is not only a
// download source but an upload channel (anyone can publish a package, push
// to a repository or open a gist), so opening them is a choice the user
// makes for a workspace — with `preset = "balanced"`, a pattern, or "allow
// always" when the agent is blocked. What the agent itself needs beyond its
// model API (its login hosts) comes with its agent preset, not the default.
const DefaultPreset = "locked"

// Presets are the named starting points of [network] allow.
var presets = map[string][]string{
	// Model APIs only, HTTPS only.
	"locked": lockedHosts,
	// Locked, plus git hosts and package registries.
	"balanced": concat(lockedHosts, balancedHosts),
	// Any public host on 443 and 80, by name or by address. Private,
	// loopback, link-local and metadata addresses stay denied: "**" and
	// 0.0.0.0/0 unlock no special address (see netstack/policy).
	"open": {"**", "0.0.0.0/0", "::/0"},
}

// PresetNames lists the presets in order of openness.
var PresetNames = []string{"locked", "balanced", "open"}

// PresetHosts returns the allow patterns of a preset, nil for an unknown
// name.
func PresetHosts(name string) []string { return append([]string(nil), presets[name]...) }

// lockedHosts are model APIs: the built-in agents' (the hosts of their
// credentials, claude's, codex's, gemini's), then others'.
var lockedHosts = concat(builtinModelHosts(), []string{
	"api.mistral.ai:443",
	"api.moonshot.ai:443",
	"api.deepseek.com:443",
	"openrouter.ai:443",
})

var balancedHosts = []string{
	// Git hosting (HTTPS; ssh on 22 needs its own pattern, e.g. "github.com:22").
	"github.com:443",
	"api.github.com:443",
	"codeload.github.com:443",
	"objects.githubusercontent.com:443",
	"**.githubusercontent.com:443",
	"gitlab.com:443",
	"bitbucket.org:443",
	// JavaScript.
	"registry.npmjs.org:443",
	"registry.yarnpkg.com:443",
	// Python.
	"pypi.org:443",
	"files.pythonhosted.org:443",
	// Go.
	"proxy.golang.org:443",
	"sum.golang.org:443",
	"storage.googleapis.com:443", // Go toolchain downloads
	// Rust.
	"crates.io:443",
	"static.crates.io:443",
	"index.crates.io:443",
	"static.rust-lang.org:443",
	// Ruby.
	"rubygems.org:443",
	"index.rubygems.org:443",
	// Java.
	"repo.maven.apache.org:443",
	"repo1.maven.org:443",
	// Debian packages: apt speaks plain HTTP by default (its archives are
	// signed), so no port: 443 and 80.
	"deb.debian.org",
	"security.debian.org",
}

func concat(a, b []string) []string { return append(append([]string(nil), a...), b...) }

// builtinAgents are the agent presets known without any file: the policy
// half of `acp-sandbox -- claude` (codex, gemini). Command is what the
// agent's npm package installs (internal/presets, keyed by the same name,
// holds the package and its pinned version); Allow its login hosts; the
// credentials' hosts are its model API (see [Agent.Hosts]). Their
// credentials read the usual host variables; a variable that is not set
// leaves the agent to log in another way.
var builtinAgents = map[string]Agent{
	"claude": {
		Command: []string{"claude-agent-acp"},
		Allow:   []string{"console.anthropic.com:443", "claude.ai:443"},
		Credentials: []Credential{{
			Host: "api.anthropic.com", Header: "x-api-key", Format: "{}",
			FromEnv: "ANTHROPIC_API_KEY", Env: "ANTHROPIC_API_KEY",
		}},
	},
	"codex": {
		Command: []string{"codex-acp"},
		Allow:   []string{"auth.openai.com:443", "chatgpt.com:443"},
		Credentials: []Credential{{
			Host: "api.openai.com", Header: "Authorization", Format: "Bearer {}",
			FromEnv: "OPENAI_API_KEY", Env: "OPENAI_API_KEY",
		}},
	},
	"gemini": {
		Command: []string{"gemini", "--acp"},
		Allow:   []string{"oauth2.googleapis.com:443", "accounts.google.com:443", "cloudcode-pa.googleapis.com:443"},
		Credentials: []Credential{{
			Host: "generativelanguage.googleapis.com", Header: "x-goog-api-key", Format: "{}",
			FromEnv: "GEMINI_API_KEY", Env: "GEMINI_API_KEY",
		}},
	},
}

// BuiltinAgents returns a copy of the agent presets known without any
// file, as no file has changed them. A loaded [Config] has them in Agents,
// with the files' changes.
func BuiltinAgents() map[string]Agent {
	out := make(map[string]Agent, len(builtinAgents))
	for name, a := range builtinAgents {
		out[name] = a.clone()
	}
	return out
}

// builtinModelHosts are the built-in agents' model APIs, HTTPS only, in
// the order of the agents' names.
func builtinModelHosts() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(builtinAgents)) {
		for _, c := range builtinAgents[name].Credentials {
			out = append(out, c.Host+":443")
		}
	}
	return out
}
