package uboot

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Storage says where images go, named as U-Boot names its interfaces:
//
//   - "mmc" (eMMC or SD, mmc dev/read/write) and the other block
//     interfaces with the same command shape, "virtio", "nvme", "scsi"
//     and "usb" (<if> dev N, <if> read|write ADDR BLK CNT answering "N
//     blocks written: OK"; cmd/mmc.c, cmd/blk_common.c);
//   - "sf", a SPI NOR flash (sf probe/erase/write/read; cmd/sf.c);
//   - "nor", a CFI parallel NOR flash mapped in the address space
//     (protect off, erase, cp.b, cmp.b and crc32 on the mapped bytes;
//     cmd/flash.c, cmd/mem.c);
//   - "ram", a recovery image loaded into RAM only: the offset is the RAM
//     address, verified with crc32 and booted from there, storage left
//     untouched.
type Storage struct {
	Kind     string // one of Kinds
	Dev      int    // the block device number (<if> dev N)
	LoadAddr uint32 // RAM the client stages data in; it must hold the write's whole span
	// Base is where a CFI NOR flash's offset 0 is mapped ("nor"); offsets
	// are added to it.
	Base uint32
	// Sector is the CFI NOR flash's erase sector size ("nor"): flinfo's
	// sector spacing. 0 means 128 KiB.
	Sector int64
}

// Kinds are the storage kinds, by U-Boot's command names.
var Kinds = []string{"mmc", "virtio", "nvme", "scsi", "usb", "sf", "nor", "ram"}

// blockKind reports whether kind is a block interface (512-byte blocks).
func blockKind(kind string) bool {
	switch kind {
	case "mmc", "virtio", "nvme", "scsi", "usb":
		return true
	}
	return false
}

// scanCmd is what makes an interface's devices known before "<if> dev N"
// (mmc rescans by itself).
var scanCmd = map[string]string{"virtio": "virtio scan", "nvme": "nvme scan", "scsi": "scsi scan", "usb": "usb start"}

// scanWait is how long a bus scan may take beyond the usual command time:
// U-Boot's SCSI/AHCI scan waits for each link to come up and `usb start`
// enumerates every hub with its own timeouts (drivers/ata/ahci.c,
// common/usb_hub.c), seconds on real boards and under QEMU's emulation.
const scanWait = 30 * time.Second

func (s Storage) String() string {
	switch {
	case blockKind(s.Kind):
		return fmt.Sprintf("%s %d", s.Kind, s.Dev)
	case s.Kind == "nor":
		return fmt.Sprintf("nor at %#x", s.Base)
	}
	return s.Kind
}

func (s Storage) check() error {
	known := false
	for _, k := range Kinds {
		known = known || k == s.Kind
	}
	switch {
	case !known:
		return fmt.Errorf("uboot: storage %q: want one of %s", s.Kind, strings.Join(Kinds, ", "))
	case s.LoadAddr == 0 && s.Kind != "ram":
		return errors.New("uboot: storage: no RAM load address (set loadaddr)")
	case s.Sector < 0 || s.Sector&(s.Sector-1) != 0:
		return fmt.Errorf("uboot: storage nor: sector size %#x is not a power of two", s.Sector)
	}
	return nil
}

func (s Storage) sector() int64 {
	if s.Sector == 0 {
		return 128 << 10
	}
	return s.Sector
}

// span is a write's range widened to whole units (MMC blocks or NOR erase
// blocks): start and length of the span, and the data's offset in it.
func span(off int64, n int, unit int64) (start, length, head int64) {
	start = off / unit * unit
	end := (off + int64(n) + unit - 1) / unit * unit
	return start, end - start, off - start
}

// blkDev selects the block device (after the interface's scan, once).
func (c *Client) blkDev(ctx context.Context, s Storage) error {
	if scan := scanCmd[s.Kind]; scan != "" && !c.scanned[s.Kind] {
		if _, err := c.exec(ctx, scan, c.opts.Timeout+scanWait); err != nil {
			return err
		}
		if c.scanned == nil {
			c.scanned = map[string]bool{}
		}
		c.scanned[s.Kind] = true
	}
	_, err := c.Run(ctx, fmt.Sprintf("%s dev %d", s.Kind, s.Dev))
	return err
}

// blkRW runs <if> read or write of cnt blocks at blk and checks its report.
func (c *Client) blkRW(ctx context.Context, s Storage, op string, addr uint32, blk, cnt int64) error {
	cmd := fmt.Sprintf("%s %s %x %x %x", s.Kind, op, addr, blk, cnt)
	wait := c.opts.Timeout + time.Duration(cnt*BlockSize)*time.Second/mmcBytesPerSec
	out, err := c.exec(ctx, cmd, wait)
	var ce *CommandError
	if err != nil && !errors.As(err, &ce) {
		return err
	}
	r, perr := ParseMMC(out)
	switch {
	case perr != nil && err != nil:
		return err
	case perr != nil:
		return &ProtocolError{Op: cmd, Err: perr}
	case !r.OK || err != nil || r.Write != (op == "write") || r.Block != uint64(blk) || r.Count != uint64(cnt) || r.Dev != s.Dev:
		return &CommandError{Cmd: cmd, Status: 1, Output: out}
	}
	return nil
}

// SFProbe initialises the SPI flash and returns its geometry.
func (c *Client) SFProbe(ctx context.Context) (SFInfo, error) {
	if c.sf != nil {
		return *c.sf, nil
	}
	out, err := c.Run(ctx, "sf probe")
	if err != nil {
		return SFInfo{}, err
	}
	info, err := ParseSFProbe(out)
	if err != nil {
		return SFInfo{}, &ProtocolError{Op: "sf probe", Err: err}
	}
	c.sf = &info
	return info, nil
}

func (c *Client) sfRun(ctx context.Context, cmd string, wait time.Duration, word string) error {
	out, err := c.exec(ctx, cmd, c.opts.Timeout+wait)
	if err != nil {
		return err
	}
	if !strings.Contains(out, word+": OK") {
		return &ProtocolError{Op: cmd, Err: ErrUnexpected, Detail: fmt.Sprintf("no %q in %q", word+": OK", clip(out))}
	}
	return nil
}

// Write writes data at byte offset off of the storage: it stages the span
// of whole units (512-byte blocks, or erase blocks of the NOR flash) in RAM
// at LoadAddr, reading the units the data only partly covers first so that
// their other bytes stay as they were, loads the data into it with loady
// (checked with crc32), then writes the span (mmc write; sf erase and sf
// write).
func (c *Client) Write(ctx context.Context, s Storage, off int64, data []byte, p bootloader.Progress) error {
	if err := s.check(); err != nil {
		return err
	}
	if off < 0 || len(data) == 0 {
		return fmt.Errorf("uboot: write %d bytes at %d to %s: nothing to write or a negative offset", len(data), off, s)
	}
	switch s.Kind {
	case "sf":
		return c.writeSF(ctx, s, off, data, p)
	case "nor":
		return c.writeNOR(ctx, s, off, data, p)
	case "ram":
		if off > 0xFFFFFFFF-int64(len(data)) {
			return fmt.Errorf("uboot: load %d bytes at %#x: past the 32-bit address space", len(data), off)
		}
		return c.Load(ctx, uint32(off), data, p)
	}
	if err := c.blkDev(ctx, s); err != nil {
		return err
	}
	start, length, head := span(off, len(data), BlockSize)
	blk, cnt := start/BlockSize, length/BlockSize
	if head != 0 {
		if err := c.blkRW(ctx, s, "read", s.LoadAddr, blk, 1); err != nil {
			return err
		}
	}
	if tail := (off + int64(len(data))) % BlockSize; tail != 0 && (cnt > 1 || head == 0) {
		if err := c.blkRW(ctx, s, "read", s.LoadAddr+uint32(length-BlockSize), blk+cnt-1, 1); err != nil {
			return err
		}
	}
	if err := c.Load(ctx, s.LoadAddr+uint32(head), data, p); err != nil {
		return err
	}
	return c.blkRW(ctx, s, "write", s.LoadAddr, blk, cnt)
}

// writeNOR writes a CFI NOR flash: it copies the sectors the data touches
// into RAM (the flash is memory-mapped), loads the data over them, then
// unprotects and erases the sectors and programs them one sector per cp.b,
// leaving out the 0xFF bytes at either end of a sector (erased NOR reads
// 0xFF), checking each with cmp.b. (QEMU's CFI flash model with U-Boot
// 2023.01 fails a second buffered write into one erased sector, "Flash
// buffer write timeout": against it only writes of up to 4 KiB a sector
// work.)
func (c *Client) writeNOR(ctx context.Context, s Storage, off int64, data []byte, p bootloader.Progress) error {
	sec := s.sector()
	start, length, head := span(off, len(data), sec)
	base := int64(s.Base)
	if base+start+length > 1<<32 {
		return fmt.Errorf("uboot: write %d bytes at NOR offset %#x: past the 32-bit address space", len(data), off)
	}
	if head != 0 || length != int64(len(data)) {
		if _, err := c.exec(ctx, fmt.Sprintf("cp.b %x %x %x", base+start, s.LoadAddr, length), c.opts.Timeout+time.Duration(length)*time.Second/(20<<20)); err != nil {
			return err
		}
	}
	if err := c.Load(ctx, s.LoadAddr+uint32(head), data, p); err != nil {
		return err
	}
	rng := fmt.Sprintf("%x +%x", base+start, length)
	if _, err := c.Run(ctx, "protect off "+rng); err != nil {
		return err
	}
	out, err := c.exec(ctx, "erase "+rng, c.opts.Timeout+time.Duration(length/sec)*sfErasePerBlock)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Erased") || strings.Contains(out, "protected sectors will not be erased") {
		return &ProtocolError{Op: "erase " + rng, Err: ErrUnexpected, Detail: fmt.Sprintf("%q", clip(out))}
	}
	// The staged span, to skip what needs no programming: erased NOR
	// reads 0xFF, and programming 0xFF changes nothing.
	staged := make([]byte, length)
	for i := range staged {
		staged[i] = 0xFF
	}
	if head != 0 || length != int64(len(data)) {
		// The bytes kept around the data are unknown here: program them.
		for i := range staged {
			staged[i] = 0
		}
	}
	copy(staged[head:], data)
	for o := int64(0); o < length; o += sec {
		lo, hi := o, o+sec
		for lo < hi && staged[lo] == 0xFF {
			lo++
		}
		for hi > lo && staged[hi-1] == 0xFF {
			hi--
		}
		if lo == hi {
			continue
		}
		ram, flash, n := int64(s.LoadAddr)+lo, base+start+lo, hi-lo
		cmd := fmt.Sprintf("cp.b %x %x %x", ram, flash, n)
		if _, err := c.exec(ctx, cmd, c.opts.Timeout+time.Duration(sec)*sfWritePerByte); err != nil {
			return err
		}
		cmd = fmt.Sprintf("cmp.b %x %x %x", ram, flash, n)
		out, err := c.exec(ctx, cmd, c.opts.Timeout)
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("Total of %d byte(s) were the same", n); !strings.Contains(out, want) {
			return &ProtocolError{Op: cmd, Err: ErrUnexpected, Detail: fmt.Sprintf("no %q in %q", want, clip(out))}
		}
	}
	return nil
}

func (c *Client) writeSF(ctx context.Context, s Storage, off int64, data []byte, p bootloader.Progress) error {
	info, err := c.SFProbe(ctx)
	if err != nil {
		return err
	}
	if off+int64(len(data)) > info.Size {
		return fmt.Errorf("uboot: write %d bytes at %#x: past the end of the %d-byte SPI flash %s", len(data), off, info.Size, info.Name)
	}
	start, length, head := span(off, len(data), info.EraseSize)
	if head != 0 || length != int64(len(data)) {
		if err := c.sfRun(ctx, fmt.Sprintf("sf read %x %x %x", s.LoadAddr, start, length), c.wire(0), "Read"); err != nil {
			return err
		}
	}
	if err := c.Load(ctx, s.LoadAddr+uint32(head), data, p); err != nil {
		return err
	}
	if err := c.sfRun(ctx, fmt.Sprintf("sf erase %x %x", start, length), time.Duration(length/info.EraseSize)*sfErasePerBlock, "Erased"); err != nil {
		return err
	}
	return c.sfRun(ctx, fmt.Sprintf("sf write %x %x %x", s.LoadAddr, start, length), time.Duration(length)*sfWritePerByte, "Written")
}

// fetch reads n bytes at off of the storage into RAM at LoadAddr, first
// filling the RAM with fill so that a read that silently does nothing
// cannot pass for the data. It returns where in RAM the bytes start.
func (c *Client) fetch(ctx context.Context, s Storage, off int64, n int, fill byte) (uint32, error) {
	if s.Kind == "sf" {
		if _, err := c.SFProbe(ctx); err != nil {
			return 0, err
		}
		if _, err := c.Run(ctx, fmt.Sprintf("mw.b %x %x %x", s.LoadAddr, fill, n)); err != nil {
			return 0, err
		}
		err := c.sfRun(ctx, fmt.Sprintf("sf read %x %x %x", s.LoadAddr, off, n), 0, "Read")
		return s.LoadAddr, err
	}
	switch s.Kind {
	case "nor":
		return s.Base + uint32(off), nil // memory-mapped: read in place
	case "ram":
		return uint32(off), nil
	}
	if err := c.blkDev(ctx, s); err != nil {
		return 0, err
	}
	start, length, head := span(off, n, BlockSize)
	if _, err := c.Run(ctx, fmt.Sprintf("mw.b %x %x %x", s.LoadAddr, fill, length)); err != nil {
		return 0, err
	}
	if err := c.blkRW(ctx, s, "read", s.LoadAddr, start/BlockSize, length/BlockSize); err != nil {
		return 0, err
	}
	return s.LoadAddr + uint32(head), nil
}

// Verify reads the storage at off back into RAM and compares the CRC-32
// U-Boot computes of it with data's.
func (c *Client) Verify(ctx context.Context, s Storage, off int64, data []byte, p bootloader.Progress) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	got, err := c.storedCRC(ctx, s, off, data)
	if err != nil {
		return err
	}
	if want := crc32.ChecksumIEEE(data); got != want {
		return &VerifyError{Where: s.String(), Offset: off, Len: len(data), Want: want, Got: got}
	}
	if p != nil {
		p(int64(len(data)), int64(len(data)))
	}
	return nil
}

// storedCRC reads len(data) bytes at off of the storage into RAM (filled
// first with a byte data does not start with) and returns U-Boot's CRC-32
// of them.
func (c *Client) storedCRC(ctx context.Context, s Storage, off int64, data []byte) (uint32, error) {
	at, err := c.fetch(ctx, s, off, len(data), ^data[0])
	if err != nil {
		return 0, err
	}
	return c.CRC32(ctx, at, len(data))
}

// Holds reports whether the storage at off already holds data, by U-Boot's
// crc32 of the region read into RAM: when it does, a Write would change
// nothing and can be left out (Verify still checks it on the unit).
func (c *Client) Holds(ctx context.Context, s Storage, off int64, data []byte) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	if len(data) == 0 {
		return true, nil
	}
	got, err := c.storedCRC(ctx, s, off, data)
	if err != nil {
		return false, err
	}
	return got == crc32.ChecksumIEEE(data), nil
}

// mdChunk is how many bytes one md.b prints.
const mdChunk = 0x1000

// Read reads n bytes at off of the storage: into RAM, then over the
// console with md.b (about 4.7 characters a byte: slow, for backups of
// small regions).
func (c *Client) Read(ctx context.Context, s Storage, off int64, n int, p bootloader.Progress) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	at, err := c.fetch(ctx, s, off, n, 0)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(mdChunk, n-len(b))
		addr := at + uint32(len(b))
		cmd := fmt.Sprintf("md.b %x %x", addr, k)
		out, err := c.exec(ctx, cmd, c.opts.Timeout+c.wire(k*5))
		if err != nil {
			return b, err
		}
		chunk, err := ParseMD(out, uint64(addr), k)
		if err != nil {
			return b, &ProtocolError{Op: cmd, Err: err}
		}
		b = append(b, chunk...)
		if p != nil {
			p(int64(len(b)), int64(n))
		}
	}
	return b, nil
}
