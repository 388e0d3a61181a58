package jobs

import (
	"bytes"
	"context"
	"github.com/unbrick/unbrick/step"
	"regexp"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// stm32Bench is one STM32F103 unit wired to a slot: power relay, BOOT0 on
// the strap line, NRST on the reset line.
type stm32Bench struct {
	bank   *gpiosim.Bank
	model  *stm32sim.Model
	dev    *sim.Device
	host   *sim.PipeHost
	devEnd *sim.PipeDevice
	slot   *Slot
}

func newSTM32Bench(t *testing.T, image []byte) *stm32Bench {
	t.Helper()
	return newSTM32BenchPart(t, "stm32f103", image)
}

func newSTM32BenchPart(t *testing.T, part string, image []byte) *stm32Bench {
	t.Helper()
	return newSTM32BenchOpts(t, part, stm32sim.Options{Board: "sensor-b", Seed: 7, Image: image})
}

func newSTM32BenchOpts(t *testing.T, part string, o stm32sim.Options) *stm32Bench {
	t.Helper()
	b := &stm32Bench{bank: gpiosim.NewBank()}
	m, err := stm32sim.New(part, o)
	if err != nil {
		t.Fatal(err)
	}
	b.model = m
	b.host, b.devEnd = sim.Pipe()
	line := sim.NewLine(stm32sim.LineConfig())
	line.Attach(b.devEnd)
	b.dev = sim.NewDevice("stm32", m, line)
	power := b.bank.MustPin("sim:slot2.power")
	boot := b.bank.MustPin("sim:slot2.boot")
	reset := b.bank.MustPin("sim:slot2.reset")
	power.Listen(func(l pgpio.Level) { b.dev.SetPower(l == pgpio.High) })
	boot.Listen(func(l pgpio.Level) { b.dev.SetBoot(l == pgpio.High) })
	reset.Listen(func(l pgpio.Level) { b.dev.SetReset(l == pgpio.Low) })
	b.slot = &Slot{Num: 2, Name: "slot 2",
		Lines: map[gpio.Role]*gpio.Line{
			gpio.Power: gpio.NewLine("sim:slot2.power", gpio.Power, pgpio.High, power),
			gpio.Boot:  gpio.NewLine("sim:slot2.boot", gpio.Boot, pgpio.High, boot),
			gpio.Reset: gpio.NewLine("sim:slot2.reset", gpio.Reset, pgpio.Low, reset),
		},
		Open: func(ctx context.Context, m Mode) (Port, error) {
			b.host.SetBaud(m.Baud)
			if err := b.host.SetParity(m.Parity); err != nil {
				return nil, err
			}
			return pipePort{b.host}, nil
		},
	}
	t.Cleanup(b.dev.Close)
	return b
}

func stm32Image(t *testing.T, version string) []byte {
	t.Helper()
	img, err := stm32sim.AppImage("stm32f103", version, "sensor-b", 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// stm32Plan is the walking skeleton's recipe: power off, strap BOOT0, power
// on into the ROM; erase, write, verify; release the strap and reset; the
// banner must carry the new version.
func stm32Plan(t *testing.T, version string) *Plan {
	t.Helper()
	return &Plan{
		Recipe: "sensor-b-f103", Version: 1, Protocol: "stm32", Released: true, Chip: 0x410,
		Port: Mode{Baud: 115200, Parity: "even"}, ConsoleBaud: 115200,
		Flash:  Region{Start: 0x08000000, Size: 64 << 10},
		Images: map[string]*Image{"app": {Name: "app", Version: version, Addr: 0x08000000, Data: stm32Image(t, version)}},
		Entry: []Action{
			{Kind: ActSet, Role: gpio.Power, On: false},
			{Kind: ActSet, Role: gpio.Boot, On: true},
			{Kind: ActWait, Wait: 50 * time.Millisecond},
			{Kind: ActSet, Role: gpio.Power, On: true},
			{Kind: ActWait, Wait: 20 * time.Millisecond},
		},
		Boot: []Action{
			{Kind: ActSet, Role: gpio.Boot, On: false},
			{Kind: ActPulse, Role: gpio.Reset, Wait: 10 * time.Millisecond},
		},
		Strategies: []Strategy{{Name: "reflash", Steps: []Step{
			{Kind: step.KindEnter},
			{Kind: step.KindErase, Region: Region{Start: 0x08000000, Size: 8 << 10}},
			{Kind: step.KindWrite, Image: "app"},
			{Kind: step.KindVerify, Image: "app"},
			{Kind: step.KindBoot},
		}}},
		Diagnose: []Diagnosis{{Pattern: regexp.MustCompile(`bad image checksum|no application image|no valid image`), Class: "image-corrupt"}},
		Validate: Validation{Version: regexp.MustCompile(`firmware v(\S+)`), Within: 5 * time.Second},
	}
}

func stm32Runner(rec Recorder) *Runner {
	return &Runner{Rec: rec, Drivers: map[string]Driver{"stm32": STM32{}}}
}

func TestSTM32RecoversABrickedUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := stm32Image(t, "1.0.0")
		for i := len(old) / 2; i < len(old); i++ {
			old[i] = 0xFF
		}
		b := newSTM32Bench(t, old)
		rec := &memRecorder{}
		res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: stm32Plan(t, "2.1.0"), Revision: "B"})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
		}
		if res.Serial != b.model.Serial() || res.Version != "2.1.0" {
			t.Errorf("Run() serial %q version %q, want %q 2.1.0", res.Serial, res.Version, b.model.Serial())
		}
		if res.Diagnosis == "" {
			t.Error("the bricked unit's console was not diagnosed")
		}
		got, _ := b.model.Flash().Read(0x08000000, 8<<10)
		if !bytes.Equal(got, stm32Image(t, "2.1.0")) {
			t.Error("flash does not hold the new image")
		}
		if b.dev.Powered() || b.slot.Lines[gpio.Boot].Asserted() {
			t.Error("the job did not leave the unit off with its strap released")
		}
	})
}

// TestSTM32Failures: each fault ends in a failed attempt with its class and
// a reason, never a pass.
func TestSTM32Failures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(b *stm32Bench, p *Plan, r *Runner)
		class string
		fault Fault
	}{
		{
			name: "writing without erasing",
			setup: func(b *stm32Bench, p *Plan, r *Runner) {
				if err := b.model.LoadApp(stm32Image(t, "1.0.0")); err != nil {
					t.Fatal(err)
				}
				p.Strategies[0].Steps = append(p.Strategies[0].Steps[:1], p.Strategies[0].Steps[2:]...)
			},
			class: "verify-mismatch", fault: UnitFault,
		},
		{
			name:  "flash that NACKs every write",
			setup: func(b *stm32Bench, p *Plan, r *Runner) { b.model.SetFaults(stm32sim.Faults{NACKWrites: 1000}) },
			class: "nack", fault: UnitFault,
		},
		{
			// A hang clears at the next reset, and the runner's retry
			// re-enters the bootloader; without retries the timeout stands.
			name: "unit that stops answering",
			setup: func(b *stm32Bench, p *Plan, r *Runner) {
				b.model.SetFaults(stm32sim.Faults{HangAfter: 3000})
				r.Retries = -1
			},
			class: "timeout", fault: UnitFault,
		},
		{
			name:  "wrong chip",
			setup: func(b *stm32Bench, p *Plan, r *Runner) { p.Chip = 0x413 },
			class: "wrong-chip", fault: UnitFault,
		},
		{
			name:  "a rate ST does not document for the ROM",
			setup: func(b *stm32Bench, p *Plan, r *Runner) { p.Port.Baud = 230400 },
			class: "recipe-error", fault: StationFault,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newSTM32Bench(t, nil)
				p := stm32Plan(t, "2.1.0")
				rec := &memRecorder{}
				r := stm32Runner(rec)
				tt.setup(b, p, r)
				res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p})
				if res.Outcome != OutcomeFailed || res.Failure == nil || res.Failure.Class != tt.class || res.Failure.Fault != tt.fault {
					t.Fatalf("Run() = %s %+v, want failed %s (%s)\nsteps: %v", res.Outcome, res.Failure, tt.class, tt.fault, rec.steps)
				}
				if res.Failure.Reason == "" || res.Failure.Hint == "" {
					t.Errorf("failure %+v lacks a reason or a hint", res.Failure)
				}
				if b.dev.Powered() {
					t.Error("the unit is powered after a failed job")
				}
			})
		})
	}
}

// TestSTM32RetriesAHang: a unit that hangs once mid-write is recovered by
// the retry, which re-runs the entry sequence (the reset inside the retry
// loop), and the record shows the retry.
func TestSTM32RetriesAHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSTM32Bench(t, nil)
		b.model.SetFaults(stm32sim.Faults{HangAfter: 3000})
		rec := &memRecorder{}
		res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: stm32Plan(t, "2.1.0")})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s %+v, want passed after a retry", res.Outcome, res.Failure)
		}
		if !slices.Contains(rec.steps, "reflash/write app (retry 1)") {
			t.Errorf("steps %v lack the write's retry", rec.steps)
		}
		if st := b.model.Stats(); st.Hangs != 1 {
			t.Errorf("Stats().Hangs = %d, want 1", st.Hangs)
		}
	})
}

// TestSTM32SkipSame: with skip_same and a ROM that offers GET_CHECKSUM,
// the pages that already hold the new image are neither erased nor
// written; the others are, and verify passes over the whole image.
func TestSTM32SkipSame(t *testing.T) {
	for _, tc := range []struct {
		name            string
		skipSame        string
		checksum        bool
		erased, written int // pages erased, 256-byte WRITEs sent
	}{
		{"skip_same with GET_CHECKSUM", "true", true, 2, 8},
		{"skip_same without GET_CHECKSUM", "true", false, 8, 32},
		{"no skip_same", "false", true, 8, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				img := stm32Image(t, "2.1.0")
				old := bytes.Clone(img)
				for i := 6 << 10; i < len(old); i++ { // the last two 1 KiB pages differ
					old[i] ^= 0x5A
				}
				b := newSTM32BenchOpts(t, "stm32f103", stm32sim.Options{Board: "sensor-b", Seed: 7, Image: old, Checksum: tc.checksum})
				p := stm32Plan(t, "2.1.0")
				p.Options = map[string]string{"skip_same": tc.skipSame}
				rec := &memRecorder{}
				res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "B"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s: %v\nsteps: %v", res.Outcome, res.Failure, rec.steps)
				}
				st := b.model.Stats()
				if st.UnitsErased != tc.erased || st.BlocksWritten != tc.written {
					t.Errorf("pages erased %d, WRITEs %d; want %d, %d", st.UnitsErased, st.BlocksWritten, tc.erased, tc.written)
				}
				got, _ := b.model.Flash().Read(0x08000000, len(img))
				if !bytes.Equal(got, img) {
					t.Error("flash does not hold the new image")
				}
			})
		})
	}
}
