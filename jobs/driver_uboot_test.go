package jobs

import (
	"context"
	"fmt"
	"github.com/unbrick/unbrick/step"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

// ubootBench is one U-Boot board wired to a slot: a power relay and the
// reset line.
type ubootBench struct {
	model *ubootsim.Model
	dev   *sim.Device
	slot  *Slot
}

func newUBootBench(t *testing.T, o ubootsim.Options) *ubootBench {
	t.Helper()
	o.Serial = "HMI-000042"
	o.Layout = ubootsim.BenchLayout
	if o.BootDelay == 0 {
		o.BootDelay = time.Second
	}
	o.PanicDelay = time.Second
	m, err := ubootsim.New("hmi-a", o)
	if err != nil {
		t.Fatal(err)
	}
	return wireUBoot(t, m)
}

// wireUBoot puts a U-Boot board model in slot 3.
func wireUBoot(t *testing.T, m *ubootsim.Model) *ubootBench {
	t.Helper()
	bank := gpiosim.NewBank()
	host, devEnd := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Baud: 115200, Fast: true})
	line.Attach(devEnd)
	b := &ubootBench{model: m, dev: sim.NewDevice("uboot", m, line)}
	power := bank.MustPin("sim:slot3.power")
	reset := bank.MustPin("sim:slot3.reset")
	power.Listen(func(l pgpio.Level) { b.dev.SetPower(l == pgpio.High) })
	reset.Listen(func(l pgpio.Level) { b.dev.SetReset(l == pgpio.Low) })
	b.slot = &Slot{Num: 3, Name: "slot 3",
		Lines: map[gpio.Role]*gpio.Line{
			gpio.Power: gpio.NewLine("sim:slot3.power", gpio.Power, pgpio.High, power),
			gpio.Reset: gpio.NewLine("sim:slot3.reset", gpio.Reset, pgpio.Low, reset),
		},
		Open: func(ctx context.Context, m Mode) (Port, error) {
			host.SetBaud(m.Baud)
			return pipePort{host}, nil
		},
	}
	t.Cleanup(b.dev.Close)
	return b
}

func ubootBundle(t *testing.T, version string) ([]byte, uint32) {
	t.Helper()
	img, off, err := ubootsim.Bundle(version, "hmi-a", ubootsim.BenchLayout, "a")
	if err != nil {
		t.Fatal(err)
	}
	return img, uint32(off)
}

// ubootPlan rewrites slot a with a new bundle and boots it.
func ubootPlan(t *testing.T, version string) *Plan {
	t.Helper()
	img, off := ubootBundle(t, version)
	return &Plan{
		Recipe: "hmi-a-uboot", Version: 1, Protocol: "uboot", Released: true,
		Port: Mode{Baud: 115200, Parity: "none"}, ConsoleBaud: 115200,
		Images: map[string]*Image{
			"slot-a": {Name: "slot-a", Version: version, Addr: off, Data: img},
			"b":      {Name: "b", Version: "0.9"},
		},
		Entry: []Action{
			{Kind: ActSet, Role: gpio.Power, On: false},
			{Kind: ActWait, Wait: 50 * time.Millisecond},
			{Kind: ActSet, Role: gpio.Power, On: true},
		},
		Strategies: []Strategy{{Name: "reflash", Steps: []Step{
			{Kind: step.KindEnter},
			{Kind: step.KindWrite, Image: "slot-a"},
			{Kind: step.KindVerify, Image: "slot-a"},
			{Kind: step.KindBoot},
		}}},
		Diagnose: []Diagnosis{{Pattern: regexp.MustCompile(`Bad Data CRC|Bad Header Checksum|Wrong Image Format`), Class: "kernel-corrupt"}},
		Validate: Validation{Version: regexp.MustCompile(`firmware v(\S+)`), Within: 10 * time.Second},
		Options:  map[string]string{"storage": "mmc", "loadaddr": "0x82000000"},
	}
}

func TestUBootRecoversABrickedUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newUBootBench(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0", Fault: ubootsim.BadKernelCRC}})
		rec := &memRecorder{}
		r := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: ubootPlan(t, "2.0.0"), Revision: "A"})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
		}
		if res.Serial != "HMI-000042" || res.Version != "2.0.0" {
			t.Errorf("Run() serial %q version %q, want HMI-000042 2.0.0", res.Serial, res.Version)
		}
		if res.Diagnosis == "" {
			t.Errorf("the bricked unit's console was not diagnosed (%q)", res.Diagnosis)
		}
		info, err := b.model.CheckSlot("a")
		if err != nil || info.RootFS.Version != "2.0.0" {
			t.Errorf("CheckSlot(a) = %+v, %v; want 2.0.0", info, err)
		}
		if len(rec.units) != 1 || !strings.HasPrefix(rec.units[0].Chip, "U-Boot 2024.01") {
			t.Errorf("units recorded %+v, want one identified by its U-Boot version", rec.units)
		}
		if b.dev.Powered() {
			t.Error("the job did not leave the unit off")
		}
	})
}

func TestUBootBootsTheOtherSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newUBootBench(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0", Fault: ubootsim.CorruptRootFS}, B: ubootsim.SlotImage{Version: "0.9"}})
		p := ubootPlan(t, "2.0.0")
		p.Strategies = []Strategy{{Name: "fallback", Steps: []Step{{Kind: step.KindEnter}, {Kind: step.KindBootSlot, Slot: "b"}}}}
		p.Validate.Image = "b"
		rec := &memRecorder{}
		r := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
		res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
		if res.Outcome != OutcomePassed || res.Version != "0.9" {
			t.Fatalf("Run() = %s %v version %q, want passed on slot b's 0.9\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, res.Version, rec.steps, rec.console.String())
		}
		env, err := b.model.Env()
		if err != nil || env["boot_slot"] != "b" {
			t.Errorf("stored boot_slot = %q, %v; want b", env["boot_slot"], err)
		}
	})
}

func TestUBootFailures(t *testing.T) {
	tests := []struct {
		name  string
		o     ubootsim.Options
		setup func(p *Plan, r *Runner)
		class string
	}{
		{"no SPI flash", ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}},
			func(p *Plan, r *Runner) { p.Options["storage"] = "sf" }, "command-failed"},
		{"bad storage option", ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}},
			func(p *Plan, r *Runner) { p.Options["storage"] = "nand" }, "recipe-error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newUBootBench(t, tt.o)
				p := ubootPlan(t, "2.0.0")
				rec := &memRecorder{}
				r := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}, Retries: -1}
				tt.setup(p, r)
				res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
				if res.Outcome != OutcomeFailed || res.Failure == nil || res.Failure.Class != tt.class {
					t.Fatalf("Run() = %s %+v, want failed %s\nsteps: %v", res.Outcome, res.Failure, tt.class, rec.steps)
				}
				if res.Failure.Reason == "" || res.Failure.Hint == "" {
					t.Errorf("failure %+v lacks a reason or a hint", res.Failure)
				}
			})
		})
	}
}

func TestUBootStorageOptions(t *testing.T) {
	st, err := ubootStorage(map[string]string{"storage": "sf", "loadaddr": "0x83000000", "mmcdev": "1"})
	if err != nil || st.Kind != "sf" || st.LoadAddr != 0x83000000 || st.Dev != 1 {
		t.Errorf("ubootStorage() = %+v, %v", st, err)
	}
	for _, bad := range []map[string]string{{"storage": "ufs"}, {"mmcdev": "x"}, {"loadaddr": "zz"}} {
		if _, err := ubootStorage(bad); err == nil {
			t.Errorf("ubootStorage(%v) = nil error, want one", bad)
		}
	}
}

// TestUBootOnTheVirtualBench recovers each state of the bench's U-Boot
// board (simbench.UBoot) with the image the bench's kind builds.
func TestUBootOnTheVirtualBench(t *testing.T) {
	for _, st := range []simbench.State{simbench.Good, simbench.Bricked, simbench.AppOnly, simbench.Erased} {
		t.Run(string(st), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := simbench.UBoot
				m, err := k.New(simbench.Spec{Kind: k.Name, Board: "hmi-a", State: st, Seed: 12})
				if err != nil {
					t.Fatal(err)
				}
				b := wireUBoot(t, m.(*ubootsim.Model))
				img, addr, err := k.Image("3.1.4", "hmi-a")
				if err != nil {
					t.Fatal(err)
				}
				p := ubootPlan(t, "3.1.4")
				p.Images["slot-a"] = &Image{Name: "slot-a", Version: "3.1.4", Addr: addr, Data: img}
				p.Options = nil // the unit's own loadaddr, eMMC
				rec := &memRecorder{}
				r := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
				res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
				if res.Outcome != OutcomePassed || res.Serial != "HMI-000012" || res.Version != "3.1.4" {
					t.Fatalf("Run() = %s %v serial %q version %q, want passed, HMI-000012, 3.1.4\nsteps: %v", res.Outcome, res.Failure, res.Serial, res.Version, rec.steps)
				}
			})
		})
	}
}

func TestUBootSkipSame(t *testing.T) {
	for _, tc := range []struct {
		name     string
		has      string // the version slot a holds
		skipSame string
		loaded   bool // whether loady must run
	}{
		{"same image, skip_same", "2.0.0", "true", false},
		{"same image, no skip_same", "2.0.0", "false", true},
		{"other image, skip_same", "1.0", "true", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newUBootBench(t, ubootsim.Options{A: ubootsim.SlotImage{Version: tc.has}})
				rec := &memRecorder{}
				r := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
				p := ubootPlan(t, "2.0.0")
				p.Options["skip_same"] = tc.skipSame
				res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
				}
				if got := b.model.Stats().LoadyBytes > 0; got != tc.loaded {
					t.Errorf("loady ran = %v, want %v\nconsole:\n%s", got, tc.loaded, rec.console.String())
				}
				if info, err := b.model.CheckSlot("a"); err != nil || info.RootFS.Version != "2.0.0" {
					t.Errorf("CheckSlot(a) = %+v, %v; want 2.0.0", info, err)
				}
			})
		})
	}
}

// TestUBootLoadyBaud: loady_baud loads at the recipe's rate where the
// unit's UART can divide its clock down to it, and falls back step by step
// (resetting the unit each time a rate leaves it deaf) where it cannot.
func TestUBootLoadyBaud(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clock int
		baud  string
		rate  int // the UART rate the model's loady ran at
		boots int
		used  string // the rate the record names
	}{
		{"921600 met", 0, "921600", 921600, 1, "921600"},
		{"48 MHz UART falls back to 230400", 48_000_000, "921600", 230769, 3, "230400"},
		{"console rate", 48_000_000, "0", 115200, 1, "115200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newUBootBench(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, UARTClock: tc.clock})
				rec := &detailRecorder{memRecorder: &memRecorder{}}
				r := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
				p := ubootPlan(t, "2.0.0")
				p.Options["loady_baud"] = tc.baud
				res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s: %v\nsteps: %v\nconsole:\n%s", res.Outcome, res.Failure, rec.steps, rec.console.String())
				}
				st := b.model.Stats()
				if st.LoadyBaud != tc.rate {
					t.Errorf("loady ran at %d bps, want %d", st.LoadyBaud, tc.rate)
				}
				if st.Boots < tc.boots {
					t.Errorf("U-Boot started %d times, want at least %d (one reset per rate that failed)", st.Boots, tc.boots)
				}
				// The attempt's record says the rate loady ran at, and
				// each step down, in the write step's detail.
				details := strings.Join(rec.details, "\n")
				if want := fmt.Sprintf("loady at %s baud", tc.used); !strings.Contains(details, want) {
					t.Errorf("the steps' records say %q, want %q among them", rec.details, want)
				}
				if got := strings.Count(details, "stepping down"); got != tc.boots-1 {
					t.Errorf("the records tell %d steps down (%q), want %d", got, rec.details, tc.boots-1)
				}
				if info, err := b.model.CheckSlot("a"); err != nil || info.RootFS.Version != "2.0.0" {
					t.Errorf("CheckSlot(a) = %+v, %v; want 2.0.0", info, err)
				}
			})
		})
	}
}
