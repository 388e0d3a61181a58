package espsim

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/serialport"
	"github.com/unbrick/unbrick/sim"
)

// ptyUnit runs a model on a real pseudo-terminal, in its bootloader, for a
// third-party tool to talk to.
func ptyUnit(t *testing.T, m *Model) (link string, d *sim.Device, con *console) {
	t.Helper()
	link = filepath.Join(t.TempDir(), "tty")
	pt, err := sim.OpenPTY(link)
	if err != nil {
		t.Fatal(err)
	}
	cfg := LineConfig()
	cfg.Fast = true
	line := sim.NewLine(cfg)
	con = &console{}
	line.Tap(con.tap)
	line.Attach(pt)
	d = sim.NewDevice(m.Name(), m, line)
	t.Cleanup(d.Close)
	d.SetBoot(true)
	d.SetPower(true)
	return link, d, con
}

// TestEsptoolJS holds the models against Espressif's esptool-js (npm,
// pinned in scripts/peers/esptool-js.sh), run under node through a
// Web-Serial-like shim on a real pseudo-terminal: it detects the chip by
// its magic word, reads the description and the MAC from eFuse (OTP on the
// ESP8266), uploads its flasher stub with MEM_BEGIN/DATA/END and waits for
// OHAI, switches to 460800 with CHANGE_BAUDRATE (the pty's rate follows,
// so a model that did not switch would read garbage), reads the JEDEC ID
// through the SPI controller's registers, writes a second-stage bootloader
// and an application (compressed and not) with MD5 checks, and reads flash
// back with the stub's READ_FLASH. The model's flash must then hold both
// images, and the unit must boot the new application.
func TestEsptoolJS(t *testing.T) {
	peertest.NeedEsptoolJS(t)
	for _, tc := range []struct {
		chip         string
		uncompressed bool
	}{
		{"esp32", false},
		{"esp32", true},
		{"esp8266", false},
	} {
		name := tc.chip
		if tc.uncompressed {
			name += "/uncompressed"
		}
		t.Run(name, func(t *testing.T) {
			m, err := New(tc.chip, Options{Board: "meter-e", Seed: 21})
			if err != nil {
				t.Fatal(err)
			}
			link, d, con := ptyUnit(t, m)
			app := appImage(t, tc.chip, "4.2", 96<<10+36)
			files := []peertest.EsptoolJSFile{{Addr: m.BootOffset(), Data: app}}
			readAt := m.BootOffset()
			if tc.chip == "esp32" {
				boot, err := BootloaderImage(tc.chip)
				if err != nil {
					t.Fatal(err)
				}
				files = []peertest.EsptoolJSFile{{Addr: m.BootOffset(), Data: boot}, {Addr: AppOffset, Data: app}}
				readAt = AppOffset
			}
			res, err := peertest.EsptoolJS(t, peertest.EsptoolJSRun{
				Port: link, Baud: 460800, Uncompressed: tc.uncompressed, Write: files, ReadAddr: readAt, ReadLen: 8 << 10,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					t.Logf("esptool-js:\n%s", res.Log)
				}
			}()
			if want := strings.ToLower(m.Serial()); res.MAC != want {
				t.Errorf("esptool-js read the MAC %q, want %q", res.MAC, want)
			}
			if !strings.HasPrefix(res.Chip, m.Chip().Name) {
				t.Errorf("esptool-js took the chip for %q, want an %s", res.Chip, m.Chip().Name)
			}
			if !res.Stub || !strings.Contains(res.Log, "Stub running") {
				t.Errorf("esptool-js did not run its flasher stub")
			}
			if !strings.Contains(res.Log, "Changed") {
				t.Errorf("esptool-js did not change the rate")
			}
			if res.FlashID != m.JEDECID() {
				t.Errorf("esptool-js read the flash ID %06X, want %06X", res.FlashID, m.JEDECID())
			}
			if n := strings.Count(res.Log, "Hash of data verified"); n != len(files) {
				t.Errorf("esptool-js verified %d files by MD5, want %d", n, len(files))
			}
			for _, f := range files {
				got, _ := m.Flash().Read(f.Addr, len(f.Data))
				if !bytes.Equal(got, f.Data) {
					t.Errorf("after esptool-js the flash at 0x%X differs from the %d bytes it wrote", f.Addr, len(f.Data))
				}
			}
			want, _ := m.Flash().Read(readAt, 8<<10)
			if res.Read == nil || res.Read.Hex != hex.EncodeToString(want) {
				t.Errorf("esptool-js READ_FLASH at 0x%X does not match the flash", readAt)
			}
			// The application talks at 115200: set the host side back from
			// the stub's rate, as a terminal program would.
			if out, err := exec.Command("stty", "-F", link, "115200").CombinedOutput(); err != nil {
				t.Fatalf("stty: %v %s", err, out)
			}
			d.SetBoot(false)
			d.SetReset(true)
			d.SetReset(false)
			con.waitFor(t, "meter-e firmware v4.2 (id "+m.Serial()+")", 20*time.Second)
		})
	}
}

// TestEsptoolJSROMOnly runs esptool-js without its stub. Its ROM-only flow
// never sends SPI_ATTACH (esptool's write_flash does, see its
// flash_spi_attach), and the ESP32 ROM has not attached the SPI flash in
// download mode until told: FLASH_DEFL_BEGIN fails. A model that took the
// write anyway would be more lenient than the chip.
func TestEsptoolJSROMOnly(t *testing.T) {
	peertest.NeedEsptoolJS(t)
	m, err := New("esp32", Options{Board: "meter-e", Seed: 22})
	if err != nil {
		t.Fatal(err)
	}
	link, _, _ := ptyUnit(t, m)
	app := appImage(t, "esp32", "4.3", 8<<10)
	res, err := peertest.EsptoolJS(t, peertest.EsptoolJSRun{
		Port: link, NoStub: true, Write: []peertest.EsptoolJSFile{{Addr: AppOffset, Data: app}},
	})
	if err == nil {
		t.Fatalf("esptool-js wrote through the ROM without SPI_ATTACH:\n%s", res.Log)
	}
	if !strings.Contains(err.Error(), "enter compressed flash mode") {
		t.Fatalf("esptool-js failed elsewhere than at FLASH_DEFL_BEGIN: %v", err)
	}
	if res.MAC != "" {
		t.Logf("MAC %s", res.MAC)
	}
	if got, _ := m.Flash().Read(AppOffset, 16); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 16)) {
		t.Errorf("the flash changed although the write was refused: % X", got)
	}
}

// TestEsptoolJSReadsWhatTheClientWrote crosses the two clients on one
// unit over a real pseudo-terminal: unbrick's esprom client, through the
// ROM, attaches the flash, sets its size from the JEDEC ID, switches to
// 460800 (with the ROM's drift compensation) and writes an image past the
// ROM's 2 MiB default; after a reset into download mode, esptool-js reads
// it back through its stub and must find the same bytes.
func TestEsptoolJSReadsWhatTheClientWrote(t *testing.T) {
	peertest.NeedEsptoolJS(t)
	m, err := New("esp32", Options{Board: "meter-e", Seed: 23, ROMCrystal: 40400000})
	if err != nil {
		t.Fatal(err)
	}
	link, d, _ := ptyUnit(t, m)
	p, err := serialport.Open(link, serialport.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := esprom.New(p, esprom.Options{})
	img := appImage(t, "esp32", "5.0", 40<<10)
	const at = 0x300000
	err = func() error {
		if err := c.Sync(ctx); err != nil {
			return err
		}
		if _, err := c.Identify(ctx); err != nil {
			return err
		}
		if size, err := c.AttachFlash(ctx); err != nil || size != 4<<20 {
			return fmt.Errorf("AttachFlash() = %d, %v, want 4 MiB", size, err)
		}
		if err := c.ChangeBaud(ctx, 460800); err != nil {
			return err
		}
		if _, err := c.Flash(ctx, at, img, esprom.FlashOptions{Compress: true}, nil); err != nil {
			return err
		}
		return c.Verify(ctx, at, img)
	}()
	p.Close()
	if err != nil {
		t.Fatalf("esprom client: %v", err)
	}
	d.SetReset(true) // GPIO0 is still low: back into download mode, at 115200
	d.SetReset(false)
	res, err := peertest.EsptoolJS(t, peertest.EsptoolJSRun{Port: link, ReadAddr: at, ReadLen: uint32(len(img))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Read == nil || res.Read.Hex != hex.EncodeToString(img) {
		t.Fatalf("esptool-js read back at 0x%X something other than what the client wrote", at)
	}
}
