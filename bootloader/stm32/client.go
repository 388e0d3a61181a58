package stm32

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Options configure a Client. The zero value suits a unit at 115200 8E1
// that is already in its bootloader.
type Options struct {
	// Timeout is how long any ACK or answer may take beyond its wire time
	// and the unit's modelled work. 0 means 1 s.
	Timeout time.Duration
	// EraseTimeout bounds a mass erase and READOUT_UNPROTECT (which mass
	// erases). 0 means the part's datasheet maximum plus Timeout once
	// Identify has found the part, and 40 s before: a full STM32F4 mass
	// erase takes 10 to 20 s on silicon, up to 32 s at the slowest
	// parallelism. Page and sector erases get the part's per-unit maximum
	// (5 s a unit for an unknown part). A unit that answers BUSY (0x76)
	// gets Timeout more after each BUSY.
	EraseTimeout time.Duration
	// SyncAttempts is how many times Sync tries before giving up. 0 means 5.
	SyncAttempts int
	// SyncWait is how long one sync attempt waits for the first answer
	// byte. 0 means 200 ms.
	SyncWait time.Duration
	// SyncQuiet is how long the line must stay quiet after an ACK to the
	// sync byte for it to count: an application printing text that holds
	// 0x79 ('y') must not pass for a bootloader. 0 means 20 ms.
	SyncQuiet time.Duration
	// Reset, if set, puts the unit into its bootloader (the unit's entry
	// sequence: strap BOOT0, pulse reset). Sync calls it before each
	// attempt after the first. A Reset that has no way to reset the unit
	// (no lines wired to it) returns an error matching
	// bootloader.ErrNoReset: Sync then goes on without waiting ResetDelay.
	Reset func(ctx context.Context) error
	// ResetDelay is how long to wait after Reset returns, and after a
	// command that resets the unit, before speaking: the ROM needs a moment
	// to start. 0 means 20 ms; negative means none.
	ResetDelay time.Duration
	// Baud and BitsPerByte describe the link, to size deadlines. 0 means
	// 115200 and 11 (8E1).
	Baud        int
	BitsPerByte int
	// Log, if set, receives debug messages (sync decisions, BUSY answers).
	Log func(msg string)
}

// Sync draining: the line must stay quiet this long before the sync byte
// goes out, for at most drainMost.
const (
	drainQuiet = 5 * time.Millisecond
	drainMost  = 100 * time.Millisecond
)

// Budgets for a unit whose part is unknown (before Identify), as
// stm32flash allows: 5 s a page, 40 s for a mass erase.
const (
	unknownEraseBudget = 5 * time.Second
	defaultMassErase   = 40 * time.Second
)

// Client speaks AN3155 to an STM32 system bootloader over a Port. It is
// not safe for concurrent use.
type Client struct {
	conn *bootloader.Conn
	opts Options

	haveGet  bool
	version  byte
	cmds     []byte
	part     Part
	havePart bool

	out []byte // command buffer, reused

	// blank holds the flash ranges this client erased and has not
	// written since, sorted and disjoint: only there is a block all 0xFF
	// provably equal to flash already, so WriteMemory skips it.
	blank []span
	// held is flash whose content GET_CHECKSUM showed equal to what
	// EraseChanged was told it should hold: WriteMemory skips blocks
	// that match it.
	held []held
	// skipped counts the blocks WriteMemory did not send.
	skipped int
}

// Info is what Identify learns about a unit.
type Info struct {
	PID               uint16
	Part              Part
	BootloaderVersion byte   // 0x22 is v2.2
	Commands          []byte // command codes GET listed
	UID               [12]byte
	// NoUID is set when the ROM gave no unique ID: the part has none the
	// bootloader can read, or its ROM NACKs every READ of it (AN2606: some
	// F2/F4, L4 and G silicon refuses READs of the device-information
	// block). NoUIDReason says which. The unit's identity must then come
	// from elsewhere: its barcode label or its application's console.
	NoUID       bool
	NoUIDReason string
	// FlashSize is what the unit's flash-size register says, in bytes; 0
	// when it could not be read. It can be less than Part's flash: a part
	// line shares one PID.
	FlashSize int
}

// Serial returns the unique ID as 24 upper-case hex digits, bytes in
// address order: the unit's serial number. It is empty when the ROM gave
// no ID (NoUID).
func (i Info) Serial() string {
	if i.NoUID {
		return ""
	}
	return FormatUID(i.UID)
}

func (i Info) String() string {
	if i.NoUID {
		return fmt.Sprintf("%s, bootloader v%s, no UID from the ROM (%s)", i.Part, FormatVersion(i.BootloaderVersion), i.NoUIDReason)
	}
	return fmt.Sprintf("%s, bootloader v%s, UID %s", i.Part, FormatVersion(i.BootloaderVersion), i.Serial())
}

// New returns a client talking over p. It sends nothing until called.
func New(p bootloader.Port, o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.SyncAttempts <= 0 {
		o.SyncAttempts = 5
	}
	if o.SyncWait <= 0 {
		o.SyncWait = 200 * time.Millisecond
	}
	if o.SyncQuiet <= 0 {
		o.SyncQuiet = 20 * time.Millisecond
	}
	if o.ResetDelay == 0 {
		o.ResetDelay = 20 * time.Millisecond
	}
	if o.Baud <= 0 {
		o.Baud = 115200
	}
	if o.BitsPerByte <= 0 {
		o.BitsPerByte = 11
	}
	return &Client{conn: bootloader.NewConn(p), opts: o}
}

// Part returns the part Identify found (or SetPart set), and whether there
// is one.
func (c *Client) Part() (Part, bool) { return c.part, c.havePart }

// SetPart tells the client which part it talks to, for hosts that know it
// without Identify. It sizes erase deadlines.
func (c *Client) SetPart(p Part) { c.part, c.havePart = p, true }

// Commands returns the bootloader version and command codes GET listed,
// and whether GET has run.
func (c *Client) Commands() (version byte, cmds []byte, ok bool) {
	return c.version, append([]byte(nil), c.cmds...), c.haveGet
}

// Offers reports whether GET listed cmd. It is false before GET has run.
func (c *Client) Offers(cmd byte) bool { return c.haveGet && slices.Contains(c.cmds, cmd) }

func (c *Client) logf(format string, args ...any) {
	if c.opts.Log != nil {
		c.opts.Log(fmt.Sprintf(format, args...))
	}
}

// wire returns a generous bound on the wire time of n bytes: twice their
// time at the configured rate.
func (c *Client) wire(n int) time.Duration {
	return time.Duration(int64(n) * 2 * int64(c.opts.BitsPerByte) * int64(time.Second) / int64(c.opts.Baud))
}

// portError wraps an error of the port itself: closed, unplugged.
func portError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("stm32: %s: the port closed (unit unplugged?): %w", what, err)
	}
	return fmt.Errorf("stm32: %s: %w", what, err)
}

// send writes b for cmd.
func (c *Client) send(cmd byte, addr uint32, what string, b []byte) error {
	if err := c.conn.Write(b); err != nil {
		return portError(fmt.Sprintf("%s: send the %s", opName(cmd, addr), what), err)
	}
	return nil
}

// readFull reads len(b) bytes of cmd's answer within budget.
func (c *Client) readFull(ctx context.Context, cmd byte, addr uint32, b []byte, budget time.Duration, what string) error {
	op := fmt.Sprintf("%s of %s", what, opName(cmd, addr))
	err := c.conn.ReadFull(ctx, b, budget, op)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var te *bootloader.TimeoutError
	if errors.As(err, &te) {
		return te
	}
	return portError(op, err)
}

// ack waits for the ACK of cmd at stage within budget. BUSY answers extend
// the deadline to at least Timeout from the last one.
func (c *Client) ack(ctx context.Context, cmd byte, stage string, addr uint32, budget time.Duration) error {
	start := time.Now()
	deadline := start.Add(budget)
	op := fmt.Sprintf("ACK after the %s of %s", stage, opName(cmd, addr))
	var b [1]byte
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return &bootloader.TimeoutError{Op: op, After: time.Since(start).Round(time.Millisecond)}
		}
		err := c.conn.ReadFull(ctx, b[:], left, op)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				return &bootloader.TimeoutError{Op: op, After: time.Since(start).Round(time.Millisecond)}
			}
			return portError("wait for the "+op, err)
		}
		if _, err := DecodeAck(cmd, stage, addr, b[:]); err != ErrIncomplete {
			return err
		}
		c.logf("%s: BUSY while waiting for the %s ACK", opName(cmd, addr), stage)
		if ext := time.Now().Add(c.opts.Timeout); ext.After(deadline) {
			deadline = ext
		}
	}
}

// command sends cmd and its complement and waits for the ACK.
func (c *Client) command(ctx context.Context, cmd byte, addr uint32) error {
	if err := c.send(cmd, addr, "command", AppendCommand(c.out[:0], cmd)); err != nil {
		return err
	}
	return c.ack(ctx, cmd, StageCommand, addr, c.opts.Timeout+c.wire(3))
}

// Sync gets the bootloader's attention. Each attempt drains the line, sends
// 0x7F and waits for the answer; before each attempt after the first it
// calls the Reset hook. An ACK means the ROM measured the rate and is
// listening. A NACK means it was synced already and took the 0x7F as a
// command with a wrong complement (as after an earlier session): synced
// too. Silence may mean the same with the 0x7F taken as the first byte of a
// command: a second 0x7F completes the pair and draws the NACK. The answer
// counts only if the line then stays quiet (Options.SyncQuiet): an
// application printing text is not a bootloader.
func (c *Client) Sync(ctx context.Context) error {
	var last error
	for i := range c.opts.SyncAttempts {
		if i > 0 && c.opts.Reset != nil {
			c.logf("sync attempt %d: resetting the unit into its bootloader", i+1)
			err := c.opts.Reset(ctx)
			switch {
			case errors.Is(err, bootloader.ErrNoReset):
			case err != nil:
				return fmt.Errorf("stm32: sync: reset hook: %w", err)
			default:
				if err := bootloader.Sleep(ctx, c.opts.ResetDelay); err != nil {
					return err
				}
			}
		}
		err := c.syncOnce(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var te *bootloader.TimeoutError
		var pe *ProtocolError
		if !errors.As(err, &te) && !errors.As(err, &pe) {
			return err // the port failed: retrying will not help
		}
		c.logf("sync attempt %d: %v", i+1, err)
		last = err
	}
	hint := ""
	if c.opts.Reset == nil {
		hint = " without a reset hook (a unit running its application never answers: set Options.Reset to the unit's entry sequence)"
	}
	return fmt.Errorf("stm32: no sync after %d attempts%s; check that BOOT0 is high at reset, TX and RX are crossed, and the port is 8E1: %w",
		c.opts.SyncAttempts, hint, last)
}

func (c *Client) syncOnce(ctx context.Context) error {
	if _, err := c.conn.Discard(ctx, drainQuiet, drainMost); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return portError("sync: drain the line", err)
	}
	if err := c.send(SyncByte, 0, "sync byte", []byte{SyncByte}); err != nil {
		return err
	}
	got, err := c.syncAnswer(ctx)
	if err != nil {
		return err
	}
	if len(got) == 0 {
		// A synced bootloader took the 0x7F as the first byte of a
		// command and waits for the complement: complete the pair.
		if err := c.send(SyncByte, 0, "second sync byte", []byte{SyncByte}); err != nil {
			return err
		}
		if got, err = c.syncAnswer(ctx); err != nil {
			return err
		}
		if len(got) == 0 {
			return &bootloader.TimeoutError{Op: "answer to the sync byte 0x7F", After: 2 * c.opts.SyncWait}
		}
		if ans, ok := syncVerdict(got); ok {
			c.logf("sync: already synced: the pair 7F 7F was answered %s", answerName(ans))
			return nil
		}
		return &ProtocolError{Cmd: SyncByte, Msg: fmt.Sprintf("got % X instead of NACK to the pair 7F 7F", clip(got))}
	}
	ans, ok := syncVerdict(got)
	if !ok {
		return &ProtocolError{Cmd: SyncByte, Msg: fmt.Sprintf("got % X instead of ACK to 0x7F (the application is running, the rate is wrong, or the ROM timed an earlier frame as its sync byte and locked a wrong rate: only a reset clears that)", clip(got))}
	}
	switch {
	case ans == NACK:
		c.logf("sync: already synced: 0x7F was answered NACK")
	case len(got) > 1:
		c.logf("sync: synced after %d bytes of garbage", len(got)-1)
	default:
		c.logf("sync: synced")
	}
	return nil
}

func answerName(b byte) string {
	switch b {
	case ACK:
		return "ACK"
	case NACK:
		return "NACK"
	}
	return fmt.Sprintf("0x%02X", b)
}

// clip keeps error messages short.
func clip(b []byte) []byte {
	if len(b) > 24 {
		return b[len(b)-24:]
	}
	return b
}

// syncAnswer collects what arrives within SyncWait after a sync byte and,
// once something has arrived, until the line has been quiet for SyncQuiet
// (at most another SyncWait). Silence returns nothing and no error.
func (c *Client) syncAnswer(ctx context.Context) ([]byte, error) {
	start := time.Now()
	deadline := start.Add(c.opts.SyncWait)
	var got []byte
	var buf [64]byte
	for {
		wait := time.Until(deadline)
		if len(got) > 0 {
			if time.Since(start) > 2*c.opts.SyncWait {
				return got, nil // a chattering line: judge what arrived
			}
			wait = c.opts.SyncQuiet
		}
		if wait <= 0 {
			return got, nil
		}
		n, err := c.conn.ReadSome(ctx, buf[:], wait, "answer to the sync byte")
		if err != nil {
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				return got, nil
			}
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, portError("sync: read the answer", err)
		}
		got = append(got, buf[:n]...)
		if len(got) > 1024 {
			got = got[len(got)-1024:]
		}
	}
}

// answer reads a variable answer: N, then N+2 bytes more.
func (c *Client) answer(ctx context.Context, cmd byte, what string) ([]byte, error) {
	var n [1]byte
	if err := c.readFull(ctx, cmd, 0, n[:], c.opts.Timeout+c.wire(1), what+" length"); err != nil {
		return nil, err
	}
	b := make([]byte, 1+int(n[0])+2)
	b[0] = n[0]
	if err := c.readFull(ctx, cmd, 0, b[1:], c.opts.Timeout+c.wire(len(b)), what); err != nil {
		return nil, err
	}
	return b, nil
}

// Get sends GET and returns the bootloader version and the command codes it
// offers. The client remembers them: erases use ERASE or EXTENDED ERASE as
// offered.
func (c *Client) Get(ctx context.Context) (version byte, cmds []byte, err error) {
	if err := c.command(ctx, CmdGet, 0); err != nil {
		var te *bootloader.TimeoutError
		if errors.As(err, &te) {
			// 7F and its ACK look the same at 8N1 and 8E1; 00 FF does
			// not (AN3155 §2: the ROM frames 8E1).
			return 0, nil, fmt.Errorf("stm32: the unit answered the sync byte but not GET: is the port at even parity (8E1)? A port at 8N1 passes 0x7F and its ACK unharmed and garbles 00 FF: %w", err)
		}
		return 0, nil, err
	}
	b, err := c.answer(ctx, CmdGet, "answer")
	if err != nil {
		return 0, nil, err
	}
	version, cmds, err = DecodeGet(b)
	if err != nil {
		return 0, nil, err
	}
	c.version, c.cmds, c.haveGet = version, cmds, true
	return version, append([]byte(nil), cmds...), nil
}

// GetVersion sends GET_VERSION and returns the bootloader version and the
// two option bytes it reports.
func (c *Client) GetVersion(ctx context.Context) (version, opt1, opt2 byte, err error) {
	if err := c.command(ctx, CmdGetVersion, 0); err != nil {
		return 0, 0, 0, err
	}
	var b [4]byte
	if err := c.readFull(ctx, CmdGetVersion, 0, b[:], c.opts.Timeout+c.wire(4), "answer"); err != nil {
		return 0, 0, 0, err
	}
	return DecodeVersion(b[:])
}

// GetID sends GET_ID and returns the product ID (PID).
func (c *Client) GetID(ctx context.Context) (uint16, error) {
	if err := c.command(ctx, CmdGetID, 0); err != nil {
		return 0, err
	}
	b, err := c.answer(ctx, CmdGetID, "answer")
	if err != nil {
		return 0, err
	}
	return DecodeID(b)
}

// Identify runs GET and GET_ID, looks the part up, and reads the unique ID
// and the flash-size register. On a read-protected unit the READ is refused:
// Identify then returns what it learnt (PID, Part, version, commands) with
// an error that matches ErrReadProtected.
//
// Some ROMs NACK a READ of the device-information block (AN2606; reported
// for the STM32F401 and in stm32loader's LONG_UID_ACCESS for the F4 and
// L0: a READ starting there is refused, one of 256 bytes starting just
// before it works). Identify tries the exact range first, then the
// 256-byte window from the range's 256-byte boundary; when both are NACKed
// it returns the Info with NoUID set and no error: "no ID from the ROM",
// for the caller to take the identity from elsewhere.
func (c *Client) Identify(ctx context.Context) (Info, error) {
	var info Info
	version, cmds, err := c.Get(ctx)
	if err != nil {
		return info, err
	}
	info.BootloaderVersion, info.Commands = version, cmds
	if info.PID, err = c.GetID(ctx); err != nil {
		return info, err
	}
	p, ok := LookupPID(info.PID)
	if !ok {
		return info, &UnknownPartError{PID: info.PID}
	}
	info.Part = p
	c.SetPart(p)
	if p.UIDAddr == 0 {
		info.NoUID, info.NoUIDReason = true, fmt.Sprintf("%s has no unique ID the bootloader can read", p.Name)
		return info, nil
	}
	off := p.uidOffsets()
	lo, hi := p.UIDAddr, p.UIDAddr+off[2]+4
	if p.FlashSizeAddr != 0 {
		lo, hi = min(lo, p.FlashSizeAddr), max(hi, p.FlashSizeAddr+2)
	}
	var mem []byte
	base := lo
	windows := []Region{{lo, hi - lo}}
	if w := (Region{lo &^ 0xFF, MaxBlock}); w.Contains(lo, int(hi-lo)) && w != windows[0] {
		windows = append(windows, w)
	}
	var refused error
	for _, w := range windows {
		b, err := c.Read(ctx, w.Start, int(w.Size))
		if err == nil {
			mem, base = b, w.Start
			break
		}
		if errors.Is(err, ErrReadProtected) {
			return info, c.uidError(p, err)
		}
		var ne *NACKError
		if !errors.As(err, &ne) {
			return info, c.uidError(p, err)
		}
		c.logf("READ of %d bytes at 0x%08X for the unique ID: %v", w.Size, w.Start, err)
		refused = err
	}
	if mem == nil {
		info.NoUID = true
		info.NoUIDReason = fmt.Sprintf("the ROM refused every READ of the unique ID at 0x%08X: %v", p.UIDAddr, refused)
		return info, nil
	}
	for i, o := range off {
		copy(info.UID[4*i:4*i+4], mem[p.UIDAddr+o-base:])
	}
	if p.FlashSizeAddr != 0 {
		sz := mem[p.FlashSizeAddr-base:]
		info.FlashSize = int(uint16(sz[0])|uint16(sz[1])<<8) << 10
	}
	return info, nil
}

func (c *Client) uidError(p Part, err error) error {
	if errors.Is(err, ErrReadProtected) {
		return fmt.Errorf("stm32: %s is read-protected (RDP level 1), so its unique ID at 0x%08X cannot be read; ReadoutUnprotect clears it but mass-erases the flash: %w", p.Name, p.UIDAddr, err)
	}
	return fmt.Errorf("stm32: read the unique ID of %s at 0x%08X: %w", p.Name, p.UIDAddr, err)
}

// Read reads n bytes (1 to 256) at addr with one READ.
func (c *Client) Read(ctx context.Context, addr uint32, n int) ([]byte, error) {
	b := make([]byte, n)
	if err := c.readInto(ctx, addr, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *Client) readInto(ctx context.Context, addr uint32, b []byte) error {
	n := len(b)
	if n < 1 || n > MaxBlock {
		return fmt.Errorf("stm32: READ of %d bytes at 0x%08X: read 1 to %d", n, addr, MaxBlock)
	}
	if err := c.command(ctx, CmdRead, addr); err != nil {
		return err
	}
	if err := c.send(CmdRead, addr, "address", AppendAddress(c.out[:0], addr)); err != nil {
		return err
	}
	if err := c.ack(ctx, CmdRead, StageAddress, addr, c.opts.Timeout+c.wire(6)); err != nil {
		return err
	}
	if err := c.send(CmdRead, addr, "length", AppendCommand(c.out[:0], byte(n-1))); err != nil {
		return err
	}
	if err := c.ack(ctx, CmdRead, StageLength, addr, c.opts.Timeout+c.wire(3)); err != nil {
		return err
	}
	return c.readFull(ctx, CmdRead, addr, b, c.opts.Timeout+c.wire(n), fmt.Sprintf("%d data bytes", n))
}

// Write writes data (1 to 256 bytes) at addr, which must be 4-aligned, with
// one WRITE. Data whose length is not a multiple of 4 is padded with 0xFF,
// which leaves flash as it is. The ROM answers ACK once the flash is
// programmed, whether or not it was erased: only Verify tells.
func (c *Client) Write(ctx context.Context, addr uint32, data []byte) error {
	n := len(data)
	if n < 1 || n > MaxBlock {
		return fmt.Errorf("stm32: WRITE of %d bytes at 0x%08X: write 1 to %d", n, addr, MaxBlock)
	}
	if addr%4 != 0 {
		return fmt.Errorf("stm32: WRITE at 0x%08X: the address must be 4-aligned", addr)
	}
	if n%4 != 0 {
		padded := make([]byte, (n+3)&^3)
		copy(padded, data)
		for i := n; i < len(padded); i++ {
			padded[i] = 0xFF
		}
		data = padded
	}
	if err := c.command(ctx, CmdWrite, addr); err != nil {
		return err
	}
	if err := c.send(CmdWrite, addr, "address", AppendAddress(c.out[:0], addr)); err != nil {
		return err
	}
	if err := c.ack(ctx, CmdWrite, StageAddress, addr, c.opts.Timeout+c.wire(6)); err != nil {
		return err
	}
	c.forget(span{uint64(addr), uint64(addr) + uint64(len(data))})
	c.out = AppendWriteData(c.out[:0], data)
	if err := c.send(CmdWrite, addr, "data", c.out); err != nil {
		return err
	}
	return c.ack(ctx, CmdWrite, StageData, addr, c.opts.Timeout+c.wire(len(c.out)+1))
}

// Go sends GO: the unit jumps to the vector table at addr (its initial
// stack pointer, then its reset vector). After the ACK the bootloader is no
// longer listening.
func (c *Client) Go(ctx context.Context, addr uint32) error {
	if err := c.command(ctx, CmdGo, addr); err != nil {
		return err
	}
	if err := c.send(CmdGo, addr, "address", AppendAddress(c.out[:0], addr)); err != nil {
		return err
	}
	return c.ack(ctx, CmdGo, StageAddress, addr, c.opts.Timeout+c.wire(6))
}

// eraseCmd returns the erase command the bootloader offers, running GET
// first if it has not run.
func (c *Client) eraseCmd(ctx context.Context) (byte, error) {
	if !c.haveGet {
		if _, _, err := c.Get(ctx); err != nil {
			return 0, err
		}
	}
	switch {
	case c.Offers(CmdExtendedErase):
		return CmdExtendedErase, nil
	case c.Offers(CmdErase):
		return CmdErase, nil
	}
	return 0, fmt.Errorf("stm32: the bootloader (v%s, commands % X) offers neither ERASE nor EXTENDED_ERASE", FormatVersion(c.version), c.cmds)
}

func (c *Client) unitBudget(i int) time.Duration {
	if c.havePart && i < c.part.Units() {
		return c.part.EraseBudget(i)
	}
	return unknownEraseBudget
}

// Erase erases the given pages (sectors on the F2 and F4), numbered from
// the start of flash, with ERASE or EXTENDED ERASE, whichever GET offered,
// in as many commands as the protocol needs.
func (c *Client) Erase(ctx context.Context, units []int) error {
	cmd, err := c.eraseCmd(ctx)
	if err != nil {
		return err
	}
	batch := 512 // some bootloaders take no more (stm32flash splits there too)
	if cmd == CmdErase {
		batch = 255
	}
	for len(units) > 0 {
		n := min(batch, len(units))
		if err := c.eraseBatch(ctx, cmd, units[:n]); err != nil {
			return err
		}
		c.markErased(units[:n])
		units = units[n:]
	}
	return nil
}

// markErased records the units as blank, when the part is known (else
// the client cannot tell their addresses and skips nothing).
func (c *Client) markErased(units []int) {
	if !c.havePart {
		return
	}
	for _, u := range units {
		if r, ok := c.part.Unit(u); ok {
			c.forget(span{uint64(r.Start), r.End()})
			c.blank = addSpan(c.blank, span{uint64(r.Start), r.End()})
		}
	}
}

func (c *Client) eraseBatch(ctx context.Context, cmd byte, units []int) error {
	var frame []byte
	var err error
	if cmd == CmdErase {
		frame, err = AppendErase(nil, units)
	} else {
		frame, err = AppendExtendedErase(nil, units)
	}
	if err != nil {
		return err
	}
	work := time.Duration(0)
	for _, u := range units {
		work += c.unitBudget(u)
	}
	if err := c.command(ctx, cmd, 0); err != nil {
		return err
	}
	if err := c.send(cmd, 0, "page list", frame); err != nil {
		return err
	}
	return c.ack(ctx, cmd, StagePages, 0, c.opts.Timeout+c.wire(len(frame)+1)+work)
}

func (c *Client) massBudget() time.Duration {
	switch {
	case c.opts.EraseTimeout > 0:
		return c.opts.EraseTimeout
	case c.havePart:
		return c.part.MassEraseMax + c.opts.Timeout
	}
	return defaultMassErase
}

// MassErase erases the whole flash: ERASE with the global code (FF 00) or
// EXTENDED ERASE with the mass-erase code (FF FF 00). Parts without a mass
// erase (Part.NoMassErase: the L0 and L1), and bootloaders that NACK the
// code, are erased page by page instead, as stm32flash does
// (stm32_erase_memory, F_NO_ME).
func (c *Client) MassErase(ctx context.Context) error {
	cmd, err := c.eraseCmd(ctx)
	if err != nil {
		return err
	}
	if c.havePart && c.part.NoMassErase {
		c.logf("mass erase: %s has none: erasing its %d pages one by one", c.part.Name, c.part.Units())
		return c.eraseAllUnits(ctx)
	}
	err = c.massErase(ctx, cmd)
	if err == nil && c.havePart {
		f := c.part.Flash()
		c.held = nil
		c.blank = addSpan(c.blank, span{uint64(f.Start), f.End()})
	}
	var ne *NACKError
	if errors.As(err, &ne) && ne.Stage == StagePages && c.havePart {
		c.logf("mass erase refused (%v): erasing the %d pages one by one", err, c.part.Units())
		return c.eraseAllUnits(ctx)
	}
	return err
}

// eraseAllUnits erases every page or sector of the part.
func (c *Client) eraseAllUnits(ctx context.Context) error {
	units := make([]int, c.part.Units())
	for i := range units {
		units[i] = i
	}
	return c.Erase(ctx, units)
}

func (c *Client) massErase(ctx context.Context, cmd byte) error {
	frame := []byte{GlobalErase, 0x00}
	if cmd == CmdExtendedErase {
		frame = AppendSpecialErase(nil, MassErase)
	}
	if err := c.command(ctx, cmd, 0); err != nil {
		return err
	}
	if err := c.send(cmd, 0, "mass-erase code", frame); err != nil {
		return err
	}
	return c.ack(ctx, cmd, StagePages, 0, c.massBudget())
}

// EraseRegion erases exactly the pages or sectors of part that
// [start, start+size) touches.
func (c *Client) EraseRegion(ctx context.Context, part Part, start, size uint32) error {
	units, err := part.UnitsIn(start, size)
	if err != nil || len(units) == 0 {
		return err
	}
	if !c.havePart {
		c.SetPart(part)
	}
	return c.Erase(ctx, units)
}

// EraseChanged erases the pages or sectors of part that [start,
// start+size) touches, except those that already hold what they should:
// want returns the content a unit should hold once erased and written (the
// images over 0xFF), or nil when it cannot tell. Where the bootloader
// offers GET_CHECKSUM, a unit whose CRC equals want's is neither erased
// nor, by WriteMemory, written; elsewhere, and for the rest, it is erased
// as EraseRegion does. It returns how many units it left alone.
func (c *Client) EraseChanged(ctx context.Context, part Part, start, size uint32, want func(Region) []byte) (int, error) {
	units, err := part.UnitsIn(start, size)
	if err != nil || len(units) == 0 {
		return 0, err
	}
	if !c.havePart {
		c.SetPart(part)
	}
	if !c.haveGet {
		if _, _, err := c.Get(ctx); err != nil {
			return 0, err
		}
	}
	var erase []int
	same := 0
	for _, u := range units {
		r, _ := part.Unit(u)
		w := want(r)
		if !c.Offers(CmdGetChecksum) || uint32(len(w)) != r.Size || r.Size%4 != 0 {
			erase = append(erase, u)
			continue
		}
		got, err := c.Checksum(ctx, r.Start, r.Size)
		var ne *NACKError
		switch {
		case errors.As(err, &ne):
			c.logf("erase: GET_CHECKSUM of %s refused (%v): erasing it", r, err)
			erase = append(erase, u)
		case err != nil:
			return same, err
		case got == CRC32(w):
			c.logf("erase: unit %d (%s) already holds its content (CRC 0x%08X): left alone", u, r, got)
			c.held = append(c.held, held{uint64(r.Start), w})
			same++
		default:
			erase = append(erase, u)
		}
	}
	if len(erase) == 0 {
		return same, nil
	}
	return same, c.Erase(ctx, erase)
}

// ReadMemory reads n bytes from addr in READs of up to 256 bytes.
func (c *Client) ReadMemory(ctx context.Context, addr uint32, n int, progress bootloader.Progress) ([]byte, error) {
	out := make([]byte, n)
	for off := 0; off < n; off += MaxBlock {
		b := out[off:min(off+MaxBlock, n)]
		if err := c.readInto(ctx, addr+uint32(off), b); err != nil {
			return out[:off], err
		}
		if progress != nil {
			progress(int64(off+len(b)), int64(n))
		}
	}
	return out, nil
}

// WriteMemory writes data from addr (4-aligned) in WRITEs of 256 bytes,
// the last padded with 0xFF to a multiple of 4. The pages must have been
// erased. A block all 0xFF that lies wholly in flash this client erased
// and has not written since is not sent: erased flash reads 0xFF already
// (RM0008 §3.3.3, RM0090 §3.5.3), so the WRITE would change nothing; so
// is a block of a unit EraseChanged left alone that holds the block
// already. Verify still covers them, by read-back or GET_CHECKSUM.
func (c *Client) WriteMemory(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	if addr%4 != 0 {
		return fmt.Errorf("stm32: write memory at 0x%08X: the address must be 4-aligned", addr)
	}
	skipped := 0
	defer func() {
		if skipped > 0 {
			c.logf("write memory: %d of %d blocks all 0xFF in erased flash: not sent", skipped, (len(data)+MaxBlock-1)/MaxBlock)
		}
	}()
	for off := 0; off < len(data); off += MaxBlock {
		b := data[off:min(off+MaxBlock, len(data))]
		a := uint64(addr) + uint64(off)
		if allFF(b) && inSpans(c.blank, span{a, a + uint64((len(b)+3)&^3)}) || c.holds(a, b) {
			skipped++
			c.skipped++
		} else if err := c.Write(ctx, addr+uint32(off), b); err != nil {
			return err
		}
		if progress != nil {
			progress(int64(off+len(b)), int64(len(data)))
		}
	}
	return nil
}

// Verify checks that memory from addr holds data. Where the bootloader
// offers GET_CHECKSUM, it compares the ROM's CRC of the range with the
// image's (data padded with 0xFF to a multiple of 4, as WriteMemory writes
// it), and reads back only when they differ, to name the first differing
// byte; elsewhere it reads everything back. It returns a *VerifyError
// naming the first differing address.
func (c *Client) Verify(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	if c.Offers(CmdGetChecksum) && addr%4 == 0 && len(data) > 0 {
		padded := data
		if len(data)%4 != 0 {
			padded = append(bytes.Clone(data), bytes.Repeat([]byte{0xFF}, 4-len(data)%4)...)
		}
		got, err := c.Checksum(ctx, addr, uint32(len(padded)))
		var ne *NACKError
		switch {
		case err == nil && got == CRC32(padded):
			c.logf("verify: GET_CHECKSUM of %d bytes at 0x%08X matches (CRC 0x%08X)", len(padded), addr, got)
			if progress != nil {
				progress(int64(len(data)), int64(len(data)))
			}
			return nil
		case err == nil:
			c.logf("verify: GET_CHECKSUM at 0x%08X is 0x%08X, the image's 0x%08X: reading back", addr, got, CRC32(padded))
		case errors.As(err, &ne):
			c.logf("verify: GET_CHECKSUM refused (%v): reading back", err)
		default:
			return err
		}
	}
	return c.readBack(ctx, addr, data, progress)
}

// readBack reads memory back from addr and compares it with data.
func (c *Client) readBack(ctx context.Context, addr uint32, data []byte, progress bootloader.Progress) error {
	buf := make([]byte, MaxBlock)
	for off := 0; off < len(data); off += MaxBlock {
		want := data[off:min(off+MaxBlock, len(data))]
		got := buf[:len(want)]
		a := addr + uint32(off)
		if err := c.readInto(ctx, a, got); err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					return &VerifyError{Addr: a + uint32(i), Want: want[i], Got: got[i]}
				}
			}
		}
		if progress != nil {
			progress(int64(off+len(want)), int64(len(data)))
		}
	}
	return nil
}

// checksumBudget bounds how long the ROM may take to compute the CRC of n
// bytes: generously, a second per MiB beyond Timeout (the CRC unit takes
// about 4 cycles a word).
func (c *Client) checksumBudget(n uint32) time.Duration {
	return c.opts.Timeout + time.Duration(n>>20+1)*time.Second
}

// Checksum asks the ROM for the CRC of n bytes at addr with GET_CHECKSUM
// (0xA1), which only some bootloaders have (see Offers). addr and n must
// be multiples of 4. The answer is what CRC32 computes over the bytes.
func (c *Client) Checksum(ctx context.Context, addr, n uint32) (uint32, error) {
	if addr%4 != 0 || n%4 != 0 || n == 0 {
		return 0, fmt.Errorf("stm32: GET_CHECKSUM of %d bytes at 0x%08X: address and length must be multiples of 4", n, addr)
	}
	if err := c.command(ctx, CmdGetChecksum, addr); err != nil {
		return 0, err
	}
	if err := c.send(CmdGetChecksum, addr, "address", AppendAddress(c.out[:0], addr)); err != nil {
		return 0, err
	}
	if err := c.ack(ctx, CmdGetChecksum, StageAddress, addr, c.opts.Timeout+c.wire(6)); err != nil {
		return 0, err
	}
	if err := c.send(CmdGetChecksum, addr, "length", AppendLength(c.out[:0], n)); err != nil {
		return 0, err
	}
	if err := c.ack(ctx, CmdGetChecksum, StageLength, addr, c.opts.Timeout+c.wire(6)); err != nil {
		return 0, err
	}
	if err := c.ack(ctx, CmdGetChecksum, StageChecksum, addr, c.checksumBudget(n)); err != nil {
		return 0, err
	}
	var b [5]byte
	if err := c.readFull(ctx, CmdGetChecksum, addr, b[:], c.opts.Timeout+c.wire(5), "CRC"); err != nil {
		return 0, err
	}
	if xor(b[:4]) != b[4] {
		return 0, &ProtocolError{Cmd: CmdGetChecksum, Msg: fmt.Sprintf("CRC % X with a wrong checksum byte 0x%02X", b[:4], b[4])}
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// resetting finishes a command after which the unit resets itself: wait
// for the ROM to start again and sync.
func (c *Client) resetting(ctx context.Context, cmd byte) error {
	if err := bootloader.Sleep(ctx, c.opts.ResetDelay); err != nil {
		return err
	}
	if err := c.Sync(ctx); err != nil {
		return fmt.Errorf("stm32: %s reset the unit and it did not come back into the bootloader: %w", CmdName(cmd), err)
	}
	return nil
}

// twoAcks runs a protection command answered ACK, work, ACK, then a reset.
func (c *Client) twoAcks(ctx context.Context, cmd byte, work time.Duration) error {
	if err := c.command(ctx, cmd, 0); err != nil {
		return err
	}
	if err := c.ack(ctx, cmd, StageComplete, 0, c.opts.Timeout+work); err != nil {
		return err
	}
	return c.resetting(ctx, cmd)
}

// ReadoutUnprotect clears read protection. The ROM answers ACK, erases the
// whole flash, clears RDP, answers ACK and resets; the client then syncs
// again (calling the Reset hook if the first attempt fails).
func (c *Client) ReadoutUnprotect(ctx context.Context) error {
	return c.twoAcks(ctx, CmdReadoutUnprotect, c.massBudget())
}

// ReadoutProtect sets read protection (RDP level 1); the unit resets and
// the client syncs again. Afterwards READ, WRITE, ERASE and GO are refused.
func (c *Client) ReadoutProtect(ctx context.Context) error {
	return c.twoAcks(ctx, CmdReadoutProtect, time.Second)
}

// WriteUnprotect clears the write protection of every sector; the unit
// resets and the client syncs again.
func (c *Client) WriteUnprotect(ctx context.Context) error {
	return c.twoAcks(ctx, CmdWriteUnprotect, time.Second)
}

// WriteProtect write-protects the given sectors (page groups on the F1,
// as the part's WRP bits define them); the unit resets and the client syncs
// again.
func (c *Client) WriteProtect(ctx context.Context, sectors []int) error {
	if len(sectors) == 0 || len(sectors) > 255 {
		return fmt.Errorf("stm32: WRITE_PROTECT of %d sectors: name 1 to 255", len(sectors))
	}
	frame, err := AppendErase(nil, sectors) // same shape: N-1, one byte each, XOR
	if err != nil {
		return err
	}
	if err := c.command(ctx, CmdWriteProtect, 0); err != nil {
		return err
	}
	if err := c.send(CmdWriteProtect, 0, "sector list", frame); err != nil {
		return err
	}
	if err := c.ack(ctx, CmdWriteProtect, StagePages, 0, c.opts.Timeout+c.wire(len(frame)+1)+time.Second); err != nil {
		return err
	}
	return c.resetting(ctx, CmdWriteProtect)
}
