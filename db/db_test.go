package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "unbrick.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var ctx = context.Background()

func TestOpenMigratesAndReopens(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v < 1 {
		t.Fatalf("SchemaVersion() = %d, %v; want >= 1", v, err)
	}
	if err := s.UpsertUnit(ctx, Unit{Serial: "A1", Chip: "stm32f103"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(p)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	h, err := s.Unit(ctx, "A1")
	if err != nil || h.Unit.Chip != "stm32f103" {
		t.Fatalf("Unit(A1) after reopen = %+v, %v", h, err)
	}
	for serial, want := range map[string]bool{"A1": true, "a1": false, "A": false} {
		if got, err := s.HasUnit(ctx, serial); err != nil || got != want {
			t.Errorf("HasUnit(%q) = %v, %v; want %v", serial, got, err, want)
		}
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`)
		return err
	})
	s.Close()
	_, err = Open(p)
	if err == nil || !strings.Contains(err.Error(), "schema version 999") {
		t.Fatalf("Open(newer) = %v, want an error naming schema version 999", err)
	}
}

func TestAttemptLifecycle(t *testing.T) {
	s := open(t)
	if err := s.UpsertUnit(ctx, Unit{Serial: "U1", Protocol: "stm32", Chip: "0x410", Revision: "B"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 3, SlotName: "slot 3", Recipe: "r", RecipeVersion: 2,
		RecipeSHA256: "ab", Revision: "B", ImageSHA256: strings.Repeat("c", 64), ImageVersion: "1.2"})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"enter", "erase", "write"} {
		if err := s.StartStep(ctx, id, Step{Seq: i + 1, Name: name, Strategy: "reflash"}); err != nil {
			t.Fatal(err)
		}
		if err := s.EndStep(ctx, id, i+1, "ok", name+" done"); err != nil {
			t.Fatal(err)
		}
	}
	s.AppendConsole(ctx, id, []byte("hello "))
	s.AppendConsole(ctx, id, []byte("world\r\n"))
	if err := s.SaveArtifact(ctx, id, Artifact{Name: "config", Address: 0x0801F800, Data: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAttempt(ctx, id, Finish{Outcome: Passed, Strategy: "reflash", Bytes: 4096}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAttempt(ctx, id, Finish{Outcome: Failed}); !errors.Is(err, ErrFinished) {
		t.Fatalf("finishing twice = %v, want ErrFinished", err)
	}
	a, err := s.Attempt(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != Passed || a.Serial != "U1" || a.Slot != 3 || a.Strategy != "reflash" || a.Bytes != 4096 || a.LastStep != "write" {
		t.Errorf("Attempt() = %+v", a)
	}
	if len(a.Steps) != 3 || a.Steps[1].Name != "erase" || a.Steps[1].Outcome != "ok" || a.Steps[2].Detail != "write done" {
		t.Errorf("steps = %+v", a.Steps)
	}
	if a.Console != "hello world\r\n" {
		t.Errorf("console = %q", a.Console)
	}
	if len(a.Artifacts) != 1 || !bytes.Equal(a.Artifacts[0].Data, []byte{1, 2, 3}) || a.Artifacts[0].Address != 0x0801F800 {
		t.Errorf("artifacts = %+v", a.Artifacts)
	}
	if a.Finished.IsZero() || a.Duration() < 0 {
		t.Errorf("finished = %v", a.Finished)
	}
	h, err := s.Unit(ctx, "U1")
	if err != nil || len(h.Attempts) != 1 || h.Unit.Revision != "B" {
		t.Fatalf("Unit(U1) = %+v, %v", h, err)
	}
	list, err := s.Attempts(ctx, Filter{Slot: 3})
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("Attempts(slot 3) = %+v, %v", list, err)
	}
	if list, _ := s.Attempts(ctx, Filter{Slot: 4}); len(list) != 0 {
		t.Fatalf("Attempts(slot 4) = %+v, want none", list)
	}
}

func TestStartAttemptUnknownUnitFails(t *testing.T) {
	s := open(t)
	if _, err := s.StartAttempt(ctx, AttemptStart{Serial: "nobody", Slot: 1}); err == nil {
		t.Fatal("StartAttempt for a unit never upserted succeeded; the foreign key should refuse it")
	}
}

// attempt records a finished attempt in one call.
func attempt(t *testing.T, s *Store, serial string, slot int, recipe, rev string, o Outcome, fault, class string) int64 {
	t.Helper()
	if serial != "" {
		if err := s.UpsertUnit(ctx, Unit{Serial: serial, Revision: rev}); err != nil {
			t.Fatal(err)
		}
	}
	id, err := s.StartAttempt(ctx, AttemptStart{Serial: serial, Slot: slot, Recipe: recipe, Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAttempt(ctx, id, Finish{Outcome: o, Fault: fault, Class: class}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestYieldAndPareto(t *testing.T) {
	s := open(t)
	// Unit A passes first time. B fails (unit fault) then passes. C's first
	// attempt dies on a vanished port (station fault), then passes: still a
	// first pass. D fails twice (unit faults). E is refused only: never
	// judged. F is interrupted only.
	attempt(t, s, "A", 1, "r1", "B", Passed, "", "")
	attempt(t, s, "B", 2, "r1", "B", Failed, "unit", "verify-mismatch")
	attempt(t, s, "B", 1, "r1", "B", Passed, "", "")
	attempt(t, s, "C", 2, "r2", "C", Failed, "station", "port-vanished")
	attempt(t, s, "C", 3, "r2", "C", Passed, "", "")
	attempt(t, s, "D", 2, "r2", "C", Failed, "unit", "verify-mismatch")
	attempt(t, s, "D", 3, "r2", "C", Failed, "unit", "no-sync")
	attempt(t, s, "", 1, "r1", "B", Refused, "refused", "image-refused")
	attempt(t, s, "F", 1, "r1", "B", Interrupted, "station", "station-stopped")

	y, err := s.Yield(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// Judged units: A, B, C, D. First pass: A, C. Passed: A, B, C.
	if y.Units != 4 || y.FirstPass != 2 || y.Passed != 3 {
		t.Errorf("units/first/passed = %d/%d/%d, want 4/2/3", y.Units, y.FirstPass, y.Passed)
	}
	if math.Abs(y.FirstPassYield-0.5) > 1e-9 || math.Abs(y.FinalYield-0.75) > 1e-9 {
		t.Errorf("yields = %v/%v, want 0.5/0.75", y.FirstPassYield, y.FinalYield)
	}
	if y.Attempts != 9 || y.ByFault["unit"] != 3 || y.ByFault["station"] != 1 || y.ByOutcome["refused"] != 1 {
		t.Errorf("attempts %d, by fault %v, by outcome %v", y.Attempts, y.ByFault, y.ByOutcome)
	}
	// Slot 2: B fail(unit), C fail(station), D fail(unit): yield 0/2.
	// Slot 3: C pass, D fail(unit): 1/2.
	want := map[string]Group{
		"1": {Key: "1", Attempts: 4, Passed: 2, Refused: 1, Interrupted: 1, Yield: 1},
		"2": {Key: "2", Attempts: 3, UnitFaults: 2, StationFaults: 1, Yield: 0},
		"3": {Key: "3", Attempts: 2, Passed: 1, UnitFaults: 1, Yield: 0.5},
	}
	if len(y.BySlot) != 3 {
		t.Fatalf("BySlot = %+v", y.BySlot)
	}
	for _, g := range y.BySlot {
		if g != want[g.Key] {
			t.Errorf("slot %s: %+v, want %+v", g.Key, g, want[g.Key])
		}
	}
	if len(y.ByRecipe) != 2 || y.ByRecipe[0].Key != "r1" || y.ByRecipe[1].Passed != 1 || y.ByRecipe[1].UnitFaults != 2 {
		t.Errorf("ByRecipe = %+v", y.ByRecipe)
	}

	p, err := s.FailurePareto(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	wantP := []ParetoRow{
		{Class: "verify-mismatch", Fault: "unit", Count: 2, Share: 2.0 / 3},
		{Class: "image-refused", Fault: "refused", Count: 1, Share: 1},
		{Class: "port-vanished", Fault: "station", Count: 1, Share: 1},
		{Class: "no-sync", Fault: "unit", Count: 1, Share: 1.0 / 3},
	}
	if len(p) != len(wantP) {
		t.Fatalf("Pareto = %+v", p)
	}
	for i := range p {
		if p[i].Class != wantP[i].Class || p[i].Fault != wantP[i].Fault || p[i].Count != wantP[i].Count || math.Abs(p[i].Share-wantP[i].Share) > 1e-9 {
			t.Errorf("Pareto[%d] = %+v, want %+v", i, p[i], wantP[i])
		}
	}

	var buf bytes.Buffer
	if err := s.ExportCSV(ctx, &buf, Filter{}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 10 || recs[0][0] != "id" || recs[1][1] != "A" || recs[9][11] != "interrupted" {
		t.Fatalf("CSV = %v, %v", recs, err)
	}
}

func TestPoolsCommitWithAttempt(t *testing.T) {
	s := open(t)
	if err := s.CreatePool(ctx, Pool{Name: "sn", Format: "SN%06d", First: 1, Last: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePool(ctx, Pool{Name: "sn", Format: "SN%06d", First: 1, Last: 3}); err != nil {
		t.Fatalf("re-creating an identical pool: %v", err)
	}
	if err := s.CreatePool(ctx, Pool{Name: "sn", Format: "SN%06d", First: 1, Last: 9}); err == nil {
		t.Fatal("redefining a pool's range succeeded")
	}
	s.UpsertUnit(ctx, Unit{Serial: "U1"})
	s.UpsertUnit(ctx, Unit{Serial: "U2"})
	a1, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 1})
	v1, err := s.Allocate(ctx, "sn", a1)
	if err != nil || v1.Value != "SN000001" {
		t.Fatalf("Allocate = %+v, %v", v1, err)
	}
	// The attempt fails: the value goes back and is handed out again.
	s.FinishAttempt(ctx, a1, Finish{Outcome: Failed, Fault: "unit"})
	a2, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U2", Slot: 1})
	v2, err := s.Allocate(ctx, "sn", a2)
	if err != nil || v2.Value != "SN000001" {
		t.Fatalf("Allocate after a failure = %+v, %v; want the returned SN000001", v2, err)
	}
	s.FinishAttempt(ctx, a2, Finish{Outcome: Passed})
	c, _ := s.Committed(ctx, "sn")
	if len(c) != 1 || c["SN000001"] != "U2" {
		t.Fatalf("committed = %v", c)
	}
	a3, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 2})
	if v, _ := s.Allocate(ctx, "sn", a3); v.Value != "SN000002" {
		t.Fatalf("next value = %q, want SN000002", v.Value)
	}
	if v, _ := s.Allocate(ctx, "sn", a3); v.Value != "SN000003" {
		t.Fatalf("next value = %q, want SN000003", v.Value)
	}
	if _, err := s.Allocate(ctx, "sn", a3); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("allocating past the end = %v, want ErrPoolExhausted", err)
	}
	// Committing a value twice is impossible even bypassing the code.
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO allocations (pool, number, value, state, updated_at) VALUES ('sn', 99, 'SN000001', 'committed', 0)`)
		return err
	})
	if err == nil {
		t.Fatal("a second committed row with the same value was accepted")
	}
}

func TestMACPoolFormat(t *testing.T) {
	s := open(t)
	if err := s.CreatePool(ctx, Pool{Name: "mac", Format: "02:00:00:%02x:%02x:%02x", First: 0x0100FF, Last: 0x010200}); err != nil {
		t.Fatal(err)
	}
	s.UpsertUnit(ctx, Unit{Serial: "U1"})
	a, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 1})
	v, err := s.Allocate(ctx, "mac", a)
	if err != nil || v.Value != "02:00:00:01:00:ff" {
		t.Fatalf("Allocate(mac) = %+v, %v", v, err)
	}
}

func TestPoolUniqueUnderConcurrency(t *testing.T) {
	s := open(t)
	s.CreatePool(ctx, Pool{Name: "sn", Format: "%d", First: 1, Last: 1000})
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				serial := fmt.Sprintf("W%d-%d", w, i)
				if err := s.UpsertUnit(ctx, Unit{Serial: serial}); err != nil {
					errs <- err
					return
				}
				id, err := s.StartAttempt(ctx, AttemptStart{Serial: serial, Slot: w + 1})
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Allocate(ctx, "sn", id); err != nil {
					errs <- err
					return
				}
				o := Passed
				if i%3 == 0 {
					o = Failed
				}
				if err := s.FinishAttempt(ctx, id, Finish{Outcome: o, Fault: "unit"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Readers query while the writers write.
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Yield(ctx, time.Time{}, time.Time{}); err != nil {
					errs <- err
					return
				}
				if _, err := s.Attempts(ctx, Filter{Limit: 20}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent use: %v", err)
	}
	c, err := s.Committed(ctx, "sn")
	if err != nil {
		t.Fatal(err)
	}
	passed := workers * (each - (each+2)/3)
	if len(c) != passed {
		t.Errorf("%d values committed, want %d (one per passed attempt)", len(c), passed)
	}
	units := map[string]bool{}
	for _, u := range c {
		if units[u] {
			t.Errorf("unit %s got two values", u)
		}
		units[u] = true
	}
}

func TestMarkInterrupted(t *testing.T) {
	s := open(t)
	s.CreatePool(ctx, Pool{Name: "sn", Format: "%d", First: 1, Last: 10})
	s.UpsertUnit(ctx, Unit{Serial: "U1"})
	done := attempt(t, s, "U1", 1, "r", "B", Passed, "", "")
	id, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 2})
	s.StartStep(ctx, id, Step{Seq: 1, Name: "write app"})
	s.Allocate(ctx, "sn", id)
	marked, err := s.MarkInterrupted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(marked) != 1 || marked[0].ID != id || marked[0].Outcome != Interrupted || marked[0].LastStep != "write app" ||
		!strings.Contains(marked[0].Reason, "write app") {
		t.Fatalf("MarkInterrupted() = %+v", marked)
	}
	if a, _ := s.Attempt(ctx, done); a.Outcome != Passed {
		t.Errorf("a finished attempt changed: %+v", a)
	}
	// Its reservation went back to the pool.
	id2, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 2})
	if v, _ := s.Allocate(ctx, "sn", id2); v.Value != "1" {
		t.Errorf("value after an interrupted attempt = %q, want the returned 1", v.Value)
	}
}

func TestCatalog(t *testing.T) {
	s := open(t)
	sha := strings.Repeat("ab", 32)
	im := Image{SHA256: sha, Name: "sensor-app", Version: "1.4.2", Purpose: "app", Targets: []string{"C", "B"}, Size: 4096, AddedBy: "alice"}
	if err := s.PutImage(ctx, im); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, im); err != nil {
		t.Fatalf("re-adding the same image: %v", err)
	}
	im2 := im
	im2.Version = "9.9"
	if err := s.PutImage(ctx, im2); err == nil {
		t.Fatal("the same bytes under another version were accepted")
	}
	got, err := s.Image(ctx, sha)
	if err != nil || got.Name != "sensor-app" || len(got.Targets) != 2 || got.Targets[0] != "B" || got.AddedBy != "alice" {
		t.Fatalf("Image() = %+v, %v", got, err)
	}
	if _, err := s.Image(ctx, strings.Repeat("00", 32)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Image(unknown) = %v, want ErrNotFound", err)
	}
	if l, _ := s.Images(ctx, ImageFilter{Revision: "B"}); len(l) != 1 {
		t.Errorf("Images(rev B) = %+v", l)
	}
	if l, _ := s.Images(ctx, ImageFilter{Revision: "Z"}); len(l) != 0 {
		t.Errorf("Images(rev Z) = %+v", l)
	}
	if err := s.PutImage(ctx, Image{SHA256: "short", Name: "x", Purpose: "app"}); err == nil {
		t.Error("a bad sha256 was accepted")
	}
}

func TestQuarantine(t *testing.T) {
	s := open(t)
	if err := s.Quarantine(ctx, Quarantine{Slot: 4, Reason: "3 units failed in a row", By: "station"}); err != nil {
		t.Fatal(err)
	}
	s.Quarantine(ctx, Quarantine{Slot: 4, Reason: "again"})
	q, err := s.Quarantined(ctx)
	if err != nil || len(q) != 1 || q[0].Slot != 4 || q[0].Reason != "3 units failed in a row" {
		t.Fatalf("Quarantined() = %+v, %v", q, err)
	}
	attempt(t, s, "U1", 4, "r", "B", Failed, "unit", "x")
	if r, _ := s.RecentFinished(ctx, 4, 5); len(r) != 1 {
		t.Fatalf("RecentFinished before release = %d attempts, want 1", len(r))
	}
	ok, err := s.ReleaseSlot(ctx, 4, "supervisor")
	if err != nil || !ok {
		t.Fatalf("ReleaseSlot = %v, %v", ok, err)
	}
	if ok, _ := s.ReleaseSlot(ctx, 4, "supervisor"); ok {
		t.Error("releasing a released slot reported a release")
	}
	if q, _ := s.Quarantined(ctx); len(q) != 0 {
		t.Errorf("Quarantined() after release = %+v", q)
	}
	// The release wipes the slate: older failures no longer count.
	if r, _ := s.RecentFinished(ctx, 4, 5); len(r) != 0 {
		t.Errorf("RecentFinished after release = %+v, want none", r)
	}
}

func TestCloseFlushesQueuedWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u.db")
	s, _ := Open(p)
	s.UpsertUnit(ctx, Unit{Serial: "U1"})
	id, _ := s.StartAttempt(ctx, AttemptStart{Serial: "U1", Slot: 1})
	for i := range 100 {
		s.AppendConsole(ctx, id, []byte{byte('a' + i%26)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendConsole(ctx, id, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close = %v, want ErrClosed", err)
	}
	s, _ = Open(p)
	defer s.Close()
	c, _ := s.Console(ctx, id)
	if len(c) != 100 {
		t.Fatalf("console after close and reopen has %d bytes, want 100", len(c))
	}
}

func BenchmarkAttempt(b *testing.B) {
	s := open(b)
	console := bytes.Repeat([]byte("boot log line 0123456789\r\n"), 160) // ~4 KiB
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		serial := fmt.Sprintf("U%d", i)
		s.UpsertUnit(ctx, Unit{Serial: serial})
		id, err := s.StartAttempt(ctx, AttemptStart{Serial: serial, Slot: i%16 + 1})
		if err != nil {
			b.Fatal(err)
		}
		for st := 1; st <= 10; st++ {
			s.StartStep(ctx, id, Step{Seq: st, Name: "step"})
			s.EndStep(ctx, id, st, "ok", "")
		}
		for off := 0; off < len(console); off += 512 {
			s.AppendConsole(ctx, id, console[off:min(off+512, len(console))])
		}
		if err := s.FinishAttempt(ctx, id, Finish{Outcome: Passed}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "attempts/s")
}
