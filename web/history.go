package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// History answers the unit history page from the record. The station
// adapts the db package to it.
type History interface {
	// FindUnits returns the serial numbers matching q (a serial number or
	// a scanned barcode, whole or in part), the exact match first.
	FindUnits(ctx context.Context, q string, limit int) ([]string, error)
	// UnitHistory returns a unit and every attempt on it, oldest first;
	// with full, each attempt carries its steps and console log.
	UnitHistory(ctx context.Context, serial string, full bool) (UnitHistory, error)
}

// UnitHistory is a unit and its attempts, oldest first.
type UnitHistory struct {
	Unit     UnitInfo        `json:"unit"`
	Attempts []AttemptRecord `json:"attempts"`
}

// UnitInfo is what the record knows of a unit.
type UnitInfo struct {
	Serial    string    `json:"serial"`
	Protocol  string    `json:"protocol"`
	Chip      string    `json:"chip"`
	Revision  string    `json:"revision"`
	Model     string    `json:"model"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// AttemptRecord is one attempt on a unit as the record keeps it.
type AttemptRecord struct {
	ID            int64        `json:"id"`
	Slot          int          `json:"slot"`
	Recipe        string       `json:"recipe"`
	RecipeVersion int          `json:"recipe_version"`
	RecipeSHA256  string       `json:"recipe_sha256"`
	ImageSHA256   string       `json:"image_sha256"`
	ImageVersion  string       `json:"image_version"`
	Strategy      string       `json:"strategy"`
	Outcome       string       `json:"outcome"`
	Class         string       `json:"class"`
	Fault         string       `json:"fault"`
	Reason        string       `json:"reason"`
	Hint          string       `json:"hint"`
	Operator      string       `json:"operator"`
	Started       time.Time    `json:"started"`
	Finished      time.Time    `json:"finished,omitzero"`
	Steps         []StepRecord `json:"steps,omitempty"`
	Console       string       `json:"console,omitempty"`
}

// StepRecord is one step of an attempt.
type StepRecord struct {
	Seq      int       `json:"seq"`
	Name     string    `json:"name"`
	Strategy string    `json:"strategy"`
	Outcome  string    `json:"outcome"`
	Detail   string    `json:"detail"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// HistoryAnswer is the answer of GET /api/history?q=...: the serial
// numbers that match and, when one unit is meant, its history.
type HistoryAnswer struct {
	Query   string       `json:"query"`
	Matches []string     `json:"matches"`
	History *UnitHistory `json:"history,omitempty"`
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
	full := r.URL.Query().Get("brief") == ""
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
		h, err := s.cfg.History.UnitHistory(r.Context(), m[0], full)
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("reading unit %s: %v", m[0], err))
			return
		}
		if h.Attempts == nil {
			h.Attempts = []AttemptRecord{}
		}
		ans.History = &h
	}
	writeJSON(w, http.StatusOK, ans)
}
