package avr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// The Arduino Mega 2560 does not run optiboot: its stock bootloader is
// stk500boot.c ("stk500v2", avrdude's programmer "wiring"), which speaks
// STK500 version 2 (Atmel AVR068) from an 8 KiB boot section at 0x3E000.
// Every message is framed and checksummed:
//
//	host: 1B seq len_hi len_lo 0E <body> xor     MESSAGE_START, TOKEN, XOR of all bytes
//	unit: 1B seq len_hi len_lo 0E <answer> xor   the answer starts with the command, then STATUS_CMD_OK (00)
//
// What stk500boot.c does that a host must respect:
//
//   - After any reset but a watchdog one it waits about a second for a
//     first byte, then starts the application; once a message arrived it
//     stays until LEAVE_PROGMODE (or a long silence with an application
//     present).
//   - PROGRAM_FLASH does not erase the page it writes: it erases the next
//     page of a pointer that starts at 0 at each reset and moves one page per
//     PROGRAM_FLASH. Pages must therefore be written in order from address 0,
//     each once per reset, or they are programmed over old contents (an AND).
//     WiringClient keeps that pointer and rewrites the pages below an image
//     with their own contents.
//   - CHIP_ERASE answers STATUS_CMD_FAILED (its "issue 543").
//   - Three '!' among the first ten bytes enter its monitor; nothing this
//     client sends before then contains '!'.

// STK500v2 framing and commands (AVR068), those stk500boot.c handles.
const (
	V2MessageStart = 0x1B
	V2Token        = 0x0E

	V2SignOn           = 0x01
	V2SetParameter     = 0x02
	V2GetParameter     = 0x03
	V2LoadAddress      = 0x06
	V2EnterProgmodeISP = 0x10
	V2LeaveProgmodeISP = 0x11
	V2ChipEraseISP     = 0x12
	V2ProgramFlashISP  = 0x13
	V2ReadFlashISP     = 0x14
	V2ReadSignatureISP = 0x1B
	V2SPIMulti         = 0x1D

	V2StatusOK     = 0x00
	V2StatusFailed = 0xC0
)

// WiringBootSize is the Mega 2560 bootloader's section: 8 KiB at 0x3E000
// (stk500v2 Makefile, target mega2560: BOOTLOADER_ADDRESS = 3E000).
const WiringBootSize = 8 * 1024

// WiringPart returns the part as the wiring bootloader leaves it to the
// host: the ATmega2560 with an 8 KiB boot section.
func WiringPart() Part {
	p, _ := LookupName("m2560")
	p.BootSize = WiringBootSize
	return p
}

// V2Error is an STK500v2 answer whose status is not STATUS_CMD_OK, or a
// malformed one.
type V2Error struct {
	Cmd    byte
	Status byte
	Msg    string
}

func (e *V2Error) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("avr: STK500v2 command 0x%02X: %s; resynchronise (reset and Sync) and retry", e.Cmd, e.Msg)
	}
	return fmt.Sprintf("avr: STK500v2 command 0x%02X: status 0x%02X", e.Cmd, e.Status)
}

// WiringClient speaks STK500v2 to the Arduino Mega 2560's stock
// bootloader. It is not safe for concurrent use.
type WiringClient struct {
	conn   *bootloader.Conn
	opts   Options
	seq    byte
	part   Part
	have   bool
	erased int // pages the unit's erase pointer has passed since its reset
}

// NewWiring returns a client talking over p, with the Options of New
// (Reset, ResetDelay, SyncAttempts, SyncWindow, SyncWait, Timeout, Baud).
func NewWiring(p bootloader.Port, o Options) *WiringClient {
	c := New(p, o) // for the defaults
	return &WiringClient{conn: c.conn, opts: c.opts, seq: 1}
}

// Part returns the part Identify found.
func (c *WiringClient) Part() (Part, bool) { return c.part, c.have }

// message sends one command body and returns the answer body after
// checking its framing, checksum, command echo and first status byte.
func (c *WiringClient) message(ctx context.Context, body []byte, wait time.Duration) ([]byte, error) {
	b := []byte{V2MessageStart, c.seq, byte(len(body) >> 8), byte(len(body)), V2Token}
	b = append(b, body...)
	var x byte
	for _, v := range b {
		x ^= v
	}
	b = append(b, x)
	if err := c.conn.Write(b); err != nil {
		return nil, fmt.Errorf("avr: send STK500v2 command 0x%02X: %w", body[0], err)
	}
	wire := time.Duration(int64(len(b)+300) * 20 * int64(time.Second) / int64(c.opts.Baud))
	budget := wait + wire
	var head [5]byte
	op := fmt.Sprintf("STK500v2 answer to 0x%02X", body[0])
	// Skip anything before MESSAGE_START (an application's output).
	for {
		if err := c.conn.ReadFull(ctx, head[:1], budget, op); err != nil {
			return nil, err
		}
		if head[0] == V2MessageStart {
			break
		}
	}
	if err := c.conn.ReadFull(ctx, head[1:], budget, op); err != nil {
		return nil, err
	}
	n := int(head[2])<<8 | int(head[3])
	if head[4] != V2Token || n == 0 || n > 300 {
		return nil, &V2Error{Cmd: body[0], Msg: fmt.Sprintf("malformed answer header % X", head)}
	}
	rest := make([]byte, n+1)
	if err := c.conn.ReadFull(ctx, rest, budget, op); err != nil {
		return nil, err
	}
	x = 0
	for _, v := range head {
		x ^= v
	}
	for _, v := range rest {
		x ^= v
	}
	ans := rest[:n]
	switch {
	case x != 0:
		return nil, &V2Error{Cmd: body[0], Msg: "answer checksum mismatch"}
	case head[1] != c.seq:
		return nil, &V2Error{Cmd: body[0], Msg: fmt.Sprintf("answer to sequence %d, want %d", head[1], c.seq)}
	case ans[0] != body[0]:
		return nil, &V2Error{Cmd: body[0], Msg: fmt.Sprintf("answer to command 0x%02X", ans[0])}
	case len(ans) < 2:
		return nil, &V2Error{Cmd: body[0], Msg: "answer without a status"}
	case ans[1] != V2StatusOK:
		return nil, &V2Error{Cmd: body[0], Status: ans[1]}
	}
	c.seq++
	return ans, nil
}

// Sync resets the unit (through Options.Reset) and sends SIGN_ON, one every
// SyncWait for SyncWindow, until it answers "AVRISP_2"; then it resets
// again, up to SyncAttempts times.
func (c *WiringClient) Sync(ctx context.Context) error {
	var last error
	for i := 1; i <= c.opts.SyncAttempts; i++ {
		if err := c.opts.reset(ctx, i); err != nil {
			return err
		}
		c.erased = 0
		if _, err := c.conn.Discard(ctx, drainQuiet, drainMost); err != nil {
			return fmt.Errorf("avr: drain before sync: %w", err)
		}
		end := time.Now().Add(c.opts.SyncWindow)
		for first := true; first || time.Now().Before(end); first = false {
			ans, err := c.message(ctx, []byte{V2SignOn}, c.opts.SyncWait)
			if err == nil {
				if len(ans) < 3 || !bytes.HasPrefix(ans[3:], []byte("AVRISP_2")) {
					return &V2Error{Cmd: V2SignOn, Msg: fmt.Sprintf("signs on as %q, not AVRISP_2", ans[min(3, len(ans)):])}
				}
				return nil
			}
			last = err
			if err := ctx.Err(); err != nil {
				return err
			}
			var te *bootloader.TimeoutError
			var ve *V2Error
			if !errors.As(err, &te) && !errors.As(err, &ve) {
				return err
			}
			if _, err := c.conn.Discard(ctx, drainQuiet, drainMost); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("avr: no STK500v2 sign-on after %d resets: %w", c.opts.SyncAttempts, last)
}

// Identify reads the signature with READ_SIGNATURE_ISP, checks that it is
// an ATmega2560 and enters programming mode as avrdude -c wiring does.
func (c *WiringClient) Identify(ctx context.Context) (Part, error) {
	var sig [3]byte
	for i := range sig {
		ans, err := c.message(ctx, []byte{V2ReadSignatureISP, 4, 0x30, 0x00, byte(i), 0x00}, c.opts.Timeout)
		if err != nil {
			return Part{}, err
		}
		if len(ans) < 3 {
			return Part{}, &V2Error{Cmd: V2ReadSignatureISP, Msg: "short answer"}
		}
		sig[i] = ans[2]
	}
	p := WiringPart()
	if sig != p.Signature {
		if _, ok := LookupSignature(sig); !ok {
			return Part{}, &UnknownPartError{Signature: sig}
		}
		return Part{}, fmt.Errorf("avr: the STK500v2 bootloader reports signature %02X %02X %02X; this client knows only the ATmega2560's wiring bootloader", sig[0], sig[1], sig[2])
	}
	// avrdude.conf's m2560: timeout 200, stabdelay 100, cmdexedelay 25,
	// synchloops 32, bytedelay 0, pollindex 3, pollvalue 0x53, AC 53 00 00.
	// stk500boot.c ignores them.
	if _, err := c.message(ctx, []byte{V2EnterProgmodeISP, 200, 100, 25, 32, 0, 0x53, 3, 0xAC, 0x53, 0x00, 0x00}, c.opts.Timeout); err != nil {
		return Part{}, err
	}
	c.part, c.have = p, true
	return p, nil
}

// loadAddress sets the word address, with bit 31 set as avrdude sets it
// for parts above 64 KiB words (the bootloader shifts it out).
func (c *WiringClient) loadAddress(ctx context.Context, byteAddr uint32) error {
	w := byteAddr/2 | 1<<31
	_, err := c.message(ctx, []byte{V2LoadAddress, byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)}, c.opts.Timeout)
	return err
}

// WritePages writes data from byte address addr (page-aligned), padding
// the last page with 0xFF. The unit erases pages in order from 0, one per
// PROGRAM_FLASH since its reset: pages below addr that the pointer has not
// passed are read and written back unchanged, so that the pointer reaches
// addr; a page it has already passed cannot be written again before a
// reset (Sync).
func (c *WiringClient) WritePages(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	if !c.have {
		return errors.New("avr: write flash: the part is unknown; call Identify first")
	}
	ps := c.part.PageSize
	if addr%uint32(ps) != 0 {
		return fmt.Errorf("avr: write flash at 0x%05X: not the start of a %d-byte page; align the image", addr, ps)
	}
	first := int(addr) / ps
	n := (len(data) + ps - 1) / ps
	if end := (first + n) * ps; end > c.part.BootStart() {
		return fmt.Errorf("avr: write flash 0x%05X-0x%05X: reaches the bootloader's section at 0x%05X (%s, wiring bootloader); the application may use at most %d bytes",
			addr, end-1, c.part.BootStart(), c.part.Name, c.part.BootStart())
	}
	if first < c.erased {
		return fmt.Errorf("avr: write flash page 0x%05X: the wiring bootloader erases pages once each, in order, after a reset, and is past it (at 0x%05X): reset (Sync) and write from there again",
			addr, c.erased*ps)
	}
	for c.erased < first {
		a := uint32(c.erased * ps)
		keep, err := c.ReadFlash(ctx, a, ps, nil)
		if err != nil {
			return fmt.Errorf("avr: keep page 0x%05X below the image: %w", a, err)
		}
		if err := c.program(ctx, a, keep); err != nil {
			return fmt.Errorf("avr: keep page 0x%05X below the image: %w", a, err)
		}
	}
	page := make([]byte, ps)
	for i := range n {
		k := copy(page, data[i*ps:])
		for j := k; j < ps; j++ {
			page[j] = 0xFF
		}
		a := addr + uint32(i*ps)
		if err := c.program(ctx, a, page); err != nil {
			return fmt.Errorf("avr: write flash page 0x%05X: %w", a, err)
		}
		if progress != nil {
			progress(int64(min((i+1)*ps, len(data))), int64(len(data)))
		}
	}
	return nil
}

// program writes one page at a: LOAD_ADDRESS, then PROGRAM_FLASH_ISP with
// avrdude's page-mode parameters for the m2560 (mode C1, delay 10, 40 4C 20,
// polls 00 00), which the bootloader ignores.
func (c *WiringClient) program(ctx context.Context, a uint32, page []byte) error {
	if err := c.loadAddress(ctx, a); err != nil {
		return err
	}
	body := append([]byte{V2ProgramFlashISP, byte(len(page) >> 8), byte(len(page)), 0xC1, 10, 0x40, 0x4C, 0x20, 0x00, 0x00}, page...)
	if _, err := c.message(ctx, body, c.opts.Timeout+flashPageBudget); err != nil {
		return err
	}
	c.erased++
	return nil
}

// ReadFlash reads n bytes from byte address addr (both even).
func (c *WiringClient) ReadFlash(ctx context.Context, addr uint32, n int, progress bootloader.Progress) ([]byte, error) {
	if !c.have {
		return nil, errors.New("avr: read flash: the part is unknown; call Identify first")
	}
	if addr%2 != 0 || n%2 != 0 || int64(addr)+int64(n) > int64(c.part.FlashSize) {
		return nil, fmt.Errorf("avr: read flash 0x%05X+%d: want an even address and length inside the %d bytes of %s", addr, n, c.part.FlashSize, c.part.Name)
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		a := addr + uint32(len(out))
		k := min(c.part.PageSize, n-len(out))
		if err := c.loadAddress(ctx, a); err != nil {
			return nil, fmt.Errorf("avr: read flash at 0x%05X: %w", a, err)
		}
		ans, err := c.message(ctx, []byte{V2ReadFlashISP, byte(k >> 8), byte(k), 0x20}, c.opts.Timeout)
		if err != nil {
			return nil, fmt.Errorf("avr: read flash at 0x%05X: %w", a, err)
		}
		if len(ans) != k+3 || ans[k+2] != V2StatusOK {
			return nil, &V2Error{Cmd: V2ReadFlashISP, Msg: fmt.Sprintf("answer of %d bytes to a read of %d", len(ans), k)}
		}
		out = append(out, ans[2:k+2]...)
		if progress != nil {
			progress(int64(len(out)), int64(n))
		}
	}
	return out, nil
}

// Verify reads flash back from addr and compares it with data.
func (c *WiringClient) Verify(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	n := len(data) + len(data)%2
	got, err := c.ReadFlash(ctx, addr, n, progress)
	if err != nil {
		return err
	}
	for i := range data {
		if got[i] != data[i] {
			return &VerifyError{Mem: Flash, Addr: addr + uint32(i), Want: data[i], Got: got[i]}
		}
	}
	return nil
}

// Leave sends LEAVE_PROGMODE_ISP: the bootloader answers and starts the
// application.
func (c *WiringClient) Leave(ctx context.Context) error {
	if _, err := c.message(ctx, []byte{V2LeaveProgmodeISP, 1, 1}, c.opts.Timeout); err != nil {
		return fmt.Errorf("avr: leave the bootloader: %w", err)
	}
	return nil
}
