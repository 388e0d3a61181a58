package espsim

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// esptoolPath finds Espressif's esptool: $ESPTOOL, else esptool or
// esptool.py on the PATH.
func esptoolPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ESPTOOL"); p != "" {
		return p
	}
	for _, name := range []string{"esptool", "esptool.py"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("esptool is not installed (Debian: apt-get install esptool; or set ESPTOOL to its path): the ROM models are not held against Espressif's own tool")
	return ""
}

// console collects what the unit sends.
type console struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *console) tap(dir byte, b []byte) {
	if dir != '>' {
		return
	}
	c.mu.Lock()
	c.b.Write(b)
	c.mu.Unlock()
}

func (c *console) waitFor(t *testing.T, want string, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		c.mu.Lock()
		ok := bytes.Contains(c.b.Bytes(), []byte(want))
		c.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling a real process's effect, not synchronising goroutines
	}
	t.Fatalf("the unit never printed %q within %v", want, within)
}

func esptool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("esptool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("esptool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// TestEsptool holds the models against esptool on a real pseudo-terminal,
// without the flasher stub (--no-stub: the ROM itself answers): read_mac
// reads the MAC the unit's eFuse or OTP holds, write_flash writes a new
// image (compressed on the ESP32, whose ROM inflates; the ESP32 ROM's MD5
// checks it), verify_flash hashes it again on the ESP32, and the unit then
// boots the new version.
func TestEsptool(t *testing.T) {
	tool := esptoolPath(t)
	for _, chip := range chips {
		t.Run(chip, func(t *testing.T) {
			m, err := New(chip, Options{Board: "meter-e", Seed: 11, Image: appImage(t, chip, "1.0", 32<<10)})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			link := filepath.Join(dir, "tty")
			pt, err := sim.OpenPTY(link)
			if err != nil {
				t.Fatal(err)
			}
			cfg := LineConfig()
			cfg.Fast = true
			line := sim.NewLine(cfg)
			var con console
			line.Tap(con.tap)
			line.Attach(pt)
			d := sim.NewDevice(chip, m, line)
			defer d.Close()
			d.SetBoot(true)
			d.SetPower(true)

			common := []string{"--port", link, "--baud", "115200", "--before", "no_reset", "--after", "no_reset", "--no-stub"}
			// Let esptool detect the chip by the magic word, as it does by default.
			out := esptool(t, tool, append(append([]string{"--chip", "auto"}, common...), "read_mac")...)
			if want := "MAC: " + strings.ToLower(m.Serial()); !strings.Contains(out, want) {
				t.Fatalf("esptool read_mac lacks %q:\n%s", want, out)
			}
			if want := "Chip is " + m.Chip().Name; !strings.Contains(out, want) {
				t.Fatalf("esptool read_mac lacks %q:\n%s", want, out)
			}
			base := append([]string{"--chip", chip}, common...)
			out = esptool(t, tool, append(base, "flash_id")...)
			for _, want := range []string{"Manufacturer: ef", "Device: 4016", "Detected flash size: 4MB"} {
				if !strings.Contains(out, want) {
					t.Fatalf("esptool flash_id lacks %q:\n%s", want, out)
				}
			}

			img := appImage(t, chip, "2.0", 24<<10+512)
			file := filepath.Join(dir, "app.bin")
			if err := os.WriteFile(file, img, 0o644); err != nil {
				t.Fatal(err)
			}
			off := "0x" + strings.TrimLeft(strings.ToLower(hex32(m.BootOffset())), "0")
			if m.BootOffset() == 0 {
				off = "0x0"
			}
			// The flash size is detected: esptool runs RDID through the SPI
			// controller's registers.
			args := append(base, "write_flash", "--flash_mode", "keep", "--flash_freq", "keep", "--flash_size", "detect")
			if chip == "esp32" {
				args = append(args, "--compress")
			}
			out = esptool(t, tool, append(args, off, file)...)
			if !strings.Contains(out, "Auto-detected Flash size: 4MB") {
				t.Errorf("esptool write_flash did not detect the 4 MB flash:\n%s", out)
			}
			if !strings.Contains(out, "Wrote ") {
				t.Fatalf("esptool write_flash did not write:\n%s", out)
			}
			if chip == "esp32" && !strings.Contains(out, "Hash of data verified") {
				t.Errorf("esptool write_flash did not check the ESP32 ROM's MD5:\n%s", out)
			}
			got, _ := m.Flash().Read(m.BootOffset(), len(img))
			if !bytes.Equal(got, img) {
				t.Fatalf("after esptool write_flash the flash differs from the image")
			}
			if chip == "esp32" {
				out = esptool(t, tool, append(base, "verify_flash", off, file)...)
				if !strings.Contains(out, "verify OK") {
					t.Fatalf("esptool verify_flash:\n%s", out)
				}
			}
			d.SetBoot(false)
			d.SetReset(true)
			d.SetReset(false)
			con.waitFor(t, "meter-e firmware v2.0 (id "+m.Serial()+")", 10*time.Second)
		})
	}
}

func hex32(v uint32) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xF]
		v >>= 4
	}
	return string(b)
}

// TestEsptoolStub lets esptool load its flasher stub, as it does by
// default: the model takes the upload for the stub and speaks the stub's
// protocol from then on. write_flash (compressed), verify_flash,
// read_flash and erase_region go through it, and the unit boots what was
// written.
func TestEsptoolStub(t *testing.T) {
	tool := esptoolPath(t)
	for _, chip := range chips {
		t.Run(chip, func(t *testing.T) {
			m, err := New(chip, Options{Board: "meter-e", Seed: 12})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			link := filepath.Join(dir, "tty")
			pt, err := sim.OpenPTY(link)
			if err != nil {
				t.Fatal(err)
			}
			cfg := LineConfig()
			cfg.Fast = true
			line := sim.NewLine(cfg)
			var con console
			line.Tap(con.tap)
			line.Attach(pt)
			d := sim.NewDevice(chip, m, line)
			defer d.Close()
			d.SetBoot(true)
			d.SetPower(true)

			base := []string{"--chip", chip, "--port", link, "--baud", "115200", "--before", "no_reset", "--after", "no_reset"}
			img := appImage(t, chip, "3.0", 40<<10+100)
			file := filepath.Join(dir, "app.bin")
			if err := os.WriteFile(file, img, 0o644); err != nil {
				t.Fatal(err)
			}
			off := "0x0"
			if m.BootOffset() != 0 {
				off = "0x1000"
			}
			out := esptool(t, tool, append(base, "write_flash", off, file)...)
			for _, want := range []string{"Stub running...", "Hash of data verified"} {
				if !strings.Contains(out, want) {
					t.Fatalf("esptool write_flash lacks %q:\n%s", want, out)
				}
			}
			// esptool left the stub with a soft reset (FLASH_END "reboot"):
			// with GPIO0 still low the ROM is back, and the next esptool
			// uploads the stub again.
			out = esptool(t, tool, append(base, "verify_flash", off, file)...)
			if !strings.Contains(out, "verify OK") || !strings.Contains(out, "Uploading stub") {
				t.Fatalf("esptool verify_flash:\n%s", out)
			}
			back := filepath.Join(dir, "back.bin")
			esptool(t, tool, append(base, "read_flash", off, "5000", back)...)
			if got, _ := os.ReadFile(back); !bytes.Equal(got, img[:5000]) {
				t.Fatalf("esptool read_flash read %d bytes that differ from the image", len(got))
			}
			esptool(t, tool, append(base, "erase_region", "0x200000", "0x2000")...)
			d.SetBoot(false)
			d.SetReset(true)
			d.SetReset(false)
			con.waitFor(t, "meter-e firmware v3.0 (id "+m.Serial()+")", 10*time.Second)
			if st := m.Stats(); st.SectorsErased < 2 {
				t.Errorf("Stats() = %+v, want the erased sectors counted", st)
			}
		})
	}
}
