package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/step"
)

// unit is the unit in the slot as its job drives it: a state machine with
// the states and transitions of package step (off, bootloader, application;
// enter, boot, reset, boot fallback slot, power off). target is the
// protocol's client, set exactly while the unit is in its bootloader.
type unit struct {
	state      step.State
	target     Target
	ident      Identity
	identified bool
}

// to records that the unit reached state s (with the bootloader's target
// when s is step.Bootloader).
func (u *unit) to(s step.State, t Target) {
	if s != step.Bootloader {
		t = nil
	}
	u.state, u.target = s, t
}

// may checks that transition t may start from the unit's state: an
// impossible transition is a recipe error, whatever the step.
func (u *run) may(t step.Transition, what string) error {
	if step.Allowed(t, u.unit.state, len(u.plan.Boot) > 0) {
		return nil
	}
	m := step.Transitions[t]
	need := "nothing"
	if len(m.From) == 1 {
		need = m.From[0].What()
	}
	return &Failure{Class: "recipe-error", Fault: StationFault,
		Reason: fmt.Sprintf("%s: cannot %s the unit while it is %s: it needs %s", what, t, u.unit.state, need), Hint: hintSetup}
}

// enter runs the entry sequence and connects to the bootloader: any state
// to bootloader.
func (u *run) enter(ctx context.Context) error {
	if err := u.may(step.Enter, "enter"); err != nil {
		return err
	}
	// Until the bootloader answers, the unit is in no state a step can use.
	u.unit.to(step.Off, nil)
	if err := u.toBootloader(); err != nil {
		return err
	}
	d := u.r.Drivers[u.plan.Protocol]
	reset := func(ctx context.Context) error {
		if f := u.runActions(ctx, u.plan.Entry); f != nil {
			return f
		}
		return nil
	}
	t, id, err := d.Connect(ctx, u.port, u.plan, reset)
	if err != nil {
		var te *bootloader.TimeoutError
		if errors.As(err, &te) {
			return &Failure{Class: "no-sync", Fault: UnitFault,
				Reason: fmt.Sprintf("the unit's bootloader did not answer: %v", err), Hint: hintNoSync, Err: err}
		}
		return err
	}
	if l, ok := t.(interface{ SetLog(func(string)) }); ok {
		// The target's notes (the link's rate, a step down) go to the log
		// and to the step's record.
		l.SetLog(func(msg string) {
			u.notes = append(u.notes, msg)
			u.logf("%s", msg)
		})
	}
	if f := u.identify(ctx, id); f != nil {
		return f
	}
	u.unit.ident = id
	u.unit.to(step.Bootloader, t)
	return nil
}

// identify checks the identity the bootloader reported against the plan
// and the unit seen before in this job, and records the unit once.
func (u *run) identify(ctx context.Context, id Identity) *Failure {
	if u.plan.Chip != 0 && id.Chip != u.plan.Chip {
		return &Failure{Class: "wrong-chip", Fault: UnitFault,
			Reason: fmt.Sprintf("the unit is a %s (chip 0x%X), but recipe %s is for chip 0x%X", id.ChipName, id.Chip, u.plan.Recipe, u.plan.Chip),
			Hint:   "check the unit's label and the slot's recipe: this is another board"}
	}
	serial := id.Serial
	if serial == "" {
		serial = u.j.Serial
	}
	if serial == "" {
		return &Failure{Class: "no-identity", Fault: StationFault,
			Reason: "the unit has no serial number its bootloader can read and none was scanned",
			Hint:   "scan the unit's barcode label for this slot, then start again"}
	}
	if prev := u.unit.ident.Serial; prev != "" && id.Serial != "" && id.Serial != prev {
		return &Failure{Class: "unit-changed", Fault: StationFault,
			Reason: fmt.Sprintf("the unit in slot %d changed during the job: it was %s, it is now %s", u.slot.Num, prev, id.Serial),
			Hint:   "do not swap units while a job runs; start the new unit's job"}
	}
	if u.unit.identified {
		return nil
	}
	u.res.Serial = serial
	err := u.r.Rec.UnitIdentified(ctx, u.res.Attempt, UnitInfo{Serial: serial, Protocol: u.plan.Protocol,
		Chip: id.ChipName, Revision: u.j.Revision, Model: u.plan.Model})
	if err != nil {
		return &Failure{Class: "record-error", Fault: StationFault, Reason: fmt.Sprintf("cannot record unit %s: %v", serial, err), Hint: hintSetup, Err: err}
	}
	u.unit.identified = true
	u.emit(Event{Kind: KindLog, Serial: serial, Text: fmt.Sprintf("identified %s %s", id.ChipName, serial)})
	return nil
}

// boot starts the application: the plan's boot sequence from any state, or
// without one the bootloader's own way out (bootloader to application).
func (u *run) boot(ctx context.Context) error {
	if len(u.plan.Boot) == 0 {
		s, ok := u.unit.target.(Starter)
		if u.unit.state == step.Bootloader && !ok {
			return &Failure{Class: "recipe-error", Fault: StationFault,
				Reason: fmt.Sprintf("recipe %s has no boot sequence and its bootloader cannot start the application by itself", u.plan.Recipe), Hint: hintSetup}
		}
		if err := u.may(step.BootApp, "boot"); err != nil {
			return err
		}
		if f := u.toConsole(ctx); f != nil {
			return f
		}
		if err := s.Start(ctx); err != nil {
			return err
		}
	} else {
		if f := u.toConsole(ctx); f != nil {
			return f
		}
		if f := u.runActions(ctx, u.plan.Boot); f != nil {
			return f
		}
	}
	u.unit.to(step.Application, nil)
	return nil
}

// reset power-cycles the unit, strap released, into its application: any
// state to application.
func (u *run) reset(ctx context.Context) error {
	if f := u.toConsole(ctx); f != nil {
		return f
	}
	if f := u.runActions(ctx, powerCycle(50*time.Millisecond)); f != nil {
		return f
	}
	u.unit.to(step.Application, nil)
	return nil
}

// bootSlot has an A/B bootloader boot the named slot: bootloader to
// application.
func (u *run) bootSlot(ctx context.Context, slot string) error {
	if err := u.may(step.BootSlot, "boot_slot"); err != nil {
		return err
	}
	sb, ok := u.unit.target.(SlotBooter)
	if !ok {
		return &Failure{Class: "recipe-error", Fault: StationFault,
			Reason: fmt.Sprintf("boot_slot: the %s bootloader has no A/B slots", u.plan.Protocol), Hint: hintSetup}
	}
	if err := sb.BootSlot(ctx, slot); err != nil {
		return err
	}
	u.unit.to(step.Application, nil)
	if f := u.toConsole(ctx); f != nil {
		return f
	}
	return nil
}

// powerOff switches the unit off: any state to off.
func (u *run) powerOff(ctx context.Context) error {
	err := u.slot.set(ctx, gpio.Power, false)
	u.unit.to(step.Off, nil)
	return err
}

// powerCycle is power off, strap released, a pause, power on.
func powerCycle(pause time.Duration) []Action {
	return []Action{{Kind: ActSet, Role: gpio.Power, On: false}, {Kind: ActSet, Role: gpio.Boot, On: false},
		{Kind: ActWait, Wait: pause}, {Kind: ActSet, Role: gpio.Power, On: true}}
}

// toBootloader sets the port for the bootloader's protocol.
func (u *run) toBootloader() error {
	// Always: a driver may have raised the rate for the transfer
	// (CHANGE_BAUDRATE) or the console left it elsewhere.
	if bs, ok := u.port.(bootloader.BaudSetter); ok && u.plan.Port.Baud != 0 {
		if err := bs.SetBaud(u.plan.Port.Baud); err != nil {
			return err
		}
	}
	if ps, ok := u.port.(bootloader.ParitySetter); ok && consoleParityDiffers(u.plan) {
		return ps.SetParity(u.plan.Port.Parity)
	}
	return nil
}

// consoleParityDiffers reports whether the bootloader's parity is not the
// console's: the STM32 ROM speaks 8E1 (AN3155), and applications' consoles
// 8N1 (recipes name no console parity).
func consoleParityDiffers(p *Plan) bool { return p.Port.Parity != "" && p.Port.Parity != "none" }

// toConsole sets the port for the application's console and drops what
// the bootloader left in it.
func (u *run) toConsole(ctx context.Context) *Failure {
	if ir, ok := u.port.(bootloader.InputResetter); ok {
		ir.ResetInputBuffer()
	}
	baud := u.plan.ConsoleBaud
	if baud == 0 {
		baud = u.plan.Port.Baud
	}
	if bs, ok := u.port.(bootloader.BaudSetter); ok && baud != 0 {
		if err := bs.SetBaud(baud); err != nil {
			return classify("console baud", err)
		}
	}
	if ps, ok := u.port.(bootloader.ParitySetter); ok && consoleParityDiffers(u.plan) {
		if err := ps.SetParity("none"); err != nil {
			return classify("console parity", err)
		}
	}
	u.console.Mark()
	return nil
}

// runActions runs an entry or boot sequence. A timing window whose upper end
// passed (a loaded station) fails the sequence: the unit may not have seen
// the levels it needs.
func (u *run) runActions(ctx context.Context, acts []Action) *Failure {
	last := time.Now()
	for _, a := range acts {
		switch a.Kind {
		case ActSet:
			if err := u.slot.set(ctx, a.Role, a.On); err != nil {
				return classify("set "+string(a.Role), err)
			}
		case ActWait:
			if err := bootloader.Sleep(ctx, a.Wait); err != nil {
				return classify("wait", err)
			}
			if a.Max > 0 {
				if took := time.Since(last); took > a.Max {
					return &Failure{Class: "timing-window", Fault: StationFault,
						Reason: fmt.Sprintf("%s: the wait took %v, past its window of %v-%v", a.Pos, took.Round(time.Millisecond), a.Wait, a.Max),
						Hint:   "the station is overloaded; start the unit again"}
				}
			}
		case ActPulse:
			if err := u.slot.set(ctx, a.Role, true); err != nil {
				return classify("pulse "+string(a.Role), err)
			}
			err := bootloader.Sleep(ctx, a.Wait)
			if e := u.slot.set(ctx, a.Role, false); err == nil {
				err = e
			}
			if err != nil {
				return classify("pulse "+string(a.Role), err)
			}
		case ActModem:
			ml, ok := u.port.(bootloader.ModemLines)
			if !ok || u.r.ModemReset == nil {
				return &Failure{Class: "no-modem-lines", Fault: StationFault,
					Reason: fmt.Sprintf("%s: the %s reset needs the adapter's DTR/RTS, which slot %d's port does not have", a.Pos, a.Modem, u.slot.Num),
					Hint:   "use a slot wired with GPIO lines, or an adapter with DTR/RTS"}
			}
			if err := u.r.ModemReset(ctx, ml, a.Modem); err != nil {
				return classify(a.Modem+" reset", err)
			}
		}
		last = time.Now()
	}
	return nil
}
