package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"github.com/unbrick/unbrick/step"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"aead.dev/minisign"
	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/recipes"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/avrsim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

func compileExample(t *testing.T, name string) (*Plan, *recipes.Recipe, map[string]*recipes.Loaded) {
	t.Helper()
	var keys firmware.Keyring
	if err := keys.AddFile("unbrick-test", "../testdata/keys/unbrick-test.pub"); err != nil {
		t.Fatal(err)
	}
	r, ims, errs := recipes.CheckFile(filepath.Join(examplesDir, name), &keys)
	if len(errs) > 0 {
		t.Fatalf("CheckFile(%s) = %v", name, errs)
	}
	p, err := FromRecipe(r, ims)
	if err != nil {
		t.Fatalf("FromRecipe(%s) = %v", name, err)
	}
	return p, r, ims
}

func TestFromRecipeCompilesEveryExample(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, r, _ := compileExample(t, filepath.Base(f))
			if p.Recipe != r.Name || p.SHA256 != r.SHA256 || p.Protocol == "" || len(p.Strategies) == 0 || len(p.Entry) == 0 {
				t.Errorf("FromRecipe = %+v", p)
			}
			for name, im := range p.Images {
				if im.Refusal != nil || len(im.Data) == 0 || im.SHA256 != firmware.SHA256(im.Data) || im.Signer != "unbrick-test" {
					t.Errorf("image %s: refusal %v, %d bytes, sha %s, signer %q", name, im.Refusal, len(im.Data), im.SHA256, im.Signer)
				}
			}
			for _, s := range p.Strategies {
				for _, st := range s.Steps {
					if st.Pos.File != f || st.Pos.Line == 0 {
						t.Errorf("step %s at %s, want a position in %s", st.Label(), st.Pos, f)
					}
				}
			}
		})
	}
}

func TestFromRecipeFields(t *testing.T) {
	p, _, _ := compileExample(t, "stm32f103-sensor-b.yaml")
	wantEntry := []Action{
		{Kind: ActSet, Role: gpio.Power, On: false},
		{Kind: ActSet, Role: gpio.Boot, On: true},
		{Kind: ActWait, Wait: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		{Kind: ActSet, Role: gpio.Power, On: true},
		{Kind: ActWait, Wait: 20 * time.Millisecond},
	}
	for i := range p.Entry {
		p.Entry[i].Pos = ""
	}
	if !slices.Equal(p.Entry, wantEntry) {
		t.Errorf("Entry = %+v, want %+v", p.Entry, wantEntry)
	}
	if p.Port != (Mode{Baud: 115200, Parity: "even"}) || p.Chip != 0x410 || !p.Released || p.Flash != (Region{Start: 0x08000000, Size: 128 << 10}) {
		t.Errorf("plan = port %+v chip %#x released %v flash %v", p.Port, p.Chip, p.Released, p.Flash)
	}
	if len(p.Protected) != 1 || p.Protected[0] != (NamedRegion{"calibration", Region{Start: 0x0801FC00, Size: 1 << 10}}) {
		t.Errorf("Protected = %v", p.Protected)
	}
	steps := p.Strategies[0].Steps
	if steps[1].Kind != step.KindErase || steps[1].Region != (Region{Start: 0x08000000, Size: 8 << 10}) {
		t.Errorf("erase pages 0..7 = %+v", steps[1])
	}
	if c := p.Validate.Checks[0]; c.Send != "status" || c.Line() != "status\r" || c.Within != 2*time.Second {
		t.Errorf("check = %+v, want send status (status\\r on the line) within 2s", c)
	}
	u, _, _ := compileExample(t, "uboot-hmi-a.yaml")
	if u.Options["loadaddr"] != "0x82000000" || u.Strategies[0].Steps[1].Kind != step.KindBootSlot || u.Strategies[0].Steps[1].Slot != "b" {
		t.Errorf("uboot plan: options %v, first strategy %+v", u.Options, u.Strategies[0])
	}
}

// brickedF103 returns the sensor-b image of an old version with its second
// half erased: an upgrade cut short.
func brickedF103(t *testing.T) []byte {
	old, err := stm32sim.AppImage("stm32f103", "1.0.0", "sensor-b", 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(old) / 2; i < len(old); i++ {
		old[i] = 0xFF
	}
	return old
}

// TestRecipeRecoversAnSTM32 runs the compiled sensor-b recipe against the
// STM32F103 model: the bricked unit is diagnosed, reflashed and validated,
// and the record names the recipe's content hash and the image written.
func TestRecipeRecoversAnSTM32(t *testing.T) {
	p, r, ims := compileExample(t, "stm32f103-sensor-b.yaml")
	synctest.Test(t, func(t *testing.T) {
		b := newSTM32Bench(t, brickedF103(t))
		rec := &memRecorder{}
		res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "B2"})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
		}
		if res.Version != "1.2.0" || res.Strategy != "reflash" || res.ImageSHA256 != r.Image("app").SHA256 || !strings.Contains(res.Diagnosis, "image-corrupt") {
			t.Errorf("Run = version %q strategy %q image %s diagnosis %q", res.Version, res.Strategy, res.ImageSHA256, res.Diagnosis)
		}
		got, _ := b.model.Flash().Read(0x08000000, 8<<10)
		if !bytes.Equal(got, ims["app"].Data) {
			t.Error("the unit's flash does not hold the recipe's image")
		}
		if b.bank.Timeline.Len() == 0 {
			t.Error("the timeline shows no line changes for a job that ran")
		}
		if cal, _ := b.model.Flash().Read(0x0801FC00, 1<<10); !bytes.Equal(cal, bytes.Repeat([]byte{0xFF}, 1<<10)) {
			t.Error("the protected calibration page changed")
		}
	})
}

// TestRecipeRecoversAnAVR runs the compiled uno-r3 recipe against the
// ATmega328P model.
func TestRecipeRecoversAnAVR(t *testing.T) {
	p, _, ims := compileExample(t, "atmega328p-uno-r3.yaml")
	synctest.Test(t, func(t *testing.T) {
		old, _ := avrsim.AppImage("atmega328p", "1.0.0", "uno-r3", 4096)
		for i := 2048; i < len(old); i++ {
			old[i] = 0xFF
		}
		b := newAVRBench(t, old)
		rec := &memRecorder{}
		res := newRunner(rec, nil).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "R3", Serial: "LABEL-0042"})
		if res.Outcome != OutcomePassed || res.Version != "2.0.0" {
			t.Fatalf("Run = %s %q: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Version, res.Failure, rec.steps, rec.console.String())
		}
		got, _ := b.model.Flash().Read(0, len(ims["app"].Data))
		if !bytes.Equal(got, ims["app"].Data) {
			t.Error("the unit's flash does not hold the recipe's image")
		}
	})
}

// TestRecipeRefusals: a tampered image, an unsigned one, one for another
// revision and a draft on a production slot are refused with a reason, and
// the unit's lines are never toggled.
func TestRecipeRefusals(t *testing.T) {
	tests := []struct {
		name     string
		change   func(t *testing.T, dir string)
		revision string
		class    string
		reason   string
	}{
		{"tampered image", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "images", "sensor-b-1.2.0.hex")
			b, _ := os.ReadFile(p)
			im, _ := firmware.ParseHex(b)
			im.Segments[0].Data[0x400] ^= 0x10
			os.WriteFile(p, firmware.FormatHex(im.Segments, 0), 0o644)
		}, "B1", "image-hash", "the bytes written hash to"},
		{"unsigned image", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "stm32f103-sensor-b.yaml"), "    signature: images/sensor-b-1.2.0.hex.minisig\n", "")
		}, "B1", "image-unsigned", "the image is not signed"},
		{"signed by a stranger", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "images", "sensor-b-1.2.0.hex.minisig"), strangerSignature(t, filepath.Join(dir, "images", "sensor-b-1.2.0.hex")), 0o644)
		}, "B1", "image-signature", "a key the bench does not trust"},
		{"image for another revision", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "stm32f103-sensor-b.yaml"), "    revisions: [B1, B2]\nstrategies:", "    revisions: [B2]\nstrategies:")
		}, "B1", "image-wrong-revision", "built for revisions B2, not for this unit's revision B1"},
		{"image for none of the recipe's revisions", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "stm32f103-sensor-b.yaml"), "    revisions: [B1, B2]\nstrategies:", "    revisions: [C1]\nstrategies:")
		}, "B1", "image-revision", "built for revisions C1, but the recipe matches revisions B1, B2"},
		{"draft on a production slot", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "stm32f103-sensor-b.yaml"), "status: released", "status: draft")
		}, "B1", "recipe-draft", "is a draft"},
	}
	var keys firmware.Keyring
	if err := keys.AddFile("unbrick-test", "../testdata/keys/unbrick-test.pub"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyRecipe(t, "stm32f103-sensor-b.yaml")
			tt.change(t, dir)
			r, errs := recipes.Load(filepath.Join(dir, "stm32f103-sensor-b.yaml"))
			if r == nil {
				t.Fatal(errs)
			}
			ims, _ := recipes.LoadImages(r, &keys)
			p, err := FromRecipe(r, ims)
			if err != nil {
				t.Fatal(err)
			}
			synctest.Test(t, func(t *testing.T) {
				b := newSTM32Bench(t, brickedF103(t))
				before := b.bank.Timeline.Len()
				rec := &memRecorder{}
				res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: tt.revision})
				if res.Outcome != OutcomeRefused || res.Failure == nil || res.Failure.Class != tt.class ||
					res.Failure.Fault != RefusedFault || !strings.Contains(res.Failure.Reason, tt.reason) || res.Failure.Hint == "" {
					t.Errorf("Run = %s %+v, want refused %s with %q", res.Outcome, res.Failure, tt.class, tt.reason)
				}
				if n := b.bank.Timeline.Len(); n != before {
					t.Errorf("the unit's lines changed %d times during a refused job: %v", n-before, b.bank.Timeline.Changes())
				}
				if len(rec.results) != 1 {
					t.Errorf("%d results recorded, want the refusal", len(rec.results))
				}
			})
		})
	}
}

// copyRecipe copies an example recipe and the images into a temporary
// directory, for tests that change them.
func copyRecipe(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "images"), 0o755)
	files, _ := filepath.Glob(filepath.Join(examplesDir, "images", "*"))
	for _, f := range append(files, filepath.Join(examplesDir, name)) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(examplesDir, f)
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%q is not in %s", old, path)
	}
	os.WriteFile(path, []byte(s), 0o644)
}

// strangerSignature signs a file with a fresh key the bench does not trust.
func strangerSignature(t *testing.T, path string) []byte {
	t.Helper()
	_, sk, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sk.MarshalText()
	data, _ := os.ReadFile(path)
	sig, err := firmware.Sign(key, data, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestRecipeRecoversAnSTM32F407 runs the gateway-c recipe (an ELF image,
// sector erases, a serial number provisioned from the pool) against the
// STM32F407 model.
func TestRecipeRecoversAnSTM32F407(t *testing.T) {
	p, _, ims := compileExample(t, "stm32f407-gateway-c.yaml")
	synctest.Test(t, func(t *testing.T) {
		bank := gpiosim.NewBank()
		settings := bytes.Repeat([]byte("net=10.0.0.7;"), 64)
		m, err := stm32sim.New("stm32f407", stm32sim.Options{Board: "gateway-c", Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Flash().Program(0x08004000, settings); err != nil {
			t.Fatal(err)
		}
		host, devEnd := sim.Pipe()
		line := sim.NewLine(stm32sim.LineConfig())
		line.Attach(devEnd)
		dev := sim.NewDevice("stm32", m, line)
		t.Cleanup(dev.Close)
		power, boot, reset := bank.MustPin("sim:s3.power"), bank.MustPin("sim:s3.boot"), bank.MustPin("sim:s3.reset")
		power.Listen(func(l pgpio.Level) { dev.SetPower(l == pgpio.High) })
		boot.Listen(func(l pgpio.Level) { dev.SetBoot(l == pgpio.High) })
		reset.Listen(func(l pgpio.Level) { dev.SetReset(l == pgpio.Low) })
		slot := &Slot{Num: 3, Name: "slot 3",
			Lines: map[gpio.Role]*gpio.Line{
				gpio.Power: gpio.NewLine("sim:s3.power", gpio.Power, pgpio.High, power),
				gpio.Boot:  gpio.NewLine("sim:s3.boot", gpio.Boot, pgpio.High, boot),
				gpio.Reset: gpio.NewLine("sim:s3.reset", gpio.Reset, pgpio.Low, reset),
			},
			Open: func(ctx context.Context, md Mode) (Port, error) {
				host.SetBaud(md.Baud)
				return pipePort{host}, nil
			},
		}
		rec := &memRecorder{}
		res := stm32Runner(rec).Run(t.Context(), Job{Slot: slot, Plan: p, Revision: "C1"})
		if res.Outcome != OutcomePassed || res.Version != "3.0.1" {
			t.Fatalf("Run = %s %q: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Version, res.Failure, rec.steps, rec.console.String())
		}
		got, _ := m.Flash().Read(0x08000000, len(ims["app"].Data))
		if !bytes.Equal(got, ims["app"].Data) {
			t.Error("the unit's flash does not hold the ELF file's segment")
		}
		if sn, _ := m.Flash().Read(0x08008000, 9); string(sn) != "SN000001\x00" {
			t.Errorf("provisioned serial = %q, want SN000001 and a NUL", sn)
		}
		if kept, _ := m.Flash().Read(0x08004000, len(settings)); !bytes.Equal(kept, settings) {
			t.Error("the protected settings sector changed")
		}
	})
}
