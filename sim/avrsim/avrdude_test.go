package avrsim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simtest"
)

// writeHex writes data at base as Intel HEX: 16-byte data records,
// extended linear address records at each 64 KiB, an end record.
func writeHex(w io.Writer, base uint32, data []byte) error {
	bw := bufio.NewWriter(w)
	record := func(addr uint16, typ byte, b []byte) {
		sum := byte(len(b)) + byte(addr>>8) + byte(addr) + typ
		for _, c := range b {
			sum += c
		}
		fmt.Fprintf(bw, ":%02X%04X%02X%X%02X\n", len(b), addr, typ, b, -sum)
	}
	upper := -1
	for off := 0; off < len(data); off += 16 {
		a := base + uint32(off)
		if int(a>>16) != upper {
			upper = int(a >> 16)
			record(0, 4, []byte{byte(upper >> 8), byte(upper)})
		}
		record(uint16(a), 0, data[off:min(off+16, len(data))])
	}
	record(0, 1, nil)
	return bw.Flush()
}

func avrdude(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "avrdude", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("avrdude %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// clientInitCommands returns the SET_DEVICE and SET_DEVICE_EXT commands
// this package's client sends to a unit of the given part.
func clientInitCommands(t *testing.T, part string) (setDevice, setDeviceExt []byte) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, part, Options{})
		var tr simtest.Traffic
		u.dev.Line.Tap(tr.Tap)
		u.dev.SetPower(true)
		c := u.client()
		if err := c.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Identify(context.Background()); err != nil {
			t.Fatal(err)
		}
		rx := tr.Received()
		i := bytes.Index(rx, []byte{avr.CmdReadSign, avr.SyncCRCEOP}) + 2
		setDevice, setDeviceExt = rx[i:i+22], rx[i+22:i+29]
	})
	if setDevice[0] != avr.CmdSetDevice || setDeviceExt[0] != avr.CmdSetDeviceExt {
		t.Fatalf("client init commands % X / % X do not start with SET_DEVICE / SET_DEVICE_EXT", setDevice, setDeviceExt)
	}
	return setDevice, setDeviceExt
}

// TestAvrdude holds the model against the real avrdude: it writes and
// verifies an Intel HEX application, reads the flash back byte for byte,
// and the unit then boots the new version. A pseudo-terminal has no DTR, so
// the test resets the unit into optiboot itself just before each run, with
// a bootloader window long enough for a loaded machine.
func TestAvrdude(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})
	tests := []struct {
		part, id string
		size     int
	}{
		{"atmega328p", "m328p", 20000},
		{"atmega2560", "m2560", 150 * 1024}, // across 128 KiB: avrdude's Load Extended Address
	}
	for _, tt := range tests {
		t.Run(tt.part, func(t *testing.T) {
			dir := t.TempDir()
			m, err := New(tt.part, Options{Board: "uno-r3", ID: "SN-7", Image: appImage(t, tt.part, "1.0", 4096), Window: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			pt, err := sim.OpenPTY(filepath.Join(dir, "ttyACM0"))
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
			// application's console is readable between avrdude's runs
			// (avrdude restores the settings it found when it exits).
			port, err := serial.Open(pt.Path(), &serial.Mode{BaudRate: 115200})
			if err != nil {
				t.Fatal(err)
			}
			port.Close()
			d.SetPower(true)
			tr.WaitSent(t, "uno-r3 firmware v1.0 (id SN-7)", 10*time.Second)

			img := appImage(t, tt.part, "2.0", tt.size)
			f, err := os.Create(filepath.Join(dir, "app.hex"))
			if err != nil {
				t.Fatal(err)
			}
			if err := writeHex(f, 0, img); err != nil {
				t.Fatal(err)
			}
			f.Close()

			// Write and verify.
			d.SetReset(true)
			d.SetReset(false)
			out := avrdude(t, "-c", "arduino", "-p", tt.id, "-P", pt.Path(), "-b", "115200", "-U", "flash:w:"+filepath.Join(dir, "app.hex")+":i")
			if want := fmt.Sprintf("%d bytes of flash verified", len(img)); !strings.Contains(out, want) {
				t.Fatalf("avrdude output lacks %q:\n%s", want, out)
			}
			tr.WaitSent(t, "uno-r3 firmware v2.0 (id SN-7)", 10*time.Second)
			snap := m.Flash().Snapshot()
			if !bytes.Equal(snap[:len(img)], img) {
				t.Fatal("after avrdude's write the flash does not hold the image")
			}

			// avrdude initialises the unit as this package's client does.
			sd, sde := clientInitCommands(t, tt.part)
			if rx := tr.Received(); !bytes.Contains(rx, sd) || !bytes.Contains(rx, sde) {
				t.Errorf("avrdude did not send the client's SET_DEVICE % X and SET_DEVICE_EXT % X", sd, sde)
			}

			// Read everything back.
			d.SetReset(true)
			d.SetReset(false)
			read := filepath.Join(dir, "read.bin")
			avrdude(t, "-c", "arduino", "-p", tt.id, "-P", pt.Path(), "-b", "115200", "-U", "flash:r:"+read+":r")
			got, err := os.ReadFile(read)
			if err != nil {
				t.Fatal(err)
			}
			// avrdude drops trailing 0xFF from a raw file; optiboot's section
			// at the top of flash is not 0xFF, so nothing should be dropped.
			if !bytes.Equal(got, snap) {
				t.Fatalf("avrdude read %d bytes that differ from the %d bytes of flash", len(got), len(snap))
			}
			if st := m.Stats(); st.BootloaderRuns != 2 || st.BadTerminators != 0 {
				t.Errorf("Stats() = %+v, want two bootloader sessions without a bad terminator", st)
			}
			t.Logf("%s: avrdude wrote and verified %d bytes, read back %d bytes; model stats %+v", tt.id, len(img), len(got), m.Stats())
		})
	}
}
