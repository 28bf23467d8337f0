package sandbox

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
)

// hostEtc lists the host /etc entries the guest gets a copy of: only
// non-secret files that programs from the host's /usr need to run (the
// dynamic linker's cache, Debian's alternatives symlinks, the CA bundle,
// name-service and locale basics). Never shadow, ssh, sudoers, gitconfig,
// environment or anything a user or admin may keep secrets in.
var hostEtc = []string{
	"/etc/alternatives/*",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d/*",
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/nsswitch.conf", "/etc/protocols", "/etc/services", "/etc/ethertypes",
	"/etc/mime.types", "/etc/localtime", "/etc/timezone",
	"/etc/os-release", "/etc/debian_version", "/etc/issue",
	"/etc/bash.bashrc", "/etc/profile", "/etc/inputrc", "/etc/skel/.bashrc", "/etc/skel/.profile",
	"/etc/vim/vimrc", "/etc/vim/vimrc.tiny", "/etc/magic",
}

const maxEtcFile = 512 << 10

// hostEtcFiles reads the allowlisted files (symlinks stay symlinks).
func hostEtcFiles() []control.File {
	var out []control.File
	for _, pat := range hostEtc {
		matches, _ := filepath.Glob(pat)
		for _, p := range matches {
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				if t, err := os.Readlink(p); err == nil {
					out = append(out, control.File{Path: p, Link: t})
				}
			case fi.Mode().IsRegular() && fi.Size() <= maxEtcFile:
				if b, err := os.ReadFile(p); err == nil {
					out = append(out, control.File{Path: p, Mode: uint32(fi.Mode().Perm()), Data: b})
				}
			}
		}
	}
	return out
}
