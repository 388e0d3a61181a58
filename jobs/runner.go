package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/gpio"
)

// Job is one attempt to bring the unit in a slot to a known-good state with
// one plan.
type Job struct {
	Slot     *Slot
	Plan     *Plan
	Revision string // the unit's hardware revision (its label, the bench), checked against the plan
	Serial   string // the unit's identity from a barcode, for chips without a unique ID
	Operator string
}

// AttemptInfo is what the record knows when an attempt starts.
type AttemptInfo struct {
	Slot          int
	SlotName      string
	Recipe        string
	RecipeVersion int
	RecipeSHA256  string
	Revision      string
	Serial        string
	Operator      string
	ImageSHA256   string
	ImageVersion  string
}

// UnitInfo is a unit as identified during an attempt.
type UnitInfo struct {
	Serial, Protocol, Chip, Revision, Model string
}

// Outcome is how a job ended.
type Outcome string

// Outcomes.
const (
	OutcomePassed      Outcome = "passed"
	OutcomeFailed      Outcome = "failed"
	OutcomeRefused     Outcome = "refused"
	OutcomeInterrupted Outcome = "interrupted"
)

// Result is how a job ended, for the record and the operator.
type Result struct {
	Attempt      int64
	Slot         int
	Serial       string
	Outcome      Outcome
	Strategy     string   // the strategy that worked, or the last one tried
	Failure      *Failure // nil on a pass
	Diagnosis    string   // why the unit was bricked, from its console before recovery
	Version      string   // the version the unit printed after recovery
	ImageSHA256  string   // the last image written
	ImageVersion string
	Bytes        int64
	Started      time.Time
	Finished     time.Time
}

// Recorder keeps the recovery record. The station adapts the database to it.
// StartAttempt, UnitIdentified, SaveBackup, Allocate and Finish must be
// durable when they return; steps and console may be batched.
type Recorder interface {
	StartAttempt(ctx context.Context, a AttemptInfo) (int64, error)
	UnitIdentified(ctx context.Context, attempt int64, u UnitInfo) error
	StartStep(ctx context.Context, attempt int64, seq int, name, strategy string) error
	EndStep(ctx context.Context, attempt int64, seq int, outcome, detail string) error
	Console(ctx context.Context, attempt int64, b []byte) error
	SaveBackup(ctx context.Context, attempt int64, name string, addr uint32, data []byte) error
	Allocate(ctx context.Context, attempt int64, pool string) (string, error)
	Finish(ctx context.Context, r *Result) error
}

// Runner runs jobs. Its fields are set once, before the first job.
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

	port       Port
	console    *Console
	target     Target
	ident      Identity
	booted     bool
	identified bool
	seq        int
	written    *Image
	backups    map[string]backup
	lastPct    map[string]int
	hashes     map[*Image]string
	notes      []string // the target's notes during the current step, for its record
}

// imageHash returns the sha256 of the bytes the image writes, computed here
// rather than trusted from the catalog: the record names what went out.
func (u *run) imageHash(im *Image) string {
	if h, ok := u.hashes[im]; ok {
		return h
	}
	sum := sha256.Sum256(im.Data)
	h := hex.EncodeToString(sum[:])
	u.hashes[im] = h
	return h
}

// firstImage returns the image the plan's first strategy writes first, or
// nil.
func (u *run) firstImage() *Image {
	for _, s := range u.plan.Strategies {
		for _, st := range s.Steps {
			if st.Kind == StepWrite && u.plan.Images[st.Image] != nil {
				return u.plan.Images[st.Image]
			}
		}
	}
	return nil
}

type backup struct {
	addr uint32
	data []byte
}

func (u *run) emit(e Event) {
	e.Slot, e.Attempt = u.slot.Num, u.res.Attempt
	if e.Serial == "" {
		e.Serial = u.res.Serial
	}
	if e.Recipe == "" {
		e.Recipe = u.plan.Recipe
	}
	if u.r.Bus != nil {
		u.r.Bus.Publish(e)
	}
}

func (u *run) logf(format string, args ...any) {
	u.emit(Event{Kind: KindLog, Text: fmt.Sprintf(format, args...)})
}

// Run runs the job to its end and returns its result, recorded. It never
// panics: a panic in a step ends the job as failed through the station's
// fault, with the slot's lines in their safe state.
func (r *Runner) Run(ctx context.Context, j Job) *Result {
	u := &run{r: r, j: j, plan: j.Plan, slot: j.Slot, backups: map[string]backup{}, lastPct: map[string]int{}, hashes: map[*Image]string{},
		res: &Result{Slot: j.Slot.Num, Started: time.Now(), Serial: j.Serial}}
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
		u.publishEnd()
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
	u.publishEnd()
	return u.res
}

func (u *run) publishEnd() {
	st := Failed
	switch u.res.Outcome {
	case OutcomePassed:
		st = Passed
	case OutcomeInterrupted:
		st = Interrupted
	}
	e := Event{Kind: KindState, State: st}
	if f := u.res.Failure; f != nil {
		e.Text, e.Class, e.Fault, e.Hint = f.Error(), f.Class, f.Fault, f.Hint
	} else {
		e.Text = fmt.Sprintf("recovered: %s v%s (%s)", u.plan.Recipe, u.res.Version, u.res.Strategy)
	}
	u.emit(e)
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
	if f := u.refusal(); f != nil {
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
		u.res.Failure = &Failure{Class: "interrupted", Fault: StationFault,
			Reason: fmt.Sprintf("stopped during %s", u.lastStep()),
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

// refusal checks everything that can be checked before touching the unit.
func (u *run) refusal() *Failure {
	p, j := u.plan, u.j
	if !p.Released && !j.Slot.Staging {
		return &Failure{Class: "recipe-draft", Fault: RefusedFault,
			Reason: fmt.Sprintf("recipe %s v%d is a draft; drafts run only on staging slots, and slot %d is not one", p.Recipe, p.Version, j.Slot.Num),
			Hint:   hintSupervisor}
	}
	if j.Revision != "" && len(p.Revisions) > 0 && !slices.Contains(p.Revisions, j.Revision) {
		return &Failure{Class: "wrong-revision", Fault: RefusedFault,
			Reason: fmt.Sprintf("recipe %s is for hardware revisions %s; this unit is revision %s", p.Recipe, strings.Join(p.Revisions, ", "), j.Revision),
			Hint:   "check the unit's label: it needs the recipe for its revision"}
	}
	if d := u.r.Drivers[p.Protocol]; d == nil {
		return &Failure{Class: "no-driver", Fault: RefusedFault,
			Reason: fmt.Sprintf("recipe %s uses protocol %q, which this station cannot speak", p.Recipe, p.Protocol), Hint: hintSupervisor}
	}
	for _, st := range u.allSteps() {
		if st.Kind != StepWrite && st.Kind != StepVerify {
			continue
		}
		im := p.Images[st.Image]
		if im == nil {
			return &Failure{Class: "image-missing", Fault: RefusedFault,
				Reason: fmt.Sprintf("%s: step %s names image %q, which the recipe does not define", st.Pos, st.Label(), st.Image), Hint: hintSupervisor}
		}
		if im.SHA256 != "" && !strings.EqualFold(im.SHA256, u.imageHash(im)) {
			return &Failure{Class: "image-hash-mismatch", Fault: RefusedFault,
				Reason: fmt.Sprintf("image %s v%s: its bytes hash to %s, but the catalog says %s: the file changed after it was catalogued", im.Name, im.Version, u.imageHash(im), im.SHA256),
				Hint:   hintSupervisor}
		}
		if im.Refusal != nil {
			f := *im.Refusal
			f.Fault = RefusedFault
			if f.Hint == "" {
				f.Hint = hintSupervisor
			}
			return &f
		}
		if j.Revision != "" && len(im.Revisions) > 0 && !slices.Contains(im.Revisions, j.Revision) {
			return &Failure{Class: "image-wrong-revision", Fault: RefusedFault,
				Reason: fmt.Sprintf("image %s v%s is built for revisions %s, not for this unit's revision %s", im.Name, im.Version, strings.Join(im.Revisions, ", "), j.Revision),
				Hint:   hintSupervisor}
		}
		if st.Kind == StepWrite {
			if f := u.writable(im.Region(), "image "+im.Name); f != nil {
				f.Fault = RefusedFault
				return f
			}
		}
	}
	for _, st := range u.allSteps() {
		var f *Failure
		switch st.Kind {
		case StepErase:
			if st.All {
				if len(p.Protected) > 0 {
					f = &Failure{Class: "protected-region", Reason: fmt.Sprintf("%s: erase all would erase the protected region %q", st.Pos, p.Protected[0].Name)}
				}
			} else {
				f = u.writable(st.Region, "erase")
			}
		case StepBackup:
			if p.Flash.Size > 0 && !st.Region.Within(p.Flash) {
				f = &Failure{Class: "outside-flash", Reason: fmt.Sprintf("%s: backup %s lies outside the flash %s", st.Pos, st.Region, p.Flash)}
			}
		case StepProvision:
			f = u.writable(Region{st.Addr, 64}, "provision")
		}
		if f != nil {
			f.Fault, f.Hint = RefusedFault, hintSupervisor
			return f
		}
	}
	return nil
}

func (u *run) allSteps() []Step {
	var out []Step
	for _, s := range u.plan.Strategies {
		out = append(out, s.Steps...)
	}
	return out
}

// writable checks that r lies in the part's flash and touches no protected
// region.
func (u *run) writable(r Region, what string) *Failure {
	p := u.plan
	flash := p.Flash
	if u.ident.Flash.Size > 0 && p.Protocol != "uboot" {
		flash = u.ident.Flash
	}
	if flash.Size > 0 && !r.Within(flash) {
		return &Failure{Class: "outside-flash", Fault: UnitFault,
			Reason: fmt.Sprintf("%s at %s falls outside the part's flash %s", what, r, flash), Hint: hintSupervisor}
	}
	for _, pr := range p.Protected {
		if r.Overlaps(pr.Region) {
			return &Failure{Class: "protected-region", Fault: UnitFault,
				Reason: fmt.Sprintf("%s at %s would touch the protected region %q (%s)", what, r, pr.Name, pr.Region), Hint: hintSupervisor}
		}
	}
	return nil
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

// observe powers the unit as it is and reads its console, to record why it
// is bricked.
func (u *run) observe(ctx context.Context) *Failure {
	d := u.r.Observe
	if d == 0 {
		d = 2 * time.Second
	}
	if v := u.plan.Options["observe"]; v != "" {
		// A board that takes long to say what is wrong (U-Boot counting
		// down its bootdelay first) asks for longer in its recipe.
		if od, err := time.ParseDuration(v); err == nil && od > 0 {
			d = od
		}
	}
	seq := u.startStep(ctx, "diagnose")
	f := u.toConsole(ctx)
	if f == nil {
		f = u.runActions(ctx, []Action{{Kind: ActSet, Role: gpio.Power, On: false}, {Kind: ActSet, Role: gpio.Boot, On: false},
			{Kind: ActWait, Wait: 20 * time.Millisecond}, {Kind: ActSet, Role: gpio.Power, On: true}})
	}
	// Read until a diagnosis rule matches, or for d.
	for end := time.Now().Add(d); f == nil && time.Now().Before(end); {
		if err := u.console.Drain(ctx, min(100*time.Millisecond, time.Until(end))); err != nil {
			f = classify("diagnose", err)
		}
		if dg, _ := u.match(u.console.Text()); dg != nil {
			break
		}
	}
	if f != nil {
		u.endStep(ctx, seq, f)
		return f
	}
	detail := "no known failure on the console"
	if dg, m := u.match(u.console.Text()); dg != nil {
		u.res.Diagnosis = fmt.Sprintf("%s: %q", dg.Class, m)
		detail = u.res.Diagnosis
		u.logf("bricked: %s", u.res.Diagnosis)
	}
	u.r.Rec.EndStep(ctx, u.res.Attempt, seq, "ok", detail)
	u.slot.set(ctx, gpio.Power, false)
	u.booted = false
	return nil
}

// match returns the first diagnosis rule matching text and what it matched.
func (u *run) match(text string) (*Diagnosis, string) {
	for i := range u.plan.Diagnose {
		d := &u.plan.Diagnose[i]
		if m := d.Pattern.FindString(text); m != "" {
			return d, m
		}
	}
	return nil, ""
}

func (u *run) strategy(ctx context.Context, s Strategy) *Failure {
	u.target, u.booted, u.written = nil, false, nil
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

// bootloaderStep reports whether a step talks to the bootloader, where a
// retry after re-entering it is right.
func bootloaderStep(k StepKind) bool {
	switch k {
	case StepEnter, StepErase, StepWrite, StepVerify, StepBackup, StepRestore, StepProvision:
		return true
	}
	return false
}

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
		}
		u.endStep(ctx, seq, f)
		if f == nil {
			return nil
		}
		if !f.Retryable() || try >= u.r.retries() || !bootloaderStep(st.Kind) {
			return f
		}
		u.logf("%s failed (%s); re-entering the bootloader to retry", st.Label(), f.Error())
		if st.Kind != StepEnter {
			if err := u.enter(ctx); err != nil {
				return classify("re-enter the bootloader", err)
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
	if v := u.plan.Options["step_timeout"]; v != "" {
		if pd, err := time.ParseDuration(v); err == nil && pd > 0 {
			d = pd
		}
	}
	if d <= 0 {
		d = 10 * time.Minute
	}
	return d + st.Within
}

// do runs one step.
func (u *run) do(ctx context.Context, st Step) error {
	p := u.plan
	switch st.Kind {
	case StepEnter:
		return u.enter(ctx)
	case StepWait:
		return bootloader.Sleep(ctx, st.Within)
	case StepBoot:
		return u.boot(ctx)
	case StepReset:
		return u.reset(ctx)
	case StepExpect:
		return u.expect(ctx, st)
	case StepSend:
		if !u.booted {
			return u.needs(st, "the unit's application (add boot before it)")
		}
		if err := u.console.Send(st.Send); err != nil {
			return err
		}
		return u.expect(ctx, st)
	}

	// The rest talk to the bootloader.
	if st.Kind == StepBootSlot {
		sb, ok := u.target.(SlotBooter)
		if u.target == nil || !ok {
			return u.needs(st, "a bootloader with A/B slots, entered (add enter before it)")
		}
		if err := sb.BootSlot(ctx, st.Slot); err != nil {
			return err
		}
		u.target = nil
		return u.toConsoleBooted(ctx)
	}
	if u.target == nil {
		return u.needs(st, "the unit in its bootloader (add enter before it)")
	}
	switch st.Kind {
	case StepErase:
		e, ok := u.target.(Eraser)
		if !ok {
			return fmt.Errorf("%s: erase: %w (%s erases as it writes)", st.Pos, ErrUnsupported, p.Protocol)
		}
		if st.All {
			return e.EraseAll(ctx)
		}
		if f := u.writable(st.Region, "erase"); f != nil {
			return f
		}
		return e.Erase(ctx, st.Region)
	case StepWrite:
		im := p.Images[st.Image]
		if f := u.writable(im.Region(), "image "+im.Name); f != nil {
			return f
		}
		if err := u.target.Write(ctx, im.Addr, im.Data, u.progress("write "+im.Name)); err != nil {
			return err
		}
		u.res.Bytes += int64(len(im.Data))
		u.written = im
		u.res.ImageSHA256, u.res.ImageVersion = u.imageHash(im), im.Version
		return nil
	case StepVerify:
		im := p.Images[st.Image]
		return u.target.Verify(ctx, im.Addr, im.Data, u.progress("verify "+im.Name))
	case StepBackup:
		rd, ok := u.target.(Reader)
		if !ok {
			return fmt.Errorf("%s: backup: %w", st.Pos, ErrUnsupported)
		}
		data, err := rd.Read(ctx, st.Region.Start, int(st.Region.Size), u.progress("backup "+st.Name))
		if err != nil {
			return err
		}
		if err := u.r.Rec.SaveBackup(ctx, u.res.Attempt, st.Name, st.Region.Start, data); err != nil {
			return &Failure{Class: "record-error", Fault: StationFault, Reason: fmt.Sprintf("backup %s could not be saved: %v", st.Name, err),
				Hint: "call a supervisor; the unit was not changed", Err: err}
		}
		u.backups[st.Name] = backup{st.Region.Start, data}
		return nil
	case StepRestore:
		b, ok := u.backups[st.Name]
		if !ok {
			return &Failure{Class: "recipe-error", Fault: StationFault, Reason: fmt.Sprintf("%s: restore %s: no backup of that name was taken in this strategy", st.Pos, st.Name), Hint: hintSetup}
		}
		if f := u.writable(Region{b.addr, uint32(len(b.data))}, "restore "+st.Name); f != nil {
			return f
		}
		if err := u.target.Write(ctx, b.addr, b.data, u.progress("restore "+st.Name)); err != nil {
			return err
		}
		return u.target.Verify(ctx, b.addr, b.data, nil)
	case StepProvision:
		v, err := u.r.Rec.Allocate(ctx, u.res.Attempt, st.Pool)
		if err != nil {
			return &Failure{Class: "pool-error", Fault: StationFault, Reason: fmt.Sprintf("provision from pool %s: %v", st.Pool, err), Hint: hintSetup, Err: err}
		}
		data := provisionBytes(v)
		if f := u.writable(Region{st.Addr, uint32(len(data))}, "provision"); f != nil {
			return f
		}
		if err := u.target.Write(ctx, st.Addr, data, nil); err != nil {
			return err
		}
		if err := u.target.Verify(ctx, st.Addr, data, nil); err != nil {
			return err
		}
		u.logf("provisioned %s = %s", st.Pool, v)
		return nil
	}
	return fmt.Errorf("%s: unknown step %q", st.Pos, st.Kind)
}

// provisionBytes lays a pool value out in flash: its text, a NUL, padded
// with 0xFF to a multiple of 4 bytes.
func provisionBytes(v string) []byte {
	b := append([]byte(v), 0)
	for len(b)%4 != 0 {
		b = append(b, 0xFF)
	}
	return b
}

func (u *run) needs(st Step, what string) error {
	return &Failure{Class: "recipe-error", Fault: StationFault,
		Reason: fmt.Sprintf("%s: step %s needs %s", st.Pos, st.Label(), what), Hint: hintSetup}
}

// progress returns a Progress that publishes at most one event a percent.
func (u *run) progress(step string) bootloader.Progress {
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := int(done * 100 / total)
		if last, ok := u.lastPct[step]; ok && pct == last && done != total {
			return
		}
		u.lastPct[step] = pct
		u.emit(Event{Kind: KindProgress, Step: step, Done: done, Total: total})
	}
}

// enter runs the entry sequence and connects to the bootloader.
func (u *run) enter(ctx context.Context) error {
	if err := u.toBootloader(); err != nil {
		return err
	}
	d := u.r.Drivers[u.plan.Protocol]
	reset := func(ctx context.Context) error {
		if f := u.runActions(ctx, u.plan.Entry); f != nil {
			return f
		}
		return nil
	}
	t, id, err := d.Connect(ctx, u.port, u.plan, reset)
	if err != nil {
		var te *bootloader.TimeoutError
		if errors.As(err, &te) {
			return &Failure{Class: "no-sync", Fault: UnitFault,
				Reason: fmt.Sprintf("the unit's bootloader did not answer: %v", err), Hint: hintNoSync, Err: err}
		}
		return err
	}
	if l, ok := t.(interface{ SetLog(func(string)) }); ok {
		// The target's notes (the link's rate, a step down) go to the log
		// and to the step's record.
		l.SetLog(func(msg string) {
			u.notes = append(u.notes, msg)
			u.logf("%s", msg)
		})
	}
	if u.plan.Chip != 0 && id.Chip != u.plan.Chip {
		return &Failure{Class: "wrong-chip", Fault: UnitFault,
			Reason: fmt.Sprintf("the unit is a %s (chip 0x%X), but recipe %s is for chip 0x%X", id.ChipName, id.Chip, u.plan.Recipe, u.plan.Chip),
			Hint:   "check the unit's label and the slot's recipe: this is another board"}
	}
	serial := id.Serial
	if serial == "" {
		serial = u.j.Serial
	}
	if serial == "" {
		return &Failure{Class: "no-identity", Fault: StationFault,
			Reason: "the unit has no serial number its bootloader can read and none was scanned",
			Hint:   "scan the unit's barcode label for this slot, then start again"}
	}
	if u.ident.Serial != "" && id.Serial != "" && id.Serial != u.ident.Serial {
		return &Failure{Class: "unit-changed", Fault: StationFault,
			Reason: fmt.Sprintf("the unit in slot %d changed during the job: it was %s, it is now %s", u.slot.Num, u.ident.Serial, id.Serial),
			Hint:   "do not swap units while a job runs; start the new unit's job"}
	}
	if !u.identified {
		u.res.Serial = serial
		err := u.r.Rec.UnitIdentified(ctx, u.res.Attempt, UnitInfo{Serial: serial, Protocol: u.plan.Protocol,
			Chip: id.ChipName, Revision: u.j.Revision, Model: u.plan.Model})
		if err != nil {
			return &Failure{Class: "record-error", Fault: StationFault, Reason: fmt.Sprintf("cannot record unit %s: %v", serial, err), Hint: hintSetup, Err: err}
		}
		u.identified = true
		u.emit(Event{Kind: KindLog, Serial: serial, Text: fmt.Sprintf("identified %s %s", id.ChipName, serial)})
	}
	u.target, u.ident, u.booted = t, id, false
	return nil
}

// toBootloader sets the port for the bootloader's protocol.
func (u *run) toBootloader() error {
	// Always: a driver may have raised the rate for the transfer
	// (CHANGE_BAUDRATE) or the console left it elsewhere.
	if bs, ok := u.port.(bootloader.BaudSetter); ok && u.plan.Port.Baud != 0 {
		return bs.SetBaud(u.plan.Port.Baud)
	}
	return nil
}

// toConsole sets the port for the application's console and drops what
// the bootloader left in it.
func (u *run) toConsole(ctx context.Context) *Failure {
	if ir, ok := u.port.(bootloader.InputResetter); ok {
		ir.ResetInputBuffer()
	}
	baud := u.plan.ConsoleBaud
	if baud == 0 {
		baud = u.plan.Port.Baud
	}
	if bs, ok := u.port.(bootloader.BaudSetter); ok && baud != 0 {
		if err := bs.SetBaud(baud); err != nil {
			return classify("console baud", err)
		}
	}
	u.console.Mark()
	return nil
}

func (u *run) toConsoleBooted(ctx context.Context) error {
	if f := u.toConsole(ctx); f != nil {
		return f
	}
	u.booted = true
	return nil
}

// boot starts the application: the plan's boot sequence, or the
// bootloader's own way out when the plan has none.
func (u *run) boot(ctx context.Context) error {
	if len(u.plan.Boot) == 0 {
		s, ok := u.target.(Starter)
		if u.target == nil || !ok {
			return &Failure{Class: "recipe-error", Fault: StationFault,
				Reason: fmt.Sprintf("recipe %s has no boot sequence and its bootloader cannot start the application by itself", u.plan.Recipe), Hint: hintSetup}
		}
		if f := u.toConsole(ctx); f != nil {
			return f
		}
		if err := s.Start(ctx); err != nil {
			return err
		}
	} else {
		if f := u.toConsole(ctx); f != nil {
			return f
		}
		if f := u.runActions(ctx, u.plan.Boot); f != nil {
			return f
		}
	}
	u.target, u.booted = nil, true
	return nil
}

// reset power-cycles the unit into its application.
func (u *run) reset(ctx context.Context) error {
	if f := u.toConsole(ctx); f != nil {
		return f
	}
	seq := []Action{{Kind: ActSet, Role: gpio.Power, On: false}, {Kind: ActSet, Role: gpio.Boot, On: false},
		{Kind: ActWait, Wait: 50 * time.Millisecond}, {Kind: ActSet, Role: gpio.Power, On: true}}
	if f := u.runActions(ctx, seq); f != nil {
		return f
	}
	u.target, u.booted = nil, true
	return nil
}

func (u *run) expect(ctx context.Context, st Step) error {
	if !u.booted {
		return u.needs(st, "the unit's application (add boot before it)")
	}
	_, err := u.console.Expect(ctx, st.Expect, st.Within)
	if err == nil {
		return nil
	}
	var ee *ExpectError
	if !errors.As(err, &ee) {
		return err
	}
	return u.diagnose(ee)
}

// diagnose turns an unmet console expectation into a failure named by the
// recipe's diagnosis rules when one matches.
func (u *run) diagnose(ee *ExpectError) *Failure {
	if d, m := u.match(u.console.textSinceMark()); d != nil {
		hint := d.Hint
		if hint == "" {
			hint = hintMoveSlot
		}
		return &Failure{Class: d.Class, Fault: UnitFault, Reason: fmt.Sprintf("%v; the console shows %q", ee, m), Hint: hint, Err: ee}
	}
	return &Failure{Class: "boot-failed", Fault: UnitFault, Reason: ee.Error(),
		Hint: "reseat the unit and start again; if it fails again, it goes to repair", Err: ee}
}

// validate checks the booted unit: the version it prints, and the recipe's
// checks.
func (u *run) validate(ctx context.Context) *Failure {
	v := u.plan.Validate
	if v.Version == nil && len(v.Checks) == 0 {
		return nil
	}
	if !u.booted {
		if err := u.boot(ctx); err != nil {
			return classify("boot", err)
		}
	}
	seq := u.startStep(ctx, "validate")
	f := u.validateBooted(ctx)
	if f == nil {
		// Keep the rest of what the unit prints for the record.
		u.console.Settle(ctx, 100*time.Millisecond, time.Second)
	}
	u.endStep(ctx, seq, f)
	return f
}

func (u *run) validateBooted(ctx context.Context) *Failure {
	v := u.plan.Validate
	if v.Version != nil {
		want := ""
		switch {
		case u.written != nil:
			want = u.written.Version
		case v.Image != "" && u.plan.Images[v.Image] != nil:
			want = u.plan.Images[v.Image].Version
		}
		within := v.Within
		if within == 0 {
			within = 10 * time.Second
		}
		// The version line may already have passed: search from the boot.
		u.console.rewind()
		m, err := u.console.Expect(ctx, v.Version, within)
		if err != nil {
			var ee *ExpectError
			if errors.As(err, &ee) {
				return u.diagnose(ee)
			}
			return classify("validate version", err)
		}
		got := ""
		if len(m) > 1 {
			got = m[1]
		}
		u.res.Version = got
		if want != "" && got != want {
			return &Failure{Class: "version-mismatch", Fault: UnitFault,
				Reason: fmt.Sprintf("the unit reports version %s after recovery, want %s", got, want),
				Hint:   "start again; if it reports the old version again, its flash did not take the image"}
		}
	}
	for _, c := range v.Checks {
		if c.Send != "" {
			if err := u.console.Send(c.Send); err != nil {
				return classify("validate", err)
			}
		}
		if err := u.expect(ctx, c); err != nil {
			f := classify("validate "+c.Label(), err)
			f.Class = "check-failed"
			return f
		}
	}
	return nil
}

// runActions runs an entry or boot sequence. A timing window whose upper end
// passed (a loaded station) fails the sequence: the unit may not have seen
// the levels it needs.
func (u *run) runActions(ctx context.Context, acts []Action) *Failure {
	last := time.Now()
	for _, a := range acts {
		switch a.Kind {
		case ActSet:
			if err := u.slot.set(ctx, a.Role, a.On); err != nil {
				return classify("set "+string(a.Role), err)
			}
		case ActWait:
			if err := bootloader.Sleep(ctx, a.Wait); err != nil {
				return classify("wait", err)
			}
			if a.Max > 0 {
				if took := time.Since(last); took > a.Max {
					return &Failure{Class: "timing-window", Fault: StationFault,
						Reason: fmt.Sprintf("%s: the wait took %v, past its window of %v-%v", a.Pos, took.Round(time.Millisecond), a.Wait, a.Max),
						Hint:   "the station is overloaded; start the unit again"}
				}
			}
		case ActPulse:
			if err := u.slot.set(ctx, a.Role, true); err != nil {
				return classify("pulse "+string(a.Role), err)
			}
			err := bootloader.Sleep(ctx, a.Wait)
			if e := u.slot.set(ctx, a.Role, false); err == nil {
				err = e
			}
			if err != nil {
				return classify("pulse "+string(a.Role), err)
			}
		case ActModem:
			ml, ok := u.port.(bootloader.ModemLines)
			if !ok || u.r.ModemReset == nil {
				return &Failure{Class: "no-modem-lines", Fault: StationFault,
					Reason: fmt.Sprintf("%s: the %s reset needs the adapter's DTR/RTS, which slot %d's port does not have", a.Pos, a.Modem, u.slot.Num),
					Hint:   "use a slot wired with GPIO lines, or an adapter with DTR/RTS"}
			}
			if err := u.r.ModemReset(ctx, ml, a.Modem); err != nil {
				return classify(a.Modem+" reset", err)
			}
		}
		last = time.Now()
	}
	return nil
}
