package db

import (
	"context"
	"sort"
	"strconv"
	"time"
)

// Yield is the supervisors' summary of a period.
//
// Only attempts that judged the unit count towards yield: those that passed
// and those that failed through the unit's fault. Refusals (the station
// refused before touching the unit), interrupted attempts and failures
// through the station's fault (a port that vanished, a line error) are
// counted apart and never lower a unit's yield.
//
// A unit passes first time when its first judged attempt in the period
// passed; its final outcome is a pass when any judged attempt passed.
type Yield struct {
	Since          time.Time      `json:"since,omitzero"`
	Until          time.Time      `json:"until,omitzero"`
	Units          int            `json:"units"`            // units with a judged attempt
	FirstPass      int            `json:"first_pass"`       // of those, passed on their first judged attempt
	Passed         int            `json:"passed"`           // of those, passed in the end
	FirstPassYield float64        `json:"first_pass_yield"` // FirstPass / Units
	FinalYield     float64        `json:"final_yield"`      // Passed / Units
	Attempts       int            `json:"attempts"`         // every finished attempt
	ByOutcome      map[string]int `json:"by_outcome"`
	ByFault        map[string]int `json:"by_fault"` // failed attempts by fault: unit, station
	ByRecipe       []Group        `json:"by_recipe"`
	ByRevision     []Group        `json:"by_revision"`
	BySlot         []Group        `json:"by_slot"`
}

// Group is the yield of the attempts sharing a key (a recipe, a revision, a
// slot).
type Group struct {
	Key           string  `json:"key"`
	Attempts      int     `json:"attempts"`
	Passed        int     `json:"passed"`
	UnitFaults    int     `json:"unit_faults"`
	StationFaults int     `json:"station_faults"`
	Refused       int     `json:"refused"`
	Interrupted   int     `json:"interrupted"`
	Yield         float64 `json:"yield"` // Passed / (Passed + UnitFaults)
}

type yieldRow struct {
	serial, recipe, revision, outcome, fault, class string
	slot                                            int
}

func (s *Store) finishedRows(ctx context.Context, since, until time.Time) ([]yieldRow, error) {
	q := `SELECT COALESCE(unit_serial, ''), recipe, revision, outcome, fault, class, slot FROM attempts WHERE outcome != 'running'`
	var args []any
	if !since.IsZero() {
		q, args = q+` AND started_at >= ?`, append(args, ms(since))
	}
	if !until.IsZero() {
		q, args = q+` AND started_at < ?`, append(args, ms(until))
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY started_at, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []yieldRow
	for rows.Next() {
		var r yieldRow
		if err := rows.Scan(&r.serial, &r.recipe, &r.revision, &r.outcome, &r.fault, &r.class, &r.slot); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (r yieldRow) judged() bool {
	return r.serial != "" && (r.outcome == string(Passed) || (r.outcome == string(Failed) && r.fault == "unit"))
}

// Yield computes the yield of the attempts started in [since, until); zero
// times leave that end open.
func (s *Store) Yield(ctx context.Context, since, until time.Time) (Yield, error) {
	rows, err := s.finishedRows(ctx, since, until)
	if err != nil {
		return Yield{}, err
	}
	y := Yield{Since: since, Until: until, ByOutcome: map[string]int{}, ByFault: map[string]int{}}
	type unit struct{ first, passed bool }
	units := map[string]*unit{}
	groups := [3]map[string]*Group{{}, {}, {}}
	for _, r := range rows {
		y.Attempts++
		y.ByOutcome[r.outcome]++
		if r.outcome == string(Failed) {
			y.ByFault[r.fault]++
		}
		if r.judged() {
			u, seen := units[r.serial]
			if !seen {
				u = &unit{first: r.outcome == string(Passed)}
				units[r.serial] = u
			}
			u.passed = u.passed || r.outcome == string(Passed)
		}
		for i, key := range [3]string{r.recipe, r.revision, strconv.Itoa(r.slot)} {
			g := groups[i][key]
			if g == nil {
				g = &Group{Key: key}
				groups[i][key] = g
			}
			g.Attempts++
			switch {
			case r.outcome == string(Passed):
				g.Passed++
			case r.outcome == string(Failed) && r.fault == "unit":
				g.UnitFaults++
			case r.outcome == string(Failed):
				g.StationFaults++
			case r.outcome == string(Refused):
				g.Refused++
			case r.outcome == string(Interrupted):
				g.Interrupted++
			}
		}
	}
	for _, u := range units {
		y.Units++
		if u.first {
			y.FirstPass++
		}
		if u.passed {
			y.Passed++
		}
	}
	if y.Units > 0 {
		y.FirstPassYield = float64(y.FirstPass) / float64(y.Units)
		y.FinalYield = float64(y.Passed) / float64(y.Units)
	}
	out := [3][]Group{}
	for i, m := range groups {
		for _, g := range m {
			if d := g.Passed + g.UnitFaults; d > 0 {
				g.Yield = float64(g.Passed) / float64(d)
			}
			out[i] = append(out[i], *g)
		}
		sort.Slice(out[i], func(a, b int) bool {
			ka, kb := out[i][a].Key, out[i][b].Key
			if na, err := strconv.Atoi(ka); err == nil {
				if nb, err := strconv.Atoi(kb); err == nil {
					return na < nb
				}
			}
			return ka < kb
		})
	}
	y.ByRecipe, y.ByRevision, y.BySlot = out[0], out[1], out[2]
	return y, nil
}

// ParetoRow is one failure class and how often it happened.
type ParetoRow struct {
	Class string  `json:"class"`
	Fault string  `json:"fault"`
	Count int     `json:"count"`
	Share float64 `json:"share"` // of all failures of the same fault
}

// FailurePareto returns the failure classes of failed and refused attempts
// started in [since, until), most frequent first, unit faults and station
// faults apart (a class is counted under each fault it occurred with).
func (s *Store) FailurePareto(ctx context.Context, since, until time.Time) ([]ParetoRow, error) {
	rows, err := s.finishedRows(ctx, since, until)
	if err != nil {
		return nil, err
	}
	type key struct{ class, fault string }
	counts := map[key]int{}
	totals := map[string]int{}
	for _, r := range rows {
		if r.outcome != string(Failed) && r.outcome != string(Refused) {
			continue
		}
		class := r.class
		if class == "" {
			class = "unclassified"
		}
		counts[key{class, r.fault}]++
		totals[r.fault]++
	}
	var out []ParetoRow
	for k, n := range counts {
		out = append(out, ParetoRow{Class: k.class, Fault: k.fault, Count: n, Share: float64(n) / float64(totals[k.fault])})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Fault != out[j].Fault {
			return out[i].Fault < out[j].Fault
		}
		return out[i].Class < out[j].Class
	})
	return out, nil
}
