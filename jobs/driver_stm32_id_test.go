package jobs

import (
	"github.com/unbrick/unbrick/step"
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
				plan.Flash = Region{Start: 0x08000000, Size: 1 << 20}
				plan.Strategies[0].Steps = []Step{{Kind: step.KindEnter}}
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

// TestSTM32WrongParity: a plan whose port is not at even parity reaches
// the ROM's sync (0x7F and its ACK look the same at 8N1) and then fails,
// as on a real unit, with the parity named; recipe check refuses such a
// recipe before it gets here.
func TestSTM32WrongParity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSTM32Bench(t, stm32Image(t, "1.0.0"))
		plan := stm32Plan(t, "2.1.0")
		plan.Port.Parity = "none"
		rec := &memRecorder{}
		res := stm32Runner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: plan, Revision: "B"})
		if res.Outcome != OutcomeFailed || res.Failure == nil || !strings.Contains(res.Failure.Error(), "even parity (8E1)") {
			t.Fatalf("Run() at parity none = %s, %v; want a failure that names the parity", res.Outcome, res.Failure)
		}
		if st := b.dev.Line.Stats(); st.RxErrors == 0 {
			t.Errorf("line Stats() = %+v, want parity errors at the unit", st)
		}
	})
}
