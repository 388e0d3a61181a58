package jobs

import (
	"context"
	"time"
)

// Job is one attempt to bring the unit in a slot to a known-good state with
// one plan.
type Job struct {
	Slot     *Slot
	Plan     *Plan
	Revision string // the unit's hardware revision (its label, the bench), checked against the plan
	Serial   string // the unit's identity from a barcode, for chips without a unique ID
	Operator string
}

// AttemptInfo is what the record knows when an attempt starts.
type AttemptInfo struct {
	Slot          int
	SlotName      string
	Recipe        string
	RecipeVersion int
	RecipeSHA256  string
	Revision      string
	Serial        string
	Operator      string
	ImageSHA256   string
	ImageVersion  string
}

// UnitInfo is a unit as identified during an attempt.
type UnitInfo struct {
	Serial, Protocol, Chip, Revision, Model string
}

// Outcome is how a job ended.
type Outcome string

// Outcomes.
const (
	OutcomePassed      Outcome = "passed"
	OutcomeFailed      Outcome = "failed"
	OutcomeRefused     Outcome = "refused"
	OutcomeInterrupted Outcome = "interrupted"
)

// Result is how a job ended, for the record and the operator.
type Result struct {
	Attempt      int64
	Slot         int
	Serial       string
	Outcome      Outcome
	Strategy     string   // the strategy that worked, or the last one tried
	Failure      *Failure // nil on a pass
	Diagnosis    string   // why the unit was bricked, from its console before recovery
	Version      string   // the version the unit printed after recovery
	ImageSHA256  string   // the last image written
	ImageVersion string
	Bytes        int64
	Started      time.Time
	Finished     time.Time
}

// Recorder keeps the recovery record. The station adapts the database to it.
// StartAttempt, UnitIdentified, SaveBackup, Allocate and Finish must be
// durable when they return; steps and console may be batched.
type Recorder interface {
	StartAttempt(ctx context.Context, a AttemptInfo) (int64, error)
	UnitIdentified(ctx context.Context, attempt int64, u UnitInfo) error
	StartStep(ctx context.Context, attempt int64, seq int, name, strategy string) error
	EndStep(ctx context.Context, attempt int64, seq int, outcome, detail string) error
	Console(ctx context.Context, attempt int64, b []byte) error
	SaveBackup(ctx context.Context, attempt int64, name string, addr uint32, data []byte) error
	Allocate(ctx context.Context, attempt int64, pool string) (string, error)
	Finish(ctx context.Context, r *Result) error
}
