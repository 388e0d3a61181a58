package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/stm32"
)

// STM32 connects to STM32 units through the USART system bootloader
// (AN3155). The unit's serial number is its 96-bit unique ID.
type STM32 struct {
	Options stm32.Options // Reset and Baud are set per connection
}

// Connect runs the entry sequence, syncs (running it again inside each
// retry) and identifies the part. A read-protected unit is unprotected
// (which mass-erases it) only when the plan allows it with the option
// readout_unprotect: true.
func (d STM32) Connect(ctx context.Context, port Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	o := d.Options
	o.Reset = reset
	if o.Baud == 0 {
		o.Baud = plan.Port.Baud
	}
	if o.Baud > maxSTM32Baud {
		return nil, Identity{}, &Failure{Class: "recipe-error", Fault: StationFault,
			Reason: fmt.Sprintf("port baud %d: ST tests the USART system bootloader up to %d bps only (AN3155 and AN2662 §2.4: the highest tested rate; the ROM autobauds on 0x7F and a faster rate may lock it at a wrong one)", o.Baud, maxSTM32Baud),
			Hint:   "set the recipe's port baud to 115200 or less"}
	}
	if plan.Port.Parity == "none" {
		o.BitsPerByte = 10
	}
	switch err := reset(ctx); {
	case errors.Is(err, bootloader.ErrNoReset):
		// Nothing was reset (unbrick flash drives no lines): the unit
		// is in its bootloader already, with no start-up to wait for.
	case err != nil:
		return nil, Identity{}, err
	default:
		delay := o.ResetDelay
		if delay == 0 {
			delay = 20 * time.Millisecond
		}
		if err := bootloader.Sleep(ctx, delay); err != nil {
			return nil, Identity{}, err
		}
	}
	c := stm32.New(port, o)
	if err := c.Sync(ctx); err != nil {
		return nil, Identity{}, stm32Error(err)
	}
	info, err := c.Identify(ctx)
	if errors.Is(err, stm32.ErrReadProtected) && plan.Options["readout_unprotect"] == "true" {
		if err = c.ReadoutUnprotect(ctx); err == nil {
			info, err = c.Identify(ctx)
		}
	}
	if err != nil {
		return nil, Identity{}, stm32Error(err)
	}
	size := info.Part.FlashSize()
	if info.FlashSize > 0 && uint32(info.FlashSize) < size {
		size = uint32(info.FlashSize)
	}
	id := Identity{Chip: uint32(info.PID), ChipName: info.Part.Name, Serial: info.Serial(),
		Flash: Region{Start: info.Part.FlashBase, Size: size}}
	t := stm32Target{c: c, part: info.Part}
	if plan.Options["skip_same"] == "true" {
		t.images = plan.Images
	}
	return t, id, nil
}

// maxSTM32Baud is the highest rate ST documents for the USART system
// bootloader (AN2662 §2.4 "Maximum baud rate"; AN3155 likewise): no part's
// ROM is known to take more.
const maxSTM32Baud = 115200

type stm32Target struct {
	c    *stm32.Client
	part stm32.Part
	// images is the plan's images when the option skip_same is set: an
	// erase then leaves alone the units that already hold them.
	images map[string]*Image
}

func (t stm32Target) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return stm32Error(t.c.WriteMemory(ctx, addr, data, p))
}

func (t stm32Target) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return stm32Error(t.c.Verify(ctx, addr, data, p))
}

func (t stm32Target) Read(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error) {
	b, err := t.c.ReadMemory(ctx, addr, n, p)
	return b, stm32Error(err)
}

// Erase erases the pages or sectors r touches. A sector larger than r
// erases more than r: the recipe check refuses regions that do not fall on
// the part's erase units next to a protected region.
//
// With skip_same, where the bootloader offers GET_CHECKSUM, a unit whose
// CRC already equals what it should hold (the plan's images over 0xFF) is
// left alone, and the write step sends none of its blocks; the verify step
// checks every byte all the same.
func (t stm32Target) Erase(ctx context.Context, r Region) error {
	if t.images == nil {
		return stm32Error(t.c.EraseRegion(ctx, t.part, r.Start, r.Size))
	}
	_, err := t.c.EraseChanged(ctx, t.part, r.Start, r.Size, t.content)
	return stm32Error(err)
}

// content is what unit u should hold after the erase and the writes: the
// plan's images over 0xFF.
func (t stm32Target) content(u stm32.Region) []byte {
	b := bytes.Repeat([]byte{0xFF}, int(u.Size))
	for _, im := range t.images {
		lo, hi := max(uint64(im.Addr), uint64(u.Start)), min(uint64(im.Addr)+uint64(len(im.Data)), u.End())
		if lo < hi {
			copy(b[lo-uint64(u.Start):], im.Data[lo-uint64(im.Addr):hi-uint64(im.Addr)])
		}
	}
	return b
}

func (t stm32Target) EraseAll(ctx context.Context) error { return stm32Error(t.c.MassErase(ctx)) }

// Start jumps to the application at the start of flash (GO).
func (t stm32Target) Start(ctx context.Context) error {
	return stm32Error(t.c.Go(ctx, t.part.FlashBase))
}

func stm32Error(err error) error {
	if err == nil {
		return nil
	}
	var ve *stm32.VerifyError
	var ne *stm32.NACKError
	var pe *stm32.ProtocolError
	var ue *stm32.UnknownPartError
	switch {
	case errors.As(err, &ve):
		return &Failure{Class: "verify-mismatch", Fault: UnitFault,
			Reason: fmt.Sprintf("verify failed at 0x%08X: wrote 0x%02X, read 0x%02X (was the page erased?)", ve.Addr, ve.Want, ve.Got), Hint: hintRepair, Err: err}
	case errors.Is(err, stm32.ErrReadProtected):
		return &Failure{Class: "read-protected", Fault: UnitFault, Reason: err.Error(),
			Hint: "the unit is read-protected; a supervisor may allow readout_unprotect in its recipe (it erases the whole flash)", Err: err}
	case errors.As(err, &ne):
		return &Failure{Class: "nack", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	case errors.As(err, &pe):
		return &Failure{Class: "protocol", Fault: UnitFault, Reason: err.Error(), Hint: hintNoSync, Err: err}
	case errors.As(err, &ue):
		return &Failure{Class: "unknown-part", Fault: UnitFault, Reason: err.Error(),
			Hint: "this unit's chip is not one the station knows: check the unit against its recipe", Err: err}
	}
	return err
}
