package jobs

import (
	"context"
	"errors"
	"fmt"
	"github.com/unbrick/unbrick/step"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/sim/avrsim"
	"github.com/unbrick/unbrick/sim/espsim"
)

// failRecorder is a memRecorder whose chosen calls fail, as a database that
// is full or locked would.
type failRecorder struct {
	memRecorder
	start, identified, backup, allocate, finish bool
}

var errDisk = errors.New("database or disk is full")

func (f *failRecorder) StartAttempt(ctx context.Context, a AttemptInfo) (int64, error) {
	if f.start {
		return 0, errDisk
	}
	return f.memRecorder.StartAttempt(ctx, a)
}

func (f *failRecorder) UnitIdentified(ctx context.Context, attempt int64, u UnitInfo) error {
	if f.identified {
		return errDisk
	}
	return f.memRecorder.UnitIdentified(ctx, attempt, u)
}

func (f *failRecorder) SaveBackup(ctx context.Context, attempt int64, name string, addr uint32, data []byte) error {
	if f.backup {
		return errDisk
	}
	return f.memRecorder.SaveBackup(ctx, attempt, name, addr, data)
}

func (f *failRecorder) Allocate(ctx context.Context, attempt int64, pool string) (string, error) {
	if f.allocate {
		return "", fmt.Errorf("pool %s is used up", pool)
	}
	return f.memRecorder.Allocate(ctx, attempt, pool)
}

func (f *failRecorder) Finish(ctx context.Context, r *Result) error {
	if f.finish {
		return errDisk
	}
	return f.memRecorder.Finish(ctx, r)
}

// errDriver is a driver whose bootloader client fails to identify the unit
// with err, as the protocol package reports it, turned into the job's error
// by the protocol's own driver mapping (wrap).
type errDriver struct {
	err  error
	wrap func(error) error
}

func (d errDriver) Connect(ctx context.Context, p Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	if err := reset(ctx); err != nil {
		return nil, Identity{}, err
	}
	return nil, Identity{}, d.wrap(d.err)
}

// silentPort drops every byte the unit sends, as a unit whose transmitter
// died or an adapter that stopped passing bytes would; CheckPort says what
// the port itself reports about the adapter (nil: healthy).
type silentPort struct {
	pipePort
	check error
}

func (p silentPort) Read(b []byte) (int, error) {
	n, err := p.pipePort.Read(b)
	_ = n
	return 0, err
}

func (p silentPort) CheckPort() error { return p.check }

// TestFailureClasses produces each failure class the runner names from a
// real run against the AVR model, and checks the class, whose fault it is,
// and that the operator gets a hint. Each case breaks one thing.
func TestFailureClasses(t *testing.T) {
	type setup func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner)
	withoutExpect := func(p *Plan) {
		// Keep only enter, write, verify, boot: the validation alone judges.
		p.Strategies[0].Steps = p.Strategies[0].Steps[:4]
	}
	tests := []struct {
		name    string
		setup   setup
		outcome Outcome
		class   string
		fault   Fault
		hint    string // a word the hint must carry
		touched bool   // the job may drive the unit's lines
	}{
		{
			// The unit boots and prints a version, but not the image's: the
			// bytes written were 1.0.0's while the catalog says 2.0.0.
			name: "unit boots the wrong version",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				withoutExpect(p)
				old, err := avrsim.AppImage("atmega328p", "1.0.0", "uno-r3", 4096)
				if err != nil {
					t.Fatal(err)
				}
				p.Images["app"].Data = old
			},
			outcome: OutcomeFailed, class: "version-mismatch", fault: UnitFault, hint: "start again", touched: true,
		},
		{
			name: "a validation check the unit does not pass",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				p.Validate.Checks[0].Expect = regexp.MustCompile(`SELFTEST PASSED`)
				p.Validate.Checks[0].Within = time.Second
			},
			outcome: OutcomeFailed, class: "check-failed", fault: UnitFault, hint: "repair", touched: true,
		},
		{
			// Fake time makes a wait last exactly its minimum; a window whose
			// maximum lies below that stands for a timer that overslept it.
			name: "an entry wait past its window",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				p.Entry = append([]Action{{Kind: ActWait, Wait: 20 * time.Millisecond, Max: 19 * time.Millisecond, Pos: "entry[0]"}}, p.Entry...)
			},
			outcome: OutcomeFailed, class: "timing-window", fault: StationFault, hint: "overloaded", touched: true,
		},
		{
			name: "a relay line that cannot be driven",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				b.bank.Lookup("sim:slot1.power").Fail(errors.New("i2c: no ACK from 0x20"))
			},
			outcome: OutcomeFailed, class: "line-error", fault: StationFault, hint: "relay", touched: true,
		},
		{
			name: "a slot another job owns",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				if _, err := b.slot.Acquire("attempt 41"); err != nil {
					t.Fatal(err)
				}
			},
			outcome: OutcomeFailed, class: "slot-busy", fault: StationFault, hint: "wait",
		},
		{
			name: "a unit that never prints what the strategy expects",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				p.Strategies[0].Steps[4].Expect = regexp.MustCompile(`calibration loaded`)
				p.Strategies[0].Steps[4].Within = time.Second
			},
			outcome: OutcomeFailed, class: "boot-failed", fault: UnitFault, hint: "repair", touched: true,
		},
		{
			name: "a step naming an image the recipe does not define",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				p.Strategies[0].Steps[1].Image = "factory"
			},
			outcome: OutcomeRefused, class: "image-missing", fault: RefusedFault, hint: "supervisor",
		},
		{
			name: "a number pool that is used up",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Rec = &failRecorder{allocate: true}
				s := p.Strategies[0].Steps
				p.Strategies[0].Steps = append(s[:3:3], append([]Step{{Kind: step.KindProvision, Pool: "serial", Addr: 0x7000}}, s[3:]...)...)
			},
			outcome: OutcomeFailed, class: "pool-error", fault: StationFault, hint: "supervisor", touched: true,
		},
		{
			name:    "a record that cannot start",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) { r.Rec = &failRecorder{start: true} },
			outcome: OutcomeFailed, class: "record-error", fault: StationFault, hint: "not touched",
		},
		{
			name:    "a unit that cannot be recorded",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) { r.Rec = &failRecorder{identified: true} },
			outcome: OutcomeFailed, class: "record-error", fault: StationFault, hint: "supervisor", touched: true,
		},
		{
			name: "a backup that cannot be saved",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Rec = &failRecorder{backup: true}
				s := p.Strategies[0].Steps
				p.Strategies[0].Steps = append(s[:1:1], append([]Step{{Kind: step.KindBackup, Name: "cal", Region: Region{Start: 0x7000, Size: 128}}}, s[1:]...)...)
			},
			outcome: OutcomeFailed, class: "record-error", fault: StationFault, hint: "supervisor", touched: true,
		},
		{
			// A pass that cannot be recorded is not a pass.
			name:    "an end that cannot be recorded",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) { r.Rec = &failRecorder{finish: true} },
			outcome: OutcomeFailed, class: "record-error", fault: StationFault, hint: "not recovered", touched: true,
		},
		{
			name:    "a unit of another hardware revision",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) { j.Revision = "R2" },
			outcome: OutcomeRefused, class: "wrong-revision", fault: RefusedFault, hint: "label",
		},
		{
			name: "an entry that needs a strap line the slot lacks",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				p.Entry = append([]Action{{Kind: ActSet, Role: gpio.Boot, On: true}}, p.Entry...)
			},
			outcome: OutcomeFailed, class: "no-line", fault: StationFault, hint: "bench file", touched: true,
		},
		{
			name:    "a protocol the station cannot speak",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) { r.Drivers = map[string]Driver{} },
			outcome: OutcomeRefused, class: "no-driver", fault: RefusedFault, hint: "supervisor",
		},
		{
			// The recipe's flash is larger than the part's: the refusal
			// before the job (against the recipe) lets the image through;
			// the check at run time (against the part the bootloader
			// reports) must stop it before it overwrites optiboot.
			name: "an image past the part's flash, found at run time",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				p.Flash = Region{Start: 0, Size: 0x8000}
				im := p.Images["app"]
				im.Addr, im.Data = 0x7E00, im.Data[:256]
			},
			outcome: OutcomeFailed, class: "outside-flash", fault: UnitFault, hint: "supervisor", touched: true,
		},
		{
			name: "an ATmega whose signature the station does not know",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Drivers["avr"] = errDriver{&avr.UnknownPartError{Signature: [3]byte{0x1E, 0x93, 0x0B}}, avrError}
			},
			outcome: OutcomeFailed, class: "unknown-part", fault: UnitFault, hint: "recipe", touched: true,
		},
		{
			name: "an STM32 whose product id the station does not know",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Drivers["avr"] = errDriver{&stm32.UnknownPartError{PID: 0x999}, stm32Error}
			},
			outcome: OutcomeFailed, class: "unknown-part", fault: UnitFault, hint: "recipe", touched: true,
		},
		{
			name: "an ESP whose chip-detect word the station does not know",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Drivers["avr"] = errDriver{&esprom.UnknownChipError{Magic: 0xDEADBEEF}, espError}
			},
			outcome: OutcomeFailed, class: "unknown-part", fault: UnitFault, hint: "recipe", touched: true,
		},
		{
			// The port stays healthy while no byte comes back: the unit
			// stopped answering.
			name: "a unit that stopped answering",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Retries = -1
				b.slot.Open = func(ctx context.Context, m Mode) (Port, error) { return silentPort{pipePort{b.host}, nil}, nil }
			},
			outcome: OutcomeFailed, class: "no-sync", fault: UnitFault, hint: "seated", touched: true,
		},
		{
			// The same silence, but the adapter fails its own status
			// request: the station's side went silent.
			name: "an adapter that went silent",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Retries = -1
				b.slot.Open = func(ctx context.Context, m Mode) (Port, error) {
					return silentPort{pipePort{b.host}, errors.New("the adapter does not answer its modem status request")}, nil
				}
			},
			outcome: OutcomeFailed, class: "adapter-timeout", fault: StationFault, hint: "adapter", touched: true,
		},
		{
			name: "a port whose device node is gone",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Retries = -1
				b.slot.Open = func(ctx context.Context, m Mode) (Port, error) {
					return silentPort{pipePort{b.host}, fmt.Errorf("stat /dev/serial/by-path/x: %w", errors.New("no such device"))}, nil
				}
			},
			outcome: OutcomeFailed, class: "port-vanished", fault: StationFault, hint: "cable", touched: true,
		},
		{
			// An error nobody classifies counts against the station.
			name: "an error the station cannot classify",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job, r *Runner) {
				r.Drivers["avr"] = errDriver{errors.New("something odd"), func(err error) error { return err }}
			},
			outcome: OutcomeFailed, class: "unclassified", fault: StationFault, hint: "supervisor", touched: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newAVRBench(t, nil)
				p := avrPlan(t, "2.0.0")
				j := Job{Slot: b.slot, Plan: p, Revision: "R3", Serial: "LABEL-0042"}
				r := newRunner(&memRecorder{}, nil)
				r.Observe = -1
				tt.setup(t, b, p, &j, r)
				res := r.Run(t.Context(), j)
				if res.Outcome != tt.outcome || res.Failure == nil || res.Failure.Class != tt.class || res.Failure.Fault != tt.fault {
					t.Fatalf("Run() = %s %+v, want %s %s (%s)", res.Outcome, res.Failure, tt.outcome, tt.class, tt.fault)
				}
				if res.Failure.Reason == "" || !strings.Contains(res.Failure.Hint, tt.hint) {
					t.Errorf("failure %s: reason %q, hint %q, want a reason and a hint that says %q", tt.class, res.Failure.Reason, res.Failure.Hint, tt.hint)
				}
				if !tt.touched {
					for _, c := range b.bank.Timeline.Changes() {
						if (c.Pin == "sim:slot1.power" && c.Level == pgpio.High) || (c.Pin == "sim:slot1.reset" && c.Level == pgpio.Low) {
							t.Fatalf("the job drove %v; it must not touch the unit", c)
						}
					}
				}
				if tt.class != "slot-busy" && b.dev.Powered() {
					t.Error("the unit is powered after the job")
				}
			})
		})
	}
}

// TestTimingWindowMaximumIsInclusive: a wait that lasts exactly its window's
// maximum is in the window, so the runner's check is a bound, not a ban.
func TestTimingWindowMaximumIsInclusive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		p := avrPlan(t, "2.0.0")
		p.Entry = append([]Action{{Kind: ActWait, Wait: 20 * time.Millisecond, Max: 20 * time.Millisecond}}, p.Entry...)
		r := newRunner(&memRecorder{}, nil)
		r.Observe = -1
		if res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "R3", Serial: "LABEL-0042"}); res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s %+v, want passed", res.Outcome, res.Failure)
		}
	})
}

// TestROMError: an ESP32 whose ROM answers a flash block with a failure
// status other than a flash write error (here 07, a bad checksum) fails the
// job as rom-error, the unit's.
func TestROMError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newESPBench(t, "esp32", nil, false)
		p := espPlan(t, "esp32", "2.1.0")
		b.model.SetFaults(espsim.Faults{GarbleBlocks: 1000})
		r := espRunner(&memRecorder{})
		r.Retries, r.Observe = -1, -1
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p})
		if res.Outcome != OutcomeFailed || res.Failure == nil || res.Failure.Class != "rom-error" || res.Failure.Fault != UnitFault {
			t.Fatalf("Run() = %s %+v, want failed rom-error (unit)", res.Outcome, res.Failure)
		}
		if res.Failure.Hint == "" {
			t.Error("rom-error has no hint")
		}
		if b.dev.Powered() {
			t.Error("the unit is powered after the job")
		}
	})
}

// TestBlame holds the decision rule by itself: a timeout stays the unit's
// unless the port reports trouble of its own.
func TestBlame(t *testing.T) {
	timeout := &Failure{Class: "timeout", Fault: UnitFault, Reason: "write: no answer", Err: &bootloader.TimeoutError{Op: "ACK"}}
	tests := []struct {
		name  string
		port  any
		f     *Failure
		class string
		fault Fault
	}{
		{"port that cannot tell", pipePort{}, timeout, "timeout", UnitFault},
		{"healthy port", silentPort{}, timeout, "timeout", UnitFault},
		{"silent adapter", silentPort{check: errors.New("no modem status")}, timeout, "adapter-timeout", StationFault},
		{"vanished port", silentPort{check: errors.New("no such device")}, timeout, "port-vanished", StationFault},
		{"not a silence", silentPort{check: errors.New("no modem status")}, &Failure{Class: "nack", Fault: UnitFault}, "nack", UnitFault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := blame(tt.port, tt.f)
			if got.Class != tt.class || got.Fault != tt.fault {
				t.Errorf("blame(%s) = %s (%s), want %s (%s)", tt.f.Class, got.Class, got.Fault, tt.class, tt.fault)
			}
		})
	}
}
