package jobs

import (
	"bytes"
	"context"
	"github.com/unbrick/unbrick/step"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
)

// espBench is one ESP unit wired to a slot: power relay, GPIO0 on the
// strap line (asserted low), EN on the reset line (active low), and a
// development board's DTR/RTS auto-reset circuit behind the port.
type espBench struct {
	model *espsim.Model
	dev   *sim.Device
	host  *sim.PipeHost
	ar    *espsim.AutoReset
	slot  *Slot
}

// espModemPort is a port whose adapter drives DTR and RTS.
type espModemPort struct {
	pipePort
	*espsim.AutoReset
}

func newESPBench(t *testing.T, chip string, image []byte, modem bool) *espBench {
	t.Helper()
	bank := gpiosim.NewBank()
	m, err := espsim.New(chip, espsim.Options{Board: "meter-e", Seed: 3, Image: image})
	if err != nil {
		t.Fatal(err)
	}
	b := &espBench{model: m}
	var pd *sim.PipeDevice
	b.host, pd = sim.Pipe()
	line := sim.NewLine(espsim.LineConfig())
	line.Attach(pd)
	b.dev = sim.NewDevice(chip, m, line)
	b.ar = espsim.NewAutoReset(b.dev)
	power := bank.MustPin("sim:slot4.power")
	boot := bank.MustPin("sim:slot4.boot")
	reset := bank.MustPin("sim:slot4.reset")
	power.Listen(func(l pgpio.Level) { b.dev.SetPower(l == pgpio.High) })
	boot.Listen(func(l pgpio.Level) { b.dev.SetBoot(l == pgpio.Low) })
	reset.Listen(func(l pgpio.Level) { b.dev.SetReset(l == pgpio.Low) })
	b.slot = &Slot{Num: 4, Name: "slot 4",
		Lines: map[gpio.Role]*gpio.Line{
			gpio.Power: gpio.NewLine("sim:slot4.power", gpio.Power, pgpio.High, power),
			gpio.Boot:  gpio.NewLine("sim:slot4.boot", gpio.Boot, pgpio.Low, boot),
			gpio.Reset: gpio.NewLine("sim:slot4.reset", gpio.Reset, pgpio.Low, reset),
		},
		Open: func(ctx context.Context, m Mode) (Port, error) {
			b.host.SetBaud(m.Baud)
			if modem {
				return espModemPort{pipePort{b.host}, b.ar}, nil
			}
			return pipePort{b.host}, nil
		},
	}
	t.Cleanup(b.dev.Close)
	return b
}

func espImage(t *testing.T, chip, version string) []byte {
	t.Helper()
	img, err := espsim.AppImage(chip, version, "meter-e", 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// espPlan: power off, GPIO0 low, power on into download mode; write (delta,
// compressed where the ROM allows), verify; release GPIO0 and pulse EN; the
// banner must carry the new version.
func espPlan(t *testing.T, chip, version string) *Plan {
	t.Helper()
	off, err := espsim.BootOffset(chip)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := espsim.Chip(chip)
	return &Plan{
		Recipe: "meter-e-" + chip, Version: 1, Protocol: "esprom", Released: true, Chip: c.Magic,
		Port: Mode{Baud: 115200, Parity: "none"}, ConsoleBaud: 115200,
		Flash:  Region{Start: 0, Size: 4 << 20},
		Images: map[string]*Image{"app": {Name: "app", Version: version, Addr: off, Data: espImage(t, chip, version)}},
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
			{Kind: step.KindWrite, Image: "app"},
			{Kind: step.KindVerify, Image: "app"},
			{Kind: step.KindBoot},
		}}},
		Diagnose: []Diagnosis{{Pattern: regexp.MustCompile(`invalid header|checksum failure`), Class: "image-corrupt"}},
		Validate: Validation{Version: regexp.MustCompile(`firmware v(\S+)`), Within: 5 * time.Second},
		Options:  map[string]string{},
	}
}

func espRunner(rec Recorder) *Runner {
	return &Runner{Rec: rec, Drivers: map[string]Driver{"esprom": ESP{}}}
}

func TestESPRecoversABrickedUnit(t *testing.T) {
	for _, chip := range []string{"esp32", "esp8266"} {
		t.Run(chip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				old := espImage(t, chip, "1.0.0")
				for i := len(old) / 2; i < len(old); i++ {
					old[i] = 0xFF
				}
				b := newESPBench(t, chip, old, false)
				rec := &memRecorder{}
				p := espPlan(t, chip, "2.1.0")
				res := espRunner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
				}
				if res.Serial != b.model.Serial() || res.Version != "2.1.0" {
					t.Errorf("Run() serial %q version %q, want %q 2.1.0", res.Serial, res.Version, b.model.Serial())
				}
				if res.Diagnosis == "" && chip == "esp32" {
					t.Error("the bricked unit's console was not diagnosed")
				}
				im := p.Images["app"]
				got, _ := b.model.Flash().Read(im.Addr, len(im.Data))
				if !bytes.Equal(got, im.Data) {
					t.Error("flash does not hold the new image")
				}
				if b.dev.Powered() || b.slot.Lines[gpio.Boot].Asserted() {
					t.Error("the job did not leave the unit off with its strap released")
				}
				// The ESP8266 ROM can neither read back nor hash flash: its
				// verify step must say so in the record, never "verified".
				unverified := slices.ContainsFunc(rec.ends, func(e string) bool { return strings.Contains(e, "written, not verified") })
				if unverified != (chip == "esp8266") {
					t.Errorf("step ends %q: a \"written, not verified\" note = %v, want %v", rec.ends, unverified, chip == "esp8266")
				}
			})
		})
	}
}

// TestESP8266UnverifiedWriteNeedsAVersionCheck: without a version to see
// on the console, a write the ROM cannot verify must not pass.
func TestESP8266UnverifiedWriteNeedsAVersionCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newESPBench(t, "esp8266", nil, false)
		rec := &memRecorder{}
		p := espPlan(t, "esp8266", "2.1.0")
		p.Validate = Validation{}
		res := espRunner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
		if res.Outcome != OutcomeFailed || res.Failure == nil || res.Failure.Class != "cannot-verify" {
			t.Fatalf("Run() = %s %+v, want failed cannot-verify\nsteps: %v", res.Outcome, res.Failure, rec.steps)
		}
		if res.Failure.Hint == "" || !strings.Contains(res.Failure.Reason, "cannot read it back") {
			t.Errorf("failure %+v: want a reason saying the ROM cannot read back, and a hint", res.Failure)
		}
	})
}

// TestESPDeltaRewritesOnlyTheDamage: a unit whose image is right but for
// one damaged chunk gets only that chunk written.
func TestESPDeltaRewritesOnlyTheDamage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good := espImage(t, "esp32", "2.1.0")
		bad := append([]byte(nil), good...)
		for i := 70 << 10; i < 72<<10; i++ {
			bad[i] = 0xFF
		}
		b := newESPBench(t, "esp32", bad, false)
		p := espPlan(t, "esp32", "2.1.0")
		p.Options["delta_chunk"] = "16384"
		rec := &memRecorder{}
		res := espRunner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s: %v\nsteps: %v", res.Outcome, res.Failure, rec.steps)
		}
		if n := b.model.Stats().BytesWritten; n != 16<<10 {
			t.Errorf("the unit programmed %d bytes, want one 16 KiB chunk", n)
		}
	})
}

// TestESPModemEntry: the unit runs its application; the classic and
// unix-tight DTR/RTS sequences reset it into download mode.
func TestESPModemEntry(t *testing.T) {
	for _, entry := range []string{"classic", "unix-tight"} {
		t.Run(entry, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newESPBench(t, "esp32", espImage(t, "esp32", "1.0.0"), true)
				p := espPlan(t, "esp32", "2.0.0")
				p.Options["entry"] = entry
				p.Entry = []Action{{Kind: ActSet, Role: gpio.Power, On: true}, {Kind: ActWait, Wait: 100 * time.Millisecond}}
				// Booting through EN alone: the strap line is never asserted.
				p.Boot = []Action{{Kind: ActPulse, Role: gpio.Reset, Wait: 10 * time.Millisecond}}
				rec := &memRecorder{}
				res := espRunner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p})
				if res.Outcome != OutcomePassed || res.Version != "2.0.0" {
					t.Fatalf("Run() = %s %v version %q\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, res.Version, rec.steps, rec.console.String())
				}
				if b.model.Stats().BootloaderRuns == 0 {
					t.Error("download mode never ran")
				}
			})
		})
	}
	t.Run("no modem lines", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newESPBench(t, "esp32", nil, false)
			p := espPlan(t, "esp32", "2.0.0")
			p.Options["entry"] = "classic"
			res := espRunner(&memRecorder{}).Run(t.Context(), Job{Slot: b.slot, Plan: p})
			if res.Outcome != OutcomeFailed || res.Failure == nil || res.Failure.Class != "no-modem-lines" {
				t.Fatalf("Run() = %s %+v, want failed no-modem-lines", res.Outcome, res.Failure)
			}
		})
	})
}

func TestESPFailures(t *testing.T) {
	tests := []struct {
		name  string
		chip  string
		setup func(b *espBench, p *Plan, r *Runner)
		class string
		fault Fault
	}{
		{
			name:  "worn flash",
			chip:  "esp32",
			setup: func(b *espBench, p *Plan, r *Runner) { b.model.SetFaults(espsim.Faults{FailPrograms: 1000}) },
			class: "flash-write", fault: UnitFault,
		},
		{
			name: "unit that stops answering",
			chip: "esp32",
			setup: func(b *espBench, p *Plan, r *Runner) {
				b.model.SetFaults(espsim.Faults{HangAfter: 5000})
				r.Retries = -1
				// At the base rate: at a raised rate a hang is taken for
				// the link failing and tried again slower
				// (TestESPRateFallback).
				p.Options["flash_baud"] = "115200"
			},
			class: "timeout", fault: UnitFault,
		},
		{
			name:  "wrong chip",
			chip:  "esp8266",
			setup: func(b *espBench, p *Plan, r *Runner) { p.Chip = 0x00F01D83 },
			class: "wrong-chip", fault: UnitFault,
		},
		{
			name: "ESP8266 cannot verify what it did not write",
			chip: "esp8266",
			setup: func(b *espBench, p *Plan, r *Runner) {
				s := p.Strategies[0].Steps
				p.Strategies[0].Steps = []Step{s[0], s[2]}
			},
			class: "unsupported", fault: StationFault,
		},
		{
			name:  "GPIO0 strap not low",
			chip:  "esp32",
			setup: func(b *espBench, p *Plan, r *Runner) { p.Entry[1].On = false },
			class: "not-download-mode", fault: StationFault,
		},
		{
			name:  "flash smaller than the recipe's",
			chip:  "esp32",
			setup: func(b *espBench, p *Plan, r *Runner) { p.Flash = Region{Start: 0, Size: 8 << 20} },
			class: "flash-size", fault: UnitFault,
		},
		{
			name:  "unknown entry",
			chip:  "esp32",
			setup: func(b *espBench, p *Plan, r *Runner) { p.Options["entry"] = "jtag" },
			class: "recipe", fault: StationFault,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newESPBench(t, tt.chip, nil, false)
				p := espPlan(t, tt.chip, "2.1.0")
				rec := &memRecorder{}
				r := espRunner(rec)
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

// TestESPTargetCapabilities: the ESP32 target reads, erases and starts; the
// ESP8266 cannot read flash back.
func TestESPTargetCapabilities(t *testing.T) {
	for _, chip := range []string{"esp32", "esp8266"} {
		t.Run(chip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				img := espImage(t, chip, "1.0.0")
				b := newESPBench(t, chip, img, false)
				b.dev.SetBoot(true)
				b.dev.SetPower(true)
				p := espPlan(t, chip, "1.0.0")
				tg, id, err := ESP{}.Connect(t.Context(), pipePort{b.host}, p, func(context.Context) error { return nil })
				if err != nil {
					t.Fatalf("Connect() = %v", err)
				}
				if id.Serial != b.model.Serial() || id.Chip != b.model.Chip().Magic || id.ChipName != b.model.Chip().Name {
					t.Errorf("Connect() identity = %+v, want %s %s", id, b.model.Chip().Name, b.model.Serial())
				}
				off := p.Images["app"].Addr
				_, err = tg.(Reader).Read(t.Context(), off, 256, nil)
				if (err == nil) != (chip == "esp32") {
					t.Errorf("Read() = %v; want it to work only on the ESP32", err)
				}
				if err := tg.(Eraser).Erase(t.Context(), Region{Start: off, Size: 0x1000}); err != nil {
					t.Fatalf("Erase() = %v", err)
				}
				if got, _ := b.model.Flash().Read(off, 16); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 16)) {
					t.Errorf("after Erase the image starts % X, want erased", got)
				}
				// Release GPIO0 first, as a job's boot sequence does: the
				// boot loop's watchdog resets then boot from flash again.
				b.dev.SetBoot(false)
				if err := tg.(Starter).Start(t.Context()); err != nil {
					t.Fatalf("Start() = %v", err)
				}
				// The ROM runs the image it just lost: its boot code complains,
				// at its UART's reset rate, which Start set the port back to.
				// Read until it says so: the first lines may come while the
				// port is still at the transfer rate, garbled.
				var out []byte
				buf := make([]byte, 512)
				b.host.SetReadTimeout(100 * time.Millisecond)
				for range 100 {
					n, _ := b.host.Read(buf)
					out = append(out, buf[:n]...)
					if bytes.Contains(out, []byte("invalid header")) {
						break
					}
				}
				if want := "invalid header"; !bytes.Contains(out, []byte(want)) && chip == "esp32" {
					t.Errorf("after Start the unit printed %q, want %q", out, want)
				}
			})
		})
	}
}
