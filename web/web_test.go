package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

// control is a Control that records its calls and, like the station,
// publishes the state a call leads to.
type control struct {
	bus *jobs.Bus
	err error

	mu        sync.Mutex
	started   []int
	released  []string // "slot by"
	scans     []string // "slot serial"
	cancelled []string // "slot by"
	by        map[int]string
	starts    chan int // if set, receives every started slot
}

func (c *control) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *control) Start(slot int, serial, by string) error {
	c.mu.Lock()
	err := c.err
	if err == nil {
		c.started = append(c.started, slot)
		if serial != "" {
			c.scans = append(c.scans, fmt.Sprintf("%d %s", slot, serial))
		}
		if c.by == nil {
			c.by = map[int]string{}
		}
		c.by[slot] = by
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.bus.Publish(jobs.Event{Slot: slot, Kind: jobs.KindState, State: jobs.Running})
	if c.starts != nil {
		c.starts <- slot
	}
	return nil
}

func (c *control) Cancel(slot int, by string) error {
	c.mu.Lock()
	_, running := c.by[slot]
	if running {
		c.cancelled = append(c.cancelled, fmt.Sprintf("%d %s", slot, by))
		delete(c.by, slot)
	}
	c.mu.Unlock()
	if !running {
		return fmt.Errorf("slot %d runs no job", slot)
	}
	c.bus.Publish(jobs.Event{Slot: slot, Kind: jobs.KindState, State: jobs.Interrupted, Text: "cancelled by " + by})
	return nil
}

func (c *control) StartedBy(slot int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[slot]
}

func (c *control) Release(slot int, by string) error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.released = append(c.released, fmt.Sprintf("%d %s", slot, by))
	c.mu.Unlock()
	c.bus.Publish(jobs.Event{Slot: slot, Kind: jobs.KindState, State: jobs.Empty, Text: "released by " + by})
	return nil
}

func (c *control) calls() (started []int, released []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.started...), append([]string(nil), c.released...)
}

func (c *control) cancels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.cancelled...)
}

// accounts is an Accounts over a map, with bcrypt hashes at the lowest
// cost so that tests stay quick.
type accounts map[string]web.Account

func (a accounts) Account(_ context.Context, name string) (web.Account, error) {
	acct, ok := a[name]
	if !ok {
		return web.Account{}, fmt.Errorf("no account %q", name)
	}
	return acct, nil
}

// The test accounts: one per role, each with its name as password prefix.
const password = "correct horse"

var testAccounts = func() accounts {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return accounts{
		"Ada":  {Name: "Ada", Role: web.RoleSupervisor, Hash: string(h)},
		"Otto": {Name: "Otto", Role: web.RoleOperator, Hash: string(h)},
		"Olga": {Name: "Olga", Role: web.RoleOperator, Hash: string(h)},
		"Eve":  {Name: "Eve", Role: web.RoleEngineer, Hash: string(h)},
	}
}()

// audit is an Auditor in memory.
type audit struct {
	mu      sync.Mutex
	entries []web.AuditEntry
}

func (a *audit) Audit(_ context.Context, e web.AuditEntry) error {
	a.mu.Lock()
	a.entries = append(a.entries, e)
	a.mu.Unlock()
	return nil
}

func (a *audit) AuditLog(_ context.Context, since time.Time, limit int) ([]web.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []web.AuditEntry
	for i := len(a.entries) - 1; i >= 0; i-- {
		if !a.entries[i].At.Before(since) {
			out = append(out, a.entries[i])
		}
	}
	return out, nil
}

// lines returns the log as "who action slot" lines, oldest first.
func (a *audit) lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.entries {
		out = append(out, fmt.Sprintf("%s %s %d", e.Who, e.Action, e.Slot))
	}
	return out
}

// records is a Records with fixed answers that remembers its arguments.
type records struct {
	err error

	mu    sync.Mutex
	by    string
	since time.Time
}

// note remembers the arguments of a call and returns the error to fail
// it with.
func (r *records) note(by string, since time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.by, r.since = by, since
	return r.err
}

func (r *records) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *records) Yield(ctx context.Context, by string, since time.Time) ([]web.YieldRow, error) {
	if err := r.note(by, since); err != nil {
		return nil, err
	}
	if by == "all" {
		return []web.YieldRow{{Key: "all", Units: 4, FirstPass: 3, FirstPassYield: 0.75, FinalYield: 1, Attempts: 6, Passed: 4, UnitFaults: 1, StationFaults: 1, Yield: 0.8}}, nil
	}
	return []web.YieldRow{{Key: "A", Attempts: 2, Passed: 2, Yield: 1}, {Key: "B", Attempts: 4, Passed: 2, UnitFaults: 1, StationFaults: 1, Yield: 2.0 / 3}}, nil
}

func (r *records) Pareto(ctx context.Context, since time.Time) ([]web.ParetoRow, error) {
	if err := r.note("", since); err != nil {
		return nil, err
	}
	return []web.ParetoRow{{Class: "verify-mismatch", Fault: "unit", Count: 3, Share: 0.75}, {Class: "port-vanished", Fault: "station", Count: 1, Share: 1}}, nil
}

func (r *records) ExportCSV(ctx context.Context, w io.Writer, since time.Time) error {
	if err := r.note("", since); err != nil {
		return err
	}
	_, err := io.WriteString(w, "id,serial\n1,ABC\n")
	return err
}

type bench struct {
	bus     *jobs.Bus
	tracker *jobs.Tracker
	control *control
	records *records
	audit   *audit
	srv     *web.Server
	ts      *httptest.Server
}

// newBench serves three slots, named left, middle and right.
func newBench(t *testing.T, mod func(*web.Config)) *bench {
	t.Helper()
	return newBenchNamed(t, map[int]string{1: "left", 2: "middle", 3: "right"}, mod)
}

// newBenchSlots serves slots 1..n.
func newBenchSlots(t *testing.T, n int) *bench {
	t.Helper()
	names := map[int]string{}
	for i := 1; i <= n; i++ {
		names[i] = fmt.Sprintf("bay %c", 'A'+i-1)
	}
	return newBenchNamed(t, names, nil)
}

func newBenchNamed(t testing.TB, names map[int]string, mod func(*web.Config)) *bench {
	t.Helper()
	b := &bench{bus: &jobs.Bus{}, records: &records{}, audit: &audit{}}
	b.tracker = jobs.NewTracker(names)
	b.bus.Track(b.tracker)
	b.control = &control{bus: b.bus}
	cfg := web.Config{Tracker: b.tracker, Bus: b.bus, Records: b.records, Control: b.control,
		Accounts: testAccounts, Audit: b.audit, History: &history{}, Title: "Bench <7>"}
	if mod != nil {
		mod(&cfg)
	}
	b.srv = web.New(cfg)
	b.ts = httptest.NewServer(b.srv)
	t.Cleanup(func() {
		b.ts.Close()
		b.srv.Close()
	})
	return b
}

// client returns an HTTP client with its own cookie jar.
func (b *bench) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

// csrf returns the CSRF token the station gives client c.
func csrf(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(pu.Scheme + "://" + pu.Host + "/api/session")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s web.Session
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.CSRF == "" {
		t.Fatalf("GET /api/session gave no CSRF token: %v", err)
	}
	return s.CSRF
}

// login logs client c in as name.
func (b *bench) login(t *testing.T, c *http.Client, name string) {
	t.Helper()
	r := do(t, c, "POST", b.ts.URL+"/api/login", fmt.Sprintf(`{"name":%q,"password":%q}`, name, password))
	if r.code != http.StatusOK {
		t.Fatalf("login as %s = %d %s", name, r.code, r.body)
	}
}

type reply struct {
	code   int
	header http.Header
	body   string
}

// do sends a request as the station's page would: a POST carries the
// client's CSRF token (from GET /api/session) unless header sets one.
func do(t *testing.T, c *http.Client, method, u string, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("X-CSRF-Token", csrf(t, c, u))
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func TestSlotsJSONShape(t *testing.T) {
	b := newBench(t, nil)
	at := time.Date(2026, 11, 25, 6, 30, 0, 0, time.UTC)
	b.bus.Publish(jobs.Event{Time: at, Slot: 2, Attempt: 41, Kind: jobs.KindState, State: jobs.Running, Serial: "0x3231-4E"})
	b.bus.Publish(jobs.Event{Time: at, Slot: 2, Attempt: 41, Kind: jobs.KindStep, Step: "write"})
	b.bus.Publish(jobs.Event{Time: at, Slot: 2, Attempt: 41, Kind: jobs.KindProgress, Done: 256, Total: 1024})
	b.bus.Publish(jobs.Event{Time: at, Slot: 3, Attempt: 42, Kind: jobs.KindState, State: jobs.Failed, Step: "verify",
		Text: "byte 0x100 reads 0x00, wrote 0xFF", Class: "verify-mismatch", Fault: jobs.UnitFault, Hint: "reject the unit"})

	r := do(t, b.client(t), "GET", b.ts.URL+"/api/slots", "")
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/slots = %d %q, want 200 application/json", r.code, r.header.Get("Content-Type"))
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatalf("GET /api/slots body %q: %v", r.body, err)
	}
	if len(raw) != 3 {
		t.Fatalf("GET /api/slots has %d slots, want 3", len(raw))
	}
	for _, obj := range raw {
		for key, kind := range map[string]string{"slot": "number", "state": "string", "step": "string", "progress": "number",
			"serial": "string", "attempt": "number", "reason": "string", "hint": "string", "fault": "string",
			"updated": "string", "name": "string", "start": "bool", "retry": "bool", "cancel": "bool", "release": "bool"} {
			v, ok := obj[key]
			if !ok {
				t.Errorf("slot %v has no %q: %v", obj["slot"], key, obj)
				continue
			}
			got := fmt.Sprintf("%T", v)
			want := map[string]string{"number": "float64", "string": "string", "bool": "bool"}[kind]
			if got != want {
				t.Errorf("slot %v: %q is %s, want a JSON %s", obj["slot"], key, got, kind)
			}
		}
	}
	var slots []web.SlotView
	if err := json.Unmarshal([]byte(r.body), &slots); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"order", []int{slots[0].Slot, slots[1].Slot, slots[2].Slot}, []int{1, 2, 3}},
		{"slot 1 state", slots[0].State, jobs.Empty},
		{"slot 1 name", slots[0].Name, "left"},
		{"slot 1 hint", slots[0].Hint != "", true},
		{"slot 2 state", slots[1].State, jobs.Running},
		{"slot 2 step", slots[1].Step, "write"},
		{"slot 2 progress", slots[1].Progress, 0.25},
		{"slot 2 serial", slots[1].Serial, "0x3231-4E"},
		{"slot 2 attempt", slots[1].Attempt, int64(41)},
		{"slot 2 updated", slots[1].Updated.Equal(at), true},
		{"slot 2 start", slots[1].Start, false},
		{"slot 2 cancel", slots[1].Cancel, true},
		{"slot 3 state", slots[2].State, jobs.Failed},
		{"slot 3 reason", slots[2].Reason, "byte 0x100 reads 0x00, wrote 0xFF"},
		{"slot 3 class", slots[2].Class, "verify-mismatch"},
		{"slot 3 fault", slots[2].Fault, jobs.UnitFault},
		{"slot 3 hint", slots[2].Hint, "reject the unit"},
		{"slot 3 start", slots[2].Start, false},
		{"slot 3 retry", slots[2].Retry, true},
		{"slot 3 cancel", slots[2].Cancel, false},
	}
	for _, tt := range tests {
		if fmt.Sprint(tt.got) != fmt.Sprint(tt.want) {
			t.Errorf("GET /api/slots: %s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	one := do(t, b.client(t), "GET", b.ts.URL+"/api/slots/2", "")
	var v web.SlotView
	if err := json.Unmarshal([]byte(one.body), &v); err != nil || one.code != 200 || v.Step != "write" {
		t.Errorf("GET /api/slots/2 = %d %s, want 200 with step write", one.code, one.body)
	}
}

func TestStartNeedsNoLogin(t *testing.T) {
	b := newBench(t, nil)
	b.bus.Publish(jobs.Event{Slot: 1, Kind: jobs.KindState, State: jobs.Present})
	r := do(t, b.client(t), "POST", b.ts.URL+"/api/slots/1/start", "")
	if r.code != http.StatusAccepted {
		t.Fatalf("POST /api/slots/1/start = %d %s, want 202", r.code, r.body)
	}
	if started, _ := b.control.calls(); fmt.Sprint(started) != "[1]" {
		t.Errorf("Control.Start calls = %v, want [1]", started)
	}
	if st, _ := b.tracker.Slot(1); st.State != jobs.Running {
		t.Errorf("slot 1 after start is %s, want running", st.State)
	}
}

func TestSlotErrors(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	tests := []struct {
		name   string
		method string
		path   string
		header []string
		code   int
		error  string // in the JSON error
	}{
		{"no such slot", "POST", "/api/slots/9/start", nil, 404, "slot 9 does not exist"},
		{"not a number", "POST", "/api/slots/x/start", nil, 400, "not a number"},
		{"GET no such slot", "GET", "/api/slots/9", nil, 404, "slot 9"},
		{"other site's page", "POST", "/api/slots/1/start", []string{"Origin", "http://evil.example"}, 403, "not allowed"},
		{"GET start", "GET", "/api/slots/1/start", nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, tt.method, b.ts.URL+tt.path, "", tt.header...)
			if r.code != tt.code || !strings.Contains(r.body, tt.error) {
				t.Errorf("%s %s = %d %s, want %d with %q", tt.method, tt.path, r.code, r.body, tt.code, tt.error)
			}
		})
	}
	if started, _ := b.control.calls(); len(started) != 0 {
		t.Errorf("Control.Start calls = %v, want none", started)
	}

	b.control.fail(errors.New("slot is quarantined; a supervisor must release it"))
	r := do(t, c, "POST", b.ts.URL+"/api/slots/1/start", "", "Origin", b.ts.URL)
	var e struct{ Error string }
	json.Unmarshal([]byte(r.body), &e)
	if r.code != http.StatusConflict || !strings.Contains(e.Error, "slot 1 did not start: slot is quarantined") {
		t.Errorf("POST start refused by Control = %d %s, want 409 with the reason", r.code, r.body)
	}
}

// TestStartWithScan: a start carrying a scanned serial number reaches the
// station with it; a malformed body is refused.
func TestStartWithScan(t *testing.T) {
	b := newBench(t, nil)
	b.bus.Publish(jobs.Event{Slot: 1, Kind: jobs.KindState, State: jobs.Present})
	c := b.client(t)
	if r := do(t, c, "POST", b.ts.URL+"/api/slots/1/start", `{"serial": " AVR-000042 "}`); r.code != http.StatusAccepted {
		t.Fatalf("POST start with a scan = %d %s", r.code, r.body)
	}
	b.control.mu.Lock()
	scans := fmt.Sprint(b.control.scans)
	b.control.mu.Unlock()
	if scans != "[1 AVR-000042]" {
		t.Errorf("Start calls with a scan = %s, want [1 AVR-000042]", scans)
	}
	if r := do(t, c, "POST", b.ts.URL+"/api/slots/1/start", `{"serial": `); r.code != http.StatusBadRequest {
		t.Errorf("POST start with a broken body = %d, want 400", r.code)
	}
}

func TestNoControl(t *testing.T) {
	b := newBench(t, func(c *web.Config) { c.Control = nil; c.Records = nil })
	b.bus.Publish(jobs.Event{Slot: 1, Kind: jobs.KindState, State: jobs.Present})
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindState, State: jobs.Quarantined})
	var slots []web.SlotView
	json.Unmarshal([]byte(do(t, b.client(t), "GET", b.ts.URL+"/api/slots", "").body), &slots)
	for _, v := range slots {
		if v.Start || v.Release {
			t.Errorf("without Control, slot %d (%s) offers start %v, release %v; want neither", v.Slot, v.State, v.Start, v.Release)
		}
	}
	for _, p := range []string{"/api/slots/1/start"} {
		if r := do(t, b.client(t), "POST", b.ts.URL+p, ""); r.code != http.StatusServiceUnavailable {
			t.Errorf("POST %s without Control = %d, want 503", p, r.code)
		}
	}
	for _, p := range []string{"/api/yield", "/api/pareto", "/api/export.csv"} {
		if r := do(t, b.client(t), "GET", b.ts.URL+p, ""); r.code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without Records = %d, want 503", p, r.code)
		}
	}
}

func TestReleaseNeedsSupervisor(t *testing.T) {
	b := newBench(t, nil)
	b.bus.Publish(jobs.Event{Slot: 3, Kind: jobs.KindState, State: jobs.Quarantined, Text: "3 different units failed in a row"})
	operator, super := b.client(t), b.client(t)
	release := b.ts.URL + "/api/slots/3/release"

	steps := []struct {
		name   string
		c      *http.Client
		method string
		url    string
		body   string
		code   int
	}{
		{"operator cannot release", operator, "POST", release, "", 403},
		{"wrong password", super, "POST", b.ts.URL + "/api/login", `{"name":"Ada","password":"guess"}`, 401},
		{"unknown name", super, "POST", b.ts.URL + "/api/login", `{"name":"Mallory","password":"correct horse"}`, 401},
		{"still no session", super, "POST", release, "", 403},
		{"right password", super, "POST", b.ts.URL + "/api/login", `{"name":"Ada","password":"correct horse"}`, 200},
		{"supervisor releases", super, "POST", release, "", 200},
		{"operator still cannot", operator, "POST", release, "", 403},
		{"log out", super, "POST", b.ts.URL + "/api/logout", "", 200},
		{"after logout", super, "POST", release, "", 403},
	}
	for _, s := range steps {
		r := do(t, s.c, s.method, s.url, s.body)
		if r.code != s.code {
			t.Fatalf("%s: %s %s = %d %s, want %d", s.name, s.method, s.url, r.code, r.body, s.code)
		}
	}
	if _, released := b.control.calls(); fmt.Sprint(released) != "[3 Ada]" {
		t.Errorf("Control.Release calls = %v, want [3 Ada]", released)
	}
	if st, _ := b.tracker.Slot(3); st.State != jobs.Empty {
		t.Errorf("slot 3 after release is %s, want empty", st.State)
	}
	want := "[Ada login-failed 0 Mallory login-failed 0 operator denied 0 Ada login 0 Ada release 3 Ada logout 0]"
	if got := fmt.Sprint(b.audit.lines()); !strings.Contains(got, "Ada release 3") || !strings.Contains(got, "Mallory login-failed") {
		t.Errorf("audit log = %s, want it to hold (at least) %s", got, want)
	}
}

func TestLoginCookie(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	req, _ := http.NewRequest("POST", b.ts.URL+"/api/login", strings.NewReader(`{"name":"Ada","password":"correct horse"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf(t, c, b.ts.URL))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == "unbrick_session" {
			cookie = k
		}
	}
	if resp.StatusCode != 200 || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("POST /api/login = %d, cookie %+v, want 200 and an HttpOnly SameSite=Strict cookie", resp.StatusCode, cookie)
	}
	r := do(t, c, "GET", b.ts.URL+"/api/session", "")
	var s web.Session
	if err := json.Unmarshal([]byte(r.body), &s); err != nil || !s.LoggedIn || s.Name != "Ada" || s.Role != web.RoleSupervisor || s.CSRF == "" {
		t.Errorf("GET /api/session = %s, want Ada logged in as supervisor with a CSRF token", r.body)
	}
	for _, k := range c.Jar.Cookies(mustURL(t, b.ts.URL)) {
		if k.Name == "unbrick_csrf" || k.Name == "unbrick_session" {
			continue
		}
		t.Errorf("unexpected cookie %s", k.Name)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestLoginThrottled(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	for i := range 5 {
		if r := do(t, c, "POST", b.ts.URL+"/api/login", `{"name":"Ada","password":"nope"}`); r.code != 401 {
			t.Fatalf("wrong login %d = %d, want 401", i+1, r.code)
		}
	}
	if r := do(t, c, "POST", b.ts.URL+"/api/login", `{"name":"Ada","password":"correct horse"}`); r.code != http.StatusTooManyRequests {
		t.Errorf("login after 5 wrong passwords = %d %s, want 429", r.code, r.body)
	}
}

func TestNoAccounts(t *testing.T) {
	b := newBench(t, func(c *web.Config) { c.Accounts = nil })
	c := b.client(t)
	if r := do(t, c, "POST", b.ts.URL+"/api/login", `{"name":"Ada","password":"correct horse"}`); r.code != http.StatusForbidden || !strings.Contains(r.body, "unbrick user add") {
		t.Errorf("login with no accounts = %d %s, want 403 saying how to add one", r.code, r.body)
	}
	if r := do(t, c, "POST", b.ts.URL+"/api/slots/1/release", ""); r.code != http.StatusForbidden {
		t.Errorf("release with no accounts = %d, want 403", r.code)
	}
}

func TestDashboardAPI(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	tests := []struct {
		name    string
		path    string
		code    int
		ctype   string
		contain string
		by      string
		since   time.Duration // expected distance back from now; 0 for all time
	}{
		{"yield total", "/api/yield", 200, "application/json", `"first_pass_yield":0.75`, "all", 0},
		{"yield by revision", "/api/yield?by=revision&since=8h", 200, "application/json", `"key":"B"`, "revision", 8 * time.Hour},
		{"yield by slot", "/api/yield?by=slot&since=all", 200, "application/json", `"unit_faults":1`, "slot", 0},
		{"bad grouping", "/api/yield?by=colour", 400, "application/json", "revision, slot", "", 0},
		{"bad since", "/api/pareto?since=yesterday", 400, "application/json", "neither a duration", "", 0},
		{"pareto", "/api/pareto?since=24h", 200, "application/json", `"class":"verify-mismatch"`, "", 24 * time.Hour},
		{"csv", "/api/export.csv?since=2026-11-01T00:00:00Z", 200, "text/csv", "1,ABC", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.records.note("none", time.Unix(1, 0))
			r := do(t, c, "GET", b.ts.URL+tt.path, "")
			if r.code != tt.code || !strings.HasPrefix(r.header.Get("Content-Type"), tt.ctype) || !strings.Contains(r.body, tt.contain) {
				t.Fatalf("GET %s = %d %s %s, want %d %s with %s", tt.path, r.code, r.header.Get("Content-Type"), r.body, tt.code, tt.ctype, tt.contain)
			}
			if tt.code != 200 {
				return
			}
			b.records.mu.Lock()
			by, since := b.records.by, b.records.since
			b.records.mu.Unlock()
			if tt.by != "" && by != tt.by {
				t.Errorf("GET %s asked Records for by=%q, want %q", tt.path, by, tt.by)
			}
			switch {
			case tt.since == 0 && !since.IsZero():
				t.Errorf("GET %s asked since %v, want all time", tt.path, since)
			case tt.since > 0:
				if d := time.Since(since); d < tt.since || d > tt.since+time.Minute {
					t.Errorf("GET %s asked since %v ago, want %v", tt.path, d, tt.since)
				}
			case tt.since < 0 && !since.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)):
				t.Errorf("GET %s asked since %v, want 2026-11-01", tt.path, since)
			}
		})
	}
	r := do(t, c, "GET", b.ts.URL+"/api/export.csv", "")
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("GET /api/export.csv Content-Disposition = %q, want an attachment", cd)
	}

	b.records.fail(errors.New("database is locked"))
	for _, p := range []string{"/api/yield", "/api/pareto", "/api/export.csv"} {
		r := do(t, c, "GET", b.ts.URL+p, "")
		if r.code != 500 || !strings.Contains(r.body, "database is locked") {
			t.Errorf("GET %s with a failing record = %d %s, want 500 with the reason", p, r.code, r.body)
		}
	}
}

func TestPages(t *testing.T) {
	b := newBench(t, nil)
	c := b.client(t)
	tests := []struct {
		path    string
		code    int
		ctype   string
		contain []string
	}{
		{"/", 200, "text/html", []string{"Bench &lt;7&gt;", "/assets/app.js", `id="tiles"`}},
		{"/history", 200, "text/html", []string{"Bench &lt;7&gt;", "/assets/history.js", `id="q"`}},
		{"/dashboard", 200, "text/html", []string{"/assets/dashboard.js", "/api/export.csv", "First-pass yield", "Failure Pareto", "Per hardware revision", "Per slot"}},
		{"/assets/app.js", 200, "text/javascript", []string{"new WebSocket"}},
		{"/assets/style.css", 200, "text/css", []string{"--quarantined"}},
		{"/healthz", 200, "application/json", []string{`"status":"ok"`, `"slots":3`}},
		{"/nothing-here", 404, "", nil},
		{"/assets/nothing.js", 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, c, "GET", b.ts.URL+tt.path, "")
			if r.code != tt.code || !strings.HasPrefix(r.header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("GET %s = %d %s, want %d %s", tt.path, r.code, r.header.Get("Content-Type"), tt.code, tt.ctype)
			}
			for _, s := range tt.contain {
				if !strings.Contains(r.body, s) {
					t.Errorf("GET %s has no %q", tt.path, s)
				}
			}
		})
	}
}
