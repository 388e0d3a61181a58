package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/unbrick/unbrick/step"
	"slices"
	"strings"
)

// preflight checks everything that can be checked before the unit is
// touched: the recipe's release status against the slot, the unit's
// revision, the protocol, every image a step writes or verifies (present,
// its bytes hashing as catalogued, not refused, built for the revision,
// clear of protected regions) and every region a step erases, backs up or
// provisions. It is a pure function of the plan, the job, the protocols
// the station speaks and an image hash (hashOf, cached per job); the
// refusal it returns is the job's whole outcome.
func preflight(p *Plan, j Job, speaks func(protocol string) bool, hash func(*Image) string) *Failure {
	if !p.Released && (j.Slot == nil || !j.Slot.Staging) {
		num := 0
		if j.Slot != nil {
			num = j.Slot.Num
		}
		return &Failure{Class: "recipe-draft", Fault: RefusedFault,
			Reason: fmt.Sprintf("recipe %s v%d is a draft; drafts run only on staging slots, and slot %d is not one", p.Recipe, p.Version, num),
			Hint:   hintSupervisor}
	}
	if j.Revision != "" && len(p.Revisions) > 0 && !slices.Contains(p.Revisions, j.Revision) {
		return &Failure{Class: "wrong-revision", Fault: RefusedFault,
			Reason: fmt.Sprintf("recipe %s is for hardware revisions %s; this unit is revision %s", p.Recipe, strings.Join(p.Revisions, ", "), j.Revision),
			Hint:   "check the unit's label: it needs the recipe for its revision"}
	}
	if !speaks(p.Protocol) {
		return &Failure{Class: "no-driver", Fault: RefusedFault,
			Reason: fmt.Sprintf("recipe %s uses protocol %q, which this station cannot speak", p.Recipe, p.Protocol), Hint: hintSupervisor}
	}
	for _, st := range p.steps() {
		if st.Kind != step.KindWrite && st.Kind != step.KindVerify {
			continue
		}
		im := p.Images[st.Image]
		if im == nil {
			return &Failure{Class: "image-missing", Fault: RefusedFault,
				Reason: fmt.Sprintf("%s: step %s names image %q, which the recipe does not define", st.Pos, st.Label(), st.Image), Hint: hintSupervisor}
		}
		if h := hash(im); im.SHA256 != "" && !strings.EqualFold(im.SHA256, h) {
			return &Failure{Class: "image-hash-mismatch", Fault: RefusedFault,
				Reason: fmt.Sprintf("image %s v%s: its bytes hash to %s, but the catalog says %s: the file changed after it was catalogued", im.Name, im.Version, h, im.SHA256),
				Hint:   hintSupervisor}
		}
		if im.Refusal != nil {
			f := *im.Refusal
			f.Fault = RefusedFault
			if f.Hint == "" {
				f.Hint = hintSupervisor
			}
			return &f
		}
		if j.Revision != "" && len(im.Revisions) > 0 && !slices.Contains(im.Revisions, j.Revision) {
			return &Failure{Class: "image-wrong-revision", Fault: RefusedFault,
				Reason: fmt.Sprintf("image %s v%s is built for revisions %s, not for this unit's revision %s", im.Name, im.Version, strings.Join(im.Revisions, ", "), j.Revision),
				Hint:   hintSupervisor}
		}
		if st.Kind == step.KindWrite {
			if f := writable(p, p.Flash, im.Region(), "image "+im.Name); f != nil {
				f.Fault = RefusedFault
				return f
			}
		}
	}
	for _, st := range p.steps() {
		var f *Failure
		switch st.Kind {
		case step.KindErase:
			if st.All {
				if len(p.Protected) > 0 {
					f = &Failure{Class: "protected-region", Reason: fmt.Sprintf("%s: erase all would erase the protected region %q", st.Pos, p.Protected[0].Name)}
				}
			} else {
				f = writable(p, p.Flash, st.Region, "erase")
			}
		case step.KindBackup:
			if p.Flash.Size > 0 && !st.Region.Within(p.Flash) {
				f = &Failure{Class: "outside-flash", Reason: fmt.Sprintf("%s: backup %s lies outside the flash %s", st.Pos, st.Region, p.Flash)}
			}
		case step.KindProvision:
			f = writable(p, p.Flash, Region{Start: st.Addr, Size: 64}, "provision")
		}
		if f != nil {
			f.Fault, f.Hint = RefusedFault, hintSupervisor
			return f
		}
	}
	return nil
}

// steps returns every step of every strategy, in order.
func (p *Plan) steps() []Step {
	var out []Step
	for _, s := range p.Strategies {
		out = append(out, s.Steps...)
	}
	return out
}

// writable checks that r lies in flash and touches none of the plan's
// protected regions.
func writable(p *Plan, flash, r Region, what string) *Failure {
	if flash.Size > 0 && !r.Within(flash) {
		return &Failure{Class: "outside-flash", Fault: UnitFault,
			Reason: fmt.Sprintf("%s at %s falls outside the part's flash %s", what, r, flash), Hint: hintSupervisor}
	}
	for _, pr := range p.Protected {
		if r.Overlaps(pr.Region) {
			return &Failure{Class: "protected-region", Fault: UnitFault,
				Reason: fmt.Sprintf("%s at %s would touch the protected region %q (%s)", what, r, pr.Name, pr.Region), Hint: hintSupervisor}
		}
	}
	return nil
}

// hashOf returns the sha256 of data in hex.
func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
