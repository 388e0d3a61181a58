package jobs

import (
	"bytes"
	"testing"
	"testing/synctest"

	"github.com/unbrick/unbrick/sim/espsim"
)

// TestBackupRestoreRecipe runs the ESP32 example recipe's second strategy
// (full-reflash-keeping-config): the unit's NVS (its configuration and
// credentials) is read and kept in the record, the flash from 0x9000 up is
// erased, the app written and verified, and the NVS written back, so the
// unit boots the new version with its configuration intact.
func TestBackupRestoreRecipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, r, _ := compileExample(t, "esp32-meter-e.yaml")
		var keep *Strategy
		for i := range p.Strategies {
			if p.Strategies[i].Name == "full-reflash-keeping-config" {
				keep = &p.Strategies[i]
			}
		}
		if keep == nil {
			t.Fatal("the example has no full-reflash-keeping-config strategy")
		}
		p.Strategies = []Strategy{*keep}

		boot, err := espsim.BootloaderImage("esp32")
		if err != nil {
			t.Fatal(err)
		}
		b := newESPBench(t, "esp32", boot, false)
		nvs := bytes.Repeat([]byte("wifi=bench-3;key=s3cret;"), 0x6000/24)
		junk := bytes.Repeat([]byte{0x42}, 4096)
		old, err := espsim.AppImage("esp32", "1.0.0", r.Match.Model, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		old = old[:len(old)/2] // an upgrade cut short
		for _, l := range []struct {
			addr uint32
			b    []byte
		}{{0x9000, nvs}, {espsim.AppOffset, old}, {0x200000, junk}} {
			if err := b.model.Flash().Load(l.addr, l.b); err != nil {
				t.Fatal(err)
			}
		}
		// The board model in the recipe: meter-e.
		rec := &memRecorder{}
		res := espRunner(rec).Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: r.Match.Revisions[0]})
		if res.Outcome != OutcomePassed || res.Strategy != "full-reflash-keeping-config" || res.Version != "1.5.0" {
			t.Fatalf("Run() = %s %v strategy %q version %q\nsteps: %v", res.Outcome, res.Failure, res.Strategy, res.Version, rec.steps)
		}
		if got := rec.backups["nvs"]; !bytes.Equal(got, nvs[:len(got)]) || len(got) != 0x6000 {
			t.Errorf("the record kept %d bytes of NVS, want the unit's 0x6000", len(got))
		}
		if got, _ := b.model.Flash().Read(0x9000, len(nvs)); !bytes.Equal(got, nvs) {
			t.Error("the NVS was not restored byte for byte")
		}
		if got, _ := b.model.Flash().Read(0x200000, len(junk)); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, len(junk))) {
			t.Error("the erase did not reach 0x200000")
		}
		if got, _ := b.model.Flash().Read(0x1000, len(boot)); !bytes.Equal(got, boot) {
			t.Error("the protected bootloader changed")
		}
	})
}
