package db

import (
	"bytes"
	"database/sql"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// handAttempt is one attempt of the hand-made history.
type handAttempt struct {
	serial, rev, op string
	slot            int
	at              string // UTC, "2006-01-02 15:04"
	outcome         Outcome
	fault, class    string
}

// handHistory: six units over two days; the figures the tests expect are
// worked out by hand beside them. Every attempt lasts ten minutes.
var handHistory = []handAttempt{
	{"U1", "rev-A", "ana", 1, "2026-03-02 07:00", Passed, "", ""},                     // U1 visit 1 opens, first pass
	{"U2", "rev-A", "ana", 2, "2026-03-02 08:00", Failed, "unit", "verify-mismatch"},  // U2 visit 1 opens
	{"U2", "rev-A", "ana", 2, "2026-03-02 09:00", Passed, "", ""},                     // U2 passes at its second try
	{"U3", "rev-B", "ben", 3, "2026-03-02 10:00", Failed, "station", "port-vanished"}, // station fault: U3 not judged
	{"U3", "rev-B", "ben", 3, "2026-03-02 11:00", Passed, "", ""},                     // U3 visit 1 opens here, first pass
	{"U4", "rev-B", "dara", 1, "2026-03-02 15:00", Failed, "unit", "verify-mismatch"},
	{"U4", "rev-B", "dara", 1, "2026-03-02 16:00", Failed, "unit", "no-sync"}, // U4 never passes
	{"U5", "rev-A", "fay", 2, "2026-03-02 23:00", Passed, "", ""},             // night shift of 03-02
	{"U5", "rev-A", "fay", 2, "2026-03-03 03:00", Refused, "refused", "wrong-revision"},
	{"U1", "rev-A", "ana", 3, "2026-03-03 07:00", Failed, "unit", "verify-mismatch"}, // U1 back: visit 2
	{"U1", "rev-A", "ana", 3, "2026-03-03 08:00", Passed, "", ""},
	{"U6", "rev-C", "dara", 4, "2026-03-03 14:30", Interrupted, "station", "station-stopped"},
}

func handTime(t testing.TB, v string) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation("2006-01-02 15:04", v, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func loadHand(t testing.TB, s *Store) {
	t.Helper()
	for _, h := range handHistory {
		if err := s.UpsertUnit(ctx, Unit{Serial: h.serial, Revision: h.rev}); err != nil {
			t.Fatal(err)
		}
		start := handTime(t, h.at)
		id, err := s.StartAttempt(ctx, AttemptStart{Serial: h.serial, Slot: h.slot, SlotName: "bay,1", Recipe: "r", RecipeVersion: 1, RecipeSHA256: "cafe", Revision: h.rev,
			ImageSHA256: strings.Repeat("ab", 32), ImageVersion: "1.0", Operator: h.op, Started: start})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AppendConsole(ctx, id, []byte("console of "+h.serial+" at "+h.at+"\n")); err != nil {
			t.Fatal(err)
		}
		var reason, hint string
		if h.class != "" {
			reason, hint = "it failed: "+h.class, "check slot "+fmt.Sprint(h.slot)+", \"then\" retry"
		}
		if err := s.FinishAttempt(ctx, id, Finish{Outcome: h.outcome, Fault: h.fault, Class: h.class, Bytes: 100,
			Reason: reason, Hint: hint, Strategy: "flash", Finished: start.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
}

// yc is the part of Counts the tests work out by hand.
type yc struct{ attempts, visits, firstPass, finalPass int64 }

func ycOf(c Counts) yc { return yc{c.Attempts, c.Visits, c.FirstPass, c.FinalPass} }

func seriesMap(t *testing.T, s *Store, r Range, every string, shifts []Shift) map[string]yc {
	t.Helper()
	ps, err := s.Series(ctx, r, every, shifts, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]yc{}
	for _, p := range ps {
		out[p.Label] = ycOf(p.Counts)
	}
	return out
}

func TestYieldByHand(t *testing.T) {
	s := open(t)
	loadHand(t, s)
	// Visits: U1 (07:00), U2 (08:00), U3 (11:00: its 10:00 failure was the
	// station's), U4 (15:00), U5 (23:00), U1 again (03-03 07:00) = 6.
	// First pass: U1, U3, U5 = 3. Final pass: all but U4 = 5.
	all, err := s.Groups(ctx, Range{}, "all")
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Attempts: 12, Passed: 5, UnitFaults: 4, StationFaults: 1, Refused: 1, Interrupted: 1,
		Visits: 6, FirstPass: 3, FinalPass: 5, Returns: 1, Bytes: 1200, BusyMS: 12 * 600000} // U1 came back once
	if len(all) != 1 || all[0].Counts != want {
		t.Fatalf("Groups(all) = %+v, want one group %+v", all, want)
	}
	if fp, fy := all[0].Counts.FirstPassYield(), all[0].Counts.FinalYield(); fp != 0.5 || math.Abs(fy-5.0/6) > 1e-12 {
		t.Errorf("first-pass yield %v, final yield %v; want 0.5 and 5/6", fp, fy)
	}

	tests := []struct {
		name   string
		r      Range
		every  string
		shifts []Shift
		want   map[string]yc
	}{
		{"by day", Range{}, "day", nil, map[string]yc{
			"2026-03-02": {8, 5, 3, 4}, // U1, U2 x2, U3 x2, U4 x2, U5; visits U1 U2 U3 U4 U5
			"2026-03-03": {4, 1, 0, 1}, // U5 refused, U1 x2 (visit 2, passed at the second try), U6
		}},
		{"by default shift", Range{}, "shift", nil, map[string]yc{
			"2026-03-02 early": {5, 3, 2, 3},
			"2026-03-02 late":  {2, 1, 0, 0},
			"2026-03-02 night": {2, 1, 1, 1}, // 23:00 and 03:00 the next morning
			"2026-03-03 early": {2, 1, 0, 1},
			"2026-03-03 late":  {1, 0, 0, 0},
		}},
		{"by two shifts from 08:00", Range{}, "shift", []Shift{{"day", 8 * 60}, {"night", 20 * 60}}, map[string]yc{
			"2026-03-01 night": {1, 1, 1, 1}, // U1 at 07:00 is still the night before
			"2026-03-02 day":   {6, 3, 1, 2}, // U2 x2, U3 x2, U4 x2
			"2026-03-02 night": {3, 2, 1, 2}, // U5 x2, U1 at 07:00 opening visit 2, which passed at 08:00
			"2026-03-03 day":   {2, 0, 0, 0}, // U1's pass at 08:00 (its visit counts at 07:00), U6
		}},
		{"by day, slot 2", Range{Slot: 2}, "day", nil, map[string]yc{
			"2026-03-02": {3, 2, 1, 2}, // U2 x2, U5
			"2026-03-03": {1, 0, 0, 0}, // U5 refused
		}},
		{"by day, rev-B", Range{Revision: "rev-B"}, "day", nil, map[string]yc{
			"2026-03-02": {4, 2, 1, 1}, // U3 x2, U4 x2
		}},
		{"by day, rev-A and slot 3", Range{Revision: "rev-A", Slot: 3}, "day", nil, map[string]yc{
			"2026-03-03": {2, 1, 0, 1}, // U1's second visit
		}},
		{"by day, 10:30 to 07:30", Range{Since: handTime(t, "2026-03-02 10:30"), Until: handTime(t, "2026-03-03 07:30")}, "day", nil, map[string]yc{
			"2026-03-02": {4, 3, 2, 2}, // U3 11:00, U4 x2, U5 23:00
			"2026-03-03": {2, 1, 0, 1}, // U5 03:00, U1 07:00 (its visit passed at 08:00, after the range)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seriesMap(t, s, tt.r, tt.every, tt.shifts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Series(%+v, %s) = %v, want %v", tt.r, tt.every, got, tt.want)
			}
		})
	}

	groups := []struct {
		r    Range
		by   string
		want map[string]yc
	}{
		{Range{}, "revision", map[string]yc{"rev-A": {7, 4, 2, 4}, "rev-B": {4, 2, 1, 1}, "rev-C": {1, 0, 0, 0}}},
		{Range{}, "slot", map[string]yc{"1": {3, 2, 1, 1}, "2": {4, 2, 1, 2}, "3": {4, 2, 1, 2}, "4": {1, 0, 0, 0}}},
		{Range{}, "operator", map[string]yc{"ana": {5, 3, 1, 3}, "ben": {2, 1, 1, 1}, "dara": {3, 1, 0, 0}, "fay": {2, 1, 1, 1}}},
		{Range{Since: handTime(t, "2026-03-02 10:30"), Until: handTime(t, "2026-03-03 07:30")}, "all", map[string]yc{"all": {6, 4, 2, 3}}},
		{Range{Revision: "rev-A", Slot: 2}, "operator", map[string]yc{"ana": {2, 1, 0, 1}, "fay": {2, 1, 1, 1}}},
	}
	for _, g := range groups {
		gs, err := s.Groups(ctx, g.r, g.by)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]yc{}
		for _, x := range gs {
			got[x.Key] = ycOf(x.Counts)
		}
		if !reflect.DeepEqual(got, g.want) {
			t.Errorf("Groups(%+v, %s) = %v, want %v", g.r, g.by, got, g.want)
		}
	}

	p, err := s.Pareto(ctx, Range{})
	if err != nil {
		t.Fatal(err)
	}
	wantP := []ParetoClass{
		{Class: "verify-mismatch", Fault: "unit", Outcome: "failed", Count: 3, Share: 0.75},
		{Class: "wrong-revision", Fault: "refused", Outcome: "refused", Count: 1, Share: 1},
		{Class: "port-vanished", Fault: "station", Outcome: "failed", Count: 1, Share: 0.5},
		{Class: "station-stopped", Fault: "station", Outcome: "interrupted", Count: 1, Share: 0.5},
		{Class: "no-sync", Fault: "unit", Outcome: "failed", Count: 1, Share: 0.25},
	}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("Pareto() = %+v\nwant %+v", p, wantP)
	}

	if n, err := s.RepeatVisitors(ctx); n != 1 || err != nil {
		t.Errorf("RepeatVisitors() = %d, %v; want 1 (U1)", n, err)
	}
	h, err := s.Unit(ctx, "U1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Visits != 2 || len(h.Attempts) != 3 || h.Attempts[0].Console != "console of U1 at 2026-03-02 07:00\n" {
		t.Errorf("Unit(U1) = %d visits, %d attempts, first console %q; want 2 visits, 3 attempts and its log", h.Visits, len(h.Attempts), h.Attempts[0].Console)
	}
}

// TestRollupsRebuildAsKept holds the rollups kept at each attempt's end
// against those rebuilt from the attempts.
func TestRollupsRebuildAsKept(t *testing.T) {
	s := open(t)
	loadHand(t, s)
	dump := func() string {
		var b strings.Builder
		for _, q := range []string{`SELECT * FROM roll ORDER BY 1, 2, 3, 4, 5, 6`, `SELECT * FROM roll_steps ORDER BY 1, 2, 3, 4, 5`,
			`SELECT serial, n, first_attempt, passed_attempt FROM visits ORDER BY 1, 2`, `SELECT id, visit, visit_passed FROM attempts ORDER BY id`} {
			rows, err := s.r.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				rows.Scan(ptrs...)
				fmt.Fprintln(&b, vals...)
			}
			rows.Close()
		}
		return b.String()
	}
	kept := dump()
	if !strings.Contains(kept, "U1 2") {
		t.Fatalf("visits kept live lack U1's second visit:\n%s", kept)
	}
	if err := s.RebuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dump(); rebuilt != kept {
		t.Errorf("rollups rebuilt from the attempts differ from those kept live:\nkept:\n%s\nrebuilt:\n%s", kept, rebuilt)
	}
}

func TestStepTimes(t *testing.T) {
	s := open(t)
	start := handTime(t, "2026-03-02 07:00")
	durations := []int64{1000, 2000, 3000, 4000, 10000} // median 3000, p90 10000
	for i, d := range durations {
		id, err := s.StartAttempt(ctx, AttemptStart{Slot: 1, Revision: "rev-A", Started: start.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		at := ms(start) + int64(i)*hourMS
		err = s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO steps (attempt_id, seq, name, started_at, finished_at, outcome) VALUES (?, 1, 'write', ?, ?, 'ok'), (?, 2, 'boot', ?, ?, 'failed')`,
				id, at, at+d, id, at+d, at+d+5)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishAttempt(ctx, id, Finish{Outcome: Passed, Finished: start.Add(time.Duration(i)*time.Hour + time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []Range{{}, {Since: start.Add(30 * time.Minute)}, {Slot: 1}, {Revision: "rev-A"}, {Revision: "rev-A", Slot: 1},
		{Revision: "rev-A", Slot: 1, Since: start.Add(30 * time.Minute)}, {Revision: "rev-A", Slot: 1, Since: start.Add(-21 * 24 * time.Hour)}} {
		st, err := s.StepTimes(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Since.Before(start) { // all five
			if len(st) != 1 || st[0].Name != "write" || st[0].Count != 5 || !near(st[0].Median, 3*time.Second) || !near(st[0].P90, 10*time.Second) {
				t.Errorf("StepTimes(%+v) = %+v; want write: 5, median 3 s, p90 10 s (within 5 %%; failed steps left out)", r, st)
			}
		} else if len(st) != 1 || st[0].Count != 4 || !near(st[0].Median, 3*time.Second) {
			t.Errorf("StepTimes(%+v) = %+v; want write: 4 (2, 3, 4, 10 s), median 3 s", r, st)
		}
	}
}

func near(a, b time.Duration) bool { return math.Abs(float64(a-b)) <= 0.05*float64(b) }

func TestParseShifts(t *testing.T) {
	got, err := ParseShifts("a=06:00, b=14:00,c=22:00")
	if err != nil || !reflect.DeepEqual(got, []Shift{{"a", 360}, {"b", 840}, {"c", 1320}}) {
		t.Errorf("ParseShifts = %v, %v", got, err)
	}
	for _, bad := range []string{"a=06:30", "a=14:00,b=06:00", "06:00", "a=6h"} {
		if _, err := ParseShifts(bad); err == nil {
			t.Errorf("ParseShifts(%q) = nil error, want one", bad)
		}
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	for _, format := range []string{"csv", "json"} {
		t.Run(format, func(t *testing.T) {
			s := open(t)
			loadHand(t, s)
			if _, err := s.StartAttempt(ctx, AttemptStart{Slot: 9, Started: handTime(t, "2026-03-04 06:00")}); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := s.Export(ctx, &out, format, Filter{}); err != nil {
				t.Fatal(err)
			}
			d := open(t)
			n, err := d.Import(ctx, bytes.NewReader(out.Bytes()), format, "export."+format)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(handHistory)+1 {
				t.Errorf("Import() = %d attempts, want %d", n, len(handHistory)+1)
			}
			src, _ := s.Attempts(ctx, Filter{Limit: 100})
			dst, _ := d.Attempts(ctx, Filter{Limit: 100})
			if !reflect.DeepEqual(src, dst) {
				t.Errorf("attempts after the round trip differ:\n%+v\nwant\n%+v", dst, src)
			}
			var again bytes.Buffer
			d.Export(ctx, &again, format, Filter{})
			if again.String() != out.String() {
				t.Errorf("the imported database exports differently:\n%s\nwant\n%s", again.String(), out.String())
			}
			a, _ := s.Groups(ctx, Range{}, "all")
			b, _ := d.Groups(ctx, Range{}, "all")
			if !reflect.DeepEqual(a, b) {
				t.Errorf("yield after import = %+v, want %+v", b, a)
			}
			if _, err := d.Import(ctx, bytes.NewReader(out.Bytes()), format, "export."+format); err == nil || !strings.Contains(err.Error(), "already in the database") {
				t.Errorf("importing the same attempts twice: %v; want an error naming the attempt", err)
			}
		})
	}
}

func TestImportReportsWhere(t *testing.T) {
	s := open(t)
	bad := strings.Join(exportHeader, ",") + "\n1,U1,x,,,1,,,,,,passed,,,,,,0,,2026-03-02T07:00:00.000Z,,\n"
	_, err := s.Import(ctx, strings.NewReader(bad), "csv", "bad.csv")
	if err == nil || !strings.Contains(err.Error(), "bad.csv:2:6") || !strings.Contains(err.Error(), "slot") {
		t.Errorf("Import(bad slot) = %v; want an error at bad.csv:2:6 naming the slot column", err)
	}
}

func TestExportFilter(t *testing.T) {
	s := open(t)
	loadHand(t, s)
	var out bytes.Buffer
	if err := s.Export(ctx, &out, "csv", Filter{Since: handTime(t, "2026-03-03 00:00"), Until: handTime(t, "2026-03-03 08:00")}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != 3 { // header, U5 03:00, U1 07:00
		t.Errorf("export of 03-03 00:00 to 08:00 has %d lines, want 3:\n%s", lines, out.String())
	}
}

// TestBackupWhileWriting backs up while a writer keeps finishing attempts,
// and checks the copy.
func TestBackupWhileWriting(t *testing.T) {
	s := open(t)
	loadHand(t, s)
	stop := make(chan struct{})
	var wrote atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			serial := fmt.Sprintf("W%d", i)
			s.UpsertUnit(ctx, Unit{Serial: serial})
			id, err := s.StartAttempt(ctx, AttemptStart{Serial: serial, Slot: 1 + i%8})
			if err != nil {
				t.Error(err)
				return
			}
			s.AppendConsole(ctx, id, bytes.Repeat([]byte("x"), 4096))
			if err := s.FinishAttempt(ctx, id, Finish{Outcome: Passed}); err != nil {
				t.Error(err)
				return
			}
			wrote.Add(1)
		}
	}()
	// Let the writer get going: wait until it has finished some attempts.
	for wrote.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	dir := t.TempDir()
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("backup%d.db", i))
		if err := s.Backup(ctx, p); err != nil {
			t.Fatal(err)
		}
		b, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.IntegrityCheck(ctx); err != nil {
			t.Error(err)
		}
		var n int
		b.r.QueryRow(`SELECT COUNT(*) FROM attempts`).Scan(&n)
		if n < len(handHistory) {
			t.Errorf("backup %d holds %d attempts, want at least %d", i, n, len(handHistory))
		}
		b.Close()
	}
	close(stop)
	wg.Wait()
	if err := s.Backup(ctx, filepath.Join(dir, "backup0.db")); err == nil {
		t.Error("Backup over an existing file succeeded; it must refuse")
	}
}

func TestConsoleCompressedAndPruned(t *testing.T) {
	s := open(t)
	loadHand(t, s)
	var chunks, z int
	s.r.QueryRow(`SELECT COUNT(*) FROM console`).Scan(&chunks)
	s.r.QueryRow(`SELECT COUNT(*) FROM console_z`).Scan(&z)
	if chunks != 0 || z != len(handHistory) {
		t.Errorf("after the attempts ended: %d raw console chunks and %d compressed logs; want 0 and %d", chunks, z, len(handHistory))
	}
	n, err := s.PruneConsole(ctx, handTime(t, "2026-03-03 00:00"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 { // the attempts of 03-02
		t.Errorf("PruneConsole() = %d, want 8", n)
	}
	h, err := s.Unit(ctx, "U1")
	if err != nil {
		t.Fatal(err)
	}
	a0, a2 := h.Attempts[0], h.Attempts[2]
	if a0.Console != "" || a0.Outcome != Passed || !a0.ConsolePruned {
		t.Errorf("U1's first attempt after pruning: console %q, outcome %s, pruned %v; want no console, passed, pruned", a0.Console, a0.Outcome, a0.ConsolePruned)
	}
	if a2.Console == "" || a2.ConsolePruned {
		t.Errorf("U1's attempt of 03-03 lost its console (%q, pruned %v); retention kept it", a2.Console, a2.ConsolePruned)
	}
	all, _ := s.Groups(ctx, Range{}, "all")
	if all[0].Counts.Attempts != int64(len(handHistory)) || all[0].Counts.Passed != 5 {
		t.Errorf("after pruning: %+v; every outcome must stay", all[0].Counts)
	}
}
