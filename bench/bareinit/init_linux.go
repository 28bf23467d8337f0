// Command bareinit is PID 1 of the bench's bare VM: the baseline of the
// workspace-metadata benchmark. It does only what a walk over the workspace
// needs: mount /proc, /sys and /dev, load the modules the host listed (the
// same ones the sandbox's PID 1 loads, resolved from the same kernel), mount
// the workspace 9p share with the sandbox's exact options and flags, and
// then walk on request: the host writes "walk" lines on the virtio-serial
// port and gets one result line back for each, so it can alternate walks in
// this VM with walks in the sandbox. EOF or "quit" powers off.
//
// Parameters come from the kernel command line: acpbench_mnt=DIR (where to
// mount the "ws" tag), acpbench_walk=DIR (the tree to walk) and
// acpbench_port=NAME (the virtio-serial port).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/bench/internal/walk"
	"golang.org/x/sys/unix"
)

// ModulesList is where the host puts the module paths, one per line, in
// load order.
const ModulesList = "/bench/modules.list"

// WorkspaceMountOptions are the sandbox's workspace mount options
// (guest/mount_linux.go plus the ws share's access=any from
// sandbox/supervisor.go); the mount flags are its MS_NODEV|MS_NOSUID.
const WorkspaceMountOptions = "trans=virtio,version=9p2000.L,msize=262144,access=any"

var console io.Writer = os.Stderr

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(console, "bareinit: %v\n", err)
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // PID 1 must not exit
}

func run() error {
	for _, m := range []struct {
		src, dst, typ string
		flags         uintptr
		data          string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.typ, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		console = f
	}
	params, err := cmdline()
	if err != nil {
		return err
	}
	mnt, root, portName := params["acpbench_mnt"], params["acpbench_walk"], params["acpbench_port"]
	if mnt == "" || root == "" || portName == "" {
		return errors.New("acpbench_mnt, acpbench_walk and acpbench_port are required")
	}
	if err := loadModules(); err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("ws", mnt, "9p", unix.MS_NODEV|unix.MS_NOSUID, WorkspaceMountOptions); err != nil {
		return fmt.Errorf("mount 9p ws on %s: %w", mnt, err)
	}
	defer unix.Unmount(mnt, 0)
	port, err := openPort(portName)
	if err != nil {
		return err
	}
	defer port.Close()
	if _, err := fmt.Fprintln(port, "ready"); err != nil {
		return err
	}
	sc := bufio.NewScanner(port)
	for sc.Scan() {
		switch sc.Text() {
		case "walk":
			r, err := walk.Walk(root)
			if err != nil {
				fmt.Fprintf(port, "error %v\n", err)
				continue
			}
			fmt.Fprintln(port, r)
		case "quit":
			return nil
		default:
			fmt.Fprintf(port, "error unknown command %q\n", sc.Text())
		}
	}
	return sc.Err()
}

func cmdline() (map[string]string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func loadModules() error {
	b, err := os.ReadFile(ModulesList)
	if err != nil {
		return err
	}
	for _, p := range strings.Fields(string(b)) {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("insmod %s: %w", p, err)
		}
	}
	return nil
}

// openPort opens the virtio-serial port called name; its device node
// appears shortly after virtio_console loads.
func openPort(name string) (*os.File, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			if b, err := os.ReadFile(n); err == nil && strings.TrimSpace(string(b)) == name {
				if f, err := os.OpenFile("/dev/"+filepath.Base(filepath.Dir(n)), os.O_RDWR, 0); err == nil {
					return f, nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, fmt.Errorf("virtio port %q did not appear", name)
}
