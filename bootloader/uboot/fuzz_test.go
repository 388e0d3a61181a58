package uboot

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParsers(t *testing.T) {
	t.Run("crc32", func(t *testing.T) {
		got, err := ParseCRC32("crc32 82000000 40000\r\ncrc32 for 82000000 ... 8203ffff ==> 5e0d7c11\r\n")
		if want := (CRC32Result{0x82000000, 0x8203ffff, 0x5e0d7c11}); err != nil || got != want {
			t.Errorf("ParseCRC32() = %+v, %v; want %+v", got, err, want)
		}
		if _, err := ParseCRC32("Unknown command 'crc32' - try 'help'"); !errors.Is(err, ErrUnexpected) {
			t.Errorf("ParseCRC32(unknown command) = %v, want ErrUnexpected", err)
		}
	})
	t.Run("total size", func(t *testing.T) {
		if n, err := ParseTotalSize("## Total Size      = 0x00040000 = 262144 Bytes\r\n"); err != nil || n != 262144 {
			t.Errorf("ParseTotalSize() = %d, %v; want 262144", n, err)
		}
		if _, err := ParseTotalSize("## Total Size      = 0x00040000 = 262145 Bytes"); err == nil {
			t.Error("ParseTotalSize(disagreeing sizes) = nil error, want one")
		}
	})
	t.Run("mmc", func(t *testing.T) {
		got, err := ParseMMC("\r\nMMC write: dev # 0, block # 4096, count 512 ... 512 blocks written: OK\r\n")
		if want := (MMCResult{Write: true, Block: 4096, Count: 512, Done: 512, OK: true}); err != nil || got != want {
			t.Errorf("ParseMMC() = %+v, %v; want %+v", got, err, want)
		}
		got, err = ParseMMC("MMC read: dev # 1, block # 7, count 2 ... 0 blocks read: ERROR")
		if err != nil || got.OK || got.Dev != 1 || got.Write {
			t.Errorf("ParseMMC(failed read) = %+v, %v; want a read of dev 1 that is not OK", got, err)
		}
	})
	t.Run("sf probe", func(t *testing.T) {
		got, err := ParseSFProbe("SF: Detected w25q128 with page size 256 Bytes, erase size 64 KiB, total 16 MiB\r\n")
		if want := (SFInfo{"w25q128", 256, 64 << 10, 16 << 20}); err != nil || got != want {
			t.Errorf("ParseSFProbe() = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("md", func(t *testing.T) {
		out := "82000000: 27 05 19 56 a1 b2 c3 d4 00 01 02 03 04 05 06 07    '..V............\r\n82000010: 41 42    AB\r\n"
		got, err := ParseMD(out, 0x82000000, 18)
		if err != nil || string(got[16:]) != "AB" || got[0] != 0x27 {
			t.Errorf("ParseMD() = % x, %v", got, err)
		}
		if _, err := ParseMD(out, 0x82000000, 19); err == nil {
			t.Error("ParseMD(short output) = nil error, want one")
		}
		if _, err := ParseMD(out, 0x82000010, 2); err == nil {
			t.Error("ParseMD(wrong address) = nil error, want one")
		}
	})
	t.Run("env", func(t *testing.T) {
		if v, err := ParseEnv("serial#=HMI-1\r\n", "serial#"); err != nil || v != "HMI-1" {
			t.Errorf("ParseEnv() = %q, %v", v, err)
		}
		if _, err := ParseEnv("## Error: \"x\" not defined\r\n", "x"); !errors.Is(err, ErrNotDefined) {
			t.Errorf("ParseEnv(undefined) = %v, want ErrNotDefined", err)
		}
	})
}

// FuzzDecoders feeds arbitrary console text to every decoder: none may
// panic, and what they accept must be consistent.
func FuzzDecoders(f *testing.F) {
	f.Add("crc32 for 82000000 ... 8203ffff ==> 5e0d7c11\r\n", uint32(0x82000000), 4)
	f.Add("## Total Size      = 0x00040000 = 262144 Bytes\r\n", uint32(0), 0)
	f.Add("MMC write: dev # 0, block # 4096, count 512 ... 512 blocks written: OK", uint32(0), 0)
	f.Add("SF: Detected w25q128 with page size 256 Bytes, erase size 64 KiB, total 16 MiB", uint32(0), 0)
	f.Add("82000000: 27 05 19 56    '..V\r\n", uint32(0x82000000), 4)
	f.Add("serial#=X\r\n=> ==> \r\n", uint32(0), 1)
	f.Add("SF: Detected x with page size 1.5 GiB, erase size 0 Bytes, total 99999999 TiB", uint32(0), 0)
	f.Fuzz(func(t *testing.T, out string, addr uint32, n int) {
		if r, err := ParseCRC32(out); err == nil {
			line := fmt.Sprintf("crc32 for %x ... %x ==> %08x", r.Start, r.End, r.CRC)
			if r2, err := ParseCRC32(line); err != nil || r2 != r {
				t.Errorf("ParseCRC32(%q) = %+v, %v; want %+v", line, r2, err, r)
			}
		}
		if v, err := ParseTotalSize(out); err == nil && v < 0 {
			t.Errorf("ParseTotalSize(%q) = %d", out, v)
		}
		if r, err := ParseMMC(out); err == nil && r.OK && r.Done != r.Count {
			t.Errorf("ParseMMC(%q) = %+v: OK with %d of %d blocks", out, r, r.Done, r.Count)
		}
		if info, err := ParseSFProbe(out); err == nil && (info.EraseSize <= 0 || info.Size < info.EraseSize) {
			t.Errorf("ParseSFProbe(%q) = %+v", out, info)
		}
		n = n % 4096
		if n < 0 {
			n = -n
		}
		if b, err := ParseMD(out, uint64(addr), n); err == nil && len(b) != n {
			t.Errorf("ParseMD(%q, %d) = %d bytes", out, n, len(b))
		}
		if v, err := ParseEnv(out, "serial#"); err == nil && strings.ContainsAny(v, "\n") {
			t.Errorf("ParseEnv(%q) = %q, holds a line break", out, v)
		}
	})
}
