package kernel

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/therootcompany/xz"
)

// Module is one loadable module file.
//
// Name is the kernel's name for the module ('-' folded to '_', as in
// /proc/modules). Path is an uncompressed .ko file ready for insmod /
// finit_module: a module shipped as .ko.xz has already been decompressed into
// the cache by ResolveModules.
type Module struct {
	Name, Path string
	// Deps are the modules (by Name) that must be loaded first; built-in
	// ones are left out. Modules whose deps are loaded can load in
	// parallel.
	Deps []string
}

// ResolveModules returns the .ko files to insmod for the wanted module names,
// dependencies first, each module once, skipping modules that modules.builtin
// lists as built into the kernel.
//
// Dependencies come from the "depends=" entry of each module's ELF .modinfo
// section, because Debian's package ships no modules.dep (depmod runs at
// install time, which we never do). Names compare with '-' and '_' equal, as
// the kernel does. Files may be .ko or .ko.xz; a .ko.xz is decompressed into
// <CacheDir>/ko/ (reused on later calls) and the returned Path names that copy.
//
// A wanted module that is neither present nor built in is an error naming it;
// so is a missing dependency (naming who needs it) or a dependency cycle.
func (k *Kernel) ResolveModules(names []string) ([]Module, error) {
	idx, err := indexModules(k.ModulesDir)
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(k.ModulesDir)
	if err != nil {
		return nil, err
	}

	// Check every wanted name first so the error lists all unknown ones at
	// once instead of making the caller fix them one run at a time.
	var unknown []string
	for _, n := range names {
		m := modName(n)
		if m == "" {
			return nil, errors.New("kernel: empty module name")
		}
		if idx[m] == "" && !builtin[m] {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("kernel: module(s) %s not found in %s and not built into kernel %s",
			strings.Join(quoteAll(unknown), ", "), k.ModulesDir, k.Version)
	}

	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []Module
	var visit func(name, requiredBy string) error
	visit = func(name, requiredBy string) error {
		if builtin[name] {
			return nil
		}
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("kernel: module dependency cycle through %q", name)
		}
		src := idx[name]
		if src == "" {
			return fmt.Errorf("kernel: module %q (needed by %q) not found in %s and not built in", name, requiredBy, k.ModulesDir)
		}
		path, err := k.plainModule(src)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		state[name] = visiting
		var loadDeps []string
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
			if d = modName(d); !builtin[d] {
				loadDeps = append(loadDeps, d)
			}
		}
		state[name] = done
		out = append(out, Module{Name: name, Path: path, Deps: loadDeps})
		return nil
	}
	for _, n := range names {
		if err := visit(modName(n), ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// modName turns a module file name or user-supplied name into the kernel's
// canonical module name: no directory, no .ko* suffix, '-' folded to '_'.
func modName(s string) string {
	s = filepath.Base(strings.TrimSpace(s))
	if i := strings.Index(s, ".ko"); i >= 0 && (i+3 == len(s) || s[i+3] == '.') {
		s = s[:i]
	}
	if s == "." || s == "/" {
		return ""
	}
	return strings.ReplaceAll(s, "-", "_")
}

// isModuleFile reports whether a file name is a (possibly compressed) module.
func isModuleFile(name string) bool {
	return strings.HasSuffix(name, ".ko") || strings.Contains(name, ".ko.")
}

// indexModules maps module names to their files under dir. On duplicates,
// a file outside kernel/ (updates/, extra/: the directories depmod lets
// override the distribution's modules) wins over one inside it.
func indexModules(dir string) (map[string]string, error) {
	idx := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !isModuleFile(d.Name()) {
			return nil
		}
		n := modName(d.Name())
		if old, ok := idx[n]; !ok || (isUnderKernelDir(dir, old) && !isUnderKernelDir(dir, p)) {
			idx[n] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel: reading modules dir: %w", err)
	}
	return idx, nil
}

func isUnderKernelDir(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && strings.HasPrefix(rel, "kernel"+string(filepath.Separator))
}

// readBuiltin returns the names listed in <dir>/modules.builtin. A missing
// file means nothing is known to be built in (custom module trees may lack it).
func readBuiltin(dir string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	return parseBuiltin(f)
}

func parseBuiltin(r io.Reader) (map[string]bool, error) {
	m := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			m[modName(line)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel: reading modules.builtin: %w", err)
	}
	return m, nil
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel: module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kernel: module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("kernel: module %s: reading .modinfo: %w", path, err)
	}
	return parseDepends(data), nil
}

// parseDepends extracts the comma-separated depends= list from .modinfo data
// (NUL-separated key=value strings).
func parseDepends(modinfo []byte) []string {
	var deps []string
	for kv := range bytes.SplitSeq(modinfo, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		for d := range strings.SplitSeq(string(v), ",") {
			if d = modName(d); d != "" && !slices.Contains(deps, d) {
				deps = append(deps, d)
			}
		}
	}
	return deps
}

// plainModule returns a path to the uncompressed form of the module at src:
// src itself for a .ko, or a cached decompressed copy for a .ko.xz.
func (k *Kernel) plainModule(src string) (string, error) {
	switch {
	case strings.HasSuffix(src, ".ko"):
		return src, nil
	case strings.HasSuffix(src, ".ko.xz"):
	default:
		return "", fmt.Errorf("kernel: module %s: unsupported compression (only .ko and .ko.xz are handled); decompress it first", src)
	}
	if k.cacheDir == "" {
		return "", fmt.Errorf("kernel: module %s is xz-compressed and this Kernel has no cache dir to decompress it into; "+
			"obtain the Kernel from Ensure or FromPaths", src)
	}
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	// Key the copy by source path, size and mtime so a rebuilt module tree
	// with the same version is not answered from a stale copy.
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", src, st.Size(), st.ModTime().UnixNano()))
	dst := filepath.Join(k.cacheDir, "ko", hex.EncodeToString(h[:8]), modName(src)+".ko")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	if err := writeFileAtomic(dst, 0o644, func(w io.Writer) error { return unxz(w, in) }); err != nil {
		return "", fmt.Errorf("kernel: decompressing module %s: %w", src, err)
	}
	return dst, nil
}

// unxz copies the decompressed XZ data of r to w.
func unxz(w io.Writer, r io.Reader) error {
	zr, err := xz.NewReader(r, 0)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, zr)
	return err
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
