package station

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/jobs"
)

// TestFirstUpdateAfterAFailureCarriesTheHint watches the bus as a tile
// does: after a failed job, the slot's first state update is the end, with
// the free slot to move the unit to already in the hint, and no second
// update rewrites it (the tile does not flicker from a wrong hint to the
// right one). The third failure on different units quarantines the slot,
// again in one update.
func TestFirstUpdateAfterAFailureCarriesTheHint(t *testing.T) {
	tb := newTestBench(t, 2)
	// Units whose application never prints the version wanted, with a
	// diagnosis rule that has no hint of its own: the hint says to move
	// the unit to another slot.
	p := *tb.plan
	p.Diagnose = append(slices.Clone(p.Diagnose), jobs.Diagnosis{Pattern: regexp.MustCompile(`firmware v`), Class: "stale-firmware"})
	p.Validate.Version, p.Validate.Within = regexp.MustCompile(`firmware v(0\.0\.0)`), 300*time.Millisecond
	tb.plan = &p
	results := make(chan *jobs.Result, 10)
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	sub := st.Bus.Subscribe(1 << 14)
	defer sub.Close()
	for i, seed := range []uint64{21, 22, 23} {
		tb.bench.Remove(1)
		tb.add(1, seed)
		if err := st.Start(1, "", "test"); err != nil {
			t.Fatal(err)
		}
		var res *jobs.Result
		select {
		case res = <-results:
		case <-time.After(2 * time.Minute):
			t.Fatal("the job did not end")
		}
		if res.Outcome != jobs.OutcomeFailed || !strings.Contains(res.Failure.Hint, jobs.AnotherSlot) {
			t.Fatalf("job %d = %s (%v), want a failure whose hint moves the unit", i, res.Outcome, res.Failure)
		}
		// Done hears of a job after its end is published: every update
		// of the job is on the subscription now.
		var updates []jobs.Event
		for len(sub.C) > 0 {
			if e := <-sub.C; e.Slot == 1 && e.Kind == jobs.KindState && e.State != jobs.Running {
				updates = append(updates, e)
			}
		}
		if sub.Dropped() > 0 {
			t.Fatalf("the subscription dropped %d events", sub.Dropped())
		}
		want, wantHint := jobs.Failed, "move the unit to slot 2; if that slot fails too"
		if i == 2 {
			want, wantHint = jobs.Quarantined, "move the unit to slot 2; a supervisor must check"
		}
		if len(updates) != 1 || updates[0].State != want || !strings.HasPrefix(updates[0].Hint, wantHint) {
			var got []string
			for _, e := range updates {
				got = append(got, string(e.State)+": "+e.Hint)
			}
			t.Errorf("job %d: slot 1's updates after the job = %q, want one, %s with a hint starting %q", i, got, want, wantHint)
		}
	}
}
