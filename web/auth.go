package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// cookieName is the supervisor session's cookie.
const cookieName = "unbrick_session"

// Login throttling: after maxFailures wrong passwords within lockout, every
// login is refused until the window has passed.
const (
	maxFailures = 5
	lockout     = time.Minute
)

// sessions holds the supervisor sessions in memory: a station restart logs
// every supervisor out, which is the safe direction.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	byToken  map[string]session
	failures []time.Time // recent failed logins
}

type session struct {
	by      string
	expires time.Time
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, byToken: map[string]session{}}
}

// create returns a new session token for by.
func (ss *sessions) create(by string) string {
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for t, s := range ss.byToken {
		if now.After(s.expires) {
			delete(ss.byToken, t)
		}
	}
	ss.byToken[tok] = session{by: by, expires: now.Add(ss.ttl)}
	return tok
}

// lookup returns who holds the session of r, if any.
func (ss *sessions) lookup(r *http.Request) (string, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byToken[c.Value]
	if !ok || ss.now().After(s.expires) {
		delete(ss.byToken, c.Value)
		return "", false
	}
	return s.by, true
}

func (ss *sessions) remove(r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		ss.mu.Lock()
		delete(ss.byToken, c.Value)
		ss.mu.Unlock()
	}
}

// throttled says whether logins are refused for now, after too many wrong
// passwords.
func (ss *sessions) throttled() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	recent := ss.failures[:0]
	for _, t := range ss.failures {
		if now.Sub(t) < lockout {
			recent = append(recent, t)
		}
	}
	ss.failures = recent
	return len(recent) >= maxFailures
}

func (ss *sessions) failed() {
	ss.mu.Lock()
	ss.failures = append(ss.failures, ss.now())
	ss.mu.Unlock()
}

// passwordOK compares in constant time (over hashes, so the length leaks
// nothing either).
func passwordOK(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Login is the body of POST /api/login (JSON or a form).
type Login struct {
	Name     string `json:"name"` // who logs in, for the record; empty means "supervisor"
	Password string `json:"password"`
}

// Session is the answer of /api/session and /api/login.
type Session struct {
	Supervisor bool   `json:"supervisor"`
	By         string `json:"by,omitempty"`
	// Enabled says whether a supervisor login is configured at all.
	Enabled bool `json:"enabled"`
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	by, ok := s.sessions.lookup(r)
	writeJSON(w, http.StatusOK, Session{Supervisor: ok, By: by, Enabled: s.cfg.SupervisorPassword != ""})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in Login
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "the login is not valid JSON: "+err.Error())
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "the login form is not valid: "+err.Error())
			return
		}
		in.Name, in.Password = r.PostForm.Get("name"), r.PostForm.Get("password")
	}
	if s.cfg.SupervisorPassword == "" {
		writeError(w, http.StatusForbidden, "no supervisor password is set on this station; set one in its configuration")
		return
	}
	if s.sessions.throttled() {
		writeError(w, http.StatusTooManyRequests, "too many wrong passwords: wait a minute and try again")
		return
	}
	if !passwordOK(in.Password, s.cfg.SupervisorPassword) {
		s.sessions.failed()
		s.log.Warn("wrong supervisor password", "name", in.Name, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "wrong supervisor password")
		return
	}
	by := strings.TrimSpace(in.Name)
	if by == "" {
		by = "supervisor"
	}
	if len(by) > 64 {
		by = by[:64]
	}
	tok := s.sessions.create(by)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.SessionTTL / time.Second),
	})
	s.log.Info("supervisor logged in", "by", by, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, Session{Supervisor: true, By: by, Enabled: true})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.sessions.remove(r)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, Session{Enabled: s.cfg.SupervisorPassword != ""})
}

// supervisor lets only requests with a supervisor session through, and
// tells the handler who it is.
func (s *Server) supervisor(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		by, ok := s.sessions.lookup(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "a supervisor must log in to do this")
			return
		}
		h(w, r, by)
	}
}
