package vmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Verdict says which accelerator to use and why.
type Verdict struct {
	Accel  Accel  `json:"accel"`
	Reason string `json:"reason"`
	// Probed is true when a canary boot decided (as opposed to a static
	// check); Cached when that canary's verdict came from the cache.
	Probed bool `json:"probed,omitempty"`
	Cached bool `json:"cached,omitempty"`
}

// AccelProbe boots a canary VM with KVM and returns nil if it powered off
// before the context's deadline.
type AccelProbe func(ctx context.Context) error

// AccelOptions configures DetectAccel. Zero values are usable.
type AccelOptions struct {
	Force Accel // "" = auto; kvm or tcg = user override (--accel)
	// CacheFile stores a canary verdict under CacheKey (host boot, kernel
	// and QEMU version); "" = no cache. CacheKey is called only when a
	// canary would run (it may be slow: it asks QEMU its version); nil or
	// an error means no cache.
	CacheFile string
	CacheKey  func() (string, error)
	// Probe runs the canary; nil = trust the static checks.
	Probe        AccelProbe
	ProbeTimeout time.Duration // 0 = 20 s

	// Overridable for tests; "" = the real paths.
	DevKVM, PVMModule string
}

// DetectAccel picks KVM only when it truly works. This machine class has
// /dev/kvm missing, or present but backed by PVM, under which standard guest
// kernels hang (DESIGN.md §4): so static checks first, then a canary boot
// with a deadline, cached.
func DetectAccel(ctx context.Context, o AccelOptions) Verdict {
	switch o.Force {
	case AccelKVM, AccelTCG:
		return Verdict{Accel: o.Force, Reason: "chosen with --accel " + string(o.Force)}
	}
	dev, pvm := o.DevKVM, o.PVMModule
	if dev == "" {
		dev = "/dev/kvm"
	}
	if pvm == "" {
		pvm = "/sys/module/kvm_pvm"
	}
	if _, err := os.Stat(pvm); err == nil {
		return Verdict{Accel: AccelTCG, Reason: "KVM here is PVM (kvm_pvm loaded), which cannot boot standard guest kernels"}
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Verdict{Accel: AccelTCG, Reason: "no /dev/kvm (no hardware virtualization on this machine or VM)"}
	}
	if err != nil {
		return Verdict{Accel: AccelTCG, Reason: fmt.Sprintf("cannot open %s (%v); fix: sudo usermod -aG kvm $USER, then log in again", dev, errors.Unwrap(err))}
	}
	f.Close()
	if o.Probe == nil {
		return Verdict{Accel: AccelKVM, Reason: "/dev/kvm is usable"}
	}
	key := ""
	if o.CacheKey != nil {
		if k, err := o.CacheKey(); err == nil {
			key = k
		}
	}
	if key == "" {
		o.CacheFile = ""
	}
	if v, ok := readVerdict(o.CacheFile, key); ok {
		v.Cached = true
		return v
	}
	timeout := o.ProbeTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v := Verdict{Accel: AccelKVM, Reason: "/dev/kvm is usable and a canary VM booted", Probed: true}
	if err := o.Probe(pctx); err != nil {
		v = Verdict{Accel: AccelTCG, Reason: fmt.Sprintf("/dev/kvm exists but a canary VM did not boot within %v (%v)", timeout, err), Probed: true}
	}
	if ctx.Err() == nil {
		writeVerdict(o.CacheFile, key, v)
	}
	return v
}

type cachedVerdict struct {
	Key string `json:"key"`
	Verdict
}

// CachedVerdict returns the canary verdict stored in file under key, if any
// (what DetectAccel would reuse), marked Cached.
func CachedVerdict(file, key string) (Verdict, bool) {
	v, ok := readVerdict(file, key)
	v.Cached = ok
	return v, ok
}

func readVerdict(file, key string) (Verdict, bool) {
	if file == "" {
		return Verdict{}, false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return Verdict{}, false
	}
	var c cachedVerdict
	if json.Unmarshal(b, &c) != nil || c.Key != key {
		return Verdict{}, false
	}
	return c.Verdict, true
}

func writeVerdict(file, key string, v Verdict) {
	if file == "" {
		return
	}
	b, _ := json.Marshal(cachedVerdict{Key: key, Verdict: v})
	_ = os.MkdirAll(filepath.Dir(file), 0o755)
	tmp := file + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		_ = os.Rename(tmp, file)
	}
}

// BootID identifies this host boot: a canary verdict does not outlive a
// reboot (modules may change).
func BootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
