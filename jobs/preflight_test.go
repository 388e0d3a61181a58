package jobs

import (
	"context"
	"strings"
	"testing"

	"github.com/unbrick/unbrick/step"
)

// TestPreflight checks every refusal without a unit, a line or a port:
// preflight is a function of the plan and the job.
func TestPreflight(t *testing.T) {
	app := []byte("application")
	base := func() *Plan {
		return &Plan{Recipe: "r", Version: 3, Protocol: "avr", Released: true, Revisions: []string{"R3"},
			Flash:      Region{Start: 0, Size: 0x8000},
			Protected:  []NamedRegion{{Name: "bootloader", Region: Region{Start: 0x7E00, Size: 0x200}}},
			Images:     map[string]*Image{"app": {Name: "app", Version: "2", Addr: 0, Data: app, SHA256: hashOf(app), Revisions: []string{"R3"}}},
			Strategies: []Strategy{{Name: "s", Steps: []Step{{Kind: step.KindEnter}, {Kind: step.KindWrite, Image: "app"}, {Kind: step.KindVerify, Image: "app"}}}},
		}
	}
	slot := &Slot{Num: 4}
	for _, c := range []struct {
		name   string
		change func(p *Plan, j *Job)
		class  string // "" for no refusal
	}{
		{"good", func(p *Plan, j *Job) {}, ""},
		{"draft on a production slot", func(p *Plan, j *Job) { p.Released = false }, "recipe-draft"},
		{"draft on a staging slot", func(p *Plan, j *Job) { p.Released = false; j.Slot = &Slot{Num: 4, Staging: true} }, ""},
		{"wrong revision", func(p *Plan, j *Job) { j.Revision = "R2" }, "wrong-revision"},
		{"protocol not spoken", func(p *Plan, j *Job) { p.Protocol = "jtag" }, "no-driver"},
		{"image not defined", func(p *Plan, j *Job) { delete(p.Images, "app") }, "image-missing"},
		{"image bytes changed", func(p *Plan, j *Job) { p.Images["app"].SHA256 = hashOf([]byte("other")) }, "image-hash-mismatch"},
		{"image refused at load", func(p *Plan, j *Job) { p.Images["app"].Refusal = &Failure{Class: "image-signature", Reason: "bad"} }, "image-signature"},
		{"image for another revision", func(p *Plan, j *Job) { p.Images["app"].Revisions = []string{"R2"}; j.Revision = "R3" }, "image-wrong-revision"},
		{"image over the bootloader", func(p *Plan, j *Job) { p.Images["app"].Addr = 0x7E00 }, "protected-region"},
		{"image past the flash", func(p *Plan, j *Job) { p.Images["app"].Addr = 0x8000 }, "outside-flash"},
		{"erase all with a protected region", func(p *Plan, j *Job) {
			p.Strategies[0].Steps = append(p.Strategies[0].Steps, Step{Kind: step.KindErase, All: true})
		}, "protected-region"},
		{"erase over the bootloader", func(p *Plan, j *Job) {
			p.Strategies[0].Steps = append(p.Strategies[0].Steps, Step{Kind: step.KindErase, Region: Region{Start: 0x7000, Size: 0x1000}})
		}, "protected-region"},
		{"backup outside the flash", func(p *Plan, j *Job) {
			p.Strategies[0].Steps = append(p.Strategies[0].Steps, Step{Kind: step.KindBackup, Name: "b", Region: Region{Start: 0x9000, Size: 16}})
		}, "outside-flash"},
		{"provision over the bootloader", func(p *Plan, j *Job) {
			p.Strategies[0].Steps = append(p.Strategies[0].Steps, Step{Kind: step.KindProvision, Pool: "sn", Addr: 0x7E00})
		}, "protected-region"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, j := base(), Job{Slot: slot, Revision: "R3"}
			c.change(p, &j)
			j.Plan = p
			f := preflight(p, j, func(proto string) bool { return proto == "avr" }, func(im *Image) string { return hashOf(im.Data) })
			switch {
			case c.class == "" && f != nil:
				t.Errorf("preflight = %v, want no refusal", f)
			case c.class != "" && (f == nil || f.Class != c.class):
				t.Errorf("preflight = %v, want a refusal of class %s", f, c.class)
			case f != nil && (f.Fault != RefusedFault || f.Hint == ""):
				t.Errorf("preflight = %+v, want a refusal with a hint", f)
			}
		})
	}
}

// TestEveryStepKindHasCode checks that step.Table and the handlers agree.
func TestEveryStepKindHasCode(t *testing.T) {
	for _, k := range step.Kinds() {
		if handlers[k] == nil {
			t.Errorf("step kind %s has no handler in steps.go", k)
		}
	}
	for k := range handlers {
		if _, ok := step.Lookup(k); !ok {
			t.Errorf("handler for %s, which step.Table does not have", k)
		}
	}
}

// TestImpossibleTransition checks that a step run from a state it does not
// allow is a recipe error naming what it needs, before any code of the
// step runs (no target, no port, no line is touched).
func TestImpossibleTransition(t *testing.T) {
	for _, c := range []struct {
		state step.State
		st    Step
		boot  []Action
		want  string
	}{
		{step.Off, Step{Kind: step.KindWrite, Image: "app"}, nil, "needs the unit in its bootloader"},
		{step.Application, Step{Kind: step.KindErase, All: true}, nil, "needs the unit in its bootloader"},
		{step.Bootloader, Step{Kind: step.KindExpect}, nil, "needs the unit's application running"},
		{step.Off, Step{Kind: step.KindBoot}, nil, "needs the unit in its bootloader (the recipe has no boot sequence)"},
		{step.Application, Step{Kind: step.KindBootSlot, Slot: "b"}, nil, "needs the unit in its bootloader"},
	} {
		u := &run{plan: &Plan{Recipe: "r", Boot: c.boot}, slot: &Slot{Num: 1}, unit: unit{state: c.state}}
		err := u.do(context.Background(), c.st)
		f, ok := err.(*Failure)
		if !ok || f.Class != "recipe-error" || !strings.Contains(f.Reason, c.want) || !strings.Contains(f.Reason, string(c.state)) {
			t.Errorf("do(%s) from %s = %v, want a recipe-error saying it %s", c.st.Label(), c.state, err, c.want)
		}
	}
}
