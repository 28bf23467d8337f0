package config

import (
	"fmt"
	"strings"
)

// Starter returns the commented sandbox.toml `acp-sandbox policy init`
// writes: the preset set, every other key shown commented out with its
// default. An unknown preset is an error naming the known ones.
func Starter(preset string) ([]byte, error) {
	if _, ok := presets[preset]; !ok {
		return nil, fmt.Errorf("unknown preset %q: use %s%s", preset, quotedList(PresetNames), suggest(preset, PresetNames))
	}
	return []byte(strings.ReplaceAll(starterText, "PRESET", preset)), nil
}

func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

const starterText = `# sandbox.toml: what the sandbox of this workspace may do.
#
# The agent can edit this file, so a change applies only once you approve
# it: in your editor when it asks, or with ` + "`acp-sandbox policy approve`" + `.
#   acp-sandbox policy check    find mistakes
#   acp-sandbox policy show     the effective policy and where each value came from
# Remove the "# " before a key to set it; the value shown is the default.

[sandbox]
# cpus = 2
# memory = "2GiB"               # binary units: "512MiB", "4GiB"
# idle_timeout = "30m"          # stop the VM when unused this long; "0": never

[network]
# Presets: locked (model APIs only), balanced (+ git hosts and package
# registries), open (any public host). Private addresses stay closed.
preset = "PRESET"

# More hosts: "pypi.org", "*.example.com" (one label), "**.example.com"
# (any depth), "203.0.113.0/24"; add ":port" for other ports than 443/80.
allow = [
  # "pypi.org",
]
deny = [
  # "*.example.com",
]
# host_ports = [11434]          # services on this machine, at host.acp-sandbox.internal:PORT
# bypass = ["pinned.example.com"] # never intercept TLS to these (clients that pin certificates)

# A host directory in the VM, read-only unless read_only = false.
# [[mounts]]
# host = "~/datasets"
# guest = "/mnt/datasets"

# A secret added by the host to requests to one host; the VM sees only a
# placeholder in env.
# [[credentials]]
# host = "api.example.com"
# header = "Authorization"
# format = "Bearer {}"
# from_env = "EXAMPLE_TOKEN"
# env = "EXAMPLE_TOKEN"

# [env]
# NODE_ENV = "development"
`
