package web_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

// dash is a Records and Dashboard with fixed answers that remembers the
// last query.
type dash struct {
	records
	qmu sync.Mutex
	q   web.Query
}

func (d *dash) query() web.Query {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	return d.q
}

func (d *dash) Series(ctx context.Context, q web.Query, every, shifts string) ([]web.Period, error) {
	d.qmu.Lock()
	d.q = q
	d.qmu.Unlock()
	if shifts == "bad" {
		return nil, fmt.Errorf("shift %q: write it as name=HH:MM", shifts)
	}
	t0 := time.Date(2026, 3, 2, 6, 0, 0, 0, time.Local)
	var out []web.Period
	for i := range 3 {
		out = append(out, web.Period{Start: t0.Add(time.Duration(i) * time.Hour), Label: fmt.Sprintf("p%d", i), Hours: 1,
			Counts: web.Counts{Attempts: 10, Passed: int64(7 + i), UnitFaults: 2, StationFaults: 1, Visits: 9, FirstPass: int64(6 + i),
				FirstPassYield: float64(6+i) / 9, FinalPass: 9, FinalYield: 1}})
	}
	return out, nil
}

func (d *dash) Groups(ctx context.Context, q web.Query, by string) ([]web.Group, error) {
	if by == "all" {
		return []web.Group{{Key: "all", Counts: web.Counts{Attempts: 30, Visits: 27, FirstPass: 21, FirstPassYield: 21.0 / 27}}}, nil
	}
	return []web.Group{{Key: by + "-1", Counts: web.Counts{Attempts: 3, Visits: 2, FirstPass: 1, FirstPassYield: 0.5}}}, nil
}

func (d *dash) Failures(ctx context.Context, q web.Query) ([]web.Failure, error) {
	return []web.Failure{{Class: "verify-mismatch", Fault: "unit", Outcome: "failed", Count: 6, Share: 1},
		{Class: "port<vanished>", Fault: "station", Outcome: "failed", Count: 3, Share: 1}}, nil
}

func (d *dash) StepTimes(ctx context.Context, q web.Query) ([]web.StepTime, error) {
	return []web.StepTime{{Name: "write", Count: 9, MedianMS: 2500, P90MS: 4000}}, nil
}

func (d *dash) UnitHistory(ctx context.Context, serial string) (web.UnitRecord, error) {
	if serial != "SN1" {
		return web.UnitRecord{}, fmt.Errorf("db: %w", web.ErrNoUnit)
	}
	return web.UnitRecord{Serial: "SN1", Visits: 3, Repeat: true, Attempts: []web.UnitAttempt{{ID: 4, Visit: 3, Outcome: "passed",
		RecipeSHA256: "ab12", ImageSHA256: "cd34", Console: "hello\n", Steps: []web.UnitStep{{Seq: 1, Name: "write", Outcome: "ok"}}}}}, nil
}

func (d *dash) RepeatVisitors(ctx context.Context) (int, error) { return 7, nil }

func (d *dash) Export(ctx context.Context, w io.Writer, format string, since, until time.Time) error {
	_, err := fmt.Fprintf(w, "%s %s %s\n", format, since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	return err
}

func newDashBench(t *testing.T) (*bench, *dash) {
	d := &dash{}
	b := newBenchNamed(t, map[int]string{1: "a", 2: "b"}, func(c *web.Config) { c.Records = d })
	return b, d
}

func TestTrendsAPI(t *testing.T) {
	b, d := newDashBench(t)
	c := b.client(t)
	r := do(t, c, "GET", b.ts.URL+"/api/dashboard?since=2026-03-01&until=2026-03-03T06:00&revision=rev-B&slot=2&every=shift", "")
	if r.code != 200 {
		t.Fatalf("GET /api/dashboard = %d %s", r.code, r.body)
	}
	var got web.DashboardData
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	wantSince := time.Date(2026, 3, 1, 0, 0, 0, 0, time.Local)
	wantUntil := time.Date(2026, 3, 3, 6, 0, 0, 0, time.Local)
	if q := d.query(); !q.Since.Equal(wantSince) || !q.Until.Equal(wantUntil) || q.Revision != "rev-B" || q.Slot != 2 {
		t.Errorf("the dashboard asked for %+v, want since %v until %v, rev-B, slot 2", q, wantSince, wantUntil)
	}
	if got.Total.Visits != 27 || len(got.Series) != 3 || got.Repeat != 7 || len(got.Groups["operator"]) != 1 || len(got.Pareto) != 2 || got.Query.Every != "shift" {
		t.Errorf("GET /api/dashboard = %+v", got)
	}
	// Units per hour: 7, 8, 9 passes in hours 06, 07, 08 = 8 per hour.
	if got.UPH.Overall != 8 || got.UPH.HourOfDay[7] != 8 {
		t.Errorf("units per hour = %+v, want 8 overall and 8 at 07:00", got.UPH)
	}
	for _, bad := range []string{"since=yesterday", "slot=x", "every=week", "shifts=bad"} {
		if r := do(t, c, "GET", b.ts.URL+"/api/dashboard?"+bad, ""); r.code != 400 || !strings.Contains(r.body, "error") {
			t.Errorf("GET /api/dashboard?%s = %d %s, want 400 with an error", bad, r.code, r.body)
		}
	}
}

// TestCharts checks every chart is well-formed SVG drawn from the figures.
func TestCharts(t *testing.T) {
	b, _ := newDashBench(t)
	c := b.client(t)
	for _, ch := range []string{"yield", "volume", "uph", "pareto", "steps", "by-revision", "by-recipe", "by-image", "by-slot", "by-operator"} {
		t.Run(ch, func(t *testing.T) {
			r := do(t, c, "GET", b.ts.URL+"/api/charts/"+ch+".svg?every=day", "")
			if r.code != 200 || r.header.Get("Content-Type") != "image/svg+xml" {
				t.Fatalf("GET %s = %d %s %s", ch, r.code, r.header.Get("Content-Type"), r.body)
			}
			dec := xml.NewDecoder(strings.NewReader(r.body))
			for {
				_, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("chart %s is not well-formed XML: %v\n%s", ch, err, r.body)
				}
			}
			if strings.Contains(r.body, "http://") && strings.Count(r.body, "http://") != 1 { // the SVG namespace only
				t.Errorf("chart %s refers to something outside the station", ch)
			}
		})
	}
	// The yield chart draws one point per period at its first-pass yield.
	r := do(t, c, "GET", b.ts.URL+"/api/charts/yield.svg", "")
	if n := strings.Count(r.body, "<circle"); n != 3 {
		t.Errorf("yield chart has %d points, want 3 (one per period)", n)
	}
	for _, want := range []string{"p0: first-pass 66.7%", "p2: first-pass 88.9%", `class="final"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("yield chart lacks %q", want)
		}
	}
	r = do(t, c, "GET", b.ts.URL+"/api/charts/pareto.svg", "")
	if !strings.Contains(r.body, "port&lt;vanished&gt;") || !strings.Contains(r.body, "cumulative 100%") {
		t.Errorf("pareto chart lacks the escaped class or the cumulative share:\n%s", r.body)
	}
	if r := do(t, c, "GET", b.ts.URL+"/api/charts/pie.svg", ""); r.code != 404 {
		t.Errorf("GET /api/charts/pie.svg = %d, want 404", r.code)
	}
}

func TestUnitHistoryAPI(t *testing.T) {
	b, _ := newDashBench(t)
	c := b.client(t)
	r := do(t, c, "GET", b.ts.URL+"/api/units/SN1", "")
	var h map[string]any
	if err := json.Unmarshal([]byte(r.body), &h); err != nil || r.code != 200 {
		t.Fatalf("GET /api/units/SN1 = %d %s (%v)", r.code, r.body, err)
	}
	a := h["attempts"].([]any)[0].(map[string]any)
	if h["repeat"] != true || h["visits"] != 3.0 || a["console"] != "hello\n" || a["recipe_sha256"] != "ab12" || a["image_sha256"] != "cd34" || len(a["steps"].([]any)) != 1 {
		t.Errorf("GET /api/units/SN1 = %s", r.body)
	}
	if r := do(t, c, "GET", b.ts.URL+"/api/units/NOPE", ""); r.code != 404 || !strings.Contains(r.body, "NOPE") {
		t.Errorf("GET /api/units/NOPE = %d %s, want 404 naming it", r.code, r.body)
	}
	// A Records that keeps no history answers 503.
	b2 := newBench(t, nil)
	if r := do(t, c, "GET", b2.ts.URL+"/api/units/SN1", ""); r.code != 503 {
		t.Errorf("GET /api/units without a Dashboard = %d, want 503", r.code)
	}
}

func TestExportEndpoint(t *testing.T) {
	b, _ := newDashBench(t)
	c := b.client(t)
	r := do(t, c, "GET", b.ts.URL+"/api/export?format=json&since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z", "")
	if r.code != 200 || r.body != "json 2026-03-01T00:00:00Z 2026-03-02T00:00:00Z\n" || !strings.Contains(r.header.Get("Content-Disposition"), ".json") {
		t.Errorf("GET /api/export?format=json = %d %q %v", r.code, r.body, r.header)
	}
	if r := do(t, c, "GET", b.ts.URL+"/api/export?format=xml", ""); r.code != 400 {
		t.Errorf("GET /api/export?format=xml = %d, want 400", r.code)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	b, _ := newDashBench(t)
	b.bus.Publish(jobs.Event{Slot: 1, Kind: jobs.KindState, State: jobs.Running})
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindState, State: jobs.Quarantined})
	r := do(t, b.client(t), "GET", b.ts.URL+"/metrics", "")
	for _, want := range []string{"unbrick_active_jobs 1", "unbrick_quarantined_slots 1", `unbrick_slots{state="running"} 1`, `unbrick_slots{state="empty"} 0`} {
		if !strings.Contains(r.body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, r.body)
		}
	}
	m := web.NewMetrics(b.tracker)
	m.AttemptFinished("failed", "verify-mismatch", "unit", 0)
	m.AttemptFinished("passed", "", "", 1024)
	m.StepFinished("write", "ok", 1500*time.Millisecond)
	rec := &strings.Builder{}
	srv := m.Handler()
	req, _ := http.NewRequest("GET", "/metrics", nil)
	w := &writer{h: http.Header{}, b: rec}
	srv.ServeHTTP(w, req)
	for _, want := range []string{`unbrick_attempts_total{class="verify-mismatch",fault="unit",outcome="failed"} 1`,
		"unbrick_bytes_written_total 1024", `unbrick_step_duration_seconds_bucket{outcome="ok",step="write",le="1.6"} 1`,
		`unbrick_step_duration_seconds_bucket{outcome="ok",step="write",le="0.8"} 0`} {
		if !strings.Contains(rec.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, rec.String())
		}
	}
}

type writer struct {
	h http.Header
	b *strings.Builder
}

func (w *writer) Header() http.Header         { return w.h }
func (w *writer) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *writer) WriteHeader(int)             {}

// TestTrendsInChromium loads the dashboard with a record that answers the
// trends: every chart loads as an image from the station, the filters
// reach the API, and a unit's history shows with its repeat-visitor flag.
func TestTrendsInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts Chromium; skipped with -short")
	}
	b, d := newDashBench(t)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.ts.URL+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the trend figures", `document.getElementById("t-repeat").textContent === "7" && document.getElementById("t-fpy").textContent === "77.8%"`)
	waitFor(t, ctx, "every chart drawn", `[...document.querySelectorAll("img.chart")].length === 10 &&
		[...document.querySelectorAll("img.chart")].every((i) => i.complete && i.naturalWidth > 0)`)
	waitFor(t, ctx, "the revision filter filled", `[...document.getElementById("revision").options].some((o) => o.value === "revision-1")`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("slot").value = "2";
		document.getElementById("filters").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the slot filter in the charts", `document.querySelector("img.chart").src.includes("slot=2")`)
	if q := d.query(); q.Slot != 2 {
		t.Errorf("the dashboard's query after filtering = %+v, want slot 2", q)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("unit-serial").value = "SN1";
		document.querySelector("#unit-form button").click(); true`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the unit's history", `document.querySelector("#unit-attempts tbody").innerText.includes("passed") &&
		document.getElementById("unit-head").innerText.includes("repeat visitor: visit 3")`)
}
