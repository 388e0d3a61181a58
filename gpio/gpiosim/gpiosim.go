// Package gpiosim provides simulated GPIO lines for the virtual bench.
//
// A Pin implements periph.io's gpio.PinIO. Every level it is driven to is
// written to the bench's Timeline, so tests can prove what the station did to a
// unit and when (an entry sequence's timings, the inrush limit, the safe state),
// and every change is handed to the listeners wired to the pin: the power,
// boot-strap and reset inputs of a simulated unit.
//
// Pins are built by a Bank, which names them ("sim:slot3.boot") and owns the
// Timeline. Nothing here touches real hardware.
package gpiosim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// Prefix starts the name of every simulated line.
const Prefix = "sim:"

// Change is one entry of a Timeline: a pin driven to a level at a time.
type Change struct {
	Time  time.Time
	Pin   string
	Level gpio.Level
}

func (c Change) String() string {
	return fmt.Sprintf("%s %s=%s", c.Time.Format("15:04:05.000000"), c.Pin, c.Level)
}

// Timeline records every level driven on the pins of a Bank, in order.
// It is safe for concurrent use.
type Timeline struct {
	mu      sync.Mutex
	changes []Change
}

func (t *Timeline) add(c Change) {
	t.mu.Lock()
	t.changes = append(t.changes, c)
	t.mu.Unlock()
}

// Changes returns a copy of every change recorded so far.
func (t *Timeline) Changes() []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.changes)
}

// Of returns the changes of the pins whose names have the given prefix, for
// example "sim:slot3." for every line of slot 3.
func (t *Timeline) Of(prefix string) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Change
	for _, c := range t.changes {
		if strings.HasPrefix(c.Pin, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// Len returns the number of changes recorded so far.
func (t *Timeline) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.changes)
}

// Bank is a set of simulated pins sharing one Timeline.
type Bank struct {
	Timeline Timeline

	mu   sync.Mutex
	pins map[string]*Pin
	now  func() time.Time
}

// NewBank returns an empty bank. Its timeline uses time.Now, which a test
// running under testing/synctest sees as fake time.
func NewBank() *Bank {
	return &Bank{pins: make(map[string]*Pin), now: time.Now}
}

// Pin returns the pin with the given name, creating it at Low if it does not
// exist yet. The name must start with Prefix.
func (b *Bank) Pin(name string) (*Pin, error) {
	if !strings.HasPrefix(name, Prefix) || len(name) == len(Prefix) {
		return nil, fmt.Errorf("gpiosim: %q is not a simulated line name (want %sNAME, e.g. sim:slot1.power)", name, Prefix)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.pins[name]; ok {
		return p, nil
	}
	p := &Pin{name: name, num: len(b.pins), bank: b, level: gpio.Low}
	b.pins[name] = p
	return p, nil
}

// MustPin is Pin for names known to be valid; it panics otherwise.
func (b *Bank) MustPin(name string) *Pin {
	p, err := b.Pin(name)
	if err != nil {
		panic(err)
	}
	return p
}

// Lookup returns the pin with the given name, or nil.
func (b *Bank) Lookup(name string) *Pin {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pins[name]
}

// Names returns the names of every pin, sorted.
func (b *Bank) Names() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.pins))
	for n := range b.pins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Pin is a simulated GPIO line. It implements gpio.PinIO.
type Pin struct {
	name string
	num  int
	bank *Bank

	mu        sync.Mutex
	level     gpio.Level
	output    bool
	fail      error
	listeners []func(gpio.Level)
}

var _ gpio.PinIO = (*Pin)(nil)

// ErrInput is returned by Out when the pin was last configured as an input
// by In and cannot be driven; it is never returned by the default pins, which
// start as outputs.
var ErrInput = errors.New("gpiosim: pin is an input")

// Listen adds f to the functions called with the new level each time the pin
// is driven. f runs on the goroutine that called Out, after the change is on
// the timeline, and must not call Out on the same pin.
func (p *Pin) Listen(f func(gpio.Level)) {
	p.mu.Lock()
	p.listeners = append(p.listeners, f)
	p.mu.Unlock()
}

// Fail makes every later Out return err (nil clears it), to simulate a broken
// line driver or expander. A failed Out changes nothing.
func (p *Pin) Fail(err error) {
	p.mu.Lock()
	p.fail = err
	p.mu.Unlock()
}

// Level returns the level the pin is driven to.
func (p *Pin) Level() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// String implements conn.Resource.
func (p *Pin) String() string { return p.name }

// Halt implements conn.Resource. It does nothing: what is safe for a line
// depends on what it switches, which the gpio package knows, not the pin.
func (p *Pin) Halt() error { return nil }

// Name implements pin.Pin.
func (p *Pin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *Pin) Number() int { return p.num }

// Function implements pin.Pin.
func (p *Pin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *Pin) Func() pin.Func {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.output {
		return gpio.IN
	}
	if p.level {
		return gpio.OUT_HIGH
	}
	return gpio.OUT_LOW
}

// In implements gpio.PinIn. Reading a simulated output line returns the level
// last driven, as reading back a real output does.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	p.output = false
	p.mu.Unlock()
	return nil
}

// Read implements gpio.PinIn.
func (p *Pin) Read() gpio.Level { return p.Level() }

// WaitForEdge implements gpio.PinIn; simulated lines have no inputs that change
// by themselves, so it waits for the timeout and reports no edge.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	if timeout > 0 {
		time.Sleep(timeout)
	}
	return false
}

// Pull implements gpio.PinIn.
func (p *Pin) Pull() gpio.Pull { return gpio.Float }

// DefaultPull implements gpio.PinIn.
func (p *Pin) DefaultPull() gpio.Pull { return gpio.Float }

// Out implements gpio.PinOut. It records the change on the bank's timeline,
// even when the level does not change (the station drove it), then calls the
// listeners.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	if p.fail != nil {
		err := p.fail
		p.mu.Unlock()
		return fmt.Errorf("gpiosim: %s: %w", p.name, err)
	}
	p.output = true
	p.level = l
	ls := slices.Clone(p.listeners)
	p.bank.Timeline.add(Change{Time: p.bank.now(), Pin: p.name, Level: l})
	p.mu.Unlock()
	for _, f := range ls {
		f(l)
	}
	return nil
}

// PWM implements gpio.PinOut; simulated lines have no PWM.
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("gpiosim: %s: PWM not supported", p.name)
}
