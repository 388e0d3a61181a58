package station

import (
	"fmt"
	"slices"
	"strings"

	"github.com/unbrick/unbrick/fixtures"
)

// SlotRecipes chooses each slot's recipe: the one the bench file fixes for
// the slot, or else the only released recipe for the slot's hardware
// revision (the chip is not known before a unit is connected, so a bench
// whose slots take boards of several chips names the recipe per slot). A
// slot without a recipe is an error that says which slot and what to do.
func SlotRecipes(b *fixtures.Bench, book *Book) (map[int]string, error) {
	out := map[int]string{}
	var errs []string
	for _, s := range b.Slots {
		if name := s.Options.Recipe; name != "" {
			if book.Plans[name] == nil {
				errs = append(errs, fmt.Sprintf("%s: slot %d names recipe %q, which is not in the recipe directory (have: %s)", s.Pos, s.Num, name, strings.Join(planNames(book.Plans), ", ")))
				continue
			}
			out[s.Num] = name
			continue
		}
		var fit []string
		for _, r := range book.Recipes {
			if (r.Released() || s.Options.Staging) && (len(r.Match.Revisions) == 0 || slices.Contains(r.Match.Revisions, s.Options.Revision)) {
				fit = append(fit, r.Name)
			}
		}
		if len(fit) != 1 {
			what := "no recipe is for"
			if len(fit) > 1 {
				what = fmt.Sprintf("%d recipes (%s) are for", len(fit), strings.Join(fit, ", "))
			}
			errs = append(errs, fmt.Sprintf("%s: slot %d: %s hardware revision %q; name the slot's recipe in the bench file (options: {recipe: NAME})", s.Pos, s.Num, what, s.Options.Revision))
			continue
		}
		out[s.Num] = fit[0]
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}
