package station

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/unbrick/unbrick/jobs"
)

// TestOnlyAutoSlotsStartByThemselves: with two units plugged in, the slot
// marked auto starts its job when the station notices its port; the other
// shows the unit as present and waits for an operator. The unit in the
// manual slot is never switched on.
func TestOnlyAutoSlotsStartByThemselves(t *testing.T) {
	tb := newTestBench(t, 2)
	hw := SimHardware(tb.bench, slog.New(slog.NewTextHandler(io.Discard, nil)))
	fb := SimFixtures(tb.bench, 0)
	fb.Slots[0].Options.Auto = false // slot 1: manual
	js, err := hw.BuildSlots(fb)
	if err != nil {
		t.Fatal(err)
	}
	tb.slots = nil
	for _, s := range js {
		tb.slots = append(tb.slots, SlotConfig{Slot: s, Recipe: tb.plan.Recipe, Revision: tb.rev})
	}
	results := make(chan *jobs.Result, 2)
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	sub := st.Bus.Subscribe(100000)
	defer sub.Close()
	ctx, cancel := context.WithCancel(t.Context())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		st.Watch(ctx, hw, fb)
	}()
	defer func() { cancel(); <-watching }()
	var present1, done2, running1 bool
	deadline := time.After(3 * time.Minute)
	for !present1 || !done2 {
		select {
		case e := <-sub.C:
			if e.Slot == 1 && e.Kind == jobs.KindState && e.State == jobs.Present {
				present1 = true
			}
			if e.Slot == 1 && e.Kind == jobs.KindState && e.State == jobs.Running {
				running1 = true
			}
		case r := <-results:
			if r.Slot == 1 {
				t.Fatalf("the manual slot ran a job by itself: %s %+v", r.Outcome, r.Failure)
			}
			if r.Outcome != jobs.OutcomePassed {
				t.Errorf("auto slot 2: %s %+v, want passed", r.Outcome, r.Failure)
			}
			done2 = true
		case <-deadline:
			t.Fatalf("slot 1 present %v, slot 2 done %v after 3 minutes", present1, done2)
		}
	}
	// Watch handles both plug-ins before slot 2's job can end: had slot 1
	// started, it would be running or done by now.
	if running1 || st.Pool.Running(1) {
		t.Error("the manual slot started a job by itself")
	}
	u, _ := tb.bench.Unit(1)
	if u.Device.Powered() || len(u.Device.Boots()) > 0 {
		t.Errorf("the unit in the manual slot was switched on (%d boots)", len(u.Device.Boots()))
	}
}
