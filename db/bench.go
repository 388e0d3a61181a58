package db

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// BenchResult is the median time of one dashboard query.
type BenchResult struct {
	Name   string
	Median time.Duration
	Rows   int
}

// benchQuery is one query the dashboard makes.
type benchQuery struct {
	name string
	run  func() (int, error)
}

// dashboardQueries are the queries the dashboard makes over the last 365
// days of the record (ending at its newest attempt, at a time that is not
// on a day's boundary, so the partial days are read too).
func dashboardQueries(ctx context.Context, s *Store) ([]benchQuery, error) {
	var newest int64
	var serial string
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(started_at), 0) FROM attempts`).Scan(&newest); err != nil {
		return nil, err
	}
	s.r.QueryRowContext(ctx, `SELECT serial FROM visits ORDER BY n DESC LIMIT 1`).Scan(&serial)
	until := time.UnixMilli(newest + 1)
	year := Range{Since: until.Add(-365 * 24 * time.Hour), Until: until}
	rev, slot, both := year, year, year
	rev.Revision = "rev-C"
	slot.Slot = 13
	both.Revision, both.Slot = "rev-C", 13
	loc := time.UTC
	series := func(r Range, every string) func() (int, error) {
		return func() (int, error) { p, err := s.Series(ctx, r, every, DefaultShifts, loc); return len(p), err }
	}
	groups := func(r Range, by string) func() (int, error) {
		return func() (int, error) { g, err := s.Groups(ctx, r, by); return len(g), err }
	}
	return []benchQuery{
		{"yield all (year)", groups(year, "all")},
		{"yield by day (year)", series(year, "day")},
		{"yield by shift (year)", series(year, "shift")},
		{"units per hour (year, hourly)", series(year, "hour")},
		{"yield by revision (year)", groups(year, "revision")},
		{"yield by recipe version (year)", groups(year, "recipe")},
		{"yield by image (year)", groups(year, "image")},
		{"yield by slot (year)", groups(year, "slot")},
		{"yield by operator (year)", groups(year, "operator")},
		{"pareto (year)", func() (int, error) { p, err := s.Pareto(ctx, year); return len(p), err }},
		{"step times (year)", func() (int, error) { p, err := s.StepTimes(ctx, year); return len(p), err }},
		{"yield by day, revision filter", series(rev, "day")},
		{"yield by shift, slot filter", series(slot, "shift")},
		{"yield by slot, revision filter", groups(rev, "slot")},
		{"pareto, slot filter", func() (int, error) { p, err := s.Pareto(ctx, slot); return len(p), err }},
		{"step times, slot filter", func() (int, error) { p, err := s.StepTimes(ctx, slot); return len(p), err }},
		{"yield by day, revision and slot", series(both, "day")},
		{"yield by operator, revision and slot", groups(both, "operator")},
		{"step times, revision and slot", func() (int, error) { p, err := s.StepTimes(ctx, both); return len(p), err }},
		{"unit history (most visits)", func() (int, error) { h, err := s.Unit(ctx, serial); return len(h.Attempts), err }},
		{"repeat visitors", func() (int, error) { return s.RepeatVisitors(ctx) }},
	}, nil
}

// BenchDashboard runs every query of the dashboard (dashboardQueries) runs
// times and returns their median times. It backs `unbrick records bench`.
func BenchDashboard(ctx context.Context, s *Store, runs int) ([]BenchResult, error) {
	qs, err := dashboardQueries(ctx, s)
	if err != nil {
		return nil, err
	}
	var out []BenchResult
	for _, q := range qs {
		var times []time.Duration
		var rows int
		for i := 0; i < max(1, runs); i++ {
			t0 := time.Now()
			n, err := q.run()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			times, rows = append(times, time.Since(t0)), n
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		out = append(out, BenchResult{Name: q.name, Median: times[len(times)/2], Rows: rows})
	}
	return out, nil
}
