package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Records answers the dashboard from the station's record. The station
// adapts the db package to it. since bounds the attempts by their start
// time; the zero time means all of them.
type Records interface {
	// Yield returns the yield of the attempts started since, grouped by
	// by: "all" (one row, Key "all"), "revision", "slot" or "recipe".
	Yield(ctx context.Context, by string, since time.Time) ([]YieldRow, error)
	// Pareto returns the failure classes, most frequent first.
	Pareto(ctx context.Context, since time.Time) ([]ParetoRow, error)
	// ExportCSV writes the attempts as CSV with a header row.
	ExportCSV(ctx context.Context, w io.Writer, since time.Time) error
}

// Groupings that Records.Yield accepts.
var Groupings = []string{"all", "revision", "slot", "recipe"}

// YieldRow is the yield of the attempts sharing a key.
//
// Only attempts that judged the unit count towards yield: passes, and
// failures through the unit's fault. Station faults, refusals and
// interruptions are counted apart and never lower the yield.
type YieldRow struct {
	Key string `json:"key"` // a revision, a slot number, a recipe, or "all"
	// Units is how many units had a judged attempt; FirstPass how many
	// of them passed at their first. Records may leave both zero for
	// groups where it does not count units.
	Units          int     `json:"units"`
	FirstPass      int     `json:"first_pass"`
	FirstPassYield float64 `json:"first_pass_yield"` // FirstPass / Units
	FinalYield     float64 `json:"final_yield"`      // units that passed in the end / Units
	Attempts       int     `json:"attempts"`
	Passed         int     `json:"passed"`
	UnitFaults     int     `json:"unit_faults"`
	StationFaults  int     `json:"station_faults"`
	Refused        int     `json:"refused"`
	Interrupted    int     `json:"interrupted"`
	Yield          float64 `json:"yield"` // Passed / (Passed + UnitFaults)
}

// ParetoRow is one failure class and how often it happened.
type ParetoRow struct {
	Class string  `json:"class"`
	Fault string  `json:"fault"` // unit, station or refused
	Count int     `json:"count"`
	Share float64 `json:"share"` // of all failures with the same fault
}

// sinceParam parses the since parameter: a duration back from now ("8h", "7d"
// is not Go syntax, so days are spelled "168h"), an RFC 3339 time, or
// nothing for all time.
func sinceParam(r *http.Request, now time.Time) (time.Time, error) {
	v := strings.TrimSpace(r.URL.Query().Get("since"))
	if v == "" || v == "all" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since=%q is neither a duration such as 8h nor a time such as 2026-11-25T06:00:00Z", v)
}

// records checks that the dashboard has a record and parses since; on
// failure it has answered already.
func (s *Server) records(w http.ResponseWriter, r *http.Request) (time.Time, bool) {
	if s.cfg.Records == nil {
		writeError(w, http.StatusServiceUnavailable, "this station keeps no record to show")
		return time.Time{}, false
	}
	since, err := sinceParam(r, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return time.Time{}, false
	}
	return since, true
}

func (s *Server) yield(w http.ResponseWriter, r *http.Request) {
	since, ok := s.records(w, r)
	if !ok {
		return
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "all"
	}
	valid := false
	for _, g := range Groupings {
		valid = valid || g == by
	}
	if !valid {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("by=%q is not a grouping; use one of %s", by, strings.Join(Groupings, ", ")))
		return
	}
	rows, err := s.cfg.Records.Yield(r.Context(), by, since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the yield: "+err.Error())
		return
	}
	if rows == nil {
		rows = []YieldRow{}
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) pareto(w http.ResponseWriter, r *http.Request) {
	since, ok := s.records(w, r)
	if !ok {
		return
	}
	rows, err := s.cfg.Records.Pareto(r.Context(), since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the failure classes: "+err.Error())
		return
	}
	if rows == nil {
		rows = []ParetoRow{}
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request) {
	since, ok := s.records(w, r)
	if !ok {
		return
	}
	name := "unbrick-attempts-" + time.Now().UTC().Format("20060102-150405") + ".csv"
	cw := &countWriter{w: w, start: func() {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("Cache-Control", "no-store")
	}}
	if err := s.cfg.Records.ExportCSV(r.Context(), cw, since); err != nil {
		s.log.Error("CSV export failed", "err", err)
		if cw.n == 0 {
			writeError(w, http.StatusInternalServerError, "exporting the attempts: "+err.Error())
			return
		}
		// The rows so far are sent: say so at the end, where a reader of
		// the file sees it.
		fmt.Fprintf(w, "\nexport failed: %v\n", err)
		return
	}
	if cw.start != nil {
		cw.start() // nothing was written: still an empty CSV file
	}
}

// countWriter sets the CSV headers at the first write and counts bytes, so
// an export that fails at once can still answer with an error status.
type countWriter struct {
	w     io.Writer
	n     int64
	start func()
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.n == 0 && c.start != nil {
		c.start()
		c.start = nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
