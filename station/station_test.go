package station

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// testBench is a virtual bench of STM32F103 units with a station over it.
type testBench struct {
	t     *testing.T
	dir   string
	bench *simbench.Bench
	plan  *jobs.Plan
	rev   string
	slots []SlotConfig
}

func newTestBench(t *testing.T, n int) *testBench {
	t.Helper()
	dir := t.TempDir()
	b, err := simbench.New(dir+"/ports", simbench.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	keys, err := InstallExamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	book, err := LoadBook(dir+"/recipes", keys)
	if err != nil {
		t.Fatal(err)
	}
	r := book.ForModel("sensor-b")
	tb := &testBench{t: t, dir: dir, bench: b, plan: book.Plans[r.Name], rev: r.Match.Revisions[0]}
	for i := 1; i <= n; i++ {
		tb.add(i, uint64(i))
	}
	hw := SimHardware(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	js, err := hw.BuildSlots(SimFixtures(b, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range js {
		tb.slots = append(tb.slots, SlotConfig{Slot: s, Recipe: tb.plan.Recipe, Revision: tb.rev})
	}
	return tb
}

// add puts a new bricked unit in slot n and plugs it in.
func (tb *testBench) add(n int, seed uint64) *simbench.Unit {
	tb.t.Helper()
	u, err := tb.bench.Add(simbench.Spec{Slot: n, Kind: "stm32f103", Board: "sensor-b", Revision: tb.rev, State: simbench.Bricked, Seed: seed, Fast: true})
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := u.Plug(); err != nil {
		tb.t.Fatal(err)
	}
	return u
}

func (tb *testBench) open(done func(*jobs.Result)) *Station {
	tb.t.Helper()
	st, err := Open(Config{DataDir: tb.dir, Slots: tb.slots, Plans: map[string]*jobs.Plan{tb.plan.Recipe: tb.plan}, Threshold: 3, Done: done, Observe: -1})
	if err != nil {
		tb.t.Fatal(err)
	}
	return st
}

// TestSafeStateAtStartAndStop: relays a dead station left on are switched
// off at start-up; a station stopped mid-job interrupts it, records it so,
// and leaves every unit off with its strap released.
func TestSafeStateAtStartAndStop(t *testing.T) {
	tb := newTestBench(t, 2)
	for _, sc := range tb.slots {
		sc.Slot.Lines[gpio.Power].Set(true)
		sc.Slot.Lines[gpio.Boot].Set(true)
	}
	st := tb.open(nil)
	for _, u := range tb.bench.Units() {
		if u.Device.Powered() {
			t.Errorf("slot %d is powered after start-up", u.Spec.Slot)
		}
	}
	sub := st.Bus.Subscribe(10000)
	for _, n := range st.Slots() {
		if err := st.Start(n, "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	// Stop once both jobs write.
	writing := map[int]bool{}
	for e := range sub.C {
		if e.Kind == jobs.KindStep && e.Step == "write app" {
			writing[e.Slot] = true
		}
		if len(writing) == 2 {
			break
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sc := range tb.slots {
		for role, l := range sc.Slot.Lines {
			if l.Asserted() {
				t.Errorf("slot %d: %s line still asserted after Close", sc.Slot.Num, role)
			}
		}
	}
	s, err := db.Open(tb.dir + "/unbrick.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	as, err := s.Attempts(context.Background(), db.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("%d attempts recorded, want 2", len(as))
	}
	for _, a := range as {
		if a.Outcome != db.Interrupted || a.Finished.IsZero() {
			t.Errorf("attempt %d = %s (finished %v), want interrupted and finished by the station itself", a.ID, a.Outcome, a.Finished)
		}
	}
}

// TestQuarantineAfterDifferentUnitsFail: three different units failing in a
// row in one slot quarantine it; the station refuses jobs there until a
// supervisor releases it. The same unit failing again would not.
func TestQuarantineAfterDifferentUnitsFail(t *testing.T) {
	tb := newTestBench(t, 2)
	results := make(chan *jobs.Result, 10)
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	runOne := func(seed uint64) *jobs.Result {
		t.Helper()
		tb.bench.Remove(1)
		u := tb.add(1, seed)
		// A flash that never programs: every unit fails verification.
		u.Model.(*stm32sim.Model).SetFaults(stm32sim.Faults{NACKWrites: 1 << 20})
		if err := st.Start(1, "", "test"); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-results:
			return r
		case <-time.After(2 * time.Minute):
			t.Fatal("the job did not end")
		}
		return nil
	}
	for i, seed := range []uint64{11, 12, 13} {
		r := runOne(seed)
		if r.Outcome != jobs.OutcomeFailed || r.Failure.Fault != jobs.UnitFault {
			t.Fatalf("unit %d: %s %+v, want a unit fault", i, r.Outcome, r.Failure)
		}
	}
	if s, _ := st.Tracker.Slot(1); s.State != jobs.Quarantined || !strings.Contains(s.Hint, "move the unit to slot 2") {
		t.Errorf("slot 1 = %s (%q) after three different units failed, want quarantined, sending its unit to slot 2", s.State, s.Hint)
	}
	if err := st.Start(1, "", "test"); !errors.Is(err, jobs.ErrQuarantined) {
		t.Fatalf("Start on a quarantined slot = %v, want ErrQuarantined", err)
	}
	if err := st.Release(1, "supervisor"); err != nil {
		t.Fatal(err)
	}
	if err := st.Release(1, "supervisor"); err == nil {
		t.Error("releasing a slot twice did not fail")
	}
	r := runOne(14)
	if r.Outcome != jobs.OutcomeFailed {
		t.Fatalf("after release: %s", r.Outcome)
	}
	if s, _ := st.Tracker.Slot(1); s.State == jobs.Quarantined {
		t.Error("one failure after a release quarantined the slot again")
	}
}

// TestSameUnitFailingDoesNotQuarantine: one bad unit retried three times
// says nothing about the slot.
func TestSameUnitFailingDoesNotQuarantine(t *testing.T) {
	tb := newTestBench(t, 1)
	results := make(chan *jobs.Result, 10)
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	u, _ := tb.bench.Unit(1)
	u.Model.(*stm32sim.Model).SetFaults(stm32sim.Faults{NACKWrites: 1 << 20})
	for i := range 4 {
		if err := st.Start(1, "", "test"); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if r := <-results; r.Outcome != jobs.OutcomeFailed {
			t.Fatalf("run %d: %s", i, r.Outcome)
		}
	}
	if s, _ := st.Tracker.Slot(1); s.State == jobs.Quarantined {
		t.Error("the same unit failing four times quarantined its slot")
	}
}

// TestOneOwnerPerSlot: a second job on a busy slot is refused.
func TestOneOwnerPerSlot(t *testing.T) {
	tb := newTestBench(t, 1)
	results := make(chan *jobs.Result, 10)
	st := tb.open(func(r *jobs.Result) { results <- r })
	defer st.Close()
	if err := st.Start(1, "", "a"); err != nil {
		t.Fatal(err)
	}
	err := st.Start(1, "", "b")
	if !errors.Is(err, jobs.ErrBusy) {
		t.Errorf("second Start = %v, want ErrBusy", err)
	}
	if r := <-results; r.Outcome != jobs.OutcomePassed {
		t.Errorf("the first job: %s %v", r.Outcome, r.Failure)
	}
	if err := st.Start(9, "", "a"); err == nil {
		t.Error("Start on a slot that does not exist did not fail")
	}
}

// TestTamperedImageIsRefused: an image file changed after it was signed and
// catalogued is refused before the unit is touched; the record says why,
// and the sim lines' timeline shows the slot's lines were never asserted.
func TestTamperedImageIsRefused(t *testing.T) {
	dir := t.TempDir()
	keys, err := InstallExamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	hex := filepath.Join(dir, "recipes", "images", "sensor-b-1.2.0.hex")
	b, err := os.ReadFile(hex)
	if err != nil {
		t.Fatal(err)
	}
	// Change one data digit of the first record (and fix nothing else: the
	// record's checksum no longer matches, or the bytes' hash does not).
	i := bytes.IndexByte(b[9:], '0') + 9
	b[i] = '1'
	os.WriteFile(hex, b, 0o644)
	book, err := LoadBook(filepath.Join(dir, "recipes"), keys)
	if err != nil {
		t.Fatal(err)
	}
	r := book.ForModel("sensor-b")
	bench, err := simbench.New(filepath.Join(dir, "ports"), simbench.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	defer bench.Close()
	u, err := bench.Add(simbench.Spec{Slot: 1, Kind: "stm32f103", Board: "sensor-b", Revision: r.Match.Revisions[0], State: simbench.Bricked, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	u.Plug()
	hw := SimHardware(bench, slog.New(slog.NewTextHandler(io.Discard, nil)))
	js, err := hw.BuildSlots(SimFixtures(bench, 0))
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan *jobs.Result, 1)
	st, err := Open(Config{DataDir: dir, Slots: []SlotConfig{{Slot: js[0], Recipe: r.Name, Revision: r.Match.Revisions[0]}},
		Plans: book.Plans, Done: func(r *jobs.Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := bench.Bank.Timeline.Len()
	if err := st.Start(1, "", "test"); err != nil {
		t.Fatal(err)
	}
	res := <-results
	if res.Outcome != jobs.OutcomeRefused || res.Failure == nil || !strings.HasPrefix(res.Failure.Class, "image-") {
		t.Fatalf("tampered image: %s %+v, want refused with an image class", res.Outcome, res.Failure)
	}
	a, err := st.Store.Attempt(context.Background(), res.Attempt)
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != db.Refused || a.Reason == "" || a.Hint == "" || a.Fault != "refused" {
		t.Errorf("the record of the refusal = %+v, want refused with a reason and a hint", a)
	}
	for _, c := range bench.Bank.Timeline.Changes()[before:] {
		if c.Level == pgpio.High && strings.HasSuffix(c.Pin, ".power") {
			t.Errorf("a refused job switched %s on", c.Pin)
		}
	}
	if u.Device.Powered() || len(u.Device.Boots()) != 0 {
		t.Errorf("the unit was powered (%d boots) by a refused job", len(u.Device.Boots()))
	}
}
