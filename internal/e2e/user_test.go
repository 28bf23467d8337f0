package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/acp-sandbox/acp-sandbox/vmm/kernel"
)

// The uid rule as an ordinary host user: the guest user has the host user's
// uid and gid, and needs no capabilities. (Run as root, the other tests
// cover the root rule; run as an ordinary user, they cover this one.)
func TestOrdinaryHostUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("already running as an ordinary user: every other VM test covers this rule")
	}
	vmtest.RequireQEMU(t)
	bin := vmtest.Binary(t)
	const name = "acpsb-test"
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			vmtest.Skip(t, "cannot create a test user: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	}
	u, _ := user.Lookup(name)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// Everything the user needs, owned by the user: a copy of the binary,
	// the kernel cache (copied, so it is not fetched again), the dirs.
	base, err := os.MkdirTemp("", "acps-u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	kdir := filepath.Join(vmtest.CacheRoot(), "acp-sandbox", "kernel")
	if _, err := kernel.Ensure(context.Background(), kernel.Options{CacheDir: kdir}); err != nil {
		t.Fatalf("kernel: %v", err)
	}
	ubin := filepath.Join(base, "acp-sandbox")
	copyFile(t, bin, ubin, 0o755)
	ucache := filepath.Join(base, "cache", "acp-sandbox")
	if err := os.MkdirAll(ucache, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", kdir, ucache+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy kernel cache: %v %s", err, out)
	}
	ws := filepath.Join(base, "ws")
	for _, d := range []string{ws, filepath.Join(base, "home"), filepath.Join(base, "rt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, "mine.txt"), []byte("user data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), base).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	os.Chmod(base, 0o755)

	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + filepath.Join(base, "home"),
		"XDG_STATE_HOME=" + filepath.Join(base, "home", "state"), "XDG_RUNTIME_DIR=" + filepath.Join(base, "rt"),
		"XDG_CACHE_HOME=" + filepath.Join(base, "cache"), "ACP_SANDBOX_IDLE_TIMEOUT=5m",
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, ubin, args...)
		cmd.Dir, cmd.Env = ws, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return string(out), err
	}
	t.Cleanup(func() { _, _ = run("stop", "--all") })

	out, err := run("run", "-q", "--", "sh", "-c", "id -u; id -g; grep CapEff /proc/self/status; echo more >> mine.txt; echo new > new.txt; mkdir newdir")
	if err != nil {
		t.Fatalf("run as %s: %v", name, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || lines[0] != u.Uid || lines[1] != u.Gid {
		t.Fatalf("guest ids %q, want %s/%s", lines, u.Uid, u.Gid)
	}
	if !strings.HasSuffix(lines[2], "0000000000000000") {
		t.Errorf("an ordinary user's sandbox process has capabilities: %s", lines[2])
	}
	for _, p := range []string{"mine.txt", "new.txt", "newdir"} {
		fi, err := os.Stat(filepath.Join(ws, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "mine.txt")); string(b) != "user data\nmore\n" {
		t.Errorf("mine.txt = %q", b)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
