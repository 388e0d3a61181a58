package avr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Options configure a Client. The zero value works for optiboot at 115200
// on a unit that is already in its bootloader.
type Options struct {
	// Reset, if set, resets the unit into its bootloader: pulse the reset
	// line (or DTR through an auto-reset capacitor) and return. Sync calls
	// it at the start of every attempt, because optiboot gives up and starts
	// the application about one second after a reset. A Reset that had no
	// way to reset the unit (an adapter or a pseudo-terminal without modem
	// lines) returns an error matching bootloader.ErrNoReset: Sync then
	// carries on as without a hook, without waiting ResetDelay for a reset
	// that did not happen.
	Reset func(ctx context.Context) error
	// ResetDelay is how long Sync waits after Reset returns before it
	// speaks: an ATmega stays in reset for its start-up time after the
	// reset line rises (66 ms with the Uno's fuses), and bytes sent
	// meanwhile are lost. 0 means 100 ms; negative means no wait (for a
	// Reset hook that waits itself).
	ResetDelay time.Duration
	// SyncAttempts is how many times Sync resets the unit and tries to
	// sync before giving up. 0 means 5.
	SyncAttempts int
	// SyncWindow is how long Sync keeps sending GET_SYNC after one reset
	// before it resets again: longer than optiboot's deaf start (about
	// 440 ms with LED_START_FLASHES=3) plus a few answers, and at least a
	// second, as avrdude keeps trying. 0 means 1.2 s.
	SyncWindow time.Duration
	// SyncWait is how long one GET_SYNC waits for its answer before the
	// next is sent. 0 means 250 ms.
	SyncWait time.Duration
	// Timeout is how long any answer may take beyond its own wire time and
	// the unit's modelled work (page programming). 0 means 1 s.
	Timeout time.Duration
	// Baud is the line rate, used only to size deadlines. 0 means 115200.
	Baud int
}

// Page programming budgets for deadlines: the ATmega datasheets give 3.7
// to 4.5 ms for a page erase and as much again for a page write, and 3.3 ms
// per EEPROM byte; these allow twice that.
const (
	flashPageBudget  = 20 * time.Millisecond
	eepromByteBudget = 8 * time.Millisecond
)

// Sync draining: how long the line must stay quiet after a reset before
// GET_SYNC is sent, and the most time spent draining.
const (
	drainQuiet = 5 * time.Millisecond
	drainMost  = 100 * time.Millisecond
)

// Client speaks STK500v1 to optiboot over a Port. It is not safe for
// concurrent use.
type Client struct {
	conn *bootloader.Conn
	opts Options

	part         Part
	havePart     bool
	major, minor byte
	ext          int // extended address byte last sent, -1 unknown

	out []byte // command buffer, reused
	in  []byte // answer buffer, reused

	// blank holds the flash pages (by byte address) this client read as
	// all 0xFF and has not written since: WritePages skipped them, and
	// Verify takes that read as their read-back.
	blank   map[uint32]bool
	skipped int // pages WritePages did not send
}

// New returns a client talking over p. It sends nothing until called.
func New(p bootloader.Port, o Options) *Client {
	if o.SyncAttempts <= 0 {
		o.SyncAttempts = 5
	}
	if o.SyncWindow <= 0 {
		o.SyncWindow = 1200 * time.Millisecond
	}
	if o.SyncWait <= 0 {
		o.SyncWait = 250 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.ResetDelay == 0 {
		o.ResetDelay = 100 * time.Millisecond
	}
	if o.Baud <= 0 {
		o.Baud = 115200
	}
	return &Client{conn: bootloader.NewConn(p), opts: o, ext: -1}
}

// Part returns the part Identify found (or SetPart set), and whether there
// is one.
func (c *Client) Part() (Part, bool) { return c.part, c.havePart }

// SetPart tells the client which part it talks to, for hosts that know it
// without Identify. Writes and reads need a part.
func (c *Client) SetPart(p Part) {
	c.part, c.havePart = p, true
	c.ext = -1
}

// Version returns the bootloader version Identify read (optiboot 8.3 is 8, 3).
func (c *Client) Version() (major, minor byte) { return c.major, c.minor }

// wire returns a generous bound on the wire time of n bytes (twice 10 bits
// a byte at the configured rate).
func (c *Client) wire(n int) time.Duration {
	return time.Duration(int64(n) * 20 * int64(time.Second) / int64(c.opts.Baud))
}

// reset runs the Reset hook, if any, for sync attempt i, and waits
// ResetDelay for the part to come out of reset, unless the hook could not
// reset it (bootloader.ErrNoReset).
func (o Options) reset(ctx context.Context, i int) error {
	if o.Reset == nil {
		return nil
	}
	err := o.Reset(ctx)
	switch {
	case errors.Is(err, bootloader.ErrNoReset):
		return nil
	case err != nil:
		return fmt.Errorf("avr: reset for sync attempt %d: %w", i, err)
	}
	return bootloader.Sleep(ctx, o.ResetDelay)
}

// Sync gets the bootloader's attention as avrdude does: for each attempt it
// calls the Reset hook and waits ResetDelay, drains stale bytes, then keeps
// sending GET_SYNC, one every SyncWait, for SyncWindow, until STK_INSYNC
// STK_OK arrives, skipping whatever else arrives (an application's console
// output). Only then does it reset again.
//
// The window matters: optiboot built with LED_START_FLASHES=3 (Arduino's
// stock build for the Uno) flashes its LED for about 375 ms after a reset
// before it reads the UART (optiboot.c, flash_led), so a host that resets
// again after a few hundred milliseconds never reaches it. Bytes sent
// meanwhile wait in the USART's two-byte receive buffer and its shift
// register, and the rest are lost (ATmega328P datasheet, "Receiver Error
// Flags", DOR), so the unit may hold half of a later GET_SYNC when it
// answers the first: when more than one GET_SYNC went out, Sync realigns
// the command framing with lone terminators (see realign).
//
// It returns a *bootloader.TimeoutError when no attempt succeeds.
func (c *Client) Sync(ctx context.Context) error {
	// The application may run between resets, and optiboot 8 lets it
	// write flash (do_spm): what the client read blank may no longer be.
	clear(c.blank)
	var seen, sent int
	for i := 1; i <= c.opts.SyncAttempts; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.opts.reset(ctx, i); err != nil {
			return err
		}
		if _, err := c.conn.Discard(ctx, drainQuiet, drainMost); err != nil {
			return fmt.Errorf("avr: drain before sync: %w", err)
		}
		end := time.Now().Add(c.opts.SyncWindow)
		pairs := 0
		for pairs == 0 || time.Now().Before(end) {
			if err := c.conn.Write([]byte{CmdGetSync, SyncCRCEOP}); err != nil {
				return fmt.Errorf("avr: send GET_SYNC: %w", err)
			}
			pairs++
			sent++
			n, err := c.awaitSync(ctx, c.opts.SyncWait)
			seen += n
			if err == nil {
				if pairs > 1 {
					err = c.realign(ctx)
				}
				if err == nil {
					c.ext = -1 // a reset clears RAMPZ; send the extended address again
					return nil
				}
			}
			var te *bootloader.TimeoutError
			if !errors.As(err, &te) {
				return err
			}
		}
	}
	op := fmt.Sprintf("STK_INSYNC STK_OK after GET_SYNC (%d sent over %d resets, each followed by %v of GET_SYNCs)", sent, c.opts.SyncAttempts, c.opts.SyncWindow)
	if c.opts.Reset == nil {
		op += " without a reset hook (optiboot listens only for about 1 s after an external reset)"
	}
	return &bootloader.TimeoutError{Op: op, After: time.Duration(c.opts.SyncAttempts) * (c.opts.SyncWindow + c.opts.SyncWait), Got: seen}
}

// realignWait is how long realign waits for the answer to a lone
// terminator that completes a pending GET_SYNC.
const realignWait = 100 * time.Millisecond

// realign restores the command framing after an answered GET_SYNC when
// several were sent: the unit may have kept the first byte (0x30) of a
// later GET_SYNC whose terminator was lost, and would take the next
// command's first byte as that terminator, fail, and start the application.
// A lone 0x20 completes such a pending GET_SYNC, which answers STK_INSYNC
// STK_OK; with nothing pending, optiboot takes the 0x20 as an unknown
// command and answers only after a second 0x20. Either way the unit ends
// aligned on a command boundary once one STK_INSYNC STK_OK comes back.
func (c *Client) realign(ctx context.Context) error {
	// Answers to GET_SYNCs the unit had buffered come right after the
	// first; let them pass.
	if _, err := c.conn.Discard(ctx, 4*drainQuiet, 4*drainMost); err != nil {
		return fmt.Errorf("avr: drain after sync: %w", err)
	}
	for range 2 {
		if err := c.conn.Write([]byte{SyncCRCEOP}); err != nil {
			return fmt.Errorf("avr: send a terminator to realign: %w", err)
		}
		_, err := c.awaitSync(ctx, realignWait+c.wire(4))
		var te *bootloader.TimeoutError
		if err == nil || !errors.As(err, &te) {
			return err
		}
	}
	return &bootloader.TimeoutError{Op: "STK_INSYNC STK_OK after two lone terminators (realigning after GET_SYNC)", After: 2 * realignWait}
}

// awaitSync reads until the pair STK_INSYNC STK_OK arrives, within wait. It returns how many bytes it read.
func (c *Client) awaitSync(ctx context.Context, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	var buf [64]byte
	total := 0
	prev := -1
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return total, &bootloader.TimeoutError{Op: "answer to GET_SYNC", After: wait, Got: total}
		}
		n, err := c.conn.ReadSome(ctx, buf[:], left, "answer to GET_SYNC")
		if err != nil {
			return total, err
		}
		total += n
		for _, b := range buf[:n] {
			if prev == RespInSync && b == RespOK {
				return total, nil
			}
			prev = int(b)
		}
	}
}

// exchange sends cmd (terminator included) and reads an answer carrying n
// data bytes, allowing work for the unit's own processing time.
func (c *Client) exchange(ctx context.Context, cmd []byte, n int, work time.Duration) ([]byte, error) {
	if err := c.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("avr: send %s: %w", CmdName(cmd[0]), err)
	}
	budget := c.opts.Timeout + c.wire(len(cmd)+n+2) + work
	if cap(c.in) < n+2 {
		c.in = make([]byte, n+2)
	}
	in := c.in[:n+2]
	if err := c.conn.ReadFull(ctx, in[:1], budget, "STK_INSYNC after "+CmdName(cmd[0])); err != nil {
		return nil, err
	}
	if in[0] != RespInSync {
		return DecodeReply(cmd[0], in[:1], n)
	}
	if err := c.conn.ReadFull(ctx, in[1:], budget, fmt.Sprintf("%d-byte answer to %s", n+1, CmdName(cmd[0]))); err != nil {
		return nil, err
	}
	return DecodeReply(cmd[0], in, n)
}

// simple sends a command without data and expects an empty answer.
func (c *Client) simple(ctx context.Context, cmd ...byte) error {
	_, err := c.exchange(ctx, append(cmd, SyncCRCEOP), 0, 0)
	return err
}

// GetParameter reads a parameter (ParamSWMajor, ParamSWMinor, ...).
func (c *Client) GetParameter(ctx context.Context, param byte) (byte, error) {
	d, err := c.exchange(ctx, []byte{CmdGetParameter, param, SyncCRCEOP}, 1, 0)
	if err != nil {
		return 0, err
	}
	return d[0], nil
}

// SetDevice sends the device parameters as avrdude does for p. optiboot
// ignores them; other STK500v1 firmwares need them.
func (c *Client) SetDevice(ctx context.Context, p Part) error {
	b := make([]byte, 0, 22)
	b = append(b, CmdSetDevice,
		p.DevCode, 0, // device code, revision
		0, 1, // serial and parallel programming; full parallel interface
		1, 1, // polling; self-timed programming
		1, 3, // lock bytes, fuse bytes
		p.Readback, p.Readback, p.Readback, p.Readback, // flash and EEPROM polling values
		byte(p.PageSize>>8), byte(p.PageSize),
		byte(p.EEPROMSize>>8), byte(p.EEPROMSize),
		byte(p.FlashSize>>24), byte(p.FlashSize>>16), byte(p.FlashSize>>8), byte(p.FlashSize),
		SyncCRCEOP)
	_, err := c.exchange(ctx, b, 0, 0)
	return err
}

// SetDeviceExt sends the extended device parameters as avrdude does: four
// of them to firmware newer than 1.10 (optiboot reads exactly four), three
// to older ones.
func (c *Client) SetDeviceExt(ctx context.Context, p Part) error {
	n := 3
	if c.major > 1 || (c.major == 1 && c.minor > 10) {
		n = 4
	}
	b := []byte{CmdSetDeviceExt, byte(n + 1), byte(p.EEPROMPage), p.Pagel, p.BS2}
	if n == 4 {
		b = append(b, 1) // the reset pin doubles as I/O (avrdude's "reset = io")
	}
	_, err := c.exchange(ctx, append(b, SyncCRCEOP), 0, 0)
	return err
}

// EnterProgMode sends ENTER_PROGMODE (a no-op for optiboot).
func (c *Client) EnterProgMode(ctx context.Context) error { return c.simple(ctx, CmdEnterProgMode) }

// LeaveProgMode sends LEAVE_PROGMODE: optiboot answers, then lets its
// watchdog reset the unit into the application about 16 ms later.
func (c *Client) LeaveProgMode(ctx context.Context) error { return c.simple(ctx, CmdLeaveProgMode) }

// ReadSignature reads the three signature bytes.
func (c *Client) ReadSignature(ctx context.Context) ([3]byte, error) {
	d, err := c.exchange(ctx, []byte{CmdReadSign, SyncCRCEOP}, 3, 0)
	if err != nil {
		return [3]byte{}, err
	}
	return [3]byte{d[0], d[1], d[2]}, nil
}

// Universal sends a 4-byte AVR serial programming instruction and returns
// the unit's answer byte (optiboot answers 0).
func (c *Client) Universal(ctx context.Context, instr [4]byte) (byte, error) {
	d, err := c.exchange(ctx, []byte{CmdUniversal, instr[0], instr[1], instr[2], instr[3], SyncCRCEOP}, 1, 0)
	if err != nil {
		return 0, err
	}
	return d[0], nil
}

// LoadAddress sets the word address (byte address / 2) the next PROG_PAGE
// or READ_PAGE of flash starts at. On parts with extended addressing it
// first sends Load Extended Address when bits 16 and up change.
func (c *Client) LoadAddress(ctx context.Context, word uint32) error {
	return c.loadAddress(ctx, word, true)
}

func (c *Client) loadAddress(ctx context.Context, word uint32, flash bool) error {
	ext := flash && c.havePart && c.part.ExtendedAddressing()
	if word > 0xFFFF && !ext {
		return fmt.Errorf("avr: word address 0x%X needs extended addressing, which %s does not have; call Identify first", word, c.partName())
	}
	if ext && int(word>>16) != c.ext {
		if _, err := c.Universal(ctx, [4]byte{OpLoadExtAddr, 0, byte(word >> 16), 0}); err != nil {
			return err
		}
		c.ext = int(word >> 16)
	}
	_, err := c.exchange(ctx, []byte{CmdLoadAddress, byte(word), byte(word >> 8), SyncCRCEOP}, 0, 0)
	return err
}

func (c *Client) partName() string {
	if c.havePart {
		return c.part.Name
	}
	return "an unidentified part"
}

// ProgPage writes data to mem at the loaded address. For flash optiboot
// erases the page and writes it; data should be one whole page.
func (c *Client) ProgPage(ctx context.Context, mem Memory, data []byte) error {
	if mem == Flash {
		clear(c.blank) // the address is the unit's: any page may change
	}
	return c.progPage(ctx, mem, data)
}

func (c *Client) progPage(ctx context.Context, mem Memory, data []byte) error {
	limit := 256
	if c.havePart {
		limit = c.part.MaxPageLen()
	}
	if len(data) == 0 || len(data) > limit {
		return fmt.Errorf("avr: PROG_PAGE of %d bytes; send 1 to %d", len(data), limit)
	}
	if cap(c.out) < len(data)+5 {
		c.out = make([]byte, 0, len(data)+5)
	}
	b := append(c.out[:0], CmdProgPage, byte(len(data)>>8), byte(len(data)), byte(mem))
	b = append(b, data...)
	b = append(b, SyncCRCEOP)
	work := flashPageBudget
	if mem == EEPROM {
		work = time.Duration(len(data)) * eepromByteBudget
	}
	_, err := c.exchange(ctx, b, 0, work)
	return err
}

// ReadPage reads n bytes of mem from the loaded address.
func (c *Client) ReadPage(ctx context.Context, mem Memory, n int) ([]byte, error) {
	limit := 256
	if c.havePart {
		limit = c.part.MaxPageLen()
	}
	if n <= 0 || n > limit {
		return nil, fmt.Errorf("avr: READ_PAGE of %d bytes; ask for 1 to %d", n, limit)
	}
	return c.exchange(ctx, []byte{CmdReadPage, byte(n >> 8), byte(n), byte(mem), SyncCRCEOP}, n, 0)
}

// Identify reads the bootloader version and the signature, looks the part
// up, and sends the device parameters and ENTER_PROGMODE as avrdude does,
// so that the client is ready to write. It returns a *UnknownPartError for
// a signature not in the table.
//
// The signature names the part, not the unit: an ATmega has no serial
// number the bootloader can read, so the unit's identity must come from a
// barcode or a recipe step.
func (c *Client) Identify(ctx context.Context) (Part, error) {
	var err error
	if c.major, err = c.GetParameter(ctx, ParamSWMajor); err != nil {
		return Part{}, err
	}
	if c.minor, err = c.GetParameter(ctx, ParamSWMinor); err != nil {
		return Part{}, err
	}
	sig, err := c.ReadSignature(ctx)
	if err != nil {
		return Part{}, err
	}
	p, ok := LookupSignature(sig)
	if !ok {
		return Part{}, &UnknownPartError{Signature: sig}
	}
	if err := c.SetDevice(ctx, p); err != nil {
		return Part{}, err
	}
	if err := c.SetDeviceExt(ctx, p); err != nil {
		return Part{}, err
	}
	if err := c.EnterProgMode(ctx); err != nil {
		return Part{}, err
	}
	c.SetPart(p)
	return p, nil
}

func (c *Client) needPart(op string) error {
	if !c.havePart {
		return fmt.Errorf("avr: %s: the part is unknown; call Identify (or SetPart) first", op)
	}
	return nil
}

// WritePages writes data to flash from byte address addr, which must start
// a page, one PROG_PAGE per page, padding the last page with 0xFF. There is
// no separate erase: optiboot erases each page it writes (optiboot.c,
// STK_PROG_PAGE: __boot_page_erase_short then __boot_page_write_short), and
// pages outside data keep their contents. So a page all 0xFF must still be
// written unless the unit's page is 0xFF already: WritePages reads such
// pages first (READ_PAGE carries the same bytes as PROG_PAGE but no erase
// and write, about 8.5 ms on an ATmega) and skips those that are blank;
// that read is the page's read-back for Verify. It looks at each run of
// pages the image wants blank from the top down (see probeRun). Writes
// that reach into optiboot's own section at the top of flash are refused:
// its lock bits make the chip ignore them.
func (c *Client) WritePages(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	if err := c.needPart("write flash"); err != nil {
		return err
	}
	ps := c.part.PageSize
	if addr%uint32(ps) != 0 {
		return fmt.Errorf("avr: write flash at 0x%05X: not the start of a %d-byte page; align the image", addr, ps)
	}
	padded := (len(data) + ps - 1) / ps * ps
	if end := int64(addr) + int64(padded); end > int64(c.part.BootStart()) {
		return fmt.Errorf("avr: write flash 0x%05X-0x%05X: reaches optiboot's section at 0x%05X (%s), which the lock bits protect; the application may use at most %d bytes",
			addr, end-1, c.part.BootStart(), c.part.Name, c.part.BootStart())
	}
	page := make([]byte, ps)
	total := int64(len(data))
	// read holds what this call knows of the pages the image wants
	// blank: true for a page it read and found blank, false for one it
	// read and found holding something or decided to write unread.
	read := map[uint32]bool{}
	for off := 0; off < len(data); off += ps {
		n := copy(page, data[off:])
		for i := n; i < ps; i++ {
			page[i] = 0xFF
		}
		a := addr + uint32(off)
		if allFF(page) {
			blank, ok := read[a]
			if !ok {
				var err error
				if err = c.probeRun(ctx, a, data[off:], read); err != nil {
					return fmt.Errorf("avr: read flash from page 0x%05X before writing it: %w", a, err)
				}
				blank = read[a]
			}
			if blank {
				c.skipped++
				if progress != nil {
					progress(min(int64(off+ps), total), total)
				}
				continue
			}
		}
		delete(c.blank, a)
		if err := c.LoadAddress(ctx, a/2); err != nil {
			return fmt.Errorf("avr: write flash page 0x%05X: %w", a, err)
		}
		if err := c.progPage(ctx, Flash, page); err != nil {
			return fmt.Errorf("avr: write flash page 0x%05X: %w", a, err)
		}
		if progress != nil {
			progress(min(int64(off+ps), total), total)
		}
	}
	return nil
}

// ReadFlash reads n bytes of flash from byte address addr.
func (c *Client) ReadFlash(ctx context.Context, addr uint32, n int, progress bootloader.Progress) ([]byte, error) {
	if err := c.needPart("read flash"); err != nil {
		return nil, err
	}
	if int64(addr)+int64(n) > int64(c.part.FlashSize) {
		return nil, fmt.Errorf("avr: read flash 0x%05X+%d: beyond the %d bytes of %s", addr, n, c.part.FlashSize, c.part.Name)
	}
	out := make([]byte, 0, n)
	err := c.read(ctx, Flash, addr, n, func(a uint32, b []byte) error {
		out = append(out, b...)
		if progress != nil {
			progress(int64(len(out)), int64(n))
		}
		return nil
	})
	return out, err
}

// Verify reads flash back from byte address addr and compares it with data.
// It returns a *VerifyError at the first differing byte.
func (c *Client) Verify(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	if err := c.needPart("verify flash"); err != nil {
		return err
	}
	if int64(addr)+int64(len(data)) > int64(c.part.FlashSize) {
		return fmt.Errorf("avr: verify flash 0x%05X+%d: beyond the %d bytes of %s", addr, len(data), c.part.FlashSize, c.part.Name)
	}
	if len(c.blank) == 0 {
		return c.verify(ctx, Flash, addr, data, progress)
	}
	// Pages WritePages found blank and left alone were read back then;
	// verify the rest in runs between them.
	ps := c.part.PageSize
	total := int64(len(data))
	run := -1 // start offset of the pending run, -1 none
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		base := int64(run)
		err := c.verify(ctx, Flash, addr+uint32(run), data[run:end], func(done, _ int64) {
			if progress != nil {
				progress(base+done, total)
			}
		})
		run = -1
		return err
	}
	for off := 0; off < len(data); off += ps {
		a := addr + uint32(off)
		end := min(off+ps, len(data))
		if a%uint32(ps) == 0 && c.blank[a] && allFF(data[off:end]) {
			if err := flush(off); err != nil {
				return err
			}
			if progress != nil {
				progress(int64(end), total)
			}
			continue
		}
		if run < 0 {
			run = off
		}
	}
	return flush(len(data))
}

// probeRun reads the pages of the run the image wants blank that starts
// at page address a (rest is the image from a on), and notes in read which
// are blank. Flash fills from the bottom: an application image is one
// block from address 0 (avr-gcc lays out the vectors, the code and the
// initialised data from there), so on a unit whatever is not blank lies
// below whatever is, up to optiboot. probeRun therefore reads the run from
// its top down, a flash read (flashReadBlock) at a time: pages found blank
// need no write, that read being their read-back; at the first read that
// finds a page holding something, the pages of the run below it are taken
// to hold the old image too and are written without a look. Where that
// guess is wrong a blank page is written with 0xFF: the cost of a write,
// never a wrong result, as Verify reads every written page back.
func (c *Client) probeRun(ctx context.Context, a uint32, rest []byte, read map[uint32]bool) error {
	ps := c.part.PageSize
	n := 0
	for n < len(rest) && allFF(rest[n:min(n+ps, len(rest))]) {
		n += ps
	}
	hi := a + uint32(n)
	for hi > a {
		lo := max(a, (hi-1)/flashReadBlock*flashReadBlock)
		held := false
		err := c.read(ctx, Flash, lo, int(hi-lo), func(at uint32, b []byte) error {
			for p := 0; p < len(b); p += ps {
				pa := at + uint32(p)
				blank := allFF(b[p:min(p+ps, len(b))])
				read[pa] = blank
				if blank {
					if c.blank == nil {
						c.blank = map[uint32]bool{}
					}
					c.blank[pa] = true
				} else {
					held = true
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		hi = lo
		if held {
			break
		}
	}
	for pa := a; pa < hi; pa += uint32(ps) {
		read[pa] = false // below the old image's top: written unread
	}
	return nil
}

// SkippedPages returns how many pages WritePages did not send because the
// unit's page was already all 0xFF.
func (c *Client) SkippedPages() int { return c.skipped }

// allFF reports whether every byte of b is 0xFF (erased flash).
func allFF(b []byte) bool {
	for _, v := range b {
		if v != 0xFF {
			return false
		}
	}
	return true
}

func (c *Client) verify(ctx context.Context, mem Memory, addr uint32, data []byte, progress bootloader.Progress) error {
	done := 0
	return c.read(ctx, mem, addr, len(data), func(a uint32, got []byte) error {
		want := data[a-addr : int(a-addr)+len(got)]
		if !bytes.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					return &VerifyError{Mem: mem, Addr: a + uint32(i), Want: want[i], Got: got[i]}
				}
			}
		}
		done += len(got)
		if progress != nil {
			progress(int64(done), int64(len(data)))
		}
		return nil
	})
}

// flashReadBlock is the most flash one READ_PAGE asks for: 256 bytes, two
// pages of an ATmega328P. optiboot streams a flash read straight from
// flash, with no page buffer, for as many bytes as the length says
// (optiboot.c, STK_READ_PAGE: do putch(pgm_read_byte_near(address++))
// while (--length)); on parts with pages of up to 255 bytes its length is
// a uint8_t, so 256 is the most it can be asked for (the length 0x0100
// reads 256 bytes), on larger-page parts a uint16_t. The differential test
// against real optiboot in simavr holds the model's 256-byte read to it
// (sim/avrsim, TestDifferentialOptiboot). Each read saves a LOAD_ADDRESS, a
// READ_PAGE header and two turnarounds per 256 bytes over page-sized
// reads: about a tenth of a verify's time on the link at 128-byte pages.
const flashReadBlock = 256

// read reads n bytes of mem from byte address addr, handing each chunk to
// f with its address: flash in reads that each stay inside one 256-byte
// block (flashReadBlock; so none crosses a 64 KiB or 128 KiB boundary),
// EEPROM a page at a time. Addresses are word addresses on the wire, so an
// odd start reads one byte more and drops it.
func (c *Client) read(ctx context.Context, mem Memory, addr uint32, n int, f func(a uint32, b []byte) error) error {
	chunk := c.part.PageSize
	if mem == Flash {
		chunk = max(chunk, min(flashReadBlock, c.part.MaxPageLen()))
	}
	a := addr &^ 1
	end := addr + uint32(n)
	for a < end {
		m := min(chunk-int(a%uint32(chunk)), int(end-a))
		if err := c.loadAddress(ctx, a/2, mem == Flash); err != nil {
			return fmt.Errorf("avr: read %s at 0x%05X: %w", mem, a, err)
		}
		b, err := c.ReadPage(ctx, mem, m)
		if err != nil {
			return fmt.Errorf("avr: read %s at 0x%05X: %w", mem, a, err)
		}
		if mem == Flash && c.part.ExtendedAddressing() && (a+uint32(m))>>17 != a>>17 {
			// optiboot reads with ELPM Z+, which carries into RAMPZ: after
			// a read that reaches a 128 KiB boundary the unit's extended
			// address may have moved on. Send it again next time.
			c.ext = -1
		}
		if a < addr {
			b, a = b[addr-a:], addr
		}
		if err := f(a, b); err != nil {
			return err
		}
		a += uint32(len(b))
	}
	return nil
}

// WriteEEPROM writes data to EEPROM from byte address addr, which must be
// even (the address goes on the wire as a word address, as avrdude sends
// it). Only optiboot builds with EEPROM support can: the Uno's stock build
// answers STK_INSYNC and then hangs until its watchdog starts the
// application, which shows here as a timeout, or as a wrong terminator when
// the application's first output arrives first.
func (c *Client) WriteEEPROM(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	if err := c.needPart("write EEPROM"); err != nil {
		return err
	}
	if addr%2 != 0 {
		return fmt.Errorf("avr: write EEPROM at 0x%03X: the address must be even", addr)
	}
	if c.major != 0 && c.major < 5 {
		// optiboot 4.x (Arduino 1.8's and Debian's optiboot.c) reads the
		// memory type of PROG_PAGE and drops it: the data would be
		// programmed into flash at the same address.
		return fmt.Errorf("avr: write EEPROM: optiboot %d.%d ignores the memory type and would write these bytes into flash; write the EEPROM with an ISP programmer, or update the bootloader", c.major, c.minor)
	}
	if int64(addr)+int64(len(data)) > int64(c.part.EEPROMSize) {
		return fmt.Errorf("avr: write EEPROM 0x%03X+%d: beyond the %d bytes of %s", addr, len(data), c.part.EEPROMSize, c.part.Name)
	}
	chunk := c.part.PageSize
	for off := 0; off < len(data); off += chunk {
		b := data[off:min(off+chunk, len(data))]
		a := addr + uint32(off)
		if err := c.loadAddress(ctx, a/2, false); err != nil {
			return fmt.Errorf("avr: write EEPROM at 0x%03X: %w", a, err)
		}
		if err := c.ProgPage(ctx, EEPROM, b); err != nil {
			var te *bootloader.TimeoutError
			var pe *ProtocolError
			if errors.As(err, &te) || errors.As(err, &pe) && pe.Err == ErrBadTerminator {
				return fmt.Errorf("avr: write EEPROM at 0x%03X: %w (optiboot built without EEPROM support answers STK_INSYNC, then hangs until its watchdog starts the application: write the EEPROM with an ISP programmer instead)", a, err)
			}
			return fmt.Errorf("avr: write EEPROM at 0x%03X: %w", a, err)
		}
		if progress != nil {
			progress(int64(off+len(b)), int64(len(data)))
		}
	}
	return nil
}

// ReadEEPROM reads n bytes of EEPROM from byte address addr. An optiboot
// built without EEPROM support answers with flash bytes instead, which the
// protocol cannot tell apart.
func (c *Client) ReadEEPROM(ctx context.Context, addr uint32, n int) ([]byte, error) {
	if err := c.needPart("read EEPROM"); err != nil {
		return nil, err
	}
	if int64(addr)+int64(n) > int64(c.part.EEPROMSize) {
		return nil, fmt.Errorf("avr: read EEPROM 0x%03X+%d: beyond the %d bytes of %s", addr, n, c.part.EEPROMSize, c.part.Name)
	}
	out := make([]byte, 0, n)
	err := c.read(ctx, EEPROM, addr, n, func(_ uint32, b []byte) error {
		out = append(out, b...)
		return nil
	})
	return out, err
}

// Leave ends the session: LEAVE_PROGMODE, after which optiboot starts the
// application through a watchdog reset.
func (c *Client) Leave(ctx context.Context) error {
	if err := c.LeaveProgMode(ctx); err != nil {
		return fmt.Errorf("avr: leave the bootloader: %w", err)
	}
	return nil
}
