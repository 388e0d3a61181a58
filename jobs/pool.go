package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Finished is a finished attempt of a slot, as slot health needs it.
type Finished struct {
	Serial  string
	Outcome Outcome
	Fault   Fault
}

// HealthStore is what slot health needs from the record.
type HealthStore interface {
	// RecentFinished returns the last n passed or failed attempts of a
	// slot since it was last released from quarantine, newest first.
	RecentFinished(ctx context.Context, slot, n int) ([]Finished, error)
	Quarantine(ctx context.Context, slot int, reason string) error
}

// Pool runs one job per slot, concurrently, at most Workers at once.
type Pool struct {
	Runner *Runner
	// Health, when set, quarantines a slot after Threshold failures in a
	// row on different units: the slot or its cable is suspect, not the units.
	Health    HealthStore
	Threshold int // 0 means 3
	Workers   int // 0 means no limit
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

// Start starts j in its own goroutine. It fails with ErrBusy if the slot
// already runs a job. ctx bounds the job: cancelling it interrupts the job,
// which then powers its unit off and records itself as interrupted.
func (p *Pool) Start(ctx context.Context, j Job) error {
	p.init()
	n := j.Slot.Num
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
		res := p.Runner.Run(jctx, j)
		p.checkHealth(context.WithoutCancel(jctx), j.Slot, res)
		if p.sem != nil {
			<-p.sem
		}
		// The slot is free before Done hears of the result: Done may start
		// the slot's next job.
		free()
		if p.Done != nil {
			p.Done(res)
		}
	}()
	return nil
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

// checkHealth quarantines the slot when its last Threshold finished attempts
// all failed, each on a different unit.
func (p *Pool) checkHealth(ctx context.Context, s *Slot, res *Result) {
	if p.Health == nil || res.Outcome != OutcomeFailed {
		return
	}
	n := p.Threshold
	if n <= 0 {
		n = 3
	}
	recent, err := p.Health.RecentFinished(ctx, s.Num, n)
	if err != nil || len(recent) < n {
		return
	}
	units := map[string]bool{}
	for _, a := range recent {
		if a.Outcome != OutcomeFailed || a.Serial == "" {
			return
		}
		units[a.Serial] = true
	}
	if len(units) < n {
		return // the same unit failing again says nothing about the slot
	}
	reason := fmt.Sprintf("%d different units failed in a row in this slot", n)
	if err := p.Health.Quarantine(ctx, s.Num, reason); err != nil {
		return
	}
	if p.Runner.Bus != nil {
		p.Runner.Bus.Publish(Event{Slot: s.Num, Kind: KindState, State: Quarantined, Text: reason,
			Hint: "a supervisor must check this slot's cable and fixture, then release it"})
	}
}

// ErrQuarantined is returned for a job on a quarantined slot.
var ErrQuarantined = errors.New("slot is quarantined")
