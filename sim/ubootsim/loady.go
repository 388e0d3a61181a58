package ubootsim

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader/ymodem"
)

// The loady/loadx receiver, as U-Boot's common/xyzModem.c behaves (the
// RedBoot code it inherited), quirks included:
//
//   - It sends 'C' once, then waits for a block with a 2 s character
//     timeout; after a timeout it waits for 2 s of silence, 250 ms, 500 ms
//     more, and sends 'C' again (about every 4.75 s). After ten of those it
//     falls back to the checksum (NAK). It gives up after loadxy_timeout
//     (CONFIG_CMD_LOADXY_TIMEOUT, 90 s).
//   - It acknowledges block 0 when it asks for the next block and sends no
//     'C' after it: a sender waiting for one waits until the next timeout.
//   - It answers a bad block with 'C' (its NAK in CRC mode), a repeat of the
//     previous block with ACK, EOT with ACK (twice: once when it sees it,
//     once more with the 'C' for the final block 0), three CANs cancel.
//   - Afterwards it drops what is left in its input, waits 250 ms and prints
//     "## Total Size      = 0x%08x = %d Bytes".

const xyzCharTimeout = 2 * time.Second

// xyz results, as xyzModem.h numbers them.
const (
	xyzOK       = 0
	xyzTimeout  = -2
	xyzEOF      = -3
	xyzCancel   = -4
	xyzFrame    = -5
	xyzCksum    = -6
	xyzSequence = -7
)

func xyzError(e int) string {
	switch e {
	case xyzTimeout:
		return "Timed out"
	case xyzEOF:
		return "End of file"
	case xyzCancel:
		return "Cancelled"
	case xyzFrame:
		return "Invalid framing"
	case xyzCksum:
		return "CRC/checksum error"
	case xyzSequence:
		return "Block sequence error"
	}
	return "Unknown error"
}

type xyzModem struct {
	u                  *uboot
	ymodem             bool
	crc                bool
	txAck              bool
	blk                byte
	pkt                [1024]byte
	n                  int // bytes of pkt still to deliver
	nextBlk            byte
	fileLength, readLn int64
	retries            int
	initial            time.Time
	timeout            time.Duration
	firstXmodem        bool
	atEOF              bool
}

func (x *xyzModem) getc() (byte, bool) { return x.u.getc(xyzCharTimeout) }

// flush waits for the line to go quiet.
func (x *xyzModem) flush() {
	for {
		if _, ok := x.getc(); !ok {
			return
		}
	}
}

// getHdr receives one block (or EOT, or CANs).
func (x *xyzModem) getHdr() int {
	if x.txAck {
		x.u.putc(ymodem.ACK)
		x.txAck = false
	}
	cans, chars := 0, 0
	size := 0
	for size == 0 {
		c, ok := x.getc()
		if !ok {
			x.flush()
			x.u.wait(250 * time.Millisecond)
			return xyzTimeout
		}
		chars++
		switch c {
		case ymodem.SOH:
			size = 128
		case ymodem.STX:
			size = 1024
		case ymodem.CAN:
			if cans++; cans == 3 {
				return xyzCancel
			}
		case ymodem.EOT:
			if chars == 1 {
				x.u.putc(ymodem.ACK)
				return xyzEOF
			}
		}
	}
	var hdr [2]byte
	for i := range hdr {
		c, ok := x.getc()
		if !ok {
			return xyzTimeout
		}
		hdr[i] = c
	}
	x.blk = hdr[0]
	for i := range size {
		c, ok := x.getc()
		if !ok {
			return xyzTimeout
		}
		x.pkt[i] = c
	}
	x.n = size
	var check [2]byte
	nc := 1
	if x.crc {
		nc = 2
	}
	for i := range nc {
		c, ok := x.getc()
		if !ok {
			return xyzTimeout
		}
		check[i] = c
	}
	if hdr[0]^hdr[1] != 0xFF {
		x.flush()
		return xyzFrame
	}
	if x.crc {
		if ymodem.CRC16(x.pkt[:size]) != uint16(check[0])<<8|uint16(check[1]) {
			return xyzCksum
		}
	} else if ymodem.Checksum(x.pkt[:size]) != check[0] {
		return xyzCksum
	}
	return xyzOK
}

func (x *xyzModem) nak() {
	if x.crc {
		x.u.putc('C')
	} else {
		x.u.putc(ymodem.NAK)
	}
	x.retries++
}

// open waits for the sender: block 0 for YMODEM.
func (x *xyzModem) open() int {
	x.crc = true
	x.initial = time.Now()
	x.u.putc('C')
	if !x.ymodem {
		x.firstXmodem = true
		x.nextBlk = 1
		return xyzOK
	}
	retries, crcRetries := 20, 10
	stat := xyzTimeout
	for !(x.timeout > 0 && time.Since(x.initial) > x.timeout) {
		if retries--; retries <= 0 {
			retries, crcRetries, x.crc = 20, 10, true
		}
		stat = x.getHdr()
		switch stat {
		case xyzOK:
			if x.blk == 0 {
				name := x.pkt[:x.n]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					f := strings.Fields(string(bytes.TrimRight(name[i+1:], "\x00")))
					if len(f) > 0 {
						x.fileLength, _ = strconv.ParseInt(f[0], 0, 64)
					}
				}
				x.txAck = true
			}
			x.nextBlk = 1
			x.n = 0
			return xyzOK
		case xyzTimeout:
			if crcRetries--; crcRetries <= 0 {
				x.crc = false
			}
			x.u.wait(500 * time.Millisecond)
			x.nak()
		case xyzCancel:
			return stat
		}
	}
	return stat
}

// read returns the next block's data, nil at the end, and an error code.
func (x *xyzModem) read() ([]byte, int) {
	if x.atEOF {
		return nil, xyzOK
	}
	stat := xyzCancel
	for retries := 20; retries > 0; retries-- {
		if x.firstXmodem && x.timeout > 0 && time.Since(x.initial) > x.timeout {
			return nil, xyzTimeout
		}
		stat = x.getHdr()
		if stat == xyzOK {
			x.firstXmodem = false
			switch {
			case x.blk == x.nextBlk:
				x.txAck = true
				x.nextBlk++
				n := x.n
				if !x.ymodem || x.fileLength == 0 {
					if n >= 3 && x.pkt[n-1] == ymodem.Pad && x.pkt[n-2] == ymodem.Pad && x.pkt[n-3] == ymodem.Pad {
						for n > 0 && x.pkt[n-1] == ymodem.Pad {
							n--
						}
					}
				}
				if x.ymodem && x.fileLength != 0 {
					x.readLn += int64(n)
					if x.readLn > x.fileLength {
						n -= int(min(x.readLn-x.fileLength, int64(n)))
					}
				}
				return x.pkt[:n], xyzOK
			case x.blk == x.nextBlk-1:
				x.u.putc(ymodem.ACK) // a repeat: re-ACK it so the sender goes on
				continue
			default:
				stat = xyzSequence
			}
		}
		if stat == xyzCancel {
			break
		}
		if stat == xyzEOF {
			x.u.putc(ymodem.ACK)
			if x.ymodem {
				x.u.putc('C') // asks for the final block 0: no retry
				x.getHdr()    // the final, empty block 0
				x.u.putc(ymodem.ACK)
			}
			x.atEOF = true
			return nil, xyzOK
		}
		x.nak()
	}
	if x.firstXmodem && stat == xyzTimeout {
		return x.read()
	}
	return nil, stat
}

// loadxy runs loady (ymodem) or loadx.
func (u *uboot) loadxy(args []string, ymodem bool) int {
	addr := uint64(KernelAddr)
	if v, found := hex(u.env["loadaddr"]); found {
		addr = v
	}
	if len(args) > 1 {
		v, good := hex(args[1])
		if !good {
			return usage
		}
		addr = v
	}
	u.mem(addr, 1)
	// cmd/load.c, do_load_serial_bin: a third argument is the rate to load
	// at (dectoul: digits up to the first other character; 0 means the
	// current rate). U-Boot says so at the console rate, waits 50 ms,
	// switches the UART, waits 50 ms, and then reads until a CR arrives,
	// for ever, with no echo and no timeout: a host that cannot reach the
	// new rate leaves it there until a reset.
	load := consoleBaud
	if len(args) > 2 {
		if v := leadingDecimal(args[2]); v != 0 {
			load = v
		}
	}
	rate := consoleBaud
	if load != consoleBaud {
		rate = u.m.uartRate(load)
		u.out("## Switch baudrate to %d bps and press ENTER ...\n", load)
		u.wait(50 * time.Millisecond)
		u.s.SetBaud(rate)
		u.wait(50 * time.Millisecond)
		for {
			if c, _ := u.getc(-1); c == '\r' {
				break
			}
		}
	}
	kind := "xmodem"
	if ymodem {
		kind = "ymodem"
	}
	u.out("## Ready for binary (%s) download to 0x%08X at %d bps...\n", kind, addr, load)
	x := &xyzModem{u: u, ymodem: ymodem, timeout: u.m.opts.LoadyTimeout}
	if x.timeout == 0 {
		x.timeout = 90 * time.Second
	}
	size := 0
	if stat := x.open(); stat != xyzOK {
		u.out("%s\n", xyzError(stat))
	} else {
		for {
			b, stat := x.read()
			if stat != xyzOK || len(b) == 0 {
				break
			}
			u.writeRAM(addr+uint64(size), b)
			size += len(b)
		}
	}
	// xyzModem_stream_terminate: drop the trailing gunk, then give the
	// terminal program time to take the line back.
	for {
		if _, got := u.getc(time.Millisecond); !got {
			break
		}
	}
	u.wait(250 * time.Millisecond)
	u.out("## Total Size      = 0x%08x = %d Bytes\n", size, size)
	// cmd/load.c, do_load_serial_bin: the start address follows (real
	// U-Boot 2023.01 prints it; no "xyzModem - CRC mode" summary line
	// appears on its console: the differential test holds both).
	u.out("## Start Addr      = 0x%08X\n", addr)
	u.env["filesize"] = strconv.FormatInt(int64(size), 16)
	u.m.count(func(s *Stats) { s.LoadyBytes, s.LoadyRetries, s.LoadyBaud = size, x.retries, rate })
	// do_load_serial_bin again: back to the console rate, announced at the
	// load rate, then every byte is read until an ESC.
	if load != consoleBaud {
		u.out("## Switch baudrate to %d bps and press ESC ...\n", consoleBaud)
		u.wait(50 * time.Millisecond)
		u.s.SetBaud(consoleBaud)
		u.wait(50 * time.Millisecond)
		for {
			if c, _ := u.getc(-1); c == 0x1B {
				break
			}
		}
	}
	return ok
}

// leadingDecimal parses the decimal digits s starts with, as U-Boot's
// dectoul does (0 when there are none).
func leadingDecimal(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 1e8 {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
