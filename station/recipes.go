package station

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/unbrick/unbrick"
	"github.com/unbrick/unbrick/firmware"
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
