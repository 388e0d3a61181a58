package station

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/sim/espsim"
	"github.com/unbrick/unbrick/web"
)

// scrape reads /metrics into a map from series (name and labels, as
// printed) to value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// labelEscape escapes a label value as the text exposition format does.
func labelEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// TestMetricsMatchTheRecord runs the demo with one unit failing, scrapes
// /metrics and holds every counter against the database; then a station
// started on the same record (its counters seeded from it) says the same.
func TestMetricsMatchTheRecord(t *testing.T) {
	d, err := NewDemo(DemoConfig{Dir: t.TempDir(), Units: 5, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, u := range d.Bench.Units() {
		if m, ok := u.Model.(*espsim.Model); ok {
			m.SetFaults(espsim.Faults{FailPrograms: 1 << 20})
			break
		}
	}
	addr, stop, err := d.Serve("127.0.0.1:0", WebOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.RunAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// What the record holds.
	as, err := d.Store.Attempts(ctx, db.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	var bytes float64
	steps := map[string]float64{}
	failed := 0
	for _, a := range as {
		if a.Outcome == db.Running {
			continue
		}
		want[fmt.Sprintf(`unbrick_attempts_total{class="%s",fault="%s",outcome="%s"}`, labelEscape(a.Class), a.Fault, a.Outcome)]++
		bytes += float64(a.Bytes)
		if a.Outcome == db.Failed {
			failed++
		}
		full, err := d.Store.Attempt(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range full.Steps {
			if !s.Finished.IsZero() {
				steps[fmt.Sprintf(`unbrick_step_duration_seconds_count{outcome="%s",step="%s"}`, s.Outcome, labelEscape(s.Name))]++
			}
		}
	}
	if len(as) != 5 || failed != 1 {
		t.Fatalf("the demo recorded %d attempts, %d failed; want 5 with 1 failed", len(as), failed)
	}
	check := func(name string, m map[string]float64, withSteps bool) {
		got := map[string]float64{}
		gotSteps := map[string]float64{}
		for k, v := range m {
			if strings.HasPrefix(k, "unbrick_attempts_total{") && v != 0 {
				got[k] = v
			}
			if strings.HasPrefix(k, "unbrick_step_duration_seconds_count{") {
				gotSteps[k] = v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: unbrick_attempts_total = %v\nthe record holds %v", name, got, want)
		}
		if m["unbrick_bytes_written_total"] != bytes || bytes == 0 {
			t.Errorf("%s: unbrick_bytes_written_total = %v, the record holds %v", name, m["unbrick_bytes_written_total"], bytes)
		}
		if withSteps && fmt.Sprint(gotSteps) != fmt.Sprint(steps) {
			t.Errorf("%s: step histogram counts = %v\nthe record holds %v", name, gotSteps, steps)
		}
		states := map[string]float64{}
		for _, s := range d.Tracker.Slots() {
			states[string(s.State)]++
		}
		for st, n := range states {
			if k := fmt.Sprintf(`unbrick_slots{state="%s"}`, st); m[k] != n {
				t.Errorf("%s: %s = %v, the tracker has %v", name, k, m[k], n)
			}
		}
		if m["unbrick_active_jobs"] != states["running"] || m["unbrick_quarantined_slots"] != states["quarantined"] {
			t.Errorf("%s: active jobs %v, quarantined %v; the tracker has %v and %v", name, m["unbrick_active_jobs"],
				m["unbrick_quarantined_slots"], states["running"], states["quarantined"])
		}
	}
	check("after the demo", scrape(t, addr), true)

	// The unit history and the dashboard read the same record.
	for _, a := range as {
		resp, err := http.Get("http://" + addr + "/api/units/" + a.Serial)
		if err != nil {
			t.Fatal(err)
		}
		var h web.UnitRecord
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /api/units/%s = %d, %v", a.Serial, resp.StatusCode, err)
		}
		if len(h.Attempts) != 1 || h.Attempts[0].ID != a.ID || len(h.Attempts[0].Steps) == 0 || h.Attempts[0].Console == "" ||
			len(h.Attempts[0].RecipeSHA256) != 64 || h.Attempts[0].Outcome != string(a.Outcome) || h.Visits != 1 || h.Repeat {
			t.Errorf("GET /api/units/%s = %+v; want its one attempt with steps, console, recipe hash, one visit", a.Serial, h)
		}
	}
	resp, err := http.Get("http://" + addr + "/api/dashboard?since=1h")
	if err != nil {
		t.Fatal(err)
	}
	var dd web.DashboardData
	err = json.NewDecoder(resp.Body).Decode(&dd)
	resp.Body.Close()
	if err != nil || dd.Total.Attempts != 5 || dd.Total.Passed != 4 || dd.Total.Visits != 5 || dd.Total.FirstPass != 4 {
		t.Errorf("GET /api/dashboard total = %+v (%v); want 5 attempts, 4 passed, 5 visits, 4 first passes", dd.Total, err)
	}

	// A station opened later on the same record starts from its totals.
	addr2, stop2, err := d.Serve("127.0.0.1:0", WebOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	check("seeded from the record", scrape(t, addr2), false)
}
