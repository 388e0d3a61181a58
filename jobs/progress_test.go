package jobs

import (
	"testing"
	"testing/synctest"
	"time"
)

// progressRun returns a run of slot 5 publishing on a bus, and a
// subscription to that bus.
func progressRun() (*run, *Sub) {
	bus := &Bus{}
	sub := bus.Subscribe(10000)
	return &run{r: &Runner{Bus: bus}, plan: &Plan{Recipe: "r"}, slot: &Slot{Num: 5}, res: &Result{Serial: "S5"}}, sub
}

// events returns what sub holds, closing it.
func events(sub *Sub) []Event {
	sub.Close()
	var out []Event
	for e := range sub.C {
		out = append(out, e)
	}
	return out
}

func TestProgressPerSlotLimit(t *testing.T) {
	tests := []struct {
		name    string
		reports int           // progress reports of one step, done = 1..reports of reports
		every   time.Duration // between two reports
		most    int           // progress events published, at most
		least   int           // and at least
	}{
		// 1000 reports in a second: the first, then one per
		// ProgressEvery, and the last (100%).
		{name: "1000 a second", reports: 1000, every: time.Millisecond, most: 11, least: 10},
		// 1000 reports 100 ns apart: the first and the last.
		{name: "a burst", reports: 1000, every: 100 * time.Nanosecond, most: 3, least: 2},
		// A slow step (one report each 300 ms) loses nothing.
		{name: "slow", reports: 20, every: 300 * time.Millisecond, most: 20, least: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u, sub := progressRun()
				p := u.progress("write app")
				for i := 1; i <= tt.reports; i++ {
					p(int64(i), int64(tt.reports))
					time.Sleep(tt.every)
				}
				got := events(sub)
				if n := len(got); n > tt.most || n < tt.least {
					t.Errorf("%d reports %v apart published %d events, want %d to %d", tt.reports, tt.every, n, tt.least, tt.most)
				}
				if len(got) == 0 {
					return
				}
				if e := got[0]; e.Done != 1 {
					t.Errorf("first event = done %d, want the first report (1)", e.Done)
				}
				if e := got[len(got)-1]; e.Kind != KindProgress || e.Done != e.Total || e.Total != int64(tt.reports) || e.Slot != 5 || e.Step != "write app" {
					t.Errorf("last event = %+v, want slot 5's write app at 100%%", e)
				}
				for i := 1; i < len(got)-1; i++ {
					if gap := got[i].Time.Sub(got[i-1].Time); gap < ProgressEvery {
						t.Errorf("events %d and %d are %v apart, want at least %v", i-1, i, gap, ProgressEvery)
					}
				}
			})
		})
	}
}

// Only progress is dropped: state, step and log events go out as they
// come, and after a step or state event the next progress goes out at
// once, as does the first report of a new step.
func TestProgressNeverDropsOtherEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, sub := progressRun()
		u.emit(Event{Kind: KindState, State: Running})
		u.emit(Event{Kind: KindStep, Step: "write"})
		w := u.progress("write app")
		w(1, 100)
		w(2, 100) // dropped: too soon
		u.logf("half way")
		w(3, 100) // dropped: a log is no step
		u.emit(Event{Kind: KindStep, Step: "verify"})
		w(4, 100) // the slot's tile was reset to 0 by the step: published
		v := u.progress("verify app")
		v(1, 100) // a new step's first report: published
		v(2, 100) // dropped
		v(100, 100)
		u.emit(Event{Kind: KindState, State: Passed})

		type ev struct {
			kind Kind
			what string
			done int64
		}
		want := []ev{
			{KindState, string(Running), 0}, {KindStep, "write", 0}, {KindProgress, "write app", 1},
			{KindLog, "half way", 0}, {KindStep, "verify", 0}, {KindProgress, "write app", 4},
			{KindProgress, "verify app", 1}, {KindProgress, "verify app", 100}, {KindState, string(Passed), 0},
		}
		got := events(sub)
		var gotEv []ev
		for _, e := range got {
			what := e.Step
			switch e.Kind {
			case KindState:
				what = string(e.State)
			case KindLog:
				what = e.Text
			}
			gotEv = append(gotEv, ev{e.Kind, what, e.Done})
		}
		if len(gotEv) != len(want) {
			t.Fatalf("events = %v, want %v", gotEv, want)
		}
		for i := range want {
			if gotEv[i] != want[i] {
				t.Errorf("event %d = %v, want %v (all: %v)", i, gotEv[i], want[i], gotEv)
			}
		}
	})
}
