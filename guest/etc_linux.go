package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"golang.org/x/sys/unix"
)

// writeBaseEtc writes the /etc every process needs: users and groups with
// the sandbox user, so tools that look up their own name work. The host adds
// the rest (hostname, alternatives, CA bundle, …) through Setup.
func writeBaseEtc(cfg *control.Boot) error {
	if err := os.MkdirAll(cfg.Home, 0o755); err != nil {
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d:sandbox user:%s:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		cfg.User, cfg.UID, cfg.GID, cfg.Home)
	group := "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
	if cfg.GID != 0 { // gid 0 (host user is root) is the root group itself
		group += fmt.Sprintf("%s:x:%d:\n", cfg.User, cfg.GID)
	}
	files := map[string]string{
		"/etc/passwd":   passwd,
		"/etc/group":    group,
		"/etc/hosts":    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"/etc/shells":   "/bin/sh\n/bin/bash\n/usr/bin/bash\n",
		"/etc/hostname": "sandbox\n",
	}
	for p, data := range files {
		if err := writeFile(control.File{Path: p, Mode: 0o644, Data: []byte(data)}); err != nil {
			return err
		}
	}
	if err := os.MkdirAll("/root", 0o700); err != nil {
		return err
	}
	// The binary that is /init, reachable as `acp-sandbox` on the default
	// PATH so the sandbox user can run `acp-sandbox why`. A symlink: a copy
	// would double the initramfs.
	if err := os.MkdirAll(filepath.Dir(control.GuestBinary), 0o755); err != nil {
		return err
	}
	return symlink("/init", control.GuestBinary)
}

// applySetup writes the host-provided /etc files. Paths outside /etc are
// refused: the host has no business writing elsewhere in the guest.
func applySetup(s *control.Setup) error {
	if s.TimeUnixNano > 0 {
		ts := unix.NsecToTimespec(s.TimeUnixNano)
		if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
			return fmt.Errorf("set clock: %w", err)
		}
	}
	for _, f := range s.Files {
		if err := writeFile(f); err != nil {
			return err
		}
	}
	if s.Hostname != "" {
		if err := setHostname(s.Hostname); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(f control.File) error {
	clean := filepath.Clean(f.Path)
	if !strings.HasPrefix(clean, "/etc/") {
		return fmt.Errorf("setup: refusing to write %q outside /etc", f.Path)
	}
	if err := os.MkdirAll(filepath.Dir(clean), 0o755); err != nil {
		return err
	}
	_ = os.Remove(clean)
	if f.Link != "" {
		return os.Symlink(f.Link, clean)
	}
	mode := os.FileMode(f.Mode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	return os.WriteFile(clean, f.Data, mode)
}
