package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
)

// runSim serves one device model on a pseudo-terminal whose host side is
// linked at --link, in its bootloader, until the context ends (SIGTERM or
// Ctrl-C).
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", "--model M --link PATH | --bench N --dir DIR", stderr)
	var names []string
	for _, k := range simbench.Kinds() {
		names = append(names, k.Name)
	}
	model := fs.String("model", "", "the device model: "+strings.Join(names, ", "))
	link := fs.String("link", "", "where to link the host side of its pseudo-terminal, e.g. /tmp/ttyUSB0")
	state := fs.String("state", "bricked", "what its flash holds: good, bricked, app-bad or erased")
	version := fs.String("version", "1.0.0", "the version of the application in its flash")
	board := fs.String("board", "", "the board its application is built for (default: the demo board of the model)")
	seed := fs.Uint64("seed", 1, "makes its unique ID or MAC differ from other units")
	fast := fs.Bool("fast", false, "do not pace bytes at the baud rate")
	turnaround := fs.Duration("turnaround", time.Millisecond, "the adapter's turnaround latency (16ms is an FTDI at default settings)")
	appMode := fs.Bool("app", false, "boot the application instead of the bootloader")
	faults := fs.String("faults", "", "faults to inject, e.g. ber=1e-4,stop=3000,brownout=2048 (see sim.ParseFaults)")
	benchN := fs.Int("bench", 0, "serve N mixed units for `unbrick bench` instead of one model (with --dir)")
	dir := fs.String("dir", "", "with --bench: where the ports, the lines' socket and the manifest go")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *benchN > 0 {
		return serveModels(ctx, *benchN, *dir, *fast, stdout)
	}
	f, err := sim.ParseFaults(*faults)
	if err != nil {
		return fmt.Errorf("--faults: %w", err)
	}
	var kind *simbench.Kind
	for _, k := range simbench.Kinds() {
		if k.Name == *model {
			kind = k
		}
	}
	if kind == nil {
		return fmt.Errorf("--model %q: unknown model; choose one of %s", *model, strings.Join(names, ", "))
	}
	if *link == "" {
		return fmt.Errorf("--link is required: the path where tools will find the unit's port")
	}
	b := *board
	if b == "" {
		b = simbench.DemoBoard(kind.Name)
	}
	m, err := kind.New(simbench.Spec{Kind: kind.Name, Board: b, State: simbench.State(*state), Version: *version, Seed: *seed,
		Options: map[string]string{"stay": "true"}})
	if err != nil {
		return fmt.Errorf("--model %s: %w", kind.Name, err)
	}
	cfg := kind.Line
	cfg.Fast = *fast
	cfg.Turnaround = *turnaround
	line := sim.NewLine(cfg)
	pt, err := sim.OpenPTY(*link)
	if err != nil {
		return fmt.Errorf("--link %s: %w", *link, err)
	}
	line.Attach(pt)
	dev := sim.NewDevice(kind.Name, m, line)
	if *faults != "" {
		flap := func(d time.Duration) {
			line.Detach()
			time.Sleep(d)
			if ctx.Err() == nil {
				if pt, err := sim.OpenPTY(*link); err == nil {
					line.Attach(pt)
				}
			}
		}
		if err := simbench.Arm(m, dev, f, func() bool { return ctx.Err() == nil }, flap); err != nil {
			dev.Close()
			return fmt.Errorf("--faults: %w", err)
		}
	}
	defer func() {
		dev.Close()
		line.Detach()
	}()
	mode := "its bootloader"
	if *appMode {
		mode = "its application"
	}
	if kind.HasStrap {
		dev.SetBoot(!*appMode)
	}
	dev.SetPower(true)
	if !kind.HasStrap && !*appMode {
		// Bootloaders without a strap (optiboot) enter on an external reset.
		dev.SetReset(true)
		dev.SetReset(false)
	}
	fmt.Fprintf(stdout, "unbrick sim: %s (%s) at %s (%s), in %s; stop with Ctrl-C or SIGTERM\n", kind.Name, b, pt.Path(), pt.Device(), mode)
	<-ctx.Done()
	fmt.Fprintf(stdout, "unbrick sim: stopped\n")
	return nil
}
