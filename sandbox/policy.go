package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/vmm"
)

// The sandbox's rules come from three places: the workspace's effective
// configuration (built-in defaults, the user's config.toml, the approved
// sandbox.toml, "allow always" answers; package config), which the
// supervisor loads itself and reloads when it changes; the extra rules
// clients give (--allow/--deny, an agent preset's hosts), which replace
// each other; and the gateways connected editors named over ACP
// (acpcreds.go), which last as long as their editor. The VM runs with
// their union; deny beats allow.

// policyPoll is how often the supervisor looks at sandbox.toml and the
// approvals. The file is the host's own (the VM writes it over 9p), so
// polling its hash sees every change, whoever made it.
const policyPoll = 2 * time.Second

// Audit of policy changes, in network.jsonl next to the flows.
const (
	ProtoPolicy    = "policy"
	VerdictPending = "pending" // a changed sandbox.toml waits for approval
	VerdictApplied = "applied" // new rules are in force
)

// LoadConfig loads the workspace's effective configuration.
func LoadConfig(sb *Sandbox) (*config.Config, error) {
	return config.Load(config.LoadOptions{Workspace: sb.Workspace, StateDir: sb.StateDir})
}

// configError explains a configuration that stops a sandbox from starting.
func configError(err error) error {
	var p config.Problems
	if errors.As(err, &p) {
		return fmt.Errorf("the sandbox's configuration has problems, so it will not start with a policy you did not write:\n%w\nfix them (`acp-sandbox policy check` checks a file), then try again", err)
	}
	return err
}

// union is the rules in force: the configuration's and the extras.
func union(c config.Network, extras ...Network) Network {
	n := Network{Allow: c.Allow, Deny: c.Deny, HostPorts: slices.Clone(c.HostPorts)} // sorted below: not the config's
	for _, x := range extras {
		n.Allow = slices.Concat(n.Allow, x.Allow)
		n.Deny = slices.Concat(n.Deny, x.Deny)
		n.HostPorts = slices.Concat(n.HostPorts, x.HostPorts)
	}
	for _, l := range []*[]string{&n.Allow, &n.Deny} {
		*l = dedup(*l)
	}
	slices.Sort(n.HostPorts)
	n.HostPorts = slices.Compact(n.HostPorts)
	return n
}

func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// applyRules recomputes the rules in force and hands them to the stack.
// Caller holds s.mu.
func (s *supervisor) applyRulesLocked() error {
	n := union(s.cfg.Network, s.opt.Network, s.acpNetworkLocked())
	if s.applied && n.Equal(s.eff) {
		return nil // nothing changed: leave the stack's rules alone
	}
	rules, err := n.Rules()
	if err != nil {
		return err
	}
	s.eff = n
	if s.net != nil {
		s.net.SetRules(rules)
		s.applied = true
	}
	return nil
}

// watchPolicy reloads the configuration when sandbox.toml, the user's
// config.toml or the approvals change, until ctx ends. An approved change
// applies at once; a pending one is audited (once per content) and left
// alone until `acp-sandbox policy approve` or the editor approves it.
func (s *supervisor) watchPolicy(ctx context.Context) {
	tick := time.NewTicker(policyPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.reloadPolicy()
	}
}

func (s *supervisor) reloadPolicy() {
	cfg, err := LoadConfig(s.sb)
	if err != nil {
		// A broken user config.toml: keep the rules in force, say why.
		s.mu.Lock()
		changed := err.Error() != s.lastLoadErr
		s.lastLoadErr = err.Error()
		s.mu.Unlock()
		if changed {
			s.log.Error("configuration does not load; the rules in force stay", "err", err)
		}
		return
	}
	st := cfg.PolicyStatus
	s.mu.Lock()
	s.lastLoadErr = ""
	seen := s.seenSHA
	s.seenSHA = st.SHA256
	old := s.eff
	s.cfg = cfg
	err = s.applyRulesLocked()
	now := s.eff
	if s.creds != nil && credsKey(cfg) != s.creds.key {
		if cerr := s.applyCredsLocked(); cerr != nil {
			s.log.Error("credential rules do not compile; the ones in force stay", "err", cerr)
		} else {
			s.log.Info("credential rules reloaded", "rules", s.creds.active)
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("configuration rules do not compile; the rules in force stay", "err", err)
		return
	}
	if st.SHA256 != seen && st.State == config.PolicyPending {
		reason := config.FileName + " changed in the workspace; it is not applied until approved: run `acp-sandbox policy approve` on the host to see the diff and apply it"
		if st.Problems != nil {
			reason += " (it has problems: `acp-sandbox policy check`)"
		}
		s.audit.record(netstack.Event{Time: time.Now(), Proto: ProtoPolicy, Name: st.File, Verdict: VerdictPending, Rule: "approval", Reason: reason})
		s.log.Warn("sandbox.toml changed; pending approval", "file", st.File, "sha256", st.SHA256)
	}
	if !now.Equal(old) {
		s.audit.record(netstack.Event{Time: time.Now(), Proto: ProtoPolicy, Name: st.File, Verdict: VerdictApplied, Rule: string(st.State),
			Reason: "network rules now: " + now.String()})
		s.log.Info("network rules reloaded", "rules", now.String())
	}
}

// configEnv is the configuration's [env] for every process in the VM.
func configEnv(cfg *config.Config) []string {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		env = append(env, k+"="+cfg.Env[k])
	}
	return env
}

// configMounts are the configuration's extra directories, as 9p shares.
func configMounts(cfg *config.Config) ([]vmm.Share, []control.Mount) {
	var shares []vmm.Share
	var mounts []control.Mount
	for i, m := range cfg.Mounts {
		tag := fmt.Sprintf("m%d", i)
		shares = append(shares, vmm.Share{Tag: tag, HostPath: m.Host, ReadOnly: !m.Writable})
		mounts = append(mounts, control.Mount{Tag: tag, Path: m.Guest, ReadOnly: !m.Writable})
	}
	return shares, mounts
}

func (s *supervisor) configShares() []vmm.Share {
	shares, _ := configMounts(s.cfg)
	return shares
}
