// Package simbench builds the virtual bench: simulated units of every
// supported family, each on its own pseudo-terminal with a stable link
// (like /dev/serial/by-path), and wired to simulated GPIO lines for its
// power relay, boot strap and reset, as a real bench wires a slot.
//
// The bench is a product feature: the demo, operator training and testing a
// recipe before release run on it. The station drives it exactly as it drives
// hardware: it opens the links through go.bug.st/serial and the lines through
// the gpio package's "sim:" backend.
package simbench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/sim"
)

// Kind describes a simulated part the bench can build.
type Kind struct {
	Name     string // "stm32f103"
	Protocol string // "stm32", "esprom", "avr" or "uboot"
	Chip     uint32 // the chip id its bootloader reports (STM32 PID, ESP magic, AVR signature)
	// Strap is the level of the boot-strap pin that selects the ROM
	// bootloader (STM32 BOOT0 high, ESP GPIO0 low). HasStrap is false for
	// parts without one (optiboot enters on reset, U-Boot on a key).
	Strap    pgpio.Level
	HasStrap bool
	// ResetActive is the level of the reset pin that holds the unit in
	// reset (NRST and EN are active low).
	ResetActive pgpio.Level
	// Line is the line configuration the part's UART needs (an autobauding
	// ROM follows the host: Baud 0).
	Line sim.LineConfig
	// ConsoleBaud is the rate of the application's console.
	ConsoleBaud int
	// New builds a unit's firmware model in the given state.
	New func(u Spec) (sim.Model, error)
	// Label, if set, returns the serial number on the barcode label of a
	// unit whose chip has no identity its bootloader can report (an AVR):
	// what the operator scans.
	Label func(u Spec) string
	// Image builds a good application image for this part and the address
	// (or storage offset) it goes to.
	Image func(version, board string) (data []byte, addr uint32, err error)
}

// State is how a unit arrives on the bench.
type State string

// Unit states.
const (
	Good    State = "good"    // a valid application of Spec.Version
	Bricked State = "bricked" // a failed upgrade: the application is corrupt
	Erased  State = "erased"  // nothing in flash at all
	AppOnly State = "app-bad" // only the application region is damaged, the rest is intact
)

// Spec says which unit to build for a slot.
type Spec struct {
	Slot     int
	Kind     string // a Kind name
	Board    string // the board/model name its application expects, e.g. "sensor-b"
	Revision string // hardware revision, as its label says
	State    State
	Version  string // version of the application it holds when State is Good
	Seed     uint64 // makes its unique ID/MAC differ from other units
	Fast     bool   // no line pacing (tests)
	// Options are kind-specific: "stay": "true" keeps a bootloader that
	// times out (optiboot) waiting for ever.
	Options map[string]string
	// Faults are armed on the unit when it is added (see Unit.Inject).
	Faults sim.Faults
}

// Unit is one simulated unit in its slot.
type Unit struct {
	Spec   Spec
	Kind   *Kind
	Model  sim.Model
	Device *sim.Device
	Link   string // the stable path of its serial port

	Power, Boot, Reset *gpiosim.Pin

	mu   sync.Mutex
	pty  *sim.PTY
	gone bool // taken off the bench
}

// LineNames returns the simulated line names of slot n.
func LineNames(n int) (power, boot, reset string) {
	p := fmt.Sprintf("%sslot%d.", gpiosim.Prefix, n)
	return p + "power", p + "boot", p + "reset"
}

// Bench is a set of simulated units on one gpiosim Bank.
type Bench struct {
	Dir   string // where the port links live
	Bank  *gpiosim.Bank
	kinds map[string]*Kind

	mu    sync.Mutex
	units map[int]*Unit
	wired map[string]bool // pins whose changes reach their slot's unit
}

// listen makes pin p's changes reach whichever unit is in slot n when they
// happen. The pin keeps one listener for the slot whatever units come and
// go, so a unit taken off the bench hears nothing more and is not kept
// alive by the pin.
func (b *Bench) listen(p *gpiosim.Pin, n int, f func(u *Unit, l pgpio.Level)) {
	b.mu.Lock()
	if b.wired == nil {
		b.wired = map[string]bool{}
	}
	first := !b.wired[p.Name()]
	b.wired[p.Name()] = true
	b.mu.Unlock()
	if first {
		p.Listen(func(l pgpio.Level) {
			if u, ok := b.Unit(n); ok {
				f(u, l)
			}
		})
	}
}

// New returns an empty bench whose port links live in dir, knowing the given
// kinds of part.
func New(dir string, kinds []*Kind) (*Bench, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("simbench: %w", err)
	}
	b := &Bench{Dir: dir, Bank: gpiosim.NewBank(), kinds: map[string]*Kind{}, units: map[int]*Unit{}}
	for _, k := range kinds {
		b.kinds[k.Name] = k
	}
	return b, nil
}

// Kind returns the kind with the given name.
func (b *Bench) Kind(name string) (*Kind, bool) {
	k, ok := b.kinds[name]
	return k, ok
}

// Kinds returns the names of every kind, sorted.
func (b *Bench) Kinds() []string {
	var n []string
	for k := range b.kinds {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// PortPath returns the stable port path of slot n, whether or not a unit is
// plugged in.
func (b *Bench) PortPath(n int) string { return filepath.Join(b.Dir, fmt.Sprintf("slot%d", n)) }

// Add builds a unit and wires it to its slot's lines, unplugged. Call Plug
// to make its port appear.
func (b *Bench) Add(s Spec) (*Unit, error) {
	k, ok := b.kinds[s.Kind]
	if !ok {
		return nil, fmt.Errorf("simbench: slot %d: unknown kind %q (known: %v)", s.Slot, s.Kind, b.Kinds())
	}
	b.mu.Lock()
	if _, dup := b.units[s.Slot]; dup {
		b.mu.Unlock()
		return nil, fmt.Errorf("simbench: slot %d already holds a unit", s.Slot)
	}
	b.mu.Unlock()
	m, err := k.New(s)
	if err != nil {
		return nil, fmt.Errorf("simbench: slot %d (%s): %w", s.Slot, s.Kind, err)
	}
	cfg := k.Line
	cfg.Fast = cfg.Fast || s.Fast
	line := sim.NewLine(cfg)
	u := &Unit{Spec: s, Kind: k, Model: m, Link: b.PortPath(s.Slot)}
	u.Device = sim.NewDevice(fmt.Sprintf("slot%d-%s", s.Slot, s.Kind), m, line)

	pn, bn, rn := LineNames(s.Slot)
	u.Power, u.Boot, u.Reset = b.Bank.MustPin(pn), b.Bank.MustPin(bn), b.Bank.MustPin(rn)
	b.listen(u.Power, s.Slot, func(u *Unit, l pgpio.Level) { u.Device.SetPower(l == pgpio.High) })
	b.listen(u.Boot, s.Slot, func(u *Unit, l pgpio.Level) {
		if u.Kind.HasStrap {
			u.Device.SetBoot(l == u.Kind.Strap)
		}
	})
	if k.HasStrap {
		u.Device.SetBoot(u.Boot.Func() != pgpio.IN && u.Boot.Level() == k.Strap)
	}
	b.listen(u.Reset, s.Slot, func(u *Unit, l pgpio.Level) { u.Device.SetReset(l == u.Kind.ResetActive) })
	u.Device.SetReset(u.Reset.Level() == k.ResetActive && u.Reset.Func() != pgpio.IN)
	u.Device.SetPower(u.Power.Level() == pgpio.High && u.Power.Func() != pgpio.IN)

	if !s.Faults.Zero() {
		if err := u.Inject(s.Faults); err != nil {
			u.Device.Close()
			return nil, err
		}
	}
	b.mu.Lock()
	b.units[s.Slot] = u
	b.mu.Unlock()
	return u, nil
}

// Unit returns the unit in slot n.
func (b *Bench) Unit(n int) (*Unit, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.units[n]
	return u, ok
}

// Units returns every unit in slot order.
func (b *Bench) Units() []*Unit {
	b.mu.Lock()
	defer b.mu.Unlock()
	var us []*Unit
	for _, u := range b.units {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i].Spec.Slot < us[j].Spec.Slot })
	return us
}

// Remove unplugs the unit in slot n, powers it off and takes it off the
// bench, as an operator does when a job is over.
func (b *Bench) Remove(n int) {
	b.mu.Lock()
	u, ok := b.units[n]
	delete(b.units, n)
	b.mu.Unlock()
	if ok {
		u.Close()
	}
}

// Close removes every unit.
func (b *Bench) Close() {
	for _, u := range b.Units() {
		b.Remove(u.Spec.Slot)
	}
}

// Plug makes the unit's port appear at its link, as plugging its USB-serial
// cable in does.
func (u *Unit) Plug() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pty != nil {
		return nil
	}
	p, err := sim.OpenPTY(u.Link)
	if err != nil {
		return err
	}
	u.pty = p
	u.Device.Line.Attach(p)
	return nil
}

// Unplug makes the unit's port vanish under whoever holds it open.
func (u *Unit) Unplug() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pty == nil {
		return
	}
	u.Device.Line.Detach()
	u.pty = nil
}

// Plugged reports whether the unit's port is present.
func (u *Unit) Plugged() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pty != nil
}

// Close unplugs the unit and powers it off.
func (u *Unit) Close() {
	u.mu.Lock()
	u.gone = true
	u.mu.Unlock()
	u.Unplug()
	u.Device.Close()
}
