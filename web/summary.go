package web

import (
	"net/http"
	"time"
)

// Summary is the operator page's strip: the shift at a glance.
type Summary struct {
	Since          time.Time `json:"since"`            // local midnight
	Units          int       `json:"units"`            // units judged today
	Passed         int       `json:"passed"`           // attempts that passed today
	Failed         int       `json:"failed"`           // attempts that failed today, whoever's fault
	FirstPassYield float64   `json:"first_pass_yield"` // of today's units
	PerHour        int       `json:"per_hour"`         // units judged in the last hour
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Records == nil {
		writeError(w, http.StatusServiceUnavailable, "this station keeps no record to sum up")
		return
	}
	now := time.Now()
	y, m, d := now.Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, now.Location())
	out := Summary{Since: midnight}
	today, err := s.cfg.Records.Yield(r.Context(), "all", midnight)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading today's yield: "+err.Error())
		return
	}
	if len(today) > 0 {
		t := today[0]
		out.Units, out.Passed, out.Failed, out.FirstPassYield = t.Units, t.Passed, t.UnitFaults+t.StationFaults, t.FirstPassYield
	}
	hour, err := s.cfg.Records.Yield(r.Context(), "all", now.Add(-time.Hour))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the last hour's yield: "+err.Error())
		return
	}
	if len(hour) > 0 {
		out.PerHour = hour[0].Units
	}
	writeJSON(w, http.StatusOK, out)
}
