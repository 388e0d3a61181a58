package station

import (
	"context"
	"strings"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// TestOtherSlotsCarryOn: one unit pulled out mid-write and one whose flash
// NACKs every write fail with clear reasons (the first blamed on the
// station's side, the second on the unit); the other slots pass, and the
// yield counts only the unit's fault against the units.
func TestOtherSlotsCarryOn(t *testing.T) {
	tb := newTestBench(t, 4)
	results := make(chan *jobs.Result, 4)
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	nack, _ := tb.bench.Unit(3)
	nack.Model.(*stm32sim.Model).SetFaults(stm32sim.Faults{NACKWrites: 1 << 20})
	sub := st.Bus.Subscribe(100000)
	defer sub.Close()
	for _, n := range st.Slots() {
		if err := st.Start(n, "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	pulled := false
	got := map[int]*jobs.Result{}
	deadline := time.After(3 * time.Minute)
	for len(got) < 4 {
		select {
		case e := <-sub.C:
			if !pulled && e.Slot == 2 && e.Kind == jobs.KindProgress && e.Step == "write app" && e.Done > 0 {
				u, _ := tb.bench.Unit(2)
				u.Unplug() // the cable comes out mid-write
				pulled = true
			}
		case r := <-results:
			got[r.Slot] = r
		case <-deadline:
			t.Fatalf("jobs did not end; results so far %v", got)
		}
	}
	for _, n := range []int{1, 4} {
		if got[n].Outcome != jobs.OutcomePassed {
			t.Errorf("slot %d: %s %v, want passed while its neighbours failed", n, got[n].Outcome, got[n].Failure)
		}
	}
	if r := got[2]; !pulled || r.Outcome != jobs.OutcomeFailed || r.Failure.Class != "port-vanished" || r.Failure.Fault != jobs.StationFault {
		t.Errorf("slot 2 (pulled mid-write): %s %+v, want a port-vanished station fault", r.Outcome, r.Failure)
	} else if !strings.Contains(r.Failure.Hint, "reseat") {
		t.Errorf("slot 2 hint %q does not say to reseat the cable", r.Failure.Hint)
	}
	if r := got[3]; r.Outcome != jobs.OutcomeFailed || r.Failure.Class != "nack" || r.Failure.Fault != jobs.UnitFault {
		t.Errorf("slot 3 (flash NACKs): %s %+v, want a nack unit fault", r.Outcome, r.Failure)
	}
	y, err := st.Store.Yield(context.Background(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if y.ByFault["station"] != 1 || y.ByFault["unit"] != 1 || y.Units != 3 {
		t.Errorf("yield: by fault %v over %d judged units; want 1 station and 1 unit fault, 3 units judged (the pulled cable does not judge its unit)", y.ByFault, y.Units)
	}
}

// TestEntryTimingAndInrush reads the sim lines' timeline of a demo bench:
// each STM32 slot's entry sequence holds BOOT0 asserted at least 50 ms
// before power-on, and never more than the bench's limit of units switch on
// within its window.
func TestEntryTimingAndInrush(t *testing.T) {
	d, err := NewDemo(DemoConfig{Dir: t.TempDir(), Units: 8, Kinds: []string{"stm32f103", "stm32f407"}, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.RunAll(ctx); err != nil {
		t.Fatal(err)
	}
	changes := d.Bench.Bank.Timeline.Changes()
	var ons []time.Time
	for n := 1; n <= 8; n++ {
		pn, bn, _ := simbench.LineNames(n)
		var bootSince time.Time
		entries := 0
		for _, c := range changes {
			switch {
			case c.Pin == bn && c.Level == pgpio.High:
				bootSince = c.Time
			case c.Pin == bn && c.Level == pgpio.Low:
				bootSince = time.Time{}
			case c.Pin == pn && c.Level == pgpio.High:
				ons = append(ons, c.Time)
				if !bootSince.IsZero() {
					entries++
					if held := c.Time.Sub(bootSince); held < 50*time.Millisecond {
						t.Errorf("slot %d: BOOT0 held %v before power-on, want at least 50 ms", n, held)
					}
				}
			}
		}
		if entries == 0 {
			t.Errorf("slot %d: no entry sequence (power-on with BOOT0 asserted) on the timeline", n)
		}
	}
	const maxOn, window = 4, 100 * time.Millisecond // SimFixtures(bench, 4)
	for i := range ons {
		n := 0
		for j := range ons {
			if d := ons[j].Sub(ons[i]); d >= 0 && d < window {
				n++
			}
		}
		if n > maxOn {
			t.Fatalf("%d power-ons within %v from %v, want at most %d", n, window, ons[i].Format("15:04:05.000"), maxOn)
		}
	}
}
