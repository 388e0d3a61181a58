package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/unbrick/unbrick/jobs"
)

// fuzzControl records what the start handler asked for.
type fuzzControl struct {
	mu      sync.Mutex
	started []string // "" for a plain start, else the scanned serial
}

func (c *fuzzControl) Start(slot int, serial, by string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = append(c.started, serial)
	return nil
}

func (c *fuzzControl) Cancel(slot int, by string) error  { return nil }
func (c *fuzzControl) Release(slot int, by string) error { return nil }
func (c *fuzzControl) StartedBy(slot int) string         { return "" }

// asPage makes r a request the station's own page sends: same origin, with
// the anonymous CSRF cookie and the header that repeats it.
func asPage(r *http.Request) {
	const tok = "fuzz-csrf-token"
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: tok})
	r.Header.Set(csrfHeader, tok)
}

// FuzzStartBody posts arbitrary bodies to a slot's start: the server never
// fails with a server error, answers a body it cannot read with 400, and
// starts the job with exactly the serial number the JSON names (trimmed),
// or none.
func FuzzStartBody(f *testing.F) {
	for _, s := range []string{`{"serial":"SN123"}`, `{"serial":"  SN 1 "}`, `{}`, `{"serial":12}`, `{"serial":"`, `[]`, `null`,
		`{"serial":"a"}{"serial":"b"}`, strings.Repeat(" ", 5000) + `{"serial":"x"}`, "\xff\xfe"} {
		f.Add(s, true)
	}
	f.Add(`serial=SN1`, false)
	f.Fuzz(func(t *testing.T, body string, asJSON bool) {
		ctl := &fuzzControl{}
		s := New(Config{Tracker: jobs.NewTracker(map[int]string{1: "slot 1"}), Bus: &jobs.Bus{}, Control: ctl})
		defer s.Close()
		r := httptest.NewRequest("POST", "/api/slots/1/start", strings.NewReader(body))
		asPage(r)
		if asJSON {
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("POST start %q = %d %s", body, w.Code, w.Body)
		}
		ctl.mu.Lock()
		defer ctl.mu.Unlock()
		if w.Code != http.StatusAccepted {
			if len(ctl.started) != 0 {
				t.Fatalf("POST start %q = %d, but a job started", body, w.Code)
			}
			return
		}
		if len(ctl.started) != 1 {
			t.Fatalf("POST start %q = 202 with %d jobs started", body, len(ctl.started))
		}
		want := ""
		if asJSON && body != "" {
			var v struct {
				Serial string `json:"serial"`
			}
			if err := json.NewDecoder(strings.NewReader(body)).Decode(&v); err == nil {
				want = strings.TrimSpace(v.Serial)
			}
		}
		if ctl.started[0] != want {
			t.Fatalf("POST start %q started with serial %q, want %q", body, ctl.started[0], want)
		}
	})
}
