package kernel

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// keepModules is the allowlist of module paths, relative to
// lib/modules/<version>/kernel/, copied from the package into the cache. An
// entry ending in "/" keeps a whole directory; any other entry names one
// module by its path without the .ko suffix. The modules these depend on are
// kept as well (see extractDeb), so an entry need not list its dependencies.
//
// Why an allowlist: the package's full module tree is ~400 MB unpacked and
// the microVM needs a few MB of it. The list covers the microvm's devices
// (virtio-mmio, console/serial ports, net, block, rng), the workspace and
// system mounts (9p), vsock for later, and fuse/overlay for guest-side
// filesystems. Changing it changes cacheKey, which makes Ensure refetch.
var keepModules = []string{
	"drivers/virtio/", // virtio core, ring, mmio (microvm transport), pci, balloon, mem, input
	"drivers/char/virtio_console",
	"drivers/char/hw_random/virtio-rng",
	"drivers/block/virtio_blk",
	"drivers/net/virtio_net",
	"drivers/net/net_failover",
	"net/core/failover",
	"fs/9p/",
	"fs/netfs/",
	"fs/fscache/",
	"net/9p/9pnet",
	"net/9p/9pnet_virtio",
	"net/9p/9pnet_fd",
	"net/vmw_vsock/vsock",
	"net/vmw_vsock/vsock_diag",
	"net/vmw_vsock/vsock_loopback",
	"net/vmw_vsock/vmw_vsock_virtio_transport",
	"net/vmw_vsock/vmw_vsock_virtio_transport_common",
	"fs/fuse/", // fuse, cuse, virtiofs
	"fs/overlayfs/",
}

// cacheFormat is bumped when the cache's layout changes incompatibly.
const cacheFormat = 1

// cacheKey identifies what a cached kernel directory contains. It is stored
// in the completion marker; a cached kernel with another key (older
// allowlist or layout) is fetched again, so editing keepModules cannot leave
// users with a cache that lacks a module the code now needs.
func cacheKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "format %d\n", cacheFormat)
	for _, m := range keepModules {
		fmt.Fprintln(h, m)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

const (
	metaPackage = "linux-image-amd64"
	markerName  = ".complete" // written last into a version dir
	lockName    = ".lock"
	tmpPrefix   = ".tmp-"
)

// marker is the content of the completion marker.
type marker struct {
	Key        string    `json:"key"`
	Package    string    `json:"package"`
	DebVersion string    `json:"debVersion,omitempty"`
	Fetched    time.Time `json:"fetched"`
}

// candidate is the kernel package apt would install now.
type candidate struct {
	Package string `json:"package"` // linux-image-6.1.0-56-amd64
	Version string `json:"version"` // 6.1.0-56-amd64
}

// Test hooks. Unexported so that nothing outside the package (no flag, no
// env) can redirect how the kernel is obtained.
var (
	resolveCandidate = aptCandidate
	downloadDeb      = aptDownload
	// aptStatePaths are the files and directories whose change can change
	// apt's answer: the package lists (rewritten by every apt-get update),
	// sources and pinning. Default locations only; a host that moves them
	// with Dir:: options just pays for apt-cache on every call.
	aptStatePaths = []string{
		"/var/lib/apt/lists",
		"/etc/apt/sources.list", "/etc/apt/sources.list.d",
		"/etc/apt/preferences", "/etc/apt/preferences.d",
	}
)

const candidateMemoName = ".apt-candidate.json"

// candidateMemo remembers apt's answer together with a fingerprint of the
// apt state it came from.
type candidateMemo struct {
	Stamp     string    `json:"stamp"`
	Candidate candidate `json:"candidate"`
}

// currentCandidate returns the kernel package apt would install now. It
// remembers apt-cache's answer in the cache dir until the apt state changes,
// because apt-cache rebuilds its package cache on every run where that cache
// is disabled (Debian's Docker images), costing ~0.75 s per VM start.
func currentCandidate(ctx context.Context, cacheDir string, log *slog.Logger) (candidate, error) {
	stamp := aptStamp()
	memoPath := filepath.Join(cacheDir, candidateMemoName)
	if stamp != "" {
		var m candidateMemo
		if data, err := os.ReadFile(memoPath); err == nil && json.Unmarshal(data, &m) == nil &&
			m.Stamp == stamp && safeVersion.MatchString(m.Candidate.Version) {
			return m.Candidate, nil
		}
	}
	c, err := resolveCandidate(ctx)
	if err != nil || stamp == "" {
		return c, err
	}
	data, _ := json.Marshal(candidateMemo{Stamp: stamp, Candidate: c})
	if err := writeFileAtomic(memoPath, 0o644, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		log.Debug("kernel: cannot remember apt's answer", "err", err) // only a speed-up
	}
	return c, nil
}

// aptStamp fingerprints aptStatePaths by names, sizes and mtimes. It returns
// "" when there are no package lists, so that apt-cache runs and produces
// its proper error.
func aptStamp() string {
	h := sha256.New()
	lists := 0
	for i, p := range aptStatePaths {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(h, "%s missing\n", p)
			continue
		}
		if !st.IsDir() {
			fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return ""
		}
		for _, e := range entries {
			if e.Name() == "lock" || e.Name() == "partial" {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return ""
			}
			if i == 0 {
				lists++
			}
			fmt.Fprintf(h, "%s/%s %d %d\n", p, e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	if lists == 0 {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// safeVersion is what a kernel version must look like before we use it as a
// directory name.
var safeVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+_~-]*$`)

var dependsLine = regexp.MustCompile(`^\s*\|?Depends:\s+(linux-image-(\S+))\s*$`)

// aptCandidate asks apt-cache which versioned image package the metapackage
// depends on. Security updates bump the ABI number in the package name, so
// the name cannot be hard-coded.
func aptCandidate(ctx context.Context) (candidate, error) {
	const hint = "or pass --kernel VMLINUX --modules DIR"
	if _, err := exec.LookPath("apt-cache"); err != nil {
		return candidate{}, fmt.Errorf("kernel: apt-cache not found: fetching the guest kernel needs a Debian-based host; %s", hint)
	}
	out, err := runCmd(ctx, "", "apt-cache", "depends", metaPackage)
	if err != nil {
		return candidate{}, fmt.Errorf("kernel: apt-cache depends %s failed: %v; run `apt-get update` (as root) so apt knows the kernel package, %s", metaPackage, err, hint)
	}
	var best candidate
	for line := range strings.Lines(string(out)) {
		m := dependsLine.FindStringSubmatch(line)
		if m == nil || !safeVersion.MatchString(m[2]) || strings.HasSuffix(m[2], "-unsigned") {
			continue
		}
		if best.Version == "" || compareVersions(m[2], best.Version) > 0 {
			best = candidate{Package: m[1], Version: m[2]}
		}
	}
	if best.Version == "" {
		return candidate{}, fmt.Errorf("kernel: apt knows no linux-image-<version> package that %s depends on (package lists empty or missing?); run `apt-get update` (as root), %s", metaPackage, hint)
	}
	return best, nil
}

// debSize returns the package's download size from apt-cache, or 0.
func debSize(ctx context.Context, pkg string) int64 {
	out, err := runCmd(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Size:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// aptDownload runs apt-get download in dir and returns the .deb's path.
func aptDownload(ctx context.Context, dir, pkg string) (string, error) {
	args := []string{"download", "-q"}
	if os.Geteuid() == 0 {
		// As root, apt downloads as the _apt user, which cannot write into a
		// cache under /root (0700); apt then warns and downloads as root
		// anyway. Say so up front to skip the noise.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	args = append(args, pkg)
	if _, err := runCmd(ctx, dir, "apt-get", args...); err != nil {
		return "", fmt.Errorf("kernel: apt-get download %s failed (offline?): %v; connect to a Debian mirror or pass --kernel VMLINUX --modules DIR", pkg, err)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("kernel: apt-get download %s succeeded but left %d matching .deb files in %s", pkg, len(debs), dir)
	}
	return debs[0], nil
}

// runCmd runs a command with the C locale (we parse apt's output, which is
// translated otherwise) and returns its stdout; the error carries the tail
// of stderr, which is where apt and dpkg say what went wrong.
func runCmd(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANGUAGE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if t := tail(stderr.Bytes()); t != "" {
			return stdout.Bytes(), fmt.Errorf("%w: %s", err, t)
		}
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

// tail returns the last few lines of command output, joined on one line.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	s := strings.Join(lines, " | ")
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// cachedKernel returns the complete cached kernel of a version, if any.
func cachedKernel(cacheDir, version string) (*Kernel, bool) {
	if !safeVersion.MatchString(version) {
		return nil, false
	}
	dir := filepath.Join(cacheDir, version)
	data, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return nil, false
	}
	var m marker
	if json.Unmarshal(data, &m) != nil || m.Key != cacheKey() {
		return nil, false
	}
	k := &Kernel{
		Version:    version,
		Vmlinux:    filepath.Join(dir, "vmlinux"),
		ModulesDir: filepath.Join(dir, "lib", "modules", version),
		cacheDir:   cacheDir,
	}
	if st, err := os.Stat(k.Vmlinux); err != nil || !st.Mode().IsRegular() {
		return nil, false
	}
	if st, err := os.Stat(k.ModulesDir); err != nil || !st.IsDir() {
		return nil, false
	}
	return k, true
}

// newestCached returns the complete cached kernel with the highest version.
func newestCached(cacheDir string) (*Kernel, bool) {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return nil, false
	}
	var best *Kernel
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if k, ok := cachedKernel(cacheDir, e.Name()); ok && (best == nil || compareVersions(k.Version, best.Version) > 0) {
			best = k
		}
	}
	return best, best != nil
}

// compareVersions orders kernel version strings naturally, comparing runs
// of digits as numbers, so 6.1.0-100-amd64 > 6.1.0-56-amd64.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, restA := splitRun(a)
		rb, restB := splitRun(b)
		if isDigit(ra[0]) && isDigit(rb[0]) {
			na := strings.TrimLeft(ra, "0")
			nb := strings.TrimLeft(rb, "0")
			if len(na) != len(nb) {
				return cmpInt(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		} else if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return cmpInt(len(a), len(b))
}

func splitRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lockCache takes an exclusive flock on <cacheDir>/.lock, waiting while
// another process holds it (polling, so ctx can cancel the wait). The lock
// is released by the returned func or when the process dies.
func lockCache(ctx context.Context, cacheDir string, opts *Options) (func(), error) {
	path := filepath.Join(cacheDir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kernel: opening lock file: %w", err)
	}
	waiting := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("kernel: locking %s: %w", path, err)
		}
		if !waiting {
			waiting = true
			opts.progress("waiting for another process to finish fetching the kernel (%s)…", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("kernel: waiting for %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fetch downloads and unpacks one kernel version into the cache. The caller
// holds the cache lock.
func fetch(ctx context.Context, cacheDir string, cand candidate, opts *Options) error {
	log := opts.logger()
	start := time.Now()

	// Leftovers of interrupted fetches: only the lock holder creates these,
	// so any that exist now are dead.
	old, _ := filepath.Glob(filepath.Join(cacheDir, tmpPrefix+"*"))
	for _, p := range old {
		os.RemoveAll(p)
	}
	work, err := os.MkdirTemp(cacheDir, tmpPrefix+cand.Version+"-")
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	defer os.RemoveAll(work)
	// apt may run its download as the unprivileged _apt user, which needs to
	// enter the directory (MkdirTemp makes it 0700).
	if err := os.Chmod(work, 0o755); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}

	if size := debSize(ctx, cand.Package); size > 0 {
		opts.progress("downloading %s (%d MB)…", cand.Package, (size+500_000)/1_000_000)
	} else {
		opts.progress("downloading %s…", cand.Package)
	}
	deb, err := downloadDeb(ctx, work, cand.Package)
	if err != nil {
		return err
	}
	log.Debug("kernel: downloaded", "deb", deb, "took", time.Since(start))

	opts.progress("extracting kernel %s…", cand.Version)
	t := time.Now()
	stage := filepath.Join(work, cand.Version)
	vmlinuz, err := extractDeb(ctx, deb, stage, cand.Version, opts)
	if err != nil {
		return err
	}
	// The .deb is 70 MB we no longer need; don't wait for the deferred cleanup.
	os.Remove(deb)
	log.Debug("kernel: unpacked modules", "took", time.Since(t))

	t = time.Now()
	elfData, err := ExtractVmlinux(vmlinuz)
	if err != nil {
		return fmt.Errorf("%w (in boot/vmlinuz-%s of %s)", err, cand.Version, filepath.Base(deb))
	}
	vmlinux := filepath.Join(stage, "vmlinux")
	if err := writeFileAtomic(vmlinux, 0o644, func(w io.Writer) error { _, err := w.Write(elfData); return err }); err != nil {
		return fmt.Errorf("kernel: writing vmlinux: %w", err)
	}
	if err := validateVmlinuxFile(vmlinux); err != nil {
		return err
	}
	log.Debug("kernel: extracted vmlinux", "bytes", len(elfData), "took", time.Since(t))

	// The marker goes last: a version dir without it is never used.
	m := marker{Key: cacheKey(), Package: cand.Package, DebVersion: debVersion(deb), Fetched: time.Now().UTC()}
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileAtomic(filepath.Join(stage, markerName), 0o644, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return fmt.Errorf("kernel: writing marker: %w", err)
	}

	// Publish by rename, so other processes see either nothing or a
	// complete directory. A stale dir of the same version (older cache key)
	// is moved into work first and deleted with it.
	final := filepath.Join(cacheDir, cand.Version)
	if _, err := os.Lstat(final); err == nil {
		if err := os.Rename(final, filepath.Join(work, "old")); err != nil {
			return fmt.Errorf("kernel: replacing stale %s: %w", final, err)
		}
	}
	if err := os.Rename(stage, final); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if d, err := os.Open(cacheDir); err == nil {
		d.Sync()
		d.Close()
	}
	opts.progress("kernel %s ready (%.1fs)", cand.Version, time.Since(start).Seconds())
	return nil
}

// debVersion extracts the Debian version from an apt-get download file name
// (name_version_arch.deb, with ':' of an epoch escaped as %3a).
func debVersion(deb string) string {
	parts := strings.Split(strings.TrimSuffix(filepath.Base(deb), ".deb"), "_")
	if len(parts) != 3 {
		return ""
	}
	v, err := url.PathUnescape(parts[1])
	if err != nil {
		return parts[1]
	}
	return v
}

// keepModule reports whether a module path (relative to kernel/, any .ko*
// suffix) is in keepModules.
func keepModule(rel string) bool {
	stem := rel
	if i := strings.LastIndex(stem, ".ko"); i >= 0 {
		stem = stem[:i]
	}
	for _, k := range keepModules {
		if stem == k || (strings.HasSuffix(k, "/") && strings.HasPrefix(stem, k)) {
			return true
		}
	}
	return false
}

// extractDeb unpacks from the package, into stage, lib/modules/<version>/'s
// modules.builtin*, modules.order and the kept modules (decompressing .ko.xz
// to .ko), and returns the contents of boot/vmlinuz-<version>.
//
// Modules are kept if keepModules lists them or a kept module depends on
// them. Dependencies are only known after reading a module, so when the
// first pass finds kept modules depending on unlisted ones, further passes
// over the package pick those up. With an allowlist that is already closed
// (the normal case) there is exactly one pass.
func extractDeb(ctx context.Context, deb, stage, version string, opts *Options) ([]byte, error) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return nil, errors.New("kernel: dpkg-deb not found; install dpkg or pass --kernel VMLINUX --modules DIR")
	}
	x := &debExtractor{
		deb:     deb,
		version: version,
		modRoot: filepath.Join(stage, "lib", "modules", version),
		all:     map[string]string{},
		kept:    map[string][]string{},
	}
	if err := os.MkdirAll(x.modRoot, 0o755); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := x.pass(ctx, true, keepModule); err != nil {
		return nil, err
	}
	if x.vmlinuz == nil {
		return nil, fmt.Errorf("kernel: %s has no boot/vmlinuz-%s", filepath.Base(deb), version)
	}
	builtin, err := readBuiltin(x.modRoot)
	if err != nil {
		return nil, err
	}
	warned := map[string]bool{}
	for range 8 { // dependency chains are short; 8 bounds a pathological package
		need := map[string]bool{}
		for name, deps := range x.kept {
			for _, d := range deps {
				if _, ok := x.kept[d]; ok || builtin[d] {
					continue
				}
				if rel, ok := x.all[d]; ok {
					need[rel] = true
				} else if !warned[d] {
					warned[d] = true
					opts.logger().Warn("kernel: module dependency missing from package", "module", name, "needs", d)
				}
			}
		}
		if len(need) == 0 {
			return x.vmlinuz, nil
		}
		opts.logger().Debug("kernel: extracting module dependencies outside the allowlist", "count", len(need))
		if err := x.pass(ctx, false, func(rel string) bool { return need[rel] }); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("kernel: module dependencies in %s did not settle after 8 passes", filepath.Base(deb))
}

type debExtractor struct {
	deb, version string
	modRoot      string              // <stage>/lib/modules/<version>
	vmlinuz      []byte              // boot/vmlinuz-<version>
	all          map[string]string   // every module in the package: name → path relative to kernel/
	kept         map[string][]string // extracted modules: name → depends
}

// pass streams the package's data tarball once, writing the modules that
// want selects (and, on the first pass, vmlinuz and the metadata files).
func (x *debExtractor) pass(ctx context.Context, first bool, want func(rel string) bool) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", x.deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kernel: dpkg-deb: %w", err)
	}
	defer func() {
		if err != nil {
			cancel() // stop dpkg-deb; its exit error is not the interesting one
			cmd.Wait()
			return
		}
		io.Copy(io.Discard, stdout) // let dpkg-deb finish writing tar padding
		if werr := cmd.Wait(); werr != nil {
			err = fmt.Errorf("kernel: dpkg-deb --fsys-tarfile %s: %v: %s", filepath.Base(x.deb), werr, tail(stderr.Bytes()))
		}
	}()

	modPrefix := "lib/modules/" + x.version + "/"
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kernel: reading %s: %w (dpkg-deb: %s)", filepath.Base(x.deb), err, tail(stderr.Bytes()))
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		switch {
		case first && name == "boot/vmlinuz-"+x.version:
			if x.vmlinuz, err = io.ReadAll(io.LimitReader(tr, 256<<20)); err != nil {
				return fmt.Errorf("kernel: reading vmlinuz: %w", err)
			}
		case first && (strings.HasPrefix(name, modPrefix+"modules.builtin") || name == modPrefix+"modules.order"):
			if err := writeFrom(filepath.Join(x.modRoot, strings.TrimPrefix(name, modPrefix)), tr, false); err != nil {
				return err
			}
		case strings.HasPrefix(name, modPrefix+"kernel/") && isModuleFile(name):
			rel := strings.TrimPrefix(name, modPrefix+"kernel/")
			mod := modName(rel)
			if first {
				x.all[mod] = rel
			}
			if !want(rel) || !filepath.IsLocal(rel) {
				continue
			}
			if err := x.writeModule(rel, mod, tr); err != nil {
				return err
			}
		}
	}
}

// writeModule writes one module under modRoot/kernel, decompressing .ko.xz
// so the cache holds only plain .ko files, and records its dependencies.
func (x *debExtractor) writeModule(rel, mod string, r io.Reader) error {
	decompress := strings.HasSuffix(rel, ".ko.xz")
	dst := filepath.Join(x.modRoot, "kernel", filepath.FromSlash(strings.TrimSuffix(rel, ".xz")))
	if !decompress && !strings.HasSuffix(rel, ".ko") {
		// .ko.zst/.ko.gz: keep as shipped; ResolveModules reports them.
		dst = filepath.Join(x.modRoot, "kernel", filepath.FromSlash(rel))
	}
	if err := writeFrom(dst, r, decompress); err != nil {
		return err
	}
	var deps []string
	if strings.HasSuffix(dst, ".ko") {
		var err error
		if deps, err = moduleDepends(dst); err != nil {
			return err
		}
	}
	x.kept[mod] = deps
	return nil
}

// writeFrom writes r to dst, creating parent directories. No temp file: dst
// is inside the private staging dir, which becomes visible only as a whole.
func writeFrom(dst string, r io.Reader, decompressXZ bool) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if decompressXZ {
		err = unxz(f, r)
	} else {
		_, err = io.Copy(f, r)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kernel: writing %s: %w", dst, err)
	}
	return nil
}
