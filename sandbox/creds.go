package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/atomicfile"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
)

// Credentials never enter the VM. The VM holds a random per-sandbox
// placeholder in each credential's variable (ANTHROPIC_API_KEY=acps-ph-…);
// the network stack terminates TLS for the hosts that have a credential
// rule (with a per-sandbox CA the guest trusts; its key stays in the state
// dir) and puts the real secret on the way out. A placeholder sent to any
// other intercepted host is refused with a 403.

// Guest paths of the trust material.
const (
	guestBundle = "/etc/ssl/certs/ca-certificates.crt" // system roots + the sandbox CA
	guestCA     = "/etc/ssl/certs/acp-sandbox-ca.pem"  // the sandbox CA alone
)

// creds is a sandbox's credential setup. The interceptor always exists,
// so that rules can come later (an approved [[credentials]] edit, a key
// the editor sends over ACP) without a restart; with no rule it takes no
// flow.
type creds struct {
	ca      *mitm.CA
	ic      *mitm.Interceptor
	ph      *placeholders
	env     []string        // placeholder and trust variables for the VM, fixed at boot
	bootEnv map[string]bool // the placeholder variables the VM got at boot (or was told it lacks)
	files   []control.File  // trust files for the VM's /etc
	key     string          // the configuration's credential rules last applied, to spot a change
	active  []string        // rule names, sources and hosts, for people; guarded by supervisor.mu
}

// testMITMHooks, set only in test builds, adjusts the interceptor's
// options (upstream roots of the stand-in servers).
var testMITMHooks func(*mitm.Options)

// credentialRules are the configuration's credentials plus those of every
// agent preset (they only apply when their source has a value, so an
// agent's key is injected whichever agent runs). Rules for the same
// variable: the first wins, configuration before presets.
func credentialRules(cfg *config.Config) []config.Credential {
	out := slices.Clone(cfg.Credentials)
	for _, name := range slices.Sorted(maps.Keys(cfg.Agents)) {
		for _, c := range cfg.Agents[name].Credentials {
			if !slices.ContainsFunc(out, func(x config.Credential) bool {
				return x.Env != "" && x.Env == c.Env || x.Host == c.Host && strings.EqualFold(x.Header, c.Header)
			}) {
				out = append(out, c)
			}
		}
	}
	return out
}

// ruleName names a credential for people: its variable, or its host.
func ruleName(c config.Credential) string {
	if c.Env != "" {
		return strings.ToLower(c.Env)
	}
	return c.Host
}

// available reports whether a credential's source can give a secret now,
// without reading it (a command is run only on first use). A from_acp
// rule always applies: until the editor sends its key, a request that
// needs it fails with a 502 that says so.
func available(c config.Credential) bool {
	switch {
	case c.FromEnv != "":
		return os.Getenv(c.FromEnv) != ""
	case c.FromFile != "":
		_, err := os.Stat(c.FromFile)
		return err == nil
	case c.FromCommand != nil, c.FromACP:
		return true
	}
	return false
}

// secretFunc reads a credential's secret on first use. Errors never carry
// the secret or a command's output.
func secretFunc(c config.Credential) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		switch {
		case c.FromEnv != "":
			if v := os.Getenv(c.FromEnv); v != "" {
				return v, nil
			}
			return "", fmt.Errorf("%s is not set in the environment of the acp-sandbox that started this sandbox", c.FromEnv)
		case c.FromFile != "":
			b, err := os.ReadFile(c.FromFile)
			if err != nil {
				return "", fmt.Errorf("cannot read the credential file: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		case c.FromCommand != nil:
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, c.FromCommand[0], c.FromCommand[1:]...)
			cmd.Stdout = &out
			if err := cmd.Run(); err != nil {
				return "", fmt.Errorf("credential command %q failed: %v", c.FromCommand[0], err)
			}
			return strings.TrimSpace(out.String()), nil
		}
		return "", errors.New("this credential has no source on the host")
	}
}

// setupCreds builds the CA, the placeholders, the interceptor and the
// guest's trust material.
func (s *supervisor) setupCreds() (*creds, error) {
	ca, err := mitm.LoadOrCreateCA(filepath.Join(s.sb.StateDir, "ca"))
	if err != nil {
		return nil, fmt.Errorf("sandbox CA: %w", err)
	}
	ph, err := loadPlaceholders(filepath.Join(s.sb.StateDir, "placeholders.json"))
	if err != nil {
		return nil, err
	}
	c := &creds{ca: ca, ph: ph, bootEnv: map[string]bool{}}
	opt := mitm.Options{CA: ca, Audit: s.audit.recordHTTPS, Logger: s.log}
	if testMITMHooks != nil {
		testMITMHooks(&opt)
	}
	if c.ic, err = mitm.New(opt); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cr := range credentialRules(s.cfg) {
		if cr.Env != "" && available(cr) && !c.bootEnv[cr.Env] {
			c.bootEnv[cr.Env] = true
			c.env = append(c.env, cr.Env+"="+ph.get(ruleName(cr)))
		}
	}
	if err := ph.save(); err != nil {
		return nil, err
	}
	// The rules: the same path as every later change takes.
	if err := s.applyCredsTo(c); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}

	// Every TLS client in the VM trusts the sandbox CA: the system bundle
	// (the host's roots plus ours), and the variables that replace or add
	// to a client's roots.
	bundle, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	bundle = append(append(bytes.TrimRight(bundle, "\n"), '\n'), ca.CertPEM()...)
	c.files = []control.File{
		{Path: guestBundle, Mode: 0o644, Data: bundle},
		{Path: guestCA, Mode: 0o644, Data: ca.CertPEM()},
	}
	for _, k := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"} {
		c.env = append(c.env, k+"="+guestBundle)
	}
	for _, k := range []string{"NODE_EXTRA_CA_CERTS", "DENO_CERT"} {
		c.env = append(c.env, k+"="+guestCA)
	}
	return c, nil
}

// credRulesLocked is what the interceptor runs: the keys editors sent over
// ACP for this session (first, and alone on their hosts: they are what the
// user chose just now), then the configuration's credentials whose source
// has a value, and the [[network.http]] rules. Caller holds s.mu.
func (s *supervisor) credRulesLocked(c *creds) (rules []mitm.Rule, httpRules []mitm.HTTPRule, active []string) {
	seen := map[string]bool{}
	var editorHosts []string
	for _, sess := range s.acpSessionsLocked() {
		for _, r := range sess.rules {
			if !seen[r.Name] {
				seen[r.Name] = true
				editorHosts = append(editorHosts, r.Host)
				rules = append(rules, r)
				active = append(active, r.Name+" → "+r.Host+" (ACP, this editor session)")
			}
		}
	}
	for _, cr := range credentialRules(s.cfg) {
		name := ruleName(cr)
		if !available(cr) || seen[name] {
			continue
		}
		if slices.ContainsFunc(editorHosts, func(h string) bool { return hostCovers(cr.Host, h) }) {
			// The host's key is the one the editor sent, not, say, a
			// GEMINI_API_KEY the host's environment also has.
			continue
		}
		seen[name] = true
		secret, source := secretFunc(cr), cr.Source()
		if cr.FromACP {
			if key, ok := s.acpKeyLocked(name); ok {
				secret = func(context.Context) (string, error) { return key, nil }
			} else {
				source += ", waiting for the editor"
				secret = func(context.Context) (string, error) {
					return "", errors.New("no key yet: this credential takes the key the editor sends with ACP authenticate, and none has come")
				}
			}
		}
		rules = append(rules, mitm.Rule{Name: name, Host: cr.Host, Header: cr.Header, Format: cr.Format,
			Placeholder: c.ph.get(name), Paths: cr.Paths, Secret: secret})
		active = append(active, name+" → "+cr.Host+" ("+source+")")
	}
	for _, h := range s.cfg.Network.HTTP {
		httpRules = append(httpRules, mitm.HTTPRule{Host: h.Host, Methods: h.Methods, Paths: h.Paths})
	}
	return rules, httpRules, active
}

// applyCredsLocked gives the interceptor the rules now in force. Caller
// holds s.mu.
func (s *supervisor) applyCredsLocked() error {
	if s.creds == nil {
		return nil
	}
	return s.applyCredsTo(s.creds)
}

func (s *supervisor) applyCredsTo(c *creds) error {
	rules, httpRules, active := s.credRulesLocked(c)
	if err := c.ic.SetRules(rules, httpRules, s.cfg.Network.Bypass); err != nil {
		return err
	}
	if err := c.ph.save(); err != nil {
		s.log.Warn("cannot save the sandbox's placeholders", "err", err)
	}
	c.active, c.key = active, credsKey(s.cfg)
	for _, cr := range credentialRules(s.cfg) {
		if cr.Env != "" && available(cr) && !c.bootEnv[cr.Env] {
			c.bootEnv[cr.Env] = true // said once
			s.log.Warn("a new credential's variable reaches the VM only after a restart (`acp-sandbox stop`); its host is injected already",
				"rule", ruleName(cr), "env", cr.Env)
		}
	}
	return nil
}

// credsKey identifies the configuration's credential, HTTP and bypass
// rules, to re-apply them only when they changed (a rule's secret is read
// again after each apply: a credential command must not run every poll).
func credsKey(cfg *config.Config) string {
	return fmt.Sprintf("%#v|%#v|%#v", credentialRules(cfg), cfg.Network.HTTP, cfg.Network.Bypass)
}

// placeholders are kept per sandbox, so the VM's variables (and whatever
// the agent stored from them) stay the same across restarts.
type placeholders struct {
	path  string
	m     map[string]string
	dirty bool
}

func loadPlaceholders(path string) (*placeholders, error) {
	p := &placeholders{path: path, m: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &p.m); err != nil {
		return nil, fmt.Errorf("%s: %w; remove it (new placeholders are made)", path, err)
	}
	return p, nil
}

func (p *placeholders) get(name string) string {
	if v, ok := p.m[name]; ok && strings.HasPrefix(v, mitm.PlaceholderPrefix) {
		return v
	}
	v := mitm.NewPlaceholder(name)
	p.m[name], p.dirty = v, true
	return v
}

func (p *placeholders) save() error {
	if !p.dirty {
		return nil
	}
	b, err := json.MarshalIndent(p.m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p.path, b, 0o600); err != nil {
		return err
	}
	p.dirty = false
	return nil
}

// CredentialReport says, for each credential rule the configuration and
// the agent presets define, where its secret comes from and whether that
// source has a value now. Never the secret.
func CredentialReport(cfg *config.Config) (found, missing []string) {
	for _, c := range credentialRules(cfg) {
		line := fmt.Sprintf("%s → %s (%s)", ruleName(c), c.Host, c.Source())
		if available(c) {
			found = append(found, line)
		} else {
			missing = append(missing, line)
		}
	}
	return found, missing
}
