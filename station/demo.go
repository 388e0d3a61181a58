package station

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/serialport"
	"github.com/unbrick/unbrick/sim/simbench"
)

// DemoConfig sets up the virtual bench.
type DemoConfig struct {
	Dir     string   // data directory: the database and the units' port links
	Units   int      // how many units, one per slot
	Kinds   []string // the kinds of unit, in turn; empty means every kind
	Fast    bool     // no line pacing (tests); the demo paces bytes at the real baud
	Log     *slog.Logger
	Workers int
}

// Demo is a station on the virtual bench: bricked units of every family,
// each on its own pseudo-terminal and sim lines, driven exactly as the
// station drives hardware.
type Demo struct {
	*Station
	Bench *simbench.Bench
	hw    *Hardware
	fb    *fixtures.Bench
}

// NewDemo builds the virtual bench and opens a station on it. Every unit
// arrives bricked (a failed upgrade); RunAll plugs them in. The recipes are
// the examples shipped in the binary, installed in Dir/recipes.
func NewDemo(cfg DemoConfig) (*Demo, error) {
	if cfg.Units <= 0 {
		return nil, fmt.Errorf("demo: --units must be at least 1, got %d", cfg.Units)
	}
	keys, err := InstallExamples(cfg.Dir)
	if err != nil {
		return nil, err
	}
	book, err := LoadBook(filepath.Join(cfg.Dir, "recipes"), keys)
	if err != nil {
		return nil, err
	}
	drivers := Drivers()
	kinds := cfg.Kinds
	if len(kinds) == 0 {
		// Every kind the station can recover with a released recipe (a
		// draft runs only on staging slots: `unbrick recipe test`).
		for _, k := range simbench.Kinds() {
			if r := book.ForModel(simbench.DemoBoard(k.Name)); r != nil && r.Released() && drivers[k.Protocol] != nil {
				kinds = append(kinds, k.Name)
			}
		}
	}
	var units []SimUnit
	for i := 1; i <= cfg.Units; i++ {
		kn := kinds[(i-1)%len(kinds)]
		r := book.ForModel(simbench.DemoBoard(kn))
		if r == nil {
			return nil, fmt.Errorf("demo: no recipe for %s units (board %s)", kn, simbench.DemoBoard(kn))
		}
		state := simbench.Bricked
		if kn == "uboot" && (i-1)/len(kinds)%2 == 0 {
			// Every other A/B board lost both slots: its fallback slot
			// does not boot either, and the recipe escalates to a reflash.
			state = simbench.Erased
		}
		units = append(units, SimUnit{Kind: kn, Recipe: r.Name, State: state})
	}
	return NewSimStation(cfg, book, units, false)
}

// SimUnit is a unit of the virtual bench and the recipe its slot runs.
type SimUnit struct {
	Kind   string // a simbench kind
	Recipe string // the recipe name
	State  simbench.State
}

// NewSimStation builds a virtual bench with the given units, one per slot
// from 1, and opens a station on it running the book's plans. On a staging
// bench, draft recipes run.
func NewSimStation(cfg DemoConfig, book *Book, units []SimUnit, staging bool) (*Demo, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	bench, err := simbench.New(filepath.Join(cfg.Dir, "ports"), simbench.Kinds())
	if err != nil {
		return nil, err
	}
	drivers := Drivers()
	var slots []SlotConfig
	pools := map[string]bool{}
	for i, su := range units {
		n := i + 1
		k, ok := bench.Kind(su.Kind)
		if !ok {
			bench.Close()
			return nil, fmt.Errorf("unknown kind of unit %q (known: %v)", su.Kind, bench.Kinds())
		}
		plan := book.Plans[su.Recipe]
		if plan == nil || drivers[k.Protocol] == nil || plan.Protocol != k.Protocol {
			bench.Close()
			return nil, fmt.Errorf("slot %d: recipe %q cannot run on %s units (protocol %s)", n, su.Recipe, su.Kind, k.Protocol)
		}
		rev := "A"
		if len(plan.Revisions) > 0 {
			rev = plan.Revisions[0]
		}
		board := plan.Model
		if board == "" {
			board = simbench.DemoBoard(su.Kind)
		}
		if _, err := bench.Add(simbench.Spec{Slot: n, Kind: su.Kind, Board: board, Revision: rev, State: su.State,
			Version: "1.0.0", Seed: uint64(1000 + n), Fast: cfg.Fast}); err != nil {
			bench.Close()
			return nil, err
		}
		for _, s := range plan.Strategies {
			for _, st := range s.Steps {
				if st.Pool != "" {
					pools[st.Pool] = true
				}
			}
		}
		slots = append(slots, SlotConfig{Recipe: su.Recipe, Revision: rev})
	}
	fb := SimFixtures(bench, 4)
	for _, s := range fb.Slots {
		s.Options.Staging = staging
	}
	hw := SimHardware(bench, cfg.Log)
	js, err := hw.BuildSlots(fb)
	if err != nil {
		bench.Close()
		return nil, err
	}
	for i := range slots {
		slots[i].Slot = js[i]
	}
	var dp []db.Pool
	for name := range pools {
		dp = append(dp, db.Pool{Name: name, Format: "SN%06d", First: 1, Last: 999999})
	}
	st, err := Open(Config{DataDir: cfg.Dir, Slots: slots, Plans: book.Plans, Pools: dp, Log: cfg.Log, Workers: cfg.Workers})
	if err != nil {
		bench.Close()
		return nil, err
	}
	if err := st.CatalogBook(context.Background(), book); err != nil {
		st.Close()
		bench.Close()
		return nil, err
	}
	return &Demo{Station: st, Bench: bench, hw: hw, fb: fb}, nil
}

// SimHardware returns the backends of the virtual bench: its "sim:" lines
// and its units' port links, opened through go.bug.st/serial as real
// adapters are.
func SimHardware(b *simbench.Bench, log *slog.Logger) *Hardware {
	h := &Hardware{Lines: &gpio.Registry{}, Ports: &serialport.Opener{Status: b.AdapterStatus}, Log: log}
	h.Lines.Register(gpiosim.Prefix, "simulated lines", func(name string) (pgpio.PinIO, error) { return b.Bank.Pin(name) })
	return h
}

// SimFixtures describes the virtual bench's slots as a bench file would:
// each unit's port link and its power, strap and reset lines with the
// levels its kind needs. maxOn bounds how many units switch on within
// 100 ms (0: no limit).
func SimFixtures(b *simbench.Bench, maxOn int) *fixtures.Bench {
	fb := &fixtures.Bench{File: "(virtual bench)", Name: "virtual", Power: fixtures.PowerLimit{MaxOn: maxOn, Window: 100 * time.Millisecond}}
	for _, u := range b.Units() {
		n := u.Spec.Slot
		pn, bn, rn := simbench.LineNames(n)
		lines := []fixtures.Line{{Role: gpio.Power, Name: pn, ActiveHigh: true}}
		if u.Kind.HasStrap {
			lines = append(lines, fixtures.Line{Role: gpio.Boot, Name: bn, ActiveHigh: u.Kind.Strap == pgpio.High})
		}
		lines = append(lines, fixtures.Line{Role: gpio.Reset, Name: rn, ActiveHigh: u.Kind.ResetActive == pgpio.High})
		fb.Slots = append(fb.Slots, &fixtures.Slot{Num: n, Name: fmt.Sprintf("slot %d", n), Port: fixtures.Port{Path: b.PortPath(n)},
			Lines: lines, Options: fixtures.Options{Auto: true, Revision: u.Spec.Revision}})
	}
	return fb
}

// RunAll plugs every unit in, as an operator does, and waits until each
// one's job is done. The station notices each port appear and starts the
// slot's job by itself (the slots are auto). A unit whose chip has no
// serial number carries a barcode label: the operator scans it first.
func (d *Demo) RunAll(ctx context.Context) ([]*jobs.Result, error) {
	n := len(d.Slots())
	done := make(chan *jobs.Result, n)
	d.OnDone(func(r *jobs.Result) { done <- r })
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		d.Watch(wctx, d.hw, d.fb)
	}()
	defer func() { stop(); <-watching }()
	for _, u := range d.Bench.Units() {
		if u.Kind.Label != nil {
			d.Scan(u.Spec.Slot, u.Kind.Label(u.Spec))
		}
		if err := u.Plug(); err != nil {
			return nil, fmt.Errorf("demo: plug slot %d: %w", u.Spec.Slot, err)
		}
	}
	var out []*jobs.Result
	for len(out) < n {
		select {
		case r := <-done:
			out = append(out, r)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// Close shuts the station down, then takes the units off the bench.
func (d *Demo) Close() error {
	err := d.Station.Close()
	d.Bench.Close()
	return err
}
