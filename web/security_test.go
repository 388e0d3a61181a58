package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unbrick/unbrick/jobs"
)

// endless is a request body that, for the server, never ends: it counts
// what was read and gives out only after 16 MiB, so that a handler without
// a limit fails the test instead of hanging it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n >= 16<<20 {
		return 0, io.EOF
	}
	for i := range p {
		p[i] = ' '
	}
	e.n += int64(len(p))
	return len(p), nil
}

// oneAccount is a station with one account, Ada, a supervisor.
type oneAccount struct{ hash string }

func (a oneAccount) Account(_ context.Context, name string) (Account, error) {
	if name != "Ada" {
		return Account{}, errors.New("no such account")
	}
	return Account{Name: "Ada", Role: RoleSupervisor, Hash: a.hash}, nil
}

func newOneAccount(t *testing.T, pw string) oneAccount {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return oneAccount{h}
}

// TestBodyLimits posts a body that never ends, as the station's page would
// (same origin, CSRF token), to every route that takes a POST: each answers
// without a server error and reads at most 64 KiB of it.
func TestBodyLimits(t *testing.T) {
	const limit = 64 << 10
	s := New(Config{Tracker: jobs.NewTracker(map[int]string{1: "slot 1"}), Bus: &jobs.Bus{}, Control: &fuzzControl{}, Accounts: newOneAccount(t, "s3cret-pass")})
	defer s.Close()
	for _, path := range []string{"/api/slots/1/start", "/api/slots/1/retry", "/api/slots/1/cancel", "/api/slots/1/release",
		"/api/start-all", "/api/stop-all", "/api/login", "/api/logout", "/api/settings"} {
		for _, ct := range []string{"application/json", "application/x-www-form-urlencoded"} {
			body := &endless{}
			r := httptest.NewRequest("POST", path, body)
			r.ContentLength = -1
			r.Header.Set("Content-Type", ct)
			asPage(r)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code >= 500 {
				t.Errorf("POST %s (%s) with an endless body = %d %s", path, ct, w.Code, w.Body)
			}
			if body.n > limit {
				t.Errorf("POST %s (%s) read %d bytes of the body, want at most %d", path, ct, body.n, limit)
			}
		}
	}
}

// TestSecretsNotLogged: the supervisor's password, right or wrong, and the
// session token never reach the log, even at debug level.
func TestSecretsNotLogged(t *testing.T) {
	const pw = "Tr0ub4dor&3-horse"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(Config{Tracker: jobs.NewTracker(map[int]string{1: "slot 1"}), Bus: &jobs.Bus{}, Control: &fuzzControl{}, Accounts: newOneAccount(t, pw), Log: log})
	defer s.Close()
	post := func(path, ct, body string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		asPage(r)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	post("/api/login", "application/json", `{"name":"Ada","password":"`+pw+`x"}`) // wrong
	post("/api/login", "application/x-www-form-urlencoded", "name=Ada&password=nearly-"+pw)
	w := post("/api/login", "application/json", `{"name":"Ada","password":"`+pw+`"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("login = %d %s", w.Code, w.Body)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Value == "" {
		t.Fatalf("login cookies = %v", cookies)
	}
	post("/api/slots/1/release", "application/json", "", cookies...)
	post("/api/logout", "application/json", "", cookies...)
	out := logs.String()
	if !strings.Contains(out, "action=login ") || !strings.Contains(out, "action=login-failed") {
		t.Fatalf("the log lacks the logins it should record:\n%s", out)
	}
	for what, secret := range map[string]string{"the password": pw, "the session token": cookies[0].Value} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains %s:\n%s", what, out)
		}
	}
}
