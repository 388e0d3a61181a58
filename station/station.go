// Package station is the one place that wires the bench together: the
// slots (lines and ports), the recipes' plans, the job pool, the SQLite
// record and the web page. It owns start-up and shutdown, and both leave
// every slot in its safe state: power off, straps and resets released.
//
// See ARCHITECTURE.md for the data flow: a job's events go to the bus;
// the bus feeds the tracker (the tiles' state) and the web hub; the runner
// writes the record through an adapter over the db package.
package station

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/jobs"
)

// SlotConfig is one slot of the bench with what it runs.
type SlotConfig struct {
	Slot *jobs.Slot
	// Recipe is the name of the plan the slot runs for its units (the
	// recipe matching its hardware revision).
	Recipe string
	// Revision is the hardware revision of the units the slot takes, when
	// the bench says so (a barcode scan can override it per job).
	Revision string
}

// Config says what the station runs.
type Config struct {
	// DataDir holds the database (unbrick.db).
	DataDir string
	Slots   []SlotConfig
	Plans   map[string]*jobs.Plan // by recipe name
	// Pools are the number pools (serial numbers, MACs) the recipes'
	// provision steps draw from; each is created if missing.
	Pools []db.Pool
	// Drivers by protocol; nil means every protocol the station speaks.
	Drivers map[string]jobs.Driver
	// Workers bounds how many jobs run at once; 0 means one per slot.
	Workers int
	// Threshold is how many different units may fail in a row in a slot
	// before it is quarantined; 0 means 3.
	Threshold int
	// Runner options.
	Retries int
	Observe time.Duration // console read to diagnose a unit; 0 means 2 s, negative never
	Log     *slog.Logger
	// Done, if set, is called after each job's result is recorded.
	Done func(*jobs.Result)
}

// Station is a running bench.
type Station struct {
	cfg     Config
	log     *slog.Logger
	Store   *db.Store
	Bus     *jobs.Bus
	Tracker *jobs.Tracker
	Pool    *jobs.Pool
	slots   map[int]SlotConfig

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	scanned map[int]string // barcode scans waiting for their slot's next job
	done    func(*jobs.Result)

	closeOnce sync.Once
	closeErr  error
}

// Open starts the station: it drives every slot to its safe state, opens the
// database, marks attempts a previous station left running as interrupted,
// and restores quarantined slots. Jobs start with Start. Close shuts it down.
func Open(cfg Config) (*Station, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	st := &Station{cfg: cfg, log: cfg.Log, Bus: &jobs.Bus{}, slots: map[int]SlotConfig{}}
	names := map[int]string{}
	for _, sc := range cfg.Slots {
		n := sc.Slot.Num
		if _, dup := st.slots[n]; dup {
			return nil, fmt.Errorf("station: slot %d is configured twice", n)
		}
		if sc.Recipe != "" && cfg.Plans[sc.Recipe] == nil {
			return nil, fmt.Errorf("station: slot %d runs recipe %q, which is not loaded (loaded: %v)", n, sc.Recipe, planNames(cfg.Plans))
		}
		st.slots[n] = sc
		names[n] = sc.Slot.Name
	}
	// Safe state first, before anything can fail: a station that died may
	// have left relays on.
	if err := st.safeState(); err != nil {
		st.log.Error("safe state at start-up", "err", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("station: data directory: %w", err)
	}
	store, err := db.Open(filepath.Join(cfg.DataDir, "unbrick.db"))
	if err != nil {
		return nil, fmt.Errorf("station: %w", err)
	}
	st.Store = store
	st.Tracker = jobs.NewTracker(names)
	st.Bus.Track(st.Tracker)
	st.ctx, st.cancel = context.WithCancel(context.Background())

	interrupted, err := store.MarkInterrupted(st.ctx)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("station: mark attempts left running as interrupted: %w", err)
	}
	for _, a := range interrupted {
		st.log.Warn("attempt interrupted by the previous station", "attempt", a.ID, "slot", a.Slot, "serial", a.Serial, "last_step", a.LastStep)
		if _, ok := st.slots[a.Slot]; ok {
			st.Bus.Publish(jobs.Event{Slot: a.Slot, Attempt: a.ID, Kind: jobs.KindState, State: jobs.Interrupted, Serial: a.Serial,
				Text:  fmt.Sprintf("the station stopped during %q", a.LastStep),
				Class: "station-restart", Fault: jobs.StationFault, Hint: "start the unit's job again"})
		}
	}
	for _, p := range cfg.Pools {
		if err := store.CreatePool(st.ctx, p); err != nil {
			store.Close()
			return nil, fmt.Errorf("station: pool %s: %w", p.Name, err)
		}
	}
	drivers := cfg.Drivers
	if drivers == nil {
		drivers = Drivers()
	}
	runner := &jobs.Runner{Bus: st.Bus, Rec: record{store}, Drivers: drivers, Retries: cfg.Retries, ModemReset: esprom.ModemReset}
	runner.Observe = cfg.Observe
	workers := cfg.Workers
	st.done = cfg.Done
	st.Pool = &jobs.Pool{Runner: runner, Health: record{store}, Threshold: cfg.Threshold, Workers: workers,
		Place: st.freeSlotLike, Done: st.jobDone}
	// Quarantine outlives the station: the pool keeps it in the record.
	if err := st.Pool.Restore(st.ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("station: %w", err)
	}
	return st, nil
}

// Drivers returns a driver for every protocol the station speaks.
func Drivers() map[string]jobs.Driver {
	return map[string]jobs.Driver{
		"stm32":  jobs.STM32{},
		"avr":    jobs.AVR{},
		"uboot":  jobs.UBoot{},
		"esprom": jobs.ESP{},
	}
}

// Protocols returns the protocols the station speaks, sorted.
func Protocols() []string {
	var n []string
	for k := range Drivers() {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// LoadImage reads an image file for a one-shot flash and parses it by its
// content (firmware.FormatOf): Intel HEX and ELF carry their own
// addresses; a raw binary comes back as one segment at 0, for the caller to
// place.
func LoadImage(path string) (*firmware.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("image %s is empty", path)
	}
	im, err := firmware.Parse(path, data, "", 0)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	if im.Size() == 0 {
		return nil, fmt.Errorf("image %s (%s) holds no bytes to write", path, im.Format)
	}
	return im, nil
}

// Slots returns the configured slot numbers in order.
func (st *Station) Slots() []int {
	var n []int
	for k := range st.slots {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// Present tells the tiles that a unit sits in slot n (its port appeared).
func (st *Station) Present(n int) {
	st.Bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindState, State: jobs.Present})
}

// OnDone makes f hear of every job's result, after it is recorded.
func (st *Station) OnDone(f func(*jobs.Result)) {
	st.mu.Lock()
	st.done = f
	st.mu.Unlock()
}

// jobDone passes a job's result on to whoever asked (OnDone). Where the
// unit of a failed job can go is decided before, once, by the pool's
// placement hook (freeSlotLike).
func (st *Station) jobDone(res *jobs.Result) {
	st.mu.Lock()
	done := st.done
	st.mu.Unlock()
	if done != nil {
		done(res)
	}
}

// freeSlotLike returns a slot other than n that runs the same recipe, is
// not quarantined and has no job running: where an operator can move n's
// unit. It is the pool's placement hook.
func (st *Station) freeSlotLike(n int) (int, bool) {
	want := st.slots[n].Recipe
	for _, m := range st.Slots() {
		if m == n || st.slots[m].Recipe != want || st.Pool.Running(m) {
			continue
		}
		if t, ok := st.Tracker.Slot(m); ok && (t.State == jobs.Empty || t.State == jobs.Passed) {
			return m, true
		}
	}
	return 0, false
}

// Scan records a barcode scanned for slot n: the serial number of the unit
// about to go in, for chips that cannot report one. The slot's next job
// takes it.
func (st *Station) Scan(n int, serial string) {
	st.mu.Lock()
	if st.scanned == nil {
		st.scanned = map[int]string{}
	}
	st.scanned[n] = serial
	st.mu.Unlock()
	st.Bus.Publish(jobs.Event{Slot: n, Kind: jobs.KindLog, Serial: serial, Text: "scanned " + serial})
}

// Start starts the job of slot n for the unit in it. serial is the scanned
// serial number for chips that have none ("" takes the slot's last scan);
// operator is who started it.
func (st *Station) Start(n int, serial, operator string) error {
	sc, ok := st.slots[n]
	if !ok {
		return fmt.Errorf("slot %d does not exist on this bench (slots: %v)", n, st.Slots())
	}
	plan := st.cfg.Plans[sc.Recipe]
	if plan == nil {
		return fmt.Errorf("slot %d has no recipe; set one in the bench file", n)
	}
	if serial == "" {
		st.mu.Lock()
		serial = st.scanned[n]
		delete(st.scanned, n)
		st.mu.Unlock()
	}
	return st.Pool.Start(st.ctx, jobs.Job{Slot: sc.Slot, Plan: plan, Revision: sc.Revision, Serial: serial, Operator: operator})
}

// Release returns a quarantined slot to service.
func (st *Station) Release(n int, by string) error {
	if _, ok := st.slots[n]; !ok {
		return fmt.Errorf("slot %d does not exist on this bench", n)
	}
	return st.Pool.Release(st.ctx, n, by)
}

// safeState drives every line of every slot to its safe state.
func (st *Station) safeState() error {
	var errs []error
	for _, n := range st.Slots() {
		if err := st.slots[n].Slot.Halt(); err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// Close interrupts every job (each records itself interrupted and powers
// its unit off), drives every slot to its safe state, and closes the
// record. It is safe to call more than once.
func (st *Station) Close() error {
	st.closeOnce.Do(func() {
		st.Pool.StopAll()
		st.Pool.Wait()
		st.cancel()
		err := st.safeState()
		if err != nil {
			st.log.Error("safe state at shutdown", "err", err)
		}
		st.closeErr = errors.Join(err, st.Store.Close())
	})
	return st.closeErr
}

func planNames(m map[string]*jobs.Plan) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}
