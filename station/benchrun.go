package station

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/simbench"
)

// The benchmark bench: `unbrick sim --bench N` serves device models in a
// process of their own, and a station opens them as it opens hardware (the
// ports by path through go.bug.st/serial, the lines through gpio.Remote),
// so that the station's own memory and CPU time can be measured apart from
// the models'.

// Roles of the units of a benchmark bench.
const (
	RoleMix    = "mix"    // the N units recovered at once
	RoleSingle = "single" // one unit of each kind and state of the mix, recovered alone
	RoleFlash  = "flash"  // in its bootloader, for `unbrick flash`
	RolePeer   = "peer"   // in its bootloader, for a third-party tool (stm32flash, avrdude, ...)
)

// Variants of the image a flash and peer pair writes.
const (
	VariantDense = ""     // the demo application image as built
	VariantHalf  = "half" // the same image with its middle half 0xFF (code, a blank gap, data)
)

// BenchUnit is one unit of a benchmark bench.
type BenchUnit struct {
	Slot     int            `json:"slot"`
	Role     string         `json:"role"`
	Kind     string         `json:"kind"`
	Protocol string         `json:"protocol"`
	State    simbench.State `json:"state"`
	Recipe   string         `json:"recipe,omitempty"`
	Revision string         `json:"revision,omitempty"`
	Board    string         `json:"board"`
	Label    string         `json:"label,omitempty"` // the barcode an operator scans (units without an identity)
	Link     string         `json:"link"`            // its serial port
	Power    string         `json:"power"`
	Boot     string         `json:"boot,omitempty"`
	Reset    string         `json:"reset"`
	// Image and Addr: for flash and peer units, the image file both tools
	// write and where it goes.
	Image string `json:"image,omitempty"`
	Addr  uint32 `json:"addr,omitempty"`
	// Variant says which image a flash or peer unit is for: VariantDense
	// or VariantHalf.
	Variant string `json:"variant,omitempty"`
}

// BenchManifest describes what `unbrick sim --bench` serves.
type BenchManifest struct {
	Socket string      `json:"socket"` // gpio.Remote's socket
	Fast   bool        `json:"fast"`
	Units  []BenchUnit `json:"units"`
}

// ManifestFile is where `unbrick sim --bench` writes its manifest in its
// directory.
const ManifestFile = "bench.json"

// BenchMix chooses n units the way the demo does: every kind with a
// released recipe in turn, every other U-Boot board with both slots lost.
func BenchMix(book *Book, n int) ([]SimUnit, error) {
	drivers := Drivers()
	var kinds []string
	for _, k := range simbench.Kinds() {
		if r := book.ForModel(simbench.DemoBoard(k.Name)); r != nil && r.Released() && drivers[k.Protocol] != nil {
			kinds = append(kinds, k.Name)
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("bench: no released recipe for any kind of unit")
	}
	var units []SimUnit
	for i := 1; i <= n; i++ {
		kn := kinds[(i-1)%len(kinds)]
		state := simbench.Bricked
		if kn == "uboot" && (i-1)/len(kinds)%2 == 0 {
			state = simbench.Erased
		}
		units = append(units, SimUnit{Kind: kn, Recipe: book.ForModel(simbench.DemoBoard(kn)).Name, State: state})
	}
	return units, nil
}

// BenchRunConfig says which served bench a benchmark station runs.
type BenchRunConfig struct {
	Dir      string // the directory `unbrick sim --bench` serves (its manifest, recipes)
	DataDir  string // the station's database
	Listen   string // where the page and the websocket are served
	Log      *slog.Logger
	PprofDir string // if set: cpu.pprof over the mixed run, heap.pprof while its jobs run
	// MaxOn bounds how many units switch on within 100 ms (the bench
	// supply's inrush limit); 0 means no limit.
	MaxOn int
	// Ready is called with the page's address once the station is open;
	// the run starts when it returns (the benchmark connects its
	// websocket clients there).
	Ready func(addr string) error
}

// BenchRunResult is what the station measured of itself.
type BenchRunResult struct {
	Singles    []JobTime `json:"singles"`
	Mix        []JobTime `json:"mix"`
	MixWallS   float64   `json:"mix_wall_s"`
	PeakRSSMB  float64   `json:"peak_rss_mb"`   // the station process's high-water mark (getrusage)
	MixRSSMB   float64   `json:"mix_rss_mb"`    // the highest VmRSS sampled while the mixed jobs ran
	CPUSeconds float64   `json:"cpu_seconds"`   // user+system time of the station over the mixed run
	DBRows     int64     `json:"db_rows"`       // rows the mixed run added to the record
	DBRowsPerS float64   `json:"db_rows_per_s"` // over the mixed run's wall time
	Failed     []string  `json:"failed,omitempty"`
}

// JobTime is one job's outcome and wall time, from Start to its recorded
// result.
type JobTime struct {
	Slot    int     `json:"slot"`
	Kind    string  `json:"kind"`
	State   string  `json:"state"`
	Outcome string  `json:"outcome"`
	Seconds float64 `json:"seconds"`
}

// RunBench opens a station on the bench served in cfg.Dir, recovers each
// single unit alone, then every mixed unit at once, and measures itself.
func RunBench(ctx context.Context, cfg BenchRunConfig) (*BenchRunResult, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("bench: %w (start `unbrick sim --bench N --dir %s` first)", err, cfg.Dir)
	}
	var m BenchManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", filepath.Join(cfg.Dir, ManifestFile), err)
	}
	keys, err := InstallExamples(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	book, err := LoadBook(filepath.Join(cfg.DataDir, "recipes"), keys)
	if err != nil {
		return nil, err
	}
	fb := &fixtures.Bench{File: "(benchmark bench)", Name: "benchmark", Power: fixtures.PowerLimit{MaxOn: cfg.MaxOn, Window: 100 * time.Millisecond}}
	units := map[int]BenchUnit{}
	pools := map[string]bool{}
	kinds := map[string]*simbench.Kind{}
	for _, k := range simbench.Kinds() {
		kinds[k.Name] = k
	}
	for _, u := range m.Units {
		if u.Role != RoleMix && u.Role != RoleSingle {
			continue
		}
		k := kinds[u.Kind]
		if k == nil || book.Plans[u.Recipe] == nil {
			return nil, fmt.Errorf("bench: slot %d: kind %q or recipe %q unknown to this station", u.Slot, u.Kind, u.Recipe)
		}
		lines := []fixtures.Line{{Role: gpio.Power, Name: u.Power, ActiveHigh: true}}
		if k.HasStrap {
			lines = append(lines, fixtures.Line{Role: gpio.Boot, Name: u.Boot, ActiveHigh: bool(k.Strap)})
		}
		lines = append(lines, fixtures.Line{Role: gpio.Reset, Name: u.Reset, ActiveHigh: bool(k.ResetActive)})
		fb.Slots = append(fb.Slots, &fixtures.Slot{Num: u.Slot, Name: fmt.Sprintf("slot %d", u.Slot), Port: fixtures.Port{Path: u.Link},
			Lines: lines, Options: fixtures.Options{Revision: u.Revision, Recipe: u.Recipe}})
		units[u.Slot] = u
		for _, s := range book.Plans[u.Recipe].Strategies {
			for _, st := range s.Steps {
				if st.Pool != "" {
					pools[st.Pool] = true
				}
			}
		}
	}
	var dp []db.Pool
	for name := range pools {
		dp = append(dp, db.Pool{Name: name, Format: "SN%06d", First: 1, Last: 999999})
	}
	// The one wiring point, as for `unbrick serve`: the bench is built in
	// memory and its lines belong to the models' process.
	st, err := OpenBench(ctx, BenchConfig{Bench: fb, Book: book, DataDir: cfg.DataDir, Pools: dp, Log: cfg.Log, RemoteLines: m.Socket})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	addr, stopWeb, err := st.Serve(cfg.Listen, WebOptions{})
	if err != nil {
		return nil, err
	}
	defer stopWeb()
	if cfg.Ready != nil {
		if err := cfg.Ready(addr); err != nil {
			return nil, err
		}
	}

	var mu sync.Mutex
	waiting := map[int]chan *jobs.Result{}
	st.OnDone(func(r *jobs.Result) {
		mu.Lock()
		c := waiting[r.Slot]
		mu.Unlock()
		if c != nil {
			c <- r
		}
	})
	start := func(n int) (chan *jobs.Result, error) {
		c := make(chan *jobs.Result, 1)
		mu.Lock()
		waiting[n] = c
		mu.Unlock()
		if u := units[n]; u.Label != "" {
			st.Scan(n, u.Label)
		}
		return c, st.Start(n, "", "bench")
	}
	wait := func(c chan *jobs.Result) (*jobs.Result, error) {
		select {
		case r := <-c:
			return r, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res := &BenchRunResult{}
	jt := func(r *jobs.Result, d time.Duration) JobTime {
		u := units[r.Slot]
		if r.Outcome != jobs.OutcomePassed {
			why := string(r.Outcome)
			if r.Failure != nil {
				why += ": " + r.Failure.Reason
			}
			res.Failed = append(res.Failed, fmt.Sprintf("slot %d (%s, %s): %s", r.Slot, u.Kind, u.Role, why))
		}
		return JobTime{Slot: r.Slot, Kind: u.Kind, State: string(u.State), Outcome: string(r.Outcome), Seconds: d.Seconds()}
	}
	var mix []int
	for _, n := range st.Slots() {
		u := units[n]
		if u.Role != RoleSingle {
			mix = append(mix, n)
			continue
		}
		t0 := time.Now()
		c, err := start(n)
		if err != nil {
			return nil, fmt.Errorf("bench: start slot %d: %w", n, err)
		}
		r, err := wait(c)
		if err != nil {
			return nil, err
		}
		res.Singles = append(res.Singles, jt(r, time.Since(t0)))
	}

	rows0, err := countRows(ctx, st.Store)
	if err != nil {
		return nil, err
	}
	if cfg.PprofDir != "" {
		if err := os.MkdirAll(cfg.PprofDir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.Create(filepath.Join(cfg.PprofDir, "cpu.pprof"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuTime()
	sampleDone := make(chan struct{})
	var peakMix float64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmRSSMB(); v > peakMix {
				peakMix = v
			}
			select {
			case <-t.C:
			case <-sampleDone:
				return
			}
		}
	}()
	t0 := time.Now()
	chans := map[int]chan *jobs.Result{}
	for _, n := range mix {
		c, err := start(n)
		if err != nil {
			return nil, fmt.Errorf("bench: start slot %d: %w", n, err)
		}
		chans[n] = c
	}
	type done struct {
		r *jobs.Result
		d time.Duration
	}
	all := make(chan done, len(mix))
	for _, c := range chans {
		go func() {
			if r, err := wait(c); err == nil {
				all <- done{r, time.Since(t0)}
			}
		}()
	}
	for i := range mix {
		select {
		case d := <-all:
			res.Mix = append(res.Mix, jt(d.r, d.d))
		case <-ctx.Done():
			close(sampleDone)
			sampler.Wait()
			return nil, ctx.Err()
		}
		if i == 0 && cfg.PprofDir != "" {
			// The first job done: every other one is still running.
			if err := writeHeap(filepath.Join(cfg.PprofDir, "heap.pprof")); err != nil {
				return nil, err
			}
		}
	}
	wall := time.Since(t0)
	close(sampleDone)
	sampler.Wait()
	res.MixWallS = wall.Seconds()
	res.CPUSeconds = cpuTime() - cpu0
	res.MixRSSMB = peakMix
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.PeakRSSMB = float64(ru.Maxrss) / 1024 // kilobytes on Linux
	}
	if err := st.Store.Flush(ctx); err != nil {
		return nil, err
	}
	rows1, err := countRows(ctx, st.Store)
	if err != nil {
		return nil, err
	}
	res.DBRows = rows1 - rows0
	res.DBRowsPerS = float64(res.DBRows) / wall.Seconds()
	sort.Slice(res.Mix, func(i, j int) bool { return res.Mix[i].Slot < res.Mix[j].Slot })
	return res, nil
}

// countRows counts the rows of the record's tables that jobs write.
func countRows(ctx context.Context, s *db.Store) (int64, error) {
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	rdb, err := sql.Open("sqlite3", "file:"+s.Path()+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return 0, err
	}
	defer rdb.Close()
	var total int64
	const q = `SELECT (SELECT count(*) FROM units) + (SELECT count(*) FROM attempts) + (SELECT count(*) FROM steps) +
		(SELECT count(*) FROM console) + (SELECT count(*) FROM artifacts) + (SELECT count(*) FROM allocations)`
	if err := rdb.QueryRowContext(ctx, q).Scan(&total); err != nil {
		return 0, fmt.Errorf("bench: count the record's rows: %w", err)
	}
	return total, nil
}

func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// vmRSSMB reads the process's resident set from /proc/self/statm.
func vmRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0
	}
	return float64(rss*int64(os.Getpagesize())) / (1 << 20)
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}
