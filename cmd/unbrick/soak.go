package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"github.com/unbrick/unbrick/step"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/station"
)

// soakKinds are the kinds of unit the soak runs: those whose model can say
// what its flash holds (sim.Flash), for the no-false-pass invariant.
var soakKinds = []string{"stm32f103", "stm32f407", "atmega328p", "esp32", "esp8266"}

// runSoak runs the station round after round on a virtual bench whose units
// carry random injected faults, checks every attempt's end against what the
// unit really holds, and then kills the station with SIGKILL at random
// moments and checks the record after each restart.
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("soak", "[--units N] [--duration D] [--kills N] [--data DIR]", stderr)
	units := fs.Int("units", 32, "units on the bench, one per slot")
	duration := fs.Duration("duration", 2*time.Minute, "how long the fault rounds run (a round in progress finishes)")
	kills := fs.Int("kills", 20, "how many times the crash phase kills the station with SIGKILL")
	data := fs.String("data", "", "the data directory (default: a new temporary one, removed at the end)")
	faultRate := fs.Float64("fault-rate", 0.6, "the share of units that carry an injected fault in a round")
	fast := fs.Bool("fast", false, "do not pace bytes at the baud rate")
	seed := fs.Uint64("seed", 0, "the random seed (0: from the clock); the summary prints it")
	child := fs.Bool("child", false, "internal: run rounds until killed, for the crash phase")
	hang := fs.Duration("hang", 5*time.Minute, "an attempt not ended after this long counts as a hang")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	dir := *data
	if dir == "" {
		d, err := os.MkdirTemp("", "unbrick-soak")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	s := &soak{dir: dir, units: *units, rate: *faultRate, fast: *fast, hang: *hang,
		rng: rand.New(rand.NewPCG(*seed, 1)), out: stdout, byClass: map[string]int{}, byFault: map[string]int{}}
	if *child {
		return s.child(ctx)
	}
	fmt.Fprintf(stdout, "unbrick soak: %d units, faults on %.0f%% of them, rounds for %v, then %d kills; seed %d; data %s\n",
		*units, *faultRate*100, *duration, *kills, *seed, dir)
	err := s.rounds(ctx, filepath.Join(dir, "rounds"), *duration)
	s.summary()
	if err != nil {
		return err
	}
	if *kills > 0 {
		if err := s.crashes(ctx, filepath.Join(dir, "crash"), *kills, *seed); err != nil {
			return fmt.Errorf("crash safety: %w", err)
		}
	}
	if s.falsePasses > 0 || s.hangs > 0 || s.unnamed > 0 {
		return fmt.Errorf("soak failed: %d false passes, %d hangs, %d failures without a class", s.falsePasses, s.hangs, s.unnamed)
	}
	// Flat: after the first round, nothing more may pile up than noise.
	if s.rounds_ > 1 && (s.goEnd > s.goStart+8 || s.heapEnd > 2*s.heapStart+16<<20) {
		return fmt.Errorf("soak failed: resources grow: goroutines %d -> %d, heap %d -> %d MiB", s.goStart, s.goEnd, s.heapStart>>20, s.heapEnd>>20)
	}
	return nil
}

type soak struct {
	dir   string
	units int
	rate  float64
	fast  bool
	hang  time.Duration
	rng   *rand.Rand
	out   io.Writer

	attempts, passed, failed, interrupted, refused int
	falsePasses, hangs, unnamed                    int
	misblamed, unfaultedFails                      int
	byClass, byFault                               map[string]int
	problems                                       []string
	rounds_                                        int
	peakHeap                                       uint64
	goStart, goEnd                                 int
	heapStart, heapEnd                             uint64
}

// bench is one station over a virtual bench of the soak's kinds.
type soakBench struct {
	d     *station.Demo
	book  *station.Book
	units []station.SimUnit
	fault map[int]sim.Faults
	done  chan *jobs.Result
}

func (s *soak) open(dir string) (*soakBench, error) {
	keys, err := station.InstallExamples(dir)
	if err != nil {
		return nil, err
	}
	book, err := station.LoadBook(filepath.Join(dir, "recipes"), keys)
	if err != nil {
		return nil, err
	}
	var us []station.SimUnit
	for i := 0; i < s.units; i++ {
		k := soakKinds[i%len(soakKinds)]
		r := book.ForModel(simbench.DemoBoard(k))
		if r == nil {
			return nil, fmt.Errorf("soak: no recipe for %s units", k)
		}
		us = append(us, station.SimUnit{Kind: k, Recipe: r.Name, State: simbench.Bricked})
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A staging bench: the draft recipes (ESP8266) run too.
	d, err := station.NewSimStation(station.DemoConfig{Dir: dir, Units: s.units, Fast: s.fast, Log: log}, book, us, true)
	if err != nil {
		return nil, err
	}
	b := &soakBench{d: d, book: book, units: us, fault: map[int]sim.Faults{}, done: make(chan *jobs.Result, s.units)}
	d.OnDone(func(r *jobs.Result) { b.done <- r })
	return b, nil
}

// pickFaults chooses a unit's fault for a round: none, or one of the
// injected kinds with random parameters fit for the unit's kind.
func (s *soak) pickFaults(kind string, imgAddr uint32, imgLen int) sim.Faults {
	f := sim.Faults{Seed: s.rng.Uint64()}
	if s.rng.Float64() >= s.rate {
		return f
	}
	choices := []string{"ber", "drop", "stop", "adapter-silent", "brownout", "slow-erase", "bad-page", "wrong-version", "flap"}
	if strings.HasPrefix(kind, "stm32") || strings.HasPrefix(kind, "esp") {
		choices = append(choices, "nack")
	}
	switch choices[s.rng.IntN(len(choices))] {
	case "ber":
		f.BitErrors = 1e-5 * float64(1+s.rng.IntN(10))
	case "drop":
		f.Drops = 1e-5 * float64(1+s.rng.IntN(10))
	case "stop":
		f.StopAfter = 200 + s.rng.IntN(imgLen)
	case "adapter-silent":
		f.AdapterSilent = true
	case "brownout":
		f.Brownout = int64(1 + s.rng.IntN(imgLen))
	case "slow-erase":
		f.SlowErase = time.Duration(1+s.rng.IntN(50)) * time.Millisecond
	case "bad-page":
		f.BadPage, f.HasBadPage = imgAddr+uint32(s.rng.IntN(imgLen)), true
	case "wrong-version":
		f.WrongVersion = "0.0.1"
	case "flap":
		f.Flap, f.FlapAfter = time.Duration(200+s.rng.IntN(1500))*time.Millisecond, s.rng.IntN(imgLen)
	case "nack":
		f.NACKs = 1 + s.rng.IntN(1000)
	}
	return f
}

// refill puts a new bricked unit with new faults in every slot.
func (s *soakBench) refill(so *soak) error {
	for i, su := range s.units {
		n := i + 1
		s.d.Bench.Remove(n)
		plan := s.book.Plans[su.Recipe]
		im := firstImage(plan)
		k, _ := s.d.Bench.Kind(su.Kind)
		f := so.pickFaults(su.Kind, im.Addr, len(im.Data))
		rev := "A"
		if len(plan.Revisions) > 0 {
			rev = plan.Revisions[0]
		}
		board := plan.Model
		if board == "" {
			board = simbench.DemoBoard(su.Kind)
		}
		spec := simbench.Spec{Slot: n, Kind: su.Kind, Board: board, Revision: rev, State: simbench.Bricked,
			Version: "1.0.0", Seed: so.rng.Uint64(), Fast: so.fast, Faults: f}
		u, err := s.d.Bench.Add(spec)
		if err != nil {
			return err
		}
		s.fault[n] = f
		if k.Label != nil {
			s.d.Scan(n, k.Label(spec))
		}
		if err := u.Plug(); err != nil {
			return err
		}
	}
	return nil
}

func firstImage(p *jobs.Plan) *jobs.Image {
	for _, st := range p.Strategies {
		for _, s := range st.Steps {
			if s.Kind == step.KindWrite && p.Images[s.Image] != nil {
				return p.Images[s.Image]
			}
		}
	}
	for _, im := range p.Images {
		return im
	}
	return &jobs.Image{}
}

// startAll starts every slot's job, releasing a slot the faults got
// quarantined (the soak plays the supervisor).
func (s *soakBench) startAll() error {
	for _, n := range s.d.Slots() {
		err := s.d.Start(n, "", "soak")
		if errors.Is(err, jobs.ErrQuarantined) {
			if err := s.d.Release(n, "soak"); err != nil {
				return err
			}
			err = s.d.Start(n, "", "soak")
		}
		if err != nil {
			return fmt.Errorf("slot %d: %w", n, err)
		}
	}
	return nil
}

// rounds runs fault rounds for d.
func (s *soak) rounds(ctx context.Context, dir string, d time.Duration) error {
	b, err := s.open(dir)
	if err != nil {
		return err
	}
	defer b.d.Close()
	stopSampling := s.sampleHeap()
	defer stopSampling()
	end := time.Now().Add(d)
	for round := 1; ctx.Err() == nil && (round == 1 || time.Now().Before(end)); round++ {
		if err := b.refill(s); err != nil {
			return err
		}
		if err := b.startAll(); err != nil {
			return err
		}
		results := map[int]*jobs.Result{}
		deadline := time.After(s.hang)
	wait:
		for len(results) < s.units {
			select {
			case r := <-b.done:
				results[r.Slot] = r
			case <-deadline:
				for _, n := range b.d.Slots() {
					if results[n] == nil {
						s.hangs++
						s.problems = append(s.problems, fmt.Sprintf("round %d slot %d: no end after %v (faults %q)", round, n, s.hang, b.fault[n]))
					}
				}
				break wait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for n, r := range results {
			s.judge(ctx, b, round, n, r)
		}
		s.rounds_ = round
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if round == 1 {
			s.goStart, s.heapStart = runtime.NumGoroutine(), ms.HeapAlloc
		}
		s.goEnd, s.heapEnd = runtime.NumGoroutine(), ms.HeapAlloc
		fmt.Fprintf(s.out, "round %d: %d attempts so far, %d passed, %d failed, %d interrupted, %d false passes, %d hangs; %d goroutines, heap %d MiB\n",
			round, s.attempts, s.passed, s.failed, s.interrupted, s.falsePasses, s.hangs, s.goEnd, ms.HeapAlloc>>20)
		if s.hangs > 0 {
			break
		}
	}
	return nil
}

func (s *soak) sampleHeap() func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > s.peakHeap {
				s.peakHeap = ms.HeapAlloc
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// judge counts one attempt and checks the invariant: a pass means the
// unit's flash holds the image written, the unit booted its application
// last, and it printed the image's version (and no injected wrong one).
func (s *soak) judge(ctx context.Context, b *soakBench, round, n int, r *jobs.Result) {
	s.attempts++
	f := b.fault[n]
	switch r.Outcome {
	case jobs.OutcomePassed:
		s.passed++
		if why := s.falsePass(ctx, b, n, r); why != "" {
			s.falsePasses++
			s.problems = append(s.problems, fmt.Sprintf("round %d slot %d: FALSE PASS (faults %q): %s", round, n, f, why))
		}
		return
	case jobs.OutcomeInterrupted:
		s.interrupted++
	case jobs.OutcomeRefused:
		s.refused++
	default:
		s.failed++
	}
	if r.Failure == nil || r.Failure.Class == "" || r.Failure.Class == "unclassified" {
		s.unnamed++
		s.problems = append(s.problems, fmt.Sprintf("round %d slot %d: %s without a named class (faults %q): %v", round, n, r.Outcome, f, r.Failure))
		return
	}
	s.byClass[r.Failure.Class]++
	s.byFault[string(r.Failure.Fault)]++
	switch {
	case f.AdapterSilent && r.Failure.Fault != jobs.StationFault:
		// The side is known: the adapter went silent.
		s.misblamed++
		s.problems = append(s.problems, fmt.Sprintf("round %d slot %d: a silent adapter counted against the %s (%s)", round, n, r.Failure.Fault, r.Failure.Class))
	case f.Zero() && r.Outcome == jobs.OutcomeFailed:
		s.unfaultedFails++
		s.problems = append(s.problems, fmt.Sprintf("round %d slot %d: failed without an injected fault: %s (%s): %s", round, n, r.Failure.Class, r.Failure.Fault, r.Failure.Reason))
	}
}

func (s *soak) falsePass(ctx context.Context, b *soakBench, n int, r *jobs.Result) string {
	u, ok := b.d.Bench.Unit(n)
	if !ok {
		return "the unit is gone"
	}
	plan := b.book.Plans[b.units[n-1].Recipe]
	var im *jobs.Image
	for _, c := range plan.Images {
		if sum := sha256.Sum256(c.Data); fmt.Sprintf("%x", sum) == r.ImageSHA256 {
			im = c
		}
	}
	if im == nil {
		return fmt.Sprintf("the result names image %.12s, which the recipe does not have", r.ImageSHA256)
	}
	fl, ok := u.Model.(interface{ Flash() *sim.Flash })
	if !ok {
		return "the model cannot show its flash"
	}
	got, err := fl.Flash().Read(im.Addr, len(im.Data))
	if err != nil {
		return err.Error()
	}
	if !reflect.DeepEqual(got, im.Data) {
		return fmt.Sprintf("the unit's flash does not hold image %s v%s", im.Name, im.Version)
	}
	boots := u.Device.Boots()
	if len(boots) == 0 || boots[len(boots)-1].Strap {
		return "the unit's last start was not its application"
	}
	if w := b.fault[n].WrongVersion; w != "" {
		return fmt.Sprintf("the unit printed version %s, not %s", w, im.Version)
	}
	if r.Version != im.Version {
		return fmt.Sprintf("the result says version %q, the image is %s", r.Version, im.Version)
	}
	console, err := b.d.Store.Console(ctx, r.Attempt)
	if err != nil {
		return err.Error()
	}
	if !strings.Contains(console, "firmware v"+im.Version) {
		return fmt.Sprintf("the console never shows firmware v%s", im.Version)
	}
	return ""
}

func (s *soak) summary() {
	w := s.out
	fmt.Fprintf(w, "\nunbrick soak: %d rounds\n", s.rounds_)
	fmt.Fprintf(w, "  attempts     %d\n  passed       %d\n  failed       %d\n  refused      %d\n  interrupted  %d\n", s.attempts, s.passed, s.failed, s.refused, s.interrupted)
	var classes []string
	for c := range s.byClass {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool { return s.byClass[classes[i]] > s.byClass[classes[j]] })
	for _, c := range classes {
		fmt.Fprintf(w, "    %-20s %d\n", c, s.byClass[c])
	}
	fmt.Fprintf(w, "  by fault     unit %d, station %d, refused %d\n", s.byFault["unit"], s.byFault["station"], s.byFault["refused"])
	fmt.Fprintf(w, "  false passes %d\n  hangs        %d\n  unnamed      %d\n", s.falsePasses, s.hangs, s.unnamed)
	fmt.Fprintf(w, "  misblamed    %d (silent adapters counted against the unit)\n  failed without a fault %d\n", s.misblamed, s.unfaultedFails)
	fmt.Fprintf(w, "  peak heap    %d MiB (after round 1: %d MiB, after the last: %d MiB)\n", s.peakHeap>>20, s.heapStart>>20, s.heapEnd>>20)
	fmt.Fprintf(w, "  goroutines   %d after round 1, %d after the last\n", s.goStart, s.goEnd)
	for _, p := range s.problems {
		fmt.Fprintln(w, "  !", p)
	}
}

// child runs rounds until its context ends or it is killed, printing
// "ready" once the station is open (the previous station's unfinished
// attempts are marked interrupted by then).
func (s *soak) child(ctx context.Context) error {
	b, err := s.open(s.dir)
	if err != nil {
		return err
	}
	defer b.d.Close()
	fmt.Fprintln(s.out, "ready")
	for ctx.Err() == nil {
		if err := b.refill(s); err != nil {
			return err
		}
		if err := b.startAll(); err != nil {
			return err
		}
		for range s.units {
			select {
			case <-b.done:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// crashState is what the record held when the station was killed.
type crashState struct {
	finished map[int64]db.Attempt
	running  map[int64]string // last step
}

func readRecord(path string) (crashState, error) {
	cs := crashState{finished: map[int64]db.Attempt{}, running: map[int64]string{}}
	st, err := db.Open(path)
	if err != nil {
		return cs, err
	}
	defer st.Close()
	as, err := st.Attempts(context.Background(), db.Filter{})
	if err != nil {
		return cs, err
	}
	for _, a := range as {
		if a.Outcome == db.Running {
			cs.running[a.ID] = a.LastStep
		} else {
			cs.finished[a.ID] = a
		}
	}
	return cs, nil
}

// crashes kills a station child with SIGKILL at random moments n times,
// restarting it on the same data each time, and checks the record.
func (s *soak) crashes(ctx context.Context, dir string, n int, seed uint64) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "unbrick.db")
	units := min(s.units, 8)
	start := func(i int) (*exec.Cmd, error) {
		args := []string{"soak", "--child", "--data", dir, "--units", fmt.Sprint(units), "--seed", fmt.Sprint(seed + uint64(i)),
			"--fault-rate", fmt.Sprint(s.rate)}
		if s.fast {
			args = append(args, "--fast")
		}
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Stderr = io.Discard
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ok := false
			for sc.Scan() {
				if !ok && sc.Text() == "ready" {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Wait()
				return nil, fmt.Errorf("the station did not start (run %d)", i)
			}
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("the station did not start within 2 minutes (run %d)", i)
		}
		return cmd, nil
	}
	var before crashState
	checked := 0
	for i := 0; i <= n; i++ {
		cmd, err := start(i)
		if err != nil {
			return err
		}
		if i > 0 {
			// The new station is open: check what it made of the record.
			if err := checkAfterCrash(path, before); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return fmt.Errorf("after kill %d: %w", i, err)
			}
			checked++
		}
		if i == n {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			break
		}
		wait := time.Duration(500+s.rng.IntN(6000)) * time.Millisecond
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			cmd.Process.Kill()
			cmd.Wait()
			return ctx.Err()
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if before, err = readRecord(path); err != nil {
			return fmt.Errorf("after kill %d: read the record: %w", i+1, err)
		}
		fmt.Fprintf(s.out, "kill %2d after %v: %d attempts finished, %d left running\n", i+1, wait.Round(time.Millisecond), len(before.finished), len(before.running))
	}
	committed, err := committedValues(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "crash safety: %d pool values committed to units over the runs\n", committed)
	fmt.Fprintf(s.out, "crash safety: %d kills, each restart found the record intact (integrity_check ok, finished attempts unchanged, unfinished ones interrupted at their last step, no pool number handed out twice)\n", checked)
	return nil
}

// checkAfterCrash checks the record after a restart against what the
// killed station left.
func checkAfterCrash(path string, before crashState) error {
	st, err := db.Open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.IntegrityCheck(ctx); err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	for id, was := range before.finished {
		now, err := st.Attempt(ctx, id)
		if err != nil {
			return fmt.Errorf("finished attempt %d lost: %w", id, err)
		}
		if now.Outcome != was.Outcome || now.Class != was.Class || now.Fault != was.Fault || !now.Finished.Equal(was.Finished) ||
			now.LastStep != was.LastStep || now.Serial != was.Serial || now.ImageSHA256 != was.ImageSHA256 {
			return fmt.Errorf("finished attempt %d changed: was %s %s at %q, now %s %s at %q", id, was.Outcome, was.Class, was.LastStep, now.Outcome, now.Class, now.LastStep)
		}
	}
	for id, last := range before.running {
		now, err := st.Attempt(ctx, id)
		if err != nil {
			return fmt.Errorf("attempt %d left running is lost: %w", id, err)
		}
		if now.Outcome != db.Interrupted || now.LastStep != last {
			return fmt.Errorf("attempt %d left running at %q is now %s at %q, want interrupted at its last step", id, last, now.Outcome, now.LastStep)
		}
	}
	return checkPools(path)
}

// checkPools fails if a pool number is held by two allocations at once, or
// was committed to two units.
func checkPools(path string) error {
	conn, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.Query(`SELECT pool, number, COUNT(*) FROM allocations WHERE state IN ('reserved', 'committed') GROUP BY pool, number HAVING COUNT(*) > 1`)
	if err != nil {
		return fmt.Errorf("pools: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		var pool string
		var num, c int64
		if err := rows.Scan(&pool, &num, &c); err != nil {
			return err
		}
		return fmt.Errorf("pool %s number %d is held by %d allocations", pool, num, c)
	}
	return rows.Err()
}

// committedValues counts the pool values committed to units.
func committedValues(path string) (int, error) {
	conn, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n int
	err = conn.QueryRow(`SELECT COUNT(*) FROM allocations WHERE state = 'committed'`).Scan(&n)
	return n, err
}
