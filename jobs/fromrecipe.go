package jobs

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/recipes"
)

//go:generate go test . -run TestExampleImages -update-examples

// FromRecipe compiles a parsed recipe and its images (from
// recipes.LoadImages) into the plan the runner executes. An image that must
// not be written (missing, a hash or signature mismatch, built for other
// revisions) keeps its refusal: the runner refuses the job before it
// toggles a line. An image the recipe names but images lacks is refused as
// missing. Options the driver does not declare, values of the wrong type or
// range, and serial settings the driver cannot honour are errors with
// file:line:col (CheckOptions): a plan never carries an option that would
// fail at connect, after the unit was powered.
func FromRecipe(r *recipes.Recipe, images map[string]*recipes.Loaded) (*Plan, error) {
	if r == nil {
		return nil, errors.New("jobs: no recipe to compile")
	}
	if r.Protocol == "" {
		return nil, fmt.Errorf("jobs: recipe %s (%s) names no protocol", r.Name, r.File)
	}
	if errs := CheckOptions(r); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Plan{
		Recipe: r.Name, Version: r.Version, SHA256: r.SHA256, Protocol: r.Protocol, Released: r.Released(),
		Chip: r.Match.Chip, Revisions: append([]string(nil), r.Match.Revisions...), Model: r.Match.Model,
		Port:        Mode{Baud: r.Serial.Baud, Parity: r.Serial.Parity},
		ConsoleBaud: r.Console,
		Flash:       Region{Start: r.Flash.Start, Size: r.Flash.Size},
		Images:      map[string]*Image{},
		Entry:       actions(r.Entry),
		Boot:        actions(r.Boot),
		Options:     maps.Clone(r.Options),
	}
	if p.ConsoleBaud == 0 {
		p.ConsoleBaud = r.Serial.Baud
	}
	for _, pr := range r.Protected {
		p.Protected = append(p.Protected, NamedRegion{Name: pr.Name, Region: Region{Start: pr.Start, Size: pr.Size}})
	}
	for _, spec := range r.Images {
		p.Images[spec.Name] = compileImage(spec, images[spec.Name])
	}
	for _, s := range r.Strategies {
		p.Strategies = append(p.Strategies, Strategy{Name: s.Name, Steps: slices.Clone(s.Steps)})
	}
	for _, d := range r.Diagnose {
		p.Diagnose = append(p.Diagnose, Diagnosis{Pattern: d.Pattern, Class: d.Class, Hint: d.Hint})
	}
	p.Validate = Validation{Version: r.Validate.Version, Image: r.Validate.Image, Within: r.Validate.Within,
		Checks: slices.Clone(r.Validate.Checks)}
	return p, nil
}

func compileImage(spec *recipes.ImageSpec, l *recipes.Loaded) *Image {
	im := &Image{Name: spec.Name, Version: spec.Version, Addr: spec.Addr, Revisions: append([]string(nil), spec.Revisions...)}
	if l == nil {
		im.Refusal = &Failure{Class: "image-missing", Fault: RefusedFault,
			Reason: fmt.Sprintf("%s: image %s was not loaded", spec.Pos, spec.Name), Hint: hintSupervisor}
		return im
	}
	im.Addr, im.Data, im.SHA256, im.Signer = l.Addr, l.Data, l.SHA256, l.Signer
	if rf := l.Refusal; rf != nil {
		hint := hintSupervisor
		if rf.Hint != "" {
			hint = hintSupervisor + " (for the recipe's author: " + rf.Hint + ")"
		}
		im.Refusal = &Failure{Class: rf.Class, Fault: RefusedFault, Reason: fmt.Sprintf("%s: %s", rf.Pos, rf.Reason), Hint: hint, Err: rf}
	}
	return im
}

func actions(in []recipes.Action) []Action {
	var out []Action
	for _, a := range in {
		c := Action{Role: gpio.Role(a.Line), On: a.Asserted, Wait: a.Wait, Max: a.Max, Modem: a.Modem, Pos: a.Pos.String()}
		switch a.Kind {
		case recipes.ActSet:
			c.Kind = ActSet
		case recipes.ActWait:
			c.Kind = ActWait
		case recipes.ActPulse:
			c.Kind = ActPulse
		case recipes.ActModem:
			c.Kind = ActModem
		}
		out = append(out, c)
	}
	return out
}
