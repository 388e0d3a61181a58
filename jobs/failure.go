package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/unbrick/unbrick/bootloader"
)

// Failure is why a job or a step failed, classed so that the record, the
// yield figures and the operator each get what they need: a class for the
// Pareto, whose fault it was, a reason in words, and what to do next.
type Failure struct {
	Class  string // e.g. "verify-mismatch", "no-sync", "port-vanished"
	Fault  Fault  // the unit's, the station's, or a refusal before touching the unit
	Reason string // what happened, with where (address, step)
	Hint   string // what the operator should do next
	Err    error  // the underlying error, if any
}

func (f *Failure) Error() string {
	if f.Reason != "" {
		return f.Reason
	}
	if f.Err != nil {
		return f.Err.Error()
	}
	return f.Class
}

func (f *Failure) Unwrap() error { return f.Err }

// Retryable reports whether repeating the step after re-entering the
// bootloader may help: a lost byte, a timeout, a NACK; not a verify mismatch
// (the flash is bad) nor a refusal nor a vanished port.
func (f *Failure) Retryable() bool {
	switch f.Class {
	case "timeout", "nack", "protocol", "no-sync":
		return true
	}
	return false
}

// Common hints. They say what to do, not what went wrong.
const (
	hintReseatCable = "reseat the unit's serial cable in this slot and start again"
	hintMoveSlot    = "move the unit to " + AnotherSlot + "; if that slot fails too, the unit goes to repair"
	hintRepair      = "put the unit in the repair bin: its flash does not keep what is written"
	hintSupervisor  = "call a supervisor: the station refused this job before touching the unit"
	hintSetup       = "call a supervisor: the recipe or the station's setup needs fixing; the unit is not to blame"
	hintNoSync      = "check the unit sits fully in the slot and its cable is seated, then start again"
)

// portGone reports whether err means the port vanished under us: the USB
// adapter unplugged, or the simulated unit's pseudo-terminal closed.
func portGone(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
		return true
	}
	// go.bug.st/serial reports a closed or vanished port as a PortError
	// whose text says so; it does not wrap the errno.
	s := err.Error()
	return strings.Contains(s, "Port has been closed") || strings.Contains(s, "input/output error") ||
		strings.Contains(s, "no such device")
}

// classify turns an error from a step into a Failure. Protocol adapters
// classify protocol-specific errors (a NACK, a verify mismatch) themselves by
// returning a *Failure; this catches the rest.
func classify(step string, err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	var te *bootloader.TimeoutError
	switch {
	case errors.Is(err, context.Canceled):
		return &Failure{Class: "interrupted", Fault: StationFault, Reason: step + ": stopped by the station", Err: err}
	case errors.As(err, &te):
		return &Failure{Class: "timeout", Fault: UnitFault, Reason: fmt.Sprintf("%s: %v", step, err), Hint: hintNoSync, Err: err}
	case portGone(err):
		return &Failure{Class: "port-vanished", Fault: StationFault,
			Reason: fmt.Sprintf("%s: the serial port vanished (%v)", step, err), Hint: hintReseatCable, Err: err}
	}
	return &Failure{Class: "error", Fault: UnitFault, Reason: fmt.Sprintf("%s: %v", step, err), Hint: hintMoveSlot, Err: err}
}
