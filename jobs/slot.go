package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/gpio"
)

// Port is an open serial port of a slot.
type Port interface {
	bootloader.Port
	io.Closer
}

// Mode is how a job opens a slot's port.
type Mode struct {
	Baud   int
	Parity string // "none", "even" or "odd"
}

// PortOpener opens a slot's serial port as it is right now (a by-path link or
// a USB serial number resolved at open time).
type PortOpener func(ctx context.Context, m Mode) (Port, error)

// Slot is one slot of the bench as the job layer sees it: its lines by role,
// how to open its port, and its options. Its lines and port belong to one job
// at a time: Acquire before touching them.
type Slot struct {
	Num   int
	Name  string
	Lines map[gpio.Role]*gpio.Line
	Open  PortOpener

	Staging bool // may run draft recipes
	Auto    bool // starts a job by itself when a unit is plugged in

	// PowerOn, if set, switches the power line on through on, when the
	// bench supply allows one more unit to switch on (the inrush limit); it
	// blocks until then.
	PowerOn func(ctx context.Context, on func() error) error

	mu    sync.Mutex
	owner string
	since time.Time
}

// ErrBusy is returned by Acquire when another job owns the slot.
var ErrBusy = errors.New("slot is busy")

// Acquire makes owner the only user of the slot's lines and port. The
// returned function gives them back; it is safe to call more than once.
func (s *Slot) Acquire(owner string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner != "" {
		return nil, fmt.Errorf("slot %d: %w (owned by %s since %s)", s.Num, ErrBusy, s.owner, s.since.Format(time.TimeOnly))
	}
	s.owner, s.since = owner, time.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.owner = ""
			s.mu.Unlock()
		})
	}, nil
}

// Owner returns who owns the slot, or "".
func (s *Slot) Owner() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owner
}

// Halt drives every line of the slot to its safe state: power off, strap
// and reset released.
func (s *Slot) Halt() error {
	var ls []*gpio.Line
	for _, l := range s.Lines {
		ls = append(ls, l)
	}
	return gpio.HaltAll(ls)
}

// set drives the line with role r, waiting for the inrush limit before a
// power-on. A slot without such a line is an error only when asserting it.
func (s *Slot) set(ctx context.Context, r gpio.Role, on bool) error {
	l := s.Lines[r]
	if l == nil {
		if !on {
			return nil
		}
		return &Failure{Class: "no-line", Fault: StationFault,
			Reason: fmt.Sprintf("slot %d has no %s line in the bench file", s.Num, r),
			Hint:   "add the line to the bench file or use a recipe for this slot's wiring"}
	}
	set := func() error { return l.Set(on) }
	var err error
	if r == gpio.Power && on && s.PowerOn != nil {
		err = s.PowerOn(ctx, set)
		if err != nil && ctx.Err() != nil {
			return ctx.Err() // stopped while waiting for the bench supply
		}
	} else {
		err = set()
	}
	if err != nil {
		return &Failure{Class: "line-error", Fault: StationFault, Reason: err.Error(),
			Hint: "check the slot's relay board and its cable; the unit is not to blame", Err: err}
	}
	return nil
}
