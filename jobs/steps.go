package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/step"
)

// handler runs one step. The runner has checked, by the step's row in
// step.Table, that the unit is in a state the step may run in: a step that
// needs the bootloader finds u.unit.target set.
type handler func(u *run, ctx context.Context, st Step) error

// handlers is the code of each step kind; step.Table says what each takes
// and needs. A new step kind is a row there and its function here.
var handlers = map[step.Kind]handler{
	step.KindEnter:     func(u *run, ctx context.Context, st Step) error { return u.enter(ctx) },
	step.KindWait:      func(u *run, ctx context.Context, st Step) error { return bootloader.Sleep(ctx, st.Within) },
	step.KindBoot:      func(u *run, ctx context.Context, st Step) error { return u.boot(ctx) },
	step.KindReset:     func(u *run, ctx context.Context, st Step) error { return u.reset(ctx) },
	step.KindBootSlot:  func(u *run, ctx context.Context, st Step) error { return u.bootSlot(ctx, st.Slot) },
	step.KindExpect:    (*run).expect,
	step.KindSend:      (*run).send,
	step.KindErase:     (*run).erase,
	step.KindWrite:     (*run).write,
	step.KindVerify:    (*run).verify,
	step.KindBackup:    (*run).backup,
	step.KindRestore:   (*run).restore,
	step.KindProvision: (*run).provision,
}

// do runs one step, if the unit's state allows it.
func (u *run) do(ctx context.Context, st Step) error {
	h := handlers[st.Kind]
	spec, ok := step.Lookup(st.Kind)
	if h == nil || !ok {
		return &Failure{Class: "recipe-error", Fault: StationFault, Reason: fmt.Sprintf("%s: unknown step %q", st.Pos, st.Kind), Hint: hintSetup}
	}
	bootSeq := len(u.plan.Boot) > 0
	if !spec.RunsIn(u.unit.state, bootSeq) {
		return &Failure{Class: "recipe-error", Fault: StationFault,
			Reason: fmt.Sprintf("%s: step %s needs %s, and the unit is %s (%s)", st.Pos, st.Label(), spec.Needing(bootSeq), u.unit.state, spec.Fix()),
			Hint:   hintSetup}
	}
	return h(u, ctx, st)
}

// flash is where writes must land: the part's flash as its bootloader
// reports it, else as the recipe says (U-Boot's storage is the recipe's).
func (u *run) flash() Region {
	if u.unit.ident.Flash.Size > 0 && u.plan.Protocol != "uboot" {
		return u.unit.ident.Flash
	}
	return u.plan.Flash
}

func (u *run) writable(r Region, what string) *Failure { return writable(u.plan, u.flash(), r, what) }

func (u *run) send(ctx context.Context, st Step) error {
	if err := u.console.Send(st.Line()); err != nil {
		return err
	}
	return u.expect(ctx, st)
}

func (u *run) expect(ctx context.Context, st Step) error {
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

func (u *run) erase(ctx context.Context, st Step) error {
	e, ok := u.unit.target.(Eraser)
	if !ok {
		return fmt.Errorf("%s: erase: %w (%s erases as it writes)", st.Pos, ErrUnsupported, u.plan.Protocol)
	}
	if st.All {
		return e.EraseAll(ctx)
	}
	if f := u.writable(st.Region, "erase"); f != nil {
		return f
	}
	return e.Erase(ctx, st.Region)
}

func (u *run) write(ctx context.Context, st Step) error {
	im := u.plan.Images[st.Image]
	if f := u.writable(im.Region(), "image "+im.Name); f != nil {
		return f
	}
	if err := u.unit.target.Write(ctx, im.Addr, im.Data, u.progress("write "+im.Name)); err != nil {
		return err
	}
	u.res.Bytes += int64(len(im.Data))
	u.written = im
	u.res.ImageSHA256, u.res.ImageVersion = u.imageHash(im), im.Version
	return nil
}

// verify reads back or hashes the image on the unit. A ROM that can do
// neither (the ESP8266's) leaves the step "written, not verified", never
// "verified": the job may then pass only through a validation that sees the
// unit boot and print the image's version, and without one it fails.
func (u *run) verify(ctx context.Context, st Step) error {
	im := u.plan.Images[st.Image]
	err := u.unit.target.Verify(ctx, im.Addr, im.Data, u.progress("verify "+im.Name))
	if err == nil || !errors.Is(err, ErrUnsupported) || u.written != im {
		return err // nothing to vouch for what this strategy did not write
	}
	if u.plan.Validate.Version == nil {
		return &Failure{Class: "cannot-verify", Fault: StationFault,
			Reason: fmt.Sprintf("%s: %s was written but this unit's bootloader cannot read it back or hash it, and the recipe has no validate.version to prove it took: %v", st.Pos, im.Name, err),
			Hint:   "add validate.version to the recipe, so the unit's own console proves the image booted", Err: err}
	}
	note := fmt.Sprintf("written, not verified (%v): the validation's version check is the proof", err)
	u.notes = append(u.notes, note)
	u.logf("verify %s: %s", im.Name, note)
	return nil
}

func (u *run) backup(ctx context.Context, st Step) error {
	rd, ok := u.unit.target.(Reader)
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
}

func (u *run) restore(ctx context.Context, st Step) error {
	b, ok := u.backups[st.Name]
	if !ok {
		return &Failure{Class: "recipe-error", Fault: StationFault, Reason: fmt.Sprintf("%s: restore %s: no backup of that name was taken in this strategy", st.Pos, st.Name), Hint: hintSetup}
	}
	if f := u.writable(Region{Start: b.addr, Size: uint32(len(b.data))}, "restore "+st.Name); f != nil {
		return f
	}
	if err := u.unit.target.Write(ctx, b.addr, b.data, u.progress("restore "+st.Name)); err != nil {
		return err
	}
	return u.unit.target.Verify(ctx, b.addr, b.data, nil)
}

func (u *run) provision(ctx context.Context, st Step) error {
	v, err := u.r.Rec.Allocate(ctx, u.res.Attempt, st.Pool)
	if err != nil {
		return &Failure{Class: "pool-error", Fault: StationFault, Reason: fmt.Sprintf("provision from pool %s: %v", st.Pool, err), Hint: hintSetup, Err: err}
	}
	data := provisionBytes(v)
	if f := u.writable(Region{Start: st.Addr, Size: uint32(len(data))}, "provision"); f != nil {
		return f
	}
	if err := u.unit.target.Write(ctx, st.Addr, data, nil); err != nil {
		return err
	}
	if err := u.unit.target.Verify(ctx, st.Addr, data, nil); err != nil {
		return err
	}
	u.logf("provisioned %s = %s", st.Pool, v)
	return nil
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

type backup struct {
	addr uint32
	data []byte
}

// emit publishes e as the slot's, stamped with the attempt, serial number
// and recipe. A step or state event lets the next progress report out at
// once (see progress).
func (u *run) emit(e Event) {
	if e.Kind == KindStep || e.Kind == KindState {
		u.progressAt = time.Time{}
	}
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

// ProgressEvery is the shortest time between two progress events of one
// slot. A step reports progress per block, hundreds of times a second; the
// values in between are dropped here, at the source, rather than delayed
// downstream, so that what is published is always the slot's latest news
// and a page showing it never lags (at most about ten updates a second per
// slot, what a touchscreen can show).
const ProgressEvery = 100 * time.Millisecond

// progress returns the Progress of one step. It publishes the step's first
// report and its last (done == total) always, and in between a report only
// when the percentage moved and ProgressEvery has passed since the slot's
// last progress event (or a step or state event came since). Only progress
// is ever dropped: state, step, log and result events go out as they come.
func (u *run) progress(step string) bootloader.Progress {
	lastPct := -1 // none published yet: the first report goes out
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := int(done * 100 / total)
		now := time.Now()
		if lastPct >= 0 && done != total &&
			(pct == lastPct || (!u.progressAt.IsZero() && now.Sub(u.progressAt) < ProgressEvery)) {
			return
		}
		lastPct = pct
		u.progressAt = now
		u.emit(Event{Kind: KindProgress, Step: step, Done: done, Total: total})
	}
}
