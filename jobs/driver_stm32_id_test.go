package jobs

import (
	"strings"
	"testing"
	"testing/synctest"
)

// TestSTM32NoIDFromTheROM: a unit whose ROM refuses every READ of its
// unique ID (the L476 model, as AN2606 reports for several L4 and G parts)
// is identified by its scanned barcode; without one the job fails with a
// clear "scan the label", never a crash.
func TestSTM32NoIDFromTheROM(t *testing.T) {
	for _, barcode := range []string{"SN-0042", ""} {
		t.Run("barcode "+barcode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newSTM32BenchPart(t, "stm32l476", nil)
				plan := stm32Plan(t, "2.1.0")
				plan.Chip = 0x415
				plan.Flash = Region{0x08000000, 1 << 20}
				plan.Strategies[0].Steps = []Step{{Kind: StepEnter}}
				plan.Validate = Validation{}
				rec := &memRecorder{}
				res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: plan, Revision: "B", Serial: barcode})
				if barcode != "" {
					if res.Serial != barcode || res.Failure != nil && res.Failure.Class == "no-identity" {
						t.Fatalf("Run() = %s, serial %q, %v; want the barcode as the serial", res.Outcome, res.Serial, res.Failure)
					}
					return
				}
				if res.Outcome != OutcomeFailed || res.Failure == nil || res.Failure.Class != "no-identity" || !strings.Contains(res.Failure.Hint, "scan") {
					t.Fatalf("Run() = %s, %v; want no-identity with a hint to scan the label", res.Outcome, res.Failure)
				}
			})
		})
	}
}
