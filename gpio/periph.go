package gpio

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// hostInit loads periph.io's host drivers once, on the first open of a
// real pin or bus: on a Pi, the Linux GPIO character device (gpioioctl,
// https://docs.kernel.org/userspace-api/gpio/chardev.html) and the I2C
// buses. Nothing touches hardware before.
var hostInit = sync.OnceValue(func() error {
	_, err := host.Init()
	return err
})

// PiPrefix starts the names of a Raspberry Pi's header pins as the kernel's
// GPIO character device names them ("GPIO17" is header pin 11).
const PiPrefix = "GPIO"

// PeriphPrefix starts any other name periph.io's gpioreg knows
// ("periph:GPIO17", "periph:gpiochip0-GPIO17"): the prefix is dropped
// before the lookup.
const PeriphPrefix = "periph:"

// Periph opens pins registered with periph.io's gpioreg: on a Pi, the header
// pins through the Linux GPIO character device. The zero value initialises
// periph's host drivers on its first Open.
type Periph struct {
	// Init loads the drivers; nil is host.Init, once per process.
	Init func() error
	// ByName finds a pin; nil is gpioreg.ByName.
	ByName func(name string) pgpio.PinIO
	// Names lists the known pins for error messages; nil is gpioreg.All.
	Names func() []string
}

// Register makes r open Pi header names ("GPIO17") and "periph:" names
// through p.
func (p *Periph) Register(r *Registry) {
	r.Register(PiPrefix, "Linux GPIO character device", p.Open)
	r.Register(PeriphPrefix, "periph.io gpioreg", p.Open)
}

// Open returns the pin with the given name, loading the drivers first if
// needed. It does not drive the pin.
func (p *Periph) Open(name string) (pgpio.PinIO, error) {
	init := p.Init
	if init == nil {
		init = hostInit
	}
	if err := init(); err != nil {
		return nil, fmt.Errorf("initialise the host's GPIO drivers: %w (is /dev/gpiochip0 there, and may the station open it?)", err)
	}
	byName := p.ByName
	if byName == nil {
		byName = gpioreg.ByName
	}
	look := strings.TrimPrefix(name, PeriphPrefix)
	if pin := byName(look); pin != nil {
		return pin, nil
	}
	names := p.names()
	hint := "no GPIO pins are known on this machine: is it a Pi, and is the gpio character device enabled?"
	if len(names) > 0 {
		shown := names
		if len(shown) > 12 {
			shown = shown[:12]
		}
		hint = fmt.Sprintf("known pins: %s", strings.Join(shown, ", "))
		if len(names) > len(shown) {
			hint += fmt.Sprintf(" and %d more", len(names)-len(shown))
		}
	}
	return nil, fmt.Errorf("no pin %q (%s)", look, hint)
}

func (p *Periph) names() []string {
	var out []string
	if p.Names != nil {
		out = slices.Clone(p.Names())
	} else {
		for _, pin := range gpioreg.All() {
			out = append(out, pin.Name())
		}
	}
	slices.SortFunc(out, comparePinNames)
	return out
}

// comparePinNames orders GPIO2 before GPIO10.
func comparePinNames(a, b string) int {
	ta, tb := strings.TrimRight(a, "0123456789"), strings.TrimRight(b, "0123456789")
	if ta != tb || len(a) == len(b) {
		return strings.Compare(a, b)
	}
	return len(a) - len(b)
}
