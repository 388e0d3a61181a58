package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

// history is a History with one unit of two attempts.
type history struct{}

func (history) FindUnits(_ context.Context, q string, limit int) ([]string, error) {
	var out []string
	for _, s := range []string{"0x3231-4E", "AVR-000077"} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(q)) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (history) UnitHistory(_ context.Context, serial string) (web.UnitRecord, error) {
	h := web.UnitRecord{Serial: serial, Chip: "0x410", Model: "sensor-b", Visits: 1,
		Attempts: []web.UnitAttempt{
			{ID: 4, Visit: 1, Slot: 2, Recipe: "sensor-b", Outcome: "failed", Class: "verify-mismatch", Reason: "byte 0x100 reads 0x00"},
			{ID: 9, Visit: 1, Slot: 5, Recipe: "sensor-b", Outcome: "passed", ImageVersion: "2.0.0",
				Steps: []web.UnitStep{{Seq: 1, Name: "write app", Outcome: "ok"}}, Console: "firmware v2.0.0\n"},
		}}
	return h, nil
}

// TestStateChangingRefusesStrangers sends every state-changing endpoint a
// request from nobody, from a role that may not, from another site, and
// without the CSRF token: each is refused, and nothing reaches the station.
func TestStateChangingRefusesStrangers(t *testing.T) {
	b := newBench(t, func(c *web.Config) { c.OperatorLogin = true })
	// Slot 1 runs a job Olga started; slot 3 is quarantined; slot 2 failed.
	b.control.Start(1, "", "Olga")
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindState, State: jobs.Failed})
	b.bus.Publish(jobs.Event{Slot: 3, Kind: jobs.KindState, State: jobs.Quarantined})
	started0, _ := b.control.calls()

	paths := map[string]string{
		"POST /api/slots/{n}/start":   "/api/slots/3/start",
		"POST /api/slots/{n}/retry":   "/api/slots/2/retry",
		"POST /api/slots/{n}/cancel":  "/api/slots/1/cancel",
		"POST /api/slots/{n}/release": "/api/slots/3/release",
		"POST /api/start-all":         "/api/start-all",
		"POST /api/stop-all":          "/api/stop-all",
		"POST /api/login":             "/api/login",
		"POST /api/logout":            "/api/logout",
		"POST /api/settings":          "/api/settings",
	}
	bodies := map[string]string{"/api/login": `{"name":"Ada","password":"correct horse"}`, "/api/settings": `{"operator_login":false}`}
	// wrongRole is who may not use each endpoint (none: every role may).
	wrongRole := map[string]string{
		"/api/slots/1/cancel":  "Otto", // Olga's job: another operator may not cancel it
		"/api/slots/3/release": "Eve",
		"/api/settings":        "Otto",
	}
	if len(paths) != len(web.StateChanging) {
		t.Fatalf("the test knows %d endpoints, the server lists %d: %v", len(paths), len(web.StateChanging), web.StateChanging)
	}
	for _, ep := range web.StateChanging {
		p, ok := paths[ep]
		if !ok {
			t.Fatalf("no test request for %s", ep)
		}
		u := b.ts.URL + p
		body := bodies[p]
		t.Run(strings.ReplaceAll(ep, "/", "_"), func(t *testing.T) {
			if p != "/api/login" { // a login is how one stops being nobody
				if r := do(t, b.client(t), "POST", u, body); r.code != http.StatusUnauthorized {
					t.Errorf("unauthenticated: POST %s = %d %s, want 401", p, r.code, r.body)
				}
			}
			if who := wrongRole[p]; who != "" {
				c := b.client(t)
				b.login(t, c, who)
				if r := do(t, c, "POST", u, body); r.code != http.StatusForbidden {
					t.Errorf("as %s: POST %s = %d %s, want 403", who, p, r.code, r.body)
				}
			}
			ada := b.client(t)
			b.login(t, ada, "Ada")
			for _, h := range [][]string{
				{"Origin", "http://evil.example"},
				{"Origin", "null"},
				{"Sec-Fetch-Site", "cross-site"},
				{"X-CSRF-Token", ""},
				{"X-CSRF-Token", "forged"},
			} {
				if r := do(t, ada, "POST", u, body, h...); r.code != http.StatusForbidden {
					t.Errorf("with %s: %q: POST %s = %d %s, want 403", h[0], h[1], p, r.code, r.body)
				}
			}
		})
	}
	started, released := b.control.calls()
	if len(started) != len(started0) || len(released) != 0 || len(b.control.cancels()) != 0 {
		t.Errorf("refused requests reached the station: started %v, released %v, cancelled %v", started, released, b.control.cancels())
	}
	if st, _ := b.tracker.Slot(1); st.State != jobs.Running {
		t.Errorf("slot 1 is %s after refused requests, want still running", st.State)
	}
}

// TestCancel: an operator cancels a job they or the station started, not
// another operator's; a supervisor cancels any; each lands in the audit log.
func TestCancel(t *testing.T) {
	b := newBench(t, nil)
	otto, olga, ada := b.client(t), b.client(t), b.client(t)
	b.login(t, otto, "Otto")
	b.login(t, olga, "Olga")
	b.login(t, ada, "Ada")
	for n := 1; n <= 3; n++ {
		b.bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindState, State: jobs.Present})
	}
	if r := do(t, otto, "POST", b.ts.URL+"/api/slots/1/start", ""); r.code != http.StatusAccepted {
		t.Fatalf("Otto starts slot 1 = %d %s", r.code, r.body)
	}
	b.control.Start(2, "", "auto")
	steps := []struct {
		who  *http.Client
		name string
		slot int
		code int
	}{
		{olga, "Olga", 1, http.StatusForbidden}, // Otto's job
		{olga, "Olga", 2, http.StatusAccepted},  // the station's own job
		{otto, "Otto", 1, http.StatusAccepted},  // his own
		{otto, "Otto", 1, http.StatusConflict},  // nothing runs any more
	}
	for _, s := range steps {
		if r := do(t, s.who, "POST", fmt.Sprintf("%s/api/slots/%d/cancel", b.ts.URL, s.slot), ""); r.code != s.code {
			t.Errorf("%s cancels slot %d = %d %s, want %d", s.name, s.slot, r.code, r.body, s.code)
		}
	}
	b.control.Start(3, "", "Olga")
	if r := do(t, ada, "POST", b.ts.URL+"/api/slots/3/cancel", ""); r.code != http.StatusAccepted {
		t.Errorf("supervisor cancels Olga's job = %d %s, want 202", r.code, r.body)
	}
	if got := fmt.Sprint(b.control.cancels()); got != "[2 Olga 1 Otto 3 Ada]" {
		t.Errorf("Control.Cancel calls = %s, want [2 Olga 1 Otto 3 Ada]", got)
	}
	log := fmt.Sprint(b.audit.lines())
	for _, want := range []string{"Otto start 1", "Olga denied 1", "Olga cancel 2", "Otto cancel 1", "Ada cancel 3"} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log %s lacks %q", log, want)
		}
	}
	// The supervisor reads the log; an operator may not.
	if r := do(t, ada, "GET", b.ts.URL+"/api/audit?since=1h", ""); r.code != 200 || !strings.Contains(r.body, `"action":"cancel"`) {
		t.Errorf("GET /api/audit as supervisor = %d %s, want the log", r.code, r.body)
	}
	if r := do(t, otto, "GET", b.ts.URL+"/api/audit", ""); r.code != http.StatusForbidden {
		t.Errorf("GET /api/audit as operator = %d, want 403", r.code)
	}
}

// TestStartAllStopAll: start all starts every slot with a unit waiting;
// stop all by an operator stops their own and the station's jobs and says
// which it left.
func TestStartAllStopAll(t *testing.T) {
	b := newBenchSlots(t, 5)
	for n := 1; n <= 3; n++ {
		b.bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindState, State: jobs.Present})
	}
	b.bus.Publish(jobs.Event{Slot: 4, Kind: jobs.KindState, State: jobs.Failed})
	b.control.Start(5, "", "Olga")
	otto := b.client(t)
	b.login(t, otto, "Otto")
	var res web.AllResult
	r := do(t, otto, "POST", b.ts.URL+"/api/start-all", "")
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || r.code != http.StatusAccepted || fmt.Sprint(res.Done) != "[1 2 3]" {
		t.Fatalf("start all = %d %s, want slots 1 2 3 started", r.code, r.body)
	}
	r = do(t, otto, "POST", b.ts.URL+"/api/stop-all", "")
	res = web.AllResult{}
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || fmt.Sprint(res.Done) != "[1 2 3]" || !strings.Contains(res.Skipped["5"], "Olga") {
		t.Fatalf("stop all as Otto = %d %s, want 1 2 3 stopped and 5 left as Olga's", r.code, r.body)
	}
	for n := 1; n <= 3; n++ {
		if st, _ := b.tracker.Slot(n); st.State != jobs.Interrupted {
			t.Errorf("slot %d after stop all is %s, want interrupted", n, st.State)
		}
	}
}

func TestHistoryAPI(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	tests := []struct {
		q       string
		code    int
		matches string
		history bool
	}{
		{"0x3231-4E", 200, "[0x3231-4E]", true},
		{"avr", 200, "[AVR-000077]", true},
		{"0", 200, "[0x3231-4E AVR-000077]", false},
		{"nothing", 200, "[]", false},
		{"", 400, "", false},
	}
	for _, tt := range tests {
		r := do(t, c, "GET", b.ts.URL+"/api/history?q="+tt.q, "")
		if r.code != tt.code {
			t.Errorf("GET /api/history?q=%s = %d %s, want %d", tt.q, r.code, r.body, tt.code)
			continue
		}
		if tt.code != 200 {
			continue
		}
		var a web.HistoryAnswer
		if err := json.Unmarshal([]byte(r.body), &a); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(a.Matches) != tt.matches || (a.History != nil) != tt.history {
			t.Errorf("GET /api/history?q=%s = %s, want matches %s, history %v", tt.q, r.body, tt.matches, tt.history)
		}
		if a.History != nil && (len(a.History.Attempts) != 2 || a.History.Attempts[1].Console == "" || len(a.History.Attempts[1].Steps) != 1) {
			t.Errorf("GET /api/history?q=%s history = %+v, want two attempts with steps and console", tt.q, a.History)
		}
	}
	r := do(t, c, "GET", b.ts.URL+"/api/history?q=avr&brief=1", "")
	var a web.HistoryAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil || a.History == nil {
		t.Fatalf("GET /api/history?q=avr&brief=1 = %d %s", r.code, r.body)
	}
	for _, at := range a.History.Attempts {
		if at.Console != "" || len(at.Steps) != 0 {
			t.Errorf("brief history carries attempt %d's console or steps: %s", at.ID, r.body)
		}
	}
}

func TestSummary(t *testing.T) {
	b := newBench(t, nil)
	r := do(t, b.client(t), "GET", b.ts.URL+"/api/summary", "")
	var s web.Summary
	if err := json.Unmarshal([]byte(r.body), &s); err != nil || r.code != 200 {
		t.Fatalf("GET /api/summary = %d %s", r.code, r.body)
	}
	// The records fake answers 4 units, 3 at their first pass, 4 passed,
	// 1 unit fault and 1 station fault, whatever the window.
	if s.Units != 4 || s.Passed != 4 || s.Failed != 2 || s.FirstPassYield != 0.75 || s.PerHour != 4 {
		t.Errorf("GET /api/summary = %+v, want 4 units, 4 passed, 2 failed, FPY 0.75, 4 an hour", s)
	}
	b.records.mu.Lock()
	since := b.records.since
	b.records.mu.Unlock()
	if d := time.Since(since); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("units per hour counted since %v ago, want an hour", d)
	}
}

func TestConsoleTail(t *testing.T) {
	b := newBench(t, nil)
	b.bus.Publish(jobs.Event{Slot: 2, Attempt: 7, Kind: jobs.KindState, State: jobs.Running})
	for i := range 100 {
		b.bus.Publish(jobs.Event{Slot: 2, Attempt: 7, Kind: jobs.KindConsole, Text: fmt.Sprintf("line %d\r\n", i)})
	}
	c := b.client(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var con web.Console
		r := do(t, c, "GET", b.ts.URL+"/api/slots/2/console", "")
		json.Unmarshal([]byte(r.body), &con)
		if len(con.Lines) == 40 && con.Lines[39] == "line 99" && con.Lines[0] == "line 60" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/slots/2/console = %s, want the last 40 lines", r.body)
		}
		time.Sleep(10 * time.Millisecond) // polling the server, as the page does
	}
	// A new attempt starts a new console.
	b.bus.Publish(jobs.Event{Slot: 2, Attempt: 8, Kind: jobs.KindState, State: jobs.Running})
	b.bus.Publish(jobs.Event{Slot: 2, Attempt: 8, Kind: jobs.KindConsole, Text: "fresh\n"})
	for {
		var con web.Console
		r := do(t, c, "GET", b.ts.URL+"/api/slots/2/console", "")
		json.Unmarshal([]byte(r.body), &con)
		if fmt.Sprint(con.Lines) == "[fresh]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console after a new attempt = %s, want only [fresh]", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPagesLoadNothingFromOutside: every page, and every script and style
// it loads, names only the station's own URLs; the Content-Security-Policy
// forbids anything else.
func TestPagesLoadNothingFromOutside(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	ref := regexp.MustCompile(`(?:src|href|action)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]*)|(?:fetch|WebSocket|import)\(\s*["'` + "`" + `]([^"'` + "`" + `]*)`)
	abs := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp):/{2}|["'(]//[a-z0-9]`)
	seen := map[string]bool{}
	queue := []string{"/", "/history", "/dashboard"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		r := do(t, c, "GET", b.ts.URL+p, "")
		if r.code != 200 {
			t.Errorf("GET %s = %d", p, r.code)
			continue
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self'", p, csp)
		}
		if m := abs.FindString(r.body); m != "" {
			t.Errorf("GET %s names an outside URL: %q", p, m)
		}
		for _, m := range ref.FindAllStringSubmatch(r.body, -1) {
			u := m[1] + m[2] + m[3]
			switch {
			case u == "" || strings.HasPrefix(u, "#") || strings.HasPrefix(u, "data:"):
			case strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//"):
				if strings.HasPrefix(u, "/assets/") && !slices.Contains(queue, u) {
					queue = append(queue, strings.SplitN(u, "?", 2)[0])
				}
			default:
				t.Errorf("GET %s refers to %q: only the station's own absolute paths are allowed", p, u)
			}
		}
	}
	for _, want := range []string{"/assets/app.js", "/assets/style.css", "/assets/history.js"} {
		if !seen[want] {
			t.Errorf("the pages never load %s (seen %v)", want, seen)
		}
	}
}

// TestOperatorLoginSetting: a supervisor makes operators log in; from then
// on an anonymous start is refused and a named operator's goes through.
func TestOperatorLoginSetting(t *testing.T) {
	b := newBench(t, nil)
	b.bus.Publish(jobs.Event{Slot: 1, Kind: jobs.KindState, State: jobs.Present})
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindState, State: jobs.Present})
	anon, ada, otto := b.client(t), b.client(t), b.client(t)
	b.login(t, ada, "Ada")
	if r := do(t, ada, "POST", b.ts.URL+"/api/settings", `{"operator_login":true}`); r.code != 200 {
		t.Fatalf("supervisor sets operator_login = %d %s", r.code, r.body)
	}
	if r := do(t, anon, "POST", b.ts.URL+"/api/slots/1/start", ""); r.code != http.StatusUnauthorized {
		t.Errorf("anonymous start with operator_login = %d %s, want 401", r.code, r.body)
	}
	b.login(t, otto, "Otto")
	if r := do(t, otto, "POST", b.ts.URL+"/api/slots/2/start", ""); r.code != http.StatusAccepted {
		t.Errorf("Otto's start with operator_login = %d %s, want 202", r.code, r.body)
	}
	if got := b.control.StartedBy(2); got != "Otto" {
		t.Errorf("slot 2 started by %q, want Otto", got)
	}
	if log := fmt.Sprint(b.audit.lines()); !strings.Contains(log, "Ada settings 0") || !strings.Contains(log, "Otto start 2") {
		t.Errorf("audit log %s lacks the setting and the start", log)
	}
	var s web.Settings
	json.Unmarshal([]byte(do(t, anon, "GET", b.ts.URL+"/api/settings", "").body), &s)
	if !s.OperatorLogin {
		t.Errorf("GET /api/settings = %+v, want operator_login on", s)
	}
}
