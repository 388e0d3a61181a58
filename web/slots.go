package web

import (
	"time"

	"github.com/unbrick/unbrick/jobs"
)

// SlotView is a slot as the API and the tiles show it.
type SlotView struct {
	Slot     int        `json:"slot"`
	Name     string     `json:"name"`
	State    jobs.State `json:"state"` // empty, present, running, passed, failed, interrupted, quarantined
	Step     string     `json:"step"`
	Progress float64    `json:"progress"` // 0..1 within the current step
	Serial   string     `json:"serial"`
	Attempt  int64      `json:"attempt"`
	Recipe   string     `json:"recipe"`
	Reason   string     `json:"reason"` // why it failed, or the last thing the station said
	Class    string     `json:"class"`  // failure class, e.g. "verify-mismatch"
	Fault    jobs.Fault `json:"fault"`  // unit, station or refused, for failures
	Hint     string     `json:"hint"`   // what the operator should do next
	// Start says the slot waits for the operator to start its job.
	Start bool `json:"start"`
	// Retry says the slot's job failed or was stopped and can run again.
	Retry bool `json:"retry"`
	// Cancel says the slot runs a job that can be cancelled.
	Cancel bool `json:"cancel"`
	// StartedBy names who started the running job ("auto": the station).
	StartedBy string `json:"started_by,omitempty"`
	// Release says the slot waits for a supervisor to release it.
	Release bool      `json:"release"`
	Updated time.Time `json:"updated"`
}

// defaultHints say what to do next in a state when the job said nothing.
var defaultHints = map[jobs.State]string{
	jobs.Empty:       "Plug a unit into this slot.",
	jobs.Present:     "Press Start to recover this unit.",
	jobs.Running:     "Working: do not unplug the unit.",
	jobs.Passed:      "Done: take the unit out and plug in the next one.",
	jobs.Failed:      "Take the unit out and put it on the reject tray.",
	jobs.Interrupted: "The job was stopped and the unit switched off: press Retry to try again, or take the unit out.",
	jobs.Quarantined: "Do not use this slot: a supervisor must check its cable and fixture, then release it.",
}

// view is the slot as this server shows it: without Start or Release
// buttons when there is no Control to act on them.
func (s *Server) view(st jobs.SlotStatus) SlotView {
	v := view(st)
	if s.cfg.Control == nil {
		v.Start, v.Retry, v.Cancel, v.Release = false, false, false, false
	} else if v.Cancel {
		v.StartedBy = s.cfg.Control.StartedBy(st.Slot)
	}
	return v
}

func (s *Server) views(ss []jobs.SlotStatus) []SlotView {
	out := make([]SlotView, len(ss))
	for i, st := range ss {
		out[i] = s.view(st)
	}
	return out
}

func view(s jobs.SlotStatus) SlotView {
	v := SlotView{
		Slot: s.Slot, Name: s.Name, State: s.State, Step: s.Step, Progress: s.Progress, Serial: s.Serial,
		Attempt: s.Attempt, Recipe: s.Recipe, Reason: s.Text, Class: s.Class, Fault: s.Fault, Hint: s.Hint,
		Start: s.State == jobs.Present, Retry: s.State == jobs.Failed || s.State == jobs.Interrupted,
		Cancel: s.State == jobs.Running, Release: s.State == jobs.Quarantined, Updated: s.Updated,
	}
	if v.State == "" {
		v.State = jobs.Empty
	}
	v.Progress = min(max(v.Progress, 0), 1)
	if v.Hint == "" {
		v.Hint = defaultHints[v.State]
	}
	return v
}
