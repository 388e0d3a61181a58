package jobs

import (
	"context"
	"errors"

	"github.com/unbrick/unbrick/bootloader"
)

// Identity is what a bootloader tells of the unit at connect.
type Identity struct {
	Chip     uint32 // the chip id (STM32 PID, ESP magic, AVR signature)
	ChipName string // e.g. "STM32F40x/41x"
	Serial   string // unique ID or MAC; empty when the chip has none
	Flash    Region // the part's flash as the bootloader knows it; zero if unknown
}

// Target is a unit in its bootloader, behind a protocol's client. Drivers
// return errors that are *Failure where they know the class (a verify
// mismatch, a NACK); anything else is classed by the runner.
type Target interface {
	// Write programs data at addr (a flash address, or a storage offset
	// for U-Boot), reporting progress.
	Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error
	// Verify checks that the unit holds data at addr.
	Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error
}

// Eraser is a target that erases explicitly (optiboot does not: it erases
// page by page as it writes).
type Eraser interface {
	Erase(ctx context.Context, r Region) error
	EraseAll(ctx context.Context) error
}

// Reader is a target that reads memory back (for a backup).
type Reader interface {
	Read(ctx context.Context, addr uint32, n int, p bootloader.Progress) ([]byte, error)
}

// Starter is a target that can leave its bootloader and start the
// application without the bench's lines (GO, LEAVE_PROGMODE, U-Boot's boot).
type Starter interface {
	Start(ctx context.Context) error
}

// SlotBooter is a target with A/B boot slots.
type SlotBooter interface {
	BootSlot(ctx context.Context, slot string) error
}

// Driver connects to units of one protocol.
type Driver interface {
	// Connect syncs with the unit's bootloader over port and identifies it.
	// reset runs the plan's entry sequence (strap, power, reset pulse): the
	// driver calls it before each sync attempt, so that the reset sits
	// inside the retry loop, as a bootloader that listens only briefly
	// after a reset needs.
	Connect(ctx context.Context, port Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error)
}

// ErrUnsupported is wrapped by a step the unit's protocol cannot do.
var ErrUnsupported = errors.New("not supported by this protocol")
