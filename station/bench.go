package station

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/serialport"
)

// Hardware is what the station opens a bench file's names with.
type Hardware struct {
	Lines  *gpio.Registry
	Ports  *serialport.Opener
	Log    *slog.Logger
	closer []func() error
}

// NewHardware returns the real backends: Pi header pins through the GPIO
// character device, MCP23017/MCP23008 expander pins on the bench's I2C bus,
// and serial ports by path, by-path link or USB identity. More backends
// (the virtual bench's "sim:" lines) can be registered on Lines.
func NewHardware(b *fixtures.Bench, log *slog.Logger) *Hardware {
	h := &Hardware{Lines: &gpio.Registry{}, Ports: &serialport.Opener{}, Log: log}
	(&gpio.Periph{}).Register(h.Lines)
	mcp := &gpio.MCP{BusName: b.I2CBus}
	mcp.Register(h.Lines)
	h.closer = append(h.closer, mcp.Close)
	return h
}

// Close releases the backends (the I2C bus).
func (h *Hardware) Close() error {
	var errs []error
	for _, c := range h.closer {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// match turns a bench file's port into what the serial layer resolves.
func match(p fixtures.Port) serialport.Match {
	m := serialport.Match{Path: p.Path, ByPath: p.ByPath}
	if u := p.USB; u != nil {
		m.USB = &serialport.USB{VID: u.VID, PID: u.PID, Serial: u.Serial, Interface: u.Interface}
	}
	return m
}

// portOf adapts a serialport.Port to the job layer.
type portOf struct{ *serialport.Port }

var (
	_ jobs.Port                = portOf{}
	_ bootloader.InputResetter = portOf{}
	_ bootloader.BaudSetter    = portOf{}
	_ bootloader.ModemLines    = portOf{}
)

// BuildSlots opens every slot's lines and makes its port opener. A line
// that cannot be opened is an error naming the slot, the line and where the
// bench file names it. Power lines wait for the bench supply's inrush limit.
func (h *Hardware) BuildSlots(b *fixtures.Bench) ([]*jobs.Slot, error) {
	seq := gpio.NewSequencer(b.Power.MaxOn, b.Power.Window, nil)
	var out []*jobs.Slot
	var errs []error
	for _, fs := range b.Slots {
		lines := map[gpio.Role]*gpio.Line{}
		for _, fl := range fs.Lines {
			pin, err := h.Lines.Open(fl.Name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: slot %d: %s line %s: %w", fl.Pos, fs.Num, fl.Role, fl.Name, err))
				continue
			}
			lines[fl.Role] = gpio.NewLine(fl.Name, fl.Role, pgpio.Level(fl.ActiveHigh), pin)
		}
		m := match(fs.Port)
		num := fs.Num
		s := &jobs.Slot{Num: fs.Num, Name: fs.Name, Lines: lines,
			Staging: fs.Options.Staging, Auto: fs.Options.Auto,
			Open: func(ctx context.Context, md jobs.Mode) (jobs.Port, error) {
				p, err := h.Ports.Open(m, serialport.Mode(md))
				if err != nil {
					return nil, err
				}
				if l := p.Latency; l.File != "" && l.Before != l.After {
					h.Log.Info("tuned the adapter's latency timer", "slot", num, "port", p.Path, "from", l.Before, "to", l.After)
				}
				for _, n := range p.Notes {
					h.Log.Debug("port", "slot", num, "note", n)
				}
				return portOf{p}, nil
			}}
		if b.Power.MaxOn > 0 {
			s.PowerOn = seq.Do
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// Watch notices units plugged into and pulled out of the bench's slots
// (their ports appearing and vanishing) within a second. A plugged-in unit
// shows as present; on a slot marked auto its job starts by itself. It runs
// until ctx ends.
func (st *Station) Watch(ctx context.Context, h *Hardware, b *fixtures.Bench) {
	matches := map[int]serialport.Match{}
	for _, s := range b.Slots {
		matches[s.Num] = match(s.Port)
	}
	for e := range h.Ports.Watch(ctx, serialport.DefaultInterval, matches) {
		n := e.Key
		sc, ok := st.slots[n]
		if !ok {
			continue
		}
		switch e.Change {
		case serialport.Appeared:
			st.log.Info("unit plugged in", "slot", n, "port", e.Path)
			if st.Pool.Running(n) {
				continue
			}
			st.Present(n)
			if sc.Slot.Auto {
				if err := st.Start(n, "", "auto"); err != nil {
					st.log.Warn("auto start", "slot", n, "err", err)
					st.Bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindLog, Text: err.Error()})
				}
			}
		case serialport.Vanished:
			st.log.Info("unit pulled out", "slot", n)
			if !st.Pool.Running(n) && !st.quarantined(n) {
				st.Bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindState, State: jobs.Empty})
			}
		case serialport.Trouble:
			st.log.Warn("port trouble", "slot", n, "err", e.Err)
			st.Bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindLog, Text: fmt.Sprint(e.Err)})
		}
	}
}

func (st *Station) quarantined(n int) bool {
	_, ok, _ := st.Pool.Quarantined(st.ctx, n)
	return ok
}

// OpenPort opens the serial port at path as a job opens a slot's port: by
// path, without touching DTR/RTS, with the adapter's latency timer tuned.
func OpenPort(ctx context.Context, path string, m jobs.Mode) (jobs.Port, error) {
	p, err := (&serialport.Opener{}).OpenPath(path, serialport.Mode(m))
	if err != nil {
		return nil, err
	}
	return portOf{p}, nil
}

// PulseDTR resets a unit through its adapter's DTR line, as an Arduino's
// auto-reset circuit expects.
func PulseDTR(ctx context.Context, ml bootloader.ModemLines) error {
	if err := ml.SetDTR(true); err != nil {
		return err
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return ml.SetDTR(false)
}

// BenchConfig is what a station on a real bench is built from: the bench
// file, the recipe directory and the options of `unbrick serve`.
type BenchConfig struct {
	BenchFile string // the slots, their ports and lines (fixtures)
	// Bench, if set, is the bench itself, built in memory (`unbrick
	// bench` builds it from its models' manifest): BenchFile is not read.
	Bench     *fixtures.Bench
	RecipeDir string
	// Book, if set, is the recipe book already loaded: RecipeDir is not
	// read.
	Book    *Book
	DataDir string            // the database, images; {data} in the bench file
	Keys    *firmware.Keyring // the keys image signatures must verify with
	Pools   []db.Pool         // number pools for provision steps
	Log     *slog.Logger
	// SimLines, if set, is a file where the simulated lines' levels are
	// published as they change, for a test or a trainer outside the process.
	SimLines string
	// RemoteLines, if set, is the Unix socket of the process whose device
	// models own the "sim:" lines (`unbrick sim --bench`): they are driven
	// across the process boundary (gpio.Remote) rather than in this one.
	RemoteLines string
}

// BenchStation is a station running a real bench: its bench file, recipes
// and hardware, wired.
type BenchStation struct {
	*Station
	Bench *fixtures.Bench
	Book  *Book
	hw    *Hardware
}

// OpenBench builds everything a bench file and its options describe: it
// loads and checks the bench file and the recipes (every error with
// file:line:col), chooses each slot's recipe, opens the lines (GPIO header,
// I2C expanders, and simulated "sim:" lines for training without
// hardware) and the port openers, opens the station with its record and
// catalogues the images. This is the one place a bench is wired; Watch
// then runs it, Close shuts it down in its safe state.
func OpenBench(ctx context.Context, cfg BenchConfig) (*BenchStation, error) {
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	b := cfg.Bench
	if b == nil {
		if b, err = fixtures.Load(cfg.BenchFile, map[string]string{"data": abs}); err != nil {
			return nil, err
		}
	}
	book := cfg.Book
	if book == nil {
		if book, err = LoadBook(cfg.RecipeDir, cfg.Keys); err != nil {
			return nil, err
		}
	}
	chosen, err := SlotRecipes(b, book)
	if err != nil {
		return nil, err
	}
	hw := NewHardware(b, cfg.Log)
	// A bench file may name simulated lines (training, trying the page
	// without hardware); they drive nothing outside this process, unless
	// another process's models own them.
	bank := gpiosim.NewBank()
	if cfg.RemoteLines != "" {
		remote := &gpio.Remote{Socket: cfg.RemoteLines}
		remote.Register(hw.Lines, gpiosim.Prefix)
		hw.closer = append(hw.closer, remote.Close)
	} else {
		hw.Lines.Register(gpiosim.Prefix, "simulated lines", func(n string) (pgpio.PinIO, error) { return bank.Pin(n) })
	}
	js, err := hw.BuildSlots(b)
	if err != nil {
		hw.Close()
		return nil, err
	}
	if cfg.SimLines != "" {
		if err := bank.Publish(cfg.SimLines); err != nil {
			hw.Close()
			return nil, err
		}
	}
	var slots []SlotConfig
	for i, s := range js {
		slots = append(slots, SlotConfig{Slot: s, Recipe: chosen[s.Num], Revision: b.Slots[i].Options.Revision})
	}
	st, err := Open(Config{DataDir: cfg.DataDir, Slots: slots, Plans: book.Plans, Pools: cfg.Pools, Log: cfg.Log})
	if err != nil {
		hw.Close()
		return nil, err
	}
	if err := st.CatalogBook(ctx, book); err != nil {
		st.Close()
		hw.Close()
		return nil, err
	}
	return &BenchStation{Station: st, Bench: b, Book: book, hw: hw}, nil
}

// Watch runs the bench until ctx ends: units are noticed as they are
// plugged in and pulled out (see Station.Watch).
func (bs *BenchStation) Watch(ctx context.Context) { bs.Station.Watch(ctx, bs.hw, bs.Bench) }

// Close shuts the station down, every slot in its safe state, then
// releases the hardware's backends.
func (bs *BenchStation) Close() error {
	return errors.Join(bs.Station.Close(), bs.hw.Close())
}
