package station

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/unbrick/unbrick"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/recipes"
)

// Book is a set of recipes compiled into plans, by recipe name.
type Book struct {
	Recipes []*recipes.Recipe
	Plans   map[string]*jobs.Plan
}

// ForModel returns the recipe for a board model, or nil.
func (b *Book) ForModel(model string) *recipes.Recipe {
	for _, r := range b.Recipes {
		if r.Match.Model == model {
			return r
		}
	}
	return nil
}

// LoadBook loads every recipe in dir with its images, checked against the
// keys, and compiles each into a plan. Errors in a recipe's file (syntax,
// regions, a missing image file) are returned with file:line:col; an image
// that must be refused (bad hash or signature) is not an error here: its
// plan carries the refusal, and every job with it is refused before the
// unit is touched, with the reason in the record.
func LoadBook(dir string, keys *firmware.Keyring) (*Book, error) {
	rs, errs := recipes.LoadDir(dir)
	for _, r := range rs {
		errs = append(errs, jobs.CheckOptions(r)...)
	}
	if len(errs) > 0 {
		recipes.SortErrors(errs)
		return nil, joinErrors(errs)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("no recipes (*.yaml) in %s", dir)
	}
	b := &Book{Plans: map[string]*jobs.Plan{}}
	for _, r := range rs {
		images, _ := recipes.LoadImages(r, keys) // refusals travel in the plan
		p, err := jobs.FromRecipe(r, images)
		if err != nil {
			return nil, err
		}
		if old, dup := b.Plans[r.Name]; dup {
			return nil, fmt.Errorf("%s: recipe name %q is also used by another file (version %d); names must be unique", r.File, r.Name, old.Version)
		}
		b.Plans[r.Name] = p
		b.Recipes = append(b.Recipes, r)
	}
	return b, nil
}

// CheckRecipes checks recipe files as the station would load them: syntax,
// keys, regions and images (recipes.CheckFile), and the driver options and
// serial settings against what the protocol's driver declares
// (jobs.CheckOptions). It returns every error of every file, each with
// file:line:col and a hint.
func CheckRecipes(files []string, keys *firmware.Keyring) []error {
	var errs []error
	for _, f := range files {
		r, _, e := recipes.CheckFile(f, keys)
		if r != nil {
			e = append(e, jobs.CheckOptions(r)...)
		}
		recipes.SortErrors(e)
		errs = append(errs, e...)
	}
	return errs
}

func joinErrors(errs []error) error {
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// InstallExamples writes the example recipes, their images and the test
// key into dir (replacing older copies), and returns a keyring trusting the
// test key. The demo and `unbrick recipe test` run them from there, where a
// person can read them.
func InstallExamples(dir string) (*firmware.Keyring, error) {
	err := fs.WalkDir(unbrick.Examples, "testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata", p)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		b, err := unbrick.Examples.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("install the example recipes in %s: %w", dir, err)
	}
	keys := &firmware.Keyring{}
	if err := keys.AddFile("unbrick-test", filepath.Join(dir, "keys", "unbrick-test.pub")); err != nil {
		return nil, err
	}
	return keys, nil
}

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
