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
	flashFaults := f.Brownout > 0 || f.HasBadPage || f.SlowErase > 0
	fl, hasFlash := u.Model.(flasher)
	if flashFaults && !hasFlash {
		return fmt.Errorf("simbench: slot %d (%s): brownout, bad-page and slow-erase need a modelled flash, which this kind has not", u.Spec.Slot, u.Kind.Name)
	}
	if f.HasBadPage && hasFlash {
		if _, ok := fl.Flash().UnitAt(f.BadPage); !ok {
			return fmt.Errorf("simbench: slot %d (%s): bad-page 0x%X is not in the unit's flash %v", u.Spec.Slot, u.Kind.Name, f.BadPage, fl.Flash().Region())
		}
	}
	if f.NACKs > 0 {
		switch m := u.Model.(type) {
		case *stm32sim.Model:
			m.SetFaults(stm32sim.Faults{NACKWrites: f.NACKs})
		case *espsim.Model:
			// The ESP ROM's refusal of a block is its failure status.
			m.SetFaults(espsim.Faults{GarbleBlocks: f.NACKs})
		default:
			return fmt.Errorf("simbench: slot %d (%s): a NACK storm is modelled for STM32 and ESP units only", u.Spec.Slot, u.Kind.Name)
		}
	}
	if hasFlash {
		fl.Flash().SetFaults(f, func() { go u.brownout() })
	}
	var onRx func(int)
	if f.Flap > 0 {
		var once sync.Once
		onRx = func(total int) {
			if total >= f.FlapAfter {
				// Called with the line's lock held: flap elsewhere.
				once.Do(func() { go u.flap(f.Flap) })
			}
		}
	}
	u.Device.Line.SetFaults(f, onRx)
	return nil
}

// brownout cuts the unit's power for a moment; it comes back only if its
// relay is still on.
func (u *Unit) brownout() {
	u.Device.SetPower(false)
	time.Sleep(brownoutOff)
	u.Device.SetPower(u.Power.Func() != pgpio.IN && u.Power.Level() == pgpio.High)
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
