package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
	// Units is how many units had a judged attempt (the station counts
	// visits: a unit back for an RMA counts again, see Dashboard);
	// FirstPass how many of them passed at their first. Records may
	// leave both zero for groups where it does not count units.
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

// Dashboard answers the trend dashboard and the unit history. A Records
// that also implements Dashboard gets these endpoints (the station's does):
//
//	GET /api/dashboard?since=&until=&revision=&slot=&every=day|shift|hour&shifts=
//	    JSON [DashboardData]: the series, the groupings, the Pareto, the
//	    step times and units per hour
//	GET /api/charts/{chart}.svg?...same parameters...
//	    the same figures drawn as SVG on the server; chart is one of
//	    yield (first-pass and final yield per period), volume (attempts and
//	    station faults per period), uph (units passed per hour, by hour of
//	    day), pareto, steps, or by-revision, by-recipe, by-image, by-slot,
//	    by-operator (first-pass yield per group)
//	GET /api/units/{serial}
//	    JSON [UnitRecord], 404 for a serial number never seen
//	GET /api/export?format=csv|json&since=&until=
//	    every attempt in the range, streamed
//
// since and until take a duration back from now ("8h", "720h"), an RFC
// 3339 time, a date ("2026-03-01") or a local time ("2026-03-01T06:00");
// revision and slot filter; shifts names the shift boundaries as
// "early=06:00,late=14:00,night=22:00" (on the hour; empty means the
// station's).
//
// # Yield
//
// A visit is one stay of a unit at the station: it opens with the unit's
// first judged attempt (a pass, or a failure through the unit's fault)
// after its previous visit passed, so a unit back for its third RMA has
// three. First-pass yield is the share of visits whose first judged attempt
// passed; final yield the share that passed by now. A visit counts in the
// period, shift and groups of the attempt that opened it. Station faults,
// refusals and interruptions never open a visit and never lower a yield:
// they are counted apart.
//
// # Unit history
//
// [UnitRecord] is everything done to one serial number, oldest first:
//
//	{"serial": "SN00000042", "revision": "rev-C", "chip": "...", "model": "...",
//	 "first_seen": RFC 3339, "last_seen": RFC 3339,
//	 "visits": 3,            // stays begun; > 1 is a repeat visitor
//	 "repeat": true,         // visits > 1
//	 "attempts": [{"id": 17, "visit": 1, "slot": 4, "recipe": "stm32-app", "recipe_version": 2,
//	   "recipe_sha256": hex, "revision": "rev-C", "image_sha256": hex, "image_version": "2.1.0",
//	   "strategy": "...", "outcome": "passed|failed|refused|interrupted|running",
//	   "class": "...", "fault": "unit|station|refused|", "reason": "...", "hint": "...",
//	   "operator": "...", "bytes_written": 262144, "started": RFC 3339, "finished": RFC 3339,
//	   "steps": [{"seq": 1, "name": "...", "strategy": "...", "started": ..., "finished": ...,
//	              "outcome": "ok|failed|skipped", "detail": "..."}],
//	   "console": "text the unit printed", "console_pruned": false}]}
//
// console_pruned says retention deleted that attempt's console log (its
// outcome is always kept).
type Dashboard interface {
	// Series returns the counts per period ("day", "shift" or "hour")
	// with shifts as given (empty for the station's).
	Series(ctx context.Context, q Query, every, shifts string) ([]Period, error)
	// Groups returns the counts grouped by "all", "revision", "recipe",
	// "image", "slot" or "operator".
	Groups(ctx context.Context, q Query, by string) ([]Group, error)
	// Failures returns the failure classes, most frequent first.
	Failures(ctx context.Context, q Query) ([]Failure, error)
	// StepTimes returns how long each step took when it succeeded.
	StepTimes(ctx context.Context, q Query) ([]StepTime, error)
	// UnitHistory returns one unit's history; an error wrapping
	// ErrNoUnit when the serial number was never seen.
	UnitHistory(ctx context.Context, serial string) (UnitRecord, error)
	// RepeatVisitors returns how many units began more than one visit.
	RepeatVisitors(ctx context.Context) (int, error)
	// Export writes the attempts started in [since, until) as "csv" or
	// "json", streamed (zero times leave that end open).
	Export(ctx context.Context, w io.Writer, format string, since, until time.Time) error
}

// ErrNoUnit is wrapped by Dashboard.UnitHistory for an unknown serial.
var ErrNoUnit = errors.New("no such unit")

// Query selects attempts by start time and filters; zero fields select
// everything.
type Query struct {
	Since, Until time.Time
	Revision     string
	Slot         int
}

// Counts are the totals of a set of finished attempts (see Yield in the
// doc of [Dashboard]).
type Counts struct {
	Attempts       int64   `json:"attempts"`
	Passed         int64   `json:"passed"`
	UnitFaults     int64   `json:"unit_faults"`
	StationFaults  int64   `json:"station_faults"`
	Refused        int64   `json:"refused"`
	Interrupted    int64   `json:"interrupted"`
	Visits         int64   `json:"visits"`
	FirstPass      int64   `json:"first_pass"`
	FinalPass      int64   `json:"final_pass"`
	FirstPassYield float64 `json:"first_pass_yield"` // FirstPass / Visits
	FinalYield     float64 `json:"final_yield"`      // FinalPass / Visits
	Bytes          int64   `json:"bytes_written"`
	BusyMS         int64   `json:"busy_ms"`
}

// Period is the counts of one day, shift or hour.
type Period struct {
	Start  time.Time `json:"start"`
	Label  string    `json:"label"`
	Hours  int       `json:"hours"` // hours of the period with an attempt
	Counts Counts    `json:"counts"`
}

// Group is the counts of the attempts sharing a key.
type Group struct {
	Key    string `json:"key"`
	Counts Counts `json:"counts"`
}

// Failure is one failure class of the Pareto.
type Failure struct {
	Class   string  `json:"class"`
	Fault   string  `json:"fault"`
	Outcome string  `json:"outcome"`
	Count   int64   `json:"count"`
	Share   float64 `json:"share"` // of the attempts with the same fault
}

// StepTime is the median and 90th percentile of one step's duration.
type StepTime struct {
	Name     string  `json:"name"`
	Count    int64   `json:"count"`
	MedianMS float64 `json:"median_ms"`
	P90MS    float64 `json:"p90_ms"`
}

// UnitRecord is one unit and every attempt on it; see [Dashboard].
type UnitRecord struct {
	Serial    string        `json:"serial"`
	Protocol  string        `json:"protocol"`
	Revision  string        `json:"revision"`
	Chip      string        `json:"chip"`
	Model     string        `json:"model"`
	FirstSeen time.Time     `json:"first_seen"`
	LastSeen  time.Time     `json:"last_seen"`
	Visits    int           `json:"visits"`
	Repeat    bool          `json:"repeat"`
	Attempts  []UnitAttempt `json:"attempts"`
}

// UnitAttempt is one attempt of a unit's history.
type UnitAttempt struct {
	ID            int64      `json:"id"`
	Visit         int        `json:"visit"`
	Slot          int        `json:"slot"`
	Recipe        string     `json:"recipe"`
	RecipeVersion int        `json:"recipe_version"`
	RecipeSHA256  string     `json:"recipe_sha256"`
	Revision      string     `json:"revision"`
	ImageSHA256   string     `json:"image_sha256"`
	ImageVersion  string     `json:"image_version"`
	Strategy      string     `json:"strategy"`
	Outcome       string     `json:"outcome"`
	Class         string     `json:"class"`
	Fault         string     `json:"fault"`
	Reason        string     `json:"reason"`
	Hint          string     `json:"hint"`
	Operator      string     `json:"operator"`
	Bytes         int64      `json:"bytes_written"`
	Started       time.Time  `json:"started"`
	Finished      time.Time  `json:"finished,omitzero"`
	Steps         []UnitStep `json:"steps"`
	Console       string     `json:"console"`
	ConsolePruned bool       `json:"console_pruned"`
}

// UnitStep is one step of an attempt.
type UnitStep struct {
	Seq      int       `json:"seq"`
	Name     string    `json:"name"`
	Strategy string    `json:"strategy"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Outcome  string    `json:"outcome"`
	Detail   string    `json:"detail"`
}

// DashboardData is the answer of /api/dashboard.
type DashboardData struct {
	Query struct {
		Since    time.Time `json:"since,omitzero"`
		Until    time.Time `json:"until,omitzero"`
		Revision string    `json:"revision,omitempty"`
		Slot     int       `json:"slot,omitempty"`
		Every    string    `json:"every"`
	} `json:"query"`
	Total    Counts             `json:"total"`
	Series   []Period           `json:"series"`
	Groups   map[string][]Group `json:"groups"`
	Pareto   []Failure          `json:"pareto"`
	Steps    []StepTime         `json:"steps"`
	UPH      UPH                `json:"units_per_hour"`
	Repeat   int                `json:"repeat_visitors"`
	TookMS   float64            `json:"took_ms"`
	Shifts   string             `json:"shifts,omitempty"`
	Revision []string           `json:"revisions"` // every revision in the range, for the filter
}

// UPH is the throughput: units passed per hour with any attempt, overall
// and by local hour of day.
type UPH struct {
	Overall   float64     `json:"overall"`
	HourOfDay [24]float64 `json:"hour_of_day"`
}

// DashboardGroupings are the groupings of /api/dashboard and the by-*
// charts.
var DashboardGroupings = []string{"revision", "recipe", "image", "slot", "operator"}

// whenParam parses a since or until value.
func whenParam(name, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "all" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s=%q is neither a duration such as 8h nor a time such as 2026-11-25T06:00:00Z or 2026-11-25", name, v)
}

// dashboard checks that the record answers the dashboard and parses the
// query; on failure it has answered already.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) (Dashboard, Query, bool) {
	d, ok := s.cfg.Records.(Dashboard)
	if s.cfg.Records == nil || !ok {
		writeError(w, http.StatusServiceUnavailable, "this station keeps no record to show")
		return nil, Query{}, false
	}
	var q Query
	var err error
	v := r.URL.Query()
	now := time.Now()
	if q.Since, err = whenParam("since", v.Get("since"), now); err == nil {
		q.Until, err = whenParam("until", v.Get("until"), now)
	}
	if err == nil && v.Get("slot") != "" && v.Get("slot") != "all" {
		if q.Slot, err = strconv.Atoi(v.Get("slot")); err != nil || q.Slot <= 0 {
			err = fmt.Errorf("slot=%q is not a slot number", v.Get("slot"))
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, Query{}, false
	}
	if rev := v.Get("revision"); rev != "all" {
		q.Revision = rev
	}
	return d, q, true
}

func every(r *http.Request) (string, error) {
	e := r.URL.Query().Get("every")
	switch e {
	case "":
		return "day", nil
	case "day", "shift", "hour":
		return e, nil
	}
	return "", fmt.Errorf("every=%q: use day, shift or hour", e)
}

// gather reads everything the dashboard shows.
func gather(ctx context.Context, d Dashboard, q Query, ev, shifts string) (DashboardData, error) {
	t0 := time.Now()
	var out DashboardData
	out.Query.Since, out.Query.Until, out.Query.Revision, out.Query.Slot, out.Query.Every = q.Since, q.Until, q.Revision, q.Slot, ev
	out.Shifts = shifts
	var err error
	if out.Series, err = d.Series(ctx, q, ev, shifts); err != nil {
		return out, err
	}
	all, err := d.Groups(ctx, q, "all")
	if err != nil {
		return out, err
	}
	if len(all) > 0 {
		out.Total = all[0].Counts
	}
	out.Groups = map[string][]Group{}
	for _, by := range DashboardGroupings {
		if out.Groups[by], err = d.Groups(ctx, q, by); err != nil {
			return out, err
		}
	}
	revs, err := d.Groups(ctx, Query{Since: q.Since, Until: q.Until}, "revision")
	if err != nil {
		return out, err
	}
	for _, g := range revs {
		out.Revision = append(out.Revision, g.Key)
	}
	if out.Pareto, err = d.Failures(ctx, q); err != nil {
		return out, err
	}
	if out.Steps, err = d.StepTimes(ctx, q); err != nil {
		return out, err
	}
	hours, err := d.Series(ctx, q, "hour", shifts)
	if err != nil {
		return out, err
	}
	out.UPH = unitsPerHour(hours)
	if out.Repeat, err = d.RepeatVisitors(ctx); err != nil {
		return out, err
	}
	out.TookMS = float64(time.Since(t0).Microseconds()) / 1000
	return out, nil
}

// unitsPerHour is the passes per hour that had an attempt, overall and by
// local hour of day.
func unitsPerHour(hours []Period) UPH {
	var u UPH
	var n [24]int
	var passed [24]int64
	var tot int64
	for _, h := range hours {
		hr := h.Start.Hour()
		n[hr] += h.Hours
		passed[hr] += h.Counts.Passed
		tot += h.Counts.Passed
	}
	active := 0
	for i := range 24 {
		active += n[i]
		if n[i] > 0 {
			u.HourOfDay[i] = float64(passed[i]) / float64(n[i])
		}
	}
	if active > 0 {
		u.Overall = float64(tot) / float64(active)
	}
	return u
}

func (s *Server) getDashboard(w http.ResponseWriter, r *http.Request) {
	d, q, ok := s.dashboard(w, r)
	if !ok {
		return
	}
	ev, err := every(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	data, err := gather(r.Context(), d, q, ev, r.URL.Query().Get("shifts"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the record: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, data)
}

func (s *Server) getUnit(w http.ResponseWriter, r *http.Request) {
	d, ok := s.cfg.Records.(Dashboard)
	if s.cfg.Records == nil || !ok {
		writeError(w, http.StatusServiceUnavailable, "this station keeps no record to show")
		return
	}
	serial := strings.TrimSpace(r.PathValue("serial"))
	h, err := d.UnitHistory(r.Context(), serial)
	if errors.Is(err, ErrNoUnit) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no unit with serial number %q has been on this station", serial))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the unit's history: "+err.Error())
		return
	}
	if h.Attempts == nil {
		h.Attempts = []UnitAttempt{}
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	d, q, ok := s.dashboard(w, r)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	ctype := map[string]string{"csv": "text/csv; charset=utf-8", "json": "application/json"}[format]
	if ctype == "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format=%q: use csv or json", format))
		return
	}
	name := "unbrick-attempts-" + time.Now().UTC().Format("20060102-150405") + "." + format
	cw := &countWriter{w: w, start: func() {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("Cache-Control", "no-store")
	}}
	if err := d.Export(r.Context(), cw, format, q.Since, q.Until); err != nil {
		s.log.Error("export failed", "format", format, "err", err)
		if cw.n == 0 {
			writeError(w, http.StatusInternalServerError, "exporting the attempts: "+err.Error())
			return
		}
		fmt.Fprintf(w, "\nexport failed: %v\n", err)
		return
	}
	if cw.start != nil {
		cw.start()
	}
}

func (s *Server) chart(w http.ResponseWriter, r *http.Request) {
	d, q, ok := s.dashboard(w, r)
	if !ok {
		return
	}
	ev, err := every(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name := strings.TrimSuffix(r.PathValue("chart"), ".svg")
	shifts := r.URL.Query().Get("shifts")
	ctx := r.Context()
	var svg string
	switch {
	case name == "yield" || name == "volume":
		ps, err := d.Series(ctx, q, ev, shifts)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if name == "yield" {
			svg = yieldChart(ps, ev)
		} else {
			svg = volumeChart(ps, ev)
		}
	case name == "uph":
		ps, err := d.Series(ctx, q, "hour", shifts)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		svg = uphChart(unitsPerHour(ps))
	case name == "pareto":
		fs, err := d.Failures(ctx, q)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		svg = paretoChart(fs)
	case name == "steps":
		st, err := d.StepTimes(ctx, q)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		svg = stepsChart(st)
	case strings.HasPrefix(name, "by-") && contains(DashboardGroupings, strings.TrimPrefix(name, "by-")):
		gs, err := d.Groups(ctx, q, strings.TrimPrefix(name, "by-"))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		svg = groupChart(strings.TrimPrefix(name, "by-"), gs)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no chart %q: use yield, volume, uph, pareto, steps or by-revision, by-recipe, by-image, by-slot, by-operator", name))
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, svg)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
