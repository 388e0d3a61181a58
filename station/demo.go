package station

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/serialport"
	"github.com/unbrick/unbrick/sim/simbench"
)

// DemoConfig sets up the virtual bench.
type DemoConfig struct {
	Dir   string   // data directory: the database and the units' port links
	Units int      // how many units, one per slot
	Kinds []string // the kinds of unit, in turn; empty means every kind
	Fast  bool     // no line pacing (tests); the demo paces bytes at the real baud
	// Version is the version the units are recovered to.
	Version string
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
// arrives bricked (a failed upgrade) and is plugged in.
func NewDemo(cfg DemoConfig) (*Demo, error) {
	if cfg.Units <= 0 {
		return nil, fmt.Errorf("demo: --units must be at least 1, got %d", cfg.Units)
	}
	if cfg.Version == "" {
		cfg.Version = "2.0.0"
	}
	bench, err := simbench.New(filepath.Join(cfg.Dir, "ports"), simbench.Kinds())
	if err != nil {
		return nil, err
	}
	kinds := cfg.Kinds
	if len(kinds) == 0 {
		kinds = bench.Kinds()
	}
	plans := map[string]*jobs.Plan{}
	var slots []SlotConfig
	for i := 1; i <= cfg.Units; i++ {
		kn := kinds[(i-1)%len(kinds)]
		k, ok := bench.Kind(kn)
		if !ok {
			bench.Close()
			return nil, fmt.Errorf("demo: unknown kind of unit %q (known: %v)", kn, bench.Kinds())
		}
		board := simbench.DemoBoard(kn)
		u, err := bench.Add(simbench.Spec{Slot: i, Kind: kn, Board: board, Revision: "A", State: simbench.Bricked,
			Version: "1.0.0", Seed: uint64(1000 + i), Fast: cfg.Fast})
		if err != nil {
			bench.Close()
			return nil, err
		}
		if _, ok := plans[kn]; !ok {
			p, err := demoPlan(k, board, cfg.Version)
			if err != nil {
				bench.Close()
				return nil, err
			}
			plans[kn] = p
		}
		_ = u
		slots = append(slots, SlotConfig{Recipe: plans[kn].Recipe, Revision: "A"})
	}
	byName := map[string]*jobs.Plan{}
	for _, p := range plans {
		byName[p.Recipe] = p
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	fb := SimFixtures(bench, 4)
	hw := SimHardware(bench, cfg.Log)
	js, err := hw.BuildSlots(fb)
	if err != nil {
		bench.Close()
		return nil, err
	}
	for i := range slots {
		slots[i].Slot = js[i]
	}
	st, err := Open(Config{DataDir: cfg.Dir, Slots: slots, Plans: byName, Log: cfg.Log, Workers: cfg.Workers})
	if err != nil {
		bench.Close()
		return nil, err
	}
	return &Demo{Station: st, Bench: bench, hw: hw, fb: fb}, nil
}

// SimHardware returns the backends of the virtual bench: its "sim:" lines
// and its units' port links, opened through go.bug.st/serial as real
// adapters are.
func SimHardware(b *simbench.Bench, log *slog.Logger) *Hardware {
	h := &Hardware{Lines: &gpio.Registry{}, Ports: &serialport.Opener{}, Log: log}
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
	d.Pool.Done = func(r *jobs.Result) { done <- r }
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

// demoPlan is the recovery plan for a kind of demo unit.
func demoPlan(k *simbench.Kind, board, version string) (*jobs.Plan, error) {
	img, addr, err := k.Image(version, board)
	if err != nil {
		return nil, err
	}
	p := &jobs.Plan{
		Recipe: k.Name + "-" + board, Version: 1, Protocol: k.Protocol, Released: true, Chip: k.Chip,
		Revisions: []string{"A"}, Model: board,
		Port:        jobs.Mode{Baud: 115200},
		ConsoleBaud: k.ConsoleBaud,
		Images:      map[string]*jobs.Image{"app": {Name: "app", Version: version, Addr: addr, Data: img}},
		Diagnose: []jobs.Diagnosis{
			{Pattern: regexp.MustCompile(`bad image checksum|no valid image|invalid header`), Class: "image-corrupt",
				Hint: "the application image is damaged: the station reflashes it"},
		},
		Validate: jobs.Validation{Version: regexp.MustCompile(`firmware v(\S+)`), Within: 10 * time.Second},
	}
	write := []jobs.Step{{Kind: jobs.StepWrite, Image: "app"}, {Kind: jobs.StepVerify, Image: "app"}}
	switch k.Protocol {
	case "stm32":
		p.Port.Parity = "even"
		p.Entry = []jobs.Action{
			{Kind: jobs.ActSet, Role: gpio.Power, On: false},
			{Kind: jobs.ActSet, Role: gpio.Boot, On: true},
			{Kind: jobs.ActWait, Wait: 50 * time.Millisecond},
			{Kind: jobs.ActSet, Role: gpio.Power, On: true},
			{Kind: jobs.ActWait, Wait: 20 * time.Millisecond},
		}
		p.Boot = []jobs.Action{
			{Kind: jobs.ActSet, Role: gpio.Boot, On: false},
			{Kind: jobs.ActPulse, Role: gpio.Reset, Wait: 10 * time.Millisecond},
		}
		steps := []jobs.Step{{Kind: jobs.StepEnter}, {Kind: jobs.StepErase, Region: jobs.Region{Start: addr, Size: uint32(len(img))}}}
		p.Strategies = []jobs.Strategy{{Name: "reflash", Steps: append(append(steps, write...), jobs.Step{Kind: jobs.StepBoot})}}
	case "avr":
		p.Entry = []jobs.Action{
			{Kind: jobs.ActSet, Role: gpio.Power, On: true},
			{Kind: jobs.ActPulse, Role: gpio.Reset, Wait: 10 * time.Millisecond},
		}
		p.Strategies = []jobs.Strategy{{Name: "reflash", Steps: append(append([]jobs.Step{{Kind: jobs.StepEnter}}, write...), jobs.Step{Kind: jobs.StepBoot})}}
	default:
		return nil, fmt.Errorf("demo: no plan for protocol %q", k.Protocol)
	}
	return p, nil
}
