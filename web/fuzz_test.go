package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unbrick/unbrick/jobs"
)

func FuzzSinceParam(f *testing.F) {
	for _, s := range []string{"", "all", "8h", "168h", "1h30m", "-5h", "0s", "2026-11-25T06:00:00Z", "2026-11-25T06:00:00+01:00", "yesterday", "1e9h", "9999999999h"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/api/pareto", nil)
		q := r.URL.Query()
		q.Set("since", v)
		r.URL.RawQuery = q.Encode()
		since, err := sinceParam(r, now)
		if err != nil {
			if !strings.Contains(err.Error(), "since=") {
				t.Errorf("sinceParam(%q) error %q does not name the parameter", v, err)
			}
			return
		}
		if d, perr := time.ParseDuration(strings.TrimSpace(v)); perr == nil && d > 0 && !since.Before(now) {
			t.Errorf("sinceParam(%q) = %v, want a time before %v", v, since, now)
		}
	})
}

// memAccounts is an Accounts over a map.
type memAccounts map[string]Account

func (m memAccounts) Account(_ context.Context, name string) (Account, error) {
	a, ok := m[name]
	if !ok {
		return Account{}, fmt.Errorf("no account %q", name)
	}
	return a, nil
}

// FuzzLogin posts arbitrary bodies to the login: it never fails with a
// server error and never opens a session without the password.
func FuzzLogin(f *testing.F) {
	const pw = "s3cret-pw"
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	accts := memAccounts{"ada": {Name: "ada", Role: RoleSupervisor, Hash: string(h)}}
	for _, s := range []string{`{"name":"ada","password":"s3cret-pw"}`, `{"password":"nope"}`, `{"name":"ada","password":"s3cret"}`, `password=s3cret-pw`,
		`{"password":`, `[]`, `{"name":"ada","password":null}`, `{"name":"","password":""}`, strings.Repeat("x", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		bus := &jobs.Bus{}
		s := New(Config{Tracker: jobs.NewTracker(nil), Bus: bus, Accounts: accts})
		defer s.Close()
		r := httptest.NewRequest("POST", "/api/login", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: "tok"})
		r.Header.Set(csrfHeader, "tok")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("POST /api/login %q = %d %s", body, w.Code, w.Body)
		}
		if w.Code == http.StatusOK && !strings.Contains(body, pw) {
			t.Fatalf("POST /api/login %q opened a session without the password", body)
		}
		if w.Code == http.StatusOK && len(w.Result().Cookies()) != 1 {
			t.Fatalf("POST /api/login %q = 200 without a session cookie", body)
		}
	})
}
