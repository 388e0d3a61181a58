package jobs

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

// TestABRecipe runs the example A/B recipe (testdata/recipes/uboot-hmi-a.yaml)
// on the U-Boot model: a unit whose slot A is broken but whose fallback
// slot B is good is recovered by the first strategy; a unit whose fallback
// is bad too escalates to the second, which rewrites slot A. The result
// names the strategy that worked and why the unit was bricked.
func TestABRecipe(t *testing.T) {
	tests := []struct {
		state     simbench.State
		strategy  string
		diagnosis string
		version   string
		steps     []string
	}{
		{simbench.Bricked, "boot-fallback-slot", "kernel-corrupt", "1.0.0",
			[]string{"boot-fallback-slot/boot slot b", "boot-fallback-slot/validate"}},
		{simbench.AppOnly, "boot-fallback-slot", "rootfs-mount-failed", "1.0.0",
			[]string{"boot-fallback-slot/boot slot b"}},
		{simbench.Erased, "reflash-slot-a", "no-bootable-image", "2.1.0",
			[]string{"boot-fallback-slot/boot slot b", "reflash-slot-a/write system", "reflash-slot-a/verify system", "reflash-slot-a/boot slot a", "reflash-slot-a/validate"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, r, _ := compileExample(t, "uboot-hmi-a.yaml")
				m, err := simbench.UBoot.New(simbench.Spec{Kind: "uboot", Board: r.Match.Model, State: tt.state, Seed: 7})
				if err != nil {
					t.Fatal(err)
				}
				b := wireUBoot(t, m.(*ubootsim.Model))
				rec := &memRecorder{}
				run := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
				res := run.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A3"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s %v\nsteps: %v", res.Outcome, res.Failure, rec.steps)
				}
				if res.Strategy != tt.strategy || res.Version != tt.version {
					t.Errorf("recovered by %q booting v%s, want %q booting v%s", res.Strategy, res.Version, tt.strategy, tt.version)
				}
				if !strings.HasPrefix(res.Diagnosis, tt.diagnosis+":") {
					t.Errorf("Diagnosis = %q, want %s", res.Diagnosis, tt.diagnosis)
				}
				for _, s := range tt.steps {
					if !slices.Contains(rec.steps, s) {
						t.Errorf("steps %v lack %q", rec.steps, s)
					}
				}
				if tt.strategy == "boot-fallback-slot" && slices.Contains(rec.steps, "reflash-slot-a/write system") {
					t.Errorf("the first strategy worked, yet the second ran: %v", rec.steps)
				}
				// Slot B, protected by the recipe, was never written.
				info, err := m.(*ubootsim.Model).CheckSlot("b")
				if tt.state != simbench.Erased && (err != nil || info.RootFS.Version != "1.0.0") {
					t.Errorf("slot B after recovery: %+v, %v; want the untouched 1.0.0", info, err)
				}
			})
		})
	}
}

// TestABRecipeEveryFault runs the example A/B recipe on U-Boot units whose
// slot A is broken in each way the model knows, with slot B good or broken
// too. A good slot B is booted by the first strategy; a broken one makes
// the recipe escalate to the second, which rewrites slot A with 2.1.0. The
// diagnosis names why slot A failed (the recipe's diagnose rules against
// the model's console), and slot B's bytes are the same afterwards.
func TestABRecipeEveryFault(t *testing.T) {
	tests := []struct {
		a, b      ubootsim.Fault
		strategy  string
		diagnosis string
	}{
		{ubootsim.BadKernelCRC, ubootsim.Healthy, "boot-fallback-slot", "kernel-corrupt"},
		{ubootsim.BadKernelHdr, ubootsim.Healthy, "boot-fallback-slot", "kernel-corrupt"},
		{ubootsim.CorruptRootFS, ubootsim.Healthy, "boot-fallback-slot", "rootfs-mount-failed"},
		{ubootsim.NoRootFS, ubootsim.Healthy, "boot-fallback-slot", "rootfs-mount-failed"},
		{ubootsim.NoDeviceTree, ubootsim.Healthy, "boot-fallback-slot", "device-tree-failed"},
		{ubootsim.BadKernelMagic, ubootsim.Healthy, "boot-fallback-slot", "no-bootable-image"},
		{ubootsim.BadKernelCRC, ubootsim.BadKernelCRC, "reflash-slot-a", "kernel-corrupt"},
		{ubootsim.BadKernelCRC, ubootsim.CorruptRootFS, "reflash-slot-a", "kernel-corrupt"},
		{ubootsim.CorruptRootFS, ubootsim.NoRootFS, "reflash-slot-a", "rootfs-mount-failed"},
	}
	for _, tt := range tests {
		b := string(tt.b)
		if b == "" {
			b = "good"
		}
		t.Run(string(tt.a)+"/"+b, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, r, _ := compileExample(t, "uboot-hmi-a.yaml")
				m, err := ubootsim.New(r.Match.Model, ubootsim.Options{
					Serial:    "HMI-000042",
					BootDelay: 2 * time.Second,
					Layout:    ubootsim.BenchLayout,
					A:         ubootsim.SlotImage{Version: "1.0.0", Fault: tt.a},
					B:         ubootsim.SlotImage{Version: "1.0.0", Fault: tt.b},
					Watchdog:  10 * time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				l := ubootsim.BenchLayout
				slotB := func() []byte {
					d, err := m.EMMC().Read(l.B.Kernel, int(l.B.RootFS+l.RootFSMax-l.B.Kernel))
					if err != nil {
						t.Fatal(err)
					}
					return d
				}
				before := slotB()
				bench := wireUBoot(t, m)
				rec := &memRecorder{}
				run := &Runner{Rec: rec, Drivers: map[string]Driver{"uboot": UBoot{}}}
				res := run.Run(t.Context(), Job{Slot: bench.slot, Plan: p, Revision: "A3"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s %v\nsteps: %v", res.Outcome, res.Failure, rec.steps)
				}
				want := map[string]string{"boot-fallback-slot": "1.0.0", "reflash-slot-a": "2.1.0"}[tt.strategy]
				if res.Strategy != tt.strategy || res.Version != want {
					t.Errorf("recovered by %q booting v%s, want %q booting v%s", res.Strategy, res.Version, tt.strategy, want)
				}
				if !strings.HasPrefix(res.Diagnosis, tt.diagnosis+":") {
					t.Errorf("Diagnosis = %q, want %s", res.Diagnosis, tt.diagnosis)
				}
				if len(rec.results) != 1 || rec.results[0].Strategy != tt.strategy {
					t.Errorf("recorded results %v, want one naming %q", rec.results, tt.strategy)
				}
				wrote, escalate := slices.Contains(rec.steps, "reflash-slot-a/write system"), tt.strategy == "reflash-slot-a"
				if wrote != escalate {
					t.Errorf("steps %v: slot A rewritten = %v, want %v", rec.steps, wrote, escalate)
				}
				last := rec.steps[len(rec.steps)-1]
				if last != tt.strategy+"/validate" {
					t.Errorf("last step %q, want %s/validate", last, tt.strategy)
				}
				info, err := m.CheckSlot(map[string]string{"boot-fallback-slot": "b", "reflash-slot-a": "a"}[tt.strategy])
				if err != nil || info.RootFS.Version != want {
					t.Errorf("booted slot after recovery: %+v, %v; want a sound %s", info, err, want)
				}
				if !bytes.Equal(slotB(), before) {
					t.Errorf("slot B (protected) changed during recovery")
				}
			})
		})
	}
}

// TestABRecipeFitsBenchLayout checks that the example A/B recipe writes
// what the U-Boot model's bench layout expects, where it expects it, and
// protects what that layout holds outside slot A.
func TestABRecipeFitsBenchLayout(t *testing.T) {
	p, _, _ := compileExample(t, "uboot-hmi-a.yaml")
	l := ubootsim.BenchLayout
	want, off, err := ubootsim.Bundle("2.1.0", "hmi-a", l, "a")
	if err != nil {
		t.Fatal(err)
	}
	im := p.Images["system"]
	if im == nil {
		t.Fatalf("the recipe has no system image: %v", p.Images)
	}
	if int64(im.Addr) != off || !bytes.Equal(im.Data, want) {
		t.Errorf("system image: %d bytes at %#x, want ubootsim.Bundle's %d bytes at %#x", len(im.Data), im.Addr, len(want), off)
	}
	slotA := Region{Start: uint32(l.A.Kernel), Size: uint32(l.A.RootFS + l.RootFSMax - l.A.Kernel)}
	if !im.Region().Within(slotA) {
		t.Errorf("system image at %s, want it inside slot A %s", im.Region(), slotA)
	}
	protected := map[string]Region{}
	for _, pr := range p.Protected {
		protected[pr.Name] = pr.Region
		if pr.Overlaps(slotA) {
			t.Errorf("protected region %q %s overlaps slot A %s", pr.Name, pr.Region, slotA)
		}
	}
	for name, r := range map[string]Region{
		"u-boot-env": {Start: uint32(l.EnvOffset), Size: uint32(l.EnvSize)},
		"slot-b":     {Start: uint32(l.B.Kernel), Size: uint32(l.B.RootFS + l.RootFSMax - l.B.Kernel)},
	} {
		if got, ok := protected[name]; !ok || got != r {
			t.Errorf("protected %q = %s (%v), want %s", name, got, ok, r)
		}
	}
	st, err := ubootStorage(p.Options)
	if err != nil || st.Kind != "mmc" || st.Dev != 0 || st.LoadAddr != ubootsim.KernelAddr {
		t.Errorf("ubootStorage(%v) = %+v, %v; want mmc 0 loading at %#x", p.Options, st, err, ubootsim.KernelAddr)
	}
	if uint64(len(im.Data)) > uint64(ubootsim.FDTAddr-ubootsim.KernelAddr) {
		t.Errorf("system image of %d bytes staged at %#x would run into the device tree at %#x", len(im.Data), ubootsim.KernelAddr, ubootsim.FDTAddr)
	}
}
