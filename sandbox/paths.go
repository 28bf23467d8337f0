// Package sandbox is one workspace's sandbox: its id and directories, the
// long-lived supervisor process that owns the VM (QEMU, the control channel,
// later the network), and the client side every command uses to reach it.
//
// One supervisor per workspace, started detached by whichever command first
// needs the VM, so the VM outlives any single editor connection or `exec`.
// Clients talk to it over a unix socket in the sandbox's runtime dir.
package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Dirs are the roots every sandbox's directories live under.
type Dirs struct {
	State   string // $XDG_STATE_HOME/acp-sandbox: logs, agent homes, pid files
	Runtime string // $XDG_RUNTIME_DIR/acp-sandbox, else /tmp/acp-sandbox-<uid>: sockets
	Cache   string // $XDG_CACHE_HOME/acp-sandbox: kernel, initramfs, verdicts
}

// DefaultDirs resolves the XDG directories of the current user.
func DefaultDirs() (Dirs, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return Dirs{}, fmt.Errorf("sandbox: cannot find home directory: %w", err)
	}
	xdg := func(env, def string) string {
		if v := os.Getenv(env); filepath.IsAbs(v) {
			return v
		}
		return filepath.Join(home, def)
	}
	d := Dirs{
		State: filepath.Join(xdg("XDG_STATE_HOME", ".local/state"), "acp-sandbox"),
		Cache: filepath.Join(xdg("XDG_CACHE_HOME", ".cache"), "acp-sandbox"),
	}
	// Sockets need short paths (108-byte sun_path limit).
	if v := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(v) {
		d.Runtime = filepath.Join(v, "acp-sandbox")
	} else {
		d.Runtime = fmt.Sprintf("/tmp/acp-sandbox-%d", os.Getuid())
	}
	return d, nil
}

// IDLen is the length of a sandbox id: 16 hex characters of the hash of the
// workspace's real path.
const IDLen = 16

// Sandbox names one workspace's sandbox and its directories.
type Sandbox struct {
	ID         string
	Workspace  string // real absolute path
	StateDir   string
	RuntimeDir string
	CacheDir   string // shared by all sandboxes
}

// ID returns the sandbox id of a workspace path (already resolved).
func ID(realWorkspace string) string {
	h := sha256.Sum256([]byte(realWorkspace))
	return hex.EncodeToString(h[:])[:IDLen]
}

// ForWorkspace resolves ws (symlinks included) and returns its sandbox.
func (d Dirs) ForWorkspace(ws string) (*Sandbox, error) {
	abs, err := filepath.Abs(ws)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("workspace %s does not exist; create it or pass --workspace DIR", abs)
		}
		return nil, fmt.Errorf("workspace %s: %w", abs, err)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("workspace %s is not a directory", real)
	}
	return d.sandbox(ID(real), real), nil
}

func (d Dirs) sandbox(id, ws string) *Sandbox {
	return &Sandbox{
		ID:         id,
		Workspace:  ws,
		StateDir:   filepath.Join(d.State, id),
		RuntimeDir: filepath.Join(d.Runtime, id),
		CacheDir:   d.Cache,
	}
}

// ByID finds a known sandbox by id or unique id prefix.
func (d Dirs) ByID(id string) (*Sandbox, error) {
	all, err := d.List()
	if err != nil {
		return nil, err
	}
	var match []*Sandbox
	for _, s := range all {
		if strings.HasPrefix(s.ID, id) {
			match = append(match, s)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("no sandbox %q; `acp-sandbox ls` lists them", id)
	case 1:
		return match[0], nil
	}
	return nil, fmt.Errorf("sandbox id %q is ambiguous (%d match); give more characters", id, len(match))
}

// List returns every sandbox with a state dir, sorted by workspace.
func (d Dirs) List() ([]*Sandbox, error) {
	ents, err := os.ReadDir(d.State)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Sandbox
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != IDLen {
			continue
		}
		ws, err := os.ReadFile(filepath.Join(d.State, e.Name(), "workspace"))
		if err != nil {
			continue
		}
		out = append(out, d.sandbox(e.Name(), strings.TrimSpace(string(ws))))
	}
	slices.SortFunc(out, func(a, b *Sandbox) int { return strings.Compare(a.Workspace, b.Workspace) })
	return out, nil
}

// Paths of a sandbox's files.
func (s *Sandbox) SupSocket() string     { return filepath.Join(s.RuntimeDir, "sup.sock") }
func (s *Sandbox) ControlSocket() string { return filepath.Join(s.RuntimeDir, "ctl.sock") }
func (s *Sandbox) QMPSocket() string     { return filepath.Join(s.RuntimeDir, "qmp.sock") }
func (s *Sandbox) ConsoleLog() string    { return filepath.Join(s.StateDir, "console.log") }
func (s *Sandbox) Log() string           { return filepath.Join(s.StateDir, "sandbox.log") }
func (s *Sandbox) QEMULog() string       { return filepath.Join(s.StateDir, "qemu.log") }
func (s *Sandbox) AgentLog() string      { return filepath.Join(s.StateDir, "agent.log") }
func (s *Sandbox) QEMUPidFile() string   { return filepath.Join(s.StateDir, "qemu.pid") }
func (s *Sandbox) Home() string          { return filepath.Join(s.StateDir, "home") }
func (s *Sandbox) NetworkLog() string    { return filepath.Join(s.StateDir, "network.jsonl") }

// NetInfoDir is shared read-only with the guest (control.NetInfoDir): it
// holds only what the sandbox user may know about its network.
func (s *Sandbox) NetInfoDir() string { return filepath.Join(s.StateDir, "net") }
func (s *Sandbox) startLock() string  { return filepath.Join(s.StateDir, "start.lock") }
func (s *Sandbox) supLock() string    { return filepath.Join(s.StateDir, "supervisor.lock") }

// Caches shared by every sandbox, under Dirs.Cache (Sandbox.CacheDir).
func KernelCacheDir(cacheRoot string) string    { return filepath.Join(cacheRoot, "kernel") }
func initramfsCacheDir(cacheRoot string) string { return filepath.Join(cacheRoot, "initramfs") }
func accelCacheFile(cacheRoot string) string    { return filepath.Join(cacheRoot, "accel.json") }

// Prepare creates the sandbox's directories (0700: they hold logs and, later,
// the CA key) and records its workspace.
func (s *Sandbox) Prepare() error {
	for _, d := range []string{s.StateDir, s.RuntimeDir, s.Home()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("cannot create %s: %w; check permissions or set XDG_STATE_HOME / XDG_RUNTIME_DIR", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.StateDir, "workspace"), []byte(s.Workspace+"\n"), 0o600); err != nil {
		return fmt.Errorf("cannot write to %s: %w", s.StateDir, err)
	}
	return nil
}
