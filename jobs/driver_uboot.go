package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/uboot"
)

// UBoot connects to Linux-class boards through U-Boot's console: it stops
// autoboot after the plan's entry sequence (power on or reset), and
// identifies the unit by the serial# variable its board code sets from OTP.
// Addresses are byte offsets in the board's storage (RAM addresses for
// storage=ram). Plan options:
//
//	storage   where images go, named as U-Boot names it: "mmc" (default),
//	          "virtio", "nvme", "scsi", "usb" (block devices), "sf" (SPI
//	          NOR), "nor" (CFI parallel NOR, memory-mapped), or "ram" (a
//	          recovery image loaded to RAM, checked with crc32 and booted
//	          from there; storage untouched)
//	dev       the block device number (<if> dev N; default 0); mmcdev is
//	          its old name
//	loadaddr  RAM where images are staged, hexadecimal (default: the
//	          unit's loadaddr variable)
//	norbase   where the CFI NOR flash is mapped, hexadecimal (default 0)
//	norsector its erase sector size, hexadecimal (default 0x20000)
//	ramboot   how storage=ram boots the image: "bootm" (default) or "go"
//	prompt    the board's CONFIG_SYS_PROMPT (default "=> ")
//	stopstr   the key sequence of a keyed autoboot (CONFIG_AUTOBOOT_KEYED;
//	          default: any key)
//	cbsize    the board's CONFIG_SYS_CBSIZE, the longest line plus one
//	          (default 256)
//	chunk     characters typed before their echo is checked (default 32)
//	loady_baud the rate loady receives at (loady ADDR BAUD), falling back
//	          step by step (460800, 230400, 115200, the console's) when a
//	          rate fails; 0 (default) loads at the console rate. The job's
//	          log and the write step's record say the rate used and every
//	          step down
//	skip_same compare U-Boot's crc32 of the region with the image's before
//	          sending it, and send nothing when they match (default false)
type UBoot struct {
	Options uboot.Options // Baud is set per connection when zero
	// Attempts is how many times Connect runs the entry sequence and tries
	// to stop autoboot. 0 means 3.
	Attempts int
}

// Connect runs the entry sequence and stops autoboot, again inside each
// attempt, then reads serial# and the U-Boot version.
func (d UBoot) Connect(ctx context.Context, port Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	o := d.Options
	if o.Baud == 0 {
		o.Baud = plan.Port.Baud
	}
	st, err := ubootStorage(plan.Options)
	if err == nil {
		err = ubootConsole(plan.Options, &o)
	}
	if err != nil {
		return nil, Identity{}, &Failure{Class: "recipe-error", Fault: StationFault, Reason: err.Error(), Hint: hintSetup}
	}
	attempts := d.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var c *uboot.Client
	for try := 0; ; try++ {
		if err := reset(ctx); err != nil {
			return nil, Identity{}, err
		}
		c = uboot.New(port, o)
		err = c.Stop(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil || try+1 >= attempts {
			return nil, Identity{}, ubootError(err)
		}
	}
	id := Identity{ChipName: "U-Boot"}
	if out, err := c.Run(ctx, "version"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "U-Boot ") {
				id.ChipName = l
				break
			}
		}
	}
	serial, err := c.Env(ctx, "serial#")
	if err != nil && !errors.Is(err, uboot.ErrNotDefined) {
		return nil, Identity{}, ubootError(err)
	}
	id.Serial = serial
	if st.LoadAddr == 0 && st.Kind != "ram" {
		v, err := c.Env(ctx, "loadaddr")
		if err != nil {
			return nil, Identity{}, &Failure{Class: "recipe-error", Fault: StationFault,
				Reason: fmt.Sprintf("the unit has no loadaddr variable (%v) and the recipe sets no loadaddr option", err), Hint: hintSetup, Err: err}
		}
		a, perr := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
		if perr != nil || a == 0 {
			return nil, Identity{}, &Failure{Class: "recipe-error", Fault: StationFault,
				Reason: fmt.Sprintf("the unit's loadaddr %q is not a 32-bit hexadecimal address; set the recipe's loadaddr option", v), Hint: hintSetup}
		}
		st.LoadAddr = uint32(a)
	}
	rates, err := loadRates(plan.Options["loady_baud"], o.Baud)
	if err != nil {
		return nil, Identity{}, &Failure{Class: "recipe-error", Fault: StationFault, Reason: err.Error(), Hint: hintSetup}
	}
	return ubootTarget{c: c, st: st, ram: &ramImage{boot: plan.Options["ramboot"]}, skipSame: plan.Options["skip_same"] == "true",
		rates: &loadRate{ladder: rates, console: o.Baud}, reset: reset}, id, nil
}

// loadRate is the ladder of loady rates a target tries, fastest first, and
// how far down it has come.
type loadRate struct {
	ladder  []int // 0 is the console rate
	at      int
	console int // the console's rate, which 0 stands for
	log     func(string)
}

// notef tells the job's log, and so the step's record, about the rate.
func (r *loadRate) notef(format string, args ...any) {
	if r.log != nil {
		r.log(fmt.Sprintf(format, args...))
	}
}

// rate is the rate in bits per second the ladder stands at.
func (r *loadRate) rate() int {
	if b := r.ladder[r.at]; b != 0 {
		return b
	}
	return r.console
}

// fallbackRates are the rates tried below the recipe's, in order.
var fallbackRates = []int{921600, 460800, 230400, 115200}

// loadRates returns the rates to try for the option loady_baud, fastest
// first, ending at the console rate (0).
func loadRates(v string, console int) ([]int, error) {
	if v == "" || v == "0" {
		return []int{0}, nil
	}
	b, err := strconv.Atoi(v)
	if err != nil || b < 1200 {
		return nil, fmt.Errorf("uboot: option loady_baud %q: want a rate in bits per second, e.g. 921600, or 0 for the console's", v)
	}
	out := []int{b}
	for _, r := range fallbackRates {
		if r < b && r > console {
			out = append(out, r)
		}
	}
	return append(out, 0), nil
}

// ubootStorage reads the plan's storage options.
func ubootStorage(opts map[string]string) (uboot.Storage, error) {
	st := uboot.Storage{Kind: "mmc"}
	if v := opts["storage"]; v != "" {
		if !slices.Contains(uboot.Kinds, v) {
			return st, fmt.Errorf("uboot: option storage %q: want one of %s", v, strings.Join(uboot.Kinds, ", "))
		}
		st.Kind = v
	}
	for _, k := range []string{"mmcdev", "dev"} {
		if v := opts[k]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return st, fmt.Errorf("uboot: option %s %q: want a device number", k, v)
			}
			st.Dev = n
		}
	}
	hex := func(k string, bits int) (uint64, error) {
		v := opts[k]
		if v == "" {
			return 0, nil
		}
		a, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X"), 16, bits)
		if err != nil {
			return 0, fmt.Errorf("uboot: option %s %q: want a hexadecimal number", k, v)
		}
		return a, nil
	}
	a, err := hex("loadaddr", 32)
	if err == nil && a == 0 && opts["loadaddr"] != "" {
		err = fmt.Errorf("uboot: option loadaddr %q: want a hexadecimal RAM address", opts["loadaddr"])
	}
	if err != nil {
		return st, err
	}
	st.LoadAddr = uint32(a)
	if a, err = hex("norbase", 32); err != nil {
		return st, err
	}
	st.Base = uint32(a)
	if a, err = hex("norsector", 32); err != nil {
		return st, err
	}
	st.Sector = int64(a)
	if st.Sector&(st.Sector-1) != 0 {
		return st, fmt.Errorf("uboot: option norsector %q: want a power of two", opts["norsector"])
	}
	if v := opts["ramboot"]; v != "" && v != "bootm" && v != "go" {
		return st, fmt.Errorf("uboot: option ramboot %q: want bootm or go", v)
	}
	return st, nil
}

// ubootConsole reads the plan's console options into o.
func ubootConsole(opts map[string]string, o *uboot.Options) error {
	if v, ok := opts["prompt"]; ok && v != "" {
		o.Prompt = v
	}
	if v := opts["stopstr"]; v != "" {
		o.StopString = v
	}
	for _, f := range []struct {
		key string
		min int
		to  *int
	}{{"cbsize", 64, &o.LineMax}, {"chunk", 1, &o.Chunk}} {
		if v := opts[f.key]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < f.min {
				return fmt.Errorf("uboot: option %s %q: want a number of at least %d", f.key, v, f.min)
			}
			*f.to = n
		}
	}
	return nil
}

// ramImage remembers where storage=ram loaded the image, to boot it.
type ramImage struct {
	boot   string // "bootm" or "go"
	addr   uint32
	loaded bool
}

type ubootTarget struct {
	c        *uboot.Client
	st       uboot.Storage
	ram      *ramImage
	skipSame bool // the option skip_same: the slot may already hold the image
	rates    *loadRate
	reset    func(context.Context) error // the plan's entry sequence
}

var (
	_ Target     = ubootTarget{}
	_ Reader     = ubootTarget{}
	_ Starter    = ubootTarget{}
	_ SlotBooter = ubootTarget{}
)

// Write loads data into RAM with loady (checked with crc32) and writes it
// at storage offset addr. With skip_same it first compares U-Boot's crc32
// of the region with data's and, when they match, sends nothing: the
// verify step that follows checks the region on the unit all the same.
func (t ubootTarget) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	if t.skipSame {
		same, err := t.c.Holds(ctx, t.st, int64(addr), data)
		if err != nil {
			return ubootError(err)
		}
		if same {
			if t.st.Kind == "ram" {
				t.ram.addr, t.ram.loaded = addr, true
			}
			if p != nil {
				p(int64(len(data)), int64(len(data)))
			}
			return nil
		}
	}
	err := t.load(ctx, addr, data, p)
	if err == nil && t.st.Kind == "ram" {
		t.ram.addr, t.ram.loaded = addr, true
	}
	return ubootError(err)
}

// load writes with loady at the fastest rate of the ladder that works:
// a rate that fails is not tried again on this unit. A unit left waiting
// at a rate the host cannot reach is reset (the plan's entry sequence)
// and its autoboot stopped again first.
func (t ubootTarget) load(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	for {
		r := t.rates
		t.c.SetLoadBaud(r.ladder[r.at])
		err := t.c.Write(ctx, t.st, int64(addr), data, p)
		var re *uboot.RateError
		if !errors.As(err, &re) || r.at == len(r.ladder)-1 || ctx.Err() != nil {
			if err == nil {
				r.notef("loady at %d baud", r.rate())
			}
			return err
		}
		failed := r.rate()
		r.at++
		r.notef("loady failed at %d baud (%v); stepping down to %d", failed, err, r.rate())
		if !re.Stuck {
			continue
		}
		if err := t.reset(ctx); err != nil {
			return err
		}
		t.c.Restarted()
		if err := t.c.Stop(ctx); err != nil {
			return fmt.Errorf("after loady failed at %d bps the unit was reset and did not stop at its prompt: %w", re.Baud, err)
		}
	}
}

// SetLog makes the target tell the job's log, and so the step's record,
// the rate loady ran at and every step down.
func (t ubootTarget) SetLog(f func(string)) { t.rates.log = f }

// Verify reads the storage back into RAM and compares CRC-32s.
func (t ubootTarget) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return ubootError(t.c.Verify(ctx, t.st, int64(addr), data, p))
}

// Read reads storage back over the console (md.b: slow, for small regions).
func (t ubootTarget) Read(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error) {
	b, err := t.c.Read(ctx, t.st, int64(addr), n, p)
	return b, ubootError(err)
}

// Start boots the unit: U-Boot's bootcmd, or with storage=ram the image
// loaded into RAM (bootm ADDR, or go ADDR).
func (t ubootTarget) Start(ctx context.Context) error {
	if t.st.Kind != "ram" {
		return ubootError(t.c.Boot(ctx))
	}
	if !t.ram.loaded {
		return &Failure{Class: "recipe-error", Fault: StationFault, Reason: "storage=ram: nothing was loaded into RAM to boot", Hint: hintSetup}
	}
	boot := t.ram.boot
	if boot == "" {
		boot = "bootm"
	}
	return ubootError(t.c.BootWith(ctx, fmt.Sprintf("%s %x", boot, t.ram.addr)))
}

// BootSlot selects the A/B slot (setenv boot_slot, bootcount 0, saveenv)
// and boots it.
func (t ubootTarget) BootSlot(ctx context.Context, slot string) error {
	return ubootError(t.c.BootSlot(ctx, slot))
}

func ubootError(err error) error {
	if err == nil {
		return nil
	}
	var ve *uboot.VerifyError
	var ce *uboot.CommandError
	var pe *uboot.ProtocolError
	switch {
	case errors.As(err, &ve):
		return &Failure{Class: "verify-mismatch", Fault: UnitFault,
			Reason: fmt.Sprintf("verify failed: %s at %#x (%d bytes) reads back with CRC-32 %08x, want %08x", ve.Where, ve.Offset, ve.Len, ve.Got, ve.Want),
			Hint:   hintRepair, Err: err}
	case errors.As(err, &ce):
		return &Failure{Class: "command-failed", Fault: UnitFault, Reason: err.Error(),
			Hint: "the unit's U-Boot refused a command: check the recipe's storage options against the board", Err: err}
	case errors.As(err, &pe):
		return &Failure{Class: "protocol", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	}
	return err
}
