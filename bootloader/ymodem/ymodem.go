// Package ymodem sends and receives files with XMODEM-CRC, XMODEM-1K and
// YMODEM batch, as U-Boot's loady/loadx and lrzsz's sb/rb/sx/rx speak them.
//
// The protocols are Chuck Forsberg's "XMODEM/YMODEM Protocol Reference"
// (1988, http://pauillac.inria.fr/~doligez/zmodem/ymodem.txt). Every block is
//
//	SOH|STX  n  255-n  data (128 or 1024 bytes)  CRC-16 high, low   (or one checksum byte)
//
// The receiver starts the transfer with 'C' (CRC-16/XMODEM: polynomial
// 0x1021, initial value 0) or, for XMODEM's 8-bit checksum, with NAK; it
// answers each block with ACK or NAK. The sender ends a file with EOT. YMODEM
// adds block 0 before each file: the name, a NUL, then "size mtime mode"
// (size decimal, mtime and mode octal), so that the receiver can cut the
// padding (0x1A) off the last block; an all-zero block 0 ends the batch.
// Two CAN bytes in a row cancel a transfer in either direction.
//
//	sender                      receiver
//	                     <-     C
//	SOH 00 FF "fw.bin\0 1500 ..." CRC  ->
//	                     <-     ACK C
//	STX 01 FE data[1024] CRC   ->
//	                     <-     ACK
//	SOH 02 FD data[476]+pad CRC ->
//	                     <-     ACK
//	EOT                  ->
//	                     <-     ACK C
//	SOH 00 FF 00...00 CRC      ->
//	                     <-     ACK
//
// What real peers do that this package copes with:
//
//   - U-Boot's loady (common/xyzModem.c) sends no 'C' after acknowledging
//     block 0: it waits for block 1 and sends 'C' only after about four
//     seconds of silence. Options.DataStartWait says how long the sender
//     waits for that 'C' before going on without it (the uboot package sets
//     it negative: do not wait).
//   - lrzsz's rb and rx flush their input after each ACK or 'C', so a sender
//     must never send ahead; sb flushes its input when it starts, so a 'C'
//     sent before that is lost: the receiver repeats 'C' (Options.Interval).
//   - Some receivers NAK the first EOT to be sure of it: the sender sends it
//     again.
//   - A receiver may have queued several 'C's before the sender started; the
//     sender drops what is already waiting after the first one.
//
// The receiver is strict: a block with a bad CRC or framing is NAKed and
// never accepted, a repeat of the previous block is ACKed and dropped, and
// any other block number cancels the transfer.
//
// Functions take a bootloader.Port and never open one.
package ymodem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Control bytes.
const (
	SOH  = 0x01 // start of a 128-byte block
	STX  = 0x02 // start of a 1024-byte block
	EOT  = 0x04 // end of file
	ACK  = 0x06
	NAK  = 0x15
	CAN  = 0x18 // two in a row cancel
	BS   = 0x08 // sent after CANs to erase them on a terminal
	CRCC = 'C'  // the receiver asks for CRC-16 blocks
	Pad  = 0x1A // fills the last data block (CP/M end of file)
)

// CRC16 returns the CRC-16/XMODEM of b: polynomial 0x1021, initial value 0,
// no reflection, no final XOR. CRC16([]byte("123456789")) is 0x31C3.
func CRC16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Checksum returns the 8-bit arithmetic sum of b, XMODEM's original check.
func Checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// Errors a transfer can end with, wrapped in a *ProtocolError. Timeouts are
// *bootloader.TimeoutError.
var (
	ErrCancelled = errors.New("transfer cancelled by the peer (CAN CAN)")
	ErrRetries   = errors.New("too many retries")
	ErrSequence  = errors.New("block sequence error")
	ErrHeader    = errors.New("bad YMODEM block 0")
	ErrTooLarge  = errors.New("file larger than allowed")
)

// ProtocolError says what went wrong in a transfer and where.
type ProtocolError struct {
	Op     string // what was under way: "send block 12", "receive block 0"
	Err    error  // ErrCancelled, ErrRetries, ErrSequence, ErrHeader, ErrTooLarge
	Detail string // more about it, may be empty
}

func (e *ProtocolError) Error() string {
	s := "ymodem: " + e.Op + ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *ProtocolError) Unwrap() error { return e.Err }

// File is one file of a transfer.
type File struct {
	Name    string    // as sent in block 0 (YMODEM); the receiver does not clean it: never use it as a path unchecked
	Size    int64     // received: the size block 0 gave, -1 if none; sent: len(Data) is used
	ModTime time.Time // zero when unknown
	Mode    uint32    // Unix mode bits; 0 when unknown
	Data    []byte
}

// Options tune a transfer. The zero value works for most peers.
type Options struct {
	// StartTimeout bounds the wait for the other side to begin: the
	// sender's wait for the first 'C' (or NAK), the receiver's wait for the
	// first block. 0 means 60 s.
	StartTimeout time.Duration
	// Timeout bounds the wait for each answer later on (an ACK, the next
	// block). 0 means 10 s.
	Timeout time.Duration
	// CharTimeout bounds the gap between two bytes inside a block
	// (receiver). 0 means 1 s.
	CharTimeout time.Duration
	// Retries is how many times one block or EOT is repeated (sender) or
	// NAKed (receiver) before the transfer is given up. 0 means 10.
	Retries int
	// BlockSize is the sender's data block size, 1024 or 128. 0 means 1024;
	// a last piece of 128 bytes or less always goes in a 128-byte block.
	BlockSize int
	// DataStartWait is how long the YMODEM sender waits, after block 0 is
	// acknowledged, for the 'C' that asks for the data, before sending
	// block 1 anyway. 0 means 1 s; negative means do not wait, for
	// receivers known to send no 'C' there (U-Boot's loady). A 'C' that
	// then arrives while block 1 waits for its ACK is ignored once.
	DataStartWait time.Duration
	// Interval is how often the receiver repeats its 'C' (or NAK) while
	// waiting for the first block. 0 means 3 s.
	Interval time.Duration
	// Checksum makes the XMODEM receiver ask for the 8-bit checksum
	// (start with NAK) instead of CRC-16. YMODEM always uses CRC-16.
	Checksum bool
	// NAKFirstEOT makes the receiver answer the first EOT of a file with
	// NAK and only the second with ACK, as some receivers do.
	NAKFirstEOT bool
	// MaxSize caps the bytes the receiver accepts for one file. 0 means
	// 1 GiB.
	MaxSize int64
	// Progress, if set, is called after each block with the bytes done and
	// the total (the receiver's total is 0 when the size is unknown).
	Progress bootloader.Progress
}

func (o Options) startTimeout() time.Duration { return or(o.StartTimeout, 60*time.Second) }
func (o Options) timeout() time.Duration      { return or(o.Timeout, 10*time.Second) }
func (o Options) charTimeout() time.Duration  { return or(o.CharTimeout, time.Second) }
func (o Options) interval() time.Duration     { return or(o.Interval, 3*time.Second) }
func (o Options) dataStartWait() time.Duration {
	return or(o.DataStartWait, time.Second)
}

func (o Options) retries() int {
	if o.Retries <= 0 {
		return 10
	}
	return o.Retries
}

func (o Options) maxSize() int64 {
	if o.MaxSize <= 0 {
		return 1 << 30
	}
	return o.MaxSize
}

func (o Options) progress(done, total int64) {
	if o.Progress != nil {
		o.Progress(done, total)
	}
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// appendBlock appends block n holding data, padded to size with pad, with
// a CRC-16 (crc) or an 8-bit checksum.
func appendBlock(dst []byte, n byte, data []byte, size int, pad byte, crc bool) []byte {
	hdr := byte(SOH)
	if size == 1024 {
		hdr = STX
	}
	dst = append(dst, hdr, n, ^n)
	start := len(dst)
	dst = append(dst, data...)
	for range size - len(data) {
		dst = append(dst, pad)
	}
	body := dst[start:]
	if crc {
		c := CRC16(body)
		return append(dst, byte(c>>8), byte(c))
	}
	return append(dst, Checksum(body))
}

// header builds the YMODEM block 0 payload for f: name, NUL, then size,
// mtime and mode, as lrzsz's sb writes them.
func header(f File) ([]byte, error) {
	if f.Name == "" || strings.IndexByte(f.Name, 0) >= 0 {
		return nil, fmt.Errorf("ymodem: file name %q is empty or holds a NUL", f.Name)
	}
	var mtime int64
	if !f.ModTime.IsZero() {
		mtime = f.ModTime.Unix()
	}
	info := fmt.Sprintf("%d %o %o", len(f.Data), mtime, f.Mode)
	b := append([]byte(f.Name), 0)
	b = append(b, info...)
	if len(b) >= 1024 {
		return nil, fmt.Errorf("ymodem: file name of %d bytes does not fit in block 0", len(f.Name))
	}
	return b, nil
}

// parseHeader reads a YMODEM block 0 payload. ok is false for the empty
// block that ends a batch.
func parseHeader(b []byte) (f File, ok bool, err error) {
	if len(b) == 0 || b[0] == 0 {
		return File{}, false, nil
	}
	i := strings.IndexByte(string(b), 0)
	if i < 0 {
		return File{}, false, &ProtocolError{Op: "receive block 0", Err: ErrHeader, Detail: "file name not terminated by NUL"}
	}
	f = File{Name: string(b[:i]), Size: -1}
	rest := b[i+1:]
	if j := strings.IndexByte(string(rest), 0); j >= 0 {
		rest = rest[:j]
	}
	fields := strings.Fields(string(rest))
	if len(fields) > 0 {
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 {
			return File{}, false, &ProtocolError{Op: "receive block 0", Err: ErrHeader, Detail: fmt.Sprintf("file size %q is not a decimal number", fields[0])}
		}
		f.Size = n
	}
	if len(fields) > 1 {
		if t, err := strconv.ParseInt(fields[1], 8, 64); err == nil && t > 0 {
			f.ModTime = time.Unix(t, 0)
		}
	}
	if len(fields) > 2 {
		if m, err := strconv.ParseUint(fields[2], 8, 32); err == nil {
			f.Mode = uint32(m)
		}
	}
	return f, true, nil
}

// cancelSeq is what either side sends to give up: CANs (U-Boot needs three,
// lrzsz two), then backspaces to wipe them off a terminal, as lrzsz does.
var cancelSeq = []byte{CAN, CAN, CAN, CAN, CAN, CAN, CAN, CAN, BS, BS, BS, BS, BS, BS, BS, BS}

// isTimeout reports whether err is a bootloader timeout.
func isTimeout(err error) bool {
	var te *bootloader.TimeoutError
	return errors.As(err, &te)
}
