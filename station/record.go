package station

import (
	"context"
	"fmt"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/jobs"
)

// record adapts the SQLite store to the job layer's Recorder and
// HealthStore: the runner never sees SQL, and the store never sees jobs.
type record struct{ s *db.Store }

var (
	_ jobs.Recorder    = record{}
	_ jobs.HealthStore = record{}
)

func (r record) StartAttempt(ctx context.Context, a jobs.AttemptInfo) (int64, error) {
	if a.Serial != "" {
		if err := r.s.UpsertUnit(ctx, db.Unit{Serial: a.Serial, Revision: a.Revision}); err != nil {
			return 0, err
		}
	}
	return r.s.StartAttempt(ctx, db.AttemptStart{
		Serial: a.Serial, Slot: a.Slot, SlotName: a.SlotName,
		Recipe: a.Recipe, RecipeVersion: a.RecipeVersion, RecipeSHA256: a.RecipeSHA256,
		Revision: a.Revision, ImageSHA256: a.ImageSHA256, ImageVersion: a.ImageVersion, Operator: a.Operator,
	})
}

func (r record) UnitIdentified(ctx context.Context, attempt int64, u jobs.UnitInfo) error {
	err := r.s.UpsertUnit(ctx, db.Unit{Serial: u.Serial, Protocol: u.Protocol, Chip: u.Chip, Revision: u.Revision, Model: u.Model})
	if err != nil {
		return err
	}
	return r.s.SetAttemptUnit(ctx, attempt, u.Serial)
}

func (r record) StartStep(ctx context.Context, attempt int64, seq int, name, strategy string) error {
	return r.s.StartStep(ctx, attempt, db.Step{Seq: seq, Name: name, Strategy: strategy})
}

func (r record) EndStep(ctx context.Context, attempt int64, seq int, outcome, detail string) error {
	return r.s.EndStep(ctx, attempt, seq, outcome, detail)
}

func (r record) Console(ctx context.Context, attempt int64, b []byte) error {
	return r.s.AppendConsole(ctx, attempt, b)
}

func (r record) SaveBackup(ctx context.Context, attempt int64, name string, addr uint32, data []byte) error {
	return r.s.SaveArtifact(ctx, attempt, db.Artifact{Name: name, Address: addr, Data: data})
}

func (r record) Allocate(ctx context.Context, attempt int64, pool string) (string, error) {
	a, err := r.s.Allocate(ctx, pool, attempt)
	if err != nil {
		return "", err
	}
	return a.Value, nil
}

func (r record) Finish(ctx context.Context, res *jobs.Result) error {
	f := db.Finish{
		Outcome:  db.Outcome(res.Outcome),
		Strategy: res.Strategy, ImageSHA256: res.ImageSHA256, ImageVersion: res.ImageVersion,
		Bytes: res.Bytes, Finished: res.Finished,
		// A pass that wrote nothing (the fallback slot booted) names no
		// image; a failure keeps the one it was about to write.
		NoImage: res.Outcome == jobs.OutcomePassed && res.ImageSHA256 == "",
	}
	if res.Failure != nil {
		f.Class, f.Fault, f.Reason, f.Hint = res.Failure.Class, string(res.Failure.Fault), res.Failure.Error(), res.Failure.Hint
	}
	if err := r.s.FinishAttempt(ctx, res.Attempt, f); err != nil {
		return fmt.Errorf("record the end of attempt %d in slot %d: %w", res.Attempt, res.Slot, err)
	}
	return nil
}

func (r record) RecentFinished(ctx context.Context, slot, n int) ([]jobs.Finished, error) {
	as, err := r.s.RecentFinished(ctx, slot, n)
	if err != nil {
		return nil, err
	}
	out := make([]jobs.Finished, len(as))
	for i, a := range as {
		out[i] = jobs.Finished{Serial: a.Serial, Outcome: jobs.Outcome(a.Outcome), Fault: jobs.Fault(a.Fault)}
	}
	return out, nil
}

func (r record) Quarantine(ctx context.Context, slot int, reason string) error {
	return r.s.Quarantine(ctx, db.Quarantine{Slot: slot, Reason: reason, By: "station"})
}

func (r record) Quarantined(ctx context.Context) ([]jobs.Quarantine, error) {
	qs, err := r.s.Quarantined(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]jobs.Quarantine, len(qs))
	for i, q := range qs {
		out[i] = jobs.Quarantine{Slot: q.Slot, Reason: q.Reason, Since: q.Since}
	}
	return out, nil
}

func (r record) Release(ctx context.Context, slot int, by string) (bool, error) {
	return r.s.ReleaseSlot(ctx, slot, by)
}
