package simbench

import (
	"fmt"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// brownoutOff is how long a brownout keeps the unit off before the supply
// recovers (when the relay is still on).
const brownoutOff = 20 * time.Millisecond

// flasher is a model whose flash the bench can reach.
type flasher interface{ Flash() *sim.Flash }

// Inject arms f on the unit: line faults on its serial line, flash faults in
// its flash, a brownout that cuts and restores its power, a port flap that
// unplugs and replugs its port, a NACK storm through its model's own knob.
// It replaces what was armed; a zero Faults disarms everything. A fault the
// unit's kind cannot carry out is an error naming it.
func (u *Unit) Inject(f sim.Faults) error {
	relayOn := func() bool { return u.Power.Func() != pgpio.IN && u.Power.Level() == pgpio.High }
	if err := Arm(u.Model, u.Device, f, relayOn, u.flap); err != nil {
		return fmt.Errorf("simbench: slot %d (%s): %w", u.Spec.Slot, u.Kind.Name, err)
	}
	return nil
}

// Arm arms f on a unit built from model m running as dev: relayOn says
// whether its power relay is on (a brownout's power comes back only then),
// flap unplugs its port for a while and plugs it back (nil: a flap is an
// error). Unit.Inject arms a bench unit; `unbrick sim --faults` a lone one.
func Arm(m sim.Model, dev *sim.Device, f sim.Faults, relayOn func() bool, flap func(time.Duration)) error {
	flashFaults := f.Brownout > 0 || f.HasBadPage || f.SlowErase > 0
	fl, hasFlash := m.(flasher)
	if flashFaults && !hasFlash {
		return fmt.Errorf("brownout, bad-page and slow-erase need a modelled flash, which this kind has not")
	}
	if f.HasBadPage && hasFlash {
		if _, ok := fl.Flash().UnitAt(f.BadPage); !ok {
			return fmt.Errorf("bad-page 0x%X is not in the unit's flash %v", f.BadPage, fl.Flash().Region())
		}
	}
	if f.Flap > 0 && flap == nil {
		return fmt.Errorf("a port flap needs a port that can be unplugged")
	}
	if f.NACKs > 0 {
		switch m := m.(type) {
		case *stm32sim.Model:
			m.SetFaults(stm32sim.Faults{NACKWrites: f.NACKs})
		case *espsim.Model:
			// The ESP ROM's refusal of a block is its failure status.
			m.SetFaults(espsim.Faults{GarbleBlocks: f.NACKs})
		default:
			return fmt.Errorf("a NACK storm is modelled for STM32 and ESP units only")
		}
	}
	if hasFlash {
		fl.Flash().SetFaults(f, func() {
			go func() {
				dev.SetPower(false)
				time.Sleep(brownoutOff)
				dev.SetPower(relayOn())
			}()
		})
	}
	var onRx func(int)
	if f.Flap > 0 {
		var once sync.Once
		onRx = func(total int) {
			if total >= f.FlapAfter {
				// Called with the line's lock held: flap elsewhere.
				once.Do(func() { go flap(f.Flap) })
			}
		}
	}
	dev.Line.SetFaults(f, onRx)
	return nil
}

// flap unplugs the unit's port for d and plugs it back in, unless the unit
// was taken off the bench meanwhile.
func (u *Unit) flap(d time.Duration) {
	u.Unplug()
	time.Sleep(d)
	if u.closed() {
		return
	}
	_ = u.Plug()
}

func (u *Unit) closed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gone
}

// AdapterStatus answers for the simulated USB-serial adapter of the unit
// whose port link is path, as serialport.Opener.Status asks: an adapter
// made silent (sim.Faults.AdapterSilent) fails, as a wedged adapter fails
// its control requests. For any other path it has nothing to say.
func (b *Bench) AdapterStatus(path string) error {
	for _, u := range b.Units() {
		if u.Link != path {
			continue
		}
		if u.Device.Line.AdapterSilent() {
			return fmt.Errorf("the adapter does not answer its modem status request")
		}
		return nil
	}
	return nil
}
