package esprom

import (
	"context"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Development boards wire the adapter's DTR and RTS to GPIO0 and EN through
// two transistors, so that a host can reset the unit into download mode
// while the two lines never pull both down at once:
//
//	DTR  RTS  ->  EN    GPIO0
//	off  off      high  high    running
//	on   on       high  high    running (both transistors off)
//	off  on       low   high    held in reset
//	on   off      high  low     GPIO0 low: download mode at the next reset
//
// esptool's "classic" sequence sets the lines one after the other; its
// "unix tight" sequence sets both with one call where the port allows it
// (DTRRTSSetter), which avoids a glitch on adapters whose drivers apply
// the two writes far apart.

// DTRRTSSetter is implemented by ports that set DTR and RTS in one
// operation (TIOCMSET on Linux).
type DTRRTSSetter interface {
	SetDTRRTS(dtr, rts bool) error
}

// DefaultResetDelay is how long the sequences keep GPIO0 low after EN
// rises: esptool's 50 ms.
const DefaultResetDelay = 50 * time.Millisecond

// enterBootDelay is how long the unit is held in reset: esptool's 100 ms.
const enterBootDelay = 100 * time.Millisecond

type lineStep struct {
	dtr, rts *bool
	both     bool
	wait     time.Duration
}

func on(b bool) *bool { return &b }

func runSteps(ctx context.Context, l bootloader.ModemLines, name string, steps []lineStep) error {
	pair, _ := l.(DTRRTSSetter)
	dtr, rts := false, false
	for _, s := range steps {
		if s.dtr != nil {
			dtr = *s.dtr
		}
		if s.rts != nil {
			rts = *s.rts
		}
		var err error
		switch {
		case s.both && pair != nil:
			err = pair.SetDTRRTS(dtr, rts)
		default:
			// DTR first: from "EN low" to "GPIO0 low", the pair passes
			// through "both on" (running), never through another reset.
			if s.dtr != nil {
				err = l.SetDTR(dtr)
			}
			if err == nil && s.rts != nil {
				err = l.SetRTS(rts)
			}
		}
		if err != nil {
			return fmt.Errorf("esprom: %s reset: set DTR/RTS: %w (a pseudo-terminal has no modem lines)", name, err)
		}
		if err := bootloader.Sleep(ctx, s.wait); err != nil {
			return err
		}
	}
	return nil
}

// ClassicReset returns esptool's classic entry sequence on an adapter's
// DTR and RTS: hold EN low (RTS on), 100 ms; GPIO0 low and EN released
// (DTR on, RTS off); after delay (0 means DefaultResetDelay) release GPIO0.
func ClassicReset(l bootloader.ModemLines, delay time.Duration) func(context.Context) error {
	if delay <= 0 {
		delay = DefaultResetDelay
	}
	return func(ctx context.Context) error {
		return runSteps(ctx, l, "classic", []lineStep{
			{dtr: on(false)},
			{rts: on(true), wait: enterBootDelay},
			{dtr: on(true)},
			{rts: on(false), wait: delay},
			{dtr: on(false)},
		})
	}
}

// UnixTightReset returns esptool's "unix tight" sequence: both lines set
// together at each step (DTRRTSSetter where the port has it): off/off,
// on/on, EN low (DTR off, RTS on) for 100 ms, GPIO0 low with EN released
// (DTR on, RTS off) for delay, then both off.
func UnixTightReset(l bootloader.ModemLines, delay time.Duration) func(context.Context) error {
	if delay <= 0 {
		delay = DefaultResetDelay
	}
	return func(ctx context.Context) error {
		return runSteps(ctx, l, "unix-tight", []lineStep{
			{dtr: on(false), rts: on(false), both: true},
			{dtr: on(true), rts: on(true), both: true},
			{dtr: on(false), rts: on(true), both: true, wait: enterBootDelay},
			{dtr: on(true), rts: on(false), both: true, wait: delay},
			{dtr: on(false), rts: on(false), both: true},
			{dtr: on(false)},
		})
	}
}

// ModemReset runs the named DTR/RTS entry sequence ("classic" or
// "unix-tight") on lines with the default delay.
func ModemReset(ctx context.Context, lines bootloader.ModemLines, sequence string) error {
	seq, err := ParseEntry(sequence)
	if err != nil {
		return err
	}
	return seq(lines)(ctx)
}
