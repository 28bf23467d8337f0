// Package e2e holds end-to-end tests: the real acp-sandbox binary, real QEMU
// microVMs (TCG on machines without usable KVM), real processes inside.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/creack/pty"
)

// One VM serves most checks: booting costs seconds under TCG.
func TestRuntime(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	if err := os.WriteFile(filepath.Join(ws, "from-host.txt"), []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e.MustRun(ws, "run", "-q", "--", "sh", "-c", "id -u; id -un; uname -r; hostname; pwd; cat from-host.txt")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("unexpected output:\n%s", out)
	}
	hostUname, _ := exec.Command("uname", "-r").Output()
	hostName, _ := os.Hostname()
	t.Run("unprivileged user", func(t *testing.T) {
		if lines[0] == "0" {
			t.Errorf("command ran as root in the guest")
		}
		if os.Getuid() != 0 && lines[0] != strconv.Itoa(os.Getuid()) {
			t.Errorf("guest uid %s, want the host user's %d", lines[0], os.Getuid())
		}
		if lines[1] != "agent" {
			t.Errorf("user name %q, want agent", lines[1])
		}
	})
	t.Run("runs in the VM", func(t *testing.T) {
		if lines[2] == strings.TrimSpace(string(hostUname)) || lines[3] == hostName {
			t.Errorf("kernel %q / hostname %q are the host's: not in a VM", lines[2], lines[3])
		}
	})
	t.Run("workspace at the same path", func(t *testing.T) {
		if lines[4] != ws || lines[5] != "host data" {
			t.Errorf("pwd %q content %q, want %q and host data", lines[4], lines[5], ws)
		}
	})

	t.Run("files created in the VM belong to the host user", func(t *testing.T) {
		e.MustRun(ws, "exec", "--", "sh", "-c", "echo guest > from-guest.txt && mkdir -p sub/dir && echo more >> from-host.txt && chmod +x from-guest.txt")
		for _, p := range []string{"from-guest.txt", "sub/dir", "from-host.txt"} {
			fi, err := os.Stat(filepath.Join(ws, p))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
				t.Errorf("%s owned by %d:%d on the host, want %d:%d", p, st.Uid, st.Gid, os.Getuid(), os.Getgid())
			}
		}
		fi, _ := os.Stat(filepath.Join(ws, "from-guest.txt"))
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("chmod +x in the VM gave mode %v on the host", fi.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(ws, "from-host.txt"))
		if string(b) != "host data\nmore\n" {
			t.Errorf("appended file on host = %q", b)
		}
	})

	t.Run("host secrets are not visible", func(t *testing.T) {
		// Each probe names the leak it stops: the user's real home and
		// its credential dirs, root's home, the shadow file, and the
		// host process environment (which holds the canary).
		script := `
for p in "$1/.ssh/id_ed25519" "$1/.aws/credentials" "$1/.config/gcloud/credentials.db" /etc/shadow /etc/gshadow /root/.ssh /etc/ssh /etc/sudoers; do
  [ -e "$p" ] && echo "VISIBLE $p"
done
ls -A /home; ls -A /root
env
cat /proc/cmdline
grep -rl "$2" /etc /home /root /tmp /run /var 2>/dev/null
true`
		r := e.Run(ws, nil, "exec", "--", "sh", "-c", script, "sh", e.Home, vmtest.CanarySecret)
		if r.Code != 0 {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
		if strings.Contains(r.Stdout, "VISIBLE") {
			t.Errorf("host files visible in the VM:\n%s", r.Stdout)
		}
		if strings.Contains(r.Stdout, vmtest.CanarySecret) {
			t.Errorf("host secret leaked into the VM:\n%s", r.Stdout)
		}
		if !strings.Contains(r.Stdout, "\nagent\n") && !strings.HasPrefix(r.Stdout, "agent\n") {
			t.Errorf("/home should hold only the sandbox user:\n%s", r.Stdout)
		}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			// The VM's own trust variables name the same public paths a
			// host may use (/etc/ssl/certs/ca-certificates.crt): not a leak.
			if strings.HasPrefix(v, "/etc/ssl/") {
				continue
			}
			if len(v) > 12 && k != "PATH" && k != "HOME" && k != "PWD" && strings.Contains(r.Stdout, v) {
				t.Errorf("host env %s leaked into the VM", k)
			}
		}
	})

	t.Run("control channel is root-only", func(t *testing.T) {
		// The agent user must not be able to open the control port (it
		// would speak to the host as PID 1), nor turn its workspace
		// capabilities into guest root through a writable sysfs.
		script := `
n=0
for p in /dev/vport*; do
  n=$((n+1))
  if (exec 3<>"$p") 2>/dev/null; then echo "OPENED $p"; fi
  stat -c '%a %U' "$p"
done
echo "ports=$n"
if (echo /x > /sys/kernel/uevent_helper) 2>/dev/null; then echo "SYSFS-WRITABLE"; fi
true`
		r := e.Run(ws, nil, "exec", "--", "sh", "-c", script)
		if strings.Contains(r.Stdout, "OPENED") || strings.Contains(r.Stdout, "SYSFS-WRITABLE") || strings.Contains(r.Stdout, "ports=0") {
			t.Errorf("guest isolation broken:\n%s%s", r.Stdout, r.Stderr)
		}
		if !strings.Contains(r.Stdout, "600 root") {
			t.Errorf("control port is not root-only:\n%s", r.Stdout)
		}
	})

	t.Run("exit codes and signals", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
		}{
			{[]string{"sh", "-c", "exit 42"}, 42},
			{[]string{"true"}, 0},
			{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
			{[]string{"no-such-command-xyz"}, 127},
			{[]string{"/etc/hostname"}, 126},
		} {
			r := e.Run(ws, nil, append([]string{"exec", "--"}, c.args...)...)
			if r.Code != c.code {
				t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, r.Code, c.code, r.Stderr)
			}
		}
		r := e.Run(ws, nil, "exec", "--", "no-such-command-xyz")
		if !strings.Contains(r.Stderr, "no-such-command-xyz") || !strings.Contains(r.Stderr, "not found") {
			t.Errorf("not-found message unclear: %q", r.Stderr)
		}
	})

	t.Run("stdout stderr stdin streams", func(t *testing.T) {
		r := e.Run(ws, strings.NewReader("line1\nline2\n"), "exec", "-i", "--", "sh", "-c", "cat; echo to-stderr >&2")
		if r.Stdout != "line1\nline2\n" || r.Stderr != "to-stderr\n" {
			t.Errorf("stdout %q stderr %q", r.Stdout, r.Stderr)
		}
		// Without -i the process gets /dev/null, never waits for input.
		r = e.Run(ws, strings.NewReader("ignored"), "exec", "--", "cat")
		if r.Code != 0 || r.Stdout != "" {
			t.Errorf("exec without -i: exit %d stdout %q", r.Code, r.Stdout)
		}
		// A large stream survives intact.
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		r = e.Run(ws, bytes.NewReader(big), "exec", "-i", "--", "sh", "-c", "cat | wc -c")
		if strings.TrimSpace(r.Stdout) != strconv.Itoa(len(big)) {
			t.Errorf("1 MiB through stdin: wc says %q", r.Stdout)
		}
	})

	t.Run("forwarded signal", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := e.Command(ctx, ws, "exec", "--", "sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(out.String(), "ready") && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		ee, _ := err.(*exec.ExitError)
		if ee == nil || ee.ExitCode() != 7 || !strings.Contains(out.String(), "got-term") {
			t.Errorf("SIGTERM not forwarded: err %v, output %q", err, out.String())
		}
	})

	t.Run("pty", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := e.Command(ctx, ws, "exec", "-it", "--", "sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; stty size; echo $TERM")
		cmd.Env = append(cmd.Env, "TERM=xterm-test")
		s := runInPTY(t, cmd, &pty.Winsize{Rows: 33, Cols: 101})
		if !strings.Contains(s, "is-a-tty") || !strings.Contains(s, "33 101") || !strings.Contains(s, "xterm-test") {
			t.Errorf("pty output %q: want is-a-tty, size 33 101, TERM xterm-test", s)
		}
	})

	t.Run("agent command with a terminal runs interactively", func(t *testing.T) {
		// What an editor does for an agent's terminal login: our own
		// command line again, with a TTY.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := e.Command(ctx, ws, "--", "sh", "-c", "test -t 0 && echo interactive-in-$(uname -r)")
		if out := runInPTY(t, cmd, &pty.Winsize{Rows: 24, Cols: 80}); !strings.Contains(out, "interactive-in-6.") {
			t.Errorf("output %q", out)
		}
	})

	t.Run("concurrent exec", func(t *testing.T) {
		var wg sync.WaitGroup
		outs := make([]string, 4)
		for i := range outs {
			wg.Go(func() {
				r := e.Run(ws, nil, "exec", "--", "sh", "-c", fmt.Sprintf("sleep 1; echo job%d", i))
				outs[i] = r.Stdout
			})
		}
		wg.Wait()
		for i, o := range outs {
			if strings.TrimSpace(o) != fmt.Sprintf("job%d", i) {
				t.Errorf("job %d output %q", i, o)
			}
		}
		if n := len(e.QEMUPids()); n != 1 {
			t.Errorf("%d QEMU processes for one workspace, want 1", n)
		}
	})

	t.Run("ls and stop", func(t *testing.T) {
		var list []struct {
			ID, Workspace, State string
			Status               *struct{ Accel string }
		}
		if err := json.Unmarshal([]byte(e.MustRun(ws, "ls", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Workspace != ws || list[0].State != "running" || list[0].Status == nil {
			t.Fatalf("ls: %+v", list)
		}
		e.MustRun(ws, "stop")
		if n := len(e.QEMUPids()); n != 0 {
			t.Errorf("%d QEMU processes after stop", n)
		}
		r := e.Run(ws, nil, "exec", "--", "true")
		if r.Code == 0 || !strings.Contains(r.Stderr, "not running") {
			t.Errorf("exec on a stopped sandbox: exit %d, %q", r.Code, r.Stderr)
		}
		// Data written before stop is on the host; a new boot sees it.
		if out := e.MustRun(ws, "run", "-q", "--", "cat", "from-guest.txt"); out != "guest\n" {
			t.Errorf("after restart: %q", out)
		}
	})
}

// A crashed QEMU or supervisor is detected and the next command boots a
// fresh VM.
func TestCrashRecovery(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	e.MustRun(ws, "start", "-q")
	pids := e.QEMUPids()
	if len(pids) != 1 {
		t.Fatalf("QEMU pids %v", pids)
	}
	// kill -9 QEMU: the supervisor notices and exits; run boots again.
	_ = syscall.Kill(pids[0], syscall.SIGKILL)
	if out := e.MustRun(ws, "run", "-q", "--", "echo", "back"); out != "back\n" {
		t.Fatalf("after killing QEMU: %q", out)
	}
	// kill -9 the supervisor: QEMU must die with it (no orphan), and run
	// boots again.
	var st []struct{ Status struct{ Pid, QEMUPid int } }
	if err := json.Unmarshal([]byte(e.MustRun(ws, "ls", "--json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("ls: %v %v", err, st)
	}
	_ = syscall.Kill(st[0].Status.Pid, syscall.SIGKILL)
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(st[0].Status.QEMUPid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if ps := e.QEMUPids(); len(ps) != 0 {
		t.Fatalf("QEMU %v outlived its supervisor", ps)
	}
	if out := e.MustRun(ws, "run", "-q", "--", "echo", "again"); out != "again\n" {
		t.Fatalf("after killing the supervisor: %q", out)
	}
}

// Two commands starting the same cold sandbox at once boot one VM.
func TestConcurrentStart(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	var wg sync.WaitGroup
	res := make([]vmtest.Result, 3)
	for i := range res {
		wg.Go(func() { res[i] = e.Run(ws, nil, "run", "-q", "--", "echo", "ok") })
	}
	wg.Wait()
	for i, r := range res {
		if r.Code != 0 || r.Stdout != "ok\n" {
			t.Errorf("run %d: exit %d out %q err %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	if n := len(e.QEMUPids()); n != 1 {
		t.Errorf("%d VMs for one workspace", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	e.MustRun(ws, "run", "-q", "--idle-timeout", "1s", "--", "true")
	deadline := time.Now().Add(2 * time.Minute)
	for len(e.QEMUPids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(e.QEMUPids()); n != 0 {
		t.Fatalf("VM still running long after its 1s idle timeout")
	}
	if out := e.MustRun(ws, "ls"); !strings.Contains(out, "stopped") {
		t.Errorf("ls after idle stop:\n%s", out)
	}
}

// Workspaces that would expose the home directory or credentials are
// refused before any VM starts.
func TestRefusedWorkspaces(t *testing.T) {
	e := vmtest.NewEnv(t)
	for _, dir := range []string{e.Home, "/", filepath.Join(e.Home, ".ssh"), "/etc"} {
		r := e.Run(dir, nil, "run", "--", "true")
		if r.Code == 0 || !strings.Contains(r.Stderr, "refusing workspace") {
			t.Errorf("workspace %s: exit %d, stderr %q", dir, r.Code, r.Stderr)
		}
	}
	if n := len(e.QEMUPids()); n != 0 {
		t.Errorf("a VM started for a refused workspace")
	}
}

func TestRmAndLogs(t *testing.T) {
	e := vmtest.NewEnv(t)
	ws := e.Workspace()
	e.MustRun(ws, "run", "-q", "--", "sh", "-c", "echo keep > kept.txt")
	logs := e.MustRun(ws, "logs")
	if !strings.Contains(logs, "control port open") || !strings.Contains(logs, "sandbox ready") {
		t.Errorf("logs lack the console and supervisor log:\n%s", logs)
	}
	out := e.MustRun(ws, "rm")
	if !strings.Contains(out, "removed") {
		t.Errorf("rm: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "kept.txt")); err != nil || string(b) != "keep\n" {
		t.Errorf("rm touched the workspace: %v %q", err, b)
	}
	if out := e.MustRun(ws, "ls"); strings.Contains(out, ws) {
		t.Errorf("rm left the sandbox listed:\n%s", out)
	}
	if n := len(e.QEMUPids()); n != 0 {
		t.Errorf("rm left QEMU running")
	}
}

func TestDoctor(t *testing.T) {
	e := vmtest.NewEnv(t)
	r := e.Run("/", nil, "doctor", "--json")
	var rep struct {
		OK     bool
		Accel  struct{ Accel, Reason string }
		Checks []struct {
			Name string
			OK   bool
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r.Stdout)
	}
	if rep.Accel.Accel != "kvm" && rep.Accel.Accel != "tcg" || rep.Accel.Reason == "" {
		t.Errorf("accelerator verdict without reason: %+v", rep.Accel)
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil && rep.Accel.Accel != "tcg" {
		t.Errorf("PVM host must use TCG, doctor says %s", rep.Accel.Accel)
	}
	names := map[string]bool{}
	for _, c := range rep.Checks {
		names[c.Name] = true
	}
	for _, n := range []string{"qemu", "accelerator", "kernel", "binary", "state dir"} {
		if !names[n] {
			t.Errorf("doctor lacks the %s check", n)
		}
	}
	if !rep.OK || r.Code != 0 {
		t.Errorf("doctor not OK on a machine that boots VMs: exit %d\n%s", r.Code, r.Stdout)
	}
}

// runInPTY runs cmd with a terminal of the given size and returns what it
// printed.
func runInPTY(t *testing.T, cmd *exec.Cmd, size *pty.Winsize) string {
	t.Helper()
	f, err := pty.StartWithSize(cmd, size)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = out.ReadFrom(f); close(done) }()
	if err := cmd.Wait(); err != nil {
		t.Errorf("%v: %v", cmd.Args, err)
	}
	f.Close()
	<-done
	return out.String()
}
