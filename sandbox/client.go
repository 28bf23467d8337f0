package sandbox

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/internal/version"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"golang.org/x/sys/unix"
)

// ErrNotRunning means the sandbox has no live supervisor.
var ErrNotRunning = errors.New("sandbox is not running")

// Client talks to a sandbox's supervisor.
type Client struct {
	sb  *Sandbox
	pid int // supervisor pid
}

// Dial checks that the sandbox's supervisor answers.
func Dial(ctx context.Context, sb *Sandbox) (*Client, *Status, error) {
	c := &Client{sb: sb}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.pid = st.Pid
	return c, st, nil
}

func (c *Client) connect(ctx context.Context, req supRequest) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.sb.SupSocket())
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrNotRunning, c.sb.Workspace)
	}
	if err := control.NewWriter(conn).JSON(control.TypeJSON, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	return conn, nil
}

func (c *Client) request(ctx context.Context, req supRequest) (*supReply, error) {
	conn, err := c.connect(ctx, req)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var r supReply
	if err := control.ReadJSON(conn, control.TypeJSON, &r); err != nil {
		return nil, fmt.Errorf("%w: supervisor did not answer: %v", ErrNotRunning, err)
	}
	if r.Error != "" {
		return nil, errors.New(r.Error)
	}
	return &r, nil
}

// Status asks the supervisor about the sandbox.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	r, err := c.request(ctx, supRequest{Op: opStatus})
	if err != nil {
		return nil, err
	}
	if r.Status == nil {
		return nil, errors.New("supervisor sent no status")
	}
	return r.Status, nil
}

// Pid is the supervisor's process id as of the last Dial or Ensure.
func (c *Client) Pid() int { return c.pid }

// WaitGone waits until this client's supervisor process has exited: after
// an attach failed because the VM died, before starting a new one.
func (c *Client) WaitGone(ctx context.Context) error {
	if c.pid <= 0 {
		return nil
	}
	return waitGone(ctx, c.pid)
}

// SetNetwork replaces the running VM's egress rules. Flows already open
// keep going; new lookups and connections follow n.
func (c *Client) SetNetwork(ctx context.Context, n Network) error {
	_, err := c.request(ctx, supRequest{Op: opNet, Network: &n})
	return err
}

// Stop asks the supervisor to power the VM off and waits until it is gone.
func (c *Client) Stop(ctx context.Context) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if _, err := c.request(ctx, supRequest{Op: opStop}); err != nil {
		return err
	}
	return waitGone(ctx, st.Pid)
}

// waitGone waits for a process to exit (it is not our child).
func waitGone(ctx context.Context, pid int) error {
	for {
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return nil
		}
		// A zombie counts as gone.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("supervisor pid %d still running: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ExecIO is a process's stdio on the client side.
type ExecIO struct {
	Stdin          io.Reader // nil: the process gets /dev/null
	Stdout, Stderr io.Writer
	Resize         <-chan control.Winsize
	Signals        <-chan os.Signal
}

// ExecError is a process that could not start in the VM.
type ExecError struct {
	Msg  string
	Code int // 127 not found, 126 not executable, 1 otherwise
}

func (e *ExecError) Error() string { return e.Msg }

// Exec runs a process in the VM and returns its exit code (128+N when
// killed by signal N).
func (c *Client) Exec(ctx context.Context, req control.Exec, sio ExecIO) (int, error) {
	conn, err := c.connect(ctx, supRequest{Op: opAttach})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var sr supReply
	if err := control.ReadJSON(conn, control.TypeJSON, &sr); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	if sr.Error != "" {
		return 0, fmt.Errorf("%w: %s", ErrNotRunning, sr.Error)
	}
	req.Stdin = sio.Stdin != nil
	w := control.NewWriter(conn)
	if err := w.JSON(control.TypeJSON, control.Request{Op: control.OpExec, Exec: &req}); err != nil {
		return 0, c.lost(err)
	}
	var reply control.Reply
	if err := control.ReadJSON(conn, control.TypeJSON, &reply); err != nil {
		return 0, c.lost(err)
	}
	if reply.Error != "" {
		code := 1
		switch reply.ErrorKind {
		case "notfound":
			code = 127
		case "noexec":
			code = 126
		}
		return code, &ExecError{Msg: reply.Error, Code: code}
	}
	if sio.Stdin != nil {
		go func() {
			_, err := io.Copy(control.StreamWriter{W: w, Type: control.TypeStdin}, sio.Stdin)
			if err == nil {
				_ = w.Frame(control.TypeStdin, nil) // EOF
			}
		}()
	}
	evDone := make(chan struct{})
	defer close(evDone)
	go func() {
		for {
			select {
			case <-evDone:
				return
			case sz := <-sio.Resize:
				_ = w.JSON(control.TypeResize, sz)
			case sig := <-sio.Signals:
				if s, ok := sig.(syscall.Signal); ok {
					var b [4]byte
					binary.BigEndian.PutUint32(b[:], uint32(s))
					_ = w.Frame(control.TypeSignal, b[:])
				}
			}
		}
	}()
	br := bufio.NewReaderSize(conn, 64<<10)
	for {
		typ, p, err := control.ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, c.lost(err)
		}
		switch typ {
		case control.TypeStdout:
			if sio.Stdout != nil {
				_, _ = sio.Stdout.Write(p)
			}
		case control.TypeStderr:
			if sio.Stderr != nil {
				_, _ = sio.Stderr.Write(p)
			}
		case control.TypeExit:
			var st control.ExitStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return 0, err
			}
			if st.Error != "" {
				return st.Code, errors.New(st.Error)
			}
			return st.Code, nil
		}
	}
}

// lost explains a connection that ended before the process's exit status.
func (c *Client) lost(err error) error {
	return fmt.Errorf("lost the connection to the sandbox VM before the command finished (%v); the VM stopped or crashed: see `acp-sandbox logs %s`", err, c.sb.ID)
}

// StartOptions configure Ensure.
type StartOptions struct {
	// Exe is the acp-sandbox binary started as supervisor; "" = this
	// executable.
	Exe string
	// Args are extra `supervise` flags (--accel, --cpus, …).
	Args []string
	// Progress receives progress lines while a VM starts; nil = discard.
	Progress io.Writer
}

// Ensure returns a client of the sandbox's running supervisor, starting one
// (and so booting the VM) if none runs. Concurrent callers boot one VM: the
// start lock serializes them and the later ones find it running.
func Ensure(ctx context.Context, sb *Sandbox, so StartOptions) (*Client, *Status, error) {
	if c, st, err := Dial(ctx, sb); err == nil {
		return c, st, nil
	}
	if err := sb.Prepare(); err != nil {
		return nil, nil, err
	}
	lock, err := lockWait(ctx, sb.startLock())
	if err != nil {
		return nil, nil, err
	}
	defer lock.Close()
	if c, st, err := Dial(ctx, sb); err == nil {
		return c, st, nil
	}
	if err := cleanStale(ctx, sb); err != nil {
		return nil, nil, err
	}
	if err := spawnSupervisor(ctx, sb, so); err != nil {
		return nil, nil, err
	}
	return Dial(ctx, sb)
}

// cleanStale removes what a crashed supervisor left: a QEMU that outlived it
// (only if its command line names our control socket) and socket files.
func cleanStale(ctx context.Context, sb *Sandbox) error {
	l, err := tryLock(sb.supLock())
	if err != nil {
		return err
	}
	if l == nil {
		// Alive but not answering yet (or hung): give it a moment.
		deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for deadline.Err() == nil {
			if _, _, err := Dial(deadline, sb); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("the supervisor of %s holds its lock but does not answer; see %s, or kill it and retry", sb.Workspace, sb.Log())
	}
	defer l.Close()
	if b, err := os.ReadFile(sb.QEMUPidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if strings.Contains(string(cmd), sb.ControlSocket()) {
				_ = unix.Kill(pid, unix.SIGKILL)
				_ = waitGone(ctx, pid)
			}
		}
	}
	for _, p := range []string{sb.SupSocket(), sb.ControlSocket(), sb.QMPSocket(), sb.QEMUPidFile()} {
		_ = os.Remove(p)
	}
	return nil
}

// ReadyFDEnv names the file descriptor on which a supervisor reports
// progress lines and then "ready" or "error: …" to the process that started
// it.
const ReadyFDEnv = "ACP_SANDBOX_READY_FD"

func spawnSupervisor(ctx context.Context, sb *Sandbox, so StartOptions) error {
	exe := so.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(sb.Log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", sb.Log(), err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	args := append([]string{"supervise", "--workspace", sb.Workspace}, so.Args...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Env = append(os.Environ(), ReadyFDEnv+"=3")
	// Detached: its own session, so a Ctrl-C in the terminal that started it
	// does not stop the shared VM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("cannot start supervisor: %w", err)
	}
	pw.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return ctx.Err()
		case l, ok := <-lines:
			if !ok {
				err := <-exited
				return fmt.Errorf("the sandbox supervisor exited during start (%v); log: %s\n%s", err, sb.Log(), vmm.Tail(sb.Log(), 10))
			}
			switch {
			case l == "ready":
				return nil
			case strings.HasPrefix(l, "error: "):
				return errors.New(strings.ReplaceAll(strings.TrimPrefix(l, "error: "), `\n`, "\n"))
			case so.Progress != nil:
				fmt.Fprintf(so.Progress, "acp-sandbox: %s\n", l)
			}
		}
	}
}

// lockWait takes an exclusive flock, waiting for it while ctx allows.
func lockWait(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := tryLock(path)
		if err != nil || f != nil {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CheckStatic refuses to boot a dynamically linked binary as the guest's
// /init: the initramfs has no C library.
func CheckStatic(exe string) error {
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run as the VM's init; rebuild it with CGO_ENABLED=0 go build ./cmd/acp-sandbox", exe)
		}
	}
	return nil
}

// Version is the running binary's version hash.
func Version() string {
	v, _ := version.Hash()
	return v
}
