package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/acp-sandbox/acp-sandbox/bench/internal/walk"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"golang.org/x/sys/unix"
)

// console is a guest serial console read live through a FIFO, so every line
// gets the host time it was written at.
type console struct {
	f     *os.File
	done  chan struct{}
	mu    sync.Mutex
	lines []consoleLine
}

type consoleLine struct {
	at   time.Time
	text string
}

func newConsole(path string) (*console, error) {
	_ = os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo %s: %w", path, err)
	}
	// O_RDWR keeps a writer reference of our own, so the reader neither
	// blocks in open nor sees EOF before QEMU opens its end.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	c := &console{f: f, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		r := bufio.NewReader(f)
		for {
			s, err := r.ReadString('\n')
			if s != "" {
				c.mu.Lock()
				c.lines = append(c.lines, consoleLine{time.Now(), strings.TrimRight(s, "\r\n")})
				c.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return c, nil
}

// close drains what QEMU wrote before it exited and stops reading.
func (c *console) close() []consoleLine {
	_ = c.f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	<-c.done
	c.f.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

func tailLines(ls []consoleLine, n int) string {
	var b strings.Builder
	for _, l := range ls[max(0, len(ls)-n):] {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// bareVMs tracks the bare QEMUs we run, so an interrupt kills them.
type bareVMs struct {
	mu  sync.Mutex
	set map[*vmm.QEMU]bool
}

func (b *bareVMs) add(q *vmm.QEMU) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.set == nil {
		b.set = map[*vmm.QEMU]bool{}
	}
	b.set[q] = true
}

func (b *bareVMs) remove(q *vmm.QEMU) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.set, q)
}

func (b *bareVMs) killAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for q := range b.set {
		_ = q.Kill()
		<-q.Done()
	}
}

// bareVM is a running bare VM: QEMU with the product's own argv
// (vmm.Config.Args), a client on its control socket (QEMU runs the guest
// only once one is connected), and its console read through a FIFO.
type bareVM struct {
	vms   *bareVMs
	q     *vmm.QEMU
	conn  net.Conn
	con   *console
	dir   string
	start time.Time // just before QEMU was started

	once sync.Once // finish
	boot *bareBoot
	err  error
}

func (e *env) startBare(ctx context.Context, vms *bareVMs, cfg vmm.Config) (*bareVM, error) {
	dir, err := os.MkdirTemp(e.runtime, "bare")
	if err != nil {
		return nil, err
	}
	cfg.ControlSocket = filepath.Join(dir, "ctl.sock")
	cfg.QMPSocket = filepath.Join(dir, "qmp.sock")
	cfg.ConsoleLog = filepath.Join(dir, "console")
	cfg.StderrLog = filepath.Join(dir, "qemu.log")
	con, err := newConsole(cfg.ConsoleLog)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	v := &bareVM{vms: vms, con: con, dir: dir, start: time.Now()}
	if v.q, err = vmm.Start(cfg); err != nil {
		con.close()
		os.RemoveAll(dir)
		return nil, err
	}
	vms.add(v.q)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if v.conn, err = v.q.ConnectControl(cctx); err != nil {
		_, werr := v.kill(err)
		return nil, werr
	}
	return v, nil
}

// bareBoot is a finished bare VM's record.
type bareBoot struct {
	start time.Time     // just before QEMU was started
	exit  time.Duration // start to QEMU's exit
	lines []consoleLine
}

// lineAt is how long after start the first console line containing s came.
func (b *bareBoot) lineAt(s string) (time.Duration, bool) {
	for _, l := range b.lines {
		if strings.Contains(l.text, s) {
			return l.at.Sub(b.start), true
		}
	}
	return 0, false
}

// wait waits for the guest to power off (or kills it when ctx ends or
// three minutes pass) and cleans up.
func (v *bareVM) wait(ctx context.Context) (*bareBoot, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	select {
	case <-v.q.Done():
		return v.finish(v.q.Err())
	case <-ctx.Done():
		return v.kill(fmt.Errorf("bare VM did not power off: %w", ctx.Err()))
	}
}

// kill ends the VM at once because of cause.
func (v *bareVM) kill(cause error) (*bareBoot, error) {
	_ = v.q.Kill()
	return v.finish(cause)
}

// finish records the ended VM and releases what it held; only the first
// call does anything.
func (v *bareVM) finish(err error) (*bareBoot, error) {
	v.once.Do(func() {
		<-v.q.Done()
		b := &bareBoot{start: v.start, exit: time.Since(v.start)}
		v.vms.remove(v.q)
		if v.conn != nil {
			v.conn.Close()
		}
		b.lines = v.con.close()
		os.RemoveAll(v.dir)
		if err != nil {
			v.err = fmt.Errorf("%w; console tail:\n%s", err, tailLines(b.lines, 15))
		} else {
			v.boot = b
		}
	})
	return v.boot, v.err
}

// canaryMarker is what the product's PID 1 logs in canary mode right before
// it powers off (guest/init_linux.go).
const canaryMarker = "canary boot"

// bareCanary boots the product's initramfs in canary mode: kernel boot, our
// binary as /init, which powers off at once. It returns the time until the
// guest's init logged (the boot's cost up to user space) and until QEMU
// exited.
func (e *env) bareCanary(ctx context.Context, vms *bareVMs, base vmm.Config) (toInit, toExit time.Duration, err error) {
	param, err := control.EncodeBoot(&control.Boot{Canary: true})
	if err != nil {
		return 0, 0, err
	}
	cfg := base
	cfg.Cmdline = param
	v, err := e.startBare(ctx, vms, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("bare canary boot: %w", err)
	}
	b, err := v.wait(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("bare canary boot: %w", err)
	}
	toInit, ok := b.lineAt(canaryMarker)
	if !ok {
		return 0, 0, fmt.Errorf("bare canary boot: no %q line on the console:\n%s", canaryMarker, tailLines(b.lines, 15))
	}
	return toInit, b.exit, nil
}

// walkVM is a bare VM running bench/bareinit, which walks the workspace
// tree whenever asked on the control port.
type walkVM struct {
	*bareVM
	r *bufio.Reader
}

// startWalkVM boots cfg (bareinit as /init) and waits until the workspace
// is mounted.
func (e *env) startWalkVM(ctx context.Context, vms *bareVMs, cfg vmm.Config, mnt, root string) (*walkVM, error) {
	cfg.Cmdline = strings.Join([]string{"acpbench_mnt=" + mnt, "acpbench_walk=" + root, "acpbench_port=" + vmm.ControlPort}, " ")
	v, err := e.startBare(ctx, vms, cfg)
	if err != nil {
		return nil, fmt.Errorf("bare walk VM: %w", err)
	}
	w := &walkVM{bareVM: v, r: bufio.NewReader(v.conn)}
	if l, err := w.line(ctx, 3*time.Minute); err != nil || l != "ready" {
		_, kerr := v.kill(fmt.Errorf("bare walk VM did not come up (%q, %v)", l, err))
		return nil, kerr
	}
	return w, nil
}

func (w *walkVM) line(ctx context.Context, timeout time.Duration) (string, error) {
	_ = w.conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = w.conn.SetDeadline(time.Now()) })
	defer stop()
	l, err := w.r.ReadString('\n')
	return strings.TrimSpace(l), err
}

// walk runs one walk in the VM.
func (w *walkVM) walk(ctx context.Context) (walk.Result, error) {
	if _, err := io.WriteString(w.conn, "walk\n"); err != nil {
		return walk.Result{}, err
	}
	l, err := w.line(ctx, 5*time.Minute)
	if err != nil {
		return walk.Result{}, fmt.Errorf("bare walk VM: %w", err)
	}
	return walk.Parse(l)
}

// close powers the VM off; it may be called again.
func (w *walkVM) close(ctx context.Context) error {
	select {
	case <-w.q.Done():
	default:
		_, _ = io.WriteString(w.conn, "quit\n")
	}
	_, err := w.wait(ctx)
	return err
}
