package vmm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
)

func argAfter(args []string, flag string) []string {
	var out []string
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			out = append(out, args[i+1])
		}
	}
	return out
}

func TestArgs(t *testing.T) {
	c := Config{
		Kernel: "/k/vmlinux", Initrd: "/k/initrd", ControlSocket: "/run/x/ctl.sock", QMPSocket: "/run/x/qmp.sock",
		ConsoleLog: "/s/console.log", TSCkHz: 2096038, Cmdline: "acpsandbox=abc",
		Shares: []Share{{Tag: "usr", HostPath: "/usr", ReadOnly: true}, {Tag: "ws", HostPath: "/src/a,b"}},
	}
	args, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-accel"); !slices.Equal(got, []string{"tcg,thread=multi"}) {
		t.Errorf("-accel %v", got)
	}
	if got := argAfter(args, "-cpu"); !slices.Equal(got, []string{"max"}) {
		t.Errorf("-cpu %v (TCG must not use host)", got)
	}
	app := argAfter(args, "-append")[0]
	for _, want := range []string{"console=ttyS0", "tsc_early_khz=2096038", "acpsandbox=abc", "panic=-1"} {
		if !strings.Contains(app, want) {
			t.Errorf("cmdline %q lacks %s", app, want)
		}
	}
	fsdevs := argAfter(args, "-fsdev")
	if len(fsdevs) != 2 || !strings.Contains(fsdevs[0], "readonly=on") || strings.Contains(fsdevs[1], "readonly") {
		t.Errorf("fsdevs %v", fsdevs)
	}
	// A comma in a path must not end the option value.
	if !strings.Contains(fsdevs[1], "path=/src/a,,b,") {
		t.Errorf("comma not escaped: %s", fsdevs[1])
	}
	if got := argAfter(args, "-m"); !slices.Equal(got, []string{"2048"}) {
		t.Errorf("default memory %v", got)
	}
	chardevs := strings.Join(argAfter(args, "-chardev"), " ")
	if !strings.Contains(chardevs, "path=/run/x/ctl.sock,server=on,wait=on") {
		t.Errorf("control chardev must make QEMU wait for the supervisor: %s", chardevs)
	}
	if slices.Contains(args, "-netdev") || slices.Contains(args, "-nic") {
		t.Errorf("unexpected network device: %v", args)
	}

	c.Accel = AccelKVM
	args, _ = c.Args()
	if got := argAfter(args, "-cpu"); !slices.Equal(got, []string{"host"}) || strings.Contains(argAfter(args, "-append")[0], "tsc_early_khz") {
		t.Errorf("kvm args: %v", args)
	}
	c.Accel = "hvf"
	if _, err := c.Args(); err == nil {
		t.Error("unknown accelerator accepted")
	}
	if _, err := (&Config{}).Args(); err == nil {
		t.Error("empty config accepted")
	}
}

func TestDetectAccel(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "kvm")
	pvm := filepath.Join(dir, "kvm_pvm")
	missing := filepath.Join(dir, "missing")
	ctx := context.Background()

	v := DetectAccel(ctx, AccelOptions{DevKVM: missing, PVMModule: missing})
	if v.Accel != AccelTCG || !strings.Contains(v.Reason, "no /dev/kvm") {
		t.Errorf("no kvm: %+v", v)
	}
	os.WriteFile(dev, nil, 0o666)
	os.Mkdir(pvm, 0o755)
	probed := false
	v = DetectAccel(ctx, AccelOptions{DevKVM: dev, PVMModule: pvm, Probe: func(context.Context) error { probed = true; return nil }})
	if v.Accel != AccelTCG || !strings.Contains(v.Reason, "PVM") || probed {
		t.Errorf("pvm: %+v (probed %v)", v, probed)
	}
	v = DetectAccel(ctx, AccelOptions{Force: AccelKVM, DevKVM: missing, PVMModule: pvm})
	if v.Accel != AccelKVM || !strings.Contains(v.Reason, "--accel") {
		t.Errorf("forced: %+v", v)
	}

	// Usable /dev/kvm: the canary decides, and its verdict is cached per key.
	cache := filepath.Join(dir, "accel.json")
	calls := 0
	failing := func(ctx context.Context) error { calls++; return errors.New("hung") }
	o := AccelOptions{DevKVM: dev, PVMModule: missing, Probe: failing, CacheFile: cache, CacheKey: func() (string, error) { return "boot1", nil }}
	v = DetectAccel(ctx, o)
	if v.Accel != AccelTCG || !v.Probed || !strings.Contains(v.Reason, "canary") {
		t.Errorf("failed canary: %+v", v)
	}
	v = DetectAccel(ctx, o)
	if calls != 1 || !v.Cached || v.Accel != AccelTCG {
		t.Errorf("cached verdict not used: calls %d %+v", calls, v)
	}
	o.CacheKey = func() (string, error) { return "boot2", nil }
	o.Probe = func(context.Context) error { calls++; return nil }
	v = DetectAccel(ctx, o)
	if calls != 2 || v.Accel != AccelKVM || v.Cached {
		t.Errorf("new boot must probe again: calls %d %+v", calls, v)
	}
	if os.Getuid() != 0 {
		os.Chmod(dev, 0)
		v = DetectAccel(ctx, AccelOptions{DevKVM: dev, PVMModule: missing})
		if v.Accel != AccelTCG || !strings.Contains(v.Reason, "usermod") {
			t.Errorf("unopenable /dev/kvm: %+v", v)
		}
	}
}

func TestWriteInitramfs(t *testing.T) {
	src := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(src, []byte("ELF..."), 0o755)
	files := []InitramfsFile{
		{Path: "/init", Mode: 0o755, Source: src},
		{Path: "/.acp-sandbox/modules/9p.ko", Mode: 0o644, Data: []byte("ko")},
		{Path: "/.acp-sandbox/modules.list", Mode: 0o644, Data: []byte("/.acp-sandbox/modules/9p.ko\n")},
	}
	var a, b bytes.Buffer
	if err := WriteInitramfs(&a, files); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(files)
	if err := WriteInitramfs(&b, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("initramfs is not deterministic")
	}
	r := cpio.NewReader(&a)
	got := map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		kind := "file"
		if h.Mode.IsDir() {
			kind = "dir"
		}
		got[h.Name] = kind + ":" + string(data)
		if h.Name == "init" && h.Mode.Perm() != 0o755 {
			t.Errorf("/init mode %v", h.Mode.Perm())
		}
	}
	want := map[string]string{
		"init": "file:ELF...", ".acp-sandbox": "dir:", ".acp-sandbox/modules": "dir:",
		".acp-sandbox/modules/9p.ko": "file:ko", ".acp-sandbox/modules.list": "file:/.acp-sandbox/modules/9p.ko\n",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if err := WriteInitramfs(io.Discard, []InitramfsFile{{Path: "rel"}}); err == nil {
		t.Error("relative path accepted")
	}
}
