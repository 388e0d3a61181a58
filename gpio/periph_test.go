package gpio_test

import (
	"errors"
	"strings"
	"testing"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
)

// fakeHeader is a Pi header as periph's gpioreg would list it, its pins
// simulated.
func fakeHeader(initErr error) (*gpio.Periph, map[string]*gpiosim.Pin, *int) {
	bank := gpiosim.NewBank()
	pins := map[string]*gpiosim.Pin{}
	var names []string
	for _, n := range []string{"GPIO2", "GPIO3", "GPIO4", "GPIO17", "GPIO22", "GPIO27", "GPIO5", "GPIO6", "GPIO10", "GPIO11", "GPIO12", "GPIO13", "GPIO19", "GPIO26"} {
		pins[n] = bank.MustPin("sim:header." + n)
		names = append(names, n)
	}
	inits := 0
	return &gpio.Periph{
		Init: func() error { inits++; return initErr },
		ByName: func(name string) pgpio.PinIO {
			if p, ok := pins[name]; ok {
				return p
			}
			return nil
		},
		Names: func() []string { return names },
	}, pins, &inits
}

func TestPeriphOpen(t *testing.T) {
	p, pins, inits := fakeHeader(nil)
	var reg gpio.Registry
	p.Register(&reg)
	bank := gpiosim.NewBank()
	reg.Register(gpiosim.Prefix, "simulated lines", func(name string) (pgpio.PinIO, error) { return bank.Pin(name) })

	pin, err := reg.Open("GPIO17")
	if err != nil || pin != pins["GPIO17"] {
		t.Fatalf("Open(GPIO17) = %v, %v; want the header's GPIO17", pin, err)
	}
	l := gpio.NewLine("GPIO17", gpio.Power, pgpio.Low, pin)
	if err := l.Set(true); err != nil || pins["GPIO17"].Level() != pgpio.Low {
		t.Errorf("asserting an active-low power line: %v, level %v; want Low", err, pins["GPIO17"].Level())
	}
	if err := l.Halt(); err != nil || pins["GPIO17"].Level() != pgpio.High {
		t.Errorf("Halt: %v, level %v; want High", err, pins["GPIO17"].Level())
	}
	if pin, err := reg.Open("periph:GPIO27"); err != nil || pin != pins["GPIO27"] {
		t.Errorf("Open(periph:GPIO27) = %v, %v", pin, err)
	}
	if _, err := reg.Open("sim:slot1.power"); err != nil {
		t.Errorf("sim names still go to the sim backend: %v", err)
	}
	if *inits != 2 {
		t.Errorf("Init ran %d times for 2 opens, want 2 calls (the default is once per process)", *inits)
	}

	_, err = reg.Open("GPIO99")
	for _, want := range []string{`line "GPIO99" (Linux GPIO character device)`, `no pin "GPIO99"`, "known pins: GPIO2, GPIO3, GPIO4, GPIO5, GPIO6, GPIO10", "and 2 more"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(GPIO99) = %v, want it to say %q", err, want)
		}
	}
}

func TestPeriphInitFails(t *testing.T) {
	p, _, _ := fakeHeader(errors.New("/dev/gpiochip0: permission denied"))
	_, err := p.Open("GPIO17")
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "/dev/gpiochip0") {
		t.Errorf("Open with failing drivers = %v", err)
	}
}

func TestPeriphNoPins(t *testing.T) {
	p := &gpio.Periph{Init: func() error { return nil }, ByName: func(string) pgpio.PinIO { return nil }, Names: func() []string { return nil }}
	_, err := p.Open("GPIO17")
	if err == nil || !strings.Contains(err.Error(), "no GPIO pins are known on this machine") {
		t.Errorf("Open on a machine without pins = %v", err)
	}
}

// TestPeriphRealHost runs the real driver initialisation: on a machine
// without a Pi header it must fail with a clear error, not panic or hang.
func TestPeriphRealHost(t *testing.T) {
	var p gpio.Periph
	pin, err := p.Open("GPIO17")
	if err == nil {
		t.Skipf("this machine has a GPIO17 (%s): a Pi", pin)
	}
	t.Logf("Open(GPIO17) here: %v", err)
	if !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("Open(GPIO17) here = %v, want an error naming the pin", err)
	}
}
