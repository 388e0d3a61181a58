package jobs

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/avrsim"
	"github.com/unbrick/unbrick/sim/stm32sim"
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
	// ESP32 "meter-e" and ESP8266 "plug-d": raw application images with
	// the ESP image header (magic 0xE9, one segment).
	out["meter-e-1.5.0.bin"] = must(sim.BuildApp(espHeader(true), espDescOffset, 64<<10, "1.5.0", "meter-e"))
	out["plug-d-1.1.0.bin"] = must(sim.BuildApp(espHeader(false), espDescOffset, 32<<10, "1.1.0", "plug-d"))
	// The A/B Linux board "hmi-a": a legacy uImage kernel and a squashfs
	// root file system, as the U-Boot model builds them.
	out["hmi-a-kernel-2.1.0.uimg"] = must(exampleKernel("2.1.0", "hmi-a", 64<<10))
	out["hmi-a-rootfs-2.1.0.squashfs"] = must(exampleRootFS("2.1.0", "hmi-a", 64<<10))
	return out
}

// espDescOffset is where the ESP example images carry the sim descriptor:
// after the image header and the first segment's header.
const espDescOffset = 0x40

// espHeader returns the ESP image header (esptool's image format: magic
// 0xE9, segment count, SPI mode, size and frequency, entry point; the ESP32
// adds a 16-byte extended header) and the first segment's header.
func espHeader(esp32 bool) []byte {
	h := []byte{0xE9, 1, 2, 0x20}
	entry, load := uint32(0x40100004), uint32(0x40100000)
	if esp32 {
		entry, load = 0x400D0018, 0x3F400020
	}
	h = binary.LittleEndian.AppendUint32(h, entry)
	if esp32 {
		h = append(h, 0xEE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // wp pin, drive, chip 0 (ESP32), ...
	}
	h = binary.LittleEndian.AppendUint32(h, load)
	return binary.LittleEndian.AppendUint32(h, 0) // the segment's length: the sim does not read it
}

// exampleKernel is a legacy uImage (U-Boot include/image.h): a 64-byte
// big-endian header with CRCs, then a stand-in zImage carrying the sim
// descriptor 0x200 bytes in.
func exampleKernel(version, target string, size int) ([]byte, error) {
	zimage := make([]byte, 0x30)
	binary.LittleEndian.PutUint32(zimage[0x24:], 0x016f2818)
	data, err := sim.BuildApp(zimage, 0x200, size-64, version, target)
	if err != nil {
		return nil, err
	}
	h := make([]byte, 64)
	be := binary.BigEndian
	be.PutUint32(h[0:], 0x27051956)
	be.PutUint32(h[8:], 1704700000)
	be.PutUint32(h[12:], uint32(len(data)))
	be.PutUint32(h[16:], 0x80008000)
	be.PutUint32(h[20:], 0x80008000)
	be.PutUint32(h[24:], crc32.ChecksumIEEE(data))
	h[28], h[29], h[30], h[31] = 5, 2, 2, 0 // Linux, ARM, kernel, uncompressed
	copy(h[32:], "Linux-"+version)
	be.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return append(h, data...), nil
}

// exampleRootFS is a squashfs superblock followed by the sim descriptor.
func exampleRootFS(version, target string, size int) ([]byte, error) {
	sb := make([]byte, 96)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], 0x73717368)
	le.PutUint32(sb[4:], 42)
	le.PutUint32(sb[8:], 1704700000)
	le.PutUint32(sb[12:], 128<<10)
	le.PutUint16(sb[20:], 4)
	le.PutUint16(sb[22:], 17)
	le.PutUint16(sb[28:], 4)
	le.PutUint64(sb[40:], uint64(size))
	return sim.BuildApp(sb, 96, size, version, target)
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
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".minisig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := firmware.Parse(name, data, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			_, flat, _ := im.Flatten(0xFF)
			t.Logf("%s: sha256 of the bytes written %s", name, firmware.SHA256(flat))
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
