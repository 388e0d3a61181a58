package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/esprom"
)

// ESP connects to ESP32 and ESP8266 units through the ROM's serial download
// mode (esptool's protocol). The unit's serial number is its MAC.
//
// Plan options:
//
//   - entry: how the unit enters download mode. "gpio" (the default) runs
//     the plan's entry sequence on the bench's lines (GPIO0 strap, EN);
//     "classic" and "unix-tight" run the plan's entry sequence and then
//     esptool's DTR/RTS sequence on the port's adapter (a development
//     board's auto-reset circuit).
//   - compress: "false" writes uncompressed even where the ROM inflates.
//   - delta: "false" writes every byte even where the ROM has MD5.
//   - delta_chunk: the delta granularity in bytes (a multiple of 4096).
//   - flash_baud: the rate to switch to after connecting (ESP32 ROM only;
//     the port must be able to change its rate); 921600 when not set. If
//     the link fails at it (at connect, or while writing), the unit is
//     reset into download mode and the next standard rate down is tried
//     (460800, 230400, then the rate it synced at); the job's log says the
//     rate used and every step down. The port stays at the rate: the
//     runner sets it back to the console's rate before the boot sequence.
//   - flash_size: the unit's SPI flash size in bytes, for erase all (the
//     plan's flash region when not set, else 4 MiB). Connect reads the
//     flash's JEDEC ID and refuses a unit whose flash is smaller, and
//     tells the ESP32 ROM the size it found (SPI_SET_PARAMS).
type ESP struct {
	Options esprom.Options // Reset is set per connection
}

// Connect syncs with the ROM (resetting the unit into download mode inside
// the retries; a reset that returns bootloader.ErrNoReset resets nothing),
// identifies the chip and its MAC, switches the link to its fastest rate,
// and attaches the SPI flash at that rate (the dozen register commands of
// RDID cost a third as much at 921600 as at 115200).
func (d ESP) Connect(ctx context.Context, port Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	o := d.Options
	if o.Baud == 0 {
		o.Baud = plan.Port.Baud
	}
	switch entry := plan.Options["entry"]; entry {
	case "", "gpio":
		o.Reset = reset
	default:
		seq, err := esprom.ParseEntry(entry)
		if err != nil {
			return nil, Identity{}, &Failure{Class: "recipe", Fault: StationFault, Reason: err.Error(),
				Hint: `set the recipe's entry option to "gpio", "classic" or "unix-tight"`, Err: err}
		}
		lines, ok := port.(bootloader.ModemLines)
		if !ok {
			return nil, Identity{}, &Failure{Class: "no-modem-lines", Fault: StationFault,
				Reason: fmt.Sprintf("the %s entry needs the adapter's DTR and RTS, which this slot's port does not have", entry),
				Hint:   `wire GPIO0 and EN to the bench's lines and use entry "gpio", or use a USB adapter with DTR/RTS`}
		}
		modem := seq(lines)
		o.Reset = func(ctx context.Context) error {
			// The adapter's DTR/RTS resets the unit even where the
			// bench's lines cannot.
			if err := reset(ctx); err != nil && !errors.Is(err, bootloader.ErrNoReset) {
				return err
			}
			return modem(ctx)
		}
	}
	size := plan.Flash.Size
	if v := plan.Options["flash_size"]; v != "" {
		n, err := strconv.ParseUint(v, 0, 32)
		if err != nil {
			return nil, Identity{}, optionFailure("flash_size", v, err)
		}
		size = uint32(n)
	}
	if size == 0 {
		size = 4 << 20
	}
	o.FlashSize = size
	base := o.Baud
	// connect syncs at the base rate and identifies the chip; the rest
	// (SPI_ATTACH, RDID, SPI_SET_PARAMS) waits for the link's final rate
	// (up), as esptool-js's main() reads the flash ID after its changeBaud
	// (lib/esploader.js).
	connect := func(ctx context.Context) (*esprom.Client, esprom.Info, error) {
		if bs, ok := port.(bootloader.BaudSetter); ok {
			if err := bs.SetBaud(base); err != nil {
				return nil, esprom.Info{}, err
			}
		}
		c := esprom.New(port, o)
		if err := c.Sync(ctx); err != nil {
			return nil, esprom.Info{}, espError(err)
		}
		info, err := c.Identify(ctx)
		if err != nil {
			return nil, esprom.Info{}, espError(err)
		}
		return c, info, nil
	}
	c, info, err := connect(ctx)
	if err != nil {
		return nil, Identity{}, err
	}
	t := &espTarget{c: c, port: port, base: base, size: size, connect: connect}
	_, canSet := port.(bootloader.BaudSetter)
	if info.Chip.ChangeBaud && canSet {
		want := DefaultESPFlashBaud
		if v := plan.Options["flash_baud"]; v != "" {
			if want, err = strconv.Atoi(v); err != nil || want <= 0 {
				return nil, Identity{}, optionFailure("flash_baud", v, fmt.Errorf("want a rate in baud"))
			}
		}
		t.ladder = esprom.RateLadder(want, base)
	} else {
		t.notef("link at %d baud (%s)", base, map[bool]string{true: "the port cannot change its rate", false: "this ROM has no CHANGE_BAUDRATE"}[info.Chip.ChangeBaud])
		t.fixed = true
	}
	if err := t.up(ctx); err != nil {
		return nil, Identity{}, err
	}
	t.fo = esprom.FlashOptions{Compress: plan.Options["compress"] != "false", Delta: plan.Options["delta"] != "false"}
	if v := plan.Options["delta_chunk"]; v != "" {
		n, err := strconv.ParseUint(v, 0, 32)
		if err != nil || n%esprom.SectorSize != 0 {
			return nil, Identity{}, optionFailure("delta_chunk", v, fmt.Errorf("want a multiple of %d", esprom.SectorSize))
		}
		t.fo.Chunk = uint32(n)
	}
	id := Identity{Chip: info.Magic, ChipName: info.Chip.Name, Serial: info.Serial(), Flash: Region{Start: 0, Size: size}}
	return t, id, nil
}

func optionFailure(name, v string, err error) *Failure {
	return &Failure{Class: "recipe", Fault: StationFault, Reason: fmt.Sprintf("option %s: %q: %v", name, v, err),
		Hint: "correct the recipe's options", Err: err}
}

// DefaultESPFlashBaud is the rate an ESP32 ROM link switches to after
// connecting when the recipe's flash_baud does not say: the fastest
// standard rate common adapters take (esptool's usual -b 921600).
const DefaultESPFlashBaud = 921600

type espTarget struct {
	c  *esprom.Client
	fo esprom.FlashOptions

	port    Port
	base    int    // the rate the ROM synced at
	size    uint32 // the flash size the recipe expects
	fixed   bool   // the link stays at base: the ROM or the port cannot change the rate
	ladder  []int
	connect func(context.Context) (*esprom.Client, esprom.Info, error)

	mu    sync.Mutex
	log   func(string)
	notes []string // said before SetLog
}

// SetLog makes the target tell the job's log which rate the link runs at
// and every step down; what it said before goes out at once.
func (t *espTarget) SetLog(f func(string)) {
	t.mu.Lock()
	t.log = f
	notes := t.notes
	t.notes = nil
	t.mu.Unlock()
	for _, n := range notes {
		f(n)
	}
}

func (t *espTarget) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	f := t.log
	if f == nil {
		t.notes = append(t.notes, msg)
	}
	t.mu.Unlock()
	if f != nil {
		f(msg)
	}
}

// faster switches the link to the fastest rate of the ladder that carries
// whole packets both ways (CHANGE_BAUDRATE, then CheckLink). A rate that
// fails is dropped: the unit is reset into download mode, synced again at
// the base rate, and the next rate down is tried. With no rate left the
// link stays at the base rate.
func (t *espTarget) faster(ctx context.Context) error {
	if t.fixed {
		return nil
	}
	for len(t.ladder) > 0 {
		r := t.ladder[0]
		err := t.c.ChangeBaud(ctx, r)
		if err == nil {
			err = t.c.CheckLink(ctx)
		}
		if err == nil {
			t.notef("link at %d baud (CHANGE_BAUDRATE from %d)", r, t.base)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := t.stepDown(ctx, r, "", err); err != nil {
			return err
		}
	}
	t.notef("link at %d baud", t.base)
	return nil
}

// stepDown drops the rate that failed from the ladder and reconnects at
// the base rate (sync and identify), saying why.
func (t *espTarget) stepDown(ctx context.Context, failed int, while string, why error) error {
	t.ladder = t.ladder[1:]
	next := t.base
	if len(t.ladder) > 0 {
		next = t.ladder[0]
	}
	t.notef("the link failed at %d baud%s (%v); reconnecting to try %d", failed, while, why, next)
	c, _, err := t.connect(ctx)
	if err != nil {
		return err
	}
	t.c = c
	return nil
}

// up brings a link that has just synced to its fastest rate (faster), then
// readies the flash at that rate: SPI_ATTACH with the eFuse's pads, RDID
// and SPI_SET_PARAMS with the real size, as esptool does (the ESP32 ROM
// assumes 2 MiB otherwise). A link that fails during the attach at a
// raised rate steps down as it does while writing.
func (t *espTarget) up(ctx context.Context) error {
	for {
		if err := t.faster(ctx); err != nil {
			return err
		}
		detected, err := t.c.AttachFlash(ctx)
		if err == nil {
			if detected != 0 && detected < t.size {
				return &Failure{Class: "flash-size", Fault: UnitFault,
					Reason: fmt.Sprintf("the unit's SPI flash answers RDID with %d KiB; the recipe expects %d KiB", detected>>10, t.size>>10),
					Hint:   "this unit carries a smaller flash than its recipe's board: check the unit against its recipe"}
			}
			return nil
		}
		if !linkError(err) || ctx.Err() != nil || t.c.Baud() <= t.base {
			return espError(err)
		}
		if err := t.stepDown(ctx, t.c.Baud(), " while attaching the flash", err); err != nil {
			return err
		}
	}
}

// linkError reports whether err is the link failing (garbled or lost
// packets) rather than the unit refusing.
func linkError(err error) bool {
	var pe *esprom.ProtocolError
	var te *bootloader.TimeoutError
	return errors.As(err, &pe) || errors.As(err, &te)
}

// Write writes compressed where the ROM inflates, and skips the chunks
// whose MD5 on the unit already matches the image (delta flashing). If the
// link fails at a raised rate, the unit is reconnected one rate slower and
// the write starts again (it is idempotent: erase and write, chunk by
// chunk).
func (t *espTarget) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	for {
		_, err := t.c.Flash(ctx, addr, data, t.fo, p)
		if err == nil || !linkError(err) || ctx.Err() != nil || t.c.Baud() <= t.base {
			return espError(err)
		}
		if err := t.stepDown(ctx, t.c.Baud(), " while writing", err); err != nil {
			return err
		}
		if err := t.up(ctx); err != nil {
			return err
		}
	}
}

// Verify compares the region's MD5 on the unit with the image's. The
// ESP8266 ROM can neither hash nor read flash: Verify then fails with an
// error matching ErrUnsupported, and the job records the write "written,
// not verified" (see run.verify).
func (t *espTarget) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	if p != nil {
		p(0, int64(len(data)))
	}
	if err := t.c.Verify(ctx, addr, data); err != nil {
		return espError(err)
	}
	if p != nil {
		p(int64(len(data)), int64(len(data)))
	}
	return nil
}

// Read reads flash with READ_FLASH_SLOW (the ESP32 ROM; not the ESP8266's).
func (t *espTarget) Read(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error) {
	b, err := t.c.ReadFlash(ctx, addr, n, p)
	return b, espError(err)
}

// Erase erases the 4 KiB sectors r touches.
func (t *espTarget) Erase(ctx context.Context, r Region) error {
	return espError(t.c.EraseRegion(ctx, r.Start, r.Size))
}

func (t *espTarget) EraseAll(ctx context.Context) error { return espError(t.c.EraseAll(ctx)) }

// Start leaves download mode: the ROM runs the image in flash. The chip
// restarts at its UART's reset rate, so the port goes back to the rate the
// ROM synced at (a raised rate would garble the boot log for whoever reads
// it next).
func (t *espTarget) Start(ctx context.Context) error {
	err := t.c.Run(ctx)
	if bs, ok := t.port.(bootloader.BaudSetter); ok && t.c.Baud() != t.base {
		if serr := bs.SetBaud(t.base); err == nil && serr != nil {
			err = serr
		}
	}
	return espError(err)
}

func espError(err error) error {
	if err == nil {
		return nil
	}
	var ve *esprom.VerifyError
	var re *esprom.ROMError
	var pe *esprom.ProtocolError
	var ue *esprom.UnknownChipError
	var be *esprom.BootModeError
	switch {
	case errors.As(err, &be):
		return &Failure{Class: "not-download-mode", Fault: StationFault, Reason: err.Error(),
			Hint: "the unit booted from flash: check that the slot's boot line holds GPIO0 low while EN rises (wiring, the entry sequence's timing)", Err: err}
	case errors.As(err, &ve):
		return &Failure{Class: "verify-mismatch", Fault: UnitFault,
			Reason: fmt.Sprintf("verify failed: the MD5 of 0x%06X+%d on the unit is %s, the image's %s", ve.Addr, ve.Size, ve.Got, ve.Want), Hint: hintRepair, Err: err}
	case errors.Is(err, esprom.ErrUnsupported):
		return &Failure{Class: "unsupported", Fault: StationFault, Reason: err.Error(),
			Hint: "this chip's ROM cannot do what the recipe asks; change the recipe's steps for this chip", Err: fmt.Errorf("%w: %w", ErrUnsupported, err)}
	case errors.As(err, &re) && re.Code == esprom.CodeFlashWrite:
		return &Failure{Class: "flash-write", Fault: UnitFault, Reason: err.Error(), Hint: hintRepair, Err: err}
	case errors.As(err, &re):
		return &Failure{Class: "rom-error", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	case errors.As(err, &pe):
		return &Failure{Class: "protocol", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	case errors.As(err, &ue):
		return &Failure{Class: "unknown-part", Fault: UnitFault, Reason: err.Error(),
			Hint: "this unit's chip is not one the station knows: check the unit against its recipe", Err: err}
	}
	return err
}
