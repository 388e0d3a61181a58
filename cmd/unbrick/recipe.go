package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/recipes"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/station"
)

// keyFlags collects --key FILE flags: the public keys the bench trusts.
type keyFlags []string

func (k *keyFlags) String() string     { return strings.Join(*k, ",") }
func (k *keyFlags) Set(v string) error { *k = append(*k, v); return nil }

func (k keyFlags) keyring() (*firmware.Keyring, error) {
	keys := &firmware.Keyring{}
	for _, f := range k {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		if err := keys.AddFile(name, f); err != nil {
			return nil, fmt.Errorf("--key %s: %w", f, err)
		}
	}
	return keys, nil
}

// runRecipe checks recipe files, or tests one on the virtual bench.
func runRecipe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: unbrick recipe check [--key PUB]... FILE...\n       unbrick recipe test [--key PUB]... [--states S,...] FILE\n       unbrick recipe options PROTOCOL")
		return fmt.Errorf("recipe: say check, test or options")
	}
	switch args[0] {
	case "check":
		return recipeCheck(args[1:], stdout, stderr)
	case "test":
		return recipeTest(ctx, args[1:], stdout, stderr)
	case "options":
		return recipeOptions(args[1:], stdout, stderr)
	}
	return fmt.Errorf("recipe %s: unknown; say check, test or options", args[0])
}

// recipeOptions lists the options a protocol's driver takes: name, type
// and range, default, what it does.
func recipeOptions(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("recipe options", "PROTOCOL", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("give one protocol: %s", strings.Join(recipes.Protocols, ", "))
	}
	d, ok := jobs.Declared(fs.Arg(0))
	if !ok {
		return fmt.Errorf("protocol %q: the station speaks %s", fs.Arg(0), strings.Join(recipes.Protocols, ", "))
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "OPTION\tTYPE\tDEFAULT\tWHAT IT DOES\n")
	for _, o := range d.Options {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Name, o.Range(), o.Default, o.Doc)
	}
	tw.Flush()
	flow := append([]string{"none"}, d.Flow...)
	fmt.Fprintf(stdout, "\nserial flow: %s\n", strings.Join(flow, ", "))
	return nil
}

// recipeCheck prints every error of every file with file:line:col and a
// hint, and exits 1 if there is any.
func recipeCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("recipe check", "[--key PUB]... FILE...", stderr)
	var keys keyFlags
	fs.Var(&keys, "key", "a minisign public key the bench trusts (repeat for more)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("give at least one recipe file")
	}
	kr, err := keys.keyring()
	if err != nil {
		return err
	}
	errs := station.CheckRecipes(fs.Args(), kr)
	for _, e := range errs {
		fmt.Fprintln(stderr, e)
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "%d errors in %d files\n", len(errs), fs.NArg())
		return exitError{1}
	}
	fmt.Fprintf(stdout, "ok: %d recipes\n", fs.NArg())
	return nil
}

// recipeTest runs a recipe against its device model on the virtual bench,
// once per unit state, on a staging slot (drafts run there), and exits 0
// only if every unit was recovered.
func recipeTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("recipe test", "[--key PUB]... [--states bricked,erased] FILE", stderr)
	var keys keyFlags
	fs.Var(&keys, "key", "a minisign public key the bench trusts (repeat for more)")
	states := fs.String("states", "bricked,erased", "the states the test units arrive in: good, bricked, app-bad, erased")
	paced := fs.Bool("paced", false, "pace bytes at the baud rate, as a real bench does (slower)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("give exactly one recipe file")
	}
	kr, err := keys.keyring()
	if err != nil {
		return err
	}
	file := fs.Arg(0)
	r, images, errs := recipes.CheckFile(file, kr)
	if r != nil {
		errs = append(errs, jobs.CheckOptions(r)...)
	}
	for _, e := range errs {
		fmt.Fprintln(stderr, e)
	}
	if len(errs) > 0 {
		return exitError{1}
	}
	plan, err := jobs.FromRecipe(r, images)
	if err != nil {
		return err
	}
	var kind *simbench.Kind
	var known []string
	for _, k := range simbench.Kinds() {
		known = append(known, fmt.Sprintf("%s (%s, chip 0x%X)", k.Name, k.Protocol, k.Chip))
		if k.Protocol == r.Protocol && (r.Match.Chip == 0 || r.Match.Chip == k.Chip) && kind == nil {
			kind = k
		}
	}
	if kind == nil {
		return fmt.Errorf("%s: no device model speaks %s with chip 0x%X; the virtual bench has %s", file, r.Protocol, r.Match.Chip, strings.Join(known, ", "))
	}
	var units []station.SimUnit
	for _, s := range strings.Split(*states, ",") {
		units = append(units, station.SimUnit{Kind: kind.Name, Recipe: r.Name, State: simbench.State(strings.TrimSpace(s))})
	}
	dir, err := os.MkdirTemp("", "unbrick-recipe-test")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	book := &station.Book{Recipes: []*recipes.Recipe{r}, Plans: map[string]*jobs.Plan{r.Name: plan}}
	d, err := station.NewSimStation(station.DemoConfig{Dir: dir, Fast: !*paced}, book, units, true)
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(stdout, "testing %s v%d (%s) on %d %s model(s): %s\n", r.Name, r.Version, file, len(units), kind.Name, *states)
	start := time.Now()
	res, err := d.RunAll(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, rs := range res {
		u, _ := d.Bench.Unit(rs.Slot)
		a, err := d.Store.Attempt(ctx, rs.Attempt)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nunit %d (%s): %s", rs.Slot, u.Spec.State, rs.Outcome)
		if rs.Strategy != "" {
			fmt.Fprintf(stdout, " by strategy %s", rs.Strategy)
		}
		if rs.Version != "" {
			fmt.Fprintf(stdout, ", boots v%s", rs.Version)
		}
		fmt.Fprintln(stdout)
		if rs.Diagnosis != "" {
			fmt.Fprintf(stdout, "  bricked: %s\n", rs.Diagnosis)
		}
		for _, st := range a.Steps {
			fmt.Fprintf(stdout, "  %-20s %-40s %-6s %s\n", st.Strategy, st.Name, st.Outcome, st.Detail)
		}
		if rs.Outcome != jobs.OutcomePassed {
			failed++
			fmt.Fprintf(stdout, "  FAILED: %s\n  what to do: %s\n", rs.Failure.Error(), rs.Failure.Hint)
		}
	}
	fmt.Fprintf(stdout, "\n%d of %d units recovered in %v\n", len(res)-failed, len(res), time.Since(start).Round(100*time.Millisecond))
	if failed > 0 {
		return exitError{1}
	}
	return nil
}
