// Package web serves the station's pages and API: the operator page (one
// big tile per slot, for a touchscreen used with gloves), the supervisors'
// dashboard (yield, failure Pareto, CSV export), a JSON API and a websocket
// that streams every slot's state live.
//
// The server reads live state from a [jobs.Tracker] and follows changes
// through a [jobs.Bus]; it reads the record and starts or releases slots
// through the small interfaces [Records] and [Control], which the station
// adapts from the db package and the job pool. A slow browser never slows a
// job: each websocket connection has its own bus subscription, which drops
// events rather than block Publish, its updates are batched within a short
// window and coalesced per slot (see [Config.Interval]), and a client that
// stops reading is disconnected (see [Config.WriteTimeout]).
//
// Accounts and roles: an operator runs jobs (with no login unless
// [Config.OperatorLogin]); a supervisor also releases quarantined slots,
// cancels other people's jobs and changes settings; an engineer manages
// recipes and images. Accounts (bcrypt hashes) live in the record; POST
// /api/login opens a session (an HttpOnly, SameSite=Strict cookie). Every
// state-changing request must come from the station's own page: same
// origin, and the CSRF token of GET /api/session in the X-CSRF-Token
// header. What anyone does lands in the audit log ([Auditor]).
//
// Endpoints:
//
//	GET  /                         operator page (every slot at a glance)
//	GET  /history                  unit history page
//	GET  /dashboard                dashboard page
//	GET  /assets/...               embedded scripts and styles
//	GET  /api/slots                every slot, as a JSON array of [SlotView]
//	GET  /api/slots/{n}            one slot
//	GET  /api/slots/{n}/console    the last console lines of the slot's unit
//	POST /api/slots/{n}/start      start the slot's job (run); {"serial": S} for a scanned label
//	POST /api/slots/{n}/retry      start a failed or stopped job again (run)
//	POST /api/slots/{n}/cancel     cancel the slot's job: unit off, attempt interrupted (run; cancel-any for others' jobs)
//	POST /api/slots/{n}/release    release a quarantined slot (release)
//	POST /api/start-all            start every slot with a unit waiting (run)
//	POST /api/stop-all             cancel every job the caller may cancel (run)
//	GET  /api/summary              the shift: units today, passed, failed, first-pass yield, units per hour
//	GET  /api/history?q=SERIAL     a unit's attempts, by serial number or barcode
//	GET  /ws                       websocket: a snapshot, then every change ([Message])
//	GET  /api/yield?by=all|revision|slot|recipe&since=24h
//	GET  /api/pareto?since=24h
//	GET  /api/export.csv?since=24h
//	GET  /api/dashboard, /api/charts/{chart}.svg, /api/units/{serial}, /api/export  (see [Dashboard])
//	GET  /metrics                  Prometheus metrics (see [Metrics])
//	GET  /api/session, POST /api/login, POST /api/logout
//	GET  /api/settings, POST /api/settings (settings)
//	GET  /api/audit?since=24h      the audit log (settings)
//	GET  /healthz
//
// The websocket protocol is RFC 6455 (https://www.rfc-editor.org/rfc/rfc6455)
// through github.com/gorilla/websocket.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unbrick/unbrick/jobs"
)

// Config says what the server serves.
type Config struct {
	// Tracker holds the live state of every slot; required.
	Tracker *jobs.Tracker
	// Bus carries the changes the websocket streams; required. The
	// tracker must follow the same bus (Bus.Track).
	Bus *jobs.Bus
	// Records answers the dashboard; nil makes its API answer 503.
	Records Records
	// Control starts and releases slots; nil makes those calls answer 503.
	Control Control
	// History answers the unit history page; nil makes it answer 503.
	History History
	// Accounts are who may log in; nil means nobody can.
	Accounts Accounts
	// Audit keeps the audit log; nil keeps it in Log only.
	Audit Auditor
	// OperatorLogin makes operators log in to run jobs; false lets anyone
	// at the station's page run them as "operator". A supervisor can
	// change it from the page.
	OperatorLogin bool
	// Title names the station on its pages; empty means "unbrick".
	Title string
	// SessionTTL is how long a login session lasts; 0 means 8 hours.
	SessionTTL time.Duration
	// WriteTimeout is how long one websocket write may block before the
	// client is dropped as too slow; 0 means 10 seconds.
	WriteTimeout time.Duration
	// Interval is the websocket's batching window: a change after a quiet
	// spell is sent at once, and a change that comes within Interval of
	// the previous message to that client waits for the rest of it, so
	// that a burst across many slots goes out as one message, each slot
	// in its latest state. It is no per-slot rate: the jobs publish a
	// slot's progress at most once per [jobs.ProgressEvery] (about ten a
	// second), dropping the values between rather than delaying them, so
	// what is sent is news. 0 means 20 ms (at most 50 messages a second to
	// a client, none waiting longer); negative means no wait.
	Interval time.Duration
	// PingInterval is how often the server pings each websocket client to
	// notice dead peers; 0 means 30 seconds.
	PingInterval time.Duration
	// Log receives connection errors and supervisor actions; nil discards.
	Log *slog.Logger
	// Metrics is served at /metrics; nil serves the slot gauges only.
	Metrics *Metrics
}

// Server is the station's HTTP handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	log      *slog.Logger
	upgrader websocket.Upgrader
	assets   fs.FS
	sessions *sessions
	console  consoles

	ctx    context.Context // ends every websocket connection when cancelled
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	clients int
	dropped int64 // clients dropped as too slow
	opLogin bool  // operators must log in (Config.OperatorLogin, then settings)
}

var _ http.Handler = (*Server)(nil)

// New returns a server for cfg. It panics if cfg has no Tracker or no Bus,
// which is a wiring mistake.
func New(cfg Config) *Server {
	if cfg.Tracker == nil || cfg.Bus == nil {
		panic("web.New: Config needs a Tracker and a Bus")
	}
	if cfg.Title == "" {
		cfg.Title = "unbrick"
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Interval == 0 {
		cfg.Interval = 20 * time.Millisecond
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(cfg.Tracker)
	}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err)
	}
	s := &Server{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		log:      cfg.Log,
		assets:   sub,
		sessions: newSessions(cfg.SessionTTL),
		console:  consoles{bySlot: map[int][]byte{}, attempt: map[int]int64{}},
		opLogin:  cfg.OperatorLogin,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.follow(cfg.Bus.SubscribeConsole(subBuffer))
	s.routes()
	return s
}

// ServeHTTP serves the pages and the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Every page loads only what the station serves: nothing from outside.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// Close ends every websocket connection and waits for their goroutines.
// Plain HTTP requests are the http.Server's to shut down.
func (s *Server) Close() error {
	// Under mu, so that no connection can join the wait group after Wait
	// has begun (see the websocket handler).
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Clients returns how many websocket clients are connected.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients
}

// Dropped returns how many websocket clients were disconnected for being
// too slow.
func (s *Server) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /{$}", s.page("index.html"))
	m.HandleFunc("GET /history", s.page("history.html"))
	m.HandleFunc("GET /dashboard", s.page("dashboard.html"))
	m.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(s.assets)))
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /api/slots", s.getSlots)
	m.HandleFunc("GET /api/slots/{n}", s.getSlot)
	m.HandleFunc("GET /api/slots/{n}/console", s.getConsole)
	m.HandleFunc("POST /api/slots/{n}/start", s.guard(PermRun, s.start))
	m.HandleFunc("POST /api/slots/{n}/retry", s.guard(PermRun, s.retry))
	m.HandleFunc("POST /api/slots/{n}/cancel", s.guard(PermRun, s.cancelJob))
	m.HandleFunc("POST /api/slots/{n}/release", s.guard(PermRelease, s.release))
	m.HandleFunc("POST /api/start-all", s.guard(PermRun, s.startAll))
	m.HandleFunc("POST /api/stop-all", s.guard(PermRun, s.stopAll))
	m.HandleFunc("GET /api/summary", s.summary)
	m.HandleFunc("GET /api/history", s.history)
	m.HandleFunc("GET /ws", s.websocket)
	m.HandleFunc("GET /api/yield", s.yield)
	m.HandleFunc("GET /api/pareto", s.pareto)
	m.HandleFunc("GET /api/export.csv", s.exportCSV)
	m.HandleFunc("GET /api/export", s.export)
	m.HandleFunc("GET /api/dashboard", s.getDashboard)
	m.HandleFunc("GET /api/charts/{chart}", s.chart)
	m.HandleFunc("GET /api/units/{serial}", s.getUnit)
	m.Handle("GET /metrics", s.cfg.Metrics.Handler())
	m.HandleFunc("GET /api/session", s.session)
	m.HandleFunc("POST /api/login", s.login)
	m.HandleFunc("POST /api/logout", s.guard("", s.logout))
	m.HandleFunc("GET /api/settings", s.getSettings)
	m.HandleFunc("POST /api/settings", s.guard(PermSettings, s.putSettings))
	m.HandleFunc("GET /api/audit", s.auditLog)
}

// StateChanging lists every state-changing endpoint (method and path
// pattern), for tests that check each one refuses strangers.
var StateChanging = []string{
	"POST /api/slots/{n}/start", "POST /api/slots/{n}/retry", "POST /api/slots/{n}/cancel",
	"POST /api/slots/{n}/release", "POST /api/start-all", "POST /api/stop-all",
	"POST /api/login", "POST /api/logout", "POST /api/settings",
}

// page serves an embedded HTML page with the station's title filled in.
func (s *Server) page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(s.assets, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		title := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s.cfg.Title)
		b = []byte(strings.ReplaceAll(string(b), "{{TITLE}}", title))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	}
}

// Health is the answer of /healthz.
type Health struct {
	Status  string `json:"status"`
	Slots   int    `json:"slots"`
	Clients int    `json:"clients"` // websocket clients connected
	Dropped int64  `json:"dropped"` // websocket clients dropped as too slow
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok", Slots: len(s.cfg.Tracker.Slots()), Clients: s.Clients(), Dropped: s.Dropped()})
}

func (s *Server) getSlots(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.views(s.cfg.Tracker.Slots()))
}

// slotParam parses {n} and checks that the slot exists; on failure it has
// answered already.
func (s *Server) slotParam(w http.ResponseWriter, r *http.Request) (jobs.SlotStatus, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("slot %q is not a number", r.PathValue("n")))
		return jobs.SlotStatus{}, false
	}
	st, ok := s.cfg.Tracker.Slot(n)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("slot %d does not exist on this bench", n))
		return jobs.SlotStatus{}, false
	}
	return st, true
}

func (s *Server) getSlot(w http.ResponseWriter, r *http.Request) {
	if st, ok := s.slotParam(w, r); ok {
		writeJSON(w, http.StatusOK, s.view(st))
	}
}

// apiError is the body of every error answer of the API.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// errClosed ends a websocket connection when the server closes.
var errClosed = errors.New("web: server closed")
