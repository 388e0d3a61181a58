// Package gpio opens the bench's named lines as periph.io gpio.PinIO and
// drives them by meaning rather than by level: a Line knows which level
// asserts it (a relay on, a strap pulled, a reset held) and what its safe
// state is.
//
// Backends are registered by name prefix in a Registry: simulated lines
// (gpio/gpiosim, "sim:slot1.power"), and on a real bench the Linux GPIO
// character device and I2C expanders. Building a Registry touches no
// hardware; opening a line does.
package gpio

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	pgpio "periph.io/x/conn/v3/gpio"
)

// Role says what a line switches on a slot, which decides its safe state.
type Role string

// The roles a slot's lines can have.
const (
	Power Role = "power" // the unit's supply relay; safe = off
	Boot  Role = "boot"  // the boot-mode strap (BOOT0, GPIO0); safe = released
	Reset Role = "reset" // the unit's reset input (NRST, EN); safe = released
	Aux   Role = "aux"   // anything else (a LED, a buzzer); safe = deasserted
)

// Line is one output line of a slot.
type Line struct {
	Name   string      // as the bench file names it, e.g. "GPIO17" or "sim:slot1.power"
	Role   Role        // what it switches
	Active pgpio.Level // the level that asserts it
	Pin    pgpio.PinIO // the opened pin

	mu       sync.Mutex
	asserted bool
	known    bool // false until the line has been driven once
}

// NewLine returns a line over an opened pin. It does not drive the pin.
func NewLine(name string, role Role, active pgpio.Level, pin pgpio.PinIO) *Line {
	return &Line{Name: name, Role: role, Active: active, Pin: pin}
}

func (l *Line) String() string { return fmt.Sprintf("%s line %s", l.Role, l.Name) }

// Set asserts or releases the line.
func (l *Line) Set(asserted bool) error {
	level := l.Active
	if !asserted {
		level = !l.Active
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.Pin.Out(level); err != nil {
		l.known = false
		return fmt.Errorf("%s: drive %s: %w", l, level, err)
	}
	l.asserted, l.known = asserted, true
	return nil
}

// Asserted reports whether the line was last driven to its asserted level.
func (l *Line) Asserted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.known && l.asserted
}

// Halt drives the line to its safe state: power off, straps and reset released.
func (l *Line) Halt() error { return l.Set(false) }

// Opener opens the pin of a line name that matched its backend's prefix.
type Opener func(name string) (pgpio.PinIO, error)

type backend struct {
	prefix string
	open   Opener
	what   string
}

// Registry maps line names to backends by prefix. The zero value is empty and
// ready to use; it is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	backends []backend
}

// Register adds a backend for names starting with prefix ("" matches any name
// not matched by a longer prefix). what describes it in errors ("Linux GPIO
// character device").
func (r *Registry) Register(prefix, what string, open Opener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.backends = append(r.backends, backend{prefix, open, what})
	// Longest prefix first, so "sim:" wins over "".
	slices.SortStableFunc(r.backends, func(a, b backend) int { return len(b.prefix) - len(a.prefix) })
}

// Open opens the pin named name with the first backend whose prefix matches.
func (r *Registry) Open(name string) (pgpio.PinIO, error) {
	r.mu.Lock()
	bs := slices.Clone(r.backends)
	r.mu.Unlock()
	for _, b := range bs {
		if strings.HasPrefix(name, b.prefix) {
			p, err := b.open(name)
			if err != nil {
				return nil, fmt.Errorf("line %q (%s): %w", name, b.what, err)
			}
			return p, nil
		}
	}
	var known []string
	for _, b := range bs {
		known = append(known, fmt.Sprintf("%q (%s)", b.prefix, b.what))
	}
	return nil, fmt.Errorf("line %q: no GPIO backend for this name; known prefixes: %s", name, strings.Join(known, ", "))
}

// HaltAll drives every line to its safe state, power lines first so that no
// unit is powered while its strap changes. It tries every line and returns
// the errors joined.
func HaltAll(lines []*Line) error {
	var errs []error
	order := []Role{Power, Boot, Reset, Aux}
	for _, role := range order {
		for _, l := range lines {
			if l.Role == role {
				if err := l.Halt(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}
