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
// events rather than block Publish, its updates are coalesced per slot, and a
// client that stops reading is disconnected (see [Config.WriteTimeout]).
//
// Operators need no login to start jobs. Releasing a quarantined slot needs
// a supervisor session: POST /api/login with the password from
// [Config.SupervisorPassword] sets a session cookie.
//
// Endpoints:
//
//	GET  /                         operator page (tiles)
//	GET  /dashboard                dashboard page
//	GET  /assets/...               embedded scripts and styles
//	GET  /api/slots                every slot, as a JSON array of [SlotView]
//	GET  /api/slots/{n}            one slot
//	POST /api/slots/{n}/start      start the slot's job (operators); {"serial": S} for a scanned label
//	POST /api/slots/{n}/release    release a quarantined slot (supervisor session)
//	GET  /ws                       websocket: a snapshot, then every change ([Message])
//	GET  /api/yield?by=all|revision|slot|recipe&since=24h
//	GET  /api/pareto?since=24h
//	GET  /api/export.csv?since=24h
//	GET  /api/dashboard, /api/charts/{chart}.svg, /api/units/{serial}, /api/export  (see [Dashboard])
//	GET  /metrics                  Prometheus metrics (see [Metrics])
//	GET  /api/session, POST /api/login, POST /api/logout
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
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unbrick/unbrick/jobs"
)

// Control starts and releases slots. The station adapts its job pool to it.
// Errors are shown to the operator as they are, so they should say what to
// do.
type Control interface {
	// Start starts the job of the unit in slot n. It fails when the slot
	// runs a job already, is quarantined or has no unit.
	Start(slot int) error
	// Release returns quarantined slot n to service; by names the
	// supervisor who released it.
	Release(slot int, by string) error
}

// ScanStarter is a Control that can start a job for a unit identified by a
// barcode scan: the serial number on its label, for chips that cannot
// report one. A start request carrying {"serial": "..."} uses it.
type ScanStarter interface {
	StartScanned(slot int, serial string) error
}

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
	// SupervisorPassword guards the supervisor actions (releasing a
	// quarantined slot). Empty means nobody can log in as supervisor.
	SupervisorPassword string
	// Title names the station on its pages; empty means "unbrick".
	Title string
	// SessionTTL is how long a supervisor session lasts; 0 means 8 hours.
	SessionTTL time.Duration
	// WriteTimeout is how long one websocket write may block before the
	// client is dropped as too slow; 0 means 10 seconds.
	WriteTimeout time.Duration
	// Interval is the shortest time between two websocket updates to one
	// client: changes within it are coalesced per slot. 0 means 100 ms;
	// negative means no wait.
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

	ctx    context.Context // ends every websocket connection when cancelled
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	clients int
	dropped int64 // clients dropped as too slow
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
		cfg.Interval = 100 * time.Millisecond
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
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes()
	return s
}

// ServeHTTP serves the pages and the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
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
	m.HandleFunc("GET /dashboard", s.page("dashboard.html"))
	m.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(s.assets)))
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /api/slots", s.getSlots)
	m.HandleFunc("GET /api/slots/{n}", s.getSlot)
	m.HandleFunc("POST /api/slots/{n}/start", s.sameOrigin(s.start))
	m.HandleFunc("POST /api/slots/{n}/release", s.sameOrigin(s.supervisor(s.release)))
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
	m.HandleFunc("POST /api/login", s.sameOrigin(s.login))
	m.HandleFunc("POST /api/logout", s.sameOrigin(s.logout))
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

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	st, ok := s.slotParam(w, r)
	if !ok {
		return
	}
	if s.cfg.Control == nil {
		writeError(w, http.StatusServiceUnavailable, "this station cannot start jobs from the web page")
		return
	}
	var body struct {
		Serial string `json:"serial"`
	}
	if r.ContentLength != 0 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("start slot %d: the request body is not JSON like {\"serial\": \"SN123\"}: %v", st.Slot, err))
			return
		}
	}
	serial := strings.TrimSpace(body.Serial)
	var err error
	if ss, ok := s.cfg.Control.(ScanStarter); ok && serial != "" {
		err = ss.StartScanned(st.Slot, serial)
	} else if serial != "" {
		err = fmt.Errorf("this station does not take scanned serial numbers")
	} else {
		err = s.cfg.Control.Start(st.Slot)
	}
	if err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d did not start: %v", st.Slot, err))
		return
	}
	s.log.Info("job started from the web page", "slot", st.Slot, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, map[string]any{"slot": st.Slot, "started": true})
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, by string) {
	st, ok := s.slotParam(w, r)
	if !ok {
		return
	}
	if s.cfg.Control == nil {
		writeError(w, http.StatusServiceUnavailable, "this station cannot release slots from the web page")
		return
	}
	if err := s.cfg.Control.Release(st.Slot, by); err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d was not released: %v", st.Slot, err))
		return
	}
	s.log.Info("slot released from quarantine", "slot", st.Slot, "by", by, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"slot": st.Slot, "released": true, "by": by})
}

// sameOrigin refuses state-changing requests sent by another site's page: a
// browser always sends Origin on a cross-origin POST. Requests without
// Origin (curl, the station's own tools) pass.
func (s *Server) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("requests from %s are not allowed; use the station's own page", o))
				return
			}
		}
		h(w, r)
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
