// Package vmtest is the harness for tests that boot real microVMs: it builds
// the acp-sandbox binary once per source tree (static, cached by content
// hash), gives each test private XDG directories and a shared kernel cache,
// and turns "no QEMU here" into a skip — or, under ACP_SANDBOX_REQUIRE_VM=1
// (set by CI), into a failure, so CI cannot go green by skipping the
// product.
package vmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireVMEnv names the variable that forbids skipping VM tests.
const RequireVMEnv = "ACP_SANDBOX_REQUIRE_VM"

// Skip skips (or, under ACP_SANDBOX_REQUIRE_VM=1, fails) the test.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireVMEnv) == "1" {
		t.Fatalf("%s (%s=1 forbids skipping VM tests)", msg, RequireVMEnv)
	}
	t.Skip(msg)
}

// RequireQEMU skips unless the machine can boot VMs.
func RequireQEMU(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		Skip(t, "VM tests need linux")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		Skip(t, "qemu-system-x86_64 not installed (apt-get install --no-install-recommends qemu-system-x86)")
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// sourceHash hashes every .go file and go.mod/go.sum of the module.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(p, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16], err
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns a static acp-sandbox built from this source tree, with
// the acpsandbox_testhooks build tag.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		sum, err := sourceHash(root)
		if err != nil {
			buildErr = err
			return
		}
		dir := filepath.Join(CacheRoot(), "bin")
		buildPath = filepath.Join(dir, "acp-sandbox-testhooks-"+sum)
		if _, err := os.Stat(buildPath); err == nil {
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		tmp := buildPath + ".tmp"
		// The test hooks (sandbox.TestNetEnv) let tests give the VM a fake
		// internet; they act only when their variable is set.
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "acpsandbox_testhooks", "-o", tmp, "./cmd/acp-sandbox")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		buildErr = os.Rename(tmp, buildPath)
	})
	if buildErr != nil {
		t.Fatalf("building acp-sandbox: %v", buildErr)
	}
	return buildPath
}

// CacheRoot is shared by all test runs on this machine: the kernel is
// fetched once, initramfs images are keyed by binary hash.
func CacheRoot() string {
	if v := os.Getenv("ACP_SANDBOX_TEST_CACHE"); v != "" {
		return v
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "acp-sandbox-test")
}

// Env is an isolated acp-sandbox environment: its own state and runtime
// dirs, a HOME with planted canary credentials, the shared cache.
type Env struct {
	t       testing.TB
	Bin     string
	Home    string
	Runtime string
	Vars    []string // full environment for acp-sandbox processes
}

// CanarySecret is planted in the host environment and in fake credential
// files; it must never be visible in the VM.
const CanarySecret = "canary-7f3a9d1e-secret"

// NewEnv prepares an environment and registers cleanup that stops every
// sandbox it started and fails the test if a QEMU process survives.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	RequireQEMU(t)
	bin := Binary(t)
	home := t.TempDir()
	// Socket paths must stay under 108 bytes: a short runtime dir.
	rt, err := os.MkdirTemp("", "acps")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{".ssh/id_ed25519", ".aws/credentials", ".config/gcloud/credentials.db"} {
		p := filepath.Join(home, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(CanarySecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := &Env{t: t, Bin: bin, Home: home, Runtime: rt}
	var vars []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME":
			continue
		}
		vars = append(vars, kv)
	}
	e.Vars = append(vars,
		"HOME="+home,
		"XDG_STATE_HOME="+filepath.Join(home, ".local/state"),
		"XDG_RUNTIME_DIR="+rt,
		"XDG_CACHE_HOME="+CacheRoot(),
		"ACP_SANDBOX_TEST_CANARY="+CanarySecret,
		// A safety net: a test that forgets to stop its VM does not leave
		// it running for long.
		"ACP_SANDBOX_IDLE_TIMEOUT=5m",
	)
	t.Cleanup(e.cleanup)
	return e
}

// Workspace creates a workspace directory under the test's HOME-less temp.
func (e *Env) Workspace() string {
	e.t.Helper()
	ws, err := os.MkdirTemp("", "acps-ws-")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { os.RemoveAll(ws) })
	real, _ := filepath.EvalSymlinks(ws)
	return real
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs acp-sandbox with args in dir; it fails the test only if the
// process could not run or exceeded the (generous) timeout.
func (e *Env) Run(dir string, stdin io.Reader, args ...string) Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, dir, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("acp-sandbox %v: %v\nstderr: %s", args, err, r.Stderr)
	}
	if ctx.Err() != nil {
		e.t.Fatalf("acp-sandbox %v: timed out (hang)\nstdout: %s\nstderr: %s", args, r.Stdout, r.Stderr)
	}
	return r
}

// MustRun is Run that requires exit code 0.
func (e *Env) MustRun(dir string, args ...string) string {
	e.t.Helper()
	r := e.Run(dir, nil, args...)
	if r.Code != 0 {
		e.t.Fatalf("acp-sandbox %v: exit %d\nstdout: %s\nstderr: %s", args, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Command prepares an acp-sandbox process in this environment.
func (e *Env) Command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Bin, args...)
	cmd.Dir = dir
	cmd.Env = e.Vars
	return cmd
}

// QEMUPids returns the QEMU processes started for this environment.
func (e *Env) QEMUPids() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte("qemu-system")) || !bytes.Contains(b, []byte(e.Runtime+"/")) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat")); err == nil {
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func (e *Env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "/", "stop", "--all")
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Errorf("stop --all: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(e.QEMUPids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if pids := e.QEMUPids(); len(pids) > 0 {
		for _, p := range pids {
			if proc, err := os.FindProcess(p); err == nil {
				_ = proc.Kill()
			}
		}
		e.t.Errorf("QEMU processes %v outlived the test (killed now)", pids)
	}
	os.RemoveAll(e.Runtime)
}
