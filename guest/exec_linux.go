package guest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PID 1 reaps every child, its own and orphans, in one loop. os/exec's Wait
// would race with that loop, so exec'd processes are started with
// os.StartProcess and their status is delivered through waiters.
var procs = struct {
	sync.Mutex
	waiters map[int]chan unix.WaitStatus
}{waiters: map[int]chan unix.WaitStatus{}}

func reapLoop(sigc <-chan os.Signal) {
	for range sigc {
		reap()
	}
}

func reap() {
	procs.Lock()
	defer procs.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := procs.waiters[pid]; ok {
			ch <- ws
			delete(procs.waiters, pid)
		}
	}
}

// startProcess starts a child and registers its waiter atomically with
// respect to the reaper, so an immediate exit is never lost.
//
// The child inherits its working directory from PID 1 instead of getting
// ProcAttr.Dir: Go's child chdirs after setuid, before execve turns the
// ambient capabilities effective, so a user who needs CAP_DAC_OVERRIDE to
// enter the (root-owned, 0700) workspace could not start there. PID 1 uses
// only absolute paths, and starts are serialized by procs' lock.
func startProcess(path string, argv []string, dir string, attr *os.ProcAttr) (int, <-chan unix.WaitStatus, error) {
	procs.Lock()
	defer procs.Unlock()
	if err := os.Chdir(dir); err != nil {
		return 0, nil, err
	}
	defer os.Chdir("/")
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	pid := p.Pid // Release sets p.Pid to -1
	ch := make(chan unix.WaitStatus, 1)
	procs.waiters[pid] = ch
	_ = p.Release()
	return pid, ch, nil
}

// defaultPath puts our own directory first: the host's /usr may hold an
// older acp-sandbox in /usr/local/bin.
const defaultPath = "/.acp-sandbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execEnv builds a process environment: defaults < setup env < request env.
func (s *server) execEnv(req *control.Exec) []string {
	b := s.boot
	env := []string{
		"PATH=" + defaultPath, "HOME=" + b.Home, "USER=" + b.User, "LOGNAME=" + b.User,
		"SHELL=/bin/bash", "LANG=C.UTF-8",
	}
	if req.TTY {
		env = append(env, "TERM=xterm-256color")
	}
	s.mu.Lock()
	env = append(env, s.env...)
	s.mu.Unlock()
	env = append(env, req.Env...)
	// Last one wins, like a shell's export.
	seen := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			out[i] = kv
			continue
		}
		seen[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func getenv(env []string, key string) string {
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// errNotFound and errNoExec map to the shell's exit codes 127 and 126.
var (
	errNotFound = errors.New("command not found")
	errNoExec   = errors.New("permission denied")
)

// lookPath resolves a command like execvp(3) would, with the process's PATH.
func lookPath(file, dir string, env []string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return errNotFound
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return errNoExec
		}
		return nil
	}
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := check(p); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		return p, nil
	}
	var firstErr error = errNotFound
	for _, d := range filepath.SplitList(getenv(env, "PATH")) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		err := check(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, errNoExec) {
			firstErr = errNoExec
		}
	}
	return "", fmt.Errorf("%s: %w", file, firstErr)
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, errNotFound):
		return "notfound"
	case errors.Is(err, errNoExec):
		return "noexec"
	}
	return ""
}

// output is one of a process's output streams and its frame type.
type output struct {
	r   io.Reader
	typ byte
}

func closeOutputs(outs []output) {
	for _, o := range outs {
		if c, ok := o.r.(io.Closer); ok {
			c.Close()
		}
	}
}

// execStream runs one process for one control stream: the request has been
// read; this replies, pumps stdio and ends with an exit frame. If the host
// goes away mid-run, the process group is killed: nothing outlives its
// client.
func (s *server) execStream(st io.ReadWriteCloser, w *control.Writer, req *control.Exec) {
	defer st.Close()
	fail := func(err error) {
		_ = w.JSON(control.TypeJSON, control.Reply{Error: err.Error(), ErrorKind: errorKind(err)})
	}
	if len(req.Argv) == 0 {
		fail(errors.New("exec: empty command"))
		return
	}
	env := s.execEnv(req)
	dir := req.Dir
	if dir == "" {
		dir = s.boot.Workspace
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		fail(fmt.Errorf("working directory %s does not exist in the sandbox", dir))
		return
	}
	path, err := lookPath(req.Argv[0], dir, env)
	if err != nil {
		fail(err)
		return
	}

	sys := &syscall.SysProcAttr{
		Setsid:     true, // own process group: signals and cleanup hit the whole job
		Credential: &syscall.Credential{Uid: uint32(s.boot.UID), Gid: uint32(s.boot.GID), Groups: []uint32{}},
	}
	if s.boot.WorkspaceCaps {
		sys.AmbientCaps = []uintptr{unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER}
	}
	var (
		childFiles []*os.File // closed in the parent after start
		stdin      io.WriteCloser
		ptmx       *os.File
		outs       []output
	)
	closeAll := func() {
		for _, f := range childFiles {
			f.Close()
		}
	}
	if req.TTY {
		m, t, err := pty.Open()
		if err != nil {
			fail(fmt.Errorf("open pty: %w", err))
			return
		}
		if req.Rows > 0 && req.Cols > 0 {
			_ = pty.Setsize(m, &pty.Winsize{Rows: req.Rows, Cols: req.Cols})
		}
		ptmx, stdin = m, m
		childFiles = []*os.File{t}
		sys.Setctty, sys.Ctty = true, 0
		outs = append(outs, output{m, control.TypeStdout})
	} else {
		var in *os.File
		if req.Stdin {
			r, wr, err := os.Pipe()
			if err != nil {
				fail(err)
				return
			}
			in, stdin = r, wr
		} else if in, err = os.Open(os.DevNull); err != nil {
			fail(err)
			return
		}
		childFiles = append(childFiles, in)
		for _, typ := range []byte{control.TypeStdout, control.TypeStderr} {
			r, wr, err := os.Pipe()
			if err != nil {
				closeAll()
				closeOutputs(outs)
				if stdin != nil {
					stdin.Close()
				}
				fail(err)
				return
			}
			childFiles = append(childFiles, wr)
			outs = append(outs, output{r, typ})
		}
	}
	files := childFiles
	if req.TTY {
		files = []*os.File{childFiles[0], childFiles[0], childFiles[0]}
	}
	pid, waitc, err := startProcess(path, req.Argv, dir, &os.ProcAttr{Env: env, Files: files, Sys: sys})
	closeAll()
	if err != nil {
		if stdin != nil {
			stdin.Close()
		}
		closeOutputs(outs)
		if errors.Is(err, unix.EACCES) {
			err = fmt.Errorf("%s: %w", req.Argv[0], errNoExec)
		}
		fail(err)
		return
	}
	if err := w.JSON(control.TypeJSON, control.Reply{}); err != nil {
		killGroup(pid, unix.SIGKILL)
	}

	var pumps sync.WaitGroup
	for _, o := range outs {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			_, _ = io.Copy(control.StreamWriter{W: w, Type: o.typ}, o.r)
		}()
	}
	exited := make(chan struct{})
	go s.stdinPump(st, pid, stdin, ptmx, exited)

	ws := <-waitc
	close(exited)
	// Wait for the output to drain, but not for a background grandchild
	// that inherited stdout and lives on: a second after exit, cut it off.
	drained := make(chan struct{})
	go func() { pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(time.Second):
	}
	closeOutputs(outs)
	if stdin != nil && ptmx == nil {
		stdin.Close()
	}
	status := control.ExitStatus{Code: ws.ExitStatus()}
	if ws.Signaled() {
		status.Signal = int(ws.Signal())
		status.Code = 128 + status.Signal
	}
	_ = w.JSON(control.TypeExit, status)
	st.Close()
}

// stdinPump feeds host frames to the process until it exits or the host
// disconnects (then the process group is killed).
func (s *server) stdinPump(st io.Reader, pid int, stdin io.WriteCloser, ptmx *os.File, exited <-chan struct{}) {
	for {
		typ, p, err := control.ReadFrame(st)
		if err != nil {
			select {
			case <-exited:
			default:
				log.Printf("exec %d: client gone (%v); killing its process group", pid, err)
				killGroup(pid, unix.SIGHUP)
				killGroup(pid, unix.SIGKILL)
			}
			return
		}
		switch typ {
		case control.TypeStdin:
			if stdin == nil {
				continue
			}
			if len(p) == 0 {
				if ptmx != nil {
					// A terminal has no half-close: send the EOF character.
					_, _ = ptmx.Write([]byte{4})
				} else {
					stdin.Close()
				}
				continue
			}
			_, _ = stdin.Write(p)
		case control.TypeResize:
			var sz control.Winsize
			if ptmx != nil && json.Unmarshal(p, &sz) == nil {
				_ = pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
			}
		case control.TypeSignal:
			if len(p) == 4 {
				sig := unix.Signal(binary.BigEndian.Uint32(p))
				if sig > 0 && sig < 65 {
					killGroup(pid, sig)
				}
			}
		}
	}
}

// killGroup signals an exec'd process's group. A pid of 1 or less would
// address PID 1 or every process: never.
func killGroup(pid int, sig unix.Signal) {
	if pid > 1 {
		_ = unix.Kill(-pid, sig)
	}
}
