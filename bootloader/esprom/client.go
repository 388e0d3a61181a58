package esprom

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Options configure a Client. The zero value suits a unit at 115200 that
// is already in download mode.
type Options struct {
	// Timeout is how long any answer may take beyond its wire time and the
	// unit's work (erasing, programming, hashing). 0 means 1 s.
	Timeout time.Duration
	// SyncAttempts is how many times Sync resets the unit before giving
	// up (esptool's connect attempts). 0 means 7.
	SyncAttempts int
	// SyncWait is how long one SYNC waits for its answer. 0 means 100 ms,
	// as esptool waits.
	SyncWait time.Duration
	// Reset, if set, puts the unit into download mode (GPIO0 low while EN
	// rises: bench lines, or ClassicReset / UnixTightReset on an adapter's
	// DTR and RTS). Sync calls it before each round of SYNCs.
	Reset func(ctx context.Context) error
	// ResetEvery is how many SYNCs Sync sends after each reset. 0 means 5,
	// as esptool's _connect_attempt.
	ResetEvery int
	// ResetDelay is how long to wait after Reset before the first SYNC, for
	// the ROM to start and print its boot line. Sync alternates it with
	// ResetDelay + 500 ms from one reset to the next, as esptool alternates
	// its reset's delays (DEFAULT_RESET_DELAY and its EXTRA_DELAY). 0 means
	// 50 ms; negative means none.
	ResetDelay time.Duration
	// Baud is the link's rate, to size deadlines. 0 means 115200.
	Baud int
	// BlockSize is the FLASH_DATA block size. 0 means BlockSize (0x400).
	BlockSize int
	// FlashSize is the unit's SPI flash size, for EraseAll. 0 means 4 MiB.
	FlashSize uint32
	// Log, if set, receives debug messages.
	Log func(msg string)
}

// Timeouts for the unit's work, sized as esptool sizes them (loader.py:
// ERASE_WRITE_TIMEOUT_PER_MB 40 s, MD5_TIMEOUT_PER_MB 8 s, timeout_per_mb
// never under DEFAULT_TIMEOUT, 3 s), so that a flash at its datasheet's
// maximum erase and program times (a W25Q32JV: 400 ms a sector, 2 s a
// 64 KiB block, 3 ms a page) still answers in time.
const (
	eraseWritePerMB = 40 * time.Second
	md5PerMB        = 8 * time.Second
	minWorkTimeout  = 3 * time.Second
)

// timeoutPerMB is esptool's timeout_per_mb: perMB for each million bytes,
// never under 3 s.
func timeoutPerMB(perMB time.Duration, n uint32) time.Duration {
	return max(minWorkTimeout, time.Duration(float64(perMB)*float64(n)/1e6))
}

// Client speaks the ESP ROM serial protocol over a Port. It is not safe for
// concurrent use.
type Client struct {
	conn *bootloader.Conn
	opts Options

	chip      Chip
	haveChip  bool
	statusLen int  // learnt from SYNC's answer; 0 before
	stub      bool // SYNC was answered with value 0: esptool's flasher stub runs
	baud      int

	dec   SLIPDecoder
	rdata [4096]byte
	rbuf  []byte // bytes read from the port into rdata, not yet fed to dec
	out   []byte
}

// Info is what Identify learns about a unit.
type Info struct {
	Chip  Chip
	Magic uint32
	MAC   [6]byte
}

// Serial returns the MAC, the unit's serial number: "24:0A:C4:12:34:56".
func (i Info) Serial() string { return FormatMAC(i.MAC) }

func (i Info) String() string { return fmt.Sprintf("%s, MAC %s", i.Chip.Name, i.Serial()) }

// New returns a client talking over p. It sends nothing until called.
func New(p bootloader.Port, o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.SyncAttempts <= 0 {
		o.SyncAttempts = 7
	}
	if o.ResetEvery <= 0 {
		o.ResetEvery = 5
	}
	if o.SyncWait <= 0 {
		o.SyncWait = 100 * time.Millisecond
	}
	if o.ResetDelay == 0 {
		o.ResetDelay = 50 * time.Millisecond
	}
	if o.Baud <= 0 {
		o.Baud = 115200
	}
	if o.BlockSize <= 0 {
		o.BlockSize = BlockSize
	}
	if o.FlashSize == 0 {
		o.FlashSize = 4 << 20
	}
	return &Client{conn: bootloader.NewConn(p), opts: o, baud: o.Baud}
}

// Chip returns the family Identify found (or SetChip set), and whether
// there is one.
func (c *Client) Chip() (Chip, bool) { return c.chip, c.haveChip }

// SetChip tells the client which family it talks to, for hosts that know
// it without Identify.
func (c *Client) SetChip(ch Chip) { c.chip, c.haveChip, c.statusLen = ch, true, ch.StatusLen }

// Stub reports whether the unit answered SYNC as esptool's flasher stub
// does (value 0): a stub left running by esptool (--after no_reset_stub)
// rather than the ROM. The client then uses the stub's forms: raw MD5s,
// ERASE_REGION and RUN_USER_CODE.
func (c *Client) Stub() bool { return c.stub }

func (c *Client) logf(format string, args ...any) {
	if c.opts.Log != nil {
		c.opts.Log(fmt.Sprintf(format, args...))
	}
}

// wire returns a generous bound on the wire time of n bytes: twice their
// time at the current rate.
func (c *Client) wire(n int) time.Duration {
	return time.Duration(int64(n) * 2 * 10 * int64(time.Second) / int64(c.baud))
}

func portError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("esprom: %s: the port closed (unit unplugged?): %w", what, err)
	}
	return fmt.Errorf("esprom: %s: %w", what, err)
}

// send frames and writes one request.
func (c *Client) send(op byte, checksum uint32, data []byte) error {
	pkt := AppendRequest(make([]byte, 0, 8+len(data)), op, checksum, data)
	c.out = AppendSLIP(c.out[:0], pkt)
	if err := c.conn.Write(c.out); err != nil {
		return portError("send "+OpName(op), err)
	}
	return nil
}

// packet reads the next SLIP packet within wait.
func (c *Client) packet(ctx context.Context, wait time.Duration, op string) ([]byte, error) {
	deadline := time.Now().Add(wait)
	for {
		for len(c.rbuf) > 0 {
			b := c.rbuf[0]
			c.rbuf = c.rbuf[1:]
			pkt, err := c.dec.Feed(b)
			if err != nil {
				c.logf("dropped a malformed packet: %v", err)
				continue
			}
			if pkt != nil {
				return pkt, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, &bootloader.TimeoutError{Op: op, After: wait}
		}
		buf := c.rdata[:]
		n, err := c.conn.ReadSome(ctx, buf, left, op)
		if err != nil {
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				return nil, &bootloader.TimeoutError{Op: op, After: wait}
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, portError("read "+op, err)
		}
		c.rbuf = buf[:n]
	}
}

// flush drops undecoded input and resets the decoder.
func (c *Client) flush(ctx context.Context) error {
	c.rbuf = c.rbuf[:0]
	c.dec = SLIPDecoder{}
	if r, ok := c.conn.Port().(bootloader.InputResetter); ok {
		return r.ResetInputBuffer()
	}
	return nil
}

// response waits for the answer to op, skipping answers to other opcodes
// (the extra answers to SYNC) and anything that is not a response.
func (c *Client) response(ctx context.Context, op byte, dataLen int, wait time.Duration, addr uint32) (Response, error) {
	deadline := time.Now().Add(wait)
	what := "answer to " + OpName(op)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Response{}, &bootloader.TimeoutError{Op: what, After: wait}
		}
		pkt, err := c.packet(ctx, left, what)
		if err != nil {
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				return Response{}, &bootloader.TimeoutError{Op: what, After: wait}
			}
			return Response{}, err
		}
		if len(pkt) < 8 || pkt[0] != 0x01 || pkt[1] != op {
			c.logf("%s: skipped a packet (% X)", what, clip(pkt))
			continue
		}
		r, err := DecodeResponse(pkt, c.statusLen, dataLen)
		if err != nil {
			return r, err
		}
		if err := r.Err(addr); err != nil {
			return r, err
		}
		return r, nil
	}
}

// command sends a request and waits for its answer; work is the unit's
// modelled busy time on top of Timeout and the wire time.
func (c *Client) command(ctx context.Context, op byte, checksum uint32, data []byte, dataLen int, work time.Duration, addr uint32) (Response, error) {
	if err := c.send(op, checksum, data); err != nil {
		return Response{}, err
	}
	wait := c.opts.Timeout + c.wire(SLIPLen(data)+16+max(dataLen, 0)*2) + work
	return c.response(ctx, op, dataLen, wait, addr)
}

// Sync gets the ROM's attention as esptool's connect does: it resets the
// unit (the Reset hook, if set), waits ResetDelay (alternating with
// ResetDelay + 500 ms), reads the boot log the ROM printed, then sends up
// to ResetEvery SYNCs; it does so at most SyncAttempts times. The ROM
// answers a SYNC eight times; the client learns from the first answer how
// many status bytes this ROM sends, and skips the others as they arrive.
//
// When no SYNC is answered and the boot log showed the ROM booting from
// flash (boot:0x13 (SPI_FAST_FLASH_BOOT) on the ESP32, boot mode (3,x) on
// the ESP8266), the error is a *BootModeError: GPIO0 was not low at reset.
func (c *Client) Sync(ctx context.Context) error {
	var last error
	var boot BootLog
	reset := c.opts.Reset != nil // false too once the hook says it has no way to reset
	for i := range c.opts.SyncAttempts {
		if c.opts.Reset != nil {
			c.logf("sync attempt %d: resetting the unit into download mode", i+1)
			switch err := c.opts.Reset(ctx); {
			case errors.Is(err, bootloader.ErrNoReset):
				// Nothing could reset the unit: it waits in download mode
				// already, with no boot log to wait for.
				reset = false
			case err != nil:
				return fmt.Errorf("esprom: sync: reset into download mode: %w", err)
			default:
				delay := c.opts.ResetDelay
				if i%2 == 1 && delay >= 0 {
					delay += 500 * time.Millisecond
				}
				log, err := c.bootLog(ctx, delay)
				if err != nil {
					return err
				}
				if b := ParseBootLog(log); b.Seen {
					boot = b
					c.logf("sync attempt %d: boot log %q", i+1, b.Line)
				}
			}
		}
		for j := range c.opts.ResetEvery {
			err := c.syncOnce(ctx)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var te *bootloader.TimeoutError
			var pe *ProtocolError
			var re *ROMError
			if !errors.As(err, &te) && !errors.As(err, &pe) && !errors.As(err, &re) {
				return err
			}
			c.logf("sync attempt %d, SYNC %d: %v", i+1, j+1, err)
			last = err
			if err := c.flush(ctx); err != nil {
				return portError("sync: drop stale bytes", err)
			}
		}
	}
	if boot.Seen && !boot.Download {
		return &BootModeError{Line: boot.Line, Last: last}
	}
	hint := ""
	switch {
	case boot.Download:
		hint = " although the boot log says download mode (the unit's TX reaches the host, its RX may not: check RX and the rate)"
	case !reset:
		hint = " without a reset (a unit running its application never answers: set Options.Reset to the entry sequence)"
	}
	return fmt.Errorf("esprom: no answer to SYNC after %d resets of %d SYNCs%s; check that GPIO0 is low while EN rises, that TX and RX are crossed, and the rate: %w",
		c.opts.SyncAttempts, c.opts.ResetEvery, hint, last)
}

// bootLog waits d after a reset and returns what the ROM printed in that
// time (and what else arrives until the line is quiet for 10 ms), which is
// then dropped.
func (c *Client) bootLog(ctx context.Context, d time.Duration) ([]byte, error) {
	if err := bootloader.Sleep(ctx, max(d, 0)); err != nil {
		return nil, err
	}
	c.rbuf = c.rbuf[:0]
	c.dec = SLIPDecoder{}
	var log []byte
	buf := make([]byte, 512)
	for len(log) < 8<<10 {
		n, err := c.conn.ReadSome(ctx, buf, 10*time.Millisecond, "boot log")
		log = append(log, buf[:n]...)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			break
		}
	}
	return log, nil
}

func (c *Client) syncOnce(ctx context.Context) error {
	if err := c.send(OpSync, 0, SyncPayload); err != nil {
		return err
	}
	wait := c.opts.SyncWait + c.wire(SLIPLen(SyncPayload)+20)
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return &bootloader.TimeoutError{Op: "answer to SYNC", After: wait}
		}
		pkt, err := c.packet(ctx, left, "answer to SYNC")
		if err != nil {
			return err
		}
		if len(pkt) < 8 || pkt[0] != 0x01 || pkt[1] != OpSync {
			continue
		}
		// The status bytes follow no data: their count is the length.
		n := int(binary.LittleEndian.Uint16(pkt[2:]))
		if n != 2 && n != 4 {
			return &ProtocolError{Op: OpSync, Msg: fmt.Sprintf("answer with %d data bytes, want 2 or 4 status bytes", n)}
		}
		r, err := DecodeResponse(pkt, n, 0)
		if err != nil {
			return err
		}
		if err := r.Err(0); err != nil {
			return err
		}
		c.statusLen = n
		c.stub = r.Value == 0
		if c.stub {
			c.logf("sync: answered with value 0: esptool's flasher stub, not the ROM, is running")
		}
		c.logf("sync: synced (%d status bytes)", n)
		return nil
	}
}

// ReadReg reads a 32-bit word with READ_REG.
func (c *Client) ReadReg(ctx context.Context, addr uint32) (uint32, error) {
	var d [4]byte
	binary.LittleEndian.PutUint32(d[:], addr)
	r, err := c.command(ctx, OpReadReg, 0, d[:], 0, 0, addr)
	if err != nil {
		return 0, err
	}
	return r.Value, nil
}

// WriteReg writes value under mask at addr with WRITE_REG, after delay µs.
func (c *Client) WriteReg(ctx context.Context, addr, value, mask, delayUS uint32) error {
	d := binary.LittleEndian.AppendUint32(nil, addr)
	d = binary.LittleEndian.AppendUint32(d, value)
	d = binary.LittleEndian.AppendUint32(d, mask)
	d = binary.LittleEndian.AppendUint32(d, delayUS)
	_, err := c.command(ctx, OpWriteReg, 0, d, 0, 0, addr)
	return err
}

// Identify reads the chip-detect word to tell the family, then the MAC
// from the eFuses (ESP32) or the OTP (ESP8266).
func (c *Client) Identify(ctx context.Context) (Info, error) {
	var info Info
	magic, err := c.ReadReg(ctx, ChipDetectReg)
	if err != nil {
		return info, fmt.Errorf("esprom: read the chip-detect word at 0x%08X: %w", ChipDetectReg, err)
	}
	info.Magic = magic
	chip, ok := ChipByMagic(magic)
	if !ok {
		return info, &UnknownChipError{Magic: magic}
	}
	if c.stub {
		// The stub has what the ROM lacks (but reads flash only by its
		// streamed READ_FLASH, which the client does not speak) and sends
		// two status bytes.
		chip.StatusLen, chip.Deflate, chip.MD5, chip.ChangeBaud, chip.Attach, chip.EraseBug, chip.ReadFlash = 2, true, true, true, true, false, false
	}
	if c.statusLen != 0 && c.statusLen != chip.StatusLen {
		return info, &ProtocolError{Op: OpReadReg, Msg: fmt.Sprintf("the unit says it is an %s, whose ROM sends %d status bytes, but it sent %d", chip.Name, chip.StatusLen, c.statusLen)}
	}
	c.SetChip(chip)
	info.Chip = chip
	words := make([]uint32, len(chip.MACRegs))
	for i, a := range chip.MACRegs {
		if words[i], err = c.ReadReg(ctx, a); err != nil {
			return info, fmt.Errorf("esprom: read the %s MAC word at 0x%08X: %w", chip.Name, a, err)
		}
	}
	if info.MAC, err = DecodeMAC(chip, words); err != nil {
		return info, err
	}
	return info, nil
}

func (c *Client) needChip(op byte) error {
	if !c.haveChip {
		return fmt.Errorf("esprom: %s: the chip is unknown; run Identify first", OpName(op))
	}
	return nil
}

func (c *Client) unsupported(op byte, why string) error {
	return fmt.Errorf("esprom: %s: the %s ROM has no %s (%s): %w", OpName(op), c.chip.Name, OpName(op), why, ErrUnsupported)
}

// SPIAttach attaches the SPI flash with the default pins (the ESP32 ROM
// needs it before any flash command). On the ESP8266 ROM, which has no
// SPI_ATTACH, it does nothing: FLASH_BEGIN attaches the flash there.
func (c *Client) SPIAttach(ctx context.Context) error {
	if err := c.needChip(OpSPIAttach); err != nil {
		return err
	}
	if !c.chip.Attach {
		return nil
	}
	// The ROM takes the pins and an "is legacy" word, the stub the pins
	// alone (esptool's flash_spi_attach).
	n := 8
	if c.stub {
		n = 4
	}
	_, err := c.command(ctx, OpSPIAttach, 0, make([]byte, n), 0, 0, 0)
	return err
}

// ChangeBaud asks the ROM to switch to baud, then switches the port (which
// must implement bootloader.BaudSetter). The ESP8266 ROM cannot.
func (c *Client) ChangeBaud(ctx context.Context, baud int) error {
	if err := c.needChip(OpChangeBaudrate); err != nil {
		return err
	}
	if !c.chip.ChangeBaud {
		return c.unsupported(OpChangeBaudrate, "it stays at the rate it measured on SYNC")
	}
	bs, ok := c.conn.Port().(bootloader.BaudSetter)
	if !ok {
		return fmt.Errorf("esprom: CHANGE_BAUDRATE to %d: the port cannot change its rate", baud)
	}
	asked := uint32(baud)
	if c.chip.Magic == ESP32.Magic && !c.stub {
		var err error
		if asked, err = c.romBaud(ctx, baud); err != nil {
			return err
		}
	}
	d := binary.LittleEndian.AppendUint32(nil, asked)
	old := uint32(0) // the ROM takes 0; the stub the old rate
	if c.stub {
		old = uint32(c.baud)
	}
	d = binary.LittleEndian.AppendUint32(d, old)
	if _, err := c.command(ctx, OpChangeBaudrate, 0, d, 0, 0, 0); err != nil {
		return err
	}
	if err := bs.SetBaud(baud); err != nil {
		return fmt.Errorf("esprom: set the port to %d after CHANGE_BAUDRATE: %w", baud, err)
	}
	c.baud = baud
	// Bytes the ROM sent while both sides switched are garbage: esptool
	// waits 50 ms, then flushes its input (loader.py change_baud).
	if err := bootloader.Sleep(ctx, 50*time.Millisecond); err != nil {
		return err
	}
	return c.flush(ctx)
}

// The registers from which the ESP32 ROM computed its crystal frequency
// (esptool's ESP32ROM.get_rom_cal_crystal_freq): the RTC calibration value
// in TIMG0's RTCCALICFG1 (bits 7-31) and the 8 MHz clock's frequency in
// eFuse word 4 (bits 0-7).
const (
	RTCCaliCfg1 = 0x3FF5F06C
	EfuseWord4  = 0x3FF5A010
)

// ROMCrystal returns the crystal frequency in Hz the ESP32 ROM believes in,
// computed as the ROM does from its RTC calibration of the 8 MHz clock
// (cali * 15625 * ck8m / 40), or 0 when the registers give nothing.
func (c *Client) ROMCrystal(ctx context.Context) (uint32, error) {
	cfg, err := c.ReadReg(ctx, RTCCaliCfg1)
	if err != nil {
		return 0, fmt.Errorf("esprom: read RTCCALICFG1: %w", err)
	}
	w4, err := c.ReadReg(ctx, EfuseWord4)
	if err != nil {
		return 0, fmt.Errorf("esprom: read eFuse word 4: %w", err)
	}
	return uint32(uint64(cfg>>7&0x1FFFFFF) * 15625 * uint64(w4&0xFF) / 40), nil
}

// romBaud returns the rate to ask the ESP32 ROM for so that its UART lands
// on baud: the ROM derives the divider from its 8 MHz clock's calibration,
// which drifts, so esptool scales the request by the ROM's crystal estimate
// over the nominal crystal (ESP32ROM.change_baud, "a workaround to avoid
// esp32 CK_8M frequency drift").
func (c *Client) romBaud(ctx context.Context, baud int) (uint32, error) {
	f, err := c.ROMCrystal(ctx)
	if err != nil {
		return 0, err
	}
	if f == 0 {
		return uint32(baud), nil
	}
	valid := uint64(26000000)
	if f > 33000000 {
		valid = 40000000
	}
	asked := uint32(uint64(baud) * uint64(f) / valid)
	if asked != uint32(baud) {
		c.logf("CHANGE_BAUDRATE: the ROM takes its crystal for %d Hz: asking %d for %d", f, asked, baud)
	}
	return asked, nil
}

// eraseWork is how long erasing size bytes may take: esptool's 40 s per
// MB, never under 3 s.
func eraseWork(size uint32) time.Duration { return timeoutPerMB(eraseWritePerMB, size) }

// beginParams builds FLASH_BEGIN's and FLASH_DEFL_BEGIN's data.
func beginParams(eraseSize, blocks, blockSize, offset uint32) []byte {
	d := binary.LittleEndian.AppendUint32(nil, eraseSize)
	d = binary.LittleEndian.AppendUint32(d, blocks)
	d = binary.LittleEndian.AppendUint32(d, blockSize)
	return binary.LittleEndian.AppendUint32(d, offset)
}

// eraseSize is what to ask the ROM to erase for [offset, offset+size).
func (c *Client) eraseSize(offset, size uint32) uint32 {
	if c.chip.EraseBug {
		return ESP8266EraseSize(offset, size)
	}
	return size
}

// FlashBegin starts an uncompressed write of size bytes at offset in blocks
// of BlockSize; the ROM erases the sectors first.
func (c *Client) FlashBegin(ctx context.Context, offset, size uint32) error {
	if err := c.needChip(OpFlashBegin); err != nil {
		return err
	}
	bs := uint32(c.opts.BlockSize)
	blocks := (size + bs - 1) / bs
	_, err := c.command(ctx, OpFlashBegin, 0, beginParams(c.eraseSize(offset, size), blocks, bs, offset), 0, eraseWork(size), offset)
	return err
}

// blockData builds FLASH_DATA's and FLASH_DEFL_DATA's data: length, seq,
// two zero words, the block.
func (c *Client) blockData(seq uint32, block []byte) []byte {
	d := make([]byte, 16, 16+len(block))
	binary.LittleEndian.PutUint32(d[0:], uint32(len(block)))
	binary.LittleEndian.PutUint32(d[4:], seq)
	return append(d, block...)
}

// FlashData sends block number seq (padded with FF to the block size).
func (c *Client) FlashData(ctx context.Context, seq uint32, block []byte, addr uint32) error {
	if len(block) < c.opts.BlockSize {
		padded := bytes.Repeat([]byte{0xFF}, c.opts.BlockSize)
		copy(padded, block)
		block = padded
	}
	return c.dataBlock(ctx, OpFlashData, seq, block, addr, timeoutPerMB(eraseWritePerMB, uint32(len(block))))
}

// blockAttempts is how many times a block the ROM refused for its checksum
// is sent (esptool's WRITE_BLOCK_ATTEMPTS).
const blockAttempts = 3

// dataBlock sends one FLASH_DATA or FLASH_DEFL_DATA block, again when the
// ROM answers that its checksum was wrong (a line error): the ROM did not
// take it and waits for the same sequence number.
func (c *Client) dataBlock(ctx context.Context, op byte, seq uint32, block []byte, addr uint32, work time.Duration) error {
	var err error
	for i := range blockAttempts {
		_, err = c.command(ctx, op, Checksum(block), c.blockData(seq, block), 0, work, addr)
		var re *ROMError
		if !errors.As(err, &re) || re.Code != CodeBadCRC {
			return err
		}
		c.logf("%s block %d at 0x%06X: checksum refused, attempt %d of %d", OpName(op), seq, addr, i+1, blockAttempts)
	}
	return err
}

// FlashEnd ends flash mode, which the ROM answers and then leaves: with
// reboot it resets the unit (which comes back in download mode while GPIO0
// is still low), without it runs the user code in flash (the word FLASH_END
// carries is 0 to reboot, 1 to run user code). To stay in download mode,
// send no FLASH_END at all.
func (c *Client) FlashEnd(ctx context.Context, reboot bool) error {
	run := uint32(1)
	if reboot {
		run = 0
	}
	_, err := c.command(ctx, OpFlashEnd, 0, binary.LittleEndian.AppendUint32(nil, run), 0, 0, 0)
	return err
}

// WriteFlash writes data at offset (sector-aligned) uncompressed: the ROM
// erases the sectors at FLASH_BEGIN, then programs and reads back each
// block. The ROM stays in download mode.
func (c *Client) WriteFlash(ctx context.Context, offset uint32, data []byte, progress bootloader.Progress) error {
	if err := c.checkRegion(OpFlashBegin, offset, len(data)); err != nil {
		return err
	}
	if err := c.FlashBegin(ctx, offset, uint32(len(data))); err != nil {
		return err
	}
	bs := c.opts.BlockSize
	for seq, off := uint32(0), 0; off < len(data); seq, off = seq+1, off+bs {
		block := data[off:min(off+bs, len(data))]
		if err := c.FlashData(ctx, seq, block, offset+uint32(off)); err != nil {
			return err
		}
		if progress != nil {
			progress(int64(off+len(block)), int64(len(data)))
		}
	}
	return nil
}

func (c *Client) checkRegion(op byte, offset uint32, n int) error {
	if offset%SectorSize != 0 {
		return fmt.Errorf("esprom: %s at 0x%06X: the offset must be a multiple of 4 KiB (a flash sector)", OpName(op), offset)
	}
	if n == 0 {
		return fmt.Errorf("esprom: %s at 0x%06X: nothing to write", OpName(op), offset)
	}
	if uint64(offset)+uint64(n) > uint64(c.opts.FlashSize) {
		return fmt.Errorf("esprom: %s at 0x%06X+%d: beyond the %d KiB flash", OpName(op), offset, n, c.opts.FlashSize>>10)
	}
	return nil
}

// Compress returns data as the zlib stream FLASH_DEFL_DATA carries.
func Compress(data []byte) []byte {
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// WriteFlashDeflate writes data at offset (sector-aligned) as a zlib
// stream: FLASH_DEFL_BEGIN (the ROM erases the sectors the uncompressed
// data covers), FLASH_DEFL_DATA blocks of the stream, which the ROM
// inflates and programs. The ROM stays in download mode. Only the ESP32
// ROM inflates.
func (c *Client) WriteFlashDeflate(ctx context.Context, offset uint32, data []byte, progress bootloader.Progress) error {
	if err := c.needChip(OpFlashDeflBegin); err != nil {
		return err
	}
	if !c.chip.Deflate {
		return c.unsupported(OpFlashDeflBegin, "write uncompressed with WriteFlash")
	}
	if err := c.checkRegion(OpFlashDeflBegin, offset, len(data)); err != nil {
		return err
	}
	z := Compress(data)
	bs := uint32(c.opts.BlockSize)
	blocks := (uint32(len(z)) + bs - 1) / bs
	inflated := InflatedPerBlock(z, int(bs))
	// The ROM takes the erase size rounded up to whole blocks, the stub
	// the exact size.
	eraseSize := (uint32(len(data)) + bs - 1) / bs * bs
	if c.stub {
		eraseSize = uint32(len(data))
	}
	if _, err := c.command(ctx, OpFlashDeflBegin, 0, beginParams(eraseSize, blocks, bs, offset), 0, eraseWork(eraseSize), offset); err != nil {
		return err
	}
	for seq, off := uint32(0), 0; off < len(z); seq, off = seq+1, off+int(bs) {
		block := z[off:min(off+int(bs), len(z))]
		// Progress counts uncompressed bytes, in proportion.
		// The ROM inflates and programs the block before it answers: its
		// time is the inflated size's (esptool: timeout_per_mb of the
		// block's inflated length).
		if err := c.dataBlock(ctx, OpFlashDeflData, seq, block, offset, timeoutPerMB(eraseWritePerMB, inflated[seq])); err != nil {
			return err
		}
		if progress != nil {
			progress(int64(len(data))*int64(off+len(block))/int64(len(z)), int64(len(data)))
		}
	}
	return nil
}

// FlashMD5 returns the MD5 of size bytes of flash at addr, which the ESP32
// ROM computes and sends as 32 hex digits.
func (c *Client) FlashMD5(ctx context.Context, addr, size uint32) ([md5.Size]byte, error) {
	var sum [md5.Size]byte
	if err := c.needChip(OpSPIFlashMD5); err != nil {
		return sum, err
	}
	if !c.chip.MD5 {
		return sum, c.unsupported(OpSPIFlashMD5, "it cannot hash flash")
	}
	d := binary.LittleEndian.AppendUint32(nil, addr)
	d = binary.LittleEndian.AppendUint32(d, size)
	d = append(d, make([]byte, 8)...)
	work := timeoutPerMB(md5PerMB, size)
	if c.stub { // the stub answers 16 raw bytes
		r, err := c.command(ctx, OpSPIFlashMD5, 0, d, md5.Size, work, addr)
		if err != nil {
			return sum, err
		}
		copy(sum[:], r.Data)
		return sum, nil
	}
	r, err := c.command(ctx, OpSPIFlashMD5, 0, d, 32, work, addr)
	if err != nil {
		return sum, err
	}
	n, err := hex.Decode(sum[:], r.Data)
	if err != nil || n != md5.Size {
		return sum, &ProtocolError{Op: OpSPIFlashMD5, Msg: fmt.Sprintf("answer %q is not 32 hex digits", r.Data)}
	}
	return sum, nil
}

// Verify checks that the unit holds data at addr with SPI_FLASH_MD5. The
// ESP8266 ROM can neither hash nor read flash (esptool verifies there only
// through its stub): Verify returns an error matching ErrUnsupported, and
// a caller must say "written, not verified".
func (c *Client) Verify(ctx context.Context, addr uint32, data []byte) error {
	if err := c.needChip(OpSPIFlashMD5); err != nil {
		return err
	}
	want := md5.Sum(data)
	if !c.chip.MD5 {
		return c.unsupported(OpSPIFlashMD5, "the "+c.chip.Name+" ROM cannot read back or hash flash")
	}
	got, err := c.FlashMD5(ctx, addr, uint32(len(data)))
	if err != nil {
		return err
	}
	if got != want {
		return &VerifyError{Addr: addr, Size: uint32(len(data)), Want: hex.EncodeToString(want[:]), Got: hex.EncodeToString(got[:])}
	}
	return nil
}

// ReadFlash reads n bytes at addr with READ_FLASH_SLOW, 64 bytes an
// exchange (the ESP32 ROM; the ESP8266 ROM cannot read flash).
func (c *Client) ReadFlash(ctx context.Context, addr uint32, n int, progress bootloader.Progress) ([]byte, error) {
	if err := c.needChip(OpReadFlashSlow); err != nil {
		return nil, err
	}
	if !c.chip.ReadFlash {
		return nil, c.unsupported(OpReadFlashSlow, "it cannot read flash back")
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		k := min(ReadBlock, n-len(out))
		a := addr + uint32(len(out))
		d := binary.LittleEndian.AppendUint32(nil, a)
		d = binary.LittleEndian.AppendUint32(d, uint32(k))
		r, err := c.command(ctx, OpReadFlashSlow, 0, d, ReadBlock, 0, a)
		if err != nil {
			return out, err
		}
		out = append(out, r.Data[:k]...)
		if progress != nil {
			progress(int64(len(out)), int64(n))
		}
	}
	return out, nil
}

// EraseRegion erases the sectors [addr, addr+size) covers: FLASH_BEGIN
// with no blocks to follow (the ROMs have no erase command; on the ESP8266
// a small odd sector count erases one sector more).
func (c *Client) EraseRegion(ctx context.Context, addr, size uint32) error {
	if err := c.needChip(OpFlashBegin); err != nil {
		return err
	}
	if addr%SectorSize != 0 {
		return fmt.Errorf("esprom: erase at 0x%06X: the address must be a multiple of 4 KiB", addr)
	}
	if c.stub { // the stub erases as it writes: FLASH_BEGIN erases nothing
		size = (size + SectorSize - 1) / SectorSize * SectorSize
		d := binary.LittleEndian.AppendUint32(nil, addr)
		d = binary.LittleEndian.AppendUint32(d, size)
		_, err := c.command(ctx, OpEraseRegion, 0, d, 0, eraseWork(size), addr)
		return err
	}
	bs := uint32(c.opts.BlockSize)
	_, err := c.command(ctx, OpFlashBegin, 0, beginParams(c.eraseSize(addr, size), 0, bs, addr), 0, eraseWork(size), addr)
	return err
}

// EraseAll erases the whole flash (Options.FlashSize) region by region.
func (c *Client) EraseAll(ctx context.Context) error {
	const step = 1 << 20
	for a := uint32(0); a < c.opts.FlashSize; a += step {
		if err := c.EraseRegion(ctx, a, min(step, c.opts.FlashSize-a)); err != nil {
			return err
		}
	}
	return nil
}

// Run leaves download mode and starts the application: an empty
// FLASH_BEGIN, then FLASH_END with "run user code", as esptool's run does;
// the ROM answers and jumps into the image in flash.
func (c *Client) Run(ctx context.Context) error {
	if err := c.needChip(OpFlashEnd); err != nil {
		return err
	}
	if c.stub {
		// RUN_USER_CODE exists in the ESP8266 stub only (esptool's
		// soft_reset: "Soft resetting is currently only supported on
		// ESP8266"); the ESP32 leaves the stub by a reset.
		if c.chip.Magic != ESP8266.Magic {
			return fmt.Errorf("esprom: run: the %s flasher stub cannot start the application (RUN_USER_CODE is the ESP8266 stub's only): reset the unit with GPIO0 released: %w", c.chip.Name, ErrUnsupported)
		}
		return c.send(OpRunUserCode, 0, nil) // not answered
	}
	// An empty FLASH_BEGIN first: the ROM takes FLASH_END only in flash mode.
	if err := c.EraseRegion(ctx, 0, 0); err != nil {
		return err
	}
	return c.FlashEnd(ctx, false)
}

// FlashOptions say how Flash writes.
type FlashOptions struct {
	// Compress writes with FLASH_DEFL_* where the ROM inflates.
	Compress bool
	// Delta compares the MD5 of each chunk on the unit with the image's
	// and writes only the chunks that differ (where the ROM has MD5).
	Delta bool
	// Chunk is the delta granularity, a multiple of 4 KiB. 0 means 64 KiB.
	Chunk uint32
}

// FlashResult says what Flash did.
type FlashResult struct {
	Chunks  int    // chunks the region was split into
	Skipped int    // chunks whose MD5 already matched
	Written uint32 // bytes written
}

// Flash writes data at offset the best way the ROM allows: compressed where
// it inflates and o.Compress is set, skipping chunks that already match
// when o.Delta is set. It does not verify: call Verify after it.
func (c *Client) Flash(ctx context.Context, offset uint32, data []byte, o FlashOptions, progress bootloader.Progress) (FlashResult, error) {
	var res FlashResult
	if err := c.needChip(OpFlashBegin); err != nil {
		return res, err
	}
	if err := c.checkRegion(OpFlashBegin, offset, len(data)); err != nil {
		return res, err
	}
	write := c.WriteFlash
	if o.Compress && c.chip.Deflate {
		write = c.WriteFlashDeflate
	}
	if !o.Delta || !c.chip.MD5 {
		res.Chunks = 1
		res.Written = uint32(len(data))
		return res, write(ctx, offset, data, progress)
	}
	chunk := o.Chunk
	if chunk == 0 {
		chunk = 64 << 10
	}
	if chunk%SectorSize != 0 {
		return res, fmt.Errorf("esprom: delta chunk of %d bytes: use a multiple of 4 KiB", chunk)
	}
	// Which chunks differ. A run of differing chunks is written at once.
	var runs [][2]int
	for off := 0; off < len(data); off += int(chunk) {
		part := data[off:min(off+int(chunk), len(data))]
		res.Chunks++
		sum, err := c.FlashMD5(ctx, offset+uint32(off), uint32(len(part)))
		if err != nil {
			return res, err
		}
		if sum == md5.Sum(part) {
			res.Skipped++
			continue
		}
		if n := len(runs); n > 0 && runs[n-1][1] == off {
			runs[n-1][1] = off + len(part)
		} else {
			runs = append(runs, [2]int{off, off + len(part)})
		}
	}
	c.logf("delta 0x%06X+%d: %d of %d chunks already match", offset, len(data), res.Skipped, res.Chunks)
	total := 0
	for _, r := range runs {
		total += r[1] - r[0]
	}
	done := 0
	for _, r := range runs {
		part := data[r[0]:r[1]]
		var p bootloader.Progress
		if progress != nil {
			base := done
			p = func(d, _ int64) { progress(int64(base)+d, int64(total)) }
		}
		if err := write(ctx, offset+uint32(r[0]), part, p); err != nil {
			return res, err
		}
		done += len(part)
		res.Written += uint32(len(part))
	}
	if progress != nil && total == 0 {
		progress(0, 0)
	}
	return res, nil
}

// ParseEntry names an entry sequence: "classic" or "unix-tight".
func ParseEntry(name string) (func(bootloader.ModemLines) func(context.Context) error, error) {
	switch strings.ToLower(name) {
	case "classic":
		return func(l bootloader.ModemLines) func(context.Context) error { return ClassicReset(l, 0) }, nil
	case "unix-tight", "unix_tight", "unixtight":
		return func(l bootloader.ModemLines) func(context.Context) error { return UnixTightReset(l, 0) }, nil
	}
	return nil, fmt.Errorf("esprom: unknown entry sequence %q: use classic or unix-tight", name)
}
