package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/uboot"
)

// UBoot connects to Linux-class boards through U-Boot's console: it stops
// autoboot after the plan's entry sequence (power on or reset), and
// identifies the unit by the serial# variable its board code sets from OTP.
// Addresses are byte offsets in the board's storage. Plan options:
//
//	storage   "mmc" (default) or "sf" (SPI NOR flash)
//	mmcdev    the mmc device number (default 0)
//	loadaddr  RAM where images are staged, hexadecimal (default: the
//	          unit's loadaddr variable)
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
	if st.LoadAddr == 0 {
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
	return ubootTarget{c: c, st: st}, id, nil
}

// ubootStorage reads the plan's storage options.
func ubootStorage(opts map[string]string) (uboot.Storage, error) {
	st := uboot.Storage{Kind: "mmc"}
	if v := opts["storage"]; v != "" {
		if v != "mmc" && v != "sf" {
			return st, fmt.Errorf("uboot: option storage %q: want \"mmc\" or \"sf\"", v)
		}
		st.Kind = v
	}
	if v := opts["mmcdev"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return st, fmt.Errorf("uboot: option mmcdev %q: want a device number", v)
		}
		st.Dev = n
	}
	if v := opts["loadaddr"]; v != "" {
		a, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X"), 16, 32)
		if err != nil || a == 0 {
			return st, fmt.Errorf("uboot: option loadaddr %q: want a hexadecimal RAM address", v)
		}
		st.LoadAddr = uint32(a)
	}
	return st, nil
}

type ubootTarget struct {
	c  *uboot.Client
	st uboot.Storage
}

var (
	_ Target     = ubootTarget{}
	_ Reader     = ubootTarget{}
	_ Starter    = ubootTarget{}
	_ SlotBooter = ubootTarget{}
)

// Write loads data into RAM with loady (checked with crc32) and writes it
// at storage offset addr.
func (t ubootTarget) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return ubootError(t.c.Write(ctx, t.st, int64(addr), data, p))
}

// Verify reads the storage back into RAM and compares CRC-32s.
func (t ubootTarget) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return ubootError(t.c.Verify(ctx, t.st, int64(addr), data, p))
}

// Read reads storage back over the console (md.b: slow, for small regions).
func (t ubootTarget) Read(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error) {
	b, err := t.c.Read(ctx, t.st, int64(addr), n, p)
	return b, ubootError(err)
}

// Start boots the unit (U-Boot's bootcmd).
func (t ubootTarget) Start(ctx context.Context) error { return ubootError(t.c.Boot(ctx)) }

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
