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

// Storage says where images go: the eMMC (or SD card) behind "mmc", or the
// SPI NOR flash behind "sf".
type Storage struct {
	Kind     string // "mmc" or "sf"
	Dev      int    // the mmc device number (mmc dev N)
	LoadAddr uint32 // RAM the client stages data in; it must hold the write's whole span
}

func (s Storage) String() string {
	if s.Kind == "sf" {
		return "sf"
	}
	return fmt.Sprintf("mmc %d", s.Dev)
}

func (s Storage) check() error {
	switch {
	case s.Kind != "mmc" && s.Kind != "sf":
		return fmt.Errorf("uboot: storage %q: want \"mmc\" or \"sf\"", s.Kind)
	case s.LoadAddr == 0:
		return errors.New("uboot: storage: no RAM load address (set loadaddr)")
	}
	return nil
}

// span is a write's range widened to whole units (MMC blocks or NOR erase
// blocks): start and length of the span, and the data's offset in it.
func span(off int64, n int, unit int64) (start, length, head int64) {
	start = off / unit * unit
	end := (off + int64(n) + unit - 1) / unit * unit
	return start, end - start, off - start
}

func (c *Client) mmcDev(ctx context.Context, s Storage) error {
	_, err := c.Run(ctx, fmt.Sprintf("mmc dev %d", s.Dev))
	return err
}

// mmcRW runs mmc read or write of cnt blocks at blk and checks its report.
func (c *Client) mmcRW(ctx context.Context, op string, addr uint32, blk, cnt int64) error {
	cmd := fmt.Sprintf("mmc %s %x %x %x", op, addr, blk, cnt)
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
	case !r.OK || err != nil || r.Write != (op == "write") || r.Block != uint64(blk) || r.Count != uint64(cnt):
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
	if s.Kind == "sf" {
		return c.writeSF(ctx, s, off, data, p)
	}
	if err := c.mmcDev(ctx, s); err != nil {
		return err
	}
	start, length, head := span(off, len(data), BlockSize)
	blk, cnt := start/BlockSize, length/BlockSize
	if head != 0 {
		if err := c.mmcRW(ctx, "read", s.LoadAddr, blk, 1); err != nil {
			return err
		}
	}
	if tail := (off + int64(len(data))) % BlockSize; tail != 0 && (cnt > 1 || head == 0) {
		if err := c.mmcRW(ctx, "read", s.LoadAddr+uint32(length-BlockSize), blk+cnt-1, 1); err != nil {
			return err
		}
	}
	if err := c.Load(ctx, s.LoadAddr+uint32(head), data, p); err != nil {
		return err
	}
	return c.mmcRW(ctx, "write", s.LoadAddr, blk, cnt)
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
	if err := c.mmcDev(ctx, s); err != nil {
		return 0, err
	}
	start, length, head := span(off, n, BlockSize)
	if _, err := c.Run(ctx, fmt.Sprintf("mw.b %x %x %x", s.LoadAddr, fill, length)); err != nil {
		return 0, err
	}
	if err := c.mmcRW(ctx, "read", s.LoadAddr, start/BlockSize, length/BlockSize); err != nil {
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
	at, err := c.fetch(ctx, s, off, len(data), ^data[0])
	if err != nil {
		return err
	}
	got, err := c.CRC32(ctx, at, len(data))
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
