package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/station"
)

// poolFlags collects --pool NAME=FORMAT:FIRST-LAST flags.
type poolFlags []db.Pool

func (p *poolFlags) String() string { return fmt.Sprint(len(*p)) }

func (p *poolFlags) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	format, rng, ok2 := strings.Cut(rest, ":")
	lo, hi, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return fmt.Errorf("want NAME=FORMAT:FIRST-LAST, e.g. gateway-serials=SN%%06d:1-999999")
	}
	first, err1 := strconv.ParseInt(lo, 0, 64)
	last, err2 := strconv.ParseInt(hi, 0, 64)
	if err1 != nil || err2 != nil || first > last {
		return fmt.Errorf("range %q: want FIRST-LAST with FIRST <= LAST", rng)
	}
	*p = append(*p, db.Pool{Name: name, Format: format, First: first, Last: last})
	return nil
}

// runServe runs the station on a bench described by a bench file, until
// SIGTERM: every slot in its safe state at start and stop, units noticed
// as they are plugged in, the page at --listen.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "--bench FILE --recipes DIR [--data DIR] [--listen ADDR]", stderr)
	benchFile := fs.String("bench", "", "the bench file: slots, ports, lines (see testdata/benches)")
	recipeDir := fs.String("recipes", "", "the directory of recipe files")
	data := fs.String("data", "./var", "the data directory: the database unbrick.db")
	listen := fs.String("listen", "127.0.0.1:8080", "where the page is served")
	goneSupervisorPassword(fs)
	operatorLogin := fs.Bool("operator-login", false, "operators must log in to run jobs (default: anyone at the page runs them as operator)")
	verbose := fs.Bool("v", false, "log every plug, unplug and job")
	simLines := fs.String("sim-lines", "", "write the levels of the bench file's simulated (sim:) lines to this file at every change")
	consoleDays := fs.Int("console-days", 0, "keep console logs this many days after their attempt ended (0: forever); outcomes are always kept")
	var keys keyFlags
	fs.Var(&keys, "key", "a minisign public key the bench trusts (repeat for more)")
	var pools poolFlags
	fs.Var(&pools, "pool", "a number pool for provision steps, NAME=FORMAT:FIRST-LAST (repeat for more)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *benchFile == "" || *recipeDir == "" {
		fs.Usage()
		return fmt.Errorf("--bench and --recipes are required")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	kr, err := keys.keyring()
	if err != nil {
		return err
	}
	st, err := station.OpenBench(ctx, station.BenchConfig{BenchFile: *benchFile, RecipeDir: *recipeDir, DataDir: *data,
		Keys: kr, Pools: pools, Log: log, SimLines: *simLines})
	if err != nil {
		return err
	}
	defer st.Close()
	addr, stopWeb, err := st.Serve(*listen, station.WebOptions{OperatorLogin: *operatorLogin})
	if err != nil {
		return err
	}
	defer stopWeb()
	if *consoleDays > 0 {
		go pruneConsoles(ctx, st.Store, *consoleDays, log)
	}
	fmt.Fprintf(stdout, "unbrick serve: bench %s, %d slots, %d recipes; the page is at http://%s/\n", st.Bench.Name, len(st.Slots()), len(st.Book.Recipes), addr)
	st.Watch(ctx) // until SIGTERM
	fmt.Fprintln(stdout, "unbrick serve: stopping; running jobs are recorded as interrupted and every slot is switched off")
	return nil
}
