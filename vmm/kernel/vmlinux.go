package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/therootcompany/xz"
)

// xzMagic starts every XZ stream (the stream header's magic bytes).
var xzMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}

// maxVmlinux bounds decompression so a corrupt or hostile image cannot make us
// allocate without limit. Real x86-64 vmlinux files are 40–100 MB.
const maxVmlinux = 1 << 30

// ExtractVmlinux finds the XZ stream inside a bzImage (magic FD 37 7A 58 5A 00),
// decompresses it and checks that the result is an x86-64 ELF, which it returns.
//
// Every occurrence of the magic is tried in order until one decompresses to an
// x86-64 ELF, because the magic bytes may also occur by chance in the setup
// code before the payload. Decompression stops at the end of the first XZ
// stream: a bzImage carries more data after its payload.
//
// The Debian payload uses XZ's x86 BCJ filter, which is why this uses
// github.com/therootcompany/xz (a port of XZ Embedded, the decoder the kernel
// itself uses) rather than github.com/ulikunitz/xz, which lacks BCJ.
func ExtractVmlinux(bzImage []byte) ([]byte, error) {
	var lastErr error
	tried := 0
	hint := payloadSizeHint(bzImage)
	for off := 0; off < len(bzImage); {
		i := bytes.Index(bzImage[off:], xzMagic)
		if i < 0 {
			break
		}
		pos := off + i
		tried++
		out, err := decompressXZStream(bzImage[pos:], hint)
		if err == nil {
			err = checkX86ELF(out)
		}
		if err == nil {
			return out, nil
		}
		lastErr = fmt.Errorf("XZ stream at offset %#x: %w", pos, err)
		off = pos + 1
	}
	if tried == 0 {
		return nil, errors.New("kernel: no XZ stream in kernel image (magic FD 37 7A 58 5A 00 not found); " +
			"it is not an XZ-compressed bzImage — pass an uncompressed ELF vmlinux instead")
	}
	return nil, fmt.Errorf("kernel: none of the %d XZ stream(s) in the kernel image decompressed to an x86-64 ELF; last: %w", tried, lastErr)
}

// decompressXZStream decompresses the single XZ stream at the start of b,
// ignoring whatever follows it. sizeHint, if not 0, is the expected output size.
func decompressXZStream(b []byte, sizeHint int) ([]byte, error) {
	r, err := xz.NewReader(bytes.NewReader(b), 0)
	if err != nil {
		return nil, err
	}
	// Stop at the end of this stream: the bytes after it are not XZ (in a
	// bzImage they are the rest of the image), and multistream mode would
	// report them as a format error.
	r.Multistream(false)
	if sizeHint <= 0 {
		sizeHint = 5 * len(b) // the kernel compresses about 4-5x
	}
	// Reading into one buffer of the right size matters: growing a ~60 MB
	// buffer by doubling spent more time clearing and copying memory than
	// the decompression itself.
	out := make([]byte, 0, min(sizeHint+1, maxVmlinux+1))
	for {
		if len(out) == cap(out) {
			if len(out) > maxVmlinux {
				return nil, fmt.Errorf("decompressed data exceeds %d bytes", maxVmlinux)
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(out) > maxVmlinux {
		return nil, fmt.Errorf("decompressed data exceeds %d bytes", maxVmlinux)
	}
	return out, nil
}

// payloadSizeHint returns the decompressed size of a bzImage's payload, or 0
// if img does not look like one. The kernel build appends the decompressed
// size as 4 little-endian bytes to the compressed payload, whose place the
// setup header records (payload_offset at 0x248, relative to the protected-
// mode code after the setup sectors, and payload_length at 0x24c). It is only
// a hint for preallocation; decompression does not trust it.
func payloadSizeHint(img []byte) int {
	if !isBzImage(img) || len(img) < 0x250 {
		return 0
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4 // the boot protocol's historical default
	}
	start := uint64(setupSects+1)*512 + uint64(binary.LittleEndian.Uint32(img[0x248:]))
	end := start + uint64(binary.LittleEndian.Uint32(img[0x24c:]))
	if end > uint64(len(img)) || end < start+4 {
		return 0
	}
	n := binary.LittleEndian.Uint32(img[end-4 : end])
	if n > maxVmlinux {
		return 0
	}
	return int(n)
}

// checkX86ELF reports whether b parses as a 64-bit x86 ELF file.
func checkX86ELF(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	return checkX86Header(f)
}

func checkX86Header(f *elf.File) error {
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("ELF is %v/%v, want ELFCLASS64/EM_X86_64", f.Class, f.Machine)
	}
	return nil
}

// xenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the note through which
// QEMU finds the PVH entry point of an uncompressed kernel.
const xenElfnotePhys32Entry = 18

// validateVmlinuxFile checks that path is an x86-64 ELF kernel QEMU can boot
// directly. QEMU loads an ELF kernel only through the PVH entry point, so a
// vmlinux without the PVH note (CONFIG_PVH=n) would fail later with a QEMU
// error far from its cause; catching it here lets us say what to do.
func validateVmlinuxFile(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("kernel: %s is not an ELF vmlinux: %w", path, err)
	}
	defer f.Close()
	if err := checkX86Header(f); err != nil {
		return fmt.Errorf("kernel: %s: %w", path, err)
	}
	ok, err := hasPVHNote(f)
	if err != nil {
		return fmt.Errorf("kernel: %s: reading ELF notes: %w", path, err)
	}
	if !ok {
		return fmt.Errorf("kernel: %s has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "+
			"QEMU boots an uncompressed kernel only through PVH — use a kernel built with CONFIG_PVH=y", path)
	}
	return nil
}

// hasPVHNote looks through the PT_NOTE segments for the Xen PHYS32_ENTRY note,
// the same place QEMU's loader looks.
func hasPVHNote(f *elf.File) (bool, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			return false, err
		}
		for len(data) >= 12 {
			namesz := f.ByteOrder.Uint32(data[0:4])
			descsz := f.ByteOrder.Uint32(data[4:8])
			typ := f.ByteOrder.Uint32(data[8:12])
			data = data[12:]
			nameEnd, descEnd := align4(uint64(namesz)), align4(uint64(descsz))
			if nameEnd+descEnd > uint64(len(data)) {
				break
			}
			name := data[:namesz]
			if typ == xenElfnotePhys32Entry && string(bytes.TrimRight(name, "\x00")) == "Xen" {
				return true, nil
			}
			data = data[nameEnd+descEnd:]
		}
	}
	return false, nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// isELF reports whether the first bytes of a file are the ELF magic.
func isELF(head []byte) bool { return bytes.HasPrefix(head, []byte(elf.ELFMAG)) }

// isBzImage reports whether the first bytes of a file look like an x86 boot
// image: the "HdrS" signature of the setup header at offset 0x202.
func isBzImage(head []byte) bool {
	return len(head) >= 0x206 && binary.LittleEndian.Uint32(head[0x202:0x206]) == 0x53726448
}
