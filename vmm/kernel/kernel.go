// Package kernel provides the guest kernel for the microVM: an uncompressed
// x86-64 ELF vmlinux that QEMU boots through PVH, and the directory of the
// loadable modules that belong to it.
//
// The boundary: this package turns "some kernel" into files on disk and
// answers which module files to load in which order. It knows about Debian
// packaging (apt-cache, apt-get download, dpkg-deb), the bzImage format and
// module metadata. It knows nothing about QEMU command lines, initramfs
// layout or the guest's init; callers copy Kernel.Vmlinux to QEMU's -kernel
// and the files from ResolveModules into their initramfs.
//
// Ensure fetches the kernel of the host's Debian release (the dependency of
// the linux-image-amd64 metapackage) into a cache dir, without installing it:
// nothing goes to the host's /boot and dpkg -i never runs. It extracts the
// ELF vmlinux from the XZ bzImage once, because decompressing the bzImage
// inside the guest costs ~3 s under TCG. Only a small allowlist of module
// directories (virtio, 9p, vsock, net, fuse, overlay; see keepModules) plus
// their dependencies is kept, since the package's full module tree is ~400 MB.
//
// FromPaths validates a user-supplied kernel instead (--kernel/--modules).
package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Kernel is a guest kernel ready to boot.
type Kernel struct {
	Version    string // e.g. "6.1.0-56-amd64" (uname -r of the guest)
	Vmlinux    string // path to the uncompressed ELF vmlinux (boots ~3 s faster under TCG than the XZ bzImage)
	ModulesDir string // path of lib/modules/<Version> (holds kernel/**.ko and modules.builtin)

	// cacheDir is where ResolveModules puts decompressed copies of .ko.xz
	// modules; empty for a Kernel built as a literal.
	cacheDir string
}

// Options configures Ensure and FromPaths.
type Options struct {
	CacheDir string                           // e.g. $XDG_CACHE_HOME/acp-sandbox/kernel; required
	Progress func(format string, args ...any) // nil = silent; one human progress line per call, no trailing newline
	Logger   *slog.Logger                     // nil = discard
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(format, args...)
	}
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Ensure returns the cached Debian kernel, fetching it first if needed.
//
// It asks apt-cache which linux-image-<version> package linux-image-amd64
// currently depends on (security updates rename it; the answer is remembered
// in the cache dir until apt's package lists change) and returns the cached
// copy of that version, downloading it with apt-get download only when it is
// not cached yet. When apt-cache fails or finds nothing (no package lists,
// no apt), or when fetching a newer version fails, but some complete kernel
// is cached, the newest cached one is used (with a progress line saying so),
// so everything works offline after the first fetch.
//
// The cache layout is <CacheDir>/<version>/vmlinux and
// <CacheDir>/<version>/lib/modules/<version>/. Concurrent calls, also from
// different processes, are safe: fetching holds a flock on
// <CacheDir>/.lock, and a version directory appears (by rename) only once it
// is complete.
func Ensure(ctx context.Context, opts Options) (*Kernel, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("kernel: Options.CacheDir is required")
	}
	log := opts.logger()
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("kernel: creating cache dir: %w", err)
	}

	cand, aptErr := currentCandidate(ctx, opts.CacheDir, log)
	if aptErr != nil {
		k, ok := newestCached(opts.CacheDir)
		if !ok {
			return nil, aptErr
		}
		log.Warn("kernel: apt-cache failed; using newest cached kernel", "version", k.Version, "err", aptErr)
		opts.progress("cannot ask apt for the current kernel (%v); using cached kernel %s", aptErr, k.Version)
		return k, nil
	}
	if k, ok := cachedKernel(opts.CacheDir, cand.Version); ok {
		log.Debug("kernel: cache hit", "version", cand.Version)
		return k, nil
	}

	unlock, err := lockCache(ctx, opts.CacheDir, &opts)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have fetched it while we waited for the lock.
	if k, ok := cachedKernel(opts.CacheDir, cand.Version); ok {
		return k, nil
	}
	if err := fetch(ctx, opts.CacheDir, cand, &opts); err != nil {
		// A newer package than we have cached (apt-get update ran, then the
		// network went away) must not stop the VM from starting: an older
		// complete kernel works just as well until the next fetch succeeds.
		if k, ok := newestCached(opts.CacheDir); ok && ctx.Err() == nil {
			log.Warn("kernel: fetch failed; using newest cached kernel", "want", cand.Version, "version", k.Version, "err", err)
			opts.progress("cannot fetch %s (%v); using cached kernel %s", cand.Package, err, k.Version)
			return k, nil
		}
		return nil, err
	}
	k, ok := cachedKernel(opts.CacheDir, cand.Version)
	if !ok {
		return nil, fmt.Errorf("kernel: internal error: %s not in cache after fetching it", cand.Version)
	}
	return k, nil
}

// FromPaths validates a user-supplied kernel (ACP_SANDBOX_KERNEL / --kernel).
//
// vmlinux must be an x86-64 ELF with a PVH entry note; if it is a bzImage
// instead, its vmlinux is extracted once into <CacheDir>/custom/<hash>/vmlinux
// (keyed by the bzImage's content) and that path is returned. modulesDir must
// be an existing directory; Version is its base name, which is how the
// kernel finds its modules under /lib/modules.
func FromPaths(ctx context.Context, vmlinux, modulesDir string, opts Options) (*Kernel, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("kernel: Options.CacheDir is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vmlinux, err := filepath.Abs(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	modulesDir, err = filepath.Abs(modulesDir)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	st, err := os.Stat(modulesDir)
	if err != nil {
		return nil, fmt.Errorf("kernel: modules dir: %w; pass the kernel's lib/modules/<version> directory", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("kernel: modules dir %s is not a directory; pass the kernel's lib/modules/<version> directory", modulesDir)
	}

	head, err := readHead(vmlinux, 0x400)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	switch {
	case isELF(head):
	case isBzImage(head):
		vmlinux, err = vmlinuxFromBzImage(vmlinux, opts)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("kernel: %s is neither an ELF vmlinux nor a bzImage", vmlinux)
	}
	if err := validateVmlinuxFile(vmlinux); err != nil {
		return nil, err
	}
	return &Kernel{
		Version:    filepath.Base(modulesDir),
		Vmlinux:    vmlinux,
		ModulesDir: modulesDir,
		cacheDir:   opts.CacheDir,
	}, nil
}

// vmlinuxFromBzImage extracts the vmlinux of the bzImage at path into the
// cache, reusing an earlier extraction of the same image.
func vmlinuxFromBzImage(path string, opts Options) (string, error) {
	img, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	sum := sha256.Sum256(img)
	dst := filepath.Join(opts.CacheDir, "custom", hex.EncodeToString(sum[:8]), "vmlinux")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	opts.progress("extracting vmlinux from %s…", path)
	start := time.Now()
	elfData, err := ExtractVmlinux(img)
	if err != nil {
		return "", fmt.Errorf("%w (in %s)", err, path)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	if err := writeFileAtomic(dst, 0o644, func(w io.Writer) error { _, err := w.Write(elfData); return err }); err != nil {
		return "", fmt.Errorf("kernel: writing %s: %w", dst, err)
	}
	opts.logger().Debug("kernel: extracted vmlinux", "from", path, "to", dst, "took", time.Since(start))
	return dst, nil
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

// writeFileAtomic writes a file through a temp file in the same directory and
// renames it into place, so readers never see a partial file.
func writeFileAtomic(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
