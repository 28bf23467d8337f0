// Package config is sandbox.toml: its schema, loading with exact errors,
// layering, and the host-side approvals that keep an agent from widening
// its own rights.
//
// # Boundary
//
// config reads files and the approvals in the sandbox's state dir, and
// returns values. It starts nothing, opens no sockets and enforces nothing:
// the netstack enforces Network (host patterns are parsed with
// netstack/policy, the same parser that enforces them, so a pattern that
// loads is a pattern that works), the VM layer uses Sandbox and Mounts, the
// bridge asks the editor to approve a pending file and records "allow
// always" answers through Approvals. It never reads or prints a secret:
// a Credential says where a secret comes from, not what it is.
//
// # Layers
//
// Built-in defaults, then the user's $XDG_CONFIG_HOME/acp-sandbox/config.toml,
// then the workspace's sandbox.toml, then the user's "allow always" answers.
// Scalars (sandbox.cpus, network.preset, an env value) are overridden by the
// later layer; lists (network.allow and deny, host_ports, mounts,
// credentials, agents' allow) append; deny beats allow whatever the layer.
// Config.Origins records where each effective value came from, for
// `acp-sandbox policy show`.
//
// # Agents
//
// [agents.NAME] names an agent: `acp-sandbox -- NAME ARGS…` runs its
// command (ARGS after it), and its hosts ([Agent.Hosts]: allow, and its
// credentials' hosts, the model API) are reachable while it runs. claude,
// codex and gemini are built in ([BuiltinAgents]): their command, login
// hosts and credentials are written here once, and internal/presets says
// which npm package of which version installs each. A file's table with a
// built-in name adds to it; its command replaces the built-in one (the CLI
// then runs that command instead of installing the preset).
//
// # Tamper protection
//
// The workspace is writable from inside the VM, so its sandbox.toml applies
// only while it is byte-for-byte what the user approved (Approvals keeps a
// copy in the state dir). A changed file is pending: until the user
// approves it (`acp-sandbox policy approve`, or in the editor) the last
// approved copy applies, or no workspace file at all. A workspace file may
// also ask for less than the user's own config: no from_command credential
// (it would run a program on the host).
//
// # Errors
//
// Every problem of every file that applies is reported at once, each as
// FILE:LINE:COL: message, with a suggestion for a misspelt key. A file with
// any problem does not apply at all, and Load then returns no Config.
package config
