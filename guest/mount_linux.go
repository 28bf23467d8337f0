package guest

import (
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"golang.org/x/sys/unix"
)

// mount is one step of the guest's filesystem setup, as data, so the boot
// log reads like a script (after u-root's libinit).
type mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Mode                   os.FileMode // of the mount point if created
}

func (m mount) String() string {
	opts := m.Data
	if m.Flags&unix.MS_RDONLY != 0 {
		opts = strings.TrimPrefix(opts+",ro", ",")
	}
	if opts != "" {
		opts = " -o " + opts
	}
	return fmt.Sprintf("mount -t %s%s %s %s", m.FSType, opts, m.Source, m.Target)
}

func (m mount) do() error {
	mode := m.Mode
	if mode == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(m.Target, mode); err != nil {
		return fmt.Errorf("%v: %w", m, err)
	}
	if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("%v: %w", m, err)
	}
	log.Print(m)
	return nil
}

const nosuid = unix.MS_NOSUID | unix.MS_NODEV

// earlyMounts are the kernel filesystems PID 1 needs before anything else.
// /sys is read-only: a writable sysfs would let a process holding
// CAP_DAC_OVERRIDE (see Boot.WorkspaceCaps) set uevent_helper and run code
// as root.
func earlyMounts() error {
	for _, m := range []mount{
		{Source: "proc", Target: "/proc", FSType: "proc", Flags: nosuid | unix.MS_NOEXEC},
		{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nosuid | unix.MS_NOEXEC | unix.MS_RDONLY},
		{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	} {
		if err := m.do(); err != nil && !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	return nil
}

func mountAll(cfg *control.Boot) error {
	steps := []mount{
		{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "gid=5,mode=620,ptmxmode=666"},
		{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: nosuid, Data: "mode=1777", Mode: 0o1777},
		{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: nosuid, Data: "mode=1777", Mode: 0o1777},
		{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: nosuid | unix.MS_NOEXEC, Data: "mode=0755"},
	}
	// Shares mount shortest path first, so a share nested inside another
	// (a workspace under the sandbox home, say) lands on top of it.
	shares := slices.Clone(cfg.Mounts)
	slices.SortStableFunc(shares, func(a, b control.Mount) int { return len(a.Path) - len(b.Path) })
	for _, s := range shares {
		data := "trans=virtio,version=9p2000.L,msize=262144"
		if s.Cache != "" {
			data += ",cache=" + s.Cache
		}
		if s.Options != "" {
			data += "," + s.Options
		}
		var flags uintptr = unix.MS_NODEV
		if s.ReadOnly {
			flags |= unix.MS_RDONLY
		} else {
			flags |= unix.MS_NOSUID
		}
		steps = append(steps, mount{Source: s.Tag, Target: s.Path, FSType: "9p", Flags: flags, Data: data})
	}
	for _, m := range steps {
		if err := m.do(); err != nil {
			return err
		}
	}
	// Merged-usr: the host's /bin, /lib, /sbin are symlinks into /usr, and so
	// are ours (only those whose target exists on this host).
	for _, d := range []string{"bin", "sbin", "lib", "lib64", "lib32", "libx32"} {
		if _, err := os.Stat("/usr/" + d); err != nil {
			continue
		}
		if err := symlink("usr/"+d, "/"+d); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{
		"/dev/ptmx": "pts/ptmx", "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2",
	} {
		if err := symlink(target, name); err != nil {
			return err
		}
	}
	if err := os.MkdirAll("/var/tmp", 0o1777); err != nil {
		return err
	}
	return os.Chmod("/var/tmp", 0o1777)
}

func symlink(target, name string) error {
	_ = os.Remove(name)
	if err := os.Symlink(target, name); err != nil {
		return fmt.Errorf("ln -s %s %s: %w", target, name, err)
	}
	return nil
}

// unmountAll unmounts the 9p shares so the host sees every write flushed.
func unmountAll() {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range slices.Backward(lines) {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "9p" {
			if err := unix.Unmount(f[1], 0); err != nil {
				_ = unix.Unmount(f[1], unix.MNT_DETACH)
			}
		}
	}
}
