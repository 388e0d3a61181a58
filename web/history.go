package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// History answers the unit history page from the record. The station
// adapts the db package to it, with the same adapter as the dashboard's:
// the page, the detail sheet and the dashboard show one record of a unit.
type History interface {
	// FindUnits returns the serial numbers matching q (a serial number or
	// a scanned barcode, whole or in part), the exact match first.
	FindUnits(ctx context.Context, q string, limit int) ([]string, error)
	// UnitHistory returns a unit and every attempt on it, oldest first,
	// each with its steps and console log; an error wrapping ErrNoUnit
	// when the serial number was never seen.
	UnitHistory(ctx context.Context, serial string) (UnitRecord, error)
}

// HistoryAnswer is the answer of GET /api/history?q=...: the serial
// numbers that match and, when one unit is meant, its history.
type HistoryAnswer struct {
	Query   string      `json:"query"`
	Matches []string    `json:"matches"`
	History *UnitRecord `json:"history,omitempty"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	if s.cfg.History == nil {
		writeError(w, http.StatusServiceUnavailable, "this station keeps no record to search")
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		writeError(w, http.StatusBadRequest, "say which unit: ?q= a serial number or a scanned barcode")
		return
	}
	if len(q) > 128 {
		writeError(w, http.StatusBadRequest, "q is longer than any serial number (128 characters at most)")
		return
	}
	brief := r.URL.Query().Get("brief") != ""
	m, err := s.cfg.History.FindUnits(r.Context(), q, 50)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "searching the record: "+err.Error())
		return
	}
	ans := HistoryAnswer{Query: q, Matches: m}
	if ans.Matches == nil {
		ans.Matches = []string{}
	}
	if len(m) == 1 || (len(m) > 0 && strings.EqualFold(m[0], q)) {
		h, err := s.cfg.History.UnitHistory(r.Context(), m[0])
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("reading unit %s: %v", m[0], err))
			return
		}
		if h.Attempts == nil {
			h.Attempts = []UnitAttempt{}
		}
		for i := range h.Attempts {
			if brief { // the detail sheet's list of visits: no steps, no console
				h.Attempts[i].Console = ""
				h.Attempts[i].Steps = nil
			}
			if h.Attempts[i].Steps == nil {
				h.Attempts[i].Steps = []UnitStep{}
			}
		}
		ans.History = &h
	}
	writeJSON(w, http.StatusOK, ans)
}
