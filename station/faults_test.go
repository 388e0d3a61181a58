package station

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// TestInjectedFaults runs the station over a virtual bench whose units each
// carry one injected fault (the spec a bench option or --faults gives) and
// checks how each job ends: the class, whose fault it is, and for a pass
// that the unit's flash holds the image.
func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		spec  string
		class string // "" for a pass
		fault jobs.Fault
	}{
		{spec: ""},
		// The recipe expects the new version's banner in its strategy, so the
		// wrong version fails there, before the validation.
		{spec: "wrong-version=0.9.0", class: "boot-failed", fault: jobs.UnitFault},
		{spec: "bad-page=0x08000400", class: "verify-mismatch", fault: jobs.UnitFault},
		{spec: "nack=100000", class: "nack", fault: jobs.UnitFault},
		// A unit that hangs mid-block answers again after the reset the
		// retry does.
		{spec: "stop=3000"},
		// Power lost mid-write: the flash keeps what was programmed; the
		// retry re-enters the bootloader and writes the image again.
		{spec: "brownout=2048"},
		{spec: "flap=2s,flap-after=3000", class: "port-vanished", fault: jobs.StationFault},
		// The adapter passes nothing and fails its own status request.
		{spec: "adapter-silent", class: "adapter-timeout", fault: jobs.StationFault},
		// Slower erases within the client's erase timeout pass; one past it
		// is a unit that stopped answering.
		{spec: "slow-erase=40ms"},
		{spec: "slow-erase=2s", class: "timeout", fault: jobs.UnitFault},
	}
	tb := newTestBench(t, 0)
	for i, tt := range tests {
		f, err := sim.ParseFaults(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		u, err := tb.bench.Add(simbench.Spec{Slot: i + 1, Kind: "stm32f103", Board: "sensor-b", Revision: tb.rev, State: simbench.Bricked, Seed: uint64(i + 1), Fast: true, Faults: f})
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Plug(); err != nil {
			t.Fatal(err)
		}
	}
	hw := SimHardware(tb.bench, slog.New(slog.NewTextHandler(io.Discard, nil)))
	js, err := hw.BuildSlots(SimFixtures(tb.bench, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range js {
		tb.slots = append(tb.slots, SlotConfig{Slot: s, Recipe: tb.plan.Recipe, Revision: tb.rev})
	}
	results := make(chan *jobs.Result, len(tests))
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	for _, n := range st.Slots() {
		if err := st.Start(n, "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	got := map[int]*jobs.Result{}
	deadline := time.After(5 * time.Minute)
	for len(got) < len(tests) {
		select {
		case r := <-results:
			got[r.Slot] = r
		case <-deadline:
			t.Fatalf("jobs did not end; results so far %v", got)
		}
	}
	img := tb.plan.Images["app"]
	for i, tt := range tests {
		r := got[i+1]
		u, _ := tb.bench.Unit(i + 1)
		if tt.class == "" {
			if r.Outcome != jobs.OutcomePassed {
				t.Errorf("faults %q: %s %+v, want passed", tt.spec, r.Outcome, r.Failure)
				continue
			}
			fl, _ := u.Model.(*stm32sim.Model).Flash().Read(img.Addr, len(img.Data))
			if !bytes.Equal(fl, img.Data) {
				t.Errorf("faults %q: passed, but the unit's flash does not hold the image", tt.spec)
			}
			continue
		}
		if r.Outcome != jobs.OutcomeFailed || r.Failure.Class != tt.class || r.Failure.Fault != tt.fault {
			t.Errorf("faults %q: %s %+v, want failed %s (%s)", tt.spec, r.Outcome, r.Failure, tt.class, tt.fault)
		}
	}
}
