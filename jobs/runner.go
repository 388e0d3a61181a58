package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/step"
)

// Runner runs jobs. Its fields are set once, before the first job.
//
// A job is a strategy in labgrid's sense: the unit is a state machine
// (unit.go: off, bootloader, application, with named transitions), each
// step kind says in step.Table which state it needs, and steps.go holds
// their code. Before the unit is touched, preflight refuses what cannot
// work; observe.go reads why a unit is bricked and validates it after.
type Runner struct {
	Bus     *Bus
	Rec     Recorder
	Drivers map[string]Driver
	// Retries is how many times a bootloader step that failed in a way
	// retrying can mend (a timeout, a NACK) is repeated, each time after
	// running the entry sequence again. 0 means 2; negative means none.
	Retries int
	// Observe is how long the unit's console is read at power-on, before
	// recovery, to diagnose why it was bricked (when the plan has diagnosis
	// rules). 0 means 2 s; negative means never.
	Observe time.Duration
	// StepTimeout bounds one try of any step (see stepLimit); 0 means 10
	// minutes.
	StepTimeout time.Duration
	// ModemReset runs an adapter DTR/RTS reset sequence by name; set by
	// the station from the ESP protocol package.
	ModemReset func(ctx context.Context, lines bootloader.ModemLines, sequence string) error
}

func (r *Runner) retries() int {
	switch {
	case r.Retries < 0:
		return 0
	case r.Retries == 0:
		return 2
	}
	return r.Retries
}

// run is the state of one job.
type run struct {
	r    *Runner
	j    Job
	plan *Plan
	slot *Slot
	res  *Result

	port    Port
	console *Console
	unit    unit
	seq     int
	written *Image
	backups map[string]backup
	// progressAt is when the slot's last progress event went out; zero
	// after a step or state event, so the next report goes out at once
	// (see progress).
	progressAt time.Time
	hashes     map[*Image]string
	// notes are what the current step wants said in its record (the
	// link's rate and its steps down, a write that could not be verified
	// on the unit); endStep takes them.
	notes []string
}

// imageHash returns the sha256 of the bytes the image writes, computed here
// rather than trusted from the catalog: the record names what went out.
func (u *run) imageHash(im *Image) string {
	if h, ok := u.hashes[im]; ok {
		return h
	}
	h := hashOf(im.Data)
	u.hashes[im] = h
	return h
}

// firstImage returns the image the plan's first strategy writes first, or
// nil.
func (u *run) firstImage() *Image {
	for _, st := range u.plan.steps() {
		if st.Kind == step.KindWrite && u.plan.Images[st.Image] != nil {
			return u.plan.Images[st.Image]
		}
	}
	return nil
}

// Run runs the job to its end and returns its result, recorded and
// published (EndEvent). It never panics: a panic in a step ends the job as
// failed through the station's fault, with the slot's lines in their safe
// state.
func (r *Runner) Run(ctx context.Context, j Job) *Result {
	res := r.attempt(ctx, j)
	if r.Bus != nil {
		r.Bus.Publish(EndEvent(j.Plan, res))
	}
	return res
}

// attempt runs the job and records it, without publishing how it ended:
// the pool publishes that once, with the hint its placement hook decides.
func (r *Runner) attempt(ctx context.Context, j Job) *Result {
	u := &run{r: r, j: j, plan: j.Plan, slot: j.Slot, backups: map[string]backup{}, hashes: map[*Image]string{},
		res: &Result{Slot: j.Slot.Num, Started: time.Now(), Serial: j.Serial}, unit: unit{state: step.Off}}
	u.res.Outcome = OutcomeFailed
	u.emit(Event{Kind: KindState, State: Running, Text: "starting " + u.plan.Recipe})

	info := AttemptInfo{
		Slot: j.Slot.Num, SlotName: j.Slot.Name, Recipe: u.plan.Recipe, RecipeVersion: u.plan.Version,
		RecipeSHA256: u.plan.SHA256, Revision: j.Revision, Serial: j.Serial, Operator: j.Operator,
	}
	if im := u.firstImage(); im != nil {
		info.ImageSHA256, info.ImageVersion = u.imageHash(im), im.Version
	}
	id, err := r.Rec.StartAttempt(ctx, info)
	if err != nil {
		// Without a record, the unit is not touched: nothing may happen
		// that the record would not show.
		u.res.Failure = &Failure{Class: "record-error", Fault: StationFault,
			Reason: fmt.Sprintf("cannot start the record of this attempt: %v", err),
			Hint:   "call a supervisor: the station's database is not writable; the unit was not touched"}
		u.res.Finished = time.Now()
		return u.res
	}
	u.res.Attempt = id
	u.execute(ctx)
	u.res.Finished = time.Now()
	// The record must land even if the job's context was cancelled.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.Rec.Finish(fctx, u.res); err != nil {
		u.res.Outcome = OutcomeFailed
		u.res.Failure = &Failure{Class: "record-error", Fault: StationFault,
			Reason: fmt.Sprintf("the attempt could not be recorded: %v", err),
			Hint:   "call a supervisor: the station's database is not writable; treat the unit as not recovered"}
	}
	return u.res
}

// EndEvent is the event that tells the tiles how a job ended: its state,
// and on a failure the class, fault and hint. The pool publishes it once,
// after the placement hook has had its say about the hint.
func EndEvent(p *Plan, res *Result) Event {
	st := Failed
	switch res.Outcome {
	case OutcomePassed:
		st = Passed
	case OutcomeInterrupted:
		st = Interrupted
	}
	e := Event{Slot: res.Slot, Attempt: res.Attempt, Serial: res.Serial, Recipe: p.Recipe, Kind: KindState, State: st}
	if f := res.Failure; f != nil {
		e.Text, e.Class, e.Fault, e.Hint = f.Error(), f.Class, f.Fault, f.Hint
	} else {
		e.Text = fmt.Sprintf("recovered: %s v%s (%s)", p.Recipe, res.Version, res.Strategy)
	}
	return e
}

// execute runs the job between its record's start and end, leaving the
// slot's lines safe whatever happens.
func (u *run) execute(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			u.res.Outcome = OutcomeFailed
			u.res.Failure = &Failure{Class: "station-panic", Fault: StationFault,
				Reason: fmt.Sprintf("the station failed while running this job: %v", p),
				Hint:   "call a supervisor with the attempt number; the unit was powered off"}
			u.logf("panic: %v\n%s", p, debug.Stack())
			u.slot.Halt()
		}
	}()
	speaks := func(p string) bool { return u.r.Drivers[p] != nil }
	if f := preflight(u.plan, u.j, speaks, u.imageHash); f != nil {
		u.res.Outcome, u.res.Failure = OutcomeRefused, f
		u.logf("refused: %s", f.Reason)
		return
	}
	release, err := u.slot.Acquire(fmt.Sprintf("attempt %d", u.res.Attempt))
	if err != nil {
		u.res.Failure = &Failure{Class: "slot-busy", Fault: StationFault, Reason: err.Error(),
			Hint: "wait for the slot's job to end", Err: err}
		return
	}
	defer release()
	defer func() {
		// A job that ends, however it ends, leaves its unit powered off
		// with its strap released.
		if err := u.slot.Halt(); err != nil {
			u.logf("could not put the slot in its safe state: %v", err)
			if u.res.Failure == nil {
				u.res.Outcome = OutcomeFailed
				u.res.Failure = &Failure{Class: "line-error", Fault: StationFault, Reason: err.Error(),
					Hint: "check the slot's relay board; the unit may still be powered"}
			}
		}
		u.unit.to(step.Off, nil)
		if u.port != nil {
			u.port.Close()
		}
	}()

	f := u.openPort(ctx)
	if f == nil {
		f = u.strategies(ctx)
	}
	switch {
	case f == nil:
		u.res.Outcome = OutcomePassed
	case errors.Is(ctx.Err(), context.Canceled) || f.Class == "interrupted":
		u.res.Outcome = OutcomeInterrupted
		why := "stopped"
		if se := (*StoppedError)(nil); errors.As(context.Cause(ctx), &se) {
			why = se.Error() // who stopped it, for the record
		}
		u.res.Failure = &Failure{Class: "interrupted", Fault: StationFault,
			Reason: fmt.Sprintf("%s during %s", why, u.lastStep()),
			Hint:   "start the unit again: it was powered off before its recovery finished"}
	default:
		u.res.Failure = f
	}
}

func (u *run) lastStep() string {
	if u.seq == 0 {
		return "start-up"
	}
	return fmt.Sprintf("step %d", u.seq)
}

func (u *run) openPort(ctx context.Context) *Failure {
	if u.slot.Open == nil {
		return &Failure{Class: "port-open", Fault: StationFault, Reason: fmt.Sprintf("slot %d has no serial port", u.slot.Num), Hint: hintReseatCable}
	}
	p, err := u.slot.Open(ctx, u.plan.Port)
	if err != nil {
		return &Failure{Class: "port-open", Fault: StationFault,
			Reason: fmt.Sprintf("slot %d: cannot open its serial port: %v", u.slot.Num, err), Hint: hintReseatCable, Err: err}
	}
	u.port = p
	// Console bytes go to the record, and on the bus only to subscribers
	// that ask for them (Bus.SubscribeConsole).
	u.console = NewConsole(p, func(b []byte) {
		u.r.Rec.Console(context.WithoutCancel(ctx), u.res.Attempt, b)
		u.emit(Event{Kind: KindConsole, Text: string(b)})
	})
	return nil
}

// strategies tries the plan's strategies in order until one succeeds.
func (u *run) strategies(ctx context.Context) *Failure {
	if len(u.plan.Diagnose) > 0 && u.r.Observe >= 0 {
		if f := u.observe(ctx); f != nil {
			return f
		}
	}
	var last *Failure
	for i, s := range u.plan.Strategies {
		u.res.Strategy = s.Name
		if i > 0 {
			u.logf("strategy %s failed (%s); escalating to %s", u.plan.Strategies[i-1].Name, last.Class, s.Name)
		}
		last = u.strategy(ctx, s)
		if last == nil {
			return nil
		}
		if last.Fault != UnitFault || ctx.Err() != nil {
			return last // the station's fault or a refusal: another strategy will not help
		}
	}
	if last == nil {
		return &Failure{Class: "recipe-error", Fault: RefusedFault, Reason: fmt.Sprintf("recipe %s has no strategies", u.plan.Recipe), Hint: hintSupervisor}
	}
	return last
}

// strategy runs one strategy's steps from a unit in no known state, then
// validates the unit.
func (u *run) strategy(ctx context.Context, s Strategy) *Failure {
	u.unit.to(step.Off, nil)
	u.written = nil
	u.console.Mark()
	for _, st := range s.Steps {
		if f := u.stepWithRetries(ctx, st); f != nil {
			return f
		}
	}
	return u.validate(ctx)
}

func (u *run) startStep(ctx context.Context, label string) int {
	u.seq++
	u.r.Rec.StartStep(ctx, u.res.Attempt, u.seq, label, u.res.Strategy)
	u.emit(Event{Kind: KindStep, Step: label})
	return u.seq
}

func (u *run) endStep(ctx context.Context, seq int, f *Failure) {
	notes := strings.Join(u.notes, "; ")
	u.notes = nil
	if f == nil {
		u.r.Rec.EndStep(context.WithoutCancel(ctx), u.res.Attempt, seq, "ok", notes)
		return
	}
	detail := f.Class + ": " + f.Error()
	if notes != "" {
		detail += " (" + notes + ")"
	}
	u.r.Rec.EndStep(context.WithoutCancel(ctx), u.res.Attempt, seq, "failed", detail)
}

// stepWithRetries runs a step; one that talks to the bootloader (its row
// in step.Table says Retry) and failed in a way retrying mends runs again
// after the bootloader is entered again.
func (u *run) stepWithRetries(ctx context.Context, st Step) *Failure {
	for try := 0; ; try++ {
		label := st.Label()
		if try > 0 {
			label = fmt.Sprintf("%s (retry %d)", label, try)
		}
		seq := u.startStep(ctx, label)
		var f *Failure
		limit := u.stepLimit(st)
		sctx, cancel := context.WithTimeout(ctx, limit)
		err := u.do(sctx, st)
		timedOut := errors.Is(sctx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil {
			f = classify(st.Label(), err)
			switch {
			case ctx.Err() != nil:
				f = &Failure{Class: "interrupted", Fault: StationFault, Reason: "stopped by the station", Err: ctx.Err()}
			case timedOut:
				// The step's own time ran out: a unit that stops answering
				// in a way no protocol deadline caught.
				f = &Failure{Class: "timeout", Fault: UnitFault,
					Reason: fmt.Sprintf("%s: the step did not end within %v (%v)", st.Label(), limit, err), Hint: hintNoSync, Err: err}
			}
			f = blame(u.port, f)
		}
		u.endStep(ctx, seq, f)
		if f == nil {
			return nil
		}
		if !f.Retryable() || try >= u.r.retries() || !st.Spec().Retry {
			return f
		}
		u.logf("%s failed (%s); re-entering the bootloader to retry", st.Label(), f.Error())
		if st.Kind != step.KindEnter {
			if err := u.enter(ctx); err != nil {
				return blame(u.port, classify("re-enter the bootloader", err))
			}
		}
	}
}

// stepLimit is how long one try of a step may take: the recipe's
// step_timeout option, or Runner.StepTimeout, or 10 minutes (a 16 MiB ESP
// flash at 115200 takes about 25); an expect or wait step gets its own
// window on top.
func (u *run) stepLimit(st Step) time.Duration {
	d := u.r.StepTimeout
	if pd := u.plan.Options.duration("step_timeout"); pd > 0 {
		d = pd
	}
	if d <= 0 {
		d = 10 * time.Minute
	}
	return d + st.Within
}
