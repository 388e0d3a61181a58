package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Roles. An operator runs jobs (no password unless Config.OperatorLogin);
// a supervisor also releases quarantined slots, cancels other people's jobs
// and changes settings; an engineer manages recipes and images.
const (
	RoleOperator   = "operator"
	RoleSupervisor = "supervisor"
	RoleEngineer   = "engineer"
)

// Perm is something a role may do.
type Perm string

// Permissions.
const (
	PermRun       Perm = "run"        // start, retry, cancel one's own jobs, start all, stop all of one's own
	PermCancelAny Perm = "cancel-any" // cancel a job someone else started
	PermRelease   Perm = "release"    // release a quarantined slot
	PermSettings  Perm = "settings"   // change the station's settings, read the audit log
	PermRecipes   Perm = "recipes"    // manage recipes and images
)

// rolePerms says what each role may do.
var rolePerms = map[string][]Perm{
	RoleOperator:   {PermRun},
	RoleSupervisor: {PermRun, PermCancelAny, PermRelease, PermSettings},
	RoleEngineer:   {PermRun, PermRecipes},
}

// Can reports whether role may do p.
func Can(role string, p Perm) bool { return slices.Contains(rolePerms[role], p) }

// Account is a named account as the server needs it: its role and its
// password hash (bcrypt).
type Account struct {
	Name string
	Role string
	Hash string
}

// Accounts looks accounts up by name. The station adapts its record to it.
type Accounts interface {
	// Account returns the named account, or an error if there is none.
	Account(ctx context.Context, name string) (Account, error)
}

// AuditEntry is one line of the audit log: who did what, on which slot,
// from where.
type AuditEntry struct {
	At     time.Time `json:"at"`
	Who    string    `json:"who"`
	Role   string    `json:"role"`
	Action string    `json:"action"`
	Slot   int       `json:"slot,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"`
}

// Auditor keeps the audit log in the record.
type Auditor interface {
	Audit(ctx context.Context, e AuditEntry) error
	// AuditLog returns the newest entries first.
	AuditLog(ctx context.Context, since time.Time, limit int) ([]AuditEntry, error)
}

// MinPassword is the shortest password HashPassword accepts.
const MinPassword = 8

// HashPassword returns the bcrypt hash of a password for the record.
func HashPassword(pw string) (string, error) {
	if utf8.RuneCountInString(pw) < MinPassword {
		return "", fmt.Errorf("the password is too short: use at least %d characters", MinPassword)
	}
	if len(pw) > 72 {
		return "", fmt.Errorf("the password is too long: bcrypt uses at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	return string(h), err
}

// dummyHash is compared against when an account does not exist, so that a
// wrong name costs as long as a wrong password. It is made on first use:
// at package init it cost every run of the binary (unbrick flash too)
// about 60 ms of bcrypt.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such account, no such password"), bcrypt.DefaultCost)
	return h
})

// Cookies: the session of a logged-in account, and the anonymous CSRF
// token of a browser that has none.
const (
	cookieName = "unbrick_session"
	csrfCookie = "unbrick_csrf"
	csrfHeader = "X-CSRF-Token"
)

// Login throttling: after maxFailures wrong passwords within lockout, every
// login is refused until the window has passed.
const (
	maxFailures = 5
	lockout     = time.Minute
)

// sessions holds the login sessions in memory: a station restart logs
// everybody out, which is the safe direction.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	byToken  map[string]session
	failures []time.Time // recent failed logins
}

type session struct {
	name, role string
	csrf       string
	expires    time.Time
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, byToken: map[string]session{}}
}

func token() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// create returns a new session token for an account.
func (ss *sessions) create(name, role string) (string, session) {
	tok := token()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for t, s := range ss.byToken {
		if now.After(s.expires) {
			delete(ss.byToken, t)
		}
	}
	s := session{name: name, role: role, csrf: token(), expires: now.Add(ss.ttl)}
	ss.byToken[tok] = s
	return tok, s
}

// lookup returns the session of r, if any.
func (ss *sessions) lookup(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byToken[c.Value]
	if !ok || ss.now().After(s.expires) {
		delete(ss.byToken, c.Value)
		return session{}, false
	}
	return s, true
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

// identity is who sends a request: a logged-in account, or the anonymous
// operator at the station when operators need no login.
type identity struct {
	Name     string
	Role     string
	LoggedIn bool
	csrf     string // the token its state-changing requests must carry
}

// who returns the identity of r; ok is false when nobody is logged in and
// operators must log in.
func (s *Server) who(r *http.Request) (identity, bool) {
	if ss, ok := s.sessions.lookup(r); ok {
		return identity{Name: ss.name, Role: ss.role, LoggedIn: true, csrf: ss.csrf}, true
	}
	var csrf string
	if c, err := r.Cookie(csrfCookie); err == nil {
		csrf = c.Value
	}
	if s.operatorLogin() {
		return identity{csrf: csrf}, false
	}
	return identity{Name: RoleOperator, Role: RoleOperator, csrf: csrf}, true
}

func (s *Server) operatorLogin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opLogin
}

// crossSite says why r comes from another site's page, or "" if it does
// not. A browser sends Origin on every cross-origin POST, and Sec-Fetch-Site
// on every request.
func crossSite(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("requests from %s are not allowed; use the station's own page", o)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "requests from another site are not allowed; use the station's own page"
	}
	return ""
}

// csrfOK checks the request's CSRF token against the one its identity
// was given (GET /api/session hands it out).
func csrfOK(r *http.Request, id identity) bool {
	got := r.Header.Get(csrfHeader)
	return got != "" && id.csrf != "" && subtle.ConstantTimeCompare([]byte(got), []byte(id.csrf)) == 1
}

// guard lets through a state-changing request only from the station's own
// page (same origin, with the CSRF token) and from someone whose role may
// do p; the handler learns who it is. Every refusal says what to do.
func (s *Server) guard(p Perm, h func(http.ResponseWriter, *http.Request, identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if why := crossSite(r); why != "" {
			writeError(w, http.StatusForbidden, why)
			return
		}
		id, ok := s.who(r)
		if !csrfOK(r, id) {
			writeError(w, http.StatusForbidden, "the request has no valid CSRF token: reload the station's page and try again")
			return
		}
		if !ok {
			writeError(w, http.StatusUnauthorized, "log in to do this: operators of this station need an account")
			return
		}
		if p != "" && !Can(id.Role, p) {
			s.audit(r, id, "denied", 0, fmt.Sprintf("%s %s needs %s", r.Method, r.URL.Path, p))
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s (%s) may not do this: it needs %s", id.Name, id.Role, needs(p)))
			return
		}
		h(w, r, id)
	}
}

// needs names who may do p, for refusals.
func needs(p Perm) string {
	var rs []string
	for _, r := range []string{RoleOperator, RoleSupervisor, RoleEngineer} {
		if Can(r, p) {
			rs = append(rs, "a "+r)
		}
	}
	return strings.Join(rs, " or ")
}

// audit writes an entry to the audit log; a failure to write it is logged.
func (s *Server) audit(r *http.Request, id identity, action string, slot int, detail string) {
	s.log.Info("audit", "who", id.Name, "role", id.Role, "action", action, "slot", slot, "detail", detail, "remote", r.RemoteAddr)
	if s.cfg.Audit == nil {
		return
	}
	e := AuditEntry{At: time.Now(), Who: id.Name, Role: id.Role, Action: action, Slot: slot, Detail: detail, Remote: r.RemoteAddr}
	if err := s.cfg.Audit.Audit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("the audit log could not be written", "err", err, "entry", e)
	}
}

// Login is the body of POST /api/login.
type Login struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Session is the answer of /api/session, /api/login and /api/logout: who
// the page acts as, and the CSRF token its state-changing requests carry
// in the X-CSRF-Token header.
type Session struct {
	Name     string `json:"name,omitempty"`
	Role     string `json:"role,omitempty"`
	LoggedIn bool   `json:"logged_in"`
	Perms    []Perm `json:"perms"`
	CSRF     string `json:"csrf"`
	// OperatorLogin says whether operators must log in to run jobs.
	OperatorLogin bool `json:"operator_login"`
	// Accounts says whether anyone can log in at all.
	Accounts bool `json:"accounts"`
}

// sessionOf answers for identity id, giving an anonymous browser its CSRF
// cookie if it has none.
func (s *Server) sessionOf(w http.ResponseWriter, r *http.Request, id identity, ok bool) Session {
	if id.csrf == "" {
		id.csrf = token()
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: id.csrf, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
			SameSite: http.SameSiteStrictMode})
	}
	out := Session{CSRF: id.csrf, OperatorLogin: s.operatorLogin(), Accounts: s.cfg.Accounts != nil, Perms: []Perm{}}
	if ok {
		out.Name, out.Role, out.LoggedIn = id.Name, id.Role, id.LoggedIn
		out.Perms = append(out.Perms, rolePerms[id.Role]...)
	}
	return out
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	id, ok := s.who(r)
	writeJSON(w, http.StatusOK, s.sessionOf(w, r, id, ok))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if why := crossSite(r); why != "" {
		writeError(w, http.StatusForbidden, why)
		return
	}
	anon := identity{}
	if c, err := r.Cookie(csrfCookie); err == nil {
		anon.csrf = c.Value
	}
	if cur, ok := s.sessions.lookup(r); ok {
		anon.csrf = cur.csrf
	}
	if !csrfOK(r, anon) {
		writeError(w, http.StatusForbidden, "the login has no valid CSRF token: reload the station's page and try again")
		return
	}
	var in Login
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, `the login is not JSON like {"name": "ada", "password": "..."}: `+err.Error())
		return
	}
	if s.cfg.Accounts == nil {
		writeError(w, http.StatusForbidden, "this station has no accounts: add one with `unbrick user add --role supervisor NAME`")
		return
	}
	if s.sessions.throttled() {
		writeError(w, http.StatusTooManyRequests, "too many wrong passwords: wait a minute and try again")
		return
	}
	name := strings.TrimSpace(in.Name)
	acct, err := s.cfg.Accounts.Account(r.Context(), name)
	hash := []byte(acct.Hash)
	if err != nil || acct.Hash == "" {
		hash = dummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(in.Password)) != nil || err != nil {
		s.sessions.failed()
		if len(name) > 64 {
			name = name[:64]
		}
		s.audit(r, identity{Name: name}, "login-failed", 0, "wrong name or password")
		writeError(w, http.StatusUnauthorized, "wrong name or password")
		return
	}
	tok, ss := s.sessions.create(acct.Name, acct.Role)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.SessionTTL / time.Second),
	})
	id := identity{Name: ss.name, Role: ss.role, LoggedIn: true, csrf: ss.csrf}
	s.audit(r, id, "login", 0, "")
	writeJSON(w, http.StatusOK, s.sessionOf(w, r, id, true))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, id identity) {
	s.sessions.remove(r)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteStrictMode})
	s.audit(r, id, "logout", 0, "")
	anon := identity{}
	if c, err := r.Cookie(csrfCookie); err == nil {
		anon.csrf = c.Value
	}
	if !s.operatorLogin() {
		anon.Name, anon.Role = RoleOperator, RoleOperator
	}
	writeJSON(w, http.StatusOK, s.sessionOf(w, r, anon, !s.operatorLogin()))
}

// Settings are what a supervisor may change from the page.
type Settings struct {
	OperatorLogin bool `json:"operator_login"` // operators must log in to run jobs
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Settings{OperatorLogin: s.operatorLogin()})
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request, id identity) {
	var in Settings
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, `the settings are not JSON like {"operator_login": true}: `+err.Error())
		return
	}
	s.mu.Lock()
	s.opLogin = in.OperatorLogin
	s.mu.Unlock()
	s.audit(r, id, "settings", 0, fmt.Sprintf("operator_login=%v", in.OperatorLogin))
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) {
	id, ok := s.who(r)
	if !ok || !id.LoggedIn {
		writeError(w, http.StatusUnauthorized, "log in as a supervisor to read the audit log")
		return
	}
	if !Can(id.Role, PermSettings) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%s (%s) may not read the audit log: it needs %s", id.Name, id.Role, needs(PermSettings)))
		return
	}
	if s.cfg.Audit == nil {
		writeError(w, http.StatusServiceUnavailable, "this station keeps no audit log")
		return
	}
	since, err := sinceParam(r, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	log, err := s.cfg.Audit.AuditLog(r.Context(), since, 500)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the audit log: "+err.Error())
		return
	}
	if log == nil {
		log = []AuditEntry{}
	}
	writeJSON(w, http.StatusOK, log)
}
