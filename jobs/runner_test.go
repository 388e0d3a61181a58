package jobs

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/sim/avrsim"
)

func TestRunRecoversABrickedUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old, _ := avrsim.AppImage("atmega328p", "1.0.0", "uno-r3", 4096)
		bricked := append([]byte(nil), old...)
		for i := 2048; i < len(bricked); i++ {
			bricked[i] = 0xFF
		}
		b := newAVRBench(t, bricked)
		rec := &memRecorder{}
		bus := &Bus{}
		sub := bus.Subscribe(10000)
		r := newRunner(rec, bus)
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: avrPlan(t, "2.0.0"), Revision: "R3", Serial: "LABEL-0042"})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
		}
		if res.Version != "2.0.0" || res.Strategy != "reflash" || res.Serial != "LABEL-0042" || res.Bytes != 4096 {
			t.Errorf("result = %+v", res)
		}
		if !strings.Contains(res.Diagnosis, "image-corrupt") {
			t.Errorf("Diagnosis = %q, want the bricked unit's image-corrupt", res.Diagnosis)
		}
		if len(rec.units) != 1 || rec.units[0].Serial != "LABEL-0042" || rec.units[0].Chip != "ATmega328P" {
			t.Errorf("units = %+v", rec.units)
		}
		// The unit holds the new image and the job left it powered off.
		got, _ := b.model.Flash().Read(0, 4096)
		want := r.Drivers // keep the linter quiet about unused r
		_ = want
		if img := avrPlan(t, "2.0.0").Images["app"].Data; !bytes.Equal(got, img) {
			t.Error("flash does not hold the new image")
		}
		if b.dev.Powered() {
			t.Error("the unit is still powered after the job")
		}
		// Events: running first, passed last, progress reached the end.
		sub.Close()
		var states []State
		var lastProgress Event
		for e := range sub.C {
			if e.Kind == KindState {
				states = append(states, e.State)
			}
			if e.Kind == KindProgress && e.Step == "write app" {
				lastProgress = e
			}
		}
		if len(states) < 2 || states[0] != Running || states[len(states)-1] != Passed {
			t.Errorf("states = %v", states)
		}
		if lastProgress.Done != 4096 || lastProgress.Total != 4096 {
			t.Errorf("last write progress = %+v", lastProgress)
		}
	})
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, b *avrBench, p *Plan, j *Job)
		outcome Outcome
		class   string
		fault   Fault
		touched bool // the unit's lines were driven
	}{
		{
			name: "verify mismatch is the unit's fault",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job) {
				b.model.StickBit(0x100, 3, true)
			},
			outcome: OutcomeFailed, class: "verify-mismatch", fault: UnitFault, touched: true,
		},
		{
			name: "tampered image is refused before the unit is touched",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job) {
				p.Images["app"].Refusal = &Failure{Class: "image-hash-mismatch", Fault: RefusedFault, Reason: "sha256 differs"}
			},
			outcome: OutcomeRefused, class: "image-hash-mismatch", fault: RefusedFault,
		},
		{
			name:    "image for another revision is refused",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job) { p.Images["app"].Revisions = []string{"R2"} },
			outcome: OutcomeRefused, class: "image-wrong-revision", fault: RefusedFault,
		},
		{
			name:    "draft recipe on a production slot is refused",
			setup:   func(t *testing.T, b *avrBench, p *Plan, j *Job) { p.Released = false },
			outcome: OutcomeRefused, class: "recipe-draft", fault: RefusedFault,
		},
		{
			name: "write into a protected region is refused",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job) {
				p.Protected = []NamedRegion{{Name: "calibration", Region: Region{Start: 0x800, Size: 0x100}}}
			},
			outcome: OutcomeRefused, class: "protected-region", fault: RefusedFault,
		},
		{
			name: "wrong chip",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job) {
				p.Chip = 0x1E9801
			},
			outcome: OutcomeFailed, class: "wrong-chip", fault: UnitFault, touched: true,
		},
		{
			name: "unit without identity",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job) {
				j.Serial = ""
			},
			outcome: OutcomeFailed, class: "no-identity", fault: StationFault, touched: true,
		},
		{
			name: "port that cannot open is the station's fault",
			setup: func(t *testing.T, b *avrBench, p *Plan, j *Job) {
				b.slot.Open = func(context.Context, Mode) (Port, error) { return nil, fmt.Errorf("no such device") }
			},
			outcome: OutcomeFailed, class: "port-open", fault: StationFault,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newAVRBench(t, nil)
				p := avrPlan(t, "2.0.0")
				j := Job{Slot: b.slot, Plan: p, Revision: "R3", Serial: "LABEL-0042"}
				tt.setup(t, b, p, &j)
				rec := &memRecorder{}
				res := newRunner(rec, nil).Run(t.Context(), j)
				if res.Outcome != tt.outcome || res.Failure == nil || res.Failure.Class != tt.class || res.Failure.Fault != tt.fault {
					t.Fatalf("Run() = %s %+v, want %s %s/%s", res.Outcome, res.Failure, tt.outcome, tt.class, tt.fault)
				}
				if res.Failure.Hint == "" {
					t.Errorf("failure %s has no hint for the operator", res.Failure.Class)
				}
				changes := b.bank.Timeline.Changes()
				if !tt.touched {
					// Nothing but the safe state was ever driven.
					for _, c := range changes {
						if (c.Pin == "sim:slot1.power" && c.Level == pgpio.High) || (c.Pin == "sim:slot1.reset" && c.Level == pgpio.Low) {
							t.Fatalf("a refused job drove %v; the unit must not be touched", c)
						}
					}
				}
				if b.dev.Powered() {
					t.Error("the unit is powered after a failed job")
				}
				if len(rec.results) != 1 {
					t.Errorf("%d results recorded, want 1", len(rec.results))
				}
			})
		})
	}
}

func TestRunUnpluggedMidWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		p := avrPlan(t, "2.0.0")
		bus := &Bus{}
		sub := bus.Subscribe(10000)
		done := make(chan *Result)
		go func() {
			done <- newRunner(&memRecorder{}, bus).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "R3", Serial: "LABEL-0042"})
		}()
		// Pull the cable once the write is a quarter done.
		var res *Result
	wait:
		for {
			select {
			case e := <-sub.C:
				if e.Kind == KindProgress && e.Step == "write app" && e.Done >= e.Total/4 {
					b.devEnd.Close()
				}
			case res = <-done:
				break wait
			}
		}
		if res.Outcome != OutcomeFailed || res.Failure.Fault != StationFault || res.Failure.Class != "port-vanished" {
			t.Errorf("unplugged mid-write: %s %+v, want failed port-vanished (station)", res.Outcome, res.Failure)
		}
		// Let the line finish pacing the bytes that were on the wire when
		// the cable was pulled (fake time: this does not slow the test).
		time.Sleep(time.Second)
	})
}

func TestRunInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		p := avrPlan(t, "2.0.0")
		bus := &Bus{}
		sub := bus.Subscribe(10000)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan *Result)
		go func() {
			done <- newRunner(&memRecorder{}, bus).Run(ctx, Job{Slot: b.slot, Plan: p, Revision: "R3", Serial: "LABEL-0042"})
		}()
		for e := range sub.C {
			if e.Kind == KindStep && e.Step == "write app" {
				cancel()
				break
			}
		}
		res := <-done
		if res.Outcome != OutcomeInterrupted {
			t.Fatalf("cancelled job = %s %+v, want interrupted", res.Outcome, res.Failure)
		}
		if b.dev.Powered() {
			t.Error("an interrupted job left its unit powered")
		}
	})
}

// panicDriver panics on connect, as a bug in a driver would.
type panicDriver struct{}

func (panicDriver) Connect(context.Context, Port, *Plan, func(context.Context) error) (Target, Identity, error) {
	panic("driver bug")
}

func TestRunPanicLeavesSafeState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		r := newRunner(&memRecorder{}, nil)
		r.Drivers["avr"] = panicDriver{}
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: avrPlan(t, "2.0.0"), Revision: "R3", Serial: "LABEL-0042"})
		if res.Outcome != OutcomeFailed || res.Failure.Class != "station-panic" || res.Failure.Fault != StationFault {
			t.Fatalf("panicking driver: %s %+v", res.Outcome, res.Failure)
		}
		if b.dev.Powered() || b.slot.Lines[gpio.Power].Asserted() {
			t.Error("the unit is powered after a panic")
		}
		if b.slot.Owner() != "" {
			t.Errorf("slot still owned by %q after the job", b.slot.Owner())
		}
	})
}

func TestSlotOwnership(t *testing.T) {
	s := &Slot{Num: 4}
	release, err := s.Acquire("job A")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire("job B"); err == nil || !strings.Contains(err.Error(), "job A") {
		t.Fatalf("second Acquire = %v, want busy naming job A", err)
	}
	release()
	release()
	r2, err := s.Acquire("job B")
	if err != nil {
		t.Fatalf("Acquire after release = %v", err)
	}
	r2()
}

// hangDriver connects to a unit whose writes never end and never fail: a
// protocol client stuck where none of its deadlines reaches.
type hangDriver struct{}

func (hangDriver) Connect(ctx context.Context, p Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	if err := reset(ctx); err != nil {
		return nil, Identity{}, err
	}
	return hangTarget{}, Identity{Chip: plan.Chip, ChipName: "stuck", Serial: "HANG-1"}, nil
}

type hangTarget struct{}

func (hangTarget) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	<-ctx.Done()
	return ctx.Err()
}

func (hangTarget) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return nil
}

// TestStepTimeout: a step that never ends is ended by its time limit, as a
// unit's timeout, and the job fails instead of hanging.
func TestStepTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		p := avrPlan(t, "2.0.0")
		p.Options = map[string]string{"step_timeout": "30s"}
		r := &Runner{Rec: &memRecorder{}, Drivers: map[string]Driver{"avr": hangDriver{}}, Retries: -1, Observe: -1}
		start := time.Now()
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "R3"})
		if res.Outcome != OutcomeFailed || res.Failure.Class != "timeout" || res.Failure.Fault != UnitFault ||
			!strings.Contains(res.Failure.Reason, "did not end within 30s") {
			t.Fatalf("Run() = %s %+v, want a unit timeout after the step's 30 s", res.Outcome, res.Failure)
		}
		if took := time.Since(start); took < 30*time.Second || took > time.Minute {
			t.Errorf("the job took %v, want about the step's 30 s", took)
		}
		if b.dev.Powered() {
			t.Error("the unit is powered after the timeout")
		}
	})
}

// swapDriver reports a different unit at each connect, and its writes time
// out: as if an operator swapped units while the job retried.
type swapDriver struct{ n *int }

func (d swapDriver) Connect(ctx context.Context, p Port, plan *Plan, reset func(context.Context) error) (Target, Identity, error) {
	*d.n++
	return swapTarget{}, Identity{Chip: plan.Chip, ChipName: "unit", Serial: fmt.Sprintf("UNIT-%d", *d.n)}, nil
}

type swapTarget struct{}

func (swapTarget) Write(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return &bootloader.TimeoutError{Op: "ACK after WRITE", After: time.Second}
}

func (swapTarget) Verify(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	return nil
}

// TestUnitChangedMidJob: when the unit in the slot is not the one the job
// started with, the job stops rather than writing to another unit.
func TestUnitChangedMidJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		n := 0
		r := &Runner{Rec: &memRecorder{}, Drivers: map[string]Driver{"avr": swapDriver{&n}}, Observe: -1}
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: avrPlan(t, "2.0.0"), Revision: "R3"})
		if res.Outcome != OutcomeFailed || res.Failure.Class != "unit-changed" || !strings.Contains(res.Failure.Reason, "UNIT-1") ||
			!strings.Contains(res.Failure.Reason, "UNIT-2") {
			t.Fatalf("Run() = %s %+v, want unit-changed naming both units", res.Outcome, res.Failure)
		}
		if n != 2 {
			t.Errorf("connected %d times, want 2 (the job stops at the swap)", n)
		}
	})
}

// TestPoolStopBy: a job stopped through the pool by a named person ends
// interrupted with its unit powered off, and its reason names who stopped it.
func TestPoolStopBy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newAVRBench(t, nil)
		bus := &Bus{}
		sub := bus.Subscribe(10000)
		done := make(chan *Result, 1)
		p := &Pool{Runner: newRunner(&memRecorder{}, bus), Done: func(r *Result) { done <- r }}
		if err := p.Start(t.Context(), Job{Slot: b.slot, Plan: avrPlan(t, "2.0.0"), Revision: "R3", Serial: "LABEL-0042"}); err != nil {
			t.Fatal(err)
		}
		for e := range sub.C {
			if e.Kind == KindStep && e.Step == "write app" {
				if !p.StopBy(1, "Ada") {
					t.Fatal("StopBy(1, Ada) = false with a job running")
				}
				break
			}
		}
		res := <-done
		if res.Outcome != OutcomeInterrupted || res.Failure == nil || !strings.Contains(res.Failure.Reason, "cancelled by Ada") {
			t.Fatalf("stopped job = %s %+v, want interrupted, cancelled by Ada", res.Outcome, res.Failure)
		}
		if b.dev.Powered() {
			t.Error("a cancelled job left its unit powered")
		}
		if p.StopBy(1, "Ada") {
			t.Error("StopBy(1, Ada) = true with no job running")
		}
	})
}
