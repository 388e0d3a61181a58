package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/station"
)

// runDemo runs the station on the virtual bench: N bricked units, every one
// recovered automatically in parallel, live on the page at --listen, the
// record in --data.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[--units N] [--listen ADDR] [--data DIR]", stderr)
	units := fs.Int("units", 8, "how many bricked units on the bench, one per slot")
	listen := fs.String("listen", "127.0.0.1:8080", "where the page is served; empty serves none")
	data := fs.String("data", "./var", "the data directory: the database unbrick.db and the units' port links")
	kinds := fs.String("kinds", "", "comma-separated kinds of unit, in turn (default: every kind)")
	fast := fs.Bool("fast", false, "do not pace bytes at the baud rate (for tests)")
	exit := fs.Bool("exit", false, "exit once every unit is done instead of serving the page until stopped")
	simLines := fs.String("sim-lines", "", "write the simulated lines' levels to this file at every change, for a process that watches the bench")
	goneSupervisorPassword(fs)
	operatorLogin := fs.Bool("operator-login", false, "operators must log in to run jobs (default: anyone at the page runs them as operator)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	var ks []string
	if *kinds != "" {
		ks = strings.Split(*kinds, ",")
	}
	d, err := station.NewDemo(station.DemoConfig{Dir: *data, Units: *units, Kinds: ks, Fast: *fast})
	if err != nil {
		return err
	}
	defer d.Close()
	if *simLines != "" {
		if err := d.Bench.Bank.Publish(*simLines); err != nil {
			return err
		}
	}
	if *listen != "" {
		addr, stopWeb, err := d.Serve(*listen, station.WebOptions{OperatorLogin: *operatorLogin})
		if err != nil {
			return err
		}
		defer stopWeb()
		fmt.Fprintf(stdout, "unbrick demo: %d units on the virtual bench; the page is at http://%s/\n", *units, addr)
	}
	start := time.Now()
	res, err := runAllOrPanic(ctx, d)
	if ctx.Err() != nil {
		// SIGTERM or Ctrl-C: Close interrupts the jobs, records them so and
		// powers every unit off.
		err := d.Close()
		fmt.Fprintf(stdout, "unbrick demo: stopped; %d of %d jobs had finished, the rest are recorded as interrupted; every unit is powered off\n", len(res), *units)
		return err
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range res {
		if r.Outcome != jobs.OutcomePassed {
			failed++
		}
	}
	for _, s := range d.Tracker.Slots() {
		line := fmt.Sprintf("slot %2d  %-8s %-26s %s", s.Slot, s.State, s.Serial, s.Recipe)
		if s.State != jobs.Passed {
			line += "  " + s.Text
			if s.Hint != "" {
				line += " (" + s.Hint + ")"
			}
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "unbrick demo: %d of %d units recovered in %v; records in %s\n", len(res)-failed, len(res), time.Since(start).Round(100*time.Millisecond), d.Store.Path())
	if !*exit && *listen != "" {
		fmt.Fprintln(stdout, "unbrick demo: serving the page until Ctrl-C")
		<-ctx.Done()
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d units were not recovered", failed, len(res))
	}
	return nil
}

// panicStepEnv names a step; when a job reaches it, the demo panics in its
// main goroutine. It is a fault injected for the test that proves the
// process leaves every line safe when it panics (cmd/unbrick
// safestate_test.go).
const panicStepEnv = "UNBRICK_DEMO_PANIC_AT_STEP"

// runAllOrPanic runs every unit's job, or panics in this goroutine when a
// job reaches the step panicStepEnv names.
func runAllOrPanic(ctx context.Context, d *station.Demo) ([]*jobs.Result, error) {
	step := os.Getenv(panicStepEnv)
	if step == "" {
		return d.RunAll(ctx)
	}
	sub := d.Bus.Subscribe(10000)
	defer sub.Close()
	type result struct {
		res []*jobs.Result
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		res, err := d.RunAll(rctx)
		done <- result{res, err}
	}()
	for {
		select {
		case e := <-sub.C:
			if e.Kind == jobs.KindStep && e.Step == step {
				panic(fmt.Sprintf("demo: injected panic at step %q of slot %d (%s)", step, e.Slot, panicStepEnv))
			}
		case r := <-done:
			return r.res, r.err
		}
	}
}
