package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/unbrick/unbrick/jobs"
)

// Control starts, cancels and releases slots. The station adapts its job
// pool to it. Errors are shown to the operator as they are, so they should
// say what to do.
type Control interface {
	// Start starts the job of the unit in slot n; serial is a scanned
	// label's serial number ("" if none), by who started it. It fails
	// when the slot runs a job already, is quarantined or has no unit.
	Start(slot int, serial, by string) error
	// Cancel stops slot n's running job: the unit ends powered off and the
	// attempt is recorded as interrupted by by.
	Cancel(slot int, by string) error
	// Release returns quarantined slot n to service; by names the
	// supervisor who released it.
	Release(slot int, by string) error
	// StartedBy returns who started slot n's running job ("auto" for the
	// station itself), or "" when no job runs.
	StartedBy(slot int) string
}

// stationStarters are the names under which the station starts jobs by
// itself; any operator may cancel those.
var stationStarters = []string{"", "auto", "station"}

// mayCancel says whether id may cancel a job started by by.
func mayCancel(id identity, by string) bool {
	return Can(id.Role, PermCancelAny) || (Can(id.Role, PermRun) && (by == id.Name || slices.Contains(stationStarters, by)))
}

func (s *Server) noControl(w http.ResponseWriter) bool {
	if s.cfg.Control == nil {
		writeError(w, http.StatusServiceUnavailable, "this station cannot run jobs from the web page")
		return true
	}
	return false
}

func (s *Server) start(w http.ResponseWriter, r *http.Request, id identity) {
	st, ok := s.slotParam(w, r)
	if !ok || s.noControl(w) {
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
	if err := s.cfg.Control.Start(st.Slot, serial, id.Name); err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d did not start: %v", st.Slot, err))
		return
	}
	detail := ""
	if serial != "" {
		detail = "scanned " + serial
	}
	s.audit(r, id, "start", st.Slot, detail)
	writeJSON(w, http.StatusAccepted, map[string]any{"slot": st.Slot, "started": true})
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request, id identity) {
	st, ok := s.slotParam(w, r)
	if !ok || s.noControl(w) {
		return
	}
	if st.State != jobs.Failed && st.State != jobs.Interrupted {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d is %s: only a failed or stopped job can be retried", st.Slot, st.State))
		return
	}
	if err := s.cfg.Control.Start(st.Slot, "", id.Name); err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d did not start again: %v", st.Slot, err))
		return
	}
	s.audit(r, id, "retry", st.Slot, fmt.Sprintf("after attempt %d (%s)", st.Attempt, st.State))
	writeJSON(w, http.StatusAccepted, map[string]any{"slot": st.Slot, "started": true})
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, id identity) {
	st, ok := s.slotParam(w, r)
	if !ok || s.noControl(w) {
		return
	}
	by := s.cfg.Control.StartedBy(st.Slot)
	if !mayCancel(id, by) {
		s.audit(r, id, "denied", st.Slot, "cancel a job started by "+by)
		writeError(w, http.StatusForbidden, fmt.Sprintf("slot %d's job was started by %s: only they or a supervisor may cancel it", st.Slot, by))
		return
	}
	if err := s.cfg.Control.Cancel(st.Slot, id.Name); err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d was not cancelled: %v", st.Slot, err))
		return
	}
	s.audit(r, id, "cancel", st.Slot, fmt.Sprintf("attempt %d started by %s", st.Attempt, by))
	writeJSON(w, http.StatusAccepted, map[string]any{"slot": st.Slot, "cancelled": true, "by": id.Name})
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, id identity) {
	st, ok := s.slotParam(w, r)
	if !ok || s.noControl(w) {
		return
	}
	if err := s.cfg.Control.Release(st.Slot, id.Name); err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("slot %d was not released: %v", st.Slot, err))
		return
	}
	s.audit(r, id, "release", st.Slot, "")
	writeJSON(w, http.StatusOK, map[string]any{"slot": st.Slot, "released": true, "by": id.Name})
}

// AllResult is the answer of start-all and stop-all: which slots it acted
// on and which it left, with why.
type AllResult struct {
	Done    []int             `json:"done"`
	Skipped map[string]string `json:"skipped"` // slot number -> why
}

func (s *Server) startAll(w http.ResponseWriter, r *http.Request, id identity) {
	if s.noControl(w) {
		return
	}
	res := AllResult{Done: []int{}, Skipped: map[string]string{}}
	for _, st := range s.cfg.Tracker.Slots() {
		if st.State != jobs.Present {
			continue
		}
		if err := s.cfg.Control.Start(st.Slot, "", id.Name); err != nil {
			res.Skipped[fmt.Sprint(st.Slot)] = err.Error()
			continue
		}
		res.Done = append(res.Done, st.Slot)
	}
	s.audit(r, id, "start-all", 0, fmt.Sprintf("started %v", res.Done))
	writeJSON(w, http.StatusAccepted, res)
}

func (s *Server) stopAll(w http.ResponseWriter, r *http.Request, id identity) {
	if s.noControl(w) {
		return
	}
	res := AllResult{Done: []int{}, Skipped: map[string]string{}}
	for _, st := range s.cfg.Tracker.Slots() {
		by := s.cfg.Control.StartedBy(st.Slot)
		if st.State != jobs.Running && by == "" {
			continue
		}
		if !mayCancel(id, by) {
			res.Skipped[fmt.Sprint(st.Slot)] = fmt.Sprintf("started by %s: only they or a supervisor may cancel it", by)
			continue
		}
		if err := s.cfg.Control.Cancel(st.Slot, id.Name); err != nil {
			res.Skipped[fmt.Sprint(st.Slot)] = err.Error()
			continue
		}
		res.Done = append(res.Done, st.Slot)
	}
	s.audit(r, id, "stop-all", 0, fmt.Sprintf("cancelled %v", res.Done))
	writeJSON(w, http.StatusAccepted, res)
}
