// Package uboot drives a board's U-Boot console over a serial port, as a
// person at a terminal would, to recover it: stop autoboot, run commands and
// read their output and exit status, load an image into RAM with loady
// (YMODEM, through the project's bootloader/ymodem sender), check it with
// crc32, write it to the eMMC (mmc write) or a SPI NOR flash (sf erase and
// sf write), read it back to verify it, select the A/B boot slot in the
// environment (setenv, saveenv) and boot.
//
// The commands and their output are U-Boot's own
// (https://docs.u-boot.org/en/latest/usage/cmdline.html; common/autoboot.c,
// common/xyzModem.c, cmd/load.c, cmd/mmc.c, cmd/sf.c, cmd/mem.c and
// common/hash.c in https://source.denx.de/u-boot/u-boot). A session looks
// like this on the wire (the unit echoes what is typed):
//
//	Hit any key to stop autoboot:  3      <- Ctrl-C
//	<INTERRUPT>
//	=> loady 82000000; echo UB""K1f2e0001:$?
//	## Ready for binary (ymodem) download to 0x82000000 at 115200 bps...
//	C                                     YMODEM: block 0, 1 KiB blocks, EOT, end of batch
//	xyzModem - CRC mode, 258(SOH)/256(STX)/0(CAN) packets, 5 retries
//	## Total Size      = 0x00040000 = 262144 Bytes
//	UBK1f2e0001:0
//	=> crc32 82000000 40000; echo ...
//	crc32 for 82000000 ... 8203ffff ==> 5e0d7c11
//
// Finding the prompt is the hard part: "=> " also occurs inside output
// (crc32 prints "==> "), and a slow or chatty unit may print it late. So
// every command is followed by an echo of a marker that holds a fresh nonce
// and the command's exit status ($? after ';': U-Boot's hush skips the
// rest of "a && b || c" up to the next ';' when a fails, so an "|| echo"
// never prints); the marker is typed with an empty quoted string inside
// it, so the echoed command line never contains it, and the command is
// over only when the marker arrives on a line of its own, followed by the
// prompt. Every line is typed in chunks and its echo checked before Enter
// (a polled UART drops characters), and no line is longer than the
// board's CONFIG_SYS_CBSIZE. The boards must run U-Boot's hush shell
// (CONFIG_HUSH_PARSER, the default). All of this is checked against real
// U-Boot 2023.01 in QEMU (real_test.go).
//
// The package imports only the standard library, bootloader and
// bootloader/ymodem, and never opens a port.
package uboot

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPrompt is U-Boot's default prompt (CONFIG_SYS_PROMPT).
const DefaultPrompt = "=> "

// BlockSize is an MMC block.
const BlockSize = 512

// Errors wrapped by the package's errors.
var (
	// ErrNotDefined is an environment variable that is not set.
	ErrNotDefined = errors.New("environment variable not defined")
	// ErrUnexpected is console output the client cannot read.
	ErrUnexpected = errors.New("unexpected console output")
)

// CommandError is a command that ran and failed (exit status not 0).
type CommandError struct {
	Cmd    string // the command as typed, without the marker
	Status int    // its exit status, as far as hush tells (1)
	Output string // what it printed
}

func (e *CommandError) Error() string {
	last := strings.TrimSpace(e.Output)
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = strings.TrimSpace(last[i+1:])
	}
	if last == "" {
		last = "no output"
	}
	return fmt.Sprintf("uboot: %q failed (status %d): %s", e.Cmd, e.Status, last)
}

// ProtocolError is output that does not say what the command should have
// said: a misread, a different U-Boot, or a unit that did something else.
type ProtocolError struct {
	Op     string // what was under way, e.g. "crc32 82000000 40000"
	Detail string // what was wrong
	Err    error  // ErrUnexpected or a more specific cause
}

func (e *ProtocolError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("uboot: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("uboot: %s: %v: %s", e.Op, e.Err, e.Detail)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// VerifyError says that what the unit holds is not what was written.
type VerifyError struct {
	Where     string // "mmc 0" or "sf"
	Offset    int64  // byte offset in the storage
	Len       int
	Want, Got uint32 // CRC-32 of the data and of what was read back
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("uboot: verify %s at %#x (+%d bytes): CRC-32 %08x read back, want %08x; write it again, and replace the storage if it persists",
		e.Where, e.Offset, e.Len, e.Got, e.Want)
}

// CRC32Result is what U-Boot's crc32 command prints.
type CRC32Result struct {
	Start, End uint64 // first and last address
	CRC        uint32
}

var crc32Re = regexp.MustCompile(`(?m)^(?:CRC32|crc32) for ([0-9a-fA-F]+) \.\.\. ([0-9a-fA-F]+) ==> ([0-9a-fA-F]{8})\r?$`)

// ParseCRC32 reads the output of "crc32 addr len":
//
//	crc32 for 82000000 ... 8203ffff ==> 5e0d7c11
func ParseCRC32(out string) (CRC32Result, error) {
	m := crc32Re.FindStringSubmatch(out)
	if m == nil {
		return CRC32Result{}, fmt.Errorf("%w: no \"crc32 for A ... B ==> CRC\" line in %q", ErrUnexpected, clip(out))
	}
	s, err1 := strconv.ParseUint(m[1], 16, 64)
	e, err2 := strconv.ParseUint(m[2], 16, 64)
	c, err3 := strconv.ParseUint(m[3], 16, 32)
	if err := errors.Join(err1, err2, err3); err != nil {
		return CRC32Result{}, fmt.Errorf("%w: %v", ErrUnexpected, err)
	}
	return CRC32Result{Start: s, End: e, CRC: uint32(c)}, nil
}

var totalRe = regexp.MustCompile(`## Total Size\s*=\s*0x([0-9a-fA-F]+)\s*=\s*(\d+) Bytes`)

// ParseTotalSize reads the size loady and loadx print at the end:
//
//	## Total Size      = 0x00040000 = 262144 Bytes
func ParseTotalSize(out string) (int64, error) {
	m := totalRe.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%w: no \"## Total Size\" line in %q", ErrUnexpected, clip(out))
	}
	h, err1 := strconv.ParseInt(m[1], 16, 64)
	d, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || h != d {
		return 0, fmt.Errorf("%w: total size %s (hex) and %s (decimal) disagree", ErrUnexpected, m[1], m[2])
	}
	return d, nil
}

// mmcRe matches cmd/mmc.c's report ("MMC write: dev # 0, ...") and
// cmd/blk_common.c's for the other block interfaces ("virtio write: device
// 0 block # 16, count 8 ... 8 blocks written: OK"; a failed transfer may
// report a negative count, as real U-Boot does past a disk's end).
var mmcRe = regexp.MustCompile(`(?:MMC|virtio|nvme|scsi|usb|sata|ide) (read|write): dev(?:ice)? #? ?(\d+),? block # (\d+), count (\d+) \.\.\. (-?\d+) blocks (read|written): (OK|ERROR)`)

// MMCResult is what "mmc read" or "mmc write" reports.
type MMCResult struct {
	Write        bool
	Dev          int
	Block, Count uint64 // as asked
	Done         uint64 // blocks read or written
	OK           bool
}

// ParseMMC reads the output of "mmc read|write addr blk cnt":
//
//	MMC write: dev # 0, block # 4096, count 512 ... 512 blocks written: OK
func ParseMMC(out string) (MMCResult, error) {
	m := mmcRe.FindStringSubmatch(out)
	if m == nil {
		return MMCResult{}, fmt.Errorf("%w: no \"MMC read|write: ... blocks read|written\" line in %q", ErrUnexpected, clip(out))
	}
	var r MMCResult
	r.Write = m[1] == "write"
	if r.Write != (m[6] == "written") {
		return MMCResult{}, fmt.Errorf("%w: %q", ErrUnexpected, m[0])
	}
	dev, err0 := strconv.Atoi(m[2])
	b, err1 := strconv.ParseUint(m[3], 10, 64)
	c, err2 := strconv.ParseUint(m[4], 10, 64)
	d, err3 := strconv.ParseUint(strings.TrimPrefix(m[5], "-"), 10, 64)
	if strings.HasPrefix(m[5], "-") {
		d = 0 // an error code, not a count
	}
	if err := errors.Join(err0, err1, err2, err3); err != nil {
		return MMCResult{}, fmt.Errorf("%w: %v", ErrUnexpected, err)
	}
	r.Dev, r.Block, r.Count, r.Done = dev, b, c, d
	r.OK = m[7] == "OK" && d == c
	return r, nil
}

// SFInfo is what "sf probe" reports of a SPI NOR flash.
type SFInfo struct {
	Name      string
	PageSize  int64
	EraseSize int64
	Size      int64
}

var sfRe = regexp.MustCompile(`SF: Detected (\S+) with page size (\d+(?:\.\d+)? \S+), erase size (\d+(?:\.\d+)? \S+), total (\d+(?:\.\d+)? \S+)`)

// ParseSFProbe reads the output of "sf probe":
//
//	SF: Detected w25q128 with page size 256 Bytes, erase size 64 KiB, total 16 MiB
func ParseSFProbe(out string) (SFInfo, error) {
	m := sfRe.FindStringSubmatch(out)
	if m == nil {
		return SFInfo{}, fmt.Errorf("%w: no \"SF: Detected\" line in %q", ErrUnexpected, clip(out))
	}
	info := SFInfo{Name: m[1]}
	var errs []error
	for i, p := range []*int64{&info.PageSize, &info.EraseSize, &info.Size} {
		v, err := ParseSize(m[2+i])
		errs = append(errs, err)
		*p = v
	}
	if err := errors.Join(errs...); err != nil {
		return SFInfo{}, err
	}
	if info.EraseSize <= 0 || info.EraseSize&(info.EraseSize-1) != 0 || info.Size < info.EraseSize {
		return SFInfo{}, fmt.Errorf("%w: erase size %d of a %d-byte flash", ErrUnexpected, info.EraseSize, info.Size)
	}
	return info, nil
}

// ParseSize reads a size as U-Boot's print_size prints it: "256 Bytes",
// "64 KiB", "3.6 GiB" (a fraction is rounded down to a byte).
func ParseSize(s string) (int64, error) {
	num, unit, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found {
		return 0, fmt.Errorf("%w: size %q has no unit", ErrUnexpected, s)
	}
	shift := map[string]uint{"Bytes": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}
	sh, known := shift[unit]
	if !known {
		return 0, fmt.Errorf("%w: size %q has an unknown unit", ErrUnexpected, s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f >= 1<<20 {
		return 0, fmt.Errorf("%w: size %q", ErrUnexpected, s)
	}
	return int64(f * float64(int64(1)<<sh)), nil
}

// ParseMD reads n bytes at addr from the output of "md.b addr n":
//
//	82000000: 27 05 19 56 a1 b2 c3 d4 00 00 00 00 00 00 00 00    '..V............
//
// Every line must start at the address that follows the previous one.
func ParseMD(out string, addr uint64, n int) ([]byte, error) {
	b := make([]byte, 0, n)
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		head, rest, found := strings.Cut(line, ": ")
		if !found || len(head) < 8 {
			continue
		}
		at, err := strconv.ParseUint(head, 16, 64)
		if err != nil {
			continue
		}
		if at != addr+uint64(len(b)) {
			return nil, fmt.Errorf("%w: md line at %#x, want %#x", ErrUnexpected, at, addr+uint64(len(b)))
		}
		// The hex bytes are separated by single spaces; the ASCII column
		// follows after two or more (lib/display_options.c, print_buffer;
		// real U-Boot 2023.01 prints two after a full line).
		hexPart, _, _ := strings.Cut(rest, "  ")
		for _, f := range strings.Fields(hexPart) {
			if len(f) != 2 {
				return nil, fmt.Errorf("%w: md field %q is not a byte (use md.b)", ErrUnexpected, f)
			}
			v, err := strconv.ParseUint(f, 16, 8)
			if err != nil {
				return nil, fmt.Errorf("%w: md field %q: %v", ErrUnexpected, f, err)
			}
			if len(b) == n {
				return nil, fmt.Errorf("%w: md printed more than %d bytes", ErrUnexpected, n)
			}
			b = append(b, byte(v))
		}
	}
	if len(b) != n {
		return nil, fmt.Errorf("%w: md printed %d bytes, want %d", ErrUnexpected, len(b), n)
	}
	return b, nil
}

// ParseEnv reads the output of "printenv name": "name=value".
func ParseEnv(out, name string) (string, error) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, found := strings.CutPrefix(line, name+"="); found {
			return v, nil
		}
	}
	if strings.Contains(out, "not defined") {
		return "", fmt.Errorf("uboot: %s: %w", name, ErrNotDefined)
	}
	return "", fmt.Errorf("%w: no %q line in %q", ErrUnexpected, name+"=", clip(out))
}

// clip shortens console text for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return "..." + s[len(s)-200:]
	}
	return s
}
