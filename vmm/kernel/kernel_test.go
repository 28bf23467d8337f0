package kernel

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- synthetic ELF files ---------------------------------------------------

// fakeELF builds a minimal x86-64 ELF: optional named sections, an optional
// PT_NOTE segment with the Xen PVH entry note, and a trailing blob (which
// elf parsing ignores; it gives the XZ BCJ filter real x86 code to chew on).
type fakeELF struct {
	machine  elf.Machine
	sections map[string][]byte
	pvh      bool
	blob     []byte
}

func (f fakeELF) bytes() []byte {
	le := binary.LittleEndian
	machine := f.machine
	if machine == 0 {
		machine = elf.EM_X86_64
	}
	const ehsize, phsize, shsize = 64, 56, 64
	var body bytes.Buffer // everything after the ELF header and program headers
	nph := 0
	if f.pvh {
		nph = 1
	}
	bodyOff := uint64(ehsize + nph*phsize)

	var progs []elf.Prog64
	if f.pvh {
		var note bytes.Buffer
		binary.Write(&note, le, [3]uint32{4, 4, xenElfnotePhys32Entry})
		note.WriteString("Xen\x00")
		binary.Write(&note, le, uint32(0x1000000))
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_NOTE), Off: bodyOff, Filesz: uint64(note.Len()), Memsz: uint64(note.Len()), Align: 4})
		body.Write(note.Bytes())
	}

	names := slices.Sorted(func(yield func(string) bool) {
		for n := range f.sections {
			if !yield(n) {
				return
			}
		}
	})
	shstr := []byte{0}
	shdrs := []elf.Section64{{}}
	for _, n := range names {
		shdrs = append(shdrs, elf.Section64{
			Name: uint32(len(shstr)), Type: uint32(elf.SHT_PROGBITS), Off: bodyOff + uint64(body.Len()),
			Size: uint64(len(f.sections[n])), Addralign: 1,
		})
		shstr = append(append(shstr, n...), 0)
		body.Write(f.sections[n])
	}
	shdrs = append(shdrs, elf.Section64{
		Name: uint32(len(shstr)), Type: uint32(elf.SHT_STRTAB), Off: bodyOff + uint64(body.Len()),
		Size: uint64(len(shstr) + len(".shstrtab") + 1), Addralign: 1,
	})
	shstr = append(append(shstr, ".shstrtab"...), 0)
	body.Write(shstr)
	for body.Len()%8 != 0 {
		body.WriteByte(0)
	}
	shoff := bodyOff + uint64(body.Len())

	var out bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: 1,
		Phoff: ehsize, Shoff: shoff, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(nph),
		Shentsize: shsize, Shnum: uint16(len(shdrs)), Shstrndx: uint16(len(shdrs) - 1),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&out, le, hdr)
	for _, p := range progs {
		binary.Write(&out, le, p)
	}
	out.Write(body.Bytes())
	for _, s := range shdrs {
		binary.Write(&out, le, s)
	}
	out.Write(f.blob)
	return out.Bytes()
}

// fakeKO is a module file with the given .modinfo depends= list.
func fakeKO(name string, depends ...string) []byte {
	info := "license=GPL\x00depends=" + strings.Join(depends, ",") + "\x00name=" + name + "\x00vermagic=6.1.0 SMP mod_unload\x00"
	return fakeELF{sections: map[string][]byte{".modinfo": []byte(info)}}.bytes()
}

// x86Code returns up to n bytes of real x86-64 machine code (the test
// binary's .text), so the BCJ filter has calls and jumps to convert.
func x86Code(t *testing.T, n int) []byte {
	t.Helper()
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text, err := f.Section(".text").Data()
	if err != nil {
		t.Fatal(err)
	}
	return text[:min(n, len(text))]
}

// xzCompress runs the xz binary the way the kernel build compresses a
// bzImage payload (x86 BCJ + LZMA2, CRC32 check).
func xzCompress(t *testing.T, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz binary not installed (apt-get install xz-utils); needed to build test XZ streams")
	}
	cmd := exec.Command("xz", "--format=xz", "--check=crc32", "--x86", "--lzma2", "-c")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz: %v: %s", err, stderr.String())
	}
	return out
}

func junk(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	// Random junk must not contain the magic by accident.
	for i := bytes.Index(b, xzMagic); i >= 0; i = bytes.Index(b, xzMagic) {
		b[i] = 0
	}
	return b
}

// fakeBzImage builds a setup sector with the "HdrS" signature followed by
// the payload and trailing data.
func fakeBzImage(payload []byte) []byte {
	img := junk(1, 0x1000)
	binary.LittleEndian.PutUint32(img[0x202:], 0x53726448)
	img = append(img, payload...)
	return append(img, junk(2, 777)...)
}

// --- ExtractVmlinux --------------------------------------------------------

func TestExtractVmlinux(t *testing.T) {
	vmlinux := fakeELF{pvh: true, blob: x86Code(t, 512<<10)}.bytes()
	stream := xzCompress(t, vmlinux)

	t.Run("roundtrip", func(t *testing.T) {
		img := fakeBzImage(stream)
		got, err := ExtractVmlinux(img)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, vmlinux) {
			t.Fatalf("output differs from input: got %d bytes, want %d", len(got), len(vmlinux))
		}
	})

	t.Run("skips a false magic before the payload", func(t *testing.T) {
		decoy := append(slices.Clone(xzMagic), junk(3, 200)...)
		img := fakeBzImage(append(decoy, stream...))
		got, err := ExtractVmlinux(img)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, vmlinux) {
			t.Fatal("output differs from input")
		}
	})

	t.Run("no magic", func(t *testing.T) {
		_, err := ExtractVmlinux(junk(4, 1<<16))
		if err == nil || !strings.Contains(err.Error(), "no XZ stream") {
			t.Fatalf("err = %v, want 'no XZ stream'", err)
		}
	})

	t.Run("corrupt stream", func(t *testing.T) {
		bad := slices.Clone(stream)
		for i := len(bad) / 3; i < len(bad)/3+64; i++ {
			bad[i] ^= 0x5a
		}
		_, err := ExtractVmlinux(fakeBzImage(bad))
		if err == nil {
			t.Fatal("corrupt stream decompressed without error")
		}
		t.Log(err)
	})

	t.Run("truncated stream", func(t *testing.T) {
		_, err := ExtractVmlinux(stream[:len(stream)/2])
		if err == nil {
			t.Fatal("truncated stream decompressed without error")
		}
	})

	t.Run("not an ELF", func(t *testing.T) {
		_, err := ExtractVmlinux(fakeBzImage(xzCompress(t, x86Code(t, 64<<10))))
		if err == nil || !strings.Contains(err.Error(), "ELF") {
			t.Fatalf("err = %v, want an ELF complaint", err)
		}
	})

	t.Run("wrong machine", func(t *testing.T) {
		arm := fakeELF{machine: elf.EM_AARCH64}.bytes()
		_, err := ExtractVmlinux(fakeBzImage(xzCompress(t, arm)))
		if err == nil || !strings.Contains(err.Error(), "EM_X86_64") {
			t.Fatalf("err = %v, want EM_X86_64 complaint", err)
		}
	})
}

// --- FromPaths -------------------------------------------------------------

func TestFromPaths(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	mods := filepath.Join(dir, "lib", "modules", "6.1.0-99-test")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := context.Background()
	opts := Options{CacheDir: cache}

	t.Run("ELF with PVH note", func(t *testing.T) {
		p := write("vmlinux", fakeELF{pvh: true}.bytes())
		k, err := FromPaths(ctx, p, mods, opts)
		if err != nil {
			t.Fatal(err)
		}
		if k.Vmlinux != p || k.ModulesDir != mods || k.Version != "6.1.0-99-test" {
			t.Fatalf("got %+v", k)
		}
	})

	t.Run("ELF without PVH note", func(t *testing.T) {
		p := write("nopvh", fakeELF{}.bytes())
		_, err := FromPaths(ctx, p, mods, opts)
		if err == nil || !strings.Contains(err.Error(), "PVH") {
			t.Fatalf("err = %v, want PVH complaint", err)
		}
	})

	t.Run("bzImage", func(t *testing.T) {
		want := fakeELF{pvh: true, blob: x86Code(t, 64<<10)}.bytes()
		p := write("bzImage", fakeBzImage(xzCompress(t, want)))
		k, err := FromPaths(ctx, p, mods, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k.Vmlinux, filepath.Join(cache, "custom")+string(filepath.Separator)) {
			t.Fatalf("vmlinux %s not extracted into the cache", k.Vmlinux)
		}
		got, err := os.ReadFile(k.Vmlinux)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("extracted vmlinux differs (err %v)", err)
		}
		k2, err := FromPaths(ctx, p, mods, opts)
		if err != nil || k2.Vmlinux != k.Vmlinux {
			t.Fatalf("second call: %v, %v (want reuse of %s)", err, k2, k.Vmlinux)
		}
	})

	t.Run("neither ELF nor bzImage", func(t *testing.T) {
		p := write("junk", junk(5, 4096))
		if _, err := FromPaths(ctx, p, mods, opts); err == nil {
			t.Fatal("junk accepted as a kernel")
		}
	})

	t.Run("missing modules dir", func(t *testing.T) {
		p := write("vmlinux2", fakeELF{pvh: true}.bytes())
		_, err := FromPaths(ctx, p, filepath.Join(dir, "nope"), opts)
		if err == nil || !strings.Contains(err.Error(), "modules dir") {
			t.Fatalf("err = %v", err)
		}
	})
}

// --- ResolveModules (synthetic tree) ---------------------------------------

func TestResolveModulesSynthetic(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "6.1.0-1-test")
	put := func(rel string, data []byte) {
		p := filepath.Join(mods, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("kernel/a/ring.ko", fakeKO("ring"))
	put("kernel/a/core.ko", fakeKO("core", "ring"))
	put("kernel/b/dev-net.ko", fakeKO("dev_net", "core", "ring", "builtin_thing"))
	put("kernel/b/fs.ko", fakeKO("fs", "dev_net", "core"))
	put("kernel/c/loop1.ko", fakeKO("loop1", "loop2"))
	put("kernel/c/loop2.ko", fakeKO("loop2", "loop1"))
	put("kernel/c/orphan.ko", fakeKO("orphan", "ghost"))
	put("modules.builtin", []byte("kernel/x/builtin_thing.ko\nkernel/x/builtin-too.ko\n"))
	k := &Kernel{Version: "6.1.0-1-test", ModulesDir: mods, cacheDir: filepath.Join(dir, "cache")}

	t.Run("order and dedup", func(t *testing.T) {
		got, err := k.ResolveModules([]string{"fs", "dev_net", "builtin_too", "core"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range got {
			names = append(names, m.Name)
			if _, err := os.Stat(m.Path); err != nil {
				t.Error(err)
			}
		}
		want := []string{"ring", "core", "dev_net", "fs"}
		if !slices.Equal(names, want) {
			t.Fatalf("got %v, want %v", names, want)
		}
	})

	t.Run("dash and underscore equal", func(t *testing.T) {
		got, err := k.ResolveModules([]string{"dev-net"})
		if err != nil {
			t.Fatal(err)
		}
		if last := got[len(got)-1]; last.Name != "dev_net" || filepath.Base(last.Path) != "dev-net.ko" {
			t.Fatalf("got %+v", got)
		}
	})

	t.Run("unknown names", func(t *testing.T) {
		_, err := k.ResolveModules([]string{"core", "no_such_mod", "other-missing"})
		if err == nil || !strings.Contains(err.Error(), `"no_such_mod"`) || !strings.Contains(err.Error(), `"other-missing"`) {
			t.Fatalf("err = %v, want both unknown names", err)
		}
	})

	t.Run("missing dependency", func(t *testing.T) {
		_, err := k.ResolveModules([]string{"orphan"})
		if err == nil || !strings.Contains(err.Error(), `"ghost"`) || !strings.Contains(err.Error(), `"orphan"`) {
			t.Fatalf("err = %v, want ghost needed by orphan", err)
		}
	})

	t.Run("cycle", func(t *testing.T) {
		_, err := k.ResolveModules([]string{"loop1"})
		if err == nil || !strings.Contains(err.Error(), "cycle") {
			t.Fatalf("err = %v, want cycle", err)
		}
	})

	t.Run("ko.xz", func(t *testing.T) {
		ko := fakeKO("packed", "ring")
		put("kernel/d/packed.ko.xz", xzCompress(t, ko))
		got, err := k.ResolveModules([]string{"packed"})
		if err != nil {
			t.Fatal(err)
		}
		p := got[len(got)-1]
		if p.Name != "packed" || !strings.HasPrefix(p.Path, k.cacheDir) || !strings.HasSuffix(p.Path, ".ko") {
			t.Fatalf("got %+v, want a decompressed .ko in the cache", p)
		}
		if data, err := os.ReadFile(p.Path); err != nil || !bytes.Equal(data, ko) {
			t.Fatalf("decompressed module differs (err %v)", err)
		}
		if got[0].Name != "ring" {
			t.Fatalf("dependency of a .ko.xz not resolved: %+v", got)
		}
	})
}

// --- apt resolution and cache selection (no network) -----------------------

// fakeAptCache puts an apt-cache script first in PATH.
func fakeAptCache(t *testing.T, script string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "apt-cache"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestAptCandidate(t *testing.T) {
	ctx := context.Background()
	t.Run("parses the newest dependency", func(t *testing.T) {
		fakeAptCache(t, `cat <<'EOF'
linux-image-amd64
  Depends: linux-image-6.1.0-9-amd64
  Depends: linux-image-6.1.0-10-amd64
  Depends: <linux-image-virtual>
EOF
`)
		c, err := aptCandidate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Package != "linux-image-6.1.0-10-amd64" || c.Version != "6.1.0-10-amd64" {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("empty lists", func(t *testing.T) {
		fakeAptCache(t, "echo 'E: No packages found' >&2; exit 100\n")
		_, err := aptCandidate(ctx)
		if err == nil || !strings.Contains(err.Error(), "apt-get update") || !strings.Contains(err.Error(), "No packages found") {
			t.Fatalf("err = %v, want advice to run apt-get update", err)
		}
	})
	t.Run("no dependency listed", func(t *testing.T) {
		fakeAptCache(t, "echo linux-image-amd64\n")
		_, err := aptCandidate(ctx)
		if err == nil || !strings.Contains(err.Error(), "apt-get update") {
			t.Fatalf("err = %v, want advice to run apt-get update", err)
		}
	})
}

// fakeCached makes a complete-looking cached kernel of a version.
func fakeCached(t *testing.T, cache, version, key string) {
	t.Helper()
	dir := filepath.Join(cache, version)
	if err := os.MkdirAll(filepath.Join(dir, "lib", "modules", version), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vmlinux"), fakeELF{pvh: true}.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(marker{Key: key, Package: "linux-image-" + version})
	if err := os.WriteFile(filepath.Join(dir, markerName), m, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stubFetch replaces the apt hooks for one test. The apt state it
// fingerprints is a fresh fake lists dir (returned), so the candidate memo of
// one test never answers for another.
func stubFetch(t *testing.T, resolve func(context.Context) (candidate, error)) (downloads *int, lists string) {
	t.Helper()
	downloads = new(int)
	lists = t.TempDir()
	if err := os.WriteFile(filepath.Join(lists, "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldR, oldD, oldP := resolveCandidate, downloadDeb, aptStatePaths
	resolveCandidate = resolve
	downloadDeb = func(context.Context, string, string) (string, error) {
		*downloads++
		return "", errors.New("stub: no download in this test")
	}
	aptStatePaths = []string{lists}
	t.Cleanup(func() { resolveCandidate, downloadDeb, aptStatePaths = oldR, oldD, oldP })
	return downloads, lists
}

func TestEnsureCacheSelection(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	fakeCached(t, cache, "6.1.0-9-amd64", cacheKey())
	fakeCached(t, cache, "6.1.0-10-amd64", cacheKey())
	fakeCached(t, cache, "6.1.0-11-amd64", "stale-allowlist")
	if err := os.MkdirAll(filepath.Join(cache, "6.1.0-12-amd64"), 0o755); err != nil { // no marker: incomplete
		t.Fatal(err)
	}
	aptDown := errors.New("kernel: apt-cache depends linux-image-amd64 failed; run `apt-get update`")

	t.Run("offline uses newest complete", func(t *testing.T) {
		n, _ := stubFetch(t, func(context.Context) (candidate, error) { return candidate{}, aptDown })
		var lines []string
		k, err := Ensure(ctx, Options{CacheDir: cache, Progress: func(f string, a ...any) { lines = append(lines, f) }})
		if err != nil {
			t.Fatal(err)
		}
		if k.Version != "6.1.0-10-amd64" || *n != 0 {
			t.Fatalf("got %s with %d downloads; want 6.1.0-10-amd64 and none", k.Version, *n)
		}
		if len(lines) == 0 {
			t.Error("falling back to the cache printed no progress line")
		}
	})

	t.Run("prefers the apt candidate", func(t *testing.T) {
		n, _ := stubFetch(t, func(context.Context) (candidate, error) {
			return candidate{"linux-image-6.1.0-9-amd64", "6.1.0-9-amd64"}, nil
		})
		k, err := Ensure(ctx, Options{CacheDir: cache})
		if err != nil || k.Version != "6.1.0-9-amd64" || *n != 0 {
			t.Fatalf("got %v, %v, %d downloads", k, err, *n)
		}
	})

	t.Run("stale cache key refetches", func(t *testing.T) {
		n, _ := stubFetch(t, func(context.Context) (candidate, error) {
			return candidate{"linux-image-6.1.0-11-amd64", "6.1.0-11-amd64"}, nil
		})
		var lines []string
		k, err := Ensure(ctx, Options{CacheDir: cache, Progress: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }})
		if *n != 1 {
			t.Fatalf("%d downloads; want the stub download to be tried once", *n)
		}
		// The stub download fails, so Ensure falls back to the newest complete kernel.
		if err != nil || k.Version != "6.1.0-10-amd64" {
			t.Fatalf("got %v, %v; want fallback to 6.1.0-10-amd64", k, err)
		}
		if !strings.Contains(strings.Join(lines, "\n"), "stub: no download") {
			t.Errorf("progress %q does not say why the fetch failed", lines)
		}
	})

	t.Run("download fails with empty cache", func(t *testing.T) {
		n, _ := stubFetch(t, func(context.Context) (candidate, error) {
			return candidate{"linux-image-6.1.0-13-amd64", "6.1.0-13-amd64"}, nil
		})
		_, err := Ensure(ctx, Options{CacheDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "stub: no download") || *n != 1 {
			t.Fatalf("err = %v after %d downloads, want the download error", err, *n)
		}
	})

	t.Run("offline with empty cache", func(t *testing.T) {
		stubFetch(t, func(context.Context) (candidate, error) { return candidate{}, aptDown })
		_, err := Ensure(ctx, Options{CacheDir: t.TempDir()})
		if !errors.Is(err, aptDown) {
			t.Fatalf("err = %v, want the apt error", err)
		}
	})
}

func TestEnsureRemembersAptAnswer(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	fakeCached(t, cache, "6.1.0-9-amd64", cacheKey())
	fakeCached(t, cache, "6.1.0-10-amd64", cacheKey())
	calls := 0
	answer := "6.1.0-9-amd64"
	_, lists := stubFetch(t, func(context.Context) (candidate, error) {
		calls++
		return candidate{"linux-image-" + answer, answer}, nil
	})
	ensure := func(want string) {
		t.Helper()
		k, err := Ensure(ctx, Options{CacheDir: cache})
		if err != nil || k.Version != want {
			t.Fatalf("Ensure = %v, %v; want %s", k, err, want)
		}
	}
	ensure("6.1.0-9-amd64")
	ensure("6.1.0-9-amd64")
	if calls != 1 {
		t.Fatalf("apt asked %d times for unchanged lists, want 1", calls)
	}
	// apt-get update rewrites the lists; the memo must not outlive that.
	answer = "6.1.0-10-amd64"
	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(filepath.Join(lists, "new_Packages"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(lists, "new_Packages"), later, later)
	ensure("6.1.0-10-amd64")
	if calls != 2 {
		t.Fatalf("apt asked %d times after the lists changed, want 2", calls)
	}
	// No lists at all: nothing to fingerprint, so apt is asked every time.
	aptStatePaths = []string{t.TempDir()}
	ensure("6.1.0-10-amd64")
	ensure("6.1.0-10-amd64")
	if calls != 4 {
		t.Fatalf("apt asked %d times in total, want 4", calls)
	}
}

// TestFetchFakeDeb runs the whole fetch path (lock, download hook, dpkg-deb
// extraction, allowlist plus dependency closure, .ko.xz decompression,
// vmlinux extraction, publish) on a package built here, from three
// concurrent callers.
func TestFetchFakeDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed; needed to build and read a test package")
	}
	const v = "6.1.0-99-amd64"
	vmlinux := fakeELF{pvh: true, blob: x86Code(t, 64<<10)}.bytes()
	root := t.TempDir()
	files := map[string][]byte{
		"DEBIAN/control": []byte("Package: linux-image-" + v + "\nVersion: 6.1.999-1\nArchitecture: amd64\n" +
			"Maintainer: test <t@example.com>\nDescription: test kernel\n"),
		"boot/vmlinuz-" + v:                                             fakeBzImage(xzCompress(t, vmlinux)),
		"boot/System.map-" + v:                                          []byte("not kept"),
		"lib/modules/" + v + "/modules.builtin":                         []byte("kernel/lib/crc32c.ko\n"),
		"lib/modules/" + v + "/modules.order":                           []byte("kernel/drivers/virtio/virtio.ko\n"),
		"lib/modules/" + v + "/kernel/drivers/virtio/virtio_ring.ko":    fakeKO("virtio_ring"),
		"lib/modules/" + v + "/kernel/drivers/virtio/virtio.ko":         fakeKO("virtio", "virtio_ring"),
		"lib/modules/" + v + "/kernel/drivers/virtio/virtio_mmio.ko.xz": xzCompress(t, fakeKO("virtio_mmio", "virtio", "virtio_ring")),
		"lib/modules/" + v + "/kernel/fs/overlayfs/overlay.ko":          fakeKO("overlay", "extra_dep", "crc32c"),
		"lib/modules/" + v + "/kernel/lib/extra-dep.ko":                 fakeKO("extra_dep", "extra_dep2"),
		"lib/modules/" + v + "/kernel/lib/extra_dep2.ko":                fakeKO("extra_dep2"),
		"lib/modules/" + v + "/kernel/sound/unrelated.ko":               fakeKO("unrelated"),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(t.TempDir(), "linux-image-"+v+"_6.1.999-1_amd64.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, out)
	}

	var mu sync.Mutex
	downloads := 0
	_, _ = stubFetch(t, func(context.Context) (candidate, error) { return candidate{"linux-image-" + v, v}, nil })
	downloadDeb = func(_ context.Context, dir, pkg string) (string, error) {
		mu.Lock()
		downloads++
		mu.Unlock()
		time.Sleep(100 * time.Millisecond) // widen the race window
		data, err := os.ReadFile(deb)
		if err != nil {
			return "", err
		}
		dst := filepath.Join(dir, filepath.Base(deb))
		return dst, os.WriteFile(dst, data, 0o644)
	}

	cache := t.TempDir()
	var wg sync.WaitGroup
	results := make([]*Kernel, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = Ensure(context.Background(), Options{CacheDir: cache}) })
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("Ensure #%d: %v", i, errs[i])
		}
		if *results[i] != *results[0] {
			t.Fatalf("Ensure #%d returned %+v, #0 %+v", i, results[i], results[0])
		}
	}
	if downloads != 1 {
		t.Fatalf("%d downloads from 3 concurrent Ensure calls, want 1", downloads)
	}
	k := results[0]
	if k.Version != v || k.Vmlinux != filepath.Join(cache, v, "vmlinux") {
		t.Fatalf("got %+v", k)
	}
	if got, err := os.ReadFile(k.Vmlinux); err != nil || !bytes.Equal(got, vmlinux) {
		t.Fatalf("cached vmlinux differs from the one packaged (err %v)", err)
	}
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(k.ModulesDir, rel))
		return err == nil
	}
	for rel, want := range map[string]bool{
		"modules.builtin":                         true,
		"modules.order":                           true,
		"kernel/drivers/virtio/virtio.ko":         true,
		"kernel/drivers/virtio/virtio_mmio.ko":    true, // decompressed at extraction
		"kernel/drivers/virtio/virtio_mmio.ko.xz": false,
		"kernel/fs/overlayfs/overlay.ko":          true,
		"kernel/lib/extra-dep.ko":                 true, // not allowlisted, but overlay needs it
		"kernel/lib/extra_dep2.ko":                true, // ... and it needs this
		"kernel/sound/unrelated.ko":               false,
	} {
		if exists(rel) != want {
			t.Errorf("%s exists = %v, want %v", rel, !want, want)
		}
	}
	mods, err := k.ResolveModules([]string{"overlay", "virtio-mmio"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	if want := []string{"extra_dep2", "extra_dep", "overlay", "virtio_ring", "virtio", "virtio_mmio"}; !slices.Equal(names, want) {
		t.Errorf("load order %v, want %v", names, want)
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, tmpPrefix+"*"))
	if len(leftovers) != 0 {
		t.Errorf("temp dirs left in the cache: %v", leftovers)
	}
	var m marker
	data, _ := os.ReadFile(filepath.Join(cache, v, markerName))
	if err := json.Unmarshal(data, &m); err != nil || m.DebVersion != "6.1.999-1" || m.Key != cacheKey() {
		t.Errorf("marker %s: %+v, %v", data, m, err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-56-amd64", "6.1.0-9-amd64", 1},
		{"6.1.0-9-amd64", "6.1.0-56-amd64", -1},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", 0},
		{"6.12.0-1-amd64", "6.1.0-99-amd64", 1},
		{"6.1.0-56-amd64", "6.1.0-56", 1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestKeepModule(t *testing.T) {
	for rel, want := range map[string]bool{
		"drivers/virtio/virtio_mmio.ko":        true,
		"drivers/net/virtio_net.ko.xz":         true,
		"drivers/net/virtio_netx.ko":           false,
		"net/9p/9pnet_rdma.ko":                 false,
		"fs/9p/9p.ko":                          true,
		"drivers/char/hw_random/virtio-rng.ko": true,
		"drivers/gpu/drm/virtio/virtio-gpu.ko": false,
	} {
		if got := keepModule(rel); got != want {
			t.Errorf("keepModule(%q) = %v, want %v", rel, got, want)
		}
	}
}

// --- the real Debian kernel ------------------------------------------------

// TestEnsureDebian fetches the real kernel package (once: point
// ACP_SANDBOX_KERNEL_CACHE at a shared dir to reuse it across runs).
func TestEnsureDebian(t *testing.T) {
	required := os.Getenv("ACP_SANDBOX_REQUIRE_VM") == "1"
	skip := func(format string, args ...any) {
		t.Helper()
		if required {
			t.Fatalf("ACP_SANDBOX_REQUIRE_VM=1 but: "+format, args...)
		}
		t.Skipf(format, args...)
	}
	for _, tool := range []string{"apt-cache", "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("%s not installed (not a Debian host?); the guest kernel comes from Debian's package", tool)
		}
	}
	cache := os.Getenv("ACP_SANDBOX_KERNEL_CACHE")
	if cache == "" {
		cache = t.TempDir()
	}

	downloads := 0
	oldD := downloadDeb
	downloadDeb = func(ctx context.Context, dir, pkg string) (string, error) {
		downloads++
		return oldD(ctx, dir, pkg)
	}
	t.Cleanup(func() { downloadDeb = oldD })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := Options{
		CacheDir: cache,
		Progress: func(f string, a ...any) { t.Logf(f, a...) },
		Logger:   slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	start := time.Now()
	k, err := Ensure(ctx, opts)
	if err != nil {
		if strings.Contains(err.Error(), "apt-get download") {
			skip("cannot download the kernel package: %v", err)
		}
		t.Fatal(err)
	}
	t.Logf("first Ensure: %v (%d downloads): %+v", time.Since(start), downloads, k)

	f, err := elf.Open(k.Vmlinux)
	if err != nil {
		t.Fatalf("vmlinux: %v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		t.Errorf("vmlinux is %v/%v", f.Class, f.Machine)
	}
	f.Close()
	if err := validateVmlinuxFile(k.Vmlinux); err != nil {
		t.Error(err)
	}
	if filepath.Base(k.ModulesDir) != k.Version {
		t.Errorf("ModulesDir %s does not end in the version %s", k.ModulesDir, k.Version)
	}

	want := []string{"9p", "9pnet_virtio", "virtio_console", "virtio_net", "virtio_mmio"}
	mods, err := k.ResolveModules(want)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("module %s listed twice", m.Name)
		}
		pos[m.Name] = i
		if _, err := os.Stat(m.Path); err != nil {
			t.Error(err)
		}
	}
	builtin, err := readBuiltin(k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range mods {
		deps, err := moduleDepends(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deps {
			if builtin[d] {
				continue
			}
			if j, ok := pos[d]; !ok || j >= i {
				t.Errorf("%s depends on %s, which is not loaded before it", m.Name, d)
			}
		}
	}
	for _, w := range want {
		if _, ok := pos[w]; !ok && !builtin[w] {
			t.Errorf("wanted module %s missing from %v", w, mods)
		}
	}
	for _, d := range []string{"9pnet", "virtio", "virtio_ring", "net_failover", "failover"} {
		if _, ok := pos[d]; !ok && !builtin[d] {
			t.Errorf("expected dependency %s missing from %v", d, mods)
		}
	}
	t.Logf("load order: %v", mods)

	if _, err := k.ResolveModules([]string{"virtio_net", "not_a_real_module"}); err == nil || !strings.Contains(err.Error(), "not_a_real_module") {
		t.Errorf("unknown module: err = %v, want it named", err)
	}

	// Every kept module's dependencies must be in the cache too.
	var all []string
	idx, err := indexModules(k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	for n := range idx {
		all = append(all, n)
	}
	if _, err := k.ResolveModules(all); err != nil {
		t.Errorf("cached module set is not closed under dependencies: %v", err)
	}

	downloads = 0
	start = time.Now()
	k2, err := Ensure(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("second Ensure: %v", took)
	if downloads != 0 {
		t.Errorf("second Ensure downloaded %d times", downloads)
	}
	if *k2 != *k {
		t.Errorf("second Ensure returned %+v, first %+v", k2, k)
	}
	if took > 5*time.Second {
		t.Errorf("second Ensure took %v; a cache hit should be fast", took)
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, tmpPrefix+"*"))
	if len(leftovers) != 0 {
		t.Errorf("temp dirs left in the cache: %v", leftovers)
	}
}

// tWriter sends log output to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
