package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// env is the bench's private world: a temp root holding the binaries, HOME,
// XDG_STATE_HOME and XDG_RUNTIME_DIR (short, for socket paths), and the
// workspaces; the cache dir is shared between runs so the kernel is fetched
// once.
type env struct {
	root     string // temp root; every QEMU of ours names a path under it
	bin      string // static acp-sandbox
	walker   string // static bench/walker
	bareinit string // static bench/bareinit
	lines    string // static bench/lines
	linemem  string // static bench/linemem
	home     string
	state    string // XDG_STATE_HOME
	runtime  string // XDG_RUNTIME_DIR
	cache    string // XDG_CACHE_HOME
	vars     []string
}

func newEnv(cache string) (*env, error) {
	root, err := os.MkdirTemp("", "acpb")
	if err != nil {
		return nil, err
	}
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, err
	}
	e := &env{
		root:     root,
		bin:      filepath.Join(root, "bin", "acp-sandbox"),
		walker:   filepath.Join(root, "bin", "walker"),
		bareinit: filepath.Join(root, "bin", "bareinit"),
		lines:    filepath.Join(root, "bin", "lines"),
		linemem:  filepath.Join(root, "bin", "linemem"),
		home:     filepath.Join(root, "home"),
		runtime:  filepath.Join(root, "rt"),
		cache:    cache,
	}
	e.state = filepath.Join(e.home, ".local", "state")
	for _, d := range []string{e.home, e.runtime, e.cache} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "ACP_SANDBOX_"):
			continue // ours below; a user's --kernel override would skew the comparison
		}
		e.vars = append(e.vars, kv)
	}
	e.vars = append(e.vars,
		"HOME="+e.home,
		"XDG_STATE_HOME="+e.state,
		"XDG_RUNTIME_DIR="+e.runtime,
		"XDG_CACHE_HOME="+e.cache,
		// Safety net: a VM the cleanup somehow missed stops by itself.
		"ACP_SANDBOX_IDLE_TIMEOUT=10m",
	)
	return e, nil
}

// dirs are the sandbox directories the CLI resolves from our environment.
func (e *env) dirs() sandbox.Dirs {
	return sandbox.Dirs{
		State:   filepath.Join(e.state, "acp-sandbox"),
		Runtime: filepath.Join(e.runtime, "acp-sandbox"),
		Cache:   filepath.Join(e.cache, "acp-sandbox"),
	}
}

// mkdir creates a directory under the root and returns its real path.
func (e *env) mkdir(name string) (string, error) {
	p := filepath.Join(e.root, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	return p, nil
}

// build compiles the static acp-sandbox, walker, bareinit, lines and
// linemem binaries from the module this bench belongs to, with the
// acpsandbox_testhooks tag (the network group's fake internet).
func (e *env) build(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("run the bench from inside the acp-sandbox module (go run ./bench)")
	}
	// The test hooks (sandbox/testhooks.go) act only when
	// ACP_SANDBOX_TEST_NET is set, which only the network group does.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "acpsandbox_testhooks", "-o", filepath.Dir(e.bin)+"/",
		"./cmd/acp-sandbox", "./bench/walker", "./bench/bareinit", "./bench/lines", "./bench/linemem")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	return nil
}

// result is a finished CLI process.
type result struct {
	start          time.Time
	elapsed        time.Duration
	stdout, stderr string
	code           int
}

// cli runs acp-sandbox in dir, timing the whole process (fork to exit).
// Only a failure to run at all is an error; exit codes are the caller's.
func (e *env) cli(ctx context.Context, dir string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir, cmd.Env = dir, e.vars
	var o, eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &eb
	start := time.Now()
	err := cmd.Run()
	r := result{start: start, elapsed: time.Since(start), stdout: o.String(), stderr: eb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("acp-sandbox %s: %w", strings.Join(args, " "), ctx.Err())
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("acp-sandbox %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// mustCLI is cli that wants exit status want.
func (e *env) mustCLI(ctx context.Context, want int, dir string, args ...string) (result, error) {
	r, err := e.cli(ctx, dir, args...)
	if err == nil && r.code != want {
		err = fmt.Errorf("acp-sandbox %s: exit %d, want %d\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r, err
}

// status is the running sandbox of workspace ws, from `ls --json`.
func (e *env) status(ctx context.Context, ws string) (*sandbox.Status, error) {
	r, err := e.mustCLI(ctx, 0, ws, "ls", "--json")
	if err != nil {
		return nil, err
	}
	var list []struct {
		Workspace string          `json:"workspace"`
		State     string          `json:"state"`
		Status    *sandbox.Status `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		return nil, fmt.Errorf("ls --json: %w", err)
	}
	for _, l := range list {
		if l.Workspace == ws && l.Status != nil {
			return l.Status, nil
		}
	}
	return nil, fmt.Errorf("ls --json lists no running sandbox for %s", ws)
}

// stop stops ws's sandbox and waits until its supervisor and QEMU are gone.
func (e *env) stop(ctx context.Context, ws string, st *sandbox.Status) (time.Duration, error) {
	r, err := e.mustCLI(ctx, 0, ws, "stop")
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, pid := range []int{st.Pid, st.QEMUPid} {
		if err := waitGone(wctx, pid); err != nil {
			return 0, err
		}
	}
	return r.elapsed, nil
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitGone(ctx context.Context, pid int) error {
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d still running: %w", pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// ourProcesses lists live processes that are ours: QEMUs whose command line
// names a path under the temp root, and acp-sandbox processes running our
// binary (supervisors).
func (e *env) ourProcesses() (qemus, sups []int) {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil &&
			strings.TrimSuffix(exe, " (deleted)") == e.bin {
			sups = append(sups, pid)
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte("qemu-system")) && bytes.Contains(b, []byte(e.root+"/")) {
			qemus = append(qemus, pid)
		}
	}
	return qemus, sups
}

// cleanup stops every sandbox and VM this run started, however it ended,
// and returns the QEMU processes it had to kill (there should be none).
func (e *env) cleanup(bare *bareVMs) (killed []int, err error) {
	bare.killAll()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, statErr := os.Stat(e.bin); statErr == nil {
		if r, cerr := e.cli(ctx, e.root, "stop", "--all"); cerr != nil || r.code != 0 {
			err = fmt.Errorf("stop --all: %v %s", cerr, r.stderr)
		}
	}
	// A supervisor still booting when we were interrupted does not answer
	// stop yet: SIGTERM makes it shut its VM down.
	_, sups := e.ourProcesses()
	for _, pid := range sups {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		q, s := e.ourProcesses()
		if len(q)+len(s) == 0 {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	qemus, sups := e.ourProcesses()
	for _, pid := range append(qemus, sups...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(qemus) > 0 {
		err = errors.Join(err, fmt.Errorf("QEMU processes %v outlived their sandbox (killed)", qemus))
	}
	return qemus, err
}

// rss reads VmRSS and VmHWM (peak) of a process, in bytes.
func rss(pid int) (cur, peak float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb * 1024
		case "VmHWM:":
			peak = kb * 1024
		}
	}
	if cur == 0 {
		return 0, 0, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	return cur, peak, nil
}
