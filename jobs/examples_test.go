package jobs

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/sim/avrsim"
	"github.com/unbrick/unbrick/sim/espsim"
	"github.com/unbrick/unbrick/sim/stm32sim"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

var updateExamples = flag.Bool("update-examples", false, "rewrite the example recipes' images and signatures in testdata/recipes/images")

const (
	examplesDir = "../testdata/recipes"
	testKeyFile = "../testdata/keys/unbrick-test.key"
)

// exampleImages builds the example recipes' images, by file name under
// testdata/recipes/images. Each is a demo application (sim.BuildApp) that
// boots in the family's device model and prints its version.
func exampleImages(t testing.TB) map[string][]byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := map[string][]byte{}
	// STM32F103 "sensor-b": Intel HEX at the start of flash.
	f103 := must(stm32sim.AppImage("stm32f103", "1.2.0", "sensor-b", 8<<10))
	out["sensor-b-1.2.0.hex"] = firmware.FormatHex([]firmware.Segment{{Addr: 0x08000000, Data: f103}}, 0)
	// STM32F407 "gateway-c": an ELF executable, loaded at its physical
	// addresses.
	f407 := must(stm32sim.AppImage("stm32f407", "3.0.1", "gateway-c", 12<<10))
	out["gateway-c-3.0.1.elf"] = exampleELF(0x08000000, f407, binary.LittleEndian.Uint32(f407[4:]))
	// ATmega328P "uno-r3": Intel HEX at 0, as avr-objcopy writes it.
	avr := must(avrsim.AppImage("atmega328p", "2.0.0", "uno-r3", 4<<10))
	out["uno-r3-2.0.0.hex"] = firmware.FormatHex([]firmware.Segment{{Addr: 0, Data: avr}}, 0)
	// optiboot's place at the top of the ATmega328P's flash: only the
	// broken recipe that writes the bootloader names it.
	boot := make([]byte, 512)
	for i := range boot {
		boot[i] = byte(i * 7)
	}
	out["optiboot-8.0.hex"] = firmware.FormatHex([]firmware.Segment{{Addr: 0x7E00, Data: boot}}, 0)
	// ESP32 "meter-e" and ESP8266 "plug-d": application images in the ESP
	// image format, as the ESP models boot them (the ESP32's from its
	// factory partition at 0x10000, behind ESP-IDF's bootloader).
	out["meter-e-1.5.0.bin"] = must(espsim.AppImage("esp32", "1.5.0", "meter-e", 64<<10))
	out["plug-d-1.1.0.bin"] = must(espsim.AppImage("esp8266", "1.1.0", "plug-d", 32<<10))
	// The A/B Linux board "hmi-a": a legacy uImage kernel and a squashfs
	// root file system, as the U-Boot model builds them.
	system, _, err := ubootsim.Bundle("2.1.0", "hmi-a", ubootsim.BenchLayout, "a")
	out["hmi-a-system-2.1.0.img"] = must(system, err)
	return out
}

// exampleELF returns a little-endian 32-bit ARM executable with one PT_LOAD
// segment holding data at addr.
func exampleELF(addr uint32, data []byte, entry uint32) []byte {
	const ehsize, phsize = 52, 32
	le := binary.LittleEndian
	h := make([]byte, ehsize+phsize)
	copy(h, "\x7fELF\x01\x01\x01")
	le.PutUint16(h[16:], 2)  // ET_EXEC
	le.PutUint16(h[18:], 40) // EM_ARM
	le.PutUint32(h[20:], 1)
	le.PutUint32(h[24:], entry)
	le.PutUint32(h[28:], ehsize)
	le.PutUint32(h[36:], 0x05000400) // EABI5, hard float
	le.PutUint16(h[40:], ehsize)
	le.PutUint16(h[42:], phsize)
	le.PutUint16(h[44:], 1)
	le.PutUint16(h[46:], 40)
	ph := h[ehsize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], ehsize+phsize)
	le.PutUint32(ph[8:], addr)
	le.PutUint32(ph[12:], addr)
	le.PutUint32(ph[16:], uint32(len(data)))
	le.PutUint32(ph[20:], uint32(len(data)))
	le.PutUint32(ph[24:], 5) // R X
	le.PutUint32(ph[28:], 4)
	return append(h, data...)
}

// TestExampleImages holds testdata/recipes/images to what exampleImages
// builds, signed with the test key; -update-examples rewrites them.
func TestExampleImages(t *testing.T) {
	key, err := os.ReadFile(testKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ims := exampleImages(t)
	names := make([]string, 0, len(ims))
	for n := range ims {
		names = append(names, n)
	}
	sort.Strings(names)
	dir := filepath.Join(examplesDir, "images")
	for _, name := range names {
		data := ims[name]
		sig, err := firmware.Sign(key, data, "unbrick test key: "+name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if *updateExamples {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if old, err := os.ReadFile(path); err == nil && !bytes.Equal(old, data) {
				rehash(t, flatHash(t, name, old), flatHash(t, name, data))
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".minisig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: sha256 of the bytes written %s", name, flatHash(t, name, data))
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s differs from what the generator builds (%v): run go generate ./jobs", path, err)
		}
		if got, err := os.ReadFile(path + ".minisig"); err != nil || !bytes.Equal(got, sig) {
			t.Errorf("%s.minisig differs from the test key's signature (%v): run go generate ./jobs", path, err)
		}
	}
}

// flatHash returns the sha256 of the bytes an image file writes.
func flatHash(t *testing.T, name string, file []byte) string {
	t.Helper()
	im, err := firmware.Parse(name, file, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, flat, err := im.Flatten(0xFF)
	if err != nil {
		t.Fatal(err)
	}
	return firmware.SHA256(flat)
}

// rehash replaces an image's old hash with its new one in every recipe
// under testdata/recipes.
func rehash(t *testing.T, old, new string) {
	t.Helper()
	filepath.WalkDir(examplesDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if s := strings.ReplaceAll(string(b), old, new); s != string(b) {
			t.Logf("%s: sha256 %.12s... is now %.12s...", path, old, new)
			return os.WriteFile(path, []byte(s), 0o644)
		}
		return nil
	})
}

// compileExample loads, checks and compiles an example recipe with the test
// key trusted.
