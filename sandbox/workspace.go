package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"
)

// credentialDirs are home subdirectories that hold secrets. A workspace that
// contains one of them would hand it to the agent.
var credentialDirs = []string{
	".ssh", ".aws", ".config/gcloud", ".kube", ".docker", ".gnupg",
	".azure", ".netrc", ".git-credentials", ".config/gh", ".npmrc", ".pypirc",
}

// sensitiveTrees hold host secrets or kernel interfaces anywhere below them;
// sharedDirs are fine to work under but hold too much to share whole.
var (
	sensitiveTrees = []string{"/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/run"}
	sharedDirs     = []string{"/home", "/usr", "/var", "/opt", "/srv", "/mnt", "/media", "/tmp", "/bin", "/sbin", "/lib"}
)

// CheckWorkspace refuses a workspace that would expose the user's home,
// credentials, this tool's own state (CA keys, approvals), or system
// directories to the VM. ws must be a resolved absolute path.
func CheckWorkspace(ws, home string, d Dirs) error {
	why := func(reason string) error {
		return fmt.Errorf("refusing workspace %s: %s; run acp-sandbox from your project directory or pass --workspace PROJECT_DIR (--unsafe-workspace overrides this check)", ws, reason)
	}
	within := func(child, parent string) bool { // child == parent or below it
		rel, err := filepath.Rel(parent, child)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	if ws == "/" {
		return why("it is the root directory and would expose the whole host")
	}
	if home != "" {
		home = filepath.Clean(home)
		if realHome, err := filepath.EvalSymlinks(home); err == nil {
			home = realHome
		}
		if within(home, ws) {
			return why("it contains your home directory " + home)
		}
		for _, c := range credentialDirs {
			p := filepath.Join(home, c)
			if within(p, ws) || within(ws, p) {
				return why("it would expose credentials in " + p)
			}
		}
	}
	for _, p := range []string{d.State, d.Runtime, d.Cache} {
		if p != "" && (within(p, ws) || within(ws, p)) {
			return why("it overlaps acp-sandbox's own state in " + p)
		}
	}
	for _, s := range sensitiveTrees {
		if within(ws, s) {
			return why("it is inside the system directory " + s)
		}
	}
	for _, s := range sharedDirs {
		if ws == s {
			return why("it is the system directory " + s)
		}
	}
	return nil
}
