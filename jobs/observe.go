package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/step"
)

// observe powers the unit as it is and reads its console, to record why it
// is bricked; it leaves the unit off.
func (u *run) observe(ctx context.Context) *Failure {
	d := u.r.Observe
	if d == 0 {
		d = 2 * time.Second
	}
	// A board that takes long to say what is wrong (U-Boot counting down
	// its bootdelay first) asks for longer in its recipe.
	if od := u.plan.Options.duration("observe"); od > 0 {
		d = od
	}
	seq := u.startStep(ctx, "diagnose")
	f := u.toConsole(ctx)
	if f == nil {
		f = u.runActions(ctx, powerCycle(20*time.Millisecond))
	}
	// Read until a diagnosis rule matches, or for d.
	for end := time.Now().Add(d); f == nil && time.Now().Before(end); {
		if err := u.console.Drain(ctx, min(100*time.Millisecond, time.Until(end))); err != nil {
			f = classify("diagnose", err)
		}
		if dg, _ := u.match(u.console.Text()); dg != nil {
			break
		}
	}
	if f != nil {
		u.endStep(ctx, seq, f)
		return f
	}
	detail := "no known failure on the console"
	if dg, m := u.match(u.console.Text()); dg != nil {
		u.res.Diagnosis = fmt.Sprintf("%s: %q", dg.Class, m)
		detail = u.res.Diagnosis
		u.logf("bricked: %s", u.res.Diagnosis)
	}
	u.r.Rec.EndStep(ctx, u.res.Attempt, seq, "ok", detail)
	u.powerOff(ctx)
	return nil
}

// match returns the first diagnosis rule matching text and what it matched.
func (u *run) match(text string) (*Diagnosis, string) {
	for i := range u.plan.Diagnose {
		d := &u.plan.Diagnose[i]
		if m := d.Pattern.FindString(text); m != "" {
			return d, m
		}
	}
	return nil, ""
}

// diagnose turns an unmet console expectation into a failure named by the
// recipe's diagnosis rules when one matches.
func (u *run) diagnose(ee *ExpectError) *Failure {
	if d, m := u.match(u.console.textSinceMark()); d != nil {
		hint := d.Hint
		if hint == "" {
			hint = hintMoveSlot
		}
		return &Failure{Class: d.Class, Fault: UnitFault, Reason: fmt.Sprintf("%v; the console shows %q", ee, m), Hint: hint, Err: ee}
	}
	return &Failure{Class: "boot-failed", Fault: UnitFault, Reason: ee.Error(),
		Hint: "reseat the unit and start again; if it fails again, it goes to repair", Err: ee}
}

// validate checks the booted unit: the version it prints, and the recipe's
// checks. A unit not yet in its application is booted first.
func (u *run) validate(ctx context.Context) *Failure {
	v := u.plan.Validate
	if v.Version == nil && len(v.Checks) == 0 {
		return nil
	}
	if u.unit.state != step.Application {
		if err := u.boot(ctx); err != nil {
			return classify("boot", err)
		}
	}
	seq := u.startStep(ctx, "validate")
	f := u.validateBooted(ctx)
	if f == nil {
		// Keep the rest of what the unit prints for the record.
		u.console.Settle(ctx, 100*time.Millisecond, time.Second)
	}
	u.endStep(ctx, seq, f)
	return f
}

func (u *run) validateBooted(ctx context.Context) *Failure {
	v := u.plan.Validate
	if v.Version != nil {
		want := ""
		switch {
		case u.written != nil:
			want = u.written.Version
		case v.Image != "" && u.plan.Images[v.Image] != nil:
			want = u.plan.Images[v.Image].Version
		}
		within := v.Within
		if within == 0 {
			within = 10 * time.Second
		}
		// The version line may already have passed: search from the boot.
		u.console.rewind()
		m, err := u.console.Expect(ctx, v.Version, within)
		if err != nil {
			var ee *ExpectError
			if errors.As(err, &ee) {
				return u.diagnose(ee)
			}
			return classify("validate version", err)
		}
		got := ""
		if len(m) > 1 {
			got = m[1]
		}
		u.res.Version = got
		if want != "" && got != want {
			return &Failure{Class: "version-mismatch", Fault: UnitFault,
				Reason: fmt.Sprintf("the unit reports version %s after recovery, want %s", got, want),
				Hint:   "start again; if it reports the old version again, its flash did not take the image"}
		}
	}
	for _, c := range v.Checks {
		var err error
		if c.Kind == step.KindSend {
			err = u.send(ctx, c)
		} else {
			err = u.expect(ctx, c)
		}
		if err != nil {
			f := classify("validate "+c.Label(), err)
			if f.Fault == UnitFault {
				f.Class = "check-failed" // not a vanished port or a stop
			}
			return f
		}
	}
	return nil
}
