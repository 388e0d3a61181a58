package espsim

import (
	"sync"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// AutoReset is a development board's auto-reset circuit between a USB
// adapter's DTR and RTS and a unit's EN and GPIO0: two cross-wired
// transistors, so that EN is low only while RTS is on and DTR off, and
// GPIO0 low only while DTR is on and RTS off. EN has an RC delay: it rises
// ENDelay after it is released, and the ROM samples GPIO0 then, which is
// why esptool's sequences work although they set the lines one at a time.
//
// It implements bootloader.ModemLines and esprom.DTRRTSSetter, so a test
// can pair it with a sim.PipeHost to make a port whose DTR and RTS reach
// the unit (a pseudo-terminal has no modem lines).
type AutoReset struct {
	Dev     *sim.Device
	ENDelay time.Duration // 0 means 1 ms

	mu       sync.Mutex
	dtr, rts bool
	held     bool
	timer    *time.Timer
}

// NewAutoReset returns the circuit wired to d, with both lines off.
func NewAutoReset(d *sim.Device) *AutoReset { return &AutoReset{Dev: d} }

// SetDTR sets DTR.
func (a *AutoReset) SetDTR(on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dtr = on
	a.applyLocked()
	return nil
}

// SetRTS sets RTS.
func (a *AutoReset) SetRTS(on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rts = on
	a.applyLocked()
	return nil
}

// SetDTRRTS sets both lines at once.
func (a *AutoReset) SetDTRRTS(dtr, rts bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dtr, a.rts = dtr, rts
	a.applyLocked()
	return nil
}

func (a *AutoReset) applyLocked() {
	a.Dev.SetBoot(a.dtr && !a.rts) // GPIO0 low: download mode
	enLow := a.rts && !a.dtr
	if enLow {
		if a.timer != nil {
			a.timer.Stop()
			a.timer = nil
		}
		if !a.held {
			a.held = true
			a.Dev.SetReset(true)
		}
		return
	}
	if !a.held || a.timer != nil {
		return
	}
	d := a.ENDelay
	if d <= 0 {
		d = time.Millisecond
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.timer != t {
			return // EN was pulled low again meanwhile
		}
		a.timer = nil
		a.held = false
		a.Dev.SetReset(false)
	})
	a.timer = t
}
