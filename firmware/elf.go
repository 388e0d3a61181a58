package firmware

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
)

// ParseELF returns the bytes an ELF executable puts in memory: each PT_LOAD
// program header's file contents at its physical address (p_paddr, the load
// address in flash, which differs from p_vaddr for initialised data copied to
// RAM at start-up). The part of a segment beyond its file size (.bss) is not
// written.
func ParseELF(data []byte) (*Image, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("firmware: not a readable ELF file: %w", err)
	}
	defer f.Close()
	im := &Image{Format: ELF}
	if f.Entry <= 0xFFFFFFFF {
		im.Entry = uint32(f.Entry)
	}
	var segs []Segment
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		if p.Paddr+p.Filesz > 1<<32 || p.Paddr+p.Filesz < p.Paddr {
			return nil, fmt.Errorf("firmware: ELF program header %d loads at 0x%X, beyond the 32-bit address space", i, p.Paddr)
		}
		if p.Filesz > uint64(len(data)) || p.Off > uint64(len(data))-p.Filesz {
			return nil, fmt.Errorf("firmware: ELF program header %d: %d bytes at file offset %d run past the end of the %d-byte file", i, p.Filesz, p.Off, len(data))
		}
		b, err := io.ReadAll(io.NewSectionReader(bytes.NewReader(data), int64(p.Off), int64(p.Filesz)))
		if err != nil {
			return nil, fmt.Errorf("firmware: ELF program header %d: %w", i, err)
		}
		segs = append(segs, Segment{Addr: uint32(p.Paddr), Data: b})
	}
	if im.Segments, err = normalize(segs); err != nil {
		return nil, err
	}
	if len(im.Segments) == 0 {
		return nil, fmt.Errorf("firmware: the ELF file has no PT_LOAD segment with bytes in the file: %w", ErrEmpty)
	}
	return im, nil
}
