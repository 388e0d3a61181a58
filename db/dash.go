package db

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Range selects finished attempts by start time and the dashboard's
// filters. Zero fields select everything.
type Range struct {
	Since    time.Time // attempts started at or after
	Until    time.Time // attempts started before
	Revision string
	Slot     int
}

func (r Range) bounds() (int64, int64) {
	lo, hi := int64(math.MinInt64/4), int64(math.MaxInt64/4)
	if !r.Since.IsZero() {
		lo = ms(r.Since)
	}
	if !r.Until.IsZero() {
		hi = ms(r.Until)
	}
	return lo, hi
}

// filter returns the rollup filter for r; raw is true when r filters on
// revision and slot at once, which the rollups do not keep.
func (r Range) filter() (fdim, fkey string, raw bool) {
	switch {
	case r.Revision != "" && r.Slot != 0:
		return "", "", true
	case r.Revision != "":
		return "revision", r.Revision, false
	case r.Slot != 0:
		return "slot", strconv.Itoa(r.Slot), false
	}
	return "", "", false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// split cuts [lo, hi) into whole buckets of g milliseconds [b0, b1) and
// the partial ends before and after them.
func split(lo, hi, g int64) (b0, b1 int64, edges [][2]int64) {
	b0, b1 = floorDiv(lo+g-1, g), floorDiv(hi, g)
	if b0 >= b1 {
		return 0, 0, [][2]int64{{lo, hi}}
	}
	if lo < b0*g {
		edges = append(edges, [2]int64{lo, b0 * g})
	}
	if b1*g < hi {
		edges = append(edges, [2]int64{b1 * g, hi})
	}
	return b0, b1, edges
}

// level is a run of whole buckets [b0, b1) of a grain.
type level struct {
	grain  int
	b0, b1 int64
}

// splitLevels cuts [lo, hi) into whole buckets of the coarsest grain that
// fits, then of the next grain in what is left at the ends, and so on;
// edges are what no grain covers.
func splitLevels(lo, hi int64, grains []int) (whole []level, edges [][2]int64) {
	ranges := [][2]int64{{lo, hi}}
	for _, g := range grains {
		var next [][2]int64
		for _, r := range ranges {
			b0, b1, e := split(r[0], r[1], int64(g)*hourMS)
			if b0 < b1 {
				whole = append(whole, level{g, b0, b1})
			}
			next = append(next, e...)
		}
		ranges = next
	}
	return whole, ranges
}

const countCols = `attempts, passed, unit_faults, station_faults, refused, interrupted, visits, first_pass, final_pass, returns, bytes, busy_ms`

func sumCols(cols string) string {
	var out []string
	for c := range strings.SplitSeq(cols, ",") {
		out = append(out, "SUM("+strings.TrimSpace(c)+")")
	}
	return strings.Join(out, ", ")
}

func scanCounts(sc interface{ Scan(...any) error }, head ...any) (Counts, error) {
	var c Counts
	err := sc.Scan(append(head, &c.Attempts, &c.Passed, &c.UnitFaults, &c.StationFaults, &c.Refused, &c.Interrupted,
		&c.Visits, &c.FirstPass, &c.FinalPass, &c.Returns, &c.Bytes, &c.BusyMS)...)
	return c, err
}

// counts calls fn with the counts of the finished attempts in r, per
// bucket of grain hours and key of grouping gdim. With byBucket false the
// buckets are summed (fn gets bucket 0). The same bucket and key may reach
// fn more than once (whole buckets from the rollup, partial ones from the
// attempts): fn adds.
func (s *Store) counts(ctx context.Context, r Range, grain int, gdim string, byBucket bool, fn func(bucket int64, gkey string, c Counts)) error {
	lo, hi := r.bounds()
	g := int64(grain) * hourMS
	fdim, fkey, raw := r.filter()
	if raw && grain == 24 {
		fdim, fkey, raw = "revslot", revSlot(r.Revision, r.Slot), false
	}
	var b0, b1 int64
	edges := [][2]int64{{lo, hi}}
	if !raw {
		b0, b1, edges = split(lo, hi, g)
	}
	if b0 < b1 {
		q := `SELECT bucket, gkey, ` + sumCols(countCols) + ` FROM roll
			WHERE grain = ? AND fdim = ? AND fkey = ? AND gdim = ? AND bucket >= ? AND bucket < ? GROUP BY bucket, gkey`
		if !byBucket {
			q = `SELECT 0, gkey, ` + sumCols(countCols) + ` FROM roll
			WHERE grain = ? AND fdim = ? AND fkey = ? AND gdim = ? AND bucket >= ? AND bucket < ? GROUP BY gkey`
		}
		if err := s.scanCounts(ctx, fn, q, grain, fdim, fkey, gdim, b0, b1); err != nil {
			return err
		}
	}
	expr, cond := gkeySQL(gdim)
	bucket := fmt.Sprintf("a.started_at / %d", g)
	if !byBucket {
		bucket = "0"
	}
	for _, e := range edges {
		q := `SELECT ` + bucket + `, ` + expr + `, COUNT(*), SUM(a.outcome = 'passed'),
				SUM(a.outcome = 'failed' AND a.fault = 'unit'), SUM(a.outcome = 'failed' AND a.fault != 'unit'),
				SUM(a.outcome = 'refused'), SUM(a.outcome = 'interrupted'),
				SUM(a.visit > 0), SUM(a.visit > 0 AND a.outcome = 'passed'), SUM(a.visit_passed), SUM(a.visit = 2),
				SUM(a.bytes_written), SUM(MAX(0, a.finished_at - a.started_at))
			FROM attempts a
			WHERE a.outcome != 'running' AND a.started_at >= ? AND a.started_at < ?` + cond
		args := []any{e[0], e[1]}
		if r.Revision != "" {
			q, args = q+` AND a.revision = ?`, append(args, r.Revision)
		}
		if r.Slot != 0 {
			q, args = q+` AND a.slot = ?`, append(args, r.Slot)
		}
		if err := s.scanCounts(ctx, fn, q+` GROUP BY 1, 2`, args...); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) scanCounts(ctx context.Context, fn func(int64, string, Counts), q string, args ...any) error {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b int64
		var k string
		c, err := scanCounts(rows, &b, &k)
		if err != nil {
			return err
		}
		fn(b, k, c)
	}
	return rows.Err()
}

// Shift is one shift of the working day: it starts at Start (minutes after
// local midnight) and ends where the next one starts.
type Shift struct {
	Name  string
	Start int
}

// DefaultShifts are three eight-hour shifts from 06:00.
var DefaultShifts = []Shift{{"early", 6 * 60}, {"late", 14 * 60}, {"night", 22 * 60}}

// ParseShifts reads shift boundaries such as "early=06:00,late=14:00,night=22:00".
// The record keeps hourly totals, so every boundary is on the hour.
func ParseShifts(v string) ([]Shift, error) {
	var out []Shift
	for i, part := range strings.Split(v, ",") {
		name, at, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("shift %d %q: write it as name=HH:MM, e.g. early=06:00", i+1, part)
		}
		t, err := time.Parse("15:04", at)
		if err != nil {
			return nil, fmt.Errorf("shift %q: start %q is not a time HH:MM", name, at)
		}
		if t.Minute() != 0 {
			return nil, fmt.Errorf("shift %q starts at %s, not on the hour: the record keeps hourly totals, so shifts start on the hour", name, at)
		}
		m := t.Hour() * 60
		if len(out) > 0 && m <= out[len(out)-1].Start {
			return nil, fmt.Errorf("shift %q starts at %s, not after shift %q: list the shifts in order from midnight", name, at, out[len(out)-1].Name)
		}
		out = append(out, Shift{Name: name, Start: m})
	}
	return out, nil
}

// Point is the counts of one period of a series.
type Point struct {
	Start  time.Time `json:"start"`
	Label  string    `json:"label"` // "2026-03-01", "2026-03-01 early", "2026-03-01 14:00"
	Hours  int       `json:"hours"` // hours of the period that had an attempt
	Counts Counts    `json:"counts"`
}

// Series returns the counts of r per period, oldest first: every "hour",
// "day" or "shift" (shifts as given; a shift that runs past midnight
// belongs to the day it started) in loc. Periods without attempts are left
// out.
func (s *Store) Series(ctx context.Context, r Range, every string, shifts []Shift, loc *time.Location) ([]Point, error) {
	if loc == nil {
		loc = time.Local
	}
	if len(shifts) == 0 {
		shifts = DefaultShifts
	}
	type agg struct {
		start  time.Time
		label  string
		hours  map[int64]bool
		counts Counts
	}
	periods := map[string]*agg{}
	var period func(h int64) (string, time.Time)
	switch every {
	case "hour":
		period = func(h int64) (string, time.Time) {
			t := time.UnixMilli(h * hourMS).In(loc)
			return t.Format("2006-01-02 15:04"), t
		}
	case "day":
		period = func(h int64) (string, time.Time) {
			t := time.UnixMilli(h * hourMS).In(loc)
			d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
			return d.Format("2006-01-02"), d
		}
	case "shift":
		period = func(h int64) (string, time.Time) {
			t := time.UnixMilli(h * hourMS).In(loc)
			m := t.Hour()*60 + t.Minute()
			d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
			i := len(shifts) - 1
			for i >= 0 && shifts[i].Start > m {
				i--
			}
			if i < 0 { // before the first shift: the last shift of the day before
				i, d = len(shifts)-1, d.AddDate(0, 0, -1)
			}
			st := d.Add(time.Duration(shifts[i].Start) * time.Minute)
			return d.Format("2006-01-02") + " " + shifts[i].Name, st
		}
	default:
		return nil, fmt.Errorf("db: a series is by hour, day or shift, not %q", every)
	}
	// Rows come by hour; most share the period of the row before, so the
	// period is worked out once per hour and reused for its other rows.
	lastHour := int64(math.MinInt64)
	var p *agg
	err := s.counts(ctx, r, 1, "", true, func(b int64, _ string, c Counts) {
		if b != lastHour || p == nil {
			label, start := period(b)
			p = periods[label]
			if p == nil {
				p = &agg{start: start, label: label, hours: map[int64]bool{}}
				periods[label] = p
			}
			lastHour = b
		}
		p.hours[b] = true
		p.counts.addCounts(c)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Point, 0, len(periods))
	for _, p := range periods {
		out = append(out, Point{Start: p.start, Label: p.label, Hours: len(p.hours), Counts: p.counts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// GroupCounts is the counts of the attempts sharing a key.
type GroupCounts struct {
	Key    string `json:"key"`
	Counts Counts `json:"counts"`
}

// Groupings that Groups accepts.
var Groupings = []string{"revision", "recipe", "image", "slot", "operator"}

// Groups returns the counts of r grouped by revision, recipe (name and
// version), image (version and sha256 prefix), slot or operator, sorted by
// key (slots by number). "all" gives one group of everything.
func (s *Store) Groups(ctx context.Context, r Range, by string) ([]GroupCounts, error) {
	gdim := by
	if by == "all" {
		gdim = ""
	} else if !contains(Groupings, by) {
		return nil, fmt.Errorf("db: group by %q: use one of %s or all", by, strings.Join(Groupings, ", "))
	}
	m := map[string]*Counts{}
	err := s.counts(ctx, r, 24, gdim, false, func(_ int64, k string, c Counts) {
		p := m[k]
		if p == nil {
			p = new(Counts)
			m[k] = p
		}
		p.addCounts(c)
	})
	if err != nil {
		return nil, err
	}
	out := make([]GroupCounts, 0, len(m))
	for k, c := range m {
		if by == "all" {
			k = "all"
		}
		out = append(out, GroupCounts{Key: k, Counts: *c})
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i].Key, out[j].Key) })
	return out, nil
}

func keyLess(a, b string) bool {
	if na, err := strconv.Atoi(a); err == nil {
		if nb, err := strconv.Atoi(b); err == nil {
			return na < nb
		}
	}
	return a < b
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// ParetoClass is one failure class: how many attempts ended with it.
type ParetoClass struct {
	Class   string  `json:"class"`
	Fault   string  `json:"fault"`   // unit, station or refused
	Outcome string  `json:"outcome"` // failed, refused or interrupted
	Count   int64   `json:"count"`
	Share   float64 `json:"share"` // of the attempts that ended with the same fault
}

// Pareto returns the failure classes of the failed, refused and
// interrupted attempts in r, most frequent first.
func (s *Store) Pareto(ctx context.Context, r Range) ([]ParetoClass, error) {
	m := map[string]int64{}
	err := s.counts(ctx, r, 24, "class", false, func(_ int64, k string, c Counts) { m[k] += c.Attempts })
	if err != nil {
		return nil, err
	}
	totals := map[string]int64{}
	var out []ParetoClass
	for k, n := range m {
		parts := strings.SplitN(k, "\x1f", 3)
		if len(parts) != 3 || n == 0 {
			continue
		}
		class := parts[2]
		if class == "" {
			class = "unclassified"
		}
		out = append(out, ParetoClass{Outcome: parts[0], Fault: parts[1], Class: class, Count: n})
		totals[parts[1]] += n
	}
	for i := range out {
		out[i].Share = ratio(out[i].Count, totals[out[i].Fault])
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Fault != b.Fault {
			return a.Fault < b.Fault
		}
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		return a.Outcome < b.Outcome
	})
	return out, nil
}

// StepTime is how long one step took when it succeeded.
type StepTime struct {
	Name   string        `json:"name"`
	Count  int64         `json:"count"`
	Median time.Duration `json:"median_ns"`
	P90    time.Duration `json:"p90_ns"`
}

// StepTimes returns the median and 90th percentile duration of each step
// that succeeded in the attempts of r (within 5 %: they are read from a
// histogram with bins 10 % wide), by name. Under revision and slot at once
// the histograms are weekly, the partial weeks at the ends read from the
// steps.
func (s *Store) StepTimes(ctx context.Context, r Range) ([]StepTime, error) {
	lo, hi := r.bounds()
	fdim, fkey, raw := r.filter()
	grains := []int{168, 24}
	if fdim == "" && !raw {
		grains = append(grains, 1)
	}
	if raw {
		grains, fdim, fkey = []int{168}, "revslot", revSlot(r.Revision, r.Slot)
	}
	whole, edges := splitLevels(lo, hi, grains)
	hist := map[string]map[int]int64{}
	add := func(name string, bin int, n int64) {
		h := hist[name]
		if h == nil {
			h = map[int]int64{}
			hist[name] = h
		}
		h[bin] += n
	}
	for _, w := range whole {
		rows, err := s.r.QueryContext(ctx, `SELECT name, bin, SUM(n) FROM roll_steps
			WHERE grain = ? AND fdim = ? AND fkey = ? AND bucket >= ? AND bucket < ? GROUP BY name, bin`, w.grain, fdim, fkey, w.b0, w.b1)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name string
			var bin int
			var n int64
			if err := rows.Scan(&name, &bin, &n); err != nil {
				rows.Close()
				return nil, err
			}
			add(name, bin, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for _, e := range edges {
		q := `SELECT s.name, s.finished_at - s.started_at FROM attempts a JOIN steps s ON s.attempt_id = a.id
			WHERE a.outcome != 'running' AND a.started_at >= ? AND a.started_at < ? AND s.outcome = 'ok' AND s.finished_at IS NOT NULL`
		args := []any{e[0], e[1]}
		if r.Revision != "" {
			q, args = q+` AND a.revision = ?`, append(args, r.Revision)
		}
		if r.Slot != 0 {
			q, args = q+` AND a.slot = ?`, append(args, r.Slot)
		}
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name string
			var d int64
			if err := rows.Scan(&name, &d); err != nil {
				rows.Close()
				return nil, err
			}
			add(name, stepBin(d), 1)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]StepTime, 0, len(hist))
	for name, h := range hist {
		bins := make([]int, 0, len(h))
		var n int64
		for b, c := range h {
			bins = append(bins, b)
			n += c
		}
		sort.Ints(bins)
		quant := func(q float64) time.Duration {
			// The smallest bin whose cumulative count reaches q of n.
			need := int64(math.Ceil(q * float64(n)))
			var cum int64
			for _, b := range bins {
				cum += h[b]
				if cum >= need {
					return binMid(b)
				}
			}
			return binMid(bins[len(bins)-1])
		}
		out = append(out, StepTime{Name: name, Count: n, Median: quant(0.5), P90: quant(0.9)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RebuildRollups recomputes the visits and every dashboard rollup from the
// attempts, in one transaction.
func (s *Store) RebuildRollups(ctx context.Context) error {
	return s.write(ctx, rebuildRollups)
}

// OutcomeTotal is how many attempts ended one way.
type OutcomeTotal struct {
	Outcome, Fault, Class string
	Count                 int64
}

// Totals returns every finished attempt counted by outcome, fault and
// class, and the bytes they wrote, read from the rollups.
func (s *Store) Totals(ctx context.Context) ([]OutcomeTotal, int64, error) {
	var out []OutcomeTotal
	var bytes int64
	err := s.counts(ctx, Range{}, 24, "", false, func(_ int64, _ string, c Counts) {
		bytes += c.Bytes
		if c.Passed > 0 {
			out = append(out, OutcomeTotal{Outcome: string(Passed), Count: c.Passed})
		}
	})
	if err != nil {
		return nil, 0, err
	}
	err = s.counts(ctx, Range{}, 24, "class", false, func(_ int64, k string, c Counts) {
		parts := strings.SplitN(k, "\x1f", 3)
		if len(parts) == 3 {
			out = append(out, OutcomeTotal{Outcome: parts[0], Fault: parts[1], Class: parts[2], Count: c.Attempts})
		}
	})
	return out, bytes, err
}

// PruneConsole deletes the console logs of attempts that ended before
// cutoff, keeping every attempt, its outcome, steps and artifacts. It
// returns how many logs it deleted.
func (s *Store) PruneConsole(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		c := ms(cutoff)
		res, err := tx.Exec(`UPDATE attempts SET console_pruned = 1 WHERE outcome != 'running' AND finished_at < ? AND console_pruned = 0
			AND (EXISTS (SELECT 1 FROM console_z z WHERE z.attempt_id = attempts.id) OR EXISTS (SELECT 1 FROM console c WHERE c.attempt_id = attempts.id))`, c)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		if _, err := tx.Exec(`DELETE FROM console_z WHERE attempt_id IN (SELECT id FROM attempts WHERE outcome != 'running' AND finished_at < ?)`, c); err != nil {
			return err
		}
		_, err = tx.Exec(`DELETE FROM console WHERE attempt_id IN (SELECT id FROM attempts WHERE outcome != 'running' AND finished_at < ?)`, c)
		return err
	})
	return n, err
}

// RepeatVisitors returns how many units began more than one visit: the
// first returns, summed over all time from the rollups.
func (s *Store) RepeatVisitors(ctx context.Context) (int, error) {
	var n int64
	err := s.counts(ctx, Range{}, 24, "", false, func(_ int64, _ string, c Counts) { n += c.Returns })
	return int(n), err
}
