package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Finished is a finished attempt of a slot, as slot health needs it.
type Finished struct {
	Serial  string
	Outcome Outcome
	Fault   Fault
}

// Quarantine is a slot taken out of service: the slot or its cable is
// suspect, not the units.
type Quarantine struct {
	Slot   int
	Reason string
	Since  time.Time
}

// HealthStore keeps slot health in the record: the pool is the one place
// that decides quarantine, and this is where it is kept across restarts.
type HealthStore interface {
	// RecentFinished returns the last n passed or failed attempts of a
	// slot since it was last released from quarantine, newest first.
	RecentFinished(ctx context.Context, slot, n int) ([]Finished, error)
	Quarantine(ctx context.Context, slot int, reason string) error
	// Quarantined returns the slots in quarantine now.
	Quarantined(ctx context.Context) ([]Quarantine, error)
	// Release ends a slot's quarantine and reports whether it was in one.
	Release(ctx context.Context, slot int, by string) (bool, error)
}

// ErrQuarantined is returned by Start for a slot in quarantine.
var ErrQuarantined = errors.New("slot is quarantined")

// AnotherSlot is the words in a failure's hint that tell the operator to
// move the unit; the pool replaces them with the slot its Place hook names.
const AnotherSlot = "another slot"

// hintQuarantined is what a quarantined slot's tile says to do.
const hintQuarantined = "a supervisor must check this slot's cable and fixture, then release it"

// Pool runs one job per slot, concurrently, at most Workers at once. It is
// the one place that decides slot health: it quarantines a slot, refuses
// jobs on it, and releases it.
type Pool struct {
	Runner *Runner
	// Health, when set, quarantines a slot after Threshold failures in a
	// row on different units: the slot or its cable is suspect, not the units.
	Health    HealthStore
	Threshold int // 0 means 3
	Workers   int // 0 means no limit
	// Place, when set, names a slot where the unit of a failed job (or of
	// a slot just quarantined) can go: a free, healthy slot with the same
	// recipe. The pool asks it once per job, before it publishes how the
	// job ended, and puts its answer in the hint.
	Place func(slot int) (int, bool)
	// Done, when set, is called with each job's result after it is recorded.
	Done func(*Result)

	once    sync.Once
	sem     chan struct{}
	mu      sync.Mutex
	running map[int]context.CancelCauseFunc
	by      map[int]string // who started each running job (Job.Operator)
	wg      sync.WaitGroup
}

func (p *Pool) init() {
	p.once.Do(func() {
		if p.Workers > 0 {
			p.sem = make(chan struct{}, p.Workers)
		}
		p.running = map[int]context.CancelCauseFunc{}
		p.by = map[int]string{}
	})
}

// Start starts j in its own goroutine. It fails with ErrQuarantined if the
// slot is in quarantine, and with ErrBusy if it already runs a job. ctx
// bounds the job: cancelling it interrupts the job, which then powers its
// unit off and records itself as interrupted.
func (p *Pool) Start(ctx context.Context, j Job) error {
	p.init()
	n := j.Slot.Num
	if q, ok, err := p.Quarantined(ctx, n); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("slot %d: %w since %s (%s); a supervisor must release it", n, ErrQuarantined, q.Since.Format("15:04"), q.Reason)
	}
	p.mu.Lock()
	if _, busy := p.running[n]; busy {
		p.mu.Unlock()
		return fmt.Errorf("slot %d: %w", n, ErrBusy)
	}
	jctx, cancel := context.WithCancelCause(ctx)
	p.running[n] = cancel
	p.by[n] = j.Operator
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		free := func() {
			p.mu.Lock()
			delete(p.running, n)
			delete(p.by, n)
			p.mu.Unlock()
			cancel(nil)
		}
		if p.sem != nil {
			select {
			case p.sem <- struct{}{}:
			case <-jctx.Done():
				free()
				return
			}
		}
		res := p.Runner.attempt(jctx, j)
		reason := p.checkHealth(context.WithoutCancel(jctx), j.Slot, res)
		if p.sem != nil {
			<-p.sem
		}
		// The slot is free before the end is published and Done hears of
		// it: Done may start the slot's next job, and the placement hook
		// must not name a slot as busy because of this job.
		free()
		p.publishEnd(j.Plan, res, reason)
		if p.Done != nil {
			p.Done(res)
		}
	}()
	return nil
}

// publishEnd publishes, once, how a job ended: its state (quarantined when
// the job put its slot in quarantine) with the hint the placement hook
// completes.
func (p *Pool) publishEnd(plan *Plan, res *Result, quarantined string) {
	if p.Runner.Bus == nil {
		return
	}
	e := EndEvent(plan, res)
	move := ""
	if p.Place != nil && (quarantined != "" || strings.Contains(e.Hint, AnotherSlot)) {
		if n, ok := p.Place(res.Slot); ok {
			move = fmt.Sprintf("slot %d", n)
		}
	}
	switch {
	case quarantined != "":
		e.State, e.Text, e.Hint = Quarantined, quarantined, hintQuarantined
		if move != "" {
			e.Hint = "move the unit to " + move + "; " + hintQuarantined
		}
	case move != "":
		e.Hint = strings.Replace(e.Hint, AnotherSlot, move, 1)
	}
	p.Runner.Bus.Publish(e)
}

// Running reports whether slot n runs a job.
func (p *Pool) Running(n int) bool {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.running[n]
	return ok
}

// Operator returns who started slot n's running job (its Job.Operator), and
// whether a job runs.
func (p *Pool) Operator(n int) (string, bool) {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	by, ok := p.by[n]
	return by, ok
}

// Stop interrupts slot n's job, if any, and reports whether there was one.
func (p *Pool) Stop(n int) bool { return p.StopBy(n, "") }

// StopBy interrupts slot n's job, if any, as Stop does, and records who
// stopped it: the attempt's reason names them. It reports whether there
// was a job.
func (p *Pool) StopBy(n int, by string) bool {
	p.init()
	p.mu.Lock()
	cancel, ok := p.running[n]
	p.mu.Unlock()
	if ok {
		var cause error
		if by != "" {
			cause = &StoppedError{By: by}
		}
		cancel(cause)
	}
	return ok
}

// StoppedError is the cause of a job's end when someone stopped it.
type StoppedError struct{ By string }

func (e *StoppedError) Error() string { return "cancelled by " + e.By }

// Is makes a StoppedError match context.Canceled, as the stop it records.
func (e *StoppedError) Is(target error) bool { return target == context.Canceled }

// StopAll interrupts every job.
func (p *Pool) StopAll() {
	p.init()
	p.mu.Lock()
	for _, c := range p.running {
		c(nil)
	}
	p.mu.Unlock()
}

// Wait waits for every started job to end.
func (p *Pool) Wait() { p.wg.Wait() }

// Quarantined reports whether slot n is in quarantine, and since when and
// why.
func (p *Pool) Quarantined(ctx context.Context, n int) (Quarantine, bool, error) {
	if p.Health == nil {
		return Quarantine{}, false, nil
	}
	qs, err := p.Health.Quarantined(ctx)
	if err != nil {
		return Quarantine{}, false, err
	}
	for _, q := range qs {
		if q.Slot == n {
			return q, true, nil
		}
	}
	return Quarantine{}, false, nil
}

// Release returns a quarantined slot to service and tells its tile.
func (p *Pool) Release(ctx context.Context, n int, by string) error {
	if p.Health == nil {
		return fmt.Errorf("slot %d is not quarantined", n)
	}
	was, err := p.Health.Release(ctx, n, by)
	if err != nil {
		return err
	}
	if !was {
		return fmt.Errorf("slot %d is not quarantined", n)
	}
	if p.Runner.Bus != nil {
		p.Runner.Bus.Publish(Event{Slot: n, Kind: KindState, State: Empty, Text: "released by " + by})
	}
	return nil
}

// Restore tells the tiles of the slots in quarantine (at start-up: the
// quarantine outlives the station).
func (p *Pool) Restore(ctx context.Context) error {
	if p.Health == nil {
		return nil
	}
	qs, err := p.Health.Quarantined(ctx)
	if err != nil {
		return err
	}
	for _, q := range qs {
		if p.Runner.Bus != nil {
			p.Runner.Bus.Publish(Event{Slot: q.Slot, Kind: KindState, State: Quarantined, Text: q.Reason, Hint: hintQuarantined})
		}
	}
	return nil
}

// checkHealth quarantines the slot when its last Threshold finished attempts
// all failed, each on a different unit, and returns why ("" when it did
// not).
func (p *Pool) checkHealth(ctx context.Context, s *Slot, res *Result) string {
	if p.Health == nil || res.Outcome != OutcomeFailed {
		return ""
	}
	n := p.Threshold
	if n <= 0 {
		n = 3
	}
	recent, err := p.Health.RecentFinished(ctx, s.Num, n)
	if err != nil || len(recent) < n {
		return ""
	}
	units := map[string]bool{}
	for _, a := range recent {
		if a.Outcome != OutcomeFailed || a.Serial == "" {
			return ""
		}
		units[a.Serial] = true
	}
	if len(units) < n {
		return "" // the same unit failing again says nothing about the slot
	}
	reason := fmt.Sprintf("%d different units failed in a row in this slot", n)
	if err := p.Health.Quarantine(ctx, s.Num, reason); err != nil {
		return ""
	}
	return reason
}
