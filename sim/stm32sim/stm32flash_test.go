package stm32sim

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simtest"
)

func stm32flash(t *testing.T, args ...string) string {
	t.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, "stm32flash", args...).CombinedOutput()
		cancel()
		if err == nil {
			return string(out)
		}
		// stm32flash gives the ROM 0.5 s to answer its first 0x7F and
		// retries once. On a loaded machine the model's goroutines can miss
		// that; a person would run the tool again, and so does the test
		// (once). A repeated failure is a real one.
		if try < 2 && strings.Contains(string(out), "Failed to init device") {
			t.Logf("stm32flash %s: %v (retrying once)\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Fatalf("stm32flash %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("stm32flash output lacks %q:\n%s", w, out)
		}
	}
}

// TestStm32flash holds the model against the real stm32flash 0.7 on a
// pseudo-terminal (8N1: a pty cannot keep PARENB): it identifies the part,
// does so again without a reset (the ROM is synced and NACKs 7F 7F), reads
// the whole flash byte for byte, writes and verifies an application and
// starts it with GO, after which the unit runs it.
func TestStm32flash(t *testing.T) {
	if _, err := exec.LookPath("stm32flash"); err != nil {
		t.Skip("stm32flash is not installed (apt-get install stm32flash; CI installs it): skipping the interop test")
	}
	tests := []struct {
		part, id, name string
		version        string
	}{
		{"stm32f103", "0x0410", "STM32F10xxx Medium-density", "0x22"},
		{"stm32f407", "0x0413", "STM32F40xxx/41xxx", "0x31"},
	}
	for _, tt := range tests {
		t.Run(tt.part, func(t *testing.T) {
			dir := t.TempDir()
			old := appImage(t, tt.part, "1.0", 40<<10)
			m, err := New(tt.part, Options{Board: "sensor-b", Seed: 9, Image: old})
			if err != nil {
				t.Fatal(err)
			}
			// Something to find beyond the image, so the read-back is not
			// mostly 0xFF.
			if err := m.Flash().Load(0x08000000+uint32(m.Flash().Size())-4096, bytes.Repeat([]byte("calibration "), 300)); err != nil {
				t.Fatal(err)
			}
			pt, err := sim.OpenPTY(filepath.Join(dir, "ttyUSB0"))
			if err != nil {
				t.Fatal(err)
			}
			line := sim.NewLine(sim.LineConfig{Fast: true})
			var tr simtest.Traffic
			line.Tap(tr.Tap)
			line.Attach(pt)
			d := sim.NewDevice(tt.part, m, line)
			defer d.Close()
			// Set the terminal to 115200 as a station would, so that the
			// application's console is readable after stm32flash exits
			// (it restores the settings it found).
			sp, err := serial.Open(pt.Path(), &serial.Mode{BaudRate: 115200})
			if err != nil {
				t.Fatal(err)
			}
			sp.Close()
			d.SetBoot(true)
			d.SetPower(true)
			port := []string{"-b", "115200", "-m", "8n1"}

			// Identify, twice: the second run finds the ROM synced.
			for run := 1; run <= 2; run++ {
				out := stm32flash(t, append(port, pt.Path())...)
				mustContain(t, out, "Version      : "+tt.version, "Device ID    : "+tt.id+" ("+tt.name+")")
			}
			if st := m.Stats(); st.Syncs != 1 || st.BootloaderRuns != 1 || st.NACKs < 1 {
				t.Errorf("after two runs Stats() = %+v, want one autobaud sync and the repeated 0x7F NACKed", st)
			}

			// Read everything.
			read := filepath.Join(dir, "read.bin")
			out := stm32flash(t, append(port, "-r", read, pt.Path())...)
			mustContain(t, out, "Done.")
			got, err := os.ReadFile(read)
			if err != nil {
				t.Fatal(err)
			}
			if snap := m.Flash().Snapshot(); !bytes.Equal(got, snap) {
				t.Fatalf("stm32flash read %d bytes that differ from the %d bytes of flash", len(got), len(snap))
			}

			// Write, verify, go.
			img := appImage(t, tt.part, "2.0", 20001)
			bin := filepath.Join(dir, "app.bin")
			if err := os.WriteFile(bin, img, 0o644); err != nil {
				t.Fatal(err)
			}
			before := m.Stats()
			out = stm32flash(t, append(port, "-w", bin, "-v", "-g", "0x0", pt.Path())...)
			mustContain(t, out, "Wrote and verified address", "Starting execution at address 0x08000000... done.")
			tr.WaitSent(t, "sensor-b firmware v2.0 (id "+m.Serial()+")", 10*time.Second)
			snap := m.Flash().Snapshot()
			if !bytes.Equal(snap[:len(img)], img) {
				t.Fatal("after stm32flash's write the flash does not hold the image")
			}
			after := m.Stats()
			if after.DirtyWrites != 0 || after.AppRuns != before.AppRuns+1 {
				t.Errorf("Stats() = %+v, want no dirty write and the application started", after)
			}
			// stm32flash erases only what the file covers, as EraseRegion does.
			units, _ := m.Part().UnitsIn(0x08000000, uint32(len(img)))
			if n := after.UnitsErased - before.UnitsErased; n != len(units) || after.MassErases != before.MassErases {
				t.Errorf("stm32flash erased %d units and %d times all, want the %d the image covers", n, after.MassErases-before.MassErases, len(units))
			}
			if !bytes.Equal(snap[len(snap)-4096:], got[len(got)-4096:]) {
				t.Error("the data at the end of flash did not survive the write")
			}
			t.Logf("%s: stm32flash erased %d units (%d mass erases), wrote %d blocks", tt.part,
				after.UnitsErased-before.UnitsErased, after.MassErases-before.MassErases, after.BlocksWritten-before.BlocksWritten)
		})
	}
}
