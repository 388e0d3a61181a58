package station

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/web"
)

// The dashboard's trends, unit history and exports, and the metrics, read
// from the record: webRecords implements web.Dashboard.

var _ web.Dashboard = webRecords{}

func dbRange(q web.Query) db.Range {
	return db.Range{Since: q.Since, Until: q.Until, Revision: q.Revision, Slot: q.Slot}
}

func webCounts(c db.Counts) web.Counts {
	return web.Counts{Attempts: c.Attempts, Passed: c.Passed, UnitFaults: c.UnitFaults, StationFaults: c.StationFaults,
		Refused: c.Refused, Interrupted: c.Interrupted, Visits: c.Visits, FirstPass: c.FirstPass, FinalPass: c.FinalPass,
		FirstPassYield: c.FirstPassYield(), FinalYield: c.FinalYield(), Bytes: c.Bytes, BusyMS: c.BusyMS}
}

func (r webRecords) Series(ctx context.Context, q web.Query, every, shifts string) ([]web.Period, error) {
	sh := r.shifts
	if strings.TrimSpace(shifts) != "" {
		var err error
		if sh, err = db.ParseShifts(shifts); err != nil {
			return nil, err
		}
	}
	ps, err := r.s.Series(ctx, dbRange(q), every, sh, time.Local)
	if err != nil {
		return nil, err
	}
	out := make([]web.Period, len(ps))
	for i, p := range ps {
		out[i] = web.Period{Start: p.Start, Label: p.Label, Hours: p.Hours, Counts: webCounts(p.Counts)}
	}
	return out, nil
}

func (r webRecords) Groups(ctx context.Context, q web.Query, by string) ([]web.Group, error) {
	gs, err := r.s.Groups(ctx, dbRange(q), by)
	if err != nil {
		return nil, err
	}
	out := make([]web.Group, len(gs))
	for i, g := range gs {
		out[i] = web.Group{Key: g.Key, Counts: webCounts(g.Counts)}
	}
	return out, nil
}

func (r webRecords) Failures(ctx context.Context, q web.Query) ([]web.Failure, error) {
	ps, err := r.s.Pareto(ctx, dbRange(q))
	if err != nil {
		return nil, err
	}
	out := make([]web.Failure, len(ps))
	for i, p := range ps {
		out[i] = web.Failure{Class: p.Class, Fault: p.Fault, Outcome: p.Outcome, Count: p.Count, Share: p.Share}
	}
	return out, nil
}

func (r webRecords) StepTimes(ctx context.Context, q web.Query) ([]web.StepTime, error) {
	st, err := r.s.StepTimes(ctx, dbRange(q))
	if err != nil {
		return nil, err
	}
	out := make([]web.StepTime, len(st))
	for i, s := range st {
		out[i] = web.StepTime{Name: s.Name, Count: s.Count, MedianMS: float64(s.Median) / 1e6, P90MS: float64(s.P90) / 1e6}
	}
	return out, nil
}

func (r webRecords) UnitHistory(ctx context.Context, serial string) (web.UnitRecord, error) {
	h, err := r.s.Unit(ctx, serial)
	if errors.Is(err, db.ErrNotFound) {
		return web.UnitRecord{}, errors.Join(web.ErrNoUnit, err)
	}
	if err != nil {
		return web.UnitRecord{}, err
	}
	u := h.Unit
	out := web.UnitRecord{Serial: u.Serial, Protocol: u.Protocol, Revision: u.Revision, Chip: u.Chip, Model: u.Model, FirstSeen: u.FirstSeen,
		LastSeen: u.LastSeen, Visits: h.Visits, Repeat: h.Visits > 1}
	for _, a := range h.Attempts {
		wa := web.UnitAttempt{ID: a.ID, Visit: a.Visit, Slot: a.Slot, Recipe: a.Recipe, RecipeVersion: a.RecipeVersion,
			RecipeSHA256: a.RecipeSHA256, Revision: a.Revision, ImageSHA256: a.ImageSHA256, ImageVersion: a.ImageVersion,
			Strategy: a.Strategy, Outcome: string(a.Outcome), Class: a.Class, Fault: a.Fault, Reason: a.Reason, Hint: a.Hint,
			Operator: a.Operator, Bytes: a.Bytes, Started: a.Started, Finished: a.Finished, Console: a.Console,
			ConsolePruned: a.ConsolePruned, Steps: []web.UnitStep{}}
		for _, s := range a.Steps {
			wa.Steps = append(wa.Steps, web.UnitStep{Seq: s.Seq, Name: s.Name, Strategy: s.Strategy, Started: s.Started,
				Finished: s.Finished, Outcome: s.Outcome, Detail: s.Detail})
		}
		out.Attempts = append(out.Attempts, wa)
	}
	return out, nil
}

// FindUnits returns the serial numbers matching q, the exact match first.
func (r webRecords) FindUnits(ctx context.Context, q string, limit int) ([]string, error) {
	var out []string
	switch known, err := r.s.HasUnit(ctx, q); {
	case err != nil:
		return nil, err
	case known:
		out = append(out, q)
	}
	units, err := r.s.Units(ctx, 5000)
	if err != nil {
		return nil, err
	}
	lq := strings.ToLower(q)
	for _, u := range units {
		if len(out) >= limit {
			break
		}
		if u.Serial != q && strings.Contains(strings.ToLower(u.Serial), lq) {
			out = append(out, u.Serial)
		}
	}
	return out, nil
}

func (r webRecords) RepeatVisitors(ctx context.Context) (int, error) { return r.s.RepeatVisitors(ctx) }

func (r webRecords) Export(ctx context.Context, w io.Writer, format string, since, until time.Time) error {
	return r.s.Export(ctx, w, format, db.Filter{Since: since, Until: until})
}

// metrics makes the station's Prometheus metrics: fed by the record as
// each attempt and step ends, seeded with what the record held before.
func (st *Station) metrics() *web.Metrics {
	m := web.NewMetrics(st.Tracker)
	st.Store.SetObserver(m)
	totals, bytes, err := st.Store.Totals(context.Background())
	if err != nil {
		st.log.Warn("metrics start at zero: reading the record's totals failed", "err", err)
		return m
	}
	for _, t := range totals {
		m.Seed(t.Outcome, t.Class, t.Fault, t.Count, 0)
	}
	m.Seed("", "", "", 0, bytes)
	return m
}
