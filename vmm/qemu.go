// Package vmm runs microVMs: the QEMU backend (KVM or TCG), accelerator
// detection, and the guest's boot artifacts (the kernel lives in
// vmm/kernel; the initramfs is generated here). It knows nothing of
// workspaces, ACP or policy: the sandbox package composes it.
package vmm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	AccelKVM Accel = "kvm"
	AccelTCG Accel = "tcg"
)

// ControlPort is the virtio-serial port name of the control channel.
const ControlPort = "acp-sandbox.ctl"

// GuestMAC is the guest NIC's ethernet address.
const GuestMAC = "5a:94:ef:e4:0c:ee"

// netFD is the descriptor number of Config.Net in QEMU.
const netFD = 3

// Share is a host directory exported to the guest over 9p.
type Share struct {
	Tag      string
	HostPath string
	ReadOnly bool
}

// Config describes one microVM. Zero values are documented per field.
type Config struct {
	QEMU      string // binary; "" = qemu-system-x86_64 from $PATH
	Kernel    string // uncompressed vmlinux (PVH boot)
	Initrd    string
	Cmdline   string // appended to the base command line
	CPUs      int    // 0 = 2
	MemoryMiB int    // 0 = 2048
	Accel     Accel  // "" = tcg
	TSCkHz    int    // host TSC frequency; 0 = read /proc/cpuinfo (TCG only)
	Shares    []Share
	// Net, if set, is one end of a SOCK_STREAM socketpair carrying the
	// VM's ethernet frames in QEMU's stream framing (4-byte big-endian
	// length, then the frame): the guest gets one virtio-net NIC on it.
	// nil = no NIC, loopback only. Start passes it to QEMU as fd 3.
	Net *os.File

	ControlSocket string // QEMU listens here and waits for one client before booting
	QMPSocket     string
	ConsoleLog    string // guest serial console
	StderrLog     string // QEMU's own stderr
}

// qemuEscape doubles commas, QEMU's option-value escape.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Args returns QEMU's argument vector for c.
func (c *Config) Args() ([]string, error) {
	if c.Kernel == "" || c.Initrd == "" || c.ControlSocket == "" {
		return nil, errors.New("vmm: kernel, initrd and control socket are required")
	}
	cpus, mem := c.CPUs, c.MemoryMiB
	if cpus <= 0 {
		cpus = 2
	}
	if mem <= 0 {
		mem = 2048
	}
	// Measured on TCG (DESIGN.md §4): pit=off needs tsc_early_khz or boots
	// hang when the host is busy; rtc=off costs ~2 s; ACPI must stay on
	// because Debian kernels find virtio-mmio devices through it.
	cmdline := []string{"console=ttyS0", "quiet", "panic=-1", "cryptomgr.notests", "random.trust_cpu=on", "rdinit=/init"}
	args := []string{
		"-M", "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
	}
	switch c.Accel {
	case AccelKVM:
		args = append(args, "-accel", "kvm", "-cpu", "host")
	case AccelTCG, "":
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
		khz := c.TSCkHz
		if khz == 0 {
			khz = HostTSCkHz()
		}
		if khz > 0 {
			// tsc=reliable: TCG's TSC follows the host clock, so skip the
			// watchdog that otherwise demotes it to jiffies.
			cmdline = append(cmdline, "tsc_early_khz="+strconv.Itoa(khz), "tsc=reliable")
		}
	default:
		return nil, fmt.Errorf("vmm: unknown accelerator %q (want kvm or tcg)", c.Accel)
	}
	if c.Cmdline != "" {
		cmdline = append(cmdline, c.Cmdline)
	}
	args = append(args, "-kernel", c.Kernel, "-initrd", c.Initrd, "-append", strings.Join(cmdline, " "))
	if c.ConsoleLog != "" {
		args = append(args, "-chardev", "file,id=con,path="+qemuEscape(c.ConsoleLog), "-serial", "chardev:con")
	}
	if c.QMPSocket != "" {
		args = append(args, "-qmp", "unix:"+qemuEscape(c.QMPSocket)+",server=on,wait=off")
	}
	// wait=on: QEMU does not start the guest until the supervisor has
	// connected, so the guest's first read never sees a disconnected port.
	args = append(args,
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ctl,path="+qemuEscape(c.ControlSocket)+",server=on,wait=on",
		"-device", "virtserialport,chardev=ctl,name="+ControlPort,
	)
	if c.Net != nil {
		// The userspace stack on the other end is the whole network:
		// no QEMU user-mode networking (slirp) anywhere.
		args = append(args,
			"-netdev", fmt.Sprintf("stream,id=net0,server=off,addr.type=fd,addr.str=%d", netFD),
			"-device", "virtio-net-device,netdev=net0,mac="+GuestMAC,
		)
	}
	for i, s := range c.Shares {
		opt := fmt.Sprintf("local,id=fs%d,path=%s,security_model=none,multidevs=remap", i, qemuEscape(s.HostPath))
		if s.ReadOnly {
			opt += ",readonly=on"
		}
		args = append(args, "-fsdev", opt, "-device", fmt.Sprintf("virtio-9p-device,fsdev=fs%d,mount_tag=%s", i, qemuEscape(s.Tag)))
	}
	return args, nil
}

// Machine is a running VM.
type Machine interface {
	Pid() int
	// Done is closed when the VM process has exited; Err then tells why.
	Done() <-chan struct{}
	Err() error
	// Kill ends the VM at once.
	Kill() error
}

// QEMU is a running QEMU process.
type QEMU struct {
	cmd  *exec.Cmd
	cfg  Config
	done chan struct{}
	err  error
}

var _ Machine = (*QEMU)(nil)

// Start launches QEMU. The returned machine is running but the guest has
// not booted: QEMU waits for a client on the control socket.
func Start(cfg Config) (*QEMU, error) {
	args, err := cfg.Args()
	if err != nil {
		return nil, err
	}
	bin := cfg.QEMU
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("vmm: %s not found: install it with `apt-get install --no-install-recommends qemu-system-x86`", bin)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = nil
	if cfg.Net != nil {
		cmd.ExtraFiles = []*os.File{cfg.Net} // fd 3 = netFD
	}
	if cfg.StderrLog != "" {
		f, err := os.OpenFile(cfg.StderrLog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("vmm: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	// If our process dies, QEMU must not live on as an orphan. (Pdeathsig
	// follows the forking thread; Go keeps threads of unlocked goroutines
	// alive, so this holds for the process's life.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vmm: start %s: %w", path, err)
	}
	q := &QEMU{cmd: cmd, cfg: cfg, done: make(chan struct{})}
	go func() {
		q.err = cmd.Wait()
		close(q.done)
	}()
	return q, nil
}

func (q *QEMU) Pid() int              { return q.cmd.Process.Pid }
func (q *QEMU) Done() <-chan struct{} { return q.done }
func (q *QEMU) Kill() error           { return q.cmd.Process.Kill() }

// Err is QEMU's exit error, with its stderr's last lines when it failed.
func (q *QEMU) Err() error {
	<-q.done
	if q.err == nil {
		return nil
	}
	if q.cfg.StderrLog != "" {
		if b, _ := os.ReadFile(q.cfg.StderrLog); len(strings.TrimSpace(string(b))) > 0 {
			return fmt.Errorf("qemu: %w: %s", q.err, tail(string(b), 5))
		}
	}
	return fmt.Errorf("qemu: %w", q.err)
}

// ConnectControl connects to QEMU's control socket, retrying until QEMU has
// created it, the context ends or QEMU exits.
func (q *QEMU) ConnectControl(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "unix", q.cfg.ControlSocket)
		if err == nil {
			return c, nil
		}
		select {
		case <-q.done:
			return nil, fmt.Errorf("vmm: QEMU exited before the control channel opened: %w", q.Err())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// QMPQuit asks QEMU to quit through its monitor socket.
func QMPQuit(ctx context.Context, socket string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadBytes('\n'); err != nil { // greeting
		return err
	}
	for _, cmd := range []string{"qmp_capabilities", "quit"} {
		b, _ := json.Marshal(map[string]string{"execute": cmd})
		if _, err := c.Write(append(b, '\n')); err != nil {
			return err
		}
		if _, err := r.ReadBytes('\n'); err != nil && cmd != "quit" {
			return err
		}
	}
	return nil
}

var (
	tscOnce sync.Once
	tscKHz  int
)

// HostTSCkHz reads the host's TSC frequency as the kernel sees it. The
// guest's early TSC calibration needs it under TCG (DESIGN.md §4).
func HostTSCkHz() int {
	tscOnce.Do(func() {
		b, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			return
		}
		m := regexp.MustCompile(`(?m)^cpu MHz\s*:\s*([0-9.]+)`).FindSubmatch(b)
		if m == nil {
			return
		}
		if mhz, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			tscKHz = int(mhz * 1000)
		}
	})
	return tscKHz
}

// Version returns QEMU's version string ("7.2.22"), or an error when the
// binary is missing.
func Version(ctx context.Context, bin string) (string, error) {
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`version ([0-9][^ \n]*)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("vmm: cannot parse %q", strings.TrimSpace(string(out)))
	}
	return string(m[1]), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Tail returns the last n lines of a file (a console log, say), or "".
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	return tail(string(b), n)
}
