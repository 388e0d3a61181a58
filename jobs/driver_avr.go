package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
)

// AVR connects to ATmega units through optiboot (STK500v1). The chip has no
// serial number: the unit's identity comes from its barcode (Job.Serial).
type AVR struct {
	Options avr.Options // Reset is set per connection
}

// Connect syncs with optiboot, pulsing reset (the plan's entry sequence)
// inside each sync attempt, and identifies the part by its signature. The
// plan option bootloader=wiring speaks STK500v2 to the Arduino Mega 2560's
// own bootloader instead (avrdude -c wiring).
func (d AVR) Connect(ctx context.Context, port Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	o := d.Options
	o.Reset = reset
	if o.Baud == 0 {
		o.Baud = plan.Port.Baud
	}
	switch b := plan.Options["bootloader"]; b {
	case "", "optiboot":
	case "wiring", "stk500v2":
		return connectWiring(ctx, port, o)
	default:
		return nil, Identity{}, optionFailure("bootloader", b, fmt.Errorf("want optiboot or wiring"))
	}
	c := avr.New(port, o)
	if err := c.Sync(ctx); err != nil {
		return nil, Identity{}, avrError(err)
	}
	part, err := c.Identify(ctx)
	if err != nil {
		return nil, Identity{}, avrError(err)
	}
	id := Identity{
		Chip:     uint32(part.Signature[0])<<16 | uint32(part.Signature[1])<<8 | uint32(part.Signature[2]),
		ChipName: part.Name,
		Flash:    Region{Start: 0, Size: uint32(part.FlashSize - part.BootSize)},
	}
	return avrTarget{c}, id, nil
}

// avrClient is what optiboot's client (STK500v1) and the wiring
// bootloader's (STK500v2) both offer a job.
type avrClient interface {
	WritePages(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error
	Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error
	ReadFlash(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error)
	Leave(ctx context.Context) error
}

var (
	_ avrClient = (*avr.Client)(nil)
	_ avrClient = (*avr.WiringClient)(nil)
)

type avrTarget struct{ c avrClient }

func (t avrTarget) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return avrError(t.c.WritePages(ctx, addr, data, p))
}

func (t avrTarget) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return avrError(t.c.Verify(ctx, addr, data, p))
}

func (t avrTarget) Read(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error) {
	b, err := t.c.ReadFlash(ctx, addr, n, p)
	return b, avrError(err)
}

// Start leaves programming mode: the bootloader starts the application.
func (t avrTarget) Start(ctx context.Context) error { return avrError(t.c.Leave(ctx)) }

func avrError(err error) error {
	if err == nil {
		return nil
	}
	var ve *avr.VerifyError
	var pe *avr.ProtocolError
	var v2 *avr.V2Error
	var ue *avr.UnknownPartError
	switch {
	case errors.As(err, &v2):
		return &Failure{Class: "protocol", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	case errors.As(err, &ve):
		return &Failure{Class: "verify-mismatch", Fault: UnitFault,
			Reason: fmt.Sprintf("verify failed at 0x%04X: wrote 0x%02X, read 0x%02X", ve.Addr, ve.Want, ve.Got), Hint: hintRepair, Err: err}
	case errors.As(err, &pe):
		return &Failure{Class: "protocol", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	case errors.As(err, &ue):
		return &Failure{Class: "unknown-part", Fault: UnitFault, Reason: err.Error(),
			Hint: "this unit's chip is not one the station knows: check the unit against its recipe", Err: err}
	}
	return err
}

func connectWiring(ctx context.Context, port Port, o avr.Options) (Target, Identity, error) {
	c := avr.NewWiring(port, o)
	if err := c.Sync(ctx); err != nil {
		return nil, Identity{}, avrError(err)
	}
	part, err := c.Identify(ctx)
	if err != nil {
		return nil, Identity{}, avrError(err)
	}
	id := Identity{
		Chip:     uint32(part.Signature[0])<<16 | uint32(part.Signature[1])<<8 | uint32(part.Signature[2]),
		ChipName: part.Name,
		Flash:    Region{Start: 0, Size: uint32(part.BootStart())},
	}
	return avrTarget{c}, id, nil
}
