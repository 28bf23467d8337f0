// Package guest is PID 1 inside the microVM. The acp-sandbox binary itself
// is the initramfs's /init; when it finds itself PID 1 it runs Main.
//
// Boot, as a script: load the modules the host listed, mount the kernel
// filesystems, mount the 9p shares (host /usr read-only, the sandbox's own
// home, the workspace at its host path), write a minimal /etc, open the
// control port and serve the host. Everything the host sends after boot
// (hostname, /etc files, environment) arrives through the control channel,
// never the kernel command line, which any guest process can read.
//
// The control port is a virtio-serial device node that only root can open,
// and PID 1 holds it open for the VM's whole life; a virtio port admits one
// opener, so no process the sandbox user starts can speak to the host.
package guest

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"golang.org/x/sys/unix"
)

// Main runs PID 1. It never returns: on any fatal error it powers off, so a
// broken boot ends QEMU (the host reports the console tail) instead of
// hanging.
func Main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("init: ")
	if err := boot(); err != nil {
		log.Printf("fatal: %v", err)
	}
	powerOff()
}

func boot() error {
	// The console may not exist yet if devtmpfs is not mounted; mount it first
	// so our log reaches ttyS0 (the host's console log).
	if err := earlyMounts(); err != nil {
		return err
	}
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		log.SetOutput(f)
		os.Stdout, os.Stderr = f, f
	}
	// The protocol version is /init's content hash, recorded by the host
	// that built the initramfs from this very binary.
	vb, err := os.ReadFile(control.VersionFile)
	if err != nil {
		return err
	}
	version := strings.TrimSpace(string(vb))
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	cfg, err := control.DecodeBoot(string(cmdline))
	if err != nil {
		return err
	}
	if cfg.Canary {
		log.Printf("canary boot: powering off")
		return nil
	}
	// Reap orphans from the start: anything re-parented to us must not linger
	// as a zombie. Signals before Notify are not lost: SIGCHLD is level-like
	// for our purposes because the reaper loops on wait4 until empty.
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, unix.SIGCHLD)
	// PID 1 dying panics the kernel, and Go's default for these is to exit:
	// catch and drop them. (Not signal.Ignore: an ignored disposition is
	// inherited by every exec'd process, which then could not be stopped.)
	drop := make(chan os.Signal, 8)
	signal.Notify(drop, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for s := range drop {
			log.Printf("ignoring %v", s)
		}
	}()
	go reapLoop(sigc)

	if err := loadModules(control.ModulesList); err != nil {
		return err
	}
	// The network comes up in the background: DHCP waits on the host,
	// as do the 9p mounts and the host's setup, which it overlaps.
	netDone := make(chan struct{})
	var netErr error
	go func() {
		defer close(netDone)
		if netErr = configureNetwork(context.Background(), cfg.Net); netErr != nil {
			log.Printf("%v", netErr)
		}
	}()
	if err := mountAll(cfg); err != nil {
		return err
	}
	if err := writeBaseEtc(cfg); err != nil {
		return err
	}
	port, err := openPort(cfg.Port, 30*time.Second)
	if err != nil {
		return err
	}
	log.Printf("control port open; serving")
	srv := &server{version: version, boot: cfg, port: port, netDone: netDone, netErr: &netErr}
	return srv.serve()
}

// openPort finds the virtio-serial port by name and opens it. Device nodes
// appear asynchronously after virtio_console loads, hence the poll.
func openPort(name string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil || strings.TrimSpace(string(b)) != name {
				continue
			}
			dev := "/dev/" + filepath.Base(filepath.Dir(n))
			f, err := os.OpenFile(dev, os.O_RDWR, 0)
			if err == nil {
				// Belt and braces: the node is root-only even though our
				// open holds the port exclusively.
				_ = os.Chmod(dev, 0o600)
				return f, nil
			}
			if !os.IsNotExist(err) {
				return nil, fmt.Errorf("open control port %s: %w", dev, err)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("control port %q did not appear within %v", name, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// powerOff ends the VM: stop every process, flush 9p writes, power off. With
// -no-reboot and ACPI, QEMU exits when the guest powers off.
func powerOff() {
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && othersAlive() {
		time.Sleep(20 * time.Millisecond)
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	unmountAll()
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Reboot only returns on failure; PID 1 must never exit (kernel panic).
	select {}
}

// othersAlive reports whether any process besides PID 1 and kernel threads
// is still running.
func othersAlive() bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := e.Name()
		if pid == "1" || pid[0] < '0' || pid[0] > '9' {
			continue
		}
		// Kernel threads have an empty cmdline.
		if b, err := os.ReadFile("/proc/" + pid + "/cmdline"); err == nil && len(b) > 0 {
			return true
		}
	}
	return false
}
