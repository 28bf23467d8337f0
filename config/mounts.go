package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// credentialDirs hold secrets under the home directory. A mount that holds
// one, or lies inside one, would hand it to the agent. (The same list as
// sandbox.CheckWorkspace's; config does not import sandbox, which will load
// config.)
var credentialDirs = []string{
	".ssh", ".aws", ".gnupg", ".config/gcloud", ".kube", ".docker",
	".azure", ".netrc", ".git-credentials", ".config/gh", ".npmrc", ".pypirc",
	".password-store", ".local/share/keyrings",
}

// systemTrees hold host secrets or kernel interfaces anywhere below them.
var systemTrees = []string{"/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/run"}

// guestReserved are guest paths the VM's own filesystem lives at; a mount
// there (or below) would hide or replace it.
var guestReserved = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr"}

// guestWhole are guest directories a mount may go below but not replace.
var guestWhole = []string{"/", "/home", "/home/agent", "/tmp", "/var", "/opt", "/mnt", "/srv", "/media"}

// within reports whether child is parent or below it (both clean, absolute).
func within(child, parent string) bool {
	rel, err := filepath.Rel(parent, child)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// expandHome turns "~" and "~/x" into absolute paths under home. Other
// relative paths and "~user" are refused: a mount must not depend on the
// directory acp-sandbox happens to run in.
func expandHome(p, home string) (string, string) {
	switch {
	case p == "":
		return "", "empty path"
	case p == "~" || strings.HasPrefix(p, "~/"):
		if home == "" {
			return "", fmt.Sprintf("%q starts with ~ but the home directory is unknown: write an absolute path", p)
		}
		return filepath.Join(home, p[1:]), ""
	case strings.HasPrefix(p, "~"):
		return "", fmt.Sprintf("%q: ~user is not supported: write an absolute path or one starting with ~/", p)
	case !filepath.IsAbs(p):
		return "", fmt.Sprintf("%q is relative: write an absolute path or one starting with ~/", p)
	}
	return filepath.Clean(p), ""
}

// homes is the home directory as given and, if different, resolved: a
// path is compared with both, so a symlinked home (macOS /var, /home on
// another disk) hides nothing.
func (e *parseEnv) homes() []string {
	if e.home == "" {
		return nil
	}
	h := []string{e.home}
	if real, err := e.evalSymlinks(e.home); err == nil && real != e.home {
		h = append(h, real)
	}
	return h
}

// checkMountHost refuses host directories that expose the user's home as a
// whole, credentials, acp-sandbox's own state and config (where the
// approvals and the user's policy live), or system trees. Both the path as
// written and, when it exists, its symlink-resolved form are checked.
func (e *parseEnv) checkMountHost(host string) string {
	paths := []string{host}
	if real, err := e.evalSymlinks(host); err == nil && real != host {
		paths = append(paths, real)
	}
	for _, h := range paths {
		if h == "/" {
			return "it is the root directory and would expose the whole host"
		}
		for _, home := range e.homes() {
			if within(home, h) {
				return fmt.Sprintf("it would expose your home directory %s as a whole; mount the project or data directory you need", home)
			}
			for _, c := range credentialDirs {
				if p := filepath.Join(home, c); within(h, p) || within(p, h) {
					return fmt.Sprintf("it would expose credentials in %s; to give the agent a secret, use [[credentials]] so the VM never holds it", p)
				}
			}
		}
		for _, p := range e.protected {
			if p != "" && (within(h, p) || within(p, h)) {
				return fmt.Sprintf("it would expose acp-sandbox's own state or configuration in %s (approvals, keys, your policy)", p)
			}
		}
		for _, s := range systemTrees {
			if within(h, s) {
				return "it is inside the system directory " + s
			}
		}
	}
	return ""
}

// checkMountGuest refuses guest paths that would replace the VM's own
// filesystem or shadow the workspace.
func (e *parseEnv) checkMountGuest(guest string) string {
	if !filepath.IsAbs(guest) {
		return fmt.Sprintf("%q is not an absolute path in the VM", guest)
	}
	g := filepath.Clean(guest)
	for _, r := range guestReserved {
		if within(g, r) {
			return fmt.Sprintf("%s is the VM's own %s; choose another path, such as /mnt/NAME", g, r)
		}
	}
	for _, w := range guestWhole {
		if g == w {
			return fmt.Sprintf("%s would replace the VM's %s; choose a directory below it, such as /mnt/NAME", g, w)
		}
	}
	if ws := e.workspace; ws != "" && (within(g, ws) || within(ws, g)) {
		return fmt.Sprintf("%s overlaps the workspace %s, which the VM already has", g, ws)
	}
	return ""
}

// checkSecretFile refuses a from_file inside the workspace (the agent can
// read and replace it there) or inside a credential directory (no key file
// there is a header value; a rule pointing there exfiltrates it). Both the
// path and, when it exists, its symlink-resolved form are checked.
func (e *parseEnv) checkSecretFile(f string) string {
	paths := []string{f}
	if real, err := e.evalSymlinks(f); err == nil && real != f {
		paths = append(paths, real)
	}
	for _, p := range paths {
		if ws := e.workspace; ws != "" && within(p, ws) {
			return fmt.Sprintf("%s is inside the workspace, where the agent can read and change it; keep secrets outside the workspace", f)
		}
		for _, home := range e.homes() {
			for _, c := range credentialDirs {
				if dir := filepath.Join(home, c); within(p, dir) {
					return fmt.Sprintf("%s is inside %s, which holds keys, not header values; put the token in a file of its own", f, dir)
				}
			}
		}
	}
	return ""
}
