package jobs

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"

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
